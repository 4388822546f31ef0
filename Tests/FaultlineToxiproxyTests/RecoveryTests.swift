#if canImport(Glibc)
    import Glibc
#endif
import FaultlineKit
import FaultlineNetwork
import FaultlineTestSupport
import FaultlineTesting
import FaultlineToxiproxy
import Foundation
import Testing

/// `faultline run --profile …` on a Toxiproxy server (`faultline proxy` as a real child process)
/// killed with SIGKILL at different points, then `faultline recover`, or the next run, removes
/// what it left — and only that: someone else's proxy and toxic on the server stay as they were.
@Suite("Recovery of what a killed run left on a Toxiproxy server", .serialized, .timeLimit(.minutes(5)))
struct RecoveryTests {
    /// Where the run is when it is killed.
    enum Point: String, CaseIterable, CustomTestStringConvertible {
        /// Its suite proxy is on the server; the experiment may not have started.
        case proxyCreated
        /// Every kind of fault is on the server: toxics on its own and on someone else's proxy,
        /// someone else's proxy disabled, proxies made by activities.
        case faultsLive
        /// The method is over and a rollback is running (a program that waits).
        case rollingBack

        var testDescription: String { rawValue }
    }

    /// A suite whose one experiment injects everything the Toxiproxy backend and driver can;
    /// for ``Point/rollingBack`` its rollback waits instead of its method: `sleep <token>`, a
    /// number only this test uses.
    static func suite(server: String, service: Int, point: Point, token: String) -> String {
        let wait = "{type: probe, name: wait, provider: {type: process, path: sh, arguments: [-c, \"touch waiting; exec sleep \(token)\"]}}"
        return """
            name: killed
            proxies:
              - {name: service, upstream: "127.0.0.1:\(service)"}
            experiments:
              - title: held up
                method:
            \(RunTests.everyKindOfFault(service: service))
            \(point == .rollingBack ? "" : "      - \(wait)")
                rollbacks:
            \(point == .rollingBack ? "      - \(wait)" : "      - {type: probe, name: noop, provider: {type: process, path: \"true\"}}")
            profiles:
              shared: {default: true, toxics: {backend: toxiproxy, url: "\(server)"}}
            """
    }

