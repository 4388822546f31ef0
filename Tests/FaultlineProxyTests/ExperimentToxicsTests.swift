import FaultlineKit
import FaultlineProxy
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// `test.echo`: one round trip through a port, in milliseconds (what an experiment would observe).
struct EchoProbe: Probe {
    static let type = "test.echo"
    static let summary = "Round trip of a few bytes through a TCP port"

    struct Arguments: Codable, Sendable {
        var port: Int
    }

    func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let (seconds, echoed) = try await blocking {
            let socket = try TestSocket(port: arguments.port, timeout: 5)
            defer { socket.close() }
            let start = monotonicSeconds()
            try socket.send("ping")
            let (bytes, _) = socket.receive(count: 4)
            return (monotonicSeconds() - start, String(decoding: bytes, as: UTF8.self))
        }
        guard echoed == "ping" else { throw ActivityFailure("no echo through port \(arguments.port)") }
        return .double(seconds * 1000)
    }
}

/// `test.toxics`: the names of a proxy's toxics, as the run's toxic backend lists them.
struct ToxicsProbe: Probe {
    static let type = "test.toxics"
    static let summary = "The toxics of a proxy"

    struct Arguments: Codable, Sendable {
        var proxy: String
    }

    func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        guard let backend = context.resources[ToxicBackendKey.self] else { throw ActivityFailure("no toxic backend") }
        return .array(try await backend.proxy(named: arguments.proxy).toxics.map { .string($0.name) })
    }
}

enum EchoProbePlugin: FaultlinePlugin {
    static let name = "test-echo"
    static func register(into registry: inout PluginRegistry) {
        registry.register(probe: EchoProbe())
        registry.register(probe: ToxicsProbe())
    }
}

/// Runs a suite file written from text with the real in-process proxy.
func runSuite(
    _ yaml: String, seed: UInt64 = 3, interruption: Interruption = Interruption(), observer: any RunObserver = SilentObserver(),
    plugins: [any FaultlinePlugin.Type] = []
) async throws -> SuiteRunner.Result {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-proxy-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("experiments.yaml").path
    try yaml.write(toFile: file, atomically: true, encoding: .utf8)
    var options = SuiteRunner.Options()
    options.journalPath = directory.appendingPathComponent("journals").path
    options.seed = seed
    var registry = PluginRegistry(plugins: [ProxyPlugin.self, ToxicActionsPlugin.self, EchoProbePlugin.self] + plugins)
    registry.register(probe: ScriptedProbe(kit: TestKit()))
    let runner = SuiteRunner(registry: registry, observer: observer)
    return await runner.run(try runner.load(path: file, options: options), interruption: interruption)
}

/// Loads a suite and returns its validation errors.
func validationErrors(_ yaml: String) throws -> [String] {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-proxy-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("experiment.yaml").path
    try yaml.write(toFile: file, atomically: true, encoding: .utf8)
    let runner = SuiteRunner(registry: PluginRegistry(plugins: [ProxyPlugin.self, ToxicActionsPlugin.self]))
    do {
        _ = try runner.load(path: file, options: SuiteRunner.Options())
        return []
    } catch let error as ValidationError {
        return error.errors.map { $0.description.replacingOccurrences(of: file, with: "experiment.yaml") }
    }
}

