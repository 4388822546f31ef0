#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import FaultlineKit
import Foundation
import Logging
import Synchronization

/// The services of one run: the suite's `services:` and what experiments start with
/// `process.start`. Activities find it in their resources under ``ServicesKey``.
public actor ServiceSupervisor {
    /// Who started a service, which decides what undoes a stop: a suite service that an
    /// experiment stopped is started again when the experiment ends; a service an experiment
    /// started is stopped when the experiment ends.
    public enum Owner: Sendable {
        case suite
        case experiment
    }

    public let runDirectory: String
    let logger: Logger
    /// The marker prefix of this supervisor's services (see ``ServiceMarker``).
    let markerPrefix: String
    private var services: [String: ManagedService] = [:]
    /// Start order, for stopping in reverse.
    private var order: [String] = []
    /// Log files this run has written: a later service of the same name appends to its log.
    private var logs: Set<String> = []
    private static let counter = Mutex(0)
    /// Stops the services if Faultline is killed outright; started with the first service.
    private var guardian: ServiceGuardian?

    /// The run's ledger, and the entry there for this supervisor's processes while any may run.
    private let ledger: RunLedger
    private var ledgerToken: LedgerToken?

    /// - Parameters:
    ///   - runDirectory: where `service-NAME.log` files go (beside the journals).
    ///   - ledger: the run's ledger, so that `faultline recover` stops services a killed run (and
    ///     its killed guardian) left running.
    public init(runDirectory: String, logger: Logger = Logger(label: "faultline.services"), ledger: RunLedger = .disabled) {
        self.runDirectory = runDirectory
        self.logger = logger
        self.ledger = ledger
        let number = Self.counter.withLock { n -> Int in
            n += 1
            return n
        }
        markerPrefix = "\(ServiceMarker.session)/\(number)/"
    }

    /// Starts a service and waits until it is ready.
    /// - Throws: ``ServiceError`` when it cannot start, exits during startup or is not ready in
    ///   time (it is stopped then); `CancellationError` when the task is cancelled (likewise).
    @discardableResult
    public func start(_ definition: ServiceDefinition, owner: Owner) async throws -> ServiceStart {
        if let existing = services[definition.name] {
            if await existing.isRunning {
                throw ServiceError(service: definition.name, message: "is already running (pid \(await existing.pid ?? 0))")
            }
            if existing.definition != definition || existing.owner != owner {
                throw ServiceError(
                    service: definition.name, message: "is already defined by the \(existing.owner == .suite ? "suite" : "experiment")")
            }
            return try await existing.start()
        }
        ChildRegistry.shared.adoptOrphans()
        if ledgerToken == nil { ledgerToken = ledger.record(MarkedProcesses(prefix: markerPrefix, what: "services")) }
        if guardian == nil { guardian = ServiceGuardian(markerPrefix: markerPrefix, logger: logger) }
        try? FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        let logPath = (runDirectory as NSString).appendingPathComponent("service-\(definition.name).log")
        let service = ManagedService(
            definition: definition, owner: owner, logPath: logPath, appendsToLog: logs.contains(logPath),
            markerPrefix: markerPrefix + definition.name + "/",
            logger: logger)
        logs.insert(logPath)
        services[definition.name] = service
        order.append(definition.name)
        do {
            return try await service.start()
        } catch {
            // A service that never came up is forgotten, so it can be defined again.
            services[definition.name] = nil
            order.removeAll { $0 == definition.name }
            throw error
        }
    }

    /// Starts a known service again (after a stop or a kill); a running one is left alone.
    public func restart(_ name: String) async throws -> ServiceStart {
        try await service(named: name).start()
    }

    /// Stops a service: its stop signal to its process group, SIGKILL after its grace, then
    /// anything it left behind.
    /// - Parameters:
    ///   - signal: overrides the service's `stop_signal`.
    ///   - grace: overrides its `stop_grace`.
    /// - Returns: how it ended, or nil when it was not running.
    @discardableResult
    public func stop(_ name: String, signal: Int32? = nil, grace: Double? = nil) async throws -> ServiceStop? {
        try await service(named: name).stop(signal: signal, grace: grace)
    }

    /// Stops an experiment's service and forgets it, so a later experiment may define it again.
    func remove(_ name: String) async {
        guard let service = services[name] else { return }
        _ = await service.stop(signal: nil, grace: nil)
        for problem in await service.takeProblems() { logger.warning("\(problem)") }
        services[name] = nil
        order.removeAll { $0 == name }
    }

    /// A service by name.
    /// - Throws: ``ServiceError`` naming the known services.
    public func service(named name: String) throws -> ManagedService {
        guard let service = services[name] else {
            let known = order
            throw ServiceError(
                service: name, message: "is not a service of this run",
                hint: known.isEmpty
                    ? "the run has no services" : Suggestion.didYouMean(name, in: known) ?? "services: \(known.joined(separator: ", "))")
        }
        return service
    }

    /// The service whose main process is `pid`, if any.
    public func service(forPID pid: pid_t) async -> ManagedService? {
        for name in order {
            if let service = services[name], await service.pid == pid { return service }
        }
        return nil
    }

    /// The names of the services, in start order.
    public var names: [String] { order }

    /// `{NAME: {pid, log, running}}` for the configuration (`${services.api.pid}`).
    public func exports() async -> Value {
        var object = ValueObject()
        for name in order {
            guard let service = services[name] else { continue }
            object[name] = await service.export
        }
        return .object(object)
    }

    /// Stops every service in reverse start order, then kills anything left with this run's
    /// marker. Idempotent.
    /// - Returns: problems worth a warning (unexpected exits, services that needed SIGKILL,
    ///   processes left behind).
    public func stopAll() async -> [String] {
        var problems: [String] = []
        for name in order.reversed() {
            guard let service = services[name] else { continue }
            _ = await service.stop(signal: nil, grace: nil)
            problems += await service.takeProblems()
        }
        let strays = await ServiceMarker.sweep(prefix: markerPrefix, excluding: ChildRegistry.shared.live)
        if !strays.isEmpty {
            problems.append(
                "killed \(strays.count) process\(strays.count == 1 ? "" : "es") the services left running: "
                    + strays.map { "\($0.pid) (\($0.commandLine))" }.joined(separator: ", "))
        }
        guardian?.release()
        guardian = nil
        if let token = ledgerToken {
            ledger.remove(token)
            ledgerToken = nil
        }
        return problems
    }
}

