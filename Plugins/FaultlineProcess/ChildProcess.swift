#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CFaultlineSystem
import Foundation
import Synchronization

/// A child process started with `posix_spawn` in a process group of its own, so that it and
/// everything it starts can be signalled (and killed) together, and so that the terminal's Ctrl-C
/// reaches Faultline first, not its children.
public final class ChildProcess: Sendable {
    /// Where a child's output goes.
    public enum Output: Sendable {
        /// Collected in memory, up to a limit; readable with ``collectedOutput()``.
        case collect
        /// Appended to a file.
        case file(String)
        /// Handed line by line to a callback (and kept in the last-lines ring).
        case lines(@Sendable (String) -> Void)
        case discard
    }

    /// How a child ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        /// The exit status as a shell reports it (128 + signal for signals).
        public var status: Int32 {
            switch self {
            case .exited(let code): code
            case .signalled(let signal): 128 + signal
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signalled(let signal): "killed by \(SignalName.name(of: signal))"
            }
        }
    }

    public let pid: pid_t
    public let executable: String
    public let arguments: [String]
    private let exitLatch: ExitLatch
    private let stdoutReader: PipeReader?
    private let stderrReader: PipeReader?

    /// Starts a child.
    /// - Parameters:
    ///   - executable: an absolute path (see ``resolveExecutable(_:environment:)``).
    ///   - arguments: argv after argv[0].
    ///   - environment: the complete environment of the child.
    ///   - workingDirectory: nil keeps Faultline's.
    ///   - standardInput: a descriptor the child reads as its stdin; nil gives it `/dev/null`.
    /// - Throws: ``SpawnError`` naming the executable and the reason.
    public init(
        executable: String, arguments: [String], environment: [String: String], workingDirectory: String? = nil, stdout: Output = .collect,
        stderr: Output = .collect, standardInput: Int32? = nil
    ) throws {
        self.executable = executable
        self.arguments = arguments

        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        if let standardInput {
            posix_spawn_file_actions_adddup2(&fileActions, standardInput, 0)
        } else {
            posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        }
        var parentEnds: [Int32] = []
        var childEnds: [Int32] = []
        func setUp(_ output: Output, fd: Int32) throws -> Int32? {
            switch output {
            case .collect, .lines:
                var fds: [Int32] = [0, 0]
                guard faultline_pipe_cloexec(&fds) == 0 else { throw SpawnError(executable: executable, reason: String(cString: strerror(errno))) }
                posix_spawn_file_actions_adddup2(&fileActions, fds[1], fd)
                parentEnds.append(fds[0])
                childEnds.append(fds[1])
                return fds[0]
            case .file(let path):
                posix_spawn_file_actions_addopen(&fileActions, fd, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
                return nil
            case .discard:
                posix_spawn_file_actions_addopen(&fileActions, fd, "/dev/null", O_WRONLY, 0)
                return nil
            }
        }
        let stdoutFD: Int32?
        let stderrFD: Int32?
        do {
            stdoutFD = try setUp(stdout, fd: 1)
            stderrFD = try setUp(stderr, fd: 2)
        } catch {
            (parentEnds + childEnds).forEach { close($0) }
            throw error
        }
        // The child gets stdin, stdout and stderr only: no socket, pipe or journal of ours.
        _ = faultline_spawn_file_actions_addclosefrom(&fileActions, 3)
        if let workingDirectory {
            faultline_spawn_file_actions_addchdir(&fileActions, workingDirectory)
        }

        // Own process group; default signal dispositions (Faultline ignores SIGINT/SIGTERM to
        // handle them itself, and children must not inherit that); nothing blocked.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &fileActions, &attributes, argv, envp)
        childEnds.forEach { close($0) }
        guard result == 0 else {
            parentEnds.forEach { close($0) }
            throw SpawnError(executable: executable, reason: String(cString: strerror(result)))
        }
        self.pid = pid
        ChildRegistry.shared.add(pid)
        exitLatch = ExitLatch()
        stdoutReader = stdoutFD.map { PipeReader(fd: $0, output: stdout) }
        stderrReader = stderrFD.map { PipeReader(fd: $0, output: stderr) }
        let latch = exitLatch
        let child = pid
        // waitpid blocks, so it runs on a thread of its own, never on the cooperative pool.
        Thread.detachNewThread {
            var status: Int32 = 0
            var waited: pid_t
            repeat { waited = waitpid(child, &status, 0) } while waited == -1 && errno == EINTR
            ChildRegistry.shared.remove(child)
            let termination: Termination =
                (status & 0x7f) == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
            latch.finish(termination)
        }
    }

    /// Waits for the child to end. Cancelling the waiting task does not signal the child; use
    /// ``terminate(grace:)`` for that.
    public func wait() async -> Termination {
        await exitLatch.wait()
    }

    /// Waits for the child to end, or for the waiting task to be cancelled (then nil).
    public func waitUnlessCancelled() async -> Termination? {
        await exitLatch.waitUnlessCancelled()
    }

    /// Waits for the child to end, at most `timeout` seconds (nil: no limit).
    /// - Returns: how it ended, or nil after the timeout or on cancellation.
    public func wait(timeout: Double?) async -> Termination? {
        await exitLatch.waitUnlessCancelled(timeout: timeout)
    }

    /// The termination, if the child has ended.
    public var termination: Termination? { exitLatch.result }

    /// Sends a signal to the child's whole process group (or only the child).
    @discardableResult
    public func signal(_ signal: Int32, group: Bool = true) -> Bool {
        guard termination == nil || group else { return false }
        return kill(group ? -pid : pid, signal) == 0
    }

    /// Stops the child and its process group: `signal` (TERM), then KILL after `grace` seconds.
    /// - Returns: how the child ended.
    @discardableResult
    public func terminate(signal stopSignal: Int32 = SIGTERM, grace: Double = 2) async -> Termination {
        await stop(signal: stopSignal, grace: grace).termination
    }

    /// Stops the child and its process group: `signal`, then KILL after `grace` seconds.
    /// - Returns: how the child ended, and whether it needed the KILL.
    public func stop(signal stopSignal: Int32, grace: Double) async -> (termination: Termination, escalated: Bool) {
        if let termination {
            kill(-pid, SIGKILL)  // leftovers of the group, if any
            return (termination, false)
        }
        signal(stopSignal)
        // A frozen (SIGSTOP) process acts on the signal only once it runs again (as systemd does).
        if stopSignal != SIGKILL && stopSignal != SIGCONT { signal(SIGCONT) }
        if let ended = await wait(timeout: grace) {
            kill(-pid, SIGKILL)
            return (ended, false)
        }
        signal(SIGKILL)
        return (await wait(), true)
    }

    /// Stdout and stderr collected so far (with ``Output/collect``), read to their end when the
    /// child has exited (waiting briefly for grandchildren that hold the pipes).
    public func collectedOutput() async -> (stdout: String, stderr: String) {
        async let out = stdoutReader?.text() ?? ""
        async let err = stderrReader?.text() ?? ""
        return await (out, err)
    }

    /// The last lines a child wrote to its piped output, for error messages.
    public func lastLines(_ count: Int = 10) -> [String] {
        let lines = (stdoutReader?.recentLines() ?? []) + (stderrReader?.recentLines() ?? [])
        return Array(lines.suffix(count))
    }

    /// Executable by us: `access(X_OK)` alone says yes to root for any file, even without an x bit.
    private static func isExecutable(_ path: String) -> Bool {
        var info = stat()
        return access(path, X_OK) == 0 && stat(path, &info) == 0 && (info.st_mode & 0o111) != 0
    }

    /// Resolves a command name the way a shell does (`~` expanded, `PATH` searched).
    /// - Throws: ``SpawnError`` saying whether it was not found or not executable.
    public static func resolveExecutable(_ path: String, environment: [String: String]? = nil) throws -> String {
        let expanded = (path as NSString).expandingTildeInPath
        func check(_ candidate: String) -> String? {
            var info = stat()
            guard stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
            return candidate
        }
        if expanded.contains("/") {
            guard check(expanded) != nil else {
                throw SpawnError(
                    executable: path, reason: FileManager.default.fileExists(atPath: expanded) ? "it is not a regular file" : "no such file")
            }
            guard isExecutable(expanded) else { throw SpawnError(executable: path, reason: "it is not executable (chmod +x \(expanded))") }
            return expanded
        }
        // Only PATH is read: copying the whole environment per call made validating thousands of
        // process activities slow.
        let searchPath = (environment.map { $0["PATH"] } ?? getenv("PATH").map { String(cString: $0) }) ?? "/usr/local/bin:/usr/bin:/bin"
        var foundNotExecutable: String?
        for directory in searchPath.split(separator: ":") {
            let candidate = "\(directory)/\(expanded)"
            if check(candidate) != nil {
                if isExecutable(candidate) { return candidate }
                foundNotExecutable = candidate
            }
        }
        if let foundNotExecutable { throw SpawnError(executable: path, reason: "\(foundNotExecutable) is not executable") }
        throw SpawnError(executable: path, reason: "not found in PATH")
    }
}

