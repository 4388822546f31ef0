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
    nonisolated let markerPrefix: String
    /// The marker prefix of its services on other hosts: one that no local sweep selects.
    nonisolated let remoteMarkerPrefix: String
    /// The run's ssh connections, for services and activities on other hosts.
    let remote: RemoteShells
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
        remoteMarkerPrefix = "\(ServiceMarker.session)/ssh/\(number)/"
        // "+" is in no service's name, so a service's sweep never ends the ssh processes.
        remote = RemoteShells(localMarker: markerPrefix + "+")
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
        guardMarkedProcesses()
        try? FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        let logPath = (runDirectory as NSString).appendingPathComponent("service-\(definition.name).log")
        let service = ManagedService(
            definition: definition, owner: owner, logPath: logPath, appendsToLog: logs.contains(logPath),
            markerPrefix: markerPrefix + definition.name + "/",
            remote: ManagedService.RemoteContext(markerPrefix: remoteMarkerPrefix + definition.name + "/", shells: remote, ledger: ledger),
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

    /// The ledger entry and the guardian for this supervisor's marked processes on this machine
    /// (services, and the ssh clients of remote ones), once.
    private func guardMarkedProcesses() {
        if ledgerToken == nil { ledgerToken = ledger.record(MarkedProcesses(prefix: markerPrefix, what: "services")) }
        if guardian == nil { guardian = ServiceGuardian(markerPrefix: markerPrefix, logger: logger) }
    }

    /// The run's ssh connections; the first use starts the guardian, which ends them if
    /// Faultline is killed.
    public func remoteShells() -> RemoteShells {
        guardMarkedProcesses()
        return remote
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
            if let service = services[name], service.definition.settings.host == nil, await service.pid == pid { return service }
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
        await remote.closeAll()
        // A master told to exit may not have yet: ssh processes are the run's own, not strays.
        _ = await ServiceMarker.sweep(prefix: remote.localMarker, excluding: ChildRegistry.shared.live)
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

    /// What a service on another host needs: its marker there, the run's ssh connections, the
    /// ledger that lets `faultline recover` stop it.
    struct RemoteContext: Sendable {
        var markerPrefix: String
        var shells: RemoteShells
        var ledger: RunLedger
    }

    let remote: RemoteContext
    /// On another host: the main process there (the local child is its ssh session).
    private var remoteProcess: (pid: pid_t, startTime: UInt64)?
    /// The write end of the ssh session's input: closing it ends the service there.
    private var remoteInput: Int32?
    private var remoteToken: LedgerToken?

    init(
        definition: ServiceDefinition, owner: ServiceSupervisor.Owner, logPath: String, appendsToLog: Bool, markerPrefix: String,
        remote: RemoteContext, logger: Logger
    ) {
        self.definition = definition
        self.owner = owner
        self.logPath = logPath
        self.appendsToLog = appendsToLog
        self.markerPrefix = markerPrefix
        self.remote = remote
        self.logger = logger
    }

    public nonisolated var name: String { definition.name }

    /// The main process's pid while it runs (on its host).
    public var pid: pid_t? {
        guard let child, child.termination == nil else { return nil }
        return remoteProcess?.pid ?? child.pid
    }

    public var isRunning: Bool { pid != nil }

    var export: Value {
        ["pid": .int(Int(remoteProcess?.pid ?? child?.pid ?? 0)), "log": .string(logPath), "running": .bool(isRunning)]
    }

    /// Where it runs, for messages: empty, or ` on ssh://…`.
    private var whereabouts: String { definition.settings.host.map { " on \($0.display)" } ?? "" }

    /// How the current (or last) process ended; waits for the reaper when the process just
    /// exited.
    public func lastTermination() async -> ChildProcess.Termination? {
        guard let child else { return nil }
        return await child.wait()
    }

    /// On another host: waits (at most `timeout` seconds) for the ssh session of a service whose
    /// process there has ended, so that it no longer counts as running.
    func awaitSessionEnd(timeout: Double) async {
        guard definition.settings.host != nil, let child else { return }
        _ = await child.wait(timeout: timeout)
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
        if let host = settings.host {
            process = try await spawnRemote(host, log: log, watch: watch)
        } else {
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
        }
        child = process
        exitExpected = false
        let mainPID = remoteProcess?.pid ?? process.pid
        log.note("started pid \(mainPID)\(whereabouts): \((settings.command ?? []).joined(separator: " "))")
        logger.debug("service \(name) started (pid \(mainPID)\(whereabouts))")
        monitor = Task { await self.watchExit(of: process, log: log) }

        let started = ContinuousClock.now
        guard let ready = settings.ready, let check = ready.check else {
            readyProcess = process
            return ServiceStart(pid: mainPID, started: true, readyAfter: 0, logPath: logPath)
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
            return ServiceStart(pid: mainPID, started: true, readyAfter: seconds, logPath: logPath)
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
            closeRemoteSession()
            return nil
        }
        exitExpected = true
        let settings = definition.settings
        let stopSignal = signal ?? SignalName.number(settings.stopSignal) ?? SIGTERM
        let grace = grace ?? settings.stopGrace
        let began = ContinuousClock.now
        if let host = settings.host {
            return await stopRemote(child, host: host, signal: stopSignal, grace: grace, began: began)
        }
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
        if let host = definition.settings.host {
            // Nothing can be left before the first start.
            guard starts > 0 || moment != nil else { return }
            do {
                let killed = try await Remote.sweep(prefix: remote.markerPrefix, host: host, grace: 0, shells: remote.shells)
                if !killed.isEmpty, let moment {
                    problems.append(
                        "service \"\(name)\" left \(killed.count) process(es) running on \(host.display) \(moment); killed: \(killed.joined(separator: ", "))"
                    )
                }
                if let token = remoteToken {
                    remote.ledger.remove(token)
                    remoteToken = nil
                }
            } catch {
                problems.append("service \"\(name)\" on \(host.display): could not check for leftovers (\(error)); faultline recover retries")
            }
            return
        }
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

    /// Starts the service on another host through the run's ssh connection, and waits until the
    /// host reports its pid.
    private func spawnRemote(_ host: RemoteHost, log: ServiceLog, watch: LineWatch?) async throws -> ChildProcess {
        let settings = definition.settings
        let marker = remote.markerPrefix + String(starts)
        // In the ledger before it starts: the guardian cannot reach another host.
        if remoteToken == nil {
            remoteToken = remote.ledger.record(RemoteProcesses(host: host.absolute, prefix: remote.markerPrefix, what: "service \(name)"))
        }
        let tag = "faultline-started:" + marker
        let announced = OneShot<(pid_t, UInt64)?>()
        let onLine: @Sendable (String) -> Void = { [watch] line in
            log.write(line)
            watch?.offer(line)
        }
        let onErrorLine: @Sendable (String) -> Void = { [watch] line in
            if line.hasPrefix(tag + " ") {
                let fields = line.dropFirst(tag.count + 1).split(separator: " ")
                if fields.count == 2, let pid = pid_t(fields[0]), let start = UInt64(fields[1]) { announced.resume((pid, start)) }
                return
            }
            log.write(line)
            watch?.offer(line)
        }
        let pipe: (read: Int32, write: Int32)
        let process: ChildProcess
        do {
            pipe = try RemoteCommand.inputPipe()
            do {
                process = try await remote.shells.spawn(
                    host, "run",
                    RemoteCommand.arguments(
                        tag: tag, marker: marker, workingDirectory: settings.cwd, environment: settings.env, argv: settings.command ?? []),
                    standardInput: pipe.read, stdout: .lines(onLine), stderr: .lines(onErrorLine))
            } catch {
                close(pipe.read)
                close(pipe.write)
                throw error
            }
        } catch {
            throw ServiceError(service: name, message: "cannot start on \(host.display): \(error)")
        }
        close(pipe.read)
        remoteInput = pipe.write
        let reported = await withTaskGroup(of: (pid_t, UInt64)?.self) { group in
            group.addTask { await announced.wait() }
            group.addTask {
                _ = await process.waitUnlessCancelled()
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            announced.resume(nil)
            return first
        }
        guard let reported else {
            let termination = await process.wait()
            _ = await process.collectedOutput()
            closeRemoteSession()
            let lines = process.lastLines()
            if termination.status == 255 {
                throw ServiceError(service: name, message: "cannot start: \(SSHError.classify(lines.joined(separator: "\n"), host: host))")
            }
            throw ServiceError(
                service: name, message: "could not start on \(host.display) (\(termination))", lastLines: lines, logPath: logPath)
        }
        remoteProcess = reported
        if let token = remoteToken {
            remote.ledger.update(
                token,
                RemoteProcesses(
                    host: host.absolute, prefix: remote.markerPrefix, what: "service \(name)", pid: reported.0, startTime: reported.1))
        }
        return process
    }

    /// Stops the service on its host: the stop signal to its main process, SIGKILL to everything
    /// with its marker after the grace; then its ssh session ends.
    private func stopRemote(_ child: ChildProcess, host: RemoteHost, signal: Int32, grace: Double, began: ContinuousClock.Instant) async
        -> ServiceStop?
    {
        let main = remoteProcess ?? (0, 0)
        var killed = false
        do {
            let lines = try await Remote.script(
                remote.shells, host, "stop",
                [String(main.pid), String(main.startTime), Remote.signalName(signal), Remote.tenths(grace), remote.markerPrefix],
                timeout: host.connectTimeout + grace + Remote.slack)
            killed = lines.contains { $0.hasPrefix("R killed") }
            if let token = remoteToken {
                remote.ledger.remove(token)
                remoteToken = nil
            }
        } catch {
            problems.append("service \"\(name)\" on \(host.display) may still run: \(error); faultline recover stops it")
        }
        if killed {
            problems.append("service \"\(name)\" did not stop within \(Self.format(grace)) s of \(SignalName.name(of: signal)); it was killed")
        }
        // The session ends once the service has; closing its input ends it in any case.
        var ended = await child.wait(timeout: 10)
        if ended == nil {
            closeRemoteSession()
            ended = await child.wait(timeout: 5)
        }
        if ended == nil { ended = await child.terminate(signal: SIGKILL, grace: 0) }
        closeRemoteSession()
        let termination: ChildProcess.Termination =
            switch ended {
            case .exited(let code)? where code > 128 && code < 128 + 65: .signalled(code - 128)
            case let other?: other
            case nil: .signalled(SIGKILL)
            }
        let seconds = (ContinuousClock.now - began).seconds
        logger.debug("service \(name) stopped on \(host.display): \(termination)")
        return ServiceStop(pid: main.pid, termination: termination, killed: killed, seconds: seconds)
    }

    /// Closes the remote session's input (idempotent).
    private func closeRemoteSession() {
        if let fd = remoteInput {
            close(fd)
            remoteInput = nil
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
