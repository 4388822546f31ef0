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

/// Named fault agents: one `faultline run` with a proxy in-process and proxies on two
/// `faultline proxy` agents (child processes, each with its own token), the toxics of one
/// experiment landing on the agent that holds each proxy, a SIGKILL of the runner recovered on
/// every agent, and the run-start failures that name an agent.
@Suite("Named fault agents", .serialized, .timeLimit(.minutes(5)))
struct AgentTests {
    /// A suite with `local` in-process, `alpha` on agent `a` (token from `$AGENT_A_TOKEN`) and
    /// `beta` on agent `b` (token from a file). Its experiment adds a toxic to each proxy — with
    /// the `toxic` action, a `chaostoxi` function and a `toxiproxy.toxic` — checks the service
    /// answers through the agent's proxy, then waits (`waiting` exists) until the test writes to
    /// the fifo `go`.
    static func suite(a: String, b: String, service: Int, tokenFile: String) -> String {
        """
        name: agents
        agents:
          a: {url: "\(a)", token: {type: env, key: AGENT_A_TOKEN}, connect_timeout: 2}
          b: {url: "\(b)", token: {type: file, path: "\(tokenFile)"}}
        proxies:
          - {name: local, upstream: "127.0.0.1:\(service)"}
          - {name: alpha, upstream: "127.0.0.1:\(service)", agent: a}
          - {name: beta, upstream: "127.0.0.1:\(service)", agent: b}
        experiments:
          - title: spread
            method:
              - {type: action, name: slow-local, provider: {type: toxic, proxy: local, toxic: latency, attributes: {latency: 5}}}
              - {type: action, name: slow-alpha, provider: {type: toxic, proxy: alpha, toxic: latency, attributes: {latency: 7}}}
              - {type: action, name: ctk-beta, provider: {type: python, module: chaostoxi.toxic.actions, func: create_bandwith_degradation_toxic, arguments: {for_proxy: beta, toxic_name: thin, rate: 900}}}
              - {type: probe, name: through-alpha, provider: {type: http, url: "http://${proxies.alpha.host}:${proxies.alpha.port}/"}}
              - {type: probe, name: wait, provider: {type: process, path: sh, arguments: [-c, "touch waiting; read line < go"]}}
        """
    }

    /// Two agents with different tokens, a service behind them, and a scratch directory holding
    /// agent b's token file and the fifo the experiment waits on.
    struct Setup {
        let a: ToxiproxyStandIn
        let b: ToxiproxyStandIn
        let clientA: ToxiproxyClient
        let clientB: ToxiproxyClient
        let scratch: ScratchDirectory
        let service: Int
        let environment: [String: String]

        func writeSuite() throws {
            try scratch.write("suite.yaml", AgentTests.suite(a: a.url, b: b.url, service: service, tokenFile: scratch.path("b.token")))
            guard mkfifo(scratch.path("go"), 0o600) == 0 else { throw TestFailure("mkfifo: \(String(cString: strerror(errno)))") }
        }

        /// Lets the experiment's waiting probe end: writes a line once its shell has the fifo open.
        func release() async throws {
            let path = scratch.path("go")
            let opened = await eventually(timeout: .seconds(30)) {
                let fd = open(path, O_WRONLY | O_NONBLOCK)
                guard fd >= 0 else { return false }
                _ = write(fd, "go\n", 3)
                close(fd)
                return true
            }
            try #require(opened, "nobody opened the fifo for reading")
        }
    }

