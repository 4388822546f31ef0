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

@Suite("host: ssh://… — what the process plugin reads")
struct RemoteHostParsingTests {
    @Test(
        "an ssh URL gives its user, host and port",
        arguments: [
            ("ssh://deploy@db.example:2222", "deploy", "db.example", 2222),
            ("ssh://10.0.0.7", nil, "10.0.0.7", nil),
            ("root@198.18.0.2", "root", "198.18.0.2", nil),
            ("ssh://ops@[fd00::7]:22", "ops", "fd00::7", 22),
        ] as [(String, String?, String, Int?)])
    func parses(text: String, user: String?, host: String, port: Int?) throws {
        let parsed = try RemoteHost(url: text)
        #expect(parsed.user == user)
        #expect(parsed.hostname == host)
        #expect(parsed.port == port)
    }

    @Test(
        "what ssh could read as an option, or a shell could expand, is refused",
        arguments: ["ssh://-oProxyCommand=touch%20x", "ssh://root@host;touch x", "ssh://$(id)@host", "http://host", "ssh://host:99999", "ssh://-l@x"])
    func refuses(text: String) {
        #expect(throws: ArgumentError.self) { try RemoteHost(url: text) }
    }

    @Test("host_key_checking is strict by default, and a strict host needs its known_hosts file")
    func strictByDefault() throws {
        let host = try arguments(RemoteHost.self, ["url": "ssh://a@b", "known_hosts": "/nonexistent/known_hosts"])
        #expect(host.hostKeyChecking == .strict)
        #expect(host.sshOptions.contains("StrictHostKeyChecking=yes"))
        #expect(host.sshOptions.contains("BatchMode=yes"))
        #expect(host.problems().map(\.key) == ["host.known_hosts"])
        let lax = try arguments(RemoteHost.self, ["url": "ssh://a@b", "host_key_checking": "accept-new"])
        #expect(lax.sshOptions.contains("StrictHostKeyChecking=accept-new"))
        #expect(throws: (any Error).self) { try arguments(RemoteHost.self, ["url": "ssh://a@b", "host_key_checking": "maybe"]) }
    }

    @Test("a quoted argument reaches the remote shell as one word, whatever it holds")
    func quoting() {
        #expect(RemoteScript.quote("a'b") == #"'a'\''b'"#)
        #expect(RemoteScript.quote("$(touch x); `id`") == "'$(touch x); `id`'")
    }

    @Test("a dead run's control directory is swept; a directory of another name that starts the same is left alone")
    func sweepsOnlyItsOwnDirectories() throws {
        // A pid above Linux's highest (2^22) never runs: the "run" that made the first directory is dead.
        let dead = "/tmp/faultline-ssh-9999999-a1B2c3"
        let uuidLike = "/tmp/faultline-ssh-12345678-9abc-4def-8123-456789abcdef"
        for directory in [dead, uuidLike] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        defer { for directory in [dead, uuidLike] { try? FileManager.default.removeItem(atPath: directory) } }
        FileManager.default.createFile(atPath: "\(dead)/c1", contents: nil)
        RemoteShells.removeAbandonedDirectories()
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(FileManager.default.fileExists(atPath: uuidLike))
    }
}

/// Runs a provider's `perform` with arguments decoded as the engine would.
func perform<P: Action>(_ provider: P, _ value: Value, context: ActivityContext = makeContext()) async throws -> Value {
    let decoded = try arguments(P.Arguments.self, value)
    try P.validate(decoded)
    return try await provider.perform(decoded, context: context)
}

