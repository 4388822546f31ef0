import FaultlineKit
import Foundation
import Synchronization

/// Fakes for tests: a scripted probe, a recording action, an in-memory toxic backend and a
/// recording observer, sharing one ``TestKit``.
///
/// ```swift
/// let kit = TestKit()
/// kit.script("health", [200, 503])          // test.probe {key: health} returns 200, then 503
/// let journal = try await kit.run(yaml: "…")
/// #expect(kit.log == ["inject", "undo inject"])
/// ```
public final class TestKit: Sendable {
    private struct State {
        var scripts: [String: [Value]] = [:]
        var log: [String] = []
        var barriers: [String: (count: Int, waiters: [CheckedContinuation<Void, Never>])] = [:]
    }
    private let state = Mutex(State())
    public let observer = RecordingObserver()
    public let backend = InMemoryToxicBackend()

    public init() {}

    /// A registry with the fakes (and any other plugins).
    public func registry(plugins: [any FaultlinePlugin.Type] = []) -> PluginRegistry {
        var registry = PluginRegistry(plugins: plugins)
        registry.register(probe: ScriptedProbe(kit: self))
        registry.register(action: RecordingAction(kit: self))
        registry.register(toxicBackend: InMemoryToxicBackendFactory(backend: backend), isDefault: true)
        registry.register(extension: ToxicBackendExtension())
        return registry
    }

    /// Queues outputs for `test.probe {key: …}`; the last one repeats. A ``failure(_:)`` in the
    /// queue makes that call fail instead.
    public func script(_ key: String, _ outputs: [Value]) {
        state.withLock { $0.scripts[key] = outputs }
    }

    /// A scripted output that makes `test.probe` fail with `message` (connection refused, …).
    public static func failure(_ message: String) -> Value { ["test.probe.failure": .string(message)] }

    func nextOutput(_ key: String) -> Value? {
        state.withLock { s in
            guard var outputs = s.scripts[key], !outputs.isEmpty else { return nil }
            let next = outputs.count > 1 ? outputs.removeFirst() : outputs[0]
            s.scripts[key] = outputs
            return next
        }
    }

    /// What `test.action` did, in order (`label`, and `undo label` for cleanups).
    public var log: [String] { state.withLock { $0.log } }

    public func record(_ entry: String) { state.withLock { $0.log.append(entry) } }

    /// Waits until `count` activities reached the barrier `name`: only concurrent activities pass.
    func arrive(at name: String, count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let release = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                var barrier = s.barriers[name] ?? (count, [])
                barrier.waiters.append(continuation)
                if barrier.waiters.count >= barrier.count {
                    s.barriers[name] = nil
                    return barrier.waiters
                }
                s.barriers[name] = barrier
                return []
            }
            release.forEach { $0.resume() }
        }
    }

    /// Loads an experiment (or suite) from text and runs it with the fakes.
    /// - Parameters:
    ///   - yaml: the document.
    ///   - options: run options (journal path, strategies, dry mode).
    public func run(
        yaml: String, options: SuiteRunner.Options = SuiteRunner.Options(), plugins: [any FaultlinePlugin.Type] = [],
        interruption: Interruption = Interruption()
    ) async throws -> SuiteRunner.Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("experiment.yaml").path
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        var options = options
        if options.journalPath == nil { options.journalPath = directory.appendingPathComponent("journal").path }
        let runner = SuiteRunner(registry: registry(plugins: plugins), observer: observer)
        let prepared = try runner.load(path: file, options: options)
        return await runner.run(prepared, interruption: interruption)
    }
}

/// `test.probe`: returns scripted outputs, a fixed value, or fails; optionally waits first.
public struct ScriptedProbe: Probe {
    public static let type = "test.probe"
    public static let summary = "Test probe: returns a scripted or fixed value"

    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["delay": .seconds, "barrier_count": .count(1000)]
        /// Script key (see ``TestKit/script(_:_:)``).
        public var key: String?
        public var value: Value?
        /// Fail with this message.
        public var fail: String?
        /// Seconds to wait before answering (cancellable).
        public var delay: Double?
        /// Wait at this barrier with `barrier_count` others before answering.
        public var barrier: String?
        public var barrier_count: Int?
    }

    let kit: TestKit

    public init(kit: TestKit) { self.kit = kit }

    public func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        if let barrier = arguments.barrier { await kit.arrive(at: barrier, count: arguments.barrier_count ?? 2) }
        if let delay = arguments.delay { try await Task.sleep(for: .seconds(saturating: delay)) }
        if let fail = arguments.fail { throw ActivityFailure(fail) }
        if let key = arguments.key, let output = kit.nextOutput(key) {
            if let failure = output["test.probe.failure"]?.stringValue { throw ActivityFailure(failure) }
            return output
        }
        return arguments.value ?? .null
    }
}

