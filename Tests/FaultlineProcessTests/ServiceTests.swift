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

@Suite("Services: readiness, logs, stop order, leftovers")
struct ServiceTests {
    func service(_ name: String, _ command: [String], ready: Readiness? = nil, stopGrace: Double = 5) -> ServiceDefinition {
        ServiceDefinition(name: name, settings: ServiceSettings(command: command, ready: ready, stopGrace: stopGrace))
    }

    /// A python TCP server on `port` that binds only after a moment, so readiness has to wait.
    func slowListener(port: Int, token: String) -> [String] {
        [
            "python3", "-c",
            "import socket, time\ntime.sleep(0.3)\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('127.0.0.1', \(port)))\ns.listen()\nprint('bound', flush=True)\ntime.sleep(3000)",
            token,
        ]
    }

    @Test("tcp readiness waits until the port accepts connections")
    func tcpReadiness() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let token = uniqueToken()
        let port = try FreePort.take()
        let start = try await supervisor.start(
            service("db", slowListener(port: port, token: token), ready: Readiness(tcp: "127.0.0.1:\(port)", timeout: 20)), owner: .suite)
        // Ready means connectable now, not eventually.
        let connected = await onThread { SocketConnection.open(host: "127.0.0.1", port: port, timeout: 1) }
        if case .success(let connection) = connected { connection.disconnect() }
        #expect((try? connected.get()) != nil)
        #expect(start.started)
        #expect(start.logPath == directory.path("service-db.log"))
        #expect(await supervisor.stopAll() == [])
        #expect(liveProcesses(containing: token).isEmpty)
    }

    @Test(
        "a port that already accepts before the service starts is another program's: the start fails and spawns nothing", arguments: ["tcp", "http"])
    func portTaken(_ kind: String) async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let squatter = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(squatter) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(squatter, $0, length) == 0 && getsockname(squatter, $0, &length) == 0 }
        }
        try #require(listening && listen(squatter, 8) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let token = uniqueToken()
        let ready = kind == "tcp" ? Readiness(tcp: "127.0.0.1:\(port)", timeout: 5) : Readiness(http: "http://127.0.0.1:\(port)/health", timeout: 5)
        let error = await #expect(throws: ServiceError.self) {
            try await supervisor.start(service("store", ["sleep", "30", token], ready: ready), owner: .suite)
        }
        #expect(
            error?.message.hasPrefix("cannot start: 127.0.0.1:\(port), where its readiness check looks, already accepts connections before it runs")
                == true, "\(String(describing: error))")
        #expect(liveProcesses(containing: token).isEmpty)
        #expect(await supervisor.names == [])
    }

    @Test("http readiness waits for an accepted status; a wrong status never becomes ready")
    func httpReadiness() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let port = try FreePort.take()
        let command = ["python3", "-m", "http.server", "--bind", "127.0.0.1", String(port)]
        _ = try await supervisor.start(
            service("web", command, ready: Readiness(http: "http://127.0.0.1:\(port)/", status: [200], timeout: 20)), owner: .suite)
        let status = await onThread { HTTPStatusProbe.get(host: "127.0.0.1", port: port, target: "/", timeout: 2) }
        #expect((try? status.get()) == 200)
        #expect(await supervisor.stopAll() == [])

        let other = ServiceSupervisor(runDirectory: directory.url.path)
        let wrongStatus = try FreePort.take()
        let command2 = ["python3", "-m", "http.server", "--bind", "127.0.0.1", String(wrongStatus)]
        let error = await #expect(throws: ServiceError.self) {
            try await other.start(
                service("web", command2, ready: Readiness(http: "http://127.0.0.1:\(wrongStatus)/", status: [204], timeout: 8)), owner: .suite)
        }
        // 8 s: long enough for Python's server to be up on a starved machine, so the last answer seen is its 200.
        #expect(error?.message == "was not ready after 8 s (GET http://127.0.0.1:\(wrongStatus)/ answered 200); it was stopped")
        #expect(await other.names == [])
        #expect(liveProcesses(containing: "http.server --bind 127.0.0.1 \(wrongStatus)").isEmpty)
    }

    @Test("log readiness waits for a matching line; output goes to the log file")
    func logReadiness() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let number = uniqueSleep()
        let command = ["sh", "-c", "echo booting; echo 'warming up' >&2; sleep 0.2; echo 'listening on 4242'; exec sleep \(number)"]
        let start = try await supervisor.start(service("worker", command, ready: Readiness(log: #"listening on \d+"#, timeout: 20)), owner: .suite)
        let log = try String(contentsOfFile: start.logPath, encoding: .utf8)
        #expect(log.contains("booting\n"))
        #expect(log.contains("warming up\n"))
        #expect(log.contains("listening on 4242\n"))
        #expect(log.contains("] ready after "))
        #expect(liveProcesses(containing: number).map(\.pid) == [start.pid])
        #expect(await supervisor.stopAll() == [])
        #expect(liveProcesses(containing: number).isEmpty)
    }

    @Test("a service that exits during startup fails with its last lines")
    func exitsDuringStartup() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let command = ["sh", "-c", "echo 'loading config'; echo 'fatal: /etc/app.conf: no such file' >&2; exit 3"]
        let error = await #expect(throws: ServiceError.self) {
            try await supervisor.start(service("app", command, ready: Readiness(tcp: "127.0.0.1:\(try FreePort.take())", timeout: 20)), owner: .suite)
        }
        #expect(error?.message == "exited during startup (exited with status 3)")
        #expect(Set(error?.lastLines ?? []) == ["loading config", "fatal: /etc/app.conf: no such file"])
        #expect(error?.description.contains("; last lines of \(directory.path("service-app.log")):\n  | ") == true)
    }

    @Test("a service that never becomes ready is stopped and fails the start")
    func neverReady() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let number = uniqueSleep()
        let port = try FreePort.take()
        let error = await #expect(throws: ServiceError.self) {
            try await supervisor.start(service("idle", ["sleep", number], ready: Readiness(tcp: "127.0.0.1:\(port)", timeout: 0.5)), owner: .suite)
        }
        #expect(error?.message == "was not ready after 0.5 s (tcp 127.0.0.1:\(port): connection refused); it was stopped")
        #expect(liveProcesses(containing: number).isEmpty)
    }

    @Test("services stop in reverse start order")
    func reverseStopOrder() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let record = directory.path("order")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        for name in ["a", "b", "c"] {
            // `wait` lets the trap run as soon as TERM arrives.
            let script = "trap 'echo stop-\(name) >> \(record); exit 0' TERM; echo start-\(name) >> \(record); sleep 3000 & echo ready; wait"
            _ = try await supervisor.start(service(name, ["sh", "-c", script], ready: Readiness(log: "ready")), owner: .suite)
        }
        #expect(await supervisor.stopAll() == [])
        let lines = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n")
        #expect(lines == ["start-a", "start-b", "start-c", "stop-c", "stop-b", "stop-a"])
    }

    @Test("a service that ignores its stop signal is killed after its grace, and that is reported")
    func stopGrace() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let number = uniqueSleep()
        _ = try await supervisor.start(
            service("stubborn", ["sh", "-c", "trap '' TERM; echo ready; exec sleep \(number)"], ready: Readiness(log: "ready"), stopGrace: 0.2),
            owner: .suite)
        let stop = try #require(try await supervisor.stop("stubborn"))
        #expect(stop.killed)
        #expect(stop.termination == .signalled(SIGKILL))
        #expect(await supervisor.stopAll() == [#"service "stubborn" did not stop within 0.2 s of SIGTERM; it was killed"#])
        #expect(liveProcesses(containing: number).isEmpty)
    }

    @Test("a frozen service still stops on its stop signal")
    func stopFrozen() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let start = try await supervisor.start(
            service("frozen", ["sh", "-c", "echo ready; exec sleep \(uniqueSleep())"], ready: Readiness(log: "ready"), stopGrace: 60), owner: .suite)
        kill(-start.pid, SIGSTOP)
        #expect(await eventually { SystemProcess.read(start.pid)?.isStopped == true })
        let stop = try #require(try await supervisor.stop("frozen"))
        #expect(stop.termination == .signalled(SIGTERM))
        #expect(!stop.killed)
        #expect(await supervisor.stopAll() == [])
    }

    @Test("a daemon a service leaves behind (setsid, parent gone) is found and killed")
    func daemonsAreSwept() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let token = uniqueToken()
        let daemon = "setsid python3 -c 'import time; time.sleep(3000)' \(token) </dev/null >/dev/null 2>&1 &"
        _ = try await supervisor.start(
            service("forker", ["sh", "-c", "\(daemon) echo ready; exec sleep \(uniqueSleep())"], ready: Readiness(log: "ready")), owner: .suite)
        #expect(await eventually { !liveProcesses(containing: token).isEmpty })
        let daemonProcess = try #require(liveProcesses(containing: token).first)
        #expect(daemonProcess.processGroup == daemonProcess.pid)  // out of the service's group
        let problems = await supervisor.stopAll()
        #expect(problems.count == 1)
        #expect(problems.first?.hasPrefix(#"service "forker" left 1 process running when it stopped; killed: \#(daemonProcess.pid) ("#) == true)
        #expect(liveProcesses(containing: token).isEmpty)
    }

    @Test("a service that dies during the run is reported at teardown")
    func unexpectedExit() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let start = try await supervisor.start(
            service("fragile", ["sh", "-c", "echo ready; echo 'about to crash'; exec sleep \(uniqueSleep())"], ready: Readiness(log: "ready")),
            owner: .suite)
        kill(start.pid, SIGKILL)
        #expect(await eventually { SystemProcess.read(start.pid)?.isZombie ?? true })
        let problems = await supervisor.stopAll()
        #expect(problems == [#"service "fragile" (pid \#(start.pid)) killed by SIGKILL during the run; last lines: ready ⏎ about to crash"#])
    }

    @Test("a guardian whose faultline is gone stops every marked process (KILL for one that ignores TERM); released, it touches nothing")
    func guardian() async throws {
        let token = uniqueToken()
        func marked(_ prefix: String, _ name: String, ignoringTERM: Bool = false) async throws -> ChildProcess {
            var environment = ProcessInfo.processInfo.environment
            environment[ServiceMarker.variable] = prefix + name + "/1"
            let trap = ignoringTERM ? "trap '' TERM; " : ""
            return try await spawnAndReadLine(
                ["sh", "-c", "\(trap)echo ready; exec sleep \(uniqueSleep())", "\(token)-\(name)"], environment: environment
            ).0
        }
        let abandonedPrefix = "test-\(token)/1/"
        let polite = try await marked(abandonedPrefix, "polite")
        let stubborn = try await marked(abandonedPrefix, "stubborn", ignoringTERM: true)
        defer { [polite, stubborn].forEach { $0.signal(SIGKILL) } }
        let abandoned = try #require(ServiceGuardian(markerPrefix: abandonedPrefix, grace: 0.5))
        abandoned.abandon()
        #expect(await abandoned.wait() == .exited(0))
        #expect(await ended(polite) == .signalled(SIGTERM))
        #expect(await ended(stubborn) == .signalled(SIGKILL))

        let releasedPrefix = "test-\(token)/2/"
        let survivor = try await marked(releasedPrefix, "survivor")
        defer { survivor.signal(SIGKILL) }
        let released = try #require(ServiceGuardian(markerPrefix: releasedPrefix, grace: 0.5))
        released.release()
        #expect(await released.wait() == .exited(0))
        #expect(survivor.termination == nil)
        #expect(ServiceMarker.processes(withPrefix: releasedPrefix).map(\.pid) == [survivor.pid])
    }

    @Test("a supervisor's guardian runs from its first service until stopAll, then exits")
    func supervisorGuardian() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let prefix = supervisor.markerPrefix
        func guardians() -> [SystemProcess] { liveProcesses(containing: "faultline-guardian").filter { $0.arguments.contains(prefix) } }
        #expect(guardians().isEmpty)
        _ = try await supervisor.start(
            service("api", ["sh", "-c", "echo up; exec sleep \(uniqueSleep())"], ready: Readiness(log: "up", timeout: 10)), owner: .suite)
        #expect(guardians().count == 1)
        #expect(await supervisor.stopAll() == [])
        #expect(await eventually { guardians().isEmpty })
    }

    @Test("validation names the key: command, readiness, signals, names")
    func definitionProblems() throws {
        func problems(_ settings: ServiceSettings, name: String = "ok") -> [String] {
            ServiceDefinition(name: name, settings: settings).problems().map(\.description)
        }
        #expect(problems(ServiceSettings(command: nil)) == ["command: a service needs a command"])
        #expect(problems(ServiceSettings(command: ["no-such-program-here"])) == ["command: cannot run no-such-program-here: not found in PATH"])
        #expect(problems(ServiceSettings(command: ["sleep"]), name: "a b") == [#"name: service name "a b" may hold only letters, digits, - and _"#])
        #expect(problems(ServiceSettings(command: ["sleep"], ready: Readiness())) == ["ready: ready needs a check"])
        #expect(
            problems(ServiceSettings(command: ["sleep"], ready: Readiness(tcp: "x", log: "y"))) == ["ready: ready has tcp and log; give exactly one"])
        #expect(
            problems(ServiceSettings(command: ["sleep"], ready: Readiness(tcp: "localhost"))) == [
                #"ready.tcp: tcp must be host:port, found "localhost""#
            ])
        #expect(
            problems(ServiceSettings(command: ["sleep"], ready: Readiness(http: "https://x/"))) == [
                "ready.http: the readiness check speaks plain HTTP only"
            ])
        #expect(
            problems(ServiceSettings(command: ["sleep"], ready: Readiness(log: "(", timeout: 0))) == [
                #"ready.log: invalid regular expression "(""#, "ready.timeout: timeout must be more than 0 seconds",
            ])
        #expect(problems(ServiceSettings(command: ["sleep"], stopSignal: "TERN")) == [#"stop_signal: unknown signal "TERN""#])
    }

    @Test("the minimal HTTP client reads the status line")
    func statusLine() {
        #expect((try? HTTPStatusProbe.parseStatus("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n").get()) == 503)
        #expect((try? HTTPStatusProbe.parseStatus("HTTP/1.0 200\r\n").get()) == 200)
        #expect((try? HTTPStatusProbe.parseStatus("SSH-2.0-OpenSSH\r\n").get()) == nil)
    }
}
