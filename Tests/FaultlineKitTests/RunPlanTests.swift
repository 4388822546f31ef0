import FaultlineKit
import FaultlineTesting
import Foundation
import Synchronization
import Testing

/// A configuration type that gives a new number on every call and counts the calls.
final class FreshNumbers: ConfigurationProvider {
    let type = "fresh"
    let calls = Mutex(0)

    func value(for node: SourceNode, key: String) throws -> Value {
        .int(
            calls.withLock {
                $0 += 1; return $0
            })
    }

    var count: Int { calls.withLock { $0 } }
}

/// Records what the run extensions of a test did, in order.
final class ExtensionLog: Sendable {
    private let entries = Mutex<[String]>([])

    func record(_ entry: String) { entries.withLock { $0.append(entry) } }

    var all: [String] { entries.withLock { $0 } }
}

/// A run extension that records its start and stop; it may fail, or interrupt the run, as it starts.
struct RecordingExtension: RunExtension {
    enum Behaviour: Sendable { case start, fail, interrupt(Interruption) }

    let name: String
    let stage: RunStage
    let log: ExtensionLog
    var behaviour = Behaviour.start
    var exports: [String: Value] = [:]

    var suiteKeys: [String] { [name] }

    func placeholders(_ sections: RunSections) -> [String: Value] { exports }

    func plan(_ sections: RunSections, context: RunPlanContext, sink: DiagnosticSink) -> Int? {
        guard let node = sections[name] else { return 0 }
        _ = try? context.substitution.substitute(node, path: sections.path(of: name), sink: sink)
        return sink.hasErrors ? nil : 1
    }

    func start(_ plan: Int, setup: RunSetup) async throws -> (any RunExtensionHandle)? {
        log.record("start \(name)")
        switch behaviour {
        case .start: break
        case .fail: throw ActivityFailure("boom")
        case .interrupt(let interruption):
            interruption.interrupt("SIGINT")
            try await Task.sleep(for: .seconds(600))
        }
        for (key, value) in exports { setup.export(key, value) }
        return Handle(name: name, log: log)
    }

    struct Handle: RunExtensionHandle {
        let name: String
        let log: ExtensionLog

        func stop() async -> [String] {
            log.record("stop \(name)")
            return []
        }
    }
}

/// A toxic backend factory under a name of the test's choosing, recording that it made its backend.
final class NamedBackendFactory: ToxicBackendFactory {
    let name: String
    let backend = InMemoryToxicBackend()
    let made = Mutex(false)

    init(name: String) { self.name = name }

    func makeBackend(options: SourceNode?, context: BackendContext) async throws -> any ToxicBackend {
        made.withLock { $0 = true }
        return backend
    }
}

@Suite("The run plan and its lifecycle")
struct RunPlanTests {
    let scratch: ScratchDirectory

    init() throws { scratch = try ScratchDirectory() }

    func load(_ yaml: String, registry: PluginRegistry) throws -> (SuiteRunner, RunPlan) {
        let file = try scratch.write("experiments.yaml", yaml)
        var options = SuiteRunner.Options()
        options.journalPath = scratch.path("journals")
        let runner = SuiteRunner(registry: registry)
        return (runner, try runner.load(path: file, options: options))
    }

    @Test("the plan computes each plugin-defined value once: the run, its proxies' exports and the command line read the plan, never resolve again")
    func resolvedOnce() async throws {
        let kit = TestKit()
        let fresh = FreshNumbers()
        var registry = kit.registry()
        registry.register(configurationProvider: fresh)
        let (runner, plan) = try load(
            """
            name: s
            configuration: {shared: {type: fresh}}
            proxies: [{name: db, upstream: "127.0.0.1:5432"}]
            experiments:
              - title: one
                configuration: {own: {type: fresh}, url: "http://127.0.0.1:${proxies.db.port}/${own}"}
                method: [{type: action, name: a, provider: {type: test.action, label: "one ${shared} ${own} ${url}"}}]
              - title: two
                configuration: {own: {type: fresh}}
                method: [{type: action, name: a, provider: {type: test.action, label: "two ${shared} ${own}"}}]
            """, registry: registry)
        #expect(fresh.count == 3)
        let shared = try #require(plan.shared.configuration["shared"])
        let own = plan.experiments.map { $0.configuration.configuration["own"] }
        _ = plan.redactor
        let result = await runner.run(plan)
        #expect(result.exitCode == 0)
        #expect(fresh.count == 3)
        // Validation and the run saw the same values; only the proxy's port changed, to the bound one.
        #expect(kit.log == ["one \(shared) \(own[0]!) http://127.0.0.1:20001/\(own[0]!)", "two \(shared) \(own[1]!)"])
        #expect(plan.experiments[0].configuration.configuration["url"] == .string("http://127.0.0.1:1/\(own[0]!)"))
    }