@Suite("Processes on another host over ssh (a network namespace, or loopback, running sshd)", .serialized)
struct RemoteProcessTests {
    @Test(
        "process runs the program there: status, stdout and stderr; hostile arguments stay arguments",
        .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)))
    func programOutput() async throws {
        try await closing(try await TestSSHHost.start()) { host in
            let marker = host.directory.path("pwned")
            let hostile = ["a'b", "$(touch \(marker))", "`touch \(marker)`; touch \(marker)", "\"x\" > \(marker)", "*"]
            let output = try await perform(
                ProcessProvider(),
                [
                    "path": "sh",
                    "arguments": .array(
                        [.string("-c"), .string("printf '%s\\n' \"$@\"; echo \"$GREETING\" >&2; exit 3"), .string("sh")] + hostile.map { .string($0) }
                    ),
                    "env": ["GREETING": "hello 'there'"], "cwd": "/tmp",
                    "host": .object(["url": .string(host.url), "identity_file": .string(host.identity), "known_hosts": .string(host.knownHosts)]),
                ])
            #expect(output["status"]?.intValue == 3)
            #expect(output["stdout"]?.stringValue == hostile.joined(separator: "\n") + "\n")
            #expect(output["stderr"]?.stringValue == "hello 'there'\n")
            #expect(output["host"]?.stringValue == host.url)
            #expect(!FileManager.default.fileExists(atPath: marker))
        }
    }

    @Test("a program that outlives its timeout is stopped there", .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)))
    func programTimeout() async throws {
        try await closing(try await TestSSHHost.start()) { host in
            let token = uniqueToken()
            let result = await failure {
                try await perform(
                    ProcessProvider(),
                    [
                        "path": "python3", "arguments": ["-c", "import time; time.sleep(600)", .string(token)], "timeout": 1,
                        "host": .object(["url": .string(host.url), "identity_file": .string(host.identity), "known_hosts": .string(host.knownHosts)]),
                    ])
            }
            #expect(result?.message.contains("timed out after 1 s") == true, "\(String(describing: result))")
            #expect(await eventually { liveProcesses(containing: token).isEmpty })
        }
    }

    @Test(
        "process.kill by name and by port ends the process there, hostile names included",
        .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)))
    func killByNameAndPort() async throws {
        try await closing(try await TestSSHHost.start()) { host in
            let remote: Value = .object(["url": .string(host.url), "identity_file": .string(host.identity), "known_hosts": .string(host.knownHosts)])
            // A name a shell would expand, run from a file of that name.
            let name = "fl'\(String(UInt32.random(in: 0...UInt32.max), radix: 36)) $(touch pwned);x"
            let sleeper = try uniqueSleeper(named: name, in: host.directory)
            let target = try host.spawn([sleeper, uniqueSleep()])
            defer { target.signal(SIGKILL) }
            try #require(await eventually { SystemProcess.read(target.pid)?.arguments.first == sleeper })
            let running = try await ProcessRunning().probe(
                try arguments(ProcessRunning.Arguments.self, ["name": .string(name), "host": remote]), context: makeContext(kind: .probe))
            #expect(running["pids"] == [.int(Int(target.pid))], "\(running)")
            let output = try await perform(ProcessKill(), ["name": .string(name), "host": remote, "grace": 5])
            #expect(output["targets"]?[0]?["pid"]?.intValue == Int(target.pid))
            #expect(output["targets"]?[0]?["host"]?.stringValue == host.url)
            #expect(output["targets"]?[0]?["ended"]?.stringValue?.hasSuffix("after SIGTERM") == true, "\(output)")
            #expect(await ended(target) == .signalled(SIGTERM))
            #expect(!host.directory.exists("pwned"))
            #expect(!FileManager.default.fileExists(atPath: "pwned"))

            // A listener on that host: only there (in namespace mode) does anything listen on its port.
            let token = uniqueToken()
            let (listener, line) = try await spawnAndReadLine(
                host.command([
                    "python3", "-c",
                    "import signal, socket, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ns = socket.socket()\ns.bind(('\(host.address)', 0))\ns.listen()\nprint(s.getsockname()[1], flush=True)\ntime.sleep(3000)",
                    token,
                ]))
            defer { listener.signal(SIGKILL) }
            let port = try #require(Int(line))
            let killed = try await perform(ProcessKill(), ["port": .int(port), "host": remote, "grace": 0.5])
            #expect(killed["targets"]?[0]?["pid"]?.intValue == Int(listener.pid))
            #expect(killed["targets"]?[0]?["escalated"] == true, "it ignores TERM: \(killed)")
            #expect(await ended(listener) == .signalled(SIGKILL))

            let none = await failure { try await perform(ProcessKill(), ["port": .int(port), "host": remote]) }
            #expect(none?.message.contains("nothing listens on TCP port \(port)") == true, "\(String(describing: none))")

            // The safety rules hold there too.
            let initProcess = await failure { try await perform(ProcessKill(), ["pid": 1, "host": remote]) }
            #expect(initProcess?.message.hasPrefix("refusing to signal what matches pid 1") == true, "\(String(describing: initProcess))")
            #expect(initProcess?.details == ["pid 1 (\(SystemProcess.read(1)?.commandLine ?? "")): pid 1 (init) is never signalled"])
        }
    }

    @Test(
        "process.signal STOP freezes a process there until the experiment's end sends CONT",
        .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)))
    func freezeAndThaw() async throws {
        try await closing(try await TestSSHHost.start()) { host in
            let name = "fl\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
            let target = try host.spawn([try uniqueSleeper(named: name, in: host.directory), uniqueSleep()])
            defer { target.signal(SIGKILL) }
            try #require(await eventually { SystemProcess.read(target.pid)?.comm == name })
            let remote: Value = .object(["url": .string(host.url), "identity_file": .string(host.identity), "known_hosts": .string(host.knownHosts)])
            let pidfile = try host.directory.write("target.pid", "\(target.pid)\n")
            let missing = await failure {
                try await perform(ProcessSignal(), ["pidfile": .string(pidfile + ".gone"), "signal": "STOP", "host": remote])
            }
            #expect(missing?.message == "pidfile \(pidfile).gone does not exist on \(host.url)", "\(String(describing: missing))")
            let context = makeContext()
            let output = try await perform(ProcessSignal(), ["pidfile": .string(pidfile), "signal": "STOP", "host": remote], context: context)
            #expect(output["targets"]?[0]?["state"] == "stopped")
            #expect(SystemProcess.read(target.pid)?.isStopped == true)
            let cleanups = await context.runCleanups()
            #expect(cleanups.map(\.status) == [.succeeded], "\(cleanups)")
            #expect(SystemProcess.read(target.pid)?.isStopped == false)
        }
    }

    @Test(
        "a service there starts, reports its pid on that host, stops, and leaves no ssh process",
        .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)))
    func service() async throws {
        try await closing(try await TestSSHHost.start()) { host in
            let token = uniqueToken()
            let scratch = try ScratchDirectory(prefix: "faultline-remote-service")
            let ledger = try RunLedger.create(in: scratch.path("ledgers"), header: LedgerHeader(file: "suite.yaml", profile: nil))
            let supervisor = ServiceSupervisor(runDirectory: scratch.path("run"), ledger: ledger)
            let definition = ServiceDefinition(
                name: "api",
                settings: ServiceSettings(
                    command: ["sh", "-c", "echo \"up in $PWD as $ROLE\"; exec python3 -c 'import time; time.sleep(3000)' \(token)"],
                    env: ["ROLE": "primary"], cwd: "/tmp", ready: Readiness(log: "^up in"), host: try host.remoteHost()))
            let start: ServiceStart
            do {
                start = try await supervisor.start(definition, owner: .suite)
            } catch {
                _ = await supervisor.stopAll()
                throw error
            }
            // The host shares this machine's processes: its marker finds the service (python3
            // may be a shim that execs and starts the real one, so look until it settles).
            let found = await eventually {
                ServiceMarker.processes(withPrefix: supervisor.remoteMarkerPrefix).contains { $0.pid == start.pid && $0.commandLine.contains(token) }
            }
            #expect(
                found, "the pid is the process on that host: \(ServiceMarker.processes(withPrefix: supervisor.remoteMarkerPrefix).map(\.commandLine))"
            )
            #expect(try String(contentsOfFile: start.logPath, encoding: .utf8).contains("up in /tmp as primary"))
            #expect(ledger.entries.contains { $0.kind == "process.remote" && $0.summary.contains("service api on \(host.url) (pid \(start.pid))") })
            #expect(ServiceMarker.processes(withPrefix: supervisor.markerPrefix).contains { $0.arguments.first?.hasSuffix("/ssh") == true })

            // process.kill by service: reaches it there; the experiment's end starts it again.
            let context = makeContext(supervisor: supervisor)
            let killed = try await perform(ProcessKill(), ["service": "api", "grace": 5], context: context)
            #expect(killed["targets"]?[0]?["pid"]?.intValue == Int(start.pid), "\(killed)")
            #expect(killed["targets"]?[0]?["service"] == "api")
            #expect(killed["targets"]?[0]?["host"]?.stringValue == host.url)
            #expect(await eventually { SystemProcess.read(start.pid) == nil || SystemProcess.read(start.pid)?.isZombie == true })
            let cleanups = await context.runCleanups()
            #expect(cleanups.map(\.status) == [.succeeded], "\(cleanups)")
            let restarted = try #require(await supervisor.service(named: "api").pid)
            #expect(restarted != start.pid)
            #expect(try await supervisor.service(named: "api").isRunning)

            let stop = try await supervisor.stop("api")
            #expect(stop?.pid == restarted)
            #expect(stop?.termination == .signalled(SIGTERM))
            #expect(ServiceMarker.processes(withPrefix: supervisor.remoteMarkerPrefix).isEmpty)
            #expect(!ledger.entries.contains { $0.kind == "process.remote" })

            let problems = await supervisor.stopAll()
            #expect(problems == [])
            #expect(ServiceMarker.processes(withPrefix: supervisor.markerPrefix).isEmpty, "the master connection is closed")
            ledger.finish()
        }
    }

    @Test(
        "an ssh failure is a named error saying the host and what to fix",
        .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)))
    func failures() async throws {
        try await closing(try await TestSSHHost.start()) { host in
            func attempt(_ remote: [String: Value]) async -> ActivityFailure? {
                var object = ValueObject()
                for (key, value) in remote { object[key] = value }
                return await failure { try await perform(ProcessProvider(), ["path": "true", "host": .object(object)]) }
            }
            let base: [String: Value] = ["url": .string(host.url), "identity_file": .string(host.identity), "known_hosts": .string(host.knownHosts)]

            // Authentication: a key the server does not know.
            let stranger = host.directory.path("stranger")
            try await TestSSHHost.must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", stranger])
            var wrongKey = base
            wrongKey["identity_file"] = .string(stranger)
            let auth = await attempt(wrongKey)
            #expect(auth?.message.contains("ssh to \(host.url): authentication failed") == true, "\(String(describing: auth))")
            #expect(auth?.message.contains("authorized_keys") == true)

            // Host key mismatch: known_hosts holds another key for it.
            let otherKey = try String(contentsOfFile: stranger + ".pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
            let wrongHosts = try host.directory.write("wrong_known_hosts", "[\(host.address)]:\(host.port) \(otherKey)\n")
            var mismatch = base
            mismatch["known_hosts"] = .string(wrongHosts)
            let changed = await attempt(mismatch)
            #expect(changed?.message.contains("ssh to \(host.url): host key mismatch") == true, "\(String(describing: changed))")
            #expect(changed?.message.contains("ssh-keygen -R") == true)

            // Unknown host key under the strict default.
            let empty = try host.directory.write("empty_known_hosts", "")
            var unknown = base
            unknown["known_hosts"] = .string(empty)
            let unknownKey = await attempt(unknown)
            #expect(unknownKey?.message.contains("host key unknown") == true, "\(String(describing: unknownKey))")

            // Nothing listens on that port.
            let closedPort = try FreePort.take()
            var refused = base
            refused["url"] = .string("ssh://\(host.user)@\(host.address):\(closedPort)")
            let refusal = await attempt(refused)
            #expect(refusal?.message.contains("connection refused") == true, "\(String(describing: refusal))")

            // A server that accepts and never speaks: the connect timeout ends it.
            let (silent, line) = try await spawnAndReadLine(
                host.command([
                    "python3", "-c",
                    "import socket, time\ns = socket.socket()\ns.bind(('\(host.address)', 0))\ns.listen()\nprint(s.getsockname()[1], flush=True)\ntime.sleep(3000)",
                ]))
            defer { silent.signal(SIGKILL) }
            var mute = base
            mute["url"] = .string("ssh://\(host.user)@\(host.address):\(line)")
            mute["connect_timeout"] = 1
            let timeout = await attempt(mute)
            #expect(timeout?.message.contains("timed out") == true, "\(String(describing: timeout))")
            #expect(timeout?.message.contains("connect_timeout") == true)
        }
    }
}

