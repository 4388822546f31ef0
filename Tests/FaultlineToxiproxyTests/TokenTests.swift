import FaultlineKit
import FaultlineNetwork
import FaultlineTestSupport
import FaultlineTesting
import FaultlineToxiproxy
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A Toxiproxy API with a token (`faultline proxy` with `TOXIPROXY_AUTH_TOKEN`), driven by the
/// client, the `toxiproxy` backend and a run.
@Suite("Toxiproxy API token")
struct TokenTests {
    static let token = "tok-8f3a1c"

    @Test("the client sends the token; without it or with a wrong one each call fails with a named error that never shows a token")
    func client() async throws {
        try await withStandIn(token: Self.token) { server, client in
            _ = try await client.createProxy(ProxyDefinition(name: "db", listen: "127.0.0.1:0", upstream: "127.0.0.1:1"))
            _ = try await client.addToxic(ToxicDefinition(name: "slow", type: "latency", attributes: ["latency": 5]), to: "db")
            #expect(try await client.toxics(of: "db").map(\.name) == ["slow"])

            for (token, reason) in [("tok-wrong", "refused the token"), (nil, "needs a token")] {
                let other = server.client(token: token)
                do throws(ToxiproxyError) {
                    _ = try await other.version()
                    Issue.record("\(token ?? "no token") was accepted")
                } catch {
                    #expect(error.code == .unauthorized)
                    #expect(error.status == 401)
                    #expect(error.description.hasPrefix("Toxiproxy at \(server.url) \(reason) (read the version, HTTP 401); "), "\(error)")
                    #expect(!error.description.contains(Self.token) && !error.description.contains("tok-wrong"))
                }
                await #expect(throws: ToxiproxyError.self) { try await other.deleteProxy(named: "db") }
                await other.shutdown()
            }
            #expect(try await client.proxies().map(\.name) == ["db"])
            try await client.deleteProxy(named: "db")
        }
    }

    static func suite(url: String, token: String?) -> String {
        """
        name: token
        secrets:
          toxiproxy: {api_token: {type: env, key: TP_TOKEN}}
        proxies: [{name: web, upstream: "127.0.0.1:1"}]
        experiments:
          - title: toxic
            method: [{type: action, name: a, provider: {type: toxic, proxy: web, toxic: latency, attributes: {latency: 1}}}]
        profiles:
          remote: {default: true, toxics: {backend: toxiproxy, url: "\(url)"\(token.map { ", token: \"\($0)\"" } ?? "")}}
        """
    }