/// A child could not be started.
public struct SpawnError: Error, Sendable, CustomStringConvertible {
    public var executable: String
    public var reason: String
    public var description: String { "cannot run \(executable): \(reason)" }
}

/// Every live child Faultline started, so that a forced exit can kill their process groups.
public final class ChildRegistry: Sendable {
    public static let shared = ChildRegistry()
    private let pids = Mutex<Set<pid_t>>([])

    func add(_ pid: pid_t) { _ = pids.withLock { $0.insert(pid) } }
    func remove(_ pid: pid_t) { _ = pids.withLock { $0.remove(pid) } }

    /// Live children.
    public var live: Set<pid_t> { pids.withLock { $0 } }

    /// Kills every live child's process group at once, and every process a service left behind
    /// (for a forced exit).
    public func killAll() {
        for pid in live { kill(-pid, SIGKILL) }
        for process in ServiceMarker.processes(withPrefix: ServiceMarker.session + "/") { kill(process.pid, SIGKILL) }
    }

    private let isSubreaper = Mutex(false)

    /// Makes this process the parent of every orphaned descendant (Linux `PR_SET_CHILD_SUBREAPER`),
    /// so that a service that daemonises (forks and lets its parent exit) stays Faultline's to stop.
    /// Idempotent; does nothing where the kernel has no subreapers.
    public func adoptOrphans() {
        isSubreaper.withLock { done in
            guard !done else { return }
            done = faultline_set_child_subreaper() == 0
        }
    }
}