/// `test.action`: records its label; optionally registers an undo, waits or fails.
public struct RecordingAction: Action {
    public static let type = "test.action"
    public static let summary = "Test action: records what it did"
    public static let handlesDryRun = false

    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["delay": .seconds, "cleanup_delay": .seconds, "barrier_count": .count(1000)]
        public var label: String
        public var fail: String?
        public var delay: Double?
        /// Register an undo that records `undo <label>`.
        public var cleanup: Bool?
        /// Seconds the undo takes (it records `undo <label> cancelled` when cut short).
        public var cleanup_delay: Double?
        /// Export this configuration value (`{key: value}`) to later activities.
        public var export: [String: Value]?
        public var barrier: String?
        public var barrier_count: Int?
        /// Record a fault window labelled with the label.
        public var fault: Bool?
        /// Write this line to the activity's logger (at info level).
        public var log: String?
    }

    let kit: TestKit

    public init(kit: TestKit) { self.kit = kit }

    public static func exports(_ arguments: Arguments) -> [String: Value] { arguments.export ?? [:] }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        kit.record(arguments.label)
        if let line = arguments.log { context.logger.info("\(line)") }
        if let barrier = arguments.barrier { await kit.arrive(at: barrier, count: arguments.barrier_count ?? 2) }
        if arguments.fault == true { context.beginFault(arguments.label, id: arguments.label) }
        if arguments.cleanup == true {
            let kit = self.kit
            let label = arguments.label
            let delay = arguments.cleanup_delay
            context.registerCleanup("undo \(label)") {
                kit.record("undo \(label)")
                if let delay {
                    do {
                        try await Task.sleep(for: .seconds(saturating: delay))
                    } catch {
                        kit.record("undo \(label) cancelled")
                        throw error
                    }
                }
                context.endFault(label)
            }
        }
        if let delay = arguments.delay {
            do {
                try await Task.sleep(for: .seconds(saturating: delay))
            } catch {
                kit.record("\(arguments.label) cancelled")
                throw error
            }
        }
        for (key, value) in arguments.export ?? [:] { context.export(key, value) }
        if let fail = arguments.fail { throw ActivityFailure(fail) }
        return ["label": .string(arguments.label)]
    }
}

/// Collects every run event.
public final class RecordingObserver: RunObserver, Sendable {
    private let events = Mutex<[RunEvent]>([])

    public init() {}

    public func handle(_ event: RunEvent) { events.withLock { $0.append(event) } }

    public var all: [RunEvent] { events.withLock { $0 } }

    /// Names of finished activities with their status, in order.
    public var finished: [(String, RecordStatus)] {
        all.compactMap { if case .activityFinished(let r) = $0 { (r.name, r.status) } else { nil } }
    }
}

/// A toxic backend that keeps proxies and toxics in memory: for tests not about the proxy.
public final class InMemoryToxicBackend: ToxicBackend, Sendable {
    private let proxiesByName = Mutex<[String: ProxyDefinition]>([:])
    private let nextPort = Mutex(20000)

    public init() {}

    public var description: String { "in-memory test backend" }

    public func proxies() async throws -> [ProxyDefinition] { proxiesByName.withLock { Array($0.values) }.sorted { $0.name < $1.name } }

    public func proxy(named name: String) async throws -> ProxyDefinition {
        guard let proxy = proxiesByName.withLock({ $0[name] }) else { throw ToxicBackendError.notFound("proxy \(name) not found") }
        return proxy
    }

    public func createProxy(_ proxy: ProxyDefinition) async throws -> ProxyDefinition {
        var created = proxy
        if proxy.listenPort == 0 {
            let port = nextPort.withLock { p -> Int in
                p += 1
                return p
            }
            created.listen = proxy.listen.replacingOccurrences(of: ":0", with: ":\(port)")
        }
        try proxiesByName.withLock { proxies in
            guard proxies[proxy.name] == nil else { throw ToxicBackendError.conflict("proxy \(proxy.name) already exists") }
            proxies[proxy.name] = created
        }
        return created
    }

