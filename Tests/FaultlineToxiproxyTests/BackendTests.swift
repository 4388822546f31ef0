import FaultlineKit
import FaultlineNetwork
import FaultlineProxy
import FaultlineTestSupport
import FaultlineTesting
import FaultlineToxiproxy
import Foundation
import Testing

/// The `toxiproxy` backend on a server others share: it undoes its own work and nobody else's.
@Suite("Toxiproxy backend")
struct BackendTests {
    /// Someone else's proxy with someone else's toxic, on the server before the run.
    static func theirs(_ client: ToxiproxyClient) async throws -> ProxyDefinition {
        // Disabled and enabled again by the run, so it rebinds its port: one below the ephemeral
        // range, which no other test's connection takes in between.
        _ = try await client.createProxy(ProxyDefinition(name: "theirs", listen: "127.0.0.1:\(try FreePort.take())", upstream: "127.0.0.1:1"))
        _ = try await client.addToxic(ToxicDefinition(name: "their_latency", type: "latency", attributes: ["latency": 7]), to: "theirs")
        return try await client.proxy(named: "theirs")
    }

    /// What a run does: its own proxy and toxics, a toxic on their proxy, their proxy down, their toxic changed.
    static func meddle(_ backend: ToxiproxyBackend) async throws {
        _ = try await backend.createProxy(
            ProxyDefinition(
                name: "mine", listen: "127.0.0.1:\(try FreePort.take())", upstream: "127.0.0.1:2",
                toxics: [ToxicDefinition(name: "my_latency", type: "latency")]))
        _ = try await backend.addToxic(ToxicDefinition(name: "my_cut", type: "limit_data", attributes: ["bytes": 5]), to: "mine")
        _ = try await backend.addToxic(ToxicDefinition(name: "my_slice", type: "slicer", attributes: ["average_size": 10]), to: "theirs")
        _ = try await backend.updateProxy(named: "theirs", listen: nil, upstream: "127.0.0.1:3", enabled: false)
        _ = try await backend.updateToxic(named: "their_latency", on: "theirs", attributes: ["latency": 999], toxicity: 0.5)
        _ = try await backend.updateProxy(named: "mine", listen: nil, upstream: nil, enabled: false)
    }

    @Test("at the end, only what the run created goes, and what it changed gets its old values back — no global reset")
    func shutdownUndoesOnlyTheRun() async throws {
        try await withStandIn { server, client in
            let before = try await Self.theirs(client)
            try await closing(ToxiproxyBackend(client: server.client())) { backend in
                try await Self.meddle(backend)
                #expect(backend.leftovers.proxies == ["mine"])
                #expect(backend.leftovers.toxics == ["mine/my_latency", "mine/my_cut", "theirs/my_slice"])

                await backend.shutdown()
                #expect(try await client.proxies() == [before])
                await backend.shutdown()  // idempotent
            }
        }
    }

    @Test("reset on a shared server: the run's proxies cleared and enabled, its toxics elsewhere removed, its changes undone; theirs intact")
    func scopedReset() async throws {
        try await withStandIn { server, client in
            let before = try await Self.theirs(client)
            try await closing(ToxiproxyBackend(client: server.client())) { backend in
                try await Self.meddle(backend)
                try await backend.reset()
                #expect(try await client.proxy(named: "theirs") == before)
                let mine = try await client.proxy(named: "mine")
                #expect(mine.enabled && mine.toxics.isEmpty)
                await backend.shutdown()
                #expect(try await client.proxies() == [before])
            }
        }
    }

    @Test("something someone else removed first counts as removed, and is forgotten")
    func removedByOthers() async throws {
        try await withStandIn { server, client in
            try await closing(ToxiproxyBackend(client: server.client())) { backend in
                _ = try await backend.createProxy(ProxyDefinition(name: "mine", listen: "127.0.0.1:\(try FreePort.take())", upstream: "127.0.0.1:2"))
                _ = try await backend.addToxic(ToxicDefinition(name: "t", type: "latency"), to: "mine")
                try await client.removeToxic(named: "t", from: "mine")
                await #expect(throws: ToxicBackendError.self) { try await backend.removeToxic(named: "t", from: "mine") }
                #expect(backend.leftovers.toxics.isEmpty)
                try await client.deleteProxy(named: "mine")
                await backend.shutdown()
                #expect(try await client.proxies().isEmpty)
            }
        }
    }

