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

@Suite("process.kill: selectors, signals, grace, safety")
struct ProcessKillTests {
    let kill = ProcessKill()

    func run(_ value: Value, context: ActivityContext = makeContext()) async throws -> Value {
        let args = try arguments(ProcessKill.Arguments.self, value)
        try ProcessKill.validate(args)
        return try await kill.perform(args, context: context)
    }

    @Test("pid selects one process, and the output says how it ended")
    func byPid() async throws {
        let child = try spawn(["sleep", uniqueSleep()])
        defer { child.signal(SIGKILL) }
        let output = try await run(["pid": .int(Int(child.pid))])
        #expect(await ended(child) == .signalled(SIGTERM))
        let target = try #require(output["targets"]?[0])
        #expect(target["pid"]?.intValue == Int(child.pid))
        #expect(target["command"]?.stringValue == "\(child.executable) \(child.arguments[0])")
        #expect(target["ended"]?.stringValue?.contains("after SIGTERM") == true)
        #expect(target["escalated"] == false)
        #expect(output["signal"] == "SIGTERM")
    }

    @Test("a pid given as text (from substitution) works too")
    func pidAsText() async throws {
        let child = try spawn(["sleep", uniqueSleep()])
        defer { child.signal(SIGKILL) }
        _ = try await run(["pid": .string("\(child.pid)"), "signal": "KILL"])
        #expect(await ended(child) == .signalled(SIGKILL))
    }

    @Test("pidfile names the process; a missing or garbled pidfile is a clear failure")
    func byPidfile() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let child = try spawn(["sleep", uniqueSleep()])
        defer { child.signal(SIGKILL) }
        let pidfile = directory.path("server.pid")
        try "\(child.pid)\n".write(toFile: pidfile, atomically: true, encoding: .utf8)
        _ = try await run(["pidfile": .string(pidfile)])
        #expect(await ended(child) == .signalled(SIGTERM))

