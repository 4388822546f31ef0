#if canImport(Glibc)
    import Glibc
#endif
import FaultlineProcess
import FaultlineTesting
import Foundation
import Synchronization

/// A child process a test runs — a built product of this package (`faultline`, `faultline-demo`)
/// or a program on PATH (`redis-server`) — with its stdout and stderr in files, readable while it
/// runs. It runs in a process group of its own (``ChildProcess``); a test ends it with ``wait(timeout:)``
/// or ``stop()`` before returning, and one still running when the value goes away is killed.
public final class TestProcess: Sendable {
    public let child: ChildProcess
    private let stdoutPath: String
    private let stderrPath: String
    /// Holds the output files when the caller gave no directory.
    private let ownDirectory: ScratchDirectory?

    /// Starts a program.
    /// - Parameters:
    ///   - executable: a path, or a name looked up on PATH.
    ///   - directory: the working directory, and where the output files go (a fresh scratch
    ///     directory when nil).
    ///   - workingDirectory: a different working directory than `directory`.
    ///   - environment: added to this process's environment, without `TOXIPROXY_*` (a developer's
    ///     Toxiproxy settings must not reach the tests), with `NO_COLOR=1` and with
    ///     `FAULTLINE_STATE_DIR` in `directory` (unless given here).
    public init(
        _ executable: String, _ arguments: [String], in directory: ScratchDirectory? = nil, workingDirectory: String? = nil,
        environment: [String: String] = [:]
    ) throws {
        let scratch = try directory ?? ScratchDirectory(prefix: "faultline-child")
        ownDirectory = directory == nil ? scratch : nil
        let name = UUID().uuidString
        stdoutPath = scratch.path("stdout-\(name).txt")
        stderrPath = scratch.path("stderr-\(name).txt")
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TOXIPROXY_") }
        env["NO_COLOR"] = "1"
        // Each child keeps its ledgers (and recovers dead runs) in its own directory, so no test
        // recovers what another test's killed run left.
        env["FAULTLINE_STATE_DIR"] = scratch.path("state")
        for (key, value) in environment { env[key] = value }
        child = try ChildProcess(
            executable: try ChildProcess.resolveExecutable(executable), arguments: arguments, environment: env,
            workingDirectory: workingDirectory ?? scratch.url.path, stdout: .file(stdoutPath), stderr: .file(stderrPath))
    }

    /// Runs the `faultline` binary `swift test` built (the test target depends on it).
    public static func faultline(
        _ arguments: [String], in directory: ScratchDirectory, workingDirectory: String? = nil, environment: [String: String] = [:]
    ) throws -> TestProcess {
        try TestProcess(try BuiltProduct.path("faultline"), arguments, in: directory, workingDirectory: workingDirectory, environment: environment)
    }

    public var pid: pid_t { child.pid }
    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    /// Every line written so far, stdout's then stderr's.
    public var lines: [String] { (stdout + stderr).split(separator: "\n").map(String.init) }
    public var isRunning: Bool { child.termination == nil }

    /// Sends a signal to the process only (not to the children it started).
    public func signal(_ number: Int32) { child.signal(number, group: false) }

    /// Waits for the exit and returns the status as a shell reports it (128 + signal); a process
    /// still running after `timeout` is killed, so a hung child fails its test instead of hanging it.
    public func wait(timeout: Duration = .seconds(120)) async -> Int32 {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        if let termination = await child.wait(timeout: seconds) { return termination.status }
        return await child.terminate(signal: SIGKILL, grace: 0).status
    }

    /// SIGTERM to its process group, SIGKILL after a grace period; returns the status.
    @discardableResult
    public func stop(grace: Double = 5) async -> Int32 {
        await child.terminate(grace: grace).status
    }

    /// Waits for a line that starts with `prefix` (a banner with a port) and returns it.
    public func line(startingWith prefix: String, timeout: Duration = .seconds(30)) async throws -> String {
        _ = await eventually(timeout: timeout) { lines.contains { $0.hasPrefix(prefix) } || !isRunning }
        guard let line = lines.first(where: { $0.hasPrefix(prefix) }) else {
            throw TestFailure("no line \"\(prefix)…\" from \(child.executable); it wrote: \(lines.suffix(20))")
        }
        return line
    }

    deinit {
        // A last resort: the test failed before it could stop the child.
        if child.termination == nil { child.signal(SIGKILL) }
    }
}

extension TestProcess: TestResource {
    public func close() async { await stop() }
}

/// How a program that ran to its end ended, and what it wrote.
public struct ProgramResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    /// Stdout then stderr, trimmed.
    public var output: String { (stdout + stderr).trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// Runs a program to its end (killed after `timeout`) and returns its status and output.
public func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(120)) async throws
    -> ProgramResult
{
    let process = try TestProcess(executable, arguments, environment: environment)
    let status = await process.wait(timeout: timeout)
    return ProgramResult(status: status, stdout: process.stdout, stderr: process.stderr)
}

/// The path of an executable on PATH, if installed.
public func installed(_ name: String) -> String? {
    try? ChildProcess.resolveExecutable(name)
}

/// Whether CI runs us: there, tests that need an installed tool fail rather than skip when it is missing.
public let isCI = ProcessInfo.processInfo.environment["CI"] != nil