    public func updateProxy(named name: String, listen: String?, upstream: String?, enabled: Bool?) async throws -> ProxyDefinition {
        try proxiesByName.withLock { proxies in
            guard var proxy = proxies[name] else { throw ToxicBackendError.notFound("proxy \(name) not found") }
            if let listen { proxy.listen = listen }
            if let upstream { proxy.upstream = upstream }
            if let enabled { proxy.enabled = enabled }
            proxies[name] = proxy
            return proxy
        }
    }

    public func deleteProxy(named name: String) async throws {
        try proxiesByName.withLock { proxies in
            guard proxies.removeValue(forKey: name) != nil else { throw ToxicBackendError.notFound("proxy \(name) not found") }
        }
    }

    public func addToxic(_ toxic: ToxicDefinition, to proxy: String) async throws -> ToxicDefinition {
        try proxiesByName.withLock { proxies in
            guard var p = proxies[proxy] else { throw ToxicBackendError.notFound("proxy \(proxy) not found") }
            guard !p.toxics.contains(where: { $0.name == toxic.name }) else { throw ToxicBackendError.conflict("toxic \(toxic.name) already exists") }
            p.toxics.append(toxic)
            proxies[proxy] = p
            return toxic
        }
    }

    public func updateToxic(named name: String, on proxy: String, attributes: Value?, toxicity: Double?) async throws -> ToxicDefinition {
        try proxiesByName.withLock { proxies in
            guard var p = proxies[proxy] else { throw ToxicBackendError.notFound("proxy \(proxy) not found") }
            guard let index = p.toxics.firstIndex(where: { $0.name == name }) else { throw ToxicBackendError.notFound("toxic \(name) not found") }
            if case .object(let changes)? = attributes, case .object(var current) = p.toxics[index].attributes {
                for (key, value) in changes { current[key] = value }
                p.toxics[index].attributes = .object(current)
            }
            if let toxicity { p.toxics[index].toxicity = toxicity }
            proxies[proxy] = p
            return p.toxics[index]
        }
    }

    public func removeToxic(named name: String, from proxy: String) async throws {
        try proxiesByName.withLock { proxies in
            guard var p = proxies[proxy] else { throw ToxicBackendError.notFound("proxy \(proxy) not found") }
            guard p.toxics.contains(where: { $0.name == name }) else { throw ToxicBackendError.notFound("toxic \(name) not found") }
            p.toxics.removeAll { $0.name == name }
            proxies[proxy] = p
        }
    }

    public func reset() async throws {
        proxiesByName.withLock { proxies in
            for name in proxies.keys {
                proxies[name]!.toxics = []
                proxies[name]!.enabled = true
            }
        }
    }

    public func shutdown() async {}
}

/// Serves one ``InMemoryToxicBackend`` as the `memory` backend (the default of ``TestKit``'s registry).
public struct InMemoryToxicBackendFactory: ToxicBackendFactory {
    public let name = "memory"
    let backend: InMemoryToxicBackend

    public init(backend: InMemoryToxicBackend) { self.backend = backend }

    public func makeBackend(options: SourceNode?, context: BackendContext) async throws -> any ToxicBackend { backend }
}

/// Executables `swift test` built beside the running tests (a test target that depends on an
/// executable target gets it built).
public enum BuiltProduct {
    /// The path of the executable product `name` (e.g. `faultline`), searched beside the test runner
    /// and in `.build/debug` of the package that holds `file`.
    /// - Throws: a message saying to build it, when it is not there.
    public static func path(_ name: String, file: String = #filePath) throws -> String {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        var root = URL(fileURLWithPath: file).deletingLastPathComponent()
        while root.path != "/" {
            if FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) { break }
            root = root.deletingLastPathComponent()
        }
        let fallback = root.appendingPathComponent(".build/debug/\(name)").path
        guard FileManager.default.isExecutableFile(atPath: fallback) else {
            throw ActivityFailure("\(name) is not built (looked beside the test runner and at \(fallback)); run swift build")
        }
        return fallback
    }
}

