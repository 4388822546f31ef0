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

@Suite("The faultline executable leaves no process behind")
struct FaultlineBinaryTests {
    /// Runs `faultline run suite.yaml` in `directory` (through `sh -c` with `piped`, e.g. `| head`).
    func startFaultline(_ suite: String, in directory: ScratchDirectory, piped: String? = nil) throws -> TestProcess {
        try directory.write("suite.yaml", suite)
        let arguments = ["run", "suite.yaml", "--journal-path", "journals"]
        guard let piped else { return try TestProcess.faultline(arguments, in: directory) }
        let binary = try BuiltProduct.path("faultline")
        return try TestProcess("/bin/sh", ["-c", "'\(binary)' \(arguments.joined(separator: " ")) \(piped)"], in: directory)
    }

    /// Processes that carry the test's token, or the marker of that faultline process's services.
    func leftovers(token: String, faultline: pid_t) -> [SystemProcess] {
        liveProcesses(containing: token) + ServiceMarker.processes(withPrefix: "\(faultline)-")
    }

    /// Kills what a failed test might leave (only processes this test started).
    func killLeftovers(token: String, faultline: TestProcess) {
        faultline.child.signal(SIGKILL)
        for process in leftovers(token: token, faultline: faultline.pid) { kill(process.pid, SIGKILL) }
    }

    /// A suite with a service, a service that leaves a daemon (`setsid`), and an experiment whose
    /// action touches `reached` and then runs until faultline is stopped; every process carries
    /// `token` in its command line (`<token>-api`, `-forker`, `-daemon`, `-action`).
    static func servicesAndAWaitingAction(token: String) -> String {
        let sleeper = "import time; time.sleep(3000)"
        return """
            name: waiting
            services:
              - name: api
                command: [python3, -c, "import time; print('up', flush=True); time.sleep(3000)", "\(token)-api"]
                ready: {log: up, timeout: 30}
              - name: forker
                command: [sh, -c, "setsid python3 -c '\(sleeper)' \(token)-daemon </dev/null >/dev/null 2>&1 & echo ready; exec python3 -c '\(sleeper)' \(token)-forker"]
                ready: {log: ready, timeout: 30}
            experiments:
              - title: waits
                description: an action that runs until faultline is stopped
                method:
                  - type: action
                    name: wait
                    provider: {type: process, path: sh, arguments: [-c, "touch reached; exec python3 -c '\(sleeper)' \(token)-action"]}
            """
    }

    /// Whether a run of ``servicesAndAWaitingAction(token:)`` is up: both services, the daemon,
    /// and the experiment's action (within a minute).
    static func reachedTheAction(in directory: ScratchDirectory, token: String) async -> Bool {
        await eventually(timeout: .seconds(60)) {
            FileManager.default.fileExists(atPath: directory.path("reached"))
                && ["api", "daemon", "forker", "action"].allSatisfy { !liveProcesses(containing: "\(token)-\($0)").isEmpty }
        }
    }

    @Test("SIGINT or SIGTERM during an experiment stops the services, the daemon one left, and the running action", arguments: [SIGINT, SIGTERM])
    func interrupted(signal: Int32) async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let token = uniqueToken()
        let faultline = try startFaultline(Self.servicesAndAWaitingAction(token: token), in: directory)
        defer { killLeftovers(token: token, faultline: faultline) }

        // Every part is up: both services (and the daemon) and the experiment's action.
        let running = await Self.reachedTheAction(in: directory, token: token)
        if !running {
            faultline.signal(SIGKILL)
            Issue.record("faultline did not reach the experiment: \(faultline.stdout)\n\(faultline.stderr)")
            return
        }

