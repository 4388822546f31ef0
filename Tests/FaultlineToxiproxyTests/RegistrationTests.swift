import FaultlineKit
import FaultlineProxy
import FaultlineToxiproxy
import Testing

@Suite("What the backend plugins register")
struct RegistrationTests {
    @Test("the proxy plugin's in-process backend is the default; the Toxiproxy plugin adds a backend a profile must name")
    func defaultBackend() {
        #expect(PluginRegistry(plugins: [ProxyPlugin.self]).defaultToxicBackend == "inprocess")
        #expect(PluginRegistry(plugins: [ToxiproxyPlugin.self]).defaultToxicBackend == nil)
        #expect(PluginRegistry(plugins: [ProxyPlugin.self, ToxiproxyPlugin.self]).defaultToxicBackend == "inprocess")
        #expect(PluginRegistry(plugins: [ToxiproxyPlugin.self, ProxyPlugin.self]).defaultToxicBackend == "inprocess")
    }

    @Test("both register the run extension that owns proxies:, agents: and a profile's toxics: and agents:, once, before every other stage")
    func backendExtension() {
        for plugins in [[ProxyPlugin.self], [ToxiproxyPlugin.self], [ProxyPlugin.self, ToxiproxyPlugin.self]] as [[any FaultlinePlugin.Type]] {
            let registry = PluginRegistry(plugins: plugins)
            #expect(registry.runExtensions.filter { $0.name == "toxic backend" }.count == 1)
            #expect(registry.extensionSuiteKeys.contains("proxies") && registry.extensionSuiteKeys.contains("agents"))
            #expect(registry.extensionProfileKeys == ["toxics", "agents"])
            #expect(registry.runExtensions.allSatisfy { $0.stage == .network })
        }
    }

    @Test("a ${variable} in a profile's toxics options is the shared configuration's, checked when the suite loads")
    func optionVariables() throws {
        let suite = """
            name: s
            configuration: {tp_host: 127.0.0.1}
            experiments: [{title: t, method: []}]
            profiles:
              good: {toxics: {backend: toxiproxy, url: "http://${tp_host}:8474"}}
              typo: {toxics: {backend: toxiproxy, url: "http://${tp_hots}:8474"}}
            """
        #expect(try validationErrors(suite, profiles: ["good"]).isEmpty)
        let errors = try validationErrors(suite, profiles: ["typo"])
        #expect(errors.count == 1 && errors[0].hasPrefix("suite.yaml:6:44: unknown variable \"${tp_hots}\" (did you mean \"tp_host\"?)"), "\(errors)")
    }
}