/// What starting a service did.
public struct ServiceStart: Sendable {
    public var pid: pid_t
    /// False when it was running already.
    public var started: Bool
    /// Seconds from spawn to ready.
    public var readyAfter: Double
    public var logPath: String
}

/// How a service stopped.
public struct ServiceStop: Sendable {
    public var pid: pid_t
    public var termination: ChildProcess.Termination
    /// True when it outlived its grace and got SIGKILL.
    public var killed: Bool
    public var seconds: Double
}

/// A service could not start, or does not exist.
public struct ServiceError: Error, Sendable, CustomStringConvertible {
    public var service: String
    public var message: String
    public var hint: String?
    /// The last lines of its output, for a service that failed to start.
    public var lastLines: [String]
    public var logPath: String?

    public init(service: String, message: String, hint: String? = nil, lastLines: [String] = [], logPath: String? = nil) {
        self.service = service
        self.message = message
        self.hint = hint
        self.lastLines = lastLines
        self.logPath = logPath
    }

    /// The error as an activity's failure: one line, and the log lines as details.
    func activityFailure(output: Value? = nil) -> ActivityFailure {
        var details: [String] = []
        if let logPath, !lastLines.isEmpty { details = ["last lines of \(logPath):"] + lastLines }
        return ActivityFailure("service \"\(service)\" \(message)" + (hint.map { " (\($0))" } ?? ""), details: details, output: output)
    }

    public var description: String {
        var text = "service \"\(service)\" \(message)"
        if let hint { text += " (\(hint))" }
        if let logPath {
            if lastLines.isEmpty {
                text += "; it wrote nothing (log: \(logPath))"
            } else {
                text += "; last lines of \(logPath):\n" + lastLines.map { "  | \($0)" }.joined(separator: "\n")
            }
        }
        return text
    }
}