        let missing = await failure { try await run(["pidfile": .string(directory.path("nope.pid"))]) }
        #expect(missing?.message == "pidfile \(directory.path("nope.pid")) does not exist")
        try "not a pid".write(toFile: pidfile, atomically: true, encoding: .utf8)
        let garbled = await failure { try await run(["pidfile": .string(pidfile)]) }
        #expect(garbled?.message.contains("does not hold a pid (found \"not a pid\")") == true)
    }

    @Test("name matches the exact executable name (comm), not a substring")
    func byName() async throws {
        // A link with a name of its own: the process's comm is the name it was executed by.
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let name = "fls" + String(UInt32.random(in: 100_000...999_999))
        let link = directory.path(name)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: try ChildProcess.resolveExecutable("sleep"))
        let child = try spawn([link, "300"])
        defer { child.signal(SIGKILL) }
        #expect(await eventually { SystemProcess.read(child.pid)?.comm == name })

        let prefixOnly = await failure { try await run(["name": .string(String(name.dropLast()))]) }
        #expect(prefixOnly?.message.hasPrefix("no process matches name \"\(name.dropLast())\"") == true)
        #expect(child.termination == nil)

        _ = try await run(["name": .string(name)])
        #expect(await ended(child) == .signalled(SIGTERM))
    }

    @Test("pattern is a regular expression searched in the command line")
    func byPattern() async throws {
        let number = uniqueSleep()
        let child = try spawn(["sleep", number])
        defer { child.signal(SIGKILL) }
        let output = try await run(["pattern": .string("/sleep \(number.replacingOccurrences(of: ".", with: "\\."))$")])
        #expect(await ended(child) == .signalled(SIGTERM))
        #expect(output["selector"]?.stringValue?.hasPrefix("command line matching //sleep 3000") == true)
    }

    @Test("port finds the process listening on a TCP port")
    func byPort() async throws {
        let (child, port) = try await spawnListener(token: uniqueToken())
        defer { child.signal(SIGKILL) }
        let output = try await run(["port": .int(port)])
        #expect(await ended(child) == .signalled(SIGTERM))
        #expect(output["targets"]?[0]?["pid"]?.intValue == Int(child.pid))
    }

    @Test("a port nobody listens on fails, saying where it looked")
    func portNotListening() async throws {
        let port = try FreePort.take()
        let result = await failure { try await run(["port": .int(port)]) }
        #expect(result?.message.contains("nothing listens on TCP port \(port) (/proc/net/tcp, /proc/net/tcp6)") == true)
    }

    @Test("selectors narrow each other: name and port")
    func combinedSelectors() async throws {
        let (child, port) = try await spawnListener(token: uniqueToken())
        defer { child.signal(SIGKILL) }
        let wrongName = await failure { try await run(["name": "sleep", "port": .int(port)]) }
        #expect(wrongName?.message.hasPrefix("no process matches name \"sleep\" and listening on TCP port \(port)") == true)
        #expect(child.termination == nil)
        let executable = try #require(SystemProcess.read(child.pid)?.comm)
        _ = try await run(["name": .string(executable), "port": .int(port)])
        #expect(await ended(child) == .signalled(SIGTERM))
    }

    @Test("nothing matching is a failure that says what was searched")
    func nothingMatches() async throws {
        let token = uniqueToken()
        let result = await failure { try await run(["pattern": .string(token)]) }
        let message = try #require(result?.message)
        #expect(message.hasPrefix("no process matches command line matching /\(token)/ (searched "))
        #expect(message.hasSuffix(" processes)"))

        // pid_max is at most 2^22 and never reached: no process can have this pid.
        let noPid = await failure { try await run(["pid": 4_194_304]) }
        #expect(noPid?.message == "no process matches pid 4194304 (searched pid 4194304 (no such process))")
    }

    @Test(
        "each signal, by name or number, reaches the process",
        arguments: [("TERM", SIGTERM), ("INT", SIGINT), ("HUP", SIGHUP), ("USR1", SIGUSR1), ("SIGUSR2", SIGUSR2), ("alrm", SIGALRM), ("9", SIGKILL)])
    func signals(name: String, number: Int32) async throws {
        let child = try spawn(["sleep", uniqueSleep()])
        defer { child.signal(SIGKILL) }
        let output = try await run(["pid": .int(Int(child.pid)), "signal": .string(name)])
        #expect(await ended(child) == .signalled(number))
        #expect(output["signal"]?.stringValue == SignalName.name(of: number))
    }

    @Test("a process that ignores TERM gets KILL after the grace")
    func graceThenKill() async throws {
        let number = uniqueSleep()
        // An ignored signal stays ignored across exec.
        let child = try spawn(["sh", "-c", "trap '' TERM; exec sleep \(number)"])
        defer { child.signal(SIGKILL) }
        #expect(await eventually { SystemProcess.read(child.pid)?.arguments.first == "sleep" })
        let output = try await run(["pid": .int(Int(child.pid)), "grace": 0.2])
        #expect(await ended(child) == .signalled(SIGKILL))
        let target = try #require(output["targets"]?[0])
        #expect(target["escalated"] == true)
        #expect(target["ended"] == "ignored SIGTERM for 0.2 s; killed with SIGKILL")
    }

    @Test("a frozen process gets CONT after the signal, so TERM ends it without waiting for the grace")
    func killFrozen() async throws {
        let child = try spawn(["sleep", uniqueSleep()])
        defer { child.signal(SIGKILL) }
        child.signal(SIGSTOP, group: false)
        #expect(await eventually { SystemProcess.read(child.pid)?.isStopped == true })
        let output = try await run(["pid": .int(Int(child.pid)), "grace": 60])
        #expect(await ended(child) == .signalled(SIGTERM))
        #expect(output["targets"]?[0]?["escalated"] == false)
    }

    @Test("several matches need count or all; count picks with the run's seed")
    func countAndAll() async throws {
        let token = uniqueSleep()
        let children = try (0..<4).map { _ in try spawn(["sleep", token]) }
        defer { children.forEach { $0.signal(SIGKILL) } }
        let pattern = Value.string(token.replacingOccurrences(of: ".", with: "\\."))

        let ambiguous = await failure { try await run(["pattern": pattern]) }
        #expect(ambiguous?.message == "4 processes match; set count: N to pick N of them at random, or all: true")
        #expect(ambiguous?.details.count == 4)

        let output = try await run(["pattern": pattern, "count": 2, "signal": "KILL"])
        #expect(output["matched"] == 4)
        #expect(output["targets"]?.arrayValue?.count == 2)
        #expect(await eventually { children.filter { $0.termination != nil }.count == 2 })

        _ = try await run(["pattern": pattern, "all": true, "signal": "KILL"])
        for child in children { #expect(await ended(child) != nil) }
    }

    @Test("the same seed picks the same processes")
    func seededChoice() throws {
        func pick(_ seed: UInt64) throws -> [Int] {
            var random = SeededRandom(seed: seed, stream: "kill#1")
            return try TargetPolicy.pick(Array(1...20), count: 3, all: false, random: &random) { "\($0)" }
        }
        #expect(try pick(7) == pick(7))
        #expect(try pick(7).count == 3)
        #expect(try Set((1...10).map { try pick($0) }).count > 1)
    }

    @Test("dry mode lists what would be killed and kills nothing")
    func dryRun() async throws {
        let child = try spawn(["sleep", uniqueSleep()])
        defer { child.signal(SIGKILL) }
        let output = try await run(["pid": .int(Int(child.pid)), "grace": 2], context: makeContext(dryRun: true))
        #expect(output["dry_run"] == true)
        #expect(output["targets"]?[0]?["pid"]?.intValue == Int(child.pid))
        #expect(output["targets"]?[0]?["would"] == "SIGTERM, then SIGKILL after 2 s")
        #expect(SystemProcess.read(child.pid)?.isZombie == false)
        #expect(child.termination == nil)
    }

    @Test(
        "pid 1, faultline itself and its parent are never signalled",
        arguments: [(pid_t(1), "pid 1 (init) is never signalled"), (getpid(), "it is faultline itself"), (getppid(), "it is faultline's parent")])
    func refusals(pid: pid_t, reason: String) async throws {
        // Dry mode, so that a broken refusal could not hurt the test run; the refusal comes first.
        let result = await failure { try await run(["pid": .int(Int(pid))], context: makeContext(dryRun: true)) }
        #expect(result?.message == "refusing to signal what matches pid \(pid)")
        #expect(result?.details.first?.hasSuffix(": \(reason)") == true)
    }

    @Test("a harmless signal to faultline itself is refused for real, too")
    func refusalOutsideDryMode() async throws {
        let result = await failure {
            let args = try arguments(ProcessSignal.Arguments.self, ["pid": .int(Int(getpid())), "signal": "CONT"])
            return try await ProcessSignal().perform(args, context: makeContext())
        }
        #expect(result?.details == ["pid \(getpid()) (\(SystemProcess.read(getpid())!.commandLine)): it is faultline itself"])
    }

    @Test(
        "another user's process is refused unless allow_foreign is set",
        .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func foreignProcesses() async throws {
        let number = uniqueSleep()
        let child = try spawn(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sleep", number])
        defer { child.signal(SIGKILL) }
        #expect(await eventually { SystemProcess.read(child.pid).map { $0.uid == 65534 && $0.arguments.first == "/bin/sleep" } ?? false })
        let pattern = Value.string(number.replacingOccurrences(of: ".", with: "\\."))

        let refused = await failure { try await run(["pattern": pattern]) }
        #expect(refused?.message == "refusing to signal what matches command line matching /\(number.replacingOccurrences(of: ".", with: "\\."))/")
        #expect(refused?.details.first?.contains("it belongs to nobody, not to root (allow_foreign: true allows it)") == true)
        #expect(child.termination == nil)

        _ = try await run(["pattern": pattern, "allow_foreign": true])
        #expect(await ended(child) == .signalled(SIGTERM))
    }

    @Test("arguments are checked before the run")
    func validation() throws {
        func problem(_ value: Value) throws -> String? {
            let args = try arguments(ProcessKill.Arguments.self, value)
            do {
                try ProcessKill.validate(args)
                return nil
            } catch let error as ArgumentError {
                return error.description
            }
        }
        #expect(try problem([:]) == "no process selector")
        #expect(try problem(["pid": 1, "signal": "TREM"]) == "signal: unknown signal \"TREM\"")
        #expect(try problem(["pattern": "(unclosed"]) == "pattern: invalid regular expression \"(unclosed\"")
        #expect(try problem(["name": "/usr/bin/sleep"])?.hasPrefix("name: name is an executable name without a path") == true)
        #expect(try problem(["pid": 5, "count": 2, "all": true]) == "all: give count or all, not both")
        // Numbers out of their range are refused as the arguments decode.
        for (value, message) in [
            (["port": 70000] as Value, "port must be 1…65535 (TCP port), found 70000"),
            (["pid": 5, "grace": -1], "grace must be 0…31536000 seconds, found -1"),
        ] {
            let error = try #require(throws: Diagnostic.self) { try arguments(ProcessKill.Arguments.self, value) }
            #expect(error.message == message)
        }
        // A pid may arrive as text, so it is checked with the other selectors.
        #expect(try problem(["pid": 99_999_999_999]) == "pid: pid must be 1…4194304 (process id), found 99999999999")
        #expect(throws: (any Error).self) { try arguments(ProcessKill.Arguments.self, ["pid": 5, "graec": 1]) }
    }
}