/// Signal names and numbers.
public enum SignalName {
    static let table: [(String, Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP), ("ABRT", SIGABRT), ("BUS", SIGBUS), ("FPE", SIGFPE),
        ("KILL", SIGKILL), ("USR1", SIGUSR1), ("SEGV", SIGSEGV), ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM), ("TERM", SIGTERM),
        ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP), ("TSTP", SIGTSTP), ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG),
        ("XCPU", SIGXCPU), ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF), ("WINCH", SIGWINCH), ("IO", SIGIO), ("SYS", SIGSYS),
    ]

    /// `SIGTERM` for 15.
    public static func name(of signal: Int32) -> String {
        table.first { $0.1 == signal }.map { "SIG\($0.0)" } ?? "signal \(signal)"
    }

    /// The number for `TERM`, `SIGTERM`, `sigterm` or `15`.
    public static func number(_ text: String) -> Int32? {
        if let n = Int32(text), n > 0, n < 65 { return n }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        return table.first { $0.0 == name }?.1
    }

    public static var names: [String] { table.map(\.0) }
}

/// Resolves once with a child's termination.
final class ExitLatch: Sendable {
    private struct State {
        var result: ChildProcess.Termination?
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<ChildProcess.Termination?, Never>] = [:]
    }
    private let state = Mutex(State())

    var result: ChildProcess.Termination? { state.withLock { $0.result } }

    func finish(_ termination: ChildProcess.Termination) {
        let waiters = state.withLock { s -> [CheckedContinuation<ChildProcess.Termination?, Never>] in
            s.result = termination
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        waiters.forEach { $0.resume(returning: termination) }
    }

    func wait() async -> ChildProcess.Termination {
        if let result { return result }
        // An unstructured task does not inherit cancellation, so this wait ends only with the child.
        return await Task { await self.waitUnlessCancelled()! }.value
    }

    /// Waits for the child to end; nil when the task is cancelled or `timeout` seconds pass first.
    ///
    /// The timeout is a Dispatch timer that resumes the waiter itself, under the latch's lock: which
    /// came first, the exit or the timeout, is decided when each happens. (A timeout raced in a
    /// task group against the wait was decided by whichever task the cooperative pool ran first, so
    /// on a starved pool a program that ran 30 s past a 0.3 s timeout was reported as finished.)
    func waitUnlessCancelled(timeout: Double? = nil) async -> ChildProcess.Termination? {
        let id = state.withLock { s -> Int in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ChildProcess.Termination?, Never>) in
                let now = state.withLock { s -> ChildProcess.Termination?? in
                    if let result = s.result { return .some(result) }
                    if Task.isCancelled { return .some(nil) }
                    s.waiters[id] = continuation
                    return nil
                }
                if let now {
                    continuation.resume(returning: now)
                } else if let timeout {
                    // At most about 31 years: DispatchTime counts nanoseconds in 64 bits.
                    DispatchQueue.global().asyncAfter(deadline: .now() + min(max(timeout, 0), 1e9)) { [self] in
                        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
                    }
                }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }
}