/// One service and its current process. Restarts replace the process; the log file continues.
public actor ManagedService {
    public let definition: ServiceDefinition
    public let owner: ServiceSupervisor.Owner
    public let logPath: String
    let markerPrefix: String
    let logger: Logger
    private var child: ChildProcess?
    /// Watches the current process for an exit nobody asked for.
    private var monitor: Task<Void, Never>?
    private var starts = 0
    /// Set before a stop or a kill Faultline makes, so the exit is not reported as a crash.
    private var exitExpected = false
    /// The process that passed its readiness check: an exit before that fails the start instead.
    private var readyProcess: ChildProcess?
    private var problems: [String] = []

    /// Whether the log holds an earlier service's lines from this run (else a start truncates
    /// what an earlier run left).
    private let appendsToLog: Bool

    init(definition: ServiceDefinition, owner: ServiceSupervisor.Owner, logPath: String, appendsToLog: Bool, markerPrefix: String, logger: Logger) {
        self.definition = definition
        self.owner = owner
        self.logPath = logPath
        self.appendsToLog = appendsToLog
        self.markerPrefix = markerPrefix
        self.logger = logger
    }

    public nonisolated var name: String { definition.name }

    /// The main process's pid while it runs.
    public var pid: pid_t? {
        guard let child, child.termination == nil else { return nil }
        return child.pid
    }

    public var isRunning: Bool { pid != nil }

    var export: Value {
        ["pid": .int(Int(child?.pid ?? 0)), "log": .string(logPath), "running": .bool(isRunning)]
    }

    /// How the current (or last) process ended; waits for the reaper when the process just
    /// exited.
    public func lastTermination() async -> ChildProcess.Termination? {
        guard let child else { return nil }
        return await child.wait()
    }

    /// Notes that Faultline is about to end the service, so that its exit is no crash.
    public func expectExit() { exitExpected = true }

    func takeProblems() -> [String] {
        defer { problems.removeAll() }
        return problems
    }

    /// Starts the service unless it runs, and waits for its readiness check.
    func start() async throws -> ServiceStart {
        if let pid { return ServiceStart(pid: pid, started: false, readyAfter: 0, logPath: logPath) }
        // Remnants of an earlier start (a daemon, a group member that outlived its leader) would
        // hold its port.
        await clearRemnants(reportingAs: nil)
        starts += 1
        let settings = definition.settings
        let log: ServiceLog
        do {
            log = try ServiceLog(path: logPath, truncate: starts == 1 && !appendsToLog)
        } catch {
            throw ServiceError(service: name, message: "cannot write its log \(logPath): \(error)")
        }
        // A port that answers before the service runs belongs to another program: the service
        // would fail to bind it, and its readiness check would pass on the other program.
        if let (host, port) = settings.ready?.check?.address, await Self.accepts(host: host, port: port) {
            throw ServiceError(
                service: name,
                message: "cannot start: \(host):\(port), where its readiness check looks, already accepts connections before it runs; "
                    + "another program holds the port (stop it, or give the service a port from {type: free_port})")
        }
        let watch: LineWatch? = if case .log(let pattern)? = settings.ready?.check { try? LineWatch(pattern: pattern) } else { nil }
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in settings.env { environment[key] = value }
        environment[ServiceMarker.variable] = markerPrefix + String(starts)
        let process: ChildProcess
        do {
            let executable = try settings.resolvedExecutable(environment: environment)
            let onLine: @Sendable (String) -> Void = { [watch] line in
                log.write(line)
                watch?.offer(line)
            }
            process = try ChildProcess(
                executable: executable, arguments: Array((settings.command ?? []).dropFirst()), environment: environment,
                workingDirectory: settings.cwd,
                stdout: .lines(onLine), stderr: .lines(onLine))
        } catch {
            throw ServiceError(service: name, message: "cannot start: \(error)")
        }
        child = process
        exitExpected = false
        log.note("started pid \(process.pid): \((settings.command ?? []).joined(separator: " "))")
        logger.debug("service \(name) started (pid \(process.pid))")
        monitor = Task { await self.watchExit(of: process, log: log) }

        let started = ContinuousClock.now
        guard let ready = settings.ready, let check = ready.check else {
            readyProcess = process
            return ServiceStart(pid: process.pid, started: true, readyAfter: 0, logPath: logPath)
        }
        enum Startup: Sendable {
            case ready
            case exited(ChildProcess.Termination)
            case notReady(String)
            case cancelled
        }
        let outcome = await withTaskGroup(of: Startup.self) { group in
            group.addTask { await process.waitUnlessCancelled().map { .exited($0) } ?? .cancelled }
            group.addTask {
                let failure = await ReadinessWaiter.wait(check, timeout: ready.timeout, logWatch: watch)
                if Task.isCancelled { return .cancelled }
                return failure.map { .notReady($0) } ?? .ready
            }
            let first = await group.next() ?? .cancelled
            group.cancelAll()
            return first
        }
        switch outcome {
        case .ready:
            readyProcess = process
            let seconds = (ContinuousClock.now - started).seconds
            log.note("ready after \(Self.format(seconds)) s (\(ready.summary))")
            return ServiceStart(pid: process.pid, started: true, readyAfter: seconds, logPath: logPath)
        case .exited(let termination):
            exitExpected = true
            _ = await process.collectedOutput()  // the last lines may still be in the pipes
            await clearRemnants(reportingAs: nil)
            throw ServiceError(service: name, message: "exited during startup (\(termination))", lastLines: process.lastLines(), logPath: logPath)
        case .notReady(let reason):
            _ = await stop(signal: nil, grace: nil)
            throw ServiceError(
                service: name, message: "was not ready after \(Self.format(ready.timeout)) s (\(reason)); it was stopped",
                lastLines: process.lastLines(),
                logPath: logPath)
        case .cancelled:
            _ = await stop(signal: nil, grace: nil)
            throw CancellationError()
        }
    }

    /// Stops the service (see ``ServiceSupervisor/stop(_:signal:grace:)``). Not cancellable: a
    /// stop always finishes, bounded by the grace.
    func stop(signal: Int32?, grace: Double?) async -> ServiceStop? {
        // A process that already ended on its own (perhaps not reaped yet) is not stopped by us:
        // let the monitor record how it ended.
        guard let child, child.termination == nil, let now = SystemProcess.read(child.pid), !now.isZombie else {
            await monitor?.value
            await clearRemnants(reportingAs: nil)
            return nil
        }
        exitExpected = true
        let settings = definition.settings
        let stopSignal = signal ?? SignalName.number(settings.stopSignal) ?? SIGTERM
        let grace = grace ?? settings.stopGrace
        let began = ContinuousClock.now
        // An unstructured task: the stop runs its full grace even when the caller was cancelled.
        let (termination, killed) = await Task { await child.stop(signal: stopSignal, grace: grace) }.value
        let seconds = (ContinuousClock.now - began).seconds
        if killed {
            problems.append("service \"\(name)\" did not stop within \(Self.format(grace)) s of \(SignalName.name(of: stopSignal)); it was killed")
        }
        await clearRemnants(reportingAs: "when it stopped")
        logger.debug("service \(name) stopped: \(termination)")
        return ServiceStop(pid: child.pid, termination: termination, killed: killed, seconds: seconds)
    }

    /// Kills whatever earlier starts left: processes with the service's marker. (Not by process
    /// group: once its members are gone, a group id may name someone else's group.)
    /// - Parameter reportingAs: when set, leftovers are a problem worth a warning.
    private func clearRemnants(reportingAs moment: String?) async {
        let killed = await ServiceMarker.sweep(prefix: markerPrefix, excluding: ChildRegistry.shared.live)
        // Members of the service's own group got their KILL with it and may not have died yet;
        // only processes that left the group were left behind.
        let strays = killed.filter { $0.processGroup != child?.pid }
        guard !strays.isEmpty else { return }
        let list = strays.map { "\($0.pid) (\($0.commandLine))" }.joined(separator: ", ")
        if let moment {
            problems.append("service \"\(name)\" left \(strays.count) process\(strays.count == 1 ? "" : "es") running \(moment); killed: \(list)")
        } else {
            logger.debug("service \(name): killed leftover processes \(list)")
        }
    }

    private func watchExit(of process: ChildProcess, log: ServiceLog) async {
        let termination = await process.wait()
        log.note("pid \(process.pid) \(termination)")
        guard child === process, readyProcess === process, !exitExpected else { return }
        _ = await process.collectedOutput()
        let lines = process.lastLines(5)
        let message =
            "service \"\(name)\" (pid \(process.pid)) \(termination) during the run"
            + (lines.isEmpty ? "" : "; last lines: " + lines.joined(separator: " ⏎ "))
        problems.append(message)
        logger.warning("\(message)")
    }

    /// Whether something accepts TCP connections on `host:port` now.
    static func accepts(host: String, port: Int) async -> Bool {
        await onThread {
            guard case .success(let connection) = SocketConnection.open(host: host, port: port, timeout: 0.5) else { return false }
            connection.disconnect()
            return true
        }
    }

    static func format(_ seconds: Double) -> String {
        Substitution.interpolated(.double((seconds * 1000).rounded() / 1000))
    }
}

/// A service's log file: its stdout and stderr lines, and a note at each start and exit.
final class ServiceLog: Sendable {
    let path: String
    private let fd: Mutex<Int32>

    init(path: String, truncate: Bool) throws {
        self.path = path
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0o644)
        guard descriptor >= 0 else { throw SpawnError(executable: path, reason: String(cString: strerror(errno))) }
        fd = Mutex(descriptor)
    }

    deinit {
        fd.withLock { _ = close($0) }
    }

    /// Appends one line of the service's output.
    func write(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        fd.withLock { writeAll($0, bytes) }
    }

    /// Appends a line of Faultline's own, marked so it cannot pass for the service's output.
    func note(_ text: String) {
        write("[faultline \(Timestamp.now().text)] \(text)")
    }
}

private func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return }
        offset += n
    }
}

/// Where activities find the run's ``ServiceSupervisor``.
public enum ServicesKey: ResourceKey {
    public typealias Value = ServiceSupervisor
}