@Suite("Toxic activities in experiments, on the in-process backend")
struct ExperimentToxicsTests {
    @Test("toxics and downs apply, are recorded as faults, and are undone when the experiment ends")
    func lifecycle() async throws {
        let group = ProxyFixture.sharedGroup
        try await closing(TestTCPServer(.echo, group: group)) { upstream in
            let result = try await runSuite(
                """
                name: network faults
                proxies:
                  - {name: echo, upstream: "127.0.0.1:\(upstream.port)"}
                experiments:
                  - title: latency then down
                    method:
                      - {type: probe, name: before, provider: {type: test.echo, port: "${proxies.echo.port}"}}
                      - type: action
                        name: slow
                        provider: {type: toxic, proxy: echo, toxic: latency, attributes: {latency: 100}, stream: upstream}
                      - {type: probe, name: during, provider: {type: test.echo, port: "${proxies.echo.port}"}}
                      - {type: probe, name: toxics, provider: {type: test.toxics, proxy: echo}}
                      - {type: action, name: tune, provider: {type: toxic.update, proxy: echo, name: latency_upstream, attributes: {jitter: 1}}}
                      - {type: action, name: cut, provider: {type: toxic, proxy: echo, toxic: bandwidth, attributes: {rate: 1000}, name: thin}}
                      - {type: action, name: uncut, provider: {type: toxic.remove, proxy: echo, name: thin}}
                      - {type: action, name: down, provider: {type: proxy.disable, proxy: echo}}
                  - title: after the first experiment
                    method:
                      - {type: probe, name: after, provider: {type: test.echo, port: "${proxies.echo.port}"}}
                      - {type: probe, name: toxics, provider: {type: test.toxics, proxy: echo}}
                """)
            #expect(result.setupError == nil)
            let first = try #require(result.journals.first)
            #expect(first.outcome == .completed)
            let outputs = first.run.map { ($0.name, $0.output) }
            #expect(outputs.first { $0.0 == "before" }?.1?.doubleValue != nil)
            let during = try #require(outputs.first { $0.0 == "during" }?.1?.doubleValue)
            // The toxic adds at least its 100 ms (a lower bound only: a busy machine is slower).
            #expect(during >= 100)
            #expect(outputs.first { $0.0 == "toxics" }?.1 == ["latency_upstream"])
            #expect(
                first.cleanup.map(\.description) == ["enable proxy echo", "remove toxic thin from echo", "remove toxic latency_upstream from echo"])
            #expect(first.cleanup.allSatisfy { $0.status == .succeeded })
            let faults = first.faults.map(\.label)
            #expect(faults.contains("proxy echo down"))
            #expect(faults.contains { $0.hasPrefix("latency ") && $0.hasSuffix("on echo (upstream)") })
            #expect(first.faults.allSatisfy { $0.end != nil })

            // The next experiment sees the proxy up (the echo answers) and without toxics.
            let second = try #require(result.journals.last)
            #expect(second.outcome == .completed)
            #expect(second.run.map(\.status) == [.succeeded, .succeeded])
            #expect(second.run.last?.output == [])
        }
    }

    @Test("an interrupted run removes its toxics; one a rollback already removed counts as removed")
    func interrupted() async throws {
        try await closing(TestTCPServer(.echo, group: ProxyFixture.sharedGroup)) { upstream in
            let interruption = Interruption()
            let result = try await runSuite(
                """
                name: interrupted
                proxies:
                  - {name: echo, upstream: "127.0.0.1:\(upstream.port)"}
                experiments:
                  - title: held up
                    method:
                      - {type: action, name: slow, provider: {type: toxic, proxy: echo, toxic: latency, attributes: {latency: 50}}}
                      - {type: action, name: cut, provider: {type: toxic, proxy: echo, toxic: limit_data, attributes: {bytes: 10}}}
                      - {type: probe, name: wait, provider: {type: test.probe, delay: 30}}
                    rollbacks:
                      - {type: action, name: uncut, provider: {type: toxic.remove, proxy: echo, name: limit_data_downstream}}
                """, interruption: interruption, observer: InterruptWhenStarted("wait", interruption))
            #expect(result.interrupted)
            let journal = try #require(result.journals.first)
            #expect(journal.rollbacks.first?.status == .succeeded)
            #expect(
                journal.cleanup.map(\.description) == ["remove toxic limit_data_downstream from echo", "remove toxic latency_downstream from echo"])
            #expect(journal.cleanup.allSatisfy { $0.status == .succeeded })
            #expect(journal.faults.count == 2 && journal.faults.allSatisfy { $0.end != nil })
        }
    }

    @Test("a misspelt toxic type or attribute is a load error at its line and column")
    func loadErrors() throws {
        let errors = try validationErrors(
            """
            title: typos
            method:
              - type: action
                name: a
                provider: {type: toxic, proxy: db, toxic: latncy}
              - type: action
                name: b
                provider:
                  type: toxic
                  proxy: db
                  toxic: bandwidth
                  attributes: {rte: 100}
              - type: action
                name: c
                provider: {type: toxic, proxy: db, toxic: bandwidth, attributes: {rate: -1}}
              - type: action
                name: d
                provider: {type: toxic, proxy: db, toxic: slicer, attributes: {average_size: -1, size_variation: 10}}
              - type: action
                name: e
                provider: {type: toxic, proxy: db, toxic: latency, toxicity: 2}
            """)
        #expect(
            errors.contains("experiment.yaml:5:47: unknown toxic type \"latncy\" (did you mean \"latency\"?) at method[0].provider.toxic"),
            "\(errors)")
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:12:20: bandwidth: unknown key \"rte\" (did you mean \"rate\"?)") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:15:77:") && $0.contains("rate must be 0…") }, "\(errors)")
        #expect(errors.contains { $0.contains("average_size must be 0…") }, "\(errors)")
        #expect(errors.contains { $0.contains("toxicity must be 0…1, found") }, "\(errors)")
    }
}

/// Sends SIGINT (to the run) when an activity starts.
struct InterruptWhenStarted: RunObserver {
    let activity: String
    let interruption: Interruption

    init(_ activity: String, _ interruption: Interruption) {
        self.activity = activity
        self.interruption = interruption
    }

    func handle(_ event: RunEvent) {
        if case .activityStarted(let name, _, _, _) = event, name == activity { interruption.interrupt("SIGINT") }
    }
}

extension ProxyFixture {
    /// Event loops for tests that need only an upstream.
    static let sharedGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}

import NIOPosix