    static func withAgents(_ body: (Setup) async throws -> Void) async throws {
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn(token: "alpha-\(UInt32.random(in: 0...UInt32.max))") { a, clientA in
                try await withStandIn(token: "beta-\(UInt32.random(in: 0...UInt32.max))") { b, clientB in
                    let scratch = try ScratchDirectory()
                    try scratch.write("b.token", (b.token ?? "") + "\n")
                    try await body(
                        Setup(
                            a: a, b: b, clientA: clientA, clientB: clientB, scratch: scratch, service: service.port,
                            environment: ["AGENT_A_TOKEN": a.token ?? ""]))
                }
            }
        }
    }

    /// Waits until the run's experiment waits, failing with its output if it ended first.
    static func waitForExperiment(_ run: TestProcess, _ setup: Setup) async throws {
        let reached = await eventually(timeout: .seconds(60)) { setup.scratch.exists("waiting") || !run.isRunning }
        try #require(reached && run.isRunning, "the experiment never waited: \(run.stdout)\n\(run.stderr)")
    }

    @Test("one run mixes the in-process proxy and two agents; each toxic lands on the agent holding its proxy, and nothing stays")
    func mixedRun() async throws {
        try await Self.withAgents { setup in
            try setup.writeSuite()
            let run = try TestProcess.faultline(
                ["run", "suite.yaml", "--journal-path", "journals"], in: setup.scratch, environment: setup.environment)
            try await Self.waitForExperiment(run, setup)

            // Each agent holds its proxy only, with the toxic added to it; the in-process proxy is on neither.
            let onA = try await setup.clientA.proxies()
            let onB = try await setup.clientB.proxies()
            #expect(onA.map(\.name) == ["alpha"], "\(onA)")
            #expect(onB.map(\.name) == ["beta"], "\(onB)")
            // On an agent a proxy listens on every address unless told otherwise; its exported host is the agent's.
            #expect(onA.first?.listen.hasPrefix("[::]:") == true, "\(onA)")
            #expect(onA.first?.toxics.map(\.type) == ["latency"])
            #expect(onA.first?.toxics.first?.attributes["latency"] == .int(7))
            #expect(onB.first?.toxics.map(\.name) == ["thin"])
            #expect(onB.first?.toxics.first?.attributes["rate"] == .int(900))
            #expect(run.stdout.contains("proxy alpha → 127.0.0.1:\(setup.service) on agent a"), "\(run.stdout)")

            try await setup.release()
            #expect(await run.wait() == 0, "\(run.stdout)\n\(run.stderr)")
            let journal = try Journal.load(path: setup.scratch.path("journals/01-spread.json"))
            #expect(journal.status == .completed)
            // The service answered through agent a's proxy.
            #expect(RunTests.record(journal, "through-alpha")?.status == .succeeded)
            #expect(RunTests.record(journal, "slow-local")?.output?["proxy"] == "local")
            #expect(try await setup.clientA.proxies().isEmpty)
            #expect(try await setup.clientB.proxies().isEmpty)
            // Everything undone: the run deleted its ledger.
            let ledgers = (try? FileManager.default.contentsOfDirectory(atPath: setup.scratch.path("state/ledgers"))) ?? []
            #expect(ledgers.isEmpty, "\(ledgers)")
        }
    }

    @Test("after a SIGKILL of the runner, faultline recover removes what it left on every agent, with each agent's token as the run read it")
    func recoverOnEveryAgent() async throws {
        try await Self.withAgents { setup in
            try setup.writeSuite()
            let run = try TestProcess.faultline(
                ["run", "suite.yaml", "--journal-path", "journals"], in: setup.scratch, environment: setup.environment)
            try await Self.waitForExperiment(run, setup)
            run.signal(SIGKILL)
            #expect(await run.wait() == 128 + SIGKILL)
            #expect(try await setup.clientA.proxies().map(\.name) == ["alpha"])
            #expect(try await setup.clientB.proxies().map(\.name) == ["beta"])

            // Without agent a's variable, recover cleans agent b (its token file is in the ledger)
            // and says where a's token is read from; a's entries stay for the next try.
            let partial = try TestProcess.faultline(["recover"], in: setup.scratch)
            #expect(await partial.wait() == 1, "\(partial.stdout)\n\(partial.stderr)")
            #expect(partial.stdout.contains("agent a (\(setup.a.url))"), "\(partial.stdout)")
            #expect(partial.stdout.contains("$AGENT_A_TOKEN"), "\(partial.stdout)")
            #expect(!partial.stdout.contains(setup.a.token ?? "?") && !partial.stdout.contains(setup.b.token ?? "?"))
            #expect(try await setup.clientB.proxies().isEmpty)
            #expect(try await setup.clientA.proxies().map(\.name) == ["alpha"])

            let recover = try TestProcess.faultline(["recover"], in: setup.scratch, environment: setup.environment)
            #expect(await recover.wait() == 0, "\(recover.stdout)\n\(recover.stderr)")
            #expect(recover.stdout.contains("undone: proxy alpha on agent a (\(setup.a.url)): deleted"), "\(recover.stdout)")
            #expect(try await setup.clientA.proxies().isEmpty)
            #expect(try await setup.clientB.proxies().isEmpty)
            #expect(try Journal.load(path: setup.scratch.path("journals/01-spread.json")).status == .interrupted)

            let again = try TestProcess.faultline(["recover"], in: setup.scratch, environment: setup.environment)
            #expect(await again.wait() == 0)
            #expect(again.stdout.contains("nothing to recover"), "\(again.stdout)")
        }
    }

    @Test(
        "tokens from ${secrets}: one read from the environment is recorded as its variable and found again by faultline recover; one written out is named, never written, and given with --token"
    )
    func recoverWithSecretTokens() async throws {
        try await Self.withAgents { setup in
            // The suite of writeSuite, with each agent's token a secret: a's read from a variable, b's written in the suite.
            let suite = Self.suite(a: setup.a.url, b: setup.b.url, service: setup.service, tokenFile: "unused")
                .replacingOccurrences(of: "token: {type: env, key: AGENT_A_TOKEN}", with: "token: \"${a_token}\"")
                .replacingOccurrences(of: "token: {type: file, path: \"unused\"}", with: "token: \"${b_token}\"")
                .replacingOccurrences(
                    of: "agents:\n",
                    with: "secrets:\n  agents:\n    a_token: {type: env, key: A_SECRET}\n    b_token: \"\(setup.b.token ?? "")\"\nagents:\n")
            try setup.scratch.write("suite.yaml", suite)
            guard mkfifo(setup.scratch.path("go"), 0o600) == 0 else { throw TestFailure("mkfifo: \(String(cString: strerror(errno)))") }
            let environment = ["A_SECRET": setup.a.token ?? ""]
            let run = try TestProcess.faultline(["run", "suite.yaml", "--journal-path", "journals"], in: setup.scratch, environment: environment)
            try await Self.waitForExperiment(run, setup)
            run.signal(SIGKILL)
            #expect(await run.wait() == 128 + SIGKILL)

            // The ledger names a's variable and b's secret, and holds neither token.
            let directory = setup.scratch.path("state/ledgers")
            let ledgers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".ledger") }
            try #require(ledgers.count == 1, "\(ledgers)")
            let ledger = try String(contentsOfFile: "\(directory)/\(ledgers[0])", encoding: .utf8)
            #expect(ledger.contains(#""token_env":"A_SECRET""#), "\(ledger)")
            #expect(ledger.contains(#""token_given":"secret b_token (written in suite)""#), "\(ledger)")
            #expect(!ledger.contains(setup.a.token ?? "?") && !ledger.contains(setup.b.token ?? "?"))

            // Without either: a's entries say where its token is read; b's fail before any request, saying how to give it.
            let bare = try TestProcess.faultline(["recover"], in: setup.scratch)
            #expect(await bare.wait() == 1, "\(bare.stdout)\n\(bare.stderr)")
            #expect(bare.stdout.contains("agent a (\(setup.a.url))") && bare.stdout.contains("$A_SECRET"), "\(bare.stdout)")
            #expect(
                bare.stdout.contains(
                    "agent b (\(setup.b.url)) needs the run's token, secret b_token (written in suite), whose value is not recorded; give it to faultline recover as --token b=env:VARIABLE or --token b=file:PATH"
                ), "\(bare.stdout)")
            #expect(!bare.stdout.contains(setup.a.token ?? "?") && !bare.stdout.contains(setup.b.token ?? "?"))
            #expect(try await setup.clientA.proxies().map(\.name) == ["alpha"])
            #expect(try await setup.clientB.proxies().map(\.name) == ["beta"])

            // A token on the command line itself is refused, unread.
            let literal = try TestProcess.faultline(["recover", "--token", "b=\(setup.b.token ?? "")"], in: setup.scratch)
            #expect(await literal.wait() == 2, "\(literal.stdout)\n\(literal.stderr)")
            #expect(literal.stderr.contains("give where the token is, env:VARIABLE or file:PATH"), "\(literal.stderr)")
            #expect(!literal.stderr.contains(setup.b.token ?? "?"))

            // a's variable as the run had it, b's token from a file: both agents cleaned.
            try setup.scratch.write("b-token", (setup.b.token ?? "") + "\n")
            let recover = try TestProcess.faultline(
                ["recover", "--token", "b=file:\(setup.scratch.path("b-token"))"], in: setup.scratch, environment: environment)
            #expect(await recover.wait() == 0, "\(recover.stdout)\n\(recover.stderr)")
            #expect(recover.stdout.contains("undone: proxy alpha on agent a (\(setup.a.url)): deleted"), "\(recover.stdout)")
            #expect(recover.stdout.contains("undone: proxy beta on agent b (\(setup.b.url)): deleted"), "\(recover.stdout)")
            #expect(try await setup.clientA.proxies().isEmpty)
            #expect(try await setup.clientB.proxies().isEmpty)
        }
    }

    @Test("the next run of the suite first removes what a killed run left on each of its agents, and says so")
    func nextRunRecoversEveryAgent() async throws {
        try await Self.withAgents { setup in
            try setup.writeSuite()
            let killed = try TestProcess.faultline(
                ["run", "suite.yaml", "--journal-path", "killed"], in: setup.scratch, environment: setup.environment)
            try await Self.waitForExperiment(killed, setup)
            killed.signal(SIGKILL)
            #expect(await killed.wait() == 128 + SIGKILL)
            try FileManager.default.removeItem(atPath: setup.scratch.path("waiting"))

            // Without the recovery, creating alpha and beta again would meet the dead run's (409).
            let next = try TestProcess.faultline(["run", "suite.yaml", "--journal-path", "next"], in: setup.scratch, environment: setup.environment)
            try await Self.waitForExperiment(next, setup)
            #expect(next.stdout.contains("undone: proxy alpha on agent a (\(setup.a.url)): deleted"), "\(next.stdout)")
            #expect(next.stdout.contains("undone: proxy beta on agent b (\(setup.b.url)): deleted"), "\(next.stdout)")
            #expect(try await setup.clientA.proxies().first?.toxics.count == 1)
            try await setup.release()
            #expect(await next.wait() == 0, "\(next.stdout)\n\(next.stderr)")
            #expect(try await setup.clientA.proxies().isEmpty)
            #expect(try await setup.clientB.proxies().isEmpty)
            #expect(try Journal.load(path: setup.scratch.path("killed/01-spread.json")).recovery?.first?.automatic == true)
        }
    }

    @Test("a proxy an agent already holds ({name, agent}: a sidecar's) is used and exported, never created or deleted; the run's toxic on it goes")
    func heldProxy() async throws {
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn(token: "held-\(UInt32.random(in: 0...UInt32.max))") { server, client in
                _ = try await client.createProxy(
                    ProxyDefinition(name: "store", listen: "127.0.0.1:\(try FreePort.take())", upstream: "127.0.0.1:\(service.port)"))
                _ = try await client.addToxic(ToxicDefinition(name: "their_latency", type: "latency", attributes: ["latency": 3]), to: "store")
                let before = try await client.proxy(named: "store")
                let scratch = try ScratchDirectory()
                try scratch.write(
                    "suite.yaml",
                    """
                    name: sidecar
                    agents:
                      sidecar: {url: "\(server.url)", token: {type: env, key: SIDECAR_TOKEN}}
                    proxies:
                      - {name: store, agent: sidecar}
                    experiments:
                      - title: slow store
                        method:
                          - {type: action, name: slow, provider: {type: toxic, proxy: store, toxic: latency, name: slow, attributes: {latency: 9}}}
                          - {type: probe, name: through, provider: {type: http, url: "http://127.0.0.1:${proxies.store.port}/"}}
                          - {type: probe, name: count, provider: {type: process, path: sh, arguments: [-c, "echo ${proxies.store.port}"]}}
                    """)
                let run = try TestProcess.faultline(
                    ["run", "suite.yaml", "--journal-path", "journals"], in: scratch, environment: ["SIDECAR_TOKEN": server.token ?? ""])
                #expect(await run.wait() == 0, "\(run.stdout)\n\(run.stderr)")
                let journal = try Journal.load(path: scratch.path("journals/01-slow-store.json"))
                #expect(RunTests.record(journal, "slow")?.status == .succeeded)
                #expect(RunTests.record(journal, "through")?.status == .succeeded)
                #expect(RunTests.record(journal, "count")?.output?["stdout"]?.stringValue?.contains(String(before.listenPort ?? -1)) == true)
                // Still there, as it was: the run's toxic removed, the owner's kept.
                #expect(try await client.proxies() == [before])

                // One the agent does not hold fails the run at start, naming it.
                try await client.deleteProxy(named: "store")
                let missing = try TestProcess.faultline(["run", "suite.yaml"], in: scratch, environment: ["SIDECAR_TOKEN": server.token ?? ""])
                #expect(await missing.wait() == 1)
                #expect(
                    (missing.stdout + missing.stderr).contains("proxy store: agent sidecar (\(server.url)):"), "\(missing.stdout)\n\(missing.stderr)")
            }
        }
    }

    /// A CA and a certificate for 127.0.0.1 it signed, made with the openssl command.
    static func certificates(in scratch: ScratchDirectory) async throws {
        try scratch.write("san.cnf", "subjectAltName=IP:127.0.0.1\n")
        for arguments in [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=faultline test CA"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
            [
                "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2",
                "-extfile", "san.cnf",
            ],
        ] {
            let result = try await run(
                "openssl",
                arguments.map { $0.hasSuffix(".pem") || $0.hasSuffix(".key") || $0.hasSuffix(".csr") || $0.hasSuffix(".cnf") ? scratch.path($0) : $0 }
            )
            try #require(result.status == 0, "openssl \(arguments.joined(separator: " ")): \(result.output)")
        }
    }

    @Test("an https agent (nginx terminating TLS in front of faultline proxy) is reached with its ca_file, and refused without it, naming the agent")
    func httpsAgent() async throws {
        guard installed("openssl") != nil else { throw TestFailure("openssl is not installed") }
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn(token: "tls-\(UInt32.random(in: 0...UInt32.max))") { server, client in
                let scratch = try ScratchDirectory()
                try await Self.certificates(in: scratch)
                let tlsPort = try FreePort.take()
                // A second server block: TLS on tlsPort, passed on to the agent's plain API.
                let front = """
                    }
                    server {
                        listen 127.0.0.1:\(tlsPort) ssl;
                        ssl_certificate \(scratch.path("server.pem"));
                        ssl_certificate_key \(scratch.path("server.key"));
                        location / { proxy_pass \(server.url); }
                    """
                try await closing(try await TestNginx.start(extra: front)) { _ in
                    let suite = { (ca: String) in
                        """
                        name: tls
                        agents:
                          secure: {url: "https://127.0.0.1:\(tlsPort)", token: {type: env, key: SECURE_TOKEN}\(ca)}
                        proxies:
                          - {name: store, upstream: "127.0.0.1:\(service.port)", agent: secure}
                        experiments:
                          - title: over tls
                            method:
                              - {type: action, name: slow, provider: {type: toxic, proxy: store, toxic: latency, attributes: {latency: 4}}}
                              - {type: probe, name: seen, provider: {type: toxiproxy.toxics, url: "\(server.url)", proxy: store}}
                        """
                    }
                    let environment = ["SECURE_TOKEN": server.token ?? "", "TOXIPROXY_AUTH_TOKEN": server.token ?? ""]
                    try scratch.write("suite.yaml", suite(", ca_file: \"\(scratch.path("ca.pem"))\""))
                    let run = try TestProcess.faultline(["run", "suite.yaml", "--journal-path", "journals"], in: scratch, environment: environment)
                    #expect(await run.wait() == 0, "\(run.stdout)\n\(run.stderr)")
                    // The toxic was on the agent behind TLS while the experiment ran, and is gone after.
                    let seen = try Journal.load(path: scratch.path("journals/01-over-tls.json"))
                    #expect(
                        RunTests.record(seen, "seen")?.output?.arrayValue?.first?["type"] == "latency",
                        "\(String(describing: RunTests.record(seen, "seen")?.output))")
                    #expect(try await client.proxies().isEmpty)

                    try scratch.write("suite.yaml", suite(""))
                    let untrusted = try TestProcess.faultline(["run", "suite.yaml"], in: scratch, environment: environment)
                    #expect(await untrusted.wait() == 1)
                    let output = untrusted.stdout + untrusted.stderr
                    #expect(output.contains("agent secure: Toxiproxy at https://127.0.0.1:\(tlsPort)"), "\(output)")
                    #expect(try await client.proxies().isEmpty)
                }
            }
        }
    }

    @Test("a profile's agent replaces the suite's of that name")
    func profileAgent() async throws {
        try await withStandIn(token: "p-\(UInt32.random(in: 0...UInt32.max))") { server, client in
            let scratch = try ScratchDirectory()
            try scratch.write(
                "suite.yaml",
                """
                name: overlay
                agents:
                  db-host: {url: "http://127.0.0.1:\(try FreePort.take())"}
                proxies:
                  - {name: store, upstream: "127.0.0.1:1", agent: db-host}
                experiments:
                  - title: looks
                    method:
                      - {type: probe, name: there, provider: {type: python, module: chaostoxi.proxy.probes, func: proxy_exist, arguments: {proxy_name: store}}}
                profiles:
                  far: {default: true}
                  near:
                    agents: {db-host: {url: "\(server.url)", token: {type: env, key: NEAR_TOKEN}}}
                """)
            let environment = ["NEAR_TOKEN": server.token ?? ""]
            let far = try TestProcess.faultline(["run", "suite.yaml"], in: scratch, environment: environment)
            #expect(await far.wait() == 1)
            #expect((far.stdout + far.stderr).contains("agent db-host: Toxiproxy at http://127.0.0.1:"), "\(far.stdout)\n\(far.stderr)")
            let near = try TestProcess.faultline(
                ["run", "suite.yaml", "--profile", "near", "--journal-path", "near"], in: scratch, environment: environment)
            #expect(await near.wait() == 0, "\(near.stdout)\n\(near.stderr)")
            #expect(try Journal.load(path: scratch.path("near/01-looks.json")).run.first?.output == true)
            #expect(try await client.proxies().isEmpty)
        }
    }

    @Test("an unreachable agent fails the run before any experiment, at once, naming the agent and its URL")
    func unreachableAgent() async throws {
        try await withStandIn(token: "t0k3n-\(UInt32.random(in: 0...UInt32.max))") { server, client in
            let scratch = try ScratchDirectory()
            let nowhere = "http://127.0.0.1:\(try FreePort.take())"
            try scratch.write(
                "suite.yaml",
                """
                name: gone
                agents:
                  up: {url: "\(server.url)", token: {type: env, key: UP_TOKEN}}
                  far: {url: "\(nowhere)", connect_timeout: 1}
                proxies:
                  - {name: near, upstream: "127.0.0.1:1", agent: up}
                  - {name: away, upstream: "127.0.0.1:1", agent: far}
                experiments:
                  - title: never
                    method:
                      - {type: probe, name: ran, provider: {type: process, path: sh, arguments: [-c, "touch ran"]}}
                """)
            let run = try TestProcess.faultline(
                ["run", "suite.yaml", "--journal-path", "journals"], in: scratch, environment: ["UP_TOKEN": server.token ?? ""])
            #expect(await run.wait(timeout: .seconds(60)) == 1, "\(run.stdout)\n\(run.stderr)")
            let output = run.stdout + run.stderr
            #expect(output.contains("agent far: Toxiproxy at \(nowhere)"), "\(output)")
            #expect(output.contains("connection refused"), "\(output)")
            #expect(!output.contains("agent up:"), "the reachable agent is not blamed: \(output)")
            #expect(!scratch.exists("ran"), "no experiment ran")
            // The reachable agent was left clean.
            #expect(try await client.proxies().isEmpty)
        }
    }

    @Test("an agent that refuses the token fails the run before any experiment, naming the agent and where the token came from")
    func badToken() async throws {
        try await withStandIn(token: "right-\(UInt32.random(in: 0...UInt32.max))") { server, client in
            let scratch = try ScratchDirectory()
            let wrong = "wrong-\(UInt32.random(in: 0...UInt32.max))"
            try scratch.write(
                "suite.yaml",
                """
                name: refused
                agents:
                  db-host: {url: "\(server.url)", token: {type: env, key: DB_AGENT_TOKEN}}
                proxies:
                  - {name: store, upstream: "127.0.0.1:1", agent: db-host}
                experiments:
                  - title: never
                    method:
                      - {type: probe, name: ran, provider: {type: process, path: sh, arguments: [-c, "touch ran"]}}
                """)
            let run = try TestProcess.faultline(["run", "suite.yaml"], in: scratch, environment: ["DB_AGENT_TOKEN": wrong])
            #expect(await run.wait(timeout: .seconds(60)) == 1, "\(run.stdout)\n\(run.stderr)")
            let output = run.stdout + run.stderr
            #expect(output.contains("agent db-host: Toxiproxy at \(server.url) refused the token"), "\(output)")
            #expect(output.contains("token from $DB_AGENT_TOKEN"), "\(output)")
            #expect(!output.contains(wrong))
            #expect(!scratch.exists("ran"))

            // No variable at all: named too, before any request.
            let unset = try TestProcess.faultline(["run", "suite.yaml"], in: scratch)
            #expect(await unset.wait(timeout: .seconds(60)) == 1)
            #expect(
                (unset.stdout + unset.stderr).contains("agent db-host: the token's environment variable DB_AGENT_TOKEN is not set"),
                "\(unset.stdout)\n\(unset.stderr)")
            #expect(try await client.proxies().isEmpty)
        }
    }

    @Test("an HTTP toxic on a proxy an agent holds is the agent's to judge; on the profile's Toxiproxy server it is still a load error")
    func httpToxicOnAgent() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "suite.yaml",
            """
            name: http
            agents:
              edge: {url: "http://127.0.0.1:8474"}
            proxies:
              - {name: web, upstream: "127.0.0.1:1", agent: edge}
              - {name: shared, upstream: "127.0.0.1:1"}
            experiments:
              - title: aborts
                method:
                  - {type: action, name: on-agent, provider: {type: toxic, proxy: web, toxic: http_abort, attributes: {status: 503}}}
                  - {type: action, name: on-server, provider: {type: toxic, proxy: shared, toxic: http_abort, attributes: {status: 503}}}
            profiles:
              staging: {default: true, toxics: {backend: toxiproxy, url: "http://127.0.0.1:8475"}}
            """)
        let validate = try TestProcess.faultline(["validate", "suite.yaml"], in: scratch)
        #expect(await validate.wait(timeout: .seconds(60)) == 2)
        let output = validate.stdout + validate.stderr
        #expect(output.contains("suite.yaml:11:87: profile \"staging\" uses the toxiproxy toxic backend, which cannot run this toxic"), "\(output)")
        #expect(output.contains("1 error in suite.yaml"), "\(output)")
    }

    @Test("a proxy naming an undeclared agent, or an agent without url, is a load error at its line and column")
    func validation() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "suite.yaml",
            """
            name: typo
            agents:
              db-host: {url: "http://127.0.0.1:8474", token: {type: env, key: DB_AGENT_TOKEN}}
              cache-host: {url: "http://127.0.0.1:8475"}
              broken: {token: {type: env, key: X}}
              odd: {url: "http://127.0.0.1:8476", token: {type: envv, key: X}}
            proxies:
              - {name: store, upstream: "127.0.0.1:1", agent: db-hots}
            experiments:
              - title: nothing
                method:
                  - {type: probe, name: ok, provider: {type: process, path: "true"}}
            """)
        let validate = try TestProcess.faultline(["validate", "suite.yaml"], in: scratch)
        #expect(await validate.wait(timeout: .seconds(60)) == 2)
        let output = validate.stdout + validate.stderr
        #expect(output.contains("suite.yaml:8:51: unknown agent \"db-hots\" for proxy store (did you mean \"db-host\"?)"), "\(output)")
        #expect(output.contains("declared agents: cache-host, db-host"), "\(output)")
        #expect(output.contains("suite.yaml:5:11: agent broken needs url:"), "\(output)")
        #expect(output.contains("suite.yaml:6:46: token.type: unknown token type \"envv\" (did you mean \"env\"?)"), "\(output)")
    }
}
