#if canImport(Glibc)
    import Glibc
#endif
import FaultlineKit
import FaultlineNetwork
import FaultlineProcess
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// Examples/MultiHost run as its README says, with the hosts its run.sh makes built here instead
/// (``TestSSHHost``s, so every process is ended by its pid and the namespaces deleted inside the
/// test): the store and a `faultline proxy` agent on host A, the notifier on host B, the order API
/// and `faultline run` in the test's own namespace. In loopback mode both hosts are 127.0.0.1,
/// each with its own sshd, and the ports the suite lets one set (agent, store, notifier) are free
/// ones, as this machine's other programs hold the same addresses.
@Suite("The multi-host example (Examples/MultiHost)", .serialized)
struct MultiHostExampleTests {
    static let suite = DemoSuiteTests.packageRoot.appendingPathComponent("Examples/MultiHost/suite.yaml").path

    @Test(
        "the store's proxy on host A's agent takes the latency toxic, the notifier on host B is killed over ssh and started again, and nothing is left on the agent or either host",
        .enabled(if: TestSSHHost.isAvailable, Comment(rawValue: TestSSHHost.skipMessage)), .timeLimit(.minutes(5)))
    func endToEnd() async throws {
        let scratch = try ScratchDirectory(prefix: "faultline-multihost")
        // One client key logs in on both hosts, as the suite's SSH_IDENTITY does.
        let key = scratch.path("client_key")
        try await TestSSHHost.must("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])
        try await closing(try await TestSSHHost.start(clientKey: key)) { hostA in
            try await closing(try await TestSSHHost.start(clientKey: key)) { hostB in
                let knownHosts = try scratch.write(
                    "known_hosts",
                    try String(contentsOfFile: hostA.knownHosts, encoding: .utf8) + String(contentsOfFile: hostB.knownHosts, encoding: .utf8))
                let token = "agent-\(UInt64.random(in: 0...UInt64.max))"
                let loopback = hostA.mode == .loopback
                let (agentPort, storePort, notifierPort) =
                    loopback ? (try FreePort.take(), try FreePort.take(), try FreePort.take()) : (8474, 6379, 8081)
                let agent = try hostA.start(
                    try BuiltProduct.path("faultline"), ["proxy", "--host", loopback ? "127.0.0.1" : "0.0.0.0", "--port", "\(agentPort)"],
                    in: scratch,
                    environment: ["TOXIPROXY_AUTH_TOKEN": token])
                try await closing(agent) { agent in
                    try #require(await eventually { agent.stdout.contains("http://") || !agent.isRunning }, "\(agent.stderr)")
                    try #require(agent.isRunning, "the agent did not start: \(agent.stdout)\(agent.stderr)")

                    let run = try TestProcess.faultline(
                        ["run", Self.suite, "--journal-path", scratch.path("journals")], in: scratch,
                        environment: [
                            "HOST_A": hostA.address, "HOST_B": hostB.address, "HOST_A_SSH_PORT": "\(hostA.port)",
                            "HOST_B_SSH_PORT": "\(hostB.port)", "SSH_IDENTITY": key, "SSH_KNOWN_HOSTS": knownHosts, "AGENT_TOKEN": token,
                            "SSH_USER": hostA.user, "AGENT_PORT": "\(agentPort)", "STORE_PORT": "\(storePort)", "NOTIFIER_PORT": "\(notifierPort)",
                            "FAULTLINE_DEMO": try BuiltProduct.path("faultline-demo"),
                        ])
                    let status = await run.wait(timeout: .seconds(240))
                    #expect(status == 0, "\(run.stdout)\n\(run.stderr)")
                    #expect(run.stdout.contains("on agent host-a"), "\(run.stdout)")

                    try Self.checkJournals(scratch.path("journals"))

                    // Nothing left on the agent: the run deleted the proxy it made there.
                    #expect(try Self.agentProxies(hostA.address, port: agentPort, token: token) == "{}")
                    // Nor on either host: no ssh session, no service, no program (only sshd, and
                    // host A's agent, until the test ends them).
                    for (host, expected) in [(hostA, [hostA.sshd.pid, agent.pid]), (hostB, [hostB.sshd.pid])] {
                        let alone = await eventually { host.processesInside().map(\.pid).sorted() == expected.sorted() }
                        #expect(alone, "left on \(host.address): \(host.processesInside().map(\.commandLine))")
                    }
                    #expect(throws: SocketFailure.self, "the notifier's port on host B is closed") {
                        try TestSocket(host: hostB.address, port: notifierPort, timeout: 5).close()
                    }
                    // Everything undone: the run deleted its ledger.
                    let ledgers = (try? FileManager.default.contentsOfDirectory(atPath: scratch.path("state/ledgers"))) ?? []
                    #expect(ledgers.isEmpty, "\(ledgers)")
                }
            }
        }
    }

    /// Both experiments completed, each probe of the method judged as the example documents.
    static func checkJournals(_ directory: String) throws {
        var journals: [String: Journal] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: directory) where file.hasSuffix(".json") {
            let journal = try Journal.load(path: (directory as NSString).appendingPathComponent(file))
            journals[((journal.origin as NSString).lastPathComponent as NSString).deletingPathExtension] = journal
        }
        #expect(journals.keys.sorted() == ["01-store-latency", "02-notifier-killed"])
        for (origin, journal) in journals {
            #expect(journal.outcome == .completed, "\(origin): \(journal.reason ?? "")")
            #expect(journal.cleanup.allSatisfy { $0.status == .succeeded }, "\(origin): \(journal.cleanup)")
            #expect(journal.faults.allSatisfy { $0.end != nil }, "\(origin)")
        }
        func record(_ journal: Journal?, _ name: String) -> RunRecord? { journal?.run.first { $0.name == name } }

        // The toxic went to the proxy on host A's agent, and the order through it was slow: two
        // store calls, each 300 ms late.
        let latency = journals["01-store-latency"]
        #expect(record(latency, "store-answers-300ms-late")?.status == .succeeded)
        let slow = try #require(record(latency, "a-slow-order-is-accepted"))
        #expect(slow.toleranceMet == true && slow.output?["status"]?.intValue == 201, "\(slow.output ?? .null)")
        #expect((slow.output?["elapsed_ms"]?.doubleValue ?? 0) >= 600, "\(slow.output ?? .null)")
        #expect(latency?.rollbacks.first?.status == .succeeded)

        // The notifier was killed on host B (nothing listened on its port there), orders went on
        // unnotified, and once it was started again they were notified.
        let killed = journals["02-notifier-killed"]
        #expect(record(killed, "kill-the-notifier")?.status == .succeeded)
        for name in ["nothing-listens-on-host-b", "an-order-without-its-notification", "notifications-resume"] {
            #expect(record(killed, name)?.toleranceMet == true, "\(name): \(record(killed, name)?.output ?? .null)")
        }
        #expect(record(killed, "nothing-listens-on-host-b")?.output?["running"] == false)
        #expect(killed?.steadyStates.after?.steadyStateMet == true)
    }

    /// `GET /proxies` on the agent, with its token: the body.
    static func agentProxies(_ host: String, port: Int, token: String) throws -> String {
        let socket = try TestSocket(host: host, port: port)
        defer { socket.close() }
        try socket.send("GET /proxies HTTP/1.1\r\nHost: \(host):\(port)\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
        let (bytes, _) = socket.receiveAll()
        let response = String(decoding: bytes, as: UTF8.self)
        try #require(response.hasPrefix("HTTP/1.1 200"), "\(response)")
        return String(response[try #require(response.range(of: "\r\n\r\n")).upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