/// A temporary directory for one test, removed when the value goes away.
public final class ScratchDirectory: Sendable {
    public let url: URL

    /// - Parameter prefix: the start of the directory's name, to tell tests apart in /tmp.
    public init(prefix: String = "faultline-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// The path of `name` inside the directory.
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes a file (creating directories on the way) and returns its path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        let path = path(name)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    public func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }
}

/// Chaos Toolkit itself — `chaos` 1.19 with chaostoolkit-lib 1.44 and jsonpath2, in the venv
/// `.ci/run` creates (`Tests/FaultlineProxyTests/Resources/setup-chaostoxi-venv.sh`) — as the
/// oracle for tests that compare Faultline's behaviour with Chaos Toolkit's.
///
/// Tests that need it carry `.enabled(if: ChaosToolkitOracle.isAvailable, ChaosToolkitOracle.missing)`:
/// outside CI without the venv they are skipped with that message; in CI (`CI` set) they run and
/// fail on `try ChaosToolkitOracle.require()`, so a missing venv is never a silent pass.
public enum ChaosToolkitOracle {
    /// The venv's directory: `FAULTLINE_CHAOSTOOLKIT_VENV`, or `.build/chaostoxi-venv` of this package.
    public static let venv: String = {
        if let override = ProcessInfo.processInfo.environment["FAULTLINE_CHAOSTOOLKIT_VENV"] { return override }
        var root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while root.path != "/", !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root = root.deletingLastPathComponent()
        }
        return root.appendingPathComponent(".build/chaostoxi-venv").path
    }()

    public static var python: String { venv + "/bin/python" }
    public static var chaos: String { venv + "/bin/chaos" }

    /// Whether the venv has Chaos Toolkit.
    public static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: chaos) }

    /// Whether tests that need the oracle should run: it is installed, or this is CI (where its
    /// absence must fail, not skip).
    public static var isAvailable: Bool { isInstalled || ProcessInfo.processInfo.environment["CI"] != nil }

    public static let missing =
        "Chaos Toolkit is not installed: run Tests/FaultlineProxyTests/Resources/setup-chaostoxi-venv.sh (.ci/run does), or set FAULTLINE_CHAOSTOOLKIT_VENV"

    /// Fails the calling test when the oracle is missing.
    public static func require() throws {
        guard isInstalled else { throw ActivityFailure(missing + " (looked for \(chaos))") }
    }

    /// Runs a Python script with the venv's interpreter, `input` on its stdin.
    /// - Returns: what it printed on stdout.
    /// - Throws: its stderr when it exits non-zero.
    public static func runPython(_ script: String, input: String = "") throws -> String {
        try require()
        let result = try run(python, ["-c", script], input: input, in: nil, environment: [:])
        guard result.status == 0 else { throw ActivityFailure("python exited \(result.status): \(result.stderr.suffix(2000))") }
        return result.stdout
    }

    /// What `chaos run` did with one experiment.
    public struct Run: Sendable {
        public var status: Int32
        /// The journal it wrote, or nil (Chaos Toolkit writes none when the experiment does not load).
        public var journal: Value?
        public var output: String
    }

    /// Runs `chaos run` on an experiment file in `directory`, with `environment` added.
    public static func chaosRun(_ experiment: String, in directory: String, environment: [String: String] = [:]) throws -> Run {
        try require()
        let journal = directory + "/chaos-journal-\(UUID().uuidString).json"
        let result = try run(
            chaos, ["--no-version-check", "--no-log-file", "run", "--journal-path", journal, experiment], input: "", in: directory,
            environment: environment)
        let value = (try? String(contentsOfFile: journal, encoding: .utf8)).flatMap { try? JSONReader.value($0) }
        return Run(status: result.status, journal: value, output: result.stdout + result.stderr)
    }

    private static func run(
        _ executable: String, _ arguments: [String], input: String, in directory: String?, environment: [String: String]
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var env = ProcessInfo.processInfo.environment
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Read stderr on another thread while stdout is read here, so that neither pipe fills up.
        let err = Mutex(Data())
        let stderrRead = DispatchSemaphore(value: 0)
        Thread {
            let data = stderr.fileHandleForReading.readDataToEndOfFile()
            err.withLock { $0 = data }
            stderrRead.signal()
        }.start()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        stderrRead.wait()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err.withLock { $0 }, as: UTF8.self))
    }
}