@Suite("A killed run's remote services", .serialized)
struct RemoteRecoveryTests {
    /// Runs a suite with services on `host` (each `<token>-<name>`) and a local action that waits;
    /// returns once they all run.
    func startRun(on host: TestSSHHost, token: String, in directory: ScratchDirectory, services: [String] = ["api"]) async throws -> TestProcess {
        try directory.write(
            "suite.yaml",
            """
            name: remote
            services:
            \(services.map { name in
                """
                  - name: \(name)
                    host: \(host.yaml)
                    command: [python3, -c, "import time; print('up', flush=True); time.sleep(3000)", "\(token)-\(name)"]
                    ready: {log: up, timeout: 30}
                """
            }.joined(separator: "\n"))
            experiments:
              - title: waits
                description: an action that runs until faultline is stopped
                method:
                  - type: action
                    name: wait
                    provider: {type: process, path: sh, arguments: [-c, "touch reached; exec python3 -c 'import time; time.sleep(600)' \(token)-action"]}
            """)
        let faultline = try TestProcess.faultline(["run", "suite.yaml", "--journal-path", "journals"], in: directory)
        let reached = await eventually(timeout: .seconds(60)) { directory.exists("reached") || !faultline.isRunning }
        if !(reached && faultline.isRunning) {
            faultline.child.signal(SIGKILL)
            throw TestFailure("faultline did not reach the experiment: \(faultline.stdout)\n\(faultline.stderr)")
        }
        return faultline
    }