    @Test("the profile's token (a ${secret}) or TOXIPROXY_AUTH_TOKEN reaches the server; a wrong or missing one fails the run at start, naming why")
    func backend() async throws {
        try await withStandIn(token: Self.token) { server, client in
            let fromSecret = try await runSuite(Self.suite(url: server.url, token: "${api_token}"), environment: ["TP_TOKEN": Self.token])
            #expect(fromSecret.setupError == nil, "\(fromSecret.setupError ?? "")")
            #expect(fromSecret.journals.first?.verdict == .completed)
            let written = String(decoding: try JSONEncoder().encode(fromSecret.journals), as: UTF8.self)
            #expect(written.contains("latency"))
            #expect(!written.contains(Self.token))
            #expect(try await client.proxies().isEmpty)

            let fromEnvironment = try await runSuite(
                Self.suite(url: server.url, token: nil), environment: ["TOXIPROXY_AUTH_TOKEN": Self.token, "TP_TOKEN": "x"])
            #expect(fromEnvironment.setupError == nil, "\(fromEnvironment.setupError ?? "")")
            #expect(fromEnvironment.journals.first?.verdict == .completed)

            let start = ContinuousClock.now
            let wrong = try await runSuite(Self.suite(url: server.url, token: "${api_token}"), environment: ["TP_TOKEN": "tok-not-it"])
            let error = try #require(wrong.setupError)
            #expect(error.contains("Toxiproxy at \(server.url) refused the token (read the version, HTTP 401)"), "\(error)")
            #expect(error.contains("token from the profile's toxics.token"))
            #expect(!error.contains("tok-not-it") && !error.contains(Self.token))
            #expect(wrong.journals.isEmpty)
            #expect(ContinuousClock.now - start < .seconds(30))

            let missing = try await runSuite(Self.suite(url: server.url, token: nil), environment: ["TP_TOKEN": "x"])
            #expect(
                missing.setupError?.contains("Toxiproxy at \(server.url) needs a token (read the version, HTTP 401)") == true,
                "\(missing.setupError ?? "")")
            #expect(try await client.proxies().isEmpty)
        }
    }

    @Test("faultline proxy: --token-file turns auth on; a non-loopback address needs a token or --insecure; the token is never printed")
    func command() async throws {
        let scratch = try ScratchDirectory()
        let file = try scratch.write("token", Self.token + "\n")
        let secured = try TestProcess.faultline(["proxy", "--port", "0", "--token-file", file], in: scratch)
        let started = await eventually(timeout: .seconds(30)) { secured.stdout.contains("\n") || !secured.isRunning }
        #expect(started)
        #expect(secured.stdout.contains("bearer token required"), "\(secured.stdout) \(secured.stderr)")
        if let range = secured.stdout.range(of: #"http://[0-9.]+:[0-9]+"#, options: .regularExpression) {
            let address = try ToxiproxyAddress(parsing: String(secured.stdout[range]))
            try await closing(ToxiproxyClient(address: address)) { anonymous in
                await #expect(throws: ToxiproxyError.self) { _ = try await anonymous.proxies() }
            }
            try await closing(ToxiproxyClient(address: address, token: Self.token)) { authorized in
                #expect(try await authorized.proxies().isEmpty)
                // A proxy given no listen address listens where the API does: here on loopback only.
                let local = try await authorized.createProxy(ProxyDefinition(name: "local", listen: "", upstream: "127.0.0.1:1"))
                #expect(local.listen.hasPrefix("127.0.0.1:"), "\(local)")
            }
        }
        secured.signal(SIGTERM)
        #expect(await secured.wait(timeout: .seconds(30)) == 0)
        #expect(!(secured.stdout + secured.stderr).contains(Self.token))

        let open = try TestProcess.faultline(["proxy", "--host", "0.0.0.0", "--port", "0"], in: scratch)
        #expect(await open.wait(timeout: .seconds(30)) == 2)
        #expect(open.stderr.contains("without a token"), "\(open.stderr)")
        #expect(open.stderr.contains("TOXIPROXY_AUTH_TOKEN") && open.stderr.contains("--insecure"))

        let insecure = try TestProcess.faultline(["proxy", "--host", "0.0.0.0", "--port", "0", "--insecure"], in: scratch)
        #expect(await eventually(timeout: .seconds(30)) { insecure.stdout.contains("\n") || !insecure.isRunning })
        #expect(insecure.stderr.contains("warning: the API listens on 0.0.0.0 without a token"), "\(insecure.stderr)")
        // With the API open beyond this machine, a proxy given no listen address listens on every
        // address, as Toxiproxy's does (`[::]:port`), so clients elsewhere reach it too.
        if let range = insecure.stdout.range(of: #"http://[0-9.]+:[0-9]+"#, options: .regularExpression) {
            try await closing(ToxiproxyClient(address: try ToxiproxyAddress(parsing: String(insecure.stdout[range])))) { client in
                let open = try await client.createProxy(ProxyDefinition(name: "open", listen: "", upstream: "127.0.0.1:1"))
                #expect(open.listen.hasPrefix("[::]:"), "\(open)")
            }
        } else {
            Issue.record("no API address in \(insecure.stdout)")
        }
        insecure.signal(SIGTERM)
        #expect(await insecure.wait(timeout: .seconds(30)) == 0)

        let empty = try scratch.write("empty", "\n")
        let badFile = try TestProcess.faultline(["proxy", "--port", "0", "--token-file", empty], in: scratch)
        #expect(await badFile.wait(timeout: .seconds(30)) == 2)
        #expect(badFile.stderr.contains("the file is empty"), "\(badFile.stderr)")
    }
}