    /// Processes whose command line contains `token`.
    static func processes(containing token: String) -> [pid_t] {
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
        return pids.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                let status = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), !status.contains(") Z ")
            else { return false }
            return String(decoding: data, as: UTF8.self).contains(token)
        }
    }

    /// Starts the suite and kills faultline with SIGKILL once it reaches `point`.
    /// - Returns: the killed run.
    static func killedRun(at point: Point, server: ToxiproxyStandIn, client: ToxiproxyClient, service: Int, scratch: ScratchDirectory, token: String)
        async throws -> TestProcess
    {
        try scratch.write("suite.yaml", suite(server: server.url, service: service, point: point, token: token))
        let run = try TestProcess.faultline(["run", "suite.yaml", "--journal-path", "journals"], in: scratch)
        let reached = await eventually(timeout: .seconds(60)) {
            guard run.isRunning else { return true }
            switch point {
            case .proxyCreated: return (try? await client.proxies().contains { $0.name == "service" }) ?? false
            case .faultsLive, .rollingBack: return scratch.exists("waiting")
            }
        }
        run.signal(SIGKILL)
        let status = await run.wait()
        try #require(reached && status == 128 + SIGKILL, "the run did not reach \(point) (exit \(status)): \(run.stdout)\n\(run.stderr)")
        return run
    }

    @Test(
        "SIGKILL leaves the run's faults on the server; faultline recover removes them, only them, and the journal says so", arguments: Point.allCases
    )
    func recoverAfterKill(point: Point) async throws {
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn { server, client in
                let theirs = try await RunTests.preexisting(client)
                let scratch = try ScratchDirectory()
                let token = "60.\(UInt32.random(in: 100_000...999_999))"
                _ = try await Self.killedRun(at: point, server: server, client: client, service: service.port, scratch: scratch, token: token)

                // What the issue reports: the run's proxies (and toxics) outlive it.
                let left = try await client.proxies()
                #expect(left.contains { $0.name == "service" }, "\(left)")
                if point != .proxyCreated {
                    #expect(left.map(\.name) == ["ctk", "extra", "service", "theirs"])
                    #expect(try await client.proxy(named: "theirs").enabled == false)
                    #expect(!Self.processes(containing: token).isEmpty, "the waiting program outlives the run")
                }

                let recover = try TestProcess.faultline(["recover"], in: scratch)
                #expect(await recover.wait() == 0, "\(recover.stdout)\n\(recover.stderr)")
                #expect(recover.stdout.contains("recovered what a dead run left: suite.yaml --profile shared"), "\(recover.stdout)")
                #expect(recover.stdout.contains("undone: proxy service on \(server.url): deleted"), "\(recover.stdout)")
                #expect(try await client.proxies() == [theirs])
                #expect(Self.processes(containing: token).isEmpty, "faultline recover ends the program the run left")

                let journalPath = scratch.path("journals/01-held-up.json")
                if point != .proxyCreated {
                    let journal = try Journal.load(path: journalPath)
                    #expect(journal.status == .interrupted)
                    #expect(journal.reason?.contains("was killed") == true)
                    let note = try #require(journal.recovery?.first)
                    #expect(note.automatic == false)
                    #expect(note.undone.contains("toxic bandwidth_downstream on proxy theirs on \(server.url): removed"), "\(note.undone)")
                    #expect(note.failed.isEmpty)
                }

                // Idempotent: a second recovery finds nothing.
                let again = try TestProcess.faultline(["recover"], in: scratch)
                #expect(await again.wait() == 0)
                #expect(again.stdout.contains("nothing to recover"), "\(again.stdout)")
            }
        }
    }

    @Test("the next run against the same server first removes what a killed run left there, and says so")
    func nextRunRecovers() async throws {
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn { server, client in
                let theirs = try await RunTests.preexisting(client)
                let scratch = try ScratchDirectory()
                let token = "60.\(UInt32.random(in: 100_000...999_999))"
                _ = try await Self.killedRun(at: .faultsLive, server: server, client: client, service: service.port, scratch: scratch, token: token)
                #expect(try await client.proxies().count == 4)

                // Another suite on the same server: its automatic step covers any dead run's leftovers there.
                try scratch.write(
                    "next.yaml",
                    """
                    name: next
                    experiments:
                      - title: looks
                        method:
                          - {type: probe, name: extra, provider: {type: python, module: chaostoxi.proxy.probes, func: proxy_exist, arguments: {proxy_name: extra}}}
                    profiles:
                      shared: {default: true, toxics: {backend: toxiproxy, url: "\(server.url)"}}
                    """)
                let next = try TestProcess.faultline(["run", "next.yaml", "--journal-path", "next"], in: scratch)
                #expect(await next.wait() == 0, "\(next.stdout)\n\(next.stderr)")
                #expect(next.stdout.contains("recovered what a dead run left: suite.yaml --profile shared"), "\(next.stdout)")
                #expect(next.stdout.contains("undone: toxic latency_downstream on proxy service"), "\(next.stdout)")
                // The next run saw a clean server: the dead run's proxy was gone before its experiment.
                #expect(try Journal.load(path: scratch.path("next/01-looks.json")).run.first?.output == false)
                #expect(try await client.proxies() == [theirs])
                let journal = try Journal.load(path: scratch.path("journals/01-held-up.json"))
                #expect(journal.status == .interrupted)
                #expect(journal.recovery?.first?.automatic == true)
                // The program the dead run left is on this machine, for `faultline recover` (another suite's run leaves it).
                let recover = try TestProcess.faultline(["recover"], in: scratch)
                #expect(await recover.wait() == 0)
                #expect(Self.processes(containing: token).isEmpty)
            }
        }
    }

    @Test("a server a Chaos Toolkit experiment names (toxiproxy_url) is recovered when the next run first reaches it")
    func nextRunRecoversNamedServer() async throws {
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn { server, client in
                let theirs = try await RunTests.preexisting(client)
                let scratch = try ScratchDirectory()
                let arguments = ["run", RunTests.chaosToolkitExperiment, "--var", "toxiproxy_url=\(server.url)"]
                let environment = ["SERVICE_PORT": String(service.port)]
                let killed = try TestProcess.faultline(arguments + ["--journal-path", "killed.json"], in: scratch, environment: environment)
                let toxic = await eventually(timeout: .seconds(60)) {
                    guard killed.isRunning, let proxies = try? await client.proxies() else { return !killed.isRunning }
                    return proxies.contains { $0.name == "service" && !$0.toxics.isEmpty }
                }
                killed.signal(SIGKILL)
                #expect(await killed.wait() == 128 + SIGKILL)
                try #require(toxic, "the experiment never had a toxic on the server: \(killed.stdout)\n\(killed.stderr)")
                #expect(try await client.proxies().count == 2)

                // Without the recovery its create_proxy would meet the dead run's proxy (409).
                let next = try TestProcess.faultline(arguments + ["--journal-path", "next.json"], in: scratch, environment: environment)
                #expect(await next.wait() == 0, "\(next.stdout)\n\(next.stderr)")
                #expect(next.stdout.contains("undone: proxy service on \(server.url): deleted"), "\(next.stdout)")
                #expect(try await client.proxies() == [theirs])
                #expect(try Journal.load(path: scratch.path("killed.json")).recovery?.first?.automatic == true)
            }
        }
    }

    @Test("a concurrent faultline recover leaves a live run's ledger alone; the run then cleans up and deletes it")
    func liveRunUntouched() async throws {
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn { server, client in
                let theirs = try await RunTests.preexisting(client)
                let scratch = try ScratchDirectory()
                let token = "60.\(UInt32.random(in: 100_000...999_999))"
                try scratch.write("suite.yaml", Self.suite(server: server.url, service: service.port, point: .faultsLive, token: token))
                let run = try TestProcess.faultline(["run", "suite.yaml", "--journal-path", "journals"], in: scratch)
                let reached = await eventually(timeout: .seconds(60)) { scratch.exists("waiting") || !run.isRunning }
                guard reached, run.isRunning else {
                    await run.stop()
                    Issue.record("the run did not reach its faults: \(run.stdout)\n\(run.stderr)")
                    return
                }
                let ledgers = try FileManager.default.contentsOfDirectory(atPath: scratch.path("state/ledgers")).filter { $0.hasSuffix(".ledger") }
                #expect(ledgers.count == 1)

                let recover = try TestProcess.faultline(["recover"], in: scratch)
                #expect(await recover.wait() == 0, "\(recover.stdout)\n\(recover.stderr)")
                #expect(recover.stdout.contains("left alone: the ledger of a live run (suite.yaml, pid \(run.pid)"), "\(recover.stdout)")
                #expect(try await client.proxies().map(\.name) == ["ctk", "extra", "service", "theirs"])

                run.signal(SIGTERM)
                #expect(await run.wait() == 130, "\(run.stdout)\n\(run.stderr)")
                #expect(try await client.proxies() == [theirs])
                let after = try FileManager.default.contentsOfDirectory(atPath: scratch.path("state/ledgers")).filter { $0.hasSuffix(".ledger") }
                #expect(after.isEmpty, "a run that undid everything deletes its ledger")
            }
        }
    }

    @Test(
        "a third signal while the run removes its faults from a server that stopped answering exits at once with 130, ending its service; faultline recover removes what it left"
    )
    func thirdSignal() async throws {
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn { server, client in
                let scratch = try ScratchDirectory()
                let token = "60.\(UInt32.random(in: 100_000...999_999))"
                try scratch.write(
                    "suite.yaml",
                    """
                    name: stuck
                    proxies:
                      - {name: service, upstream: "127.0.0.1:\(service.port)"}
                    services:
                      - {name: idle, command: [sleep, "\(token)"]}
                    experiments:
                      - title: held up
                        method:
                          - {type: action, name: slow, provider: {type: toxic, proxy: service, toxic: latency, attributes: {latency: 5}}}
                          - {type: probe, name: wait, provider: {type: process, path: sh, arguments: [-c, "touch waiting; exec sleep 60"]}}
                    profiles:
                      shared: {default: true, toxics: {backend: toxiproxy, url: "\(server.url)", timeout: 120}}
                    """)
                let run = try TestProcess.faultline(["run", "suite.yaml", "--journal-path", "journals"], in: scratch)
                try #require(await eventually(timeout: .seconds(60)) { scratch.exists("waiting") || !run.isRunning }, "\(run.stdout)\n\(run.stderr)")
                try #require(run.isRunning && !Self.processes(containing: token).isEmpty, "\(run.stdout)\n\(run.stderr)")

                // The server stops answering, so removing the run's toxic waits on it (for up to the profile's 120 s).
                server.child.signal(SIGSTOP)
                defer { server.child.signal(SIGCONT) }
                run.signal(SIGINT)
                #expect(await eventually { run.stdout.contains("SIGINT: stopping the method, then rolling back") }, "\(run.stdout)")
                run.signal(SIGINT)
                #expect(await eventually { run.stdout.contains("SIGINT again: aborting the rollbacks; still removing the faults") }, "\(run.stdout)")
                #expect(run.isRunning, "the removal should still be waiting on the stopped server: \(run.stdout)")
                run.signal(SIGINT)
                #expect(await run.wait() == 130, "\(run.stdout)\n\(run.stderr)")
                #expect(run.stderr.contains("SIGINT a third time: exiting now, killing every process Faultline started"), "\(run.stderr)")
                #expect(await eventually { Self.processes(containing: token).isEmpty }, "the run's service outlived it")

                // What it could not remove is in its ledger: recover removes it once the server answers again.
                server.child.signal(SIGCONT)
                let recover = try TestProcess.faultline(["recover"], in: scratch)
                #expect(await recover.wait() == 0, "\(recover.stdout)\n\(recover.stderr)")
                #expect(recover.stdout.contains("undone: proxy service on \(server.url): deleted"), "\(recover.stdout)")
                #expect(try await client.proxies().isEmpty)
            }
        }
    }
}