        faultline.signal(signal)
        let status = await faultline.wait(timeout: .seconds(60))
        #expect(status == 130, "\(faultline.stdout)\n\(faultline.stderr)")
        #expect(faultline.stdout.contains("interrupted (exit 130)"))
        #expect(leftovers(token: token, faultline: faultline.pid).map(\.commandLine) == [])
    }

    @Test("kill -9 of faultline: its guardian stops the services, the daemon one too, and exits")
    func killedOutright() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let token = uniqueToken()
        let faultline = try startFaultline(Self.servicesAndAWaitingAction(token: token), in: directory)
        defer { killLeftovers(token: token, faultline: faultline) }
        let running = await Self.reachedTheAction(in: directory, token: token)
        try #require(running, "faultline did not reach the experiment")
        let guardians = liveProcesses(containing: "faultline-guardian").filter { $0.parent == faultline.pid }
        #expect(guardians.count == 1, "\(guardians.map(\.commandLine))")

        faultline.signal(SIGKILL)
        #expect(await faultline.wait() == 128 + SIGKILL)
        // Nothing of faultline runs now: only the guardian can stop the services.
        let services = ["api", "daemon", "forker"].map { "\(token)-\($0)" }
        #expect(await eventually(timeout: .seconds(30)) { services.allSatisfy { liveProcesses(containing: $0).isEmpty } })
        #expect(
            await eventually(timeout: .seconds(30)) {
                guardians.allSatisfy { guardian in !liveProcesses(containing: "faultline-guardian").contains { $0.pid == guardian.pid } }
            })
        // The program the experiment was running is not a service: the run's ledger names it,
        // and faultline recover ends it.
        #expect(!liveProcesses(containing: "\(token)-action").isEmpty)
        let recover = try TestProcess.faultline(["recover"], in: directory)
        #expect(await recover.wait() == 0, "\(recover.stdout)\n\(recover.stderr)")
        #expect(recover.stdout.contains("undone: the program of activity \"wait\""), "\(recover.stdout)")
        #expect(ServiceMarker.processes(withPrefix: "\(faultline.pid)-").isEmpty)
        #expect(liveProcesses(containing: token).isEmpty)
    }

    @Test("kill -9 of faultline and of its guardian while a process is frozen: faultline recover thaws it and stops the services")
    func killedWithGuardian() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let token = uniqueToken()
        let number = uniqueSleep()
        let target = try spawn(["sleep", number])
        defer { target.signal(SIGKILL) }
        let suite = """
            name: frozen
            services:
              - name: api
                command: [python3, -c, "import time; print('up', flush=True); time.sleep(3000)", "\(token)-api"]
                ready: {log: up, timeout: 30}
            experiments:
              - title: freezes
                description: freezes a process, then waits
                method:
                  - {type: action, name: freeze, provider: {type: process.signal, pid: \(target.pid), signal: STOP}}
                  - {type: action, name: wait, provider: {type: process, path: sh, arguments: [-c, "touch reached; exec python3 -c 'import time; time.sleep(600)' \(token)-action"]}}
            """
        let faultline = try startFaultline(suite, in: directory)
        defer { killLeftovers(token: token, faultline: faultline) }
        let reached = await eventually(timeout: .seconds(60)) { directory.exists("reached") || !faultline.isRunning }
        try #require(reached && faultline.isRunning, "faultline did not reach the experiment: \(faultline.stdout)\n\(faultline.stderr)")
        #expect(SystemProcess.read(target.pid)?.isStopped == true)
        // The guardian first, so nothing stops the services.
        for guardian in liveProcesses(containing: "faultline-guardian").filter({ $0.parent == faultline.pid }) { kill(guardian.pid, SIGKILL) }
        faultline.signal(SIGKILL)
        #expect(await faultline.wait() == 128 + SIGKILL)
        #expect(SystemProcess.read(target.pid)?.isStopped == true, "nothing thaws it but recovery")
        #expect(!liveProcesses(containing: "\(token)-api").isEmpty, "nothing stops the service but recovery")

        let dry = try TestProcess.faultline(["recover", "--dry-run"], in: directory)
        #expect(await dry.wait() == 0)
        #expect(dry.stdout.contains("would undo: pid \(target.pid) (\(target.executable) \(number)) stopped with SIGSTOP"), "\(dry.stdout)")
        #expect(SystemProcess.read(target.pid)?.isStopped == true)

        let recover = try TestProcess.faultline(["recover"], in: directory)
        #expect(await recover.wait() == 0, "\(recover.stdout)\n\(recover.stderr)")
        let thawed = "undone: pid \(target.pid) (\(target.executable) \(number)) stopped with SIGSTOP: resumed with SIGCONT"
        #expect(recover.stdout.contains(thawed), "\(recover.stdout)")
        #expect(await eventually { SystemProcess.read(target.pid)?.isStopped == false })
        #expect(liveProcesses(containing: token).isEmpty)
        let journal = try Journal.load(path: directory.path("journals/01-freezes.json"))
        #expect(journal.status == .interrupted)
        #expect(journal.recovery?.first?.undone.count == 3, "\(journal.recovery ?? [])")
    }

    @Test("a third SIGINT during a slow teardown exits at once and still kills every service process and daemon")
    func forcedExit() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let token = uniqueToken()
        let sleeper = "import time; time.sleep(3000)"
        // The service ignores TERM and has a long grace, so its stop would take a minute.
        let suite = """
            name: forced
            services:
              - name: stubborn
                command: [sh, -c, "trap '' TERM; setsid python3 -c '\(sleeper)' \(token)-daemon </dev/null >/dev/null 2>&1 & echo ready; exec python3 -c '\(sleeper)' \(token)-main"]
                ready: {log: ready, timeout: 30}
                stop_grace: 60
            experiments:
              - title: quick
                description: d
                method:
                  - {type: probe, name: runs, provider: {type: process.running, service: stubborn}}
            """
        let faultline = try startFaultline(suite, in: directory)
        defer { killLeftovers(token: token, faultline: faultline) }

        let tearingDown = await eventually(timeout: .seconds(60)) { faultline.stdout.contains("tearing down") }
        try #require(tearingDown, "faultline never reached its teardown: \(faultline.stdout)")
        #expect(!liveProcesses(containing: "\(token)-main").isEmpty)
        #expect(await eventually { !liveProcesses(containing: "\(token)-daemon").isEmpty })
        // Signals of one kind do not queue: send each once the previous one has been seen.
        for acknowledgement in ["SIGINT: stopping the method", "SIGINT again: aborting"] {
            faultline.signal(SIGINT)
            #expect(await eventually(timeout: .seconds(30)) { faultline.stdout.contains(acknowledgement) })
        }
        faultline.signal(SIGINT)
        #expect(await faultline.wait(timeout: .seconds(30)) == 130)
        #expect(await eventually { leftovers(token: token, faultline: faultline.pid).isEmpty })
    }

    @Test("a reader that goes away (faultline run | head -1) does not cut the teardown short")
    func closedStdout() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let token = uniqueToken()
        let suite = """
            name: piped
            services:
              - name: api
                command: [python3, -c, "import time; print('up', flush=True); time.sleep(3000)", "\(token)-api"]
                ready: {log: up, timeout: 30}
            experiments:
              - title: checks the api
                description: d
                method:
                  - {type: probe, name: api runs, provider: {type: process.running, service: api}}
            """
        let shell = try startFaultline(suite, in: directory, piped: "| head -n 1")
        defer {
            shell.child.signal(SIGKILL)
            for process in liveProcesses(containing: token) { kill(process.pid, SIGKILL) }
        }
        let status = await shell.wait(timeout: .seconds(60))
        #expect(status == 0, "\(shell.stdout)\n\(shell.stderr)")
        #expect(!shell.stderr.contains("Fatal error"), "\(shell.stderr)")
        #expect(FileManager.default.fileExists(atPath: directory.path("journals/01-checks-the-api.json")))
        #expect(liveProcesses(containing: token).isEmpty)
    }

    @Test("a service that exits during startup fails the run with its last lines")
    func serviceExitsAtStartup() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let token = uniqueToken()
        let suite = """
            name: broken
            services:
              - name: first
                command: [python3, -c, "import time; print('up', flush=True); time.sleep(3000)", "\(token)-first"]
                ready: {log: up, timeout: 30}
              - name: broken
                command: [sh, -c, "echo 'reading config'; echo 'fatal: no such database' >&2; exit 4", "\(token)-broken"]
                ready: {tcp: "127.0.0.1:\(try FreePort.take())", timeout: 30}
            experiments:
              - {title: never runs, description: d, method: []}
            """
        let faultline = try startFaultline(suite, in: directory)
        defer { killLeftovers(token: token, faultline: faultline) }
        let status = await faultline.wait(timeout: .seconds(60))
        #expect(status == 1, "\(faultline.stdout)\n\(faultline.stderr)")
        #expect(
            faultline.stderr.contains(
                #"the run could not start: services: service "broken" exited during startup (exited with status 4); last lines of journals/service-broken.log:"#
            ))
        #expect(faultline.stderr.contains("  | fatal: no such database"))
        #expect(leftovers(token: token, faultline: faultline.pid).isEmpty)
    }
}