/// Reads a pipe on a thread of its own until EOF.
final class PipeReader: Sendable {
    static let limit = 8 << 20
    static let longestLine = 64 << 10
    private struct State {
        var data = Data()
        var truncated = false
        var finished = false
        var partialLine = ""
        var recent: [String] = []
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())
    private let fd: Int32

    init(fd: Int32, output: ChildProcess.Output) {
        self.fd = fd
        let onLine: (@Sendable (String) -> Void)? = if case .lines(let callback) = output { callback } else { nil }
        // Only collected output is kept whole; a long-running service's lines pass through.
        let keepsData = if case .collect = output { true } else { false }
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                let chunk = Data(buffer[0..<n])
                let lines = state.withLock { s -> [String] in
                    if keepsData {
                        if s.data.count < Self.limit {
                            s.data.append(chunk.prefix(Self.limit - s.data.count))
                            if s.data.count >= Self.limit { s.truncated = true }
                        } else {
                            s.truncated = true
                        }
                    }
                    s.partialLine += String(decoding: chunk, as: UTF8.self)
                    var complete: [String] = []
                    while let newline = s.partialLine.firstIndex(of: "\n") {
                        complete.append(String(s.partialLine[..<newline]))
                        s.partialLine = String(s.partialLine[s.partialLine.index(after: newline)...])
                    }
                    // A line without end (a progress bar, binary output) is cut into pieces.
                    if s.partialLine.utf8.count > Self.longestLine {
                        complete.append(s.partialLine)
                        s.partialLine = ""
                    }
                    s.recent = Array((s.recent + complete).suffix(50))
                    return complete
                }
                lines.forEach { onLine?($0) }
            }
            close(fd)
            let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                if !s.partialLine.isEmpty {
                    onLine?(s.partialLine)
                    s.recent = Array((s.recent + [s.partialLine]).suffix(50))
                    s.partialLine = ""
                }
                s.finished = true
                defer { s.waiters.removeAll() }
                return Array(s.waiters.values)
            }
            waiters.forEach { $0.resume() }
        }
    }

    /// Everything read, once the pipe reached EOF (or after a short wait when a grandchild still
    /// holds it open).
    func text() async -> String {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForEnd() }
            group.addTask { try? await Task.sleep(for: .milliseconds(300)) }
            await group.next()
            group.cancelAll()
        }
        return state.withLock { s in
            var text = String(decoding: s.data, as: UTF8.self)
            if s.truncated { text += "\n[output truncated at \(Self.limit >> 20) MiB]" }
            return text
        }
    }

    private func waitForEnd() async {
        let id = state.withLock { s -> Int in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { s -> Bool in
                    if s.finished || Task.isCancelled { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    func recentLines() -> [String] { state.withLock { $0.recent } }
}