    @Test("a profile backend at a dead address fails the run before any experiment, naming the address")
    func deadServerFailsTheRun() async throws {
        let port = try FreePort.take()
        let result = try await runSuite(
            """
            name: dead
            proxies: [{name: web, upstream: "127.0.0.1:1"}]
            experiments:
              - title: never runs
                method: [{type: action, name: a, provider: {type: toxic, proxy: web, toxic: latency}}]
            profiles:
              remote: {default: true, toxics: {backend: toxiproxy, url: "http://127.0.0.1:\(port)"}}
            """)
        #expect(result.journals.isEmpty)
        let error = try #require(result.setupError)
        #expect(
            error.contains(
                "toxic backend toxiproxy: Toxiproxy at http://127.0.0.1:\(port): read the version: connection refused at 127.0.0.1:\(port)"),
            "\(error)")
        #expect(error.contains("the profile's toxics.url"))
    }

    @Test("TOXIPROXY_URL gives the address when the profile does not; with neither, the run says how to give one")
    func environmentAddress() async throws {
        try await withStandIn { server, client in
            let suite = """
                name: env
                proxies: [{name: web, upstream: "127.0.0.1:1"}]
                experiments:
                  - title: toxic
                    method: [{type: action, name: a, provider: {type: toxic, proxy: web, toxic: latency, attributes: {latency: 1}}}]
                profiles:
                  remote: {default: true, toxics: {backend: toxiproxy}}
                """
            let result = try await runSuite(suite, environment: ["TOXIPROXY_URL": server.url])
            #expect(result.setupError == nil)
            #expect(result.journals.first?.verdict == .completed)
            #expect(try await client.proxies().isEmpty)

            let none = try await runSuite(suite, environment: [:])
            #expect(none.setupError?.contains("no Toxiproxy address: give url: in the profile's toxics: section") == true, "\(none.setupError ?? "")")
        }
    }

    @Test("the backend's options are checked when the suite loads, at their line and column")
    func loadErrors() throws {
        let errors = try validationErrors(
            """
            name: bad options
            experiments: [{title: t, method: [{type: action, name: a, provider: {type: toxic, proxy: p, toxic: latency}}]}]
            profiles:
              one: {default: true, toxics: {backend: toxiproxy, url: "ftp://host:1"}}
              two: {toxics: {backend: toxiproxy, ulr: "http://h:1", timeout: 0}}
            """, profiles: ["one", "two"])
        #expect(errors.contains { $0.hasPrefix("suite.yaml:4:58: toxiproxy backend url: unsupported scheme in \"ftp://host:1\"") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("suite.yaml:5:38: unknown key \"ulr\" (did you mean \"url\"?)") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("suite.yaml:5:66: timeout must be a number of seconds above 0") }, "\(errors)")
    }

    @Test("HTTP toxics and client conditions are refused at load under a Toxiproxy profile, naming it")
    func httpToxicsRefused() throws {
        let suite = """
            name: http faults
            experiments:
              - title: t
                method:
                  - {type: action, name: a, provider: {type: toxic, proxy: p, toxic: http_abort, attributes: {status: 503}}}
                  - {type: action, name: b, provider: {type: toxic, proxy: p, toxic: latency, clients: [10.0.0.0/8]}}
            profiles:
              local: {default: true}
              staging: {toxics: {backend: toxiproxy, url: "http://127.0.0.1:1"}}
            """
        #expect(try validationErrors(suite, profiles: ["local"]).isEmpty)
        let errors = try validationErrors(suite, profiles: ["staging"])
        #expect(
            errors.contains {
                $0.hasPrefix(
                    "suite.yaml:5:74: profile \"staging\" uses the toxiproxy toxic backend, which cannot run this toxic: http_abort is an HTTP toxic, and a Toxiproxy server runs byte-stream toxics only"
                )
            }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("suite.yaml:6:") && $0.contains("clients: conditions are Faultline's") }, "\(errors)")
    }
}