    /// The service's own process (not the ssh session that names it).
    func service(_ token: String) -> [SystemProcess] {
        liveProcesses(containing: "\(token)-api").filter { $0.arguments.first?.hasSuffix("python3") == true }
    }

    func cleanUp(_ faultline: TestProcess, token: String) {
        faultline.child.signal(SIGKILL)
        for process in liveProcesses(containing: token) + ServiceMarker.processes(withPrefix: "\(faultline.pid)-") { kill(process.pid, SIGKILL) }
    }

    @Test(
        "kill -9 of faultline and its guardian: the service's ssh session ends, and the other host stops it",
        .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)))
    func sessionEnds() async throws {
        try await closing(try await TestSSHHost.start()) { host in
            let directory = try ScratchDirectory(prefix: "faultline-remote-recover")
            let token = uniqueToken()
            let faultline = try await startRun(on: host, token: token, in: directory)
            defer { cleanUp(faultline, token: token) }
            #expect(service(token).count == 1)
            for guardian in liveProcesses(containing: "faultline-guardian").filter({ $0.parent == faultline.pid }) { kill(guardian.pid, SIGKILL) }
            faultline.signal(SIGKILL)
            #expect(await faultline.wait() == 128 + SIGKILL)
            #expect(await eventually { service(token).isEmpty })
            // Its ssh processes stay for faultline recover (nothing of faultline runs to end them).
            let recover = try TestProcess.faultline(["recover"], in: directory)
            #expect(await recover.wait() == 0, "\(recover.stdout)\n\(recover.stderr)")
            #expect(recover.stdout.contains("undone: service api on \(host.url)"), "\(recover.stdout)")
            #expect(await eventually { ServiceMarker.processes(withPrefix: "\(faultline.pid)-").isEmpty })
        }
    }

    @Test(
        "kill -9 of faultline while the other host cannot hear of it: the service runs on until faultline recover stops it over ssh",
        .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)))
    func recoverRemoteService() async throws {
        try await closing(try await TestSSHHost.start()) { host in
            let directory = try ScratchDirectory(prefix: "faultline-remote-recover")
            let token = uniqueToken()
            let faultline = try await startRun(on: host, token: token, in: directory)
            defer { cleanUp(faultline, token: token) }
            #expect(service(token).count == 1)

            // A partition, as far as the other host can tell: the ssh processes are frozen, so
            // the session's end never reaches it; and the guardian is gone.
            let ssh = ServiceMarker.processes(withPrefix: "\(faultline.pid)-").filter { $0.arguments.first?.hasSuffix("/ssh") == true }
            #expect(ssh.contains { $0.arguments.contains("ControlMaster=yes") }, "one master connection: \(ssh.map(\.commandLine))")
            for process in ssh { kill(process.pid, SIGSTOP) }
            for guardian in liveProcesses(containing: "faultline-guardian").filter({ $0.parent == faultline.pid }) { kill(guardian.pid, SIGKILL) }
            faultline.signal(SIGKILL)
            #expect(await faultline.wait() == 128 + SIGKILL)
            #expect(service(token).count == 1, "nothing stops it but recovery")

            let dry = try TestProcess.faultline(["recover", "--dry-run"], in: directory)
            #expect(await dry.wait() == 0)
            #expect(dry.stdout.contains("would undo: service api on \(host.url) (pid \(service(token).first?.pid ?? 0))"), "\(dry.stdout)")

            let recover = try TestProcess.faultline(["recover"], in: directory)
            #expect(await recover.wait() == 0, "\(recover.stdout)\n\(recover.stderr)")
            #expect(recover.stdout.contains("undone: service api on \(host.url)"), "\(recover.stdout)")
            #expect(recover.stdout.contains("stopped pid"), "\(recover.stdout)")
            #expect(await eventually { service(token).isEmpty })
            #expect(await eventually { liveProcesses(containing: token).isEmpty })
            #expect(await eventually { ServiceMarker.processes(withPrefix: "\(faultline.pid)-").isEmpty }, "no ssh client or master left")
            let journal = try Journal.load(path: directory.path("journals/01-waits.json"))
            #expect(journal.status == .interrupted)
        }
    }

    /// kill -9 of faultline while the other host cannot hear of it (its ssh processes frozen, the
    /// guardian gone): the remote services run on.
    func killUnheard(_ faultline: TestProcess) async {
        let ssh = ServiceMarker.processes(withPrefix: "\(faultline.pid)-").filter { $0.arguments.first?.hasSuffix("/ssh") == true }
        for process in ssh { kill(process.pid, SIGSTOP) }
        for guardian in liveProcesses(containing: "faultline-guardian").filter({ $0.parent == faultline.pid }) { kill(guardian.pid, SIGKILL) }
        faultline.signal(SIGKILL)
        _ = await faultline.wait()
    }

    /// The suite again, its experiment a quick one, for the next run.
    func writeQuickSuite(on host: TestSSHHost, token: String, in directory: ScratchDirectory, withService: Bool) throws {
        try directory.write(
            "suite.yaml",
            """
            name: remote
            \(withService ? """
            services:
              - name: api
                host: \(host.yaml)
                command: [python3, -c, "import time; print('up', flush=True); time.sleep(3000)", "\(token)-api"]
                ready: {log: up, timeout: 30}
            """ : "")
            experiments:
              - title: quick
                method:
                  - {type: probe, name: quick, provider: {type: process, path: "true"}}
            """)
    }

    @Test(
        "the next faultline run of the suite stops, over ssh, the services a killed run left on another host, before it starts; the dead run's journal records it",
        .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)))
    func nextRunRecoversRemoteService() async throws {
        try await closing(try await TestSSHHost.start()) { host in
            let directory = try ScratchDirectory(prefix: "faultline-remote-recover")
            let token = uniqueToken()
            let faultline = try await startRun(on: host, token: token, in: directory)
            defer { cleanUp(faultline, token: token) }
            await killUnheard(faultline)
            let left = try #require(service(token).first, "nothing stops it but recovery")

            // The same suite, now with a quick experiment and the same service: the dead run's goes first.
            try writeQuickSuite(on: host, token: token, in: directory, withService: true)
            let next = try TestProcess.faultline(["run", "suite.yaml", "--journal-path", "next"], in: directory)
            defer { cleanUp(next, token: token) }
            #expect(await next.wait() == 0, "\(next.stdout)\n\(next.stderr)")
            let recovered = next.stdout.split(separator: "\n").first { $0.contains("undone: service api on \(host.url)") }
            #expect(recovered?.contains("stopped pid \(left.pid)") == true, "\(next.stdout)")
            let recoveredAt = next.stdout.range(of: "undone: service api on \(host.url)")?.lowerBound
            let startedAt = next.stdout.range(of: "service api ready")?.lowerBound
            #expect(recoveredAt != nil && startedAt != nil && recoveredAt! <= startedAt!, "recovery comes first: \(next.stdout)")
            #expect(SystemProcess.read(left.pid).map { $0.startTime != left.startTime || $0.isZombie } ?? true, "the dead run's service is gone")
            #expect(await eventually { service(token).isEmpty }, "and the next run's own stopped with it")
            #expect(await eventually { ServiceMarker.processes(withPrefix: "\(faultline.pid)-").isEmpty }, "the dead run's frozen ssh clients too")

            let journal = try Journal.load(path: directory.path("journals/01-waits.json"))
            #expect(journal.status == .interrupted)
            let note = try #require(journal.recovery?.first)
            #expect(note.automatic)
            #expect(note.undone.contains { $0.hasPrefix("service api on \(host.url)") }, "\(note.undone)")
            let ledgers = (try? FileManager.default.contentsOfDirectory(atPath: directory.path("state/ledgers"))) ?? []
            #expect(ledgers.isEmpty, "everything undone: \(ledgers)")
        }
    }

    @Test(
        "a host the next run cannot reach fails its recovery at once, named, once per host; the run goes on and faultline recover keeps the entries",
        .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)),
        .enabled(if: TestSSHHost.hasNamespaces, Comment(rawValue: "takes the host's link down: \(TestSSHHost.namespaceSkipMessage)")))
    func nextRunWithHostDown() async throws {
        try await closing(try await TestSSHHost.start()) { host in
            let directory = try ScratchDirectory(prefix: "faultline-remote-recover")
            let token = uniqueToken()
            let faultline = try await startRun(on: host, token: token, in: directory, services: ["api", "web"])
            defer { cleanUp(faultline, token: token) }
            await killUnheard(faultline)
            #expect(service(token).count == 1)

            // The host's network goes down (its end of the link; routes here stay, so nothing leaves
            // this machine): no answer from it, and its sessions cannot hear of the dead run's ssh
            // clients ending (the next run's local recovery ends them).
            let peerLink = "flb" + host.hostLink.dropFirst(3)
            try await TestSSHHost.must("ip", ["netns", "exec", host.namespace, "ip", "link", "set", peerLink, "down"])
            try writeQuickSuite(on: host, token: token, in: directory, withService: false)
            let next = try TestProcess.faultline(["run", "suite.yaml", "--journal-path", "next"], in: directory)
            defer {
                next.child.signal(SIGKILL)
                // The host's sessions outlived the dead run's ssh clients: end them by pid.
                for process in host.processesInside() { kill(process.pid, SIGKILL) }
            }
            #expect(await next.wait() == 0, "the run goes on: \(next.stdout)\n\(next.stderr)")
            let lines = next.stdout.split(separator: "\n").map(String.init)
            let failed = lines.filter { $0.contains("not undone (kept in") }
            #expect(failed.count == 2, "\(next.stdout)")
            #expect(failed.filter { $0.contains("ssh to \(host.url): host unreachable") }.count == 2, "\(failed)")
            #expect(failed.filter { $0.contains("not tried, as ssh to \(host.url)") }.count == 1, "the host is tried once: \(failed)")
            #expect(next.stderr.contains("2 things a dead run left could not be undone"), "\(next.stderr)")
            #expect(try Journal.load(path: directory.path("next/01-quick.json")).status == .completed)
            #expect(service(token).count == 1, "still there, for faultline recover")

            let dry = try TestProcess.faultline(["recover", "--dry-run"], in: directory)
            #expect(await dry.wait() == 0)
            #expect(dry.stdout.contains("would undo: service api on \(host.url)"), "\(dry.stdout)")
            #expect(dry.stdout.contains("would undo: service web on \(host.url)"), "\(dry.stdout)")
        }
    }
}