    @Test("the plan's redactor knows every experiment's own secrets as well as the shared ones")
    func planRedactor() throws {
        let (_, plan) = try load(
            """
            name: s
            secrets: {shared: {key: suite-secret-4321}}
            experiments:
              - {title: one, secrets: {db: {password: experiment-secret-1234}}, method: []}
            """, registry: TestKit().registry())
        #expect(plan.redactor.redact("suite-secret-4321 and experiment-secret-1234") == "*** and ***")
        #expect(plan.shared.redactor.redact("experiment-secret-1234") == "experiment-secret-1234")
    }

    @Test("run extensions start stage by stage whatever the registration order, and stop in reverse")
    func stageOrder() async throws {
        let log = ExtensionLog()
        var registry = TestKit().registry()
        registry.register(extension: RecordingExtension(name: "late", stage: .services, log: log))
        registry.register(extension: RecordingExtension(name: "early", stage: .network, log: log))
        registry.register(extension: RecordingExtension(name: "later", stage: .services, log: log))
        #expect(registry.runExtensions.map(\.name) == ["toxic backend", "early", "late", "later"])
        let (runner, plan) = try load("name: s\nexperiments: [{title: t, method: []}]\n", registry: registry)
        let result = await runner.run(plan)
        #expect(result.exitCode == 0)
        #expect(log.all == ["start early", "start late", "start later", "stop later", "stop late", "stop early"])
    }

    @Test("what started is stopped when a later extension fails to start, and when an interrupt cuts start-up short")
    func stopOnEveryPath() async throws {
        for failing in ["fail", "interrupt"] {
            let log = ExtensionLog()
            let interruption = Interruption()
            var registry = TestKit().registry()
            registry.register(extension: RecordingExtension(name: "early", stage: .network, log: log))
            registry.register(
                extension: RecordingExtension(
                    name: "late", stage: .services, log: log, behaviour: failing == "fail" ? .fail : .interrupt(interruption)))
            let (runner, plan) = try load("name: s\nexperiments: [{title: t, method: []}]\n", registry: registry)
            let result = await runner.run(plan, interruption: interruption)
            #expect(log.all == ["start early", "start late", "stop early"], "\(failing)")
            #expect(result.journals.isEmpty)
            if failing == "fail" {
                #expect(result.setupError == "late: boom")
            } else {
                #expect(result.interrupted)
            }
        }
    }

    @Test("a network extension's sections cannot use what services export; services may use what the network exports")
    func stageVisibility() throws {
        let log = ExtensionLog()
        var registry = TestKit().registry()
        registry.register(extension: RecordingExtension(name: "late", stage: .services, log: log, exports: ["late_port": 1]))
        registry.register(extension: RecordingExtension(name: "early", stage: .network, log: log, exports: ["early_port": 1]))
        let error = try #require(throws: ValidationError.self) {
            _ = try load(
                """
                name: s
                early: {port: "${late_port}"}
                late: {port: "${early_port}"}
                experiments: [{title: t, method: []}]
                """, registry: registry)
        }
        #expect(error.errors.map(\.message) == ["unknown variable \"${late_port}\""], "\(error)")
    }

    @Test("the default toxic backend is whichever plugin registered as the default, and a profile may name another")
    func defaultBackend() async throws {
        let kit = TestKit()
        let other = NamedBackendFactory(name: "other")
        var registry = kit.registry()
        #expect(registry.defaultToxicBackend == "memory")
        registry.register(toxicBackend: other, isDefault: true)
        #expect(registry.defaultToxicBackend == "other")
        let suite = """
            name: s
            proxies: [{name: db, upstream: "127.0.0.1:5432"}]
            experiments: [{title: t, method: [{type: action, name: a, provider: {type: test.action, label: "${proxies.db.listen}"}}]}]
            profiles:
              plain: {default: true}
              memory: {toxics: {backend: memory}}
            """
        let (runner, plan) = try load(suite, registry: registry)
        #expect(await runner.run(plan).exitCode == 0)
        #expect(other.made.withLock { $0 })

        let unused = NamedBackendFactory(name: "other")
        var named = kit.registry()
        named.register(toxicBackend: unused, isDefault: true)
        let file = try scratch.write("experiments.yaml", suite)
        var options = SuiteRunner.Options()
        options.profile = "memory"
        options.journalPath = scratch.path("journals-memory")
        let memoryRunner = SuiteRunner(registry: named)
        #expect(await memoryRunner.run(try memoryRunner.load(path: file, options: options)).exitCode == 0)
        #expect(!unused.made.withLock { $0 })
        #expect(kit.log == ["127.0.0.1:20001", "127.0.0.1:20001"])
    }
}
