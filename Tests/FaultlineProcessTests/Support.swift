#if canImport(Glibc)
    import Glibc
#endif
import FaultlineKit
import FaultlineNetwork
@testable import FaultlineProcess
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// A word no other process on the machine has in its command line, so that tests running in
/// parallel never select each other's processes.
func uniqueToken(_ prefix: String = "fltest") -> String {
    "\(prefix)\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
}

/// A number for `sleep` that only this test's processes use: `sleep 3000.123456`.
func uniqueSleep() -> String {
    "3000.\(UInt32.random(in: 100_000...999_999))"
}

/// Starts a real child process in its own process group.
func spawn(_ argv: [String], environment: [String: String] = ProcessInfo.processInfo.environment, output: ChildProcess.Output = .discard) throws
    -> ChildProcess
{
    try ChildProcess(
        executable: try ChildProcess.resolveExecutable(argv[0]), arguments: Array(argv.dropFirst()), environment: environment, stdout: output,
        stderr: output)
}

/// Starts a child and waits for its first line of output (a port, "ready").
func spawnAndReadLine(_ argv: [String], environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> (ChildProcess, String) {
    let firstLine = OneShot<String>()
    let child = try spawn(argv, environment: environment, output: .lines { firstLine.resume($0) })
    let line = await withTaskGroup(of: String?.self) { group in
        group.addTask { await firstLine.wait() }
        group.addTask {
            _ = await child.waitUnlessCancelled()
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        firstLine.resume("")
        return first
    }
    guard let line, !line.isEmpty else {
        child.signal(SIGKILL)
        throw TestFailure("\(argv.joined(separator: " ")) ended before writing a line")
    }
    return (child, line)
}

/// A TCP listener in a python child: `(child, port)`.
func spawnListener(token: String) async throws -> (ChildProcess, Int) {
    let (child, line) = try await spawnAndReadLine([
        "python3", "-c",
        "import socket, sys, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\nprint(s.getsockname()[1], flush=True)\ntime.sleep(3000)",
        token,
    ])
    guard let port = Int(line) else { throw TestFailure("listener wrote \(line)") }
    return (child, port)
}

/// Waits for a child to end, at most `timeout` seconds.
func ended(_ child: ChildProcess, timeout: Double = 10) async -> ChildProcess.Termination? {
    await child.wait(timeout: timeout)
}

/// Live processes (not zombies) whose command line contains `token`.
func liveProcesses(containing token: String) -> [SystemProcess] {
    SystemProcess.all().filter { !$0.isZombie && $0.commandLine.contains(token) }
}

/// A context for a provider outside an experiment, with a service supervisor.
func makeContext(
    name: String = "activity", kind: ActivityKind = .action, supervisor: ServiceSupervisor? = nil, seed: UInt64 = 42, dryRun: Bool = false
) -> ActivityContext {
    var resources = Resources()
    if let supervisor { resources[ServicesKey.self] = supervisor }
    return ActivityContext.standalone(name: name, kind: kind, resources: resources, seed: seed, isDryRun: dryRun)
}

/// Decodes provider arguments from YAML-like values, as the engine would.
func arguments<A: Decodable>(_ type: A.Type, _ value: Value) throws -> A {
    try NodeDecoder().decode(A.self, from: value)
}

/// The failure an activity threw.
func failure(_ body: () async throws -> Value) async -> ActivityFailure? {
    do {
        _ = try await body()
        return nil
    } catch let failure as ActivityFailure {
        return failure
    } catch {
        return ActivityFailure("unexpected error: \(error)")
    }
}