extension BackendTests {
    @Test("a slicer variation that would crash a Toxiproxy server is a load error at its value under a Toxiproxy profile only")
    func crashingSlicerRefused() throws {
        let suite = """
            name: slicers
            experiments:
              - title: t
                method:
                  - {type: action, name: a, provider: {type: toxic, proxy: p, toxic: slicer, attributes: {average_size: 1000, size_variation: 1000}}}
                  - {type: action, name: b, provider: {type: toxic, proxy: p, toxic: slicer, attributes: {average_size: 1, size_variation: 100}}}
                  - {type: action, name: c, provider: {type: toxic, proxy: p, toxic: slicer}}
                  - {type: action, name: d, provider: {type: toxic, proxy: p, toxic: slicer, attributes: {average_size: "${size}"}}}
            configuration: {size: "4"}
            profiles:
              local: {default: true}
              staging: {toxics: {backend: toxiproxy, url: "http://127.0.0.1:1"}}
            """
        #expect(try validationErrors(suite, profiles: ["local"]).isEmpty)
        let errors = try validationErrors(suite, profiles: ["staging"])
        #expect(errors.count == 2, "\(errors)")
        #expect(
            errors.first?.hasPrefix(
                "suite.yaml:6:128: profile \"staging\" uses the toxiproxy toxic backend, which must not be sent these attributes: slicer size_variation 100 is above average_size 1 + 1"
            ) == true, "\(errors)")
        // Left out, the attributes are Toxiproxy's defaults (average_size 0), which overflow its
        // stack; a value still to be substituted is not judged.
        #expect(
            errors.last?.hasPrefix(
                "suite.yaml:7:74: profile \"staging\" uses the toxiproxy toxic backend, which must not be sent these attributes: slicer average_size 0 with size_variation 0 crashes"
            ) == true, "\(errors)")
    }

    @Test("a TLS proxy is refused at load under a Toxiproxy profile, naming it; the in-process profile takes it")
    func tlsProxyRefused() throws {
        let suite = """
            name: tls
            proxies:
              - {name: web, upstream: "127.0.0.1:8443", upstream_tls: {insecure: true}}
            experiments:
              - title: t
                method:
                  - {type: action, name: a, provider: {type: toxic, proxy: web, toxic: latency}}
                  - {type: action, name: b, provider: {type: proxy.create, name: x, upstream: "127.0.0.1:1", tls: {self_signed: true}}}
            profiles:
              local: {default: true}
              staging: {toxics: {backend: toxiproxy, url: "http://127.0.0.1:1"}}
            """
        #expect(try validationErrors(suite, profiles: ["local"]).isEmpty)
        let errors = try validationErrors(suite, profiles: ["staging"])
        #expect(
            errors.contains {
                $0.hasPrefix(
                    "suite.yaml:3:59: profile \"staging\" uses the toxiproxy toxic backend, which cannot run a TLS proxy: a Toxiproxy server proxies plain TCP only"
                )
            }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("suite.yaml:8:103: profile \"staging\"") && $0.contains("which cannot run a TLS proxy") }, "\(errors)")
        // The hint names the registered default backend (the kernel names none itself).
        #expect(errors.allSatisfy { $0.contains("run with a profile whose toxics backend is inprocess (the default)") }, "\(errors)")
    }
}

/// Runs a suite written from text in-process, with the real plugins.
func runSuite(_ yaml: String, environment: [String: String] = [:], interruption: Interruption = Interruption()) async throws -> SuiteRunner.Result {
    let scratch = try ScratchDirectory()
    let file = try scratch.write("suite.yaml", yaml)
    var options = SuiteRunner.Options()
    options.journalPath = scratch.path("journals")
    options.environment = environment
    options.seed = 1
    let runner = SuiteRunner(registry: testRegistry())
    return await runner.run(try runner.load(path: file, options: options), interruption: interruption)
}

/// The registry the tests run with: the toxic activities, both backends and the process provider.
func testRegistry() -> PluginRegistry {
    PluginRegistry(plugins: [ToxicActionsPlugin.self, ProxyPlugin.self, ToxiproxyPlugin.self])
}

/// Loads a suite under each profile and returns the validation errors, file paths shortened.
func validationErrors(_ yaml: String, profiles: [String?] = [nil]) throws -> [String] {
    let scratch = try ScratchDirectory()
    let file = try scratch.write("suite.yaml", yaml)
    let runner = SuiteRunner(registry: testRegistry())
    var errors: [String] = []
    for profile in profiles {
        var options = SuiteRunner.Options()
        options.profile = profile
        do {
            _ = try runner.load(path: file, options: options)
        } catch let error as ValidationError {
            errors += error.errors.map { $0.description.replacingOccurrences(of: file, with: "suite.yaml") }
        }
    }
    return errors
}
