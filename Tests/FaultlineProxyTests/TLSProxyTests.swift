import FaultlineKit
import FaultlineNetwork
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import FaultlineProxy

/// Certificates made with the openssl command: a CA, a server certificate it signed for the name
/// `localhost` only (no IP address, so a connection to 127.0.0.1 is verified by name), an unrelated
/// key, and a file that is not PEM.
struct TestCertificates: Sendable {
    let directory: ScratchDirectory
    var ca: String { directory.path("ca.pem") }
    var cert: String { directory.path("server.pem") }
    var key: String { directory.path("server.key") }
    var otherKey: String { directory.path("other.key") }
    var notPEM: String { directory.path("not.pem") }

    static func make() async throws -> TestCertificates {
        let directory = try ScratchDirectory(prefix: "faultline-certs")
        let certificates = TestCertificates(directory: directory)
        _ = try directory.write("ext.cnf", "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        _ = try directory.write("not.pem", "this is not a certificate\n")
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for arguments in [
            ["req", "-x509"] + ec + ["-keyout", directory.path("ca.key"), "-out", certificates.ca, "-days", "2", "-subj", "/CN=Faultline test CA"],
            ["req"] + ec + ["-keyout", certificates.key, "-out", directory.path("server.csr"), "-subj", "/CN=localhost"],
            [
                "x509", "-req", "-in", directory.path("server.csr"), "-CA", certificates.ca, "-CAkey", directory.path("ca.key"),
                "-CAcreateserial", "-out", certificates.cert, "-days", "2", "-extfile", directory.path("ext.cnf"),
            ],
            ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", certificates.otherKey],
        ] {
            let result = try await run("openssl", arguments)
            guard result.status == 0 else { throw TestFailure("openssl \(arguments.first ?? ""): \(result.stderr)") }
        }
        return certificates
    }
}

/// TLS on the in-process proxy, end to end: nginx (plain, and HTTPS with certificates the
/// openssl command made) behind it, curl and Python's http.client in front.
@Suite("TLS proxies", .serialized)
struct TLSProxyTests {
    /// nginx answering plain HTTP on `nginx.port` and HTTPS on `tlsPort`, and a proxy server.
    final class Fixture: TestResource, @unchecked Sendable {
        let certificates: TestCertificates
        let nginx: TestNginx
        let tlsPort: Int
        let server: ProxyServer
        let group: MultiThreadedEventLoopGroup

        init() async throws {
            certificates = try await TestCertificates.make()
            let tlsPort = try FreePort.take()
            self.tlsPort = tlsPort
            nginx = try await TestNginx.start(
                extra: "listen 127.0.0.1:\(tlsPort) ssl; ssl_certificate \(certificates.cert); ssl_certificate_key \(certificates.key);")
            group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
            server = ProxyServer(toxicTypes: ProxyFixture.toxicTypes, seed: 1, group: group)
        }

        /// Creates a proxy on a free loopback port.
        func proxy(_ name: String, upstream: String, tls: ListenTLS? = nil, upstreamTLS: UpstreamTLS? = nil) async throws -> ProxyDefinition {
            try await server.createProxy(
                name: name, listen: "127.0.0.1:\(try FreePort.take())", upstream: upstream, tls: tls, upstreamTLS: upstreamTLS)
        }

        func add(_ proxy: String, _ type: String, stream: String = "downstream", _ attributes: Value) async throws {
            _ = try await server.addToxic(ProxyServer.ToxicRequest(type: type, stream: stream, attributes: attributes), to: proxy)
        }

        func close() async {
            await server.shutdown()
            try? await group.shutdownGracefully()
            await nginx.close()
        }
    }

    static func curl(_ arguments: [String]) async throws -> (output: String, status: Int32) {
        try await HTTPToxicTests.curl(arguments)
    }

    /// Python's http.client over one TLS keep-alive connection that trusts `ca`: `status body` per GET.
    static func pythonHTTPS(port: Int, ca: String, host: String = "localhost", paths: [String]) async throws -> [String] {
        let script = """
            import http.client, ssl, sys
            context = ssl.create_default_context(cafile=sys.argv[1])
            conn = http.client.HTTPSConnection(sys.argv[2], int(sys.argv[3]), context=context, timeout=20)
            for path in sys.argv[4:]:
                conn.request("GET", path)
                response = conn.getresponse()
                print(response.status, response.read().decode().strip(), flush=True)
            """
        let result = try await run("python3", ["-c", script, ca, host, String(port)] + paths)
        #expect(result.status == 0, "python: \(result.stderr)")
        return result.stdout.split(separator: "\n").map(String.init)
    }

    @Test("a self_signed proxy terminates TLS: curl trusts its CA file (by address and by name), and refuses without it")
    func terminateSelfSigned() async throws {
        try await closing(try await Fixture()) { f in
            let proxy = try await f.proxy("web", upstream: "127.0.0.1:\(f.nginx.port)", tls: ListenTLS(selfSigned: true))
            let ca = try #require(proxy.tls?.ca)
            #expect(FileManager.default.fileExists(atPath: ca))
            let port = try #require(proxy.listenPort)
            #expect(try await Self.curl(["--cacert", ca, "https://127.0.0.1:\(port)/"]).output == "hello from nginx\n")
            #expect(
                try await Self.curl(["--cacert", ca, "https://localhost:\(port)/big", "-o", "/dev/null", "-w", "%{size_download}"]).output == "100000"
            )
            // A client that connects and leaves before any handshake (a port probe) has not failed TLS.
            let runtime = try #require(f.server.runtime(of: "web"))
            try await blocking { try TestSocket(port: port) }.close()
            #expect(try await eventually { try f.server.openConnections(of: "web") == 0 })
            #expect(runtime.metrics.clientHandshakeFailures.load(ordering: .relaxed) == 0)
            // curl's own trust store does not know the CA: it refuses (60), and the proxy counts the failed handshake.
            #expect(try await Self.curl(["https://127.0.0.1:\(port)/"]).status == 60)
            #expect(await eventually { runtime.metrics.clientHandshakeFailures.load(ordering: .relaxed) == 1 })
            // Deleting the proxy removes the CA it made.
            try await f.server.deleteProxy(named: "web")
            #expect(!FileManager.default.fileExists(atPath: ca))
        }
    }

    @Test("a proxy terminates TLS with the PEM certificate and key it is given; keep-alive requests from Python pass")
    func terminateWithFiles() async throws {
        try await closing(try await Fixture()) { f in
            let proxy = try await f.proxy(
                "web", upstream: "127.0.0.1:\(f.nginx.port)", tls: ListenTLS(cert: f.certificates.cert, key: f.certificates.key))
            #expect(proxy.tls?.ca == f.certificates.cert)
            let port = try #require(proxy.listenPort)
            #expect(try await Self.curl(["--cacert", f.certificates.ca, "https://localhost:\(port)/status/201"]).output == "status 201\n")
            let lines = try await Self.pythonHTTPS(port: port, ca: f.certificates.ca, paths: ["/", "/status/404", "/"])
            #expect(lines == ["200 hello from nginx", "404 status 404", "200 hello from nginx"])
        }
    }

    @Test(
        "a proxy originates TLS to HTTPS nginx: verified with a CA file by name and by address, or insecure; a failed verification closes the client")
    func originate() async throws {
        try await closing(try await Fixture()) { f in
            let ca = f.certificates.ca
            let byName = try await f.proxy("name", upstream: "localhost:\(f.tlsPort)", upstreamTLS: UpstreamTLS(ca: ca))
            let byAddress = try await f.proxy(
                "address", upstream: "127.0.0.1:\(f.tlsPort)", upstreamTLS: UpstreamTLS(ca: ca, serverName: "localhost"))
            let insecure = try await f.proxy("insecure", upstream: "127.0.0.1:\(f.tlsPort)", upstreamTLS: UpstreamTLS(insecure: true))
            for proxy in [byName, byAddress, insecure] {
                let answer = try await Self.curl(["http://127.0.0.1:\(proxy.listenPort!)/"])
                #expect(answer.output == "hello from nginx\n", "\(proxy.name): \(answer)")
            }
            // The system's CAs do not know the test CA; a name the certificate does not hold fails, and
            // so does an address it does not hold (no server_name: 127.0.0.1 is checked as an address).
            let unknownCA = try await f.proxy("unknown", upstream: "localhost:\(f.tlsPort)", upstreamTLS: UpstreamTLS())
            let wrongName = try await f.proxy(
                "wrong", upstream: "127.0.0.1:\(f.tlsPort)", upstreamTLS: UpstreamTLS(ca: ca, serverName: "wrong.example"))
            let noName = try await f.proxy("noname", upstream: "127.0.0.1:\(f.tlsPort)", upstreamTLS: UpstreamTLS(ca: ca))
            try await f.add("unknown", "noop", [:])
            for proxy in [unknownCA, wrongName, noName] {
                let answer = try await Self.curl(["http://127.0.0.1:\(proxy.listenPort!)/"])
                // Closed without an answer (52), never a hang (28) and never nginx's page.
                #expect(answer.status == 52 && answer.output.isEmpty, "\(proxy.name): \(answer)")
                let runtime = try #require(f.server.runtime(of: proxy.name))
                #expect(await eventually { runtime.metrics.upstreamHandshakeFailures.load(ordering: .relaxed) == 1 }, "\(proxy.name)")
                #expect(try await eventually { try f.server.openConnections(of: proxy.name) == 0 })
            }
            // The fault window of a toxic on the proxy says what happened while it was in force.
            let report = f.server.toxicReport(named: "noop_downstream", on: "unknown")
            #expect(report == "1 connection closed: the TLS handshake with the upstream failed")
        }
    }

    @Test("byte and HTTP toxics act on HTTPS traffic between the two TLS layers (TLS → TLS)")
    func toxicsOnDecryptedTraffic() async throws {
        try await closing(try await Fixture()) { f in
            let proxy = try await f.proxy(
                "web", upstream: "localhost:\(f.tlsPort)", tls: ListenTLS(selfSigned: true), upstreamTLS: UpstreamTLS(ca: f.certificates.ca))
            let ca = try #require(proxy.tls?.ca)
            let url = "https://localhost:\(proxy.listenPort!)"
            // latency delays each decrypted chunk of the response.
            try await f.add("web", "latency", ["latency": 400])
            let timed = try await Self.curl(["--cacert", ca, "\(url)/", "-w", " %{time_total}"])
            #expect(timed.output.hasPrefix("hello from nginx\n"), "\(timed)")
            #expect((Double(timed.output.split(separator: " ").last ?? "") ?? 0) >= 0.4, "\(timed)")
            try await f.server.removeToxic(named: "latency_downstream", from: "web")
            // HTTP toxics read the requests: an abort answers POST-free GETs of /status/200 only.
            try await f.add("web", "http_abort", stream: "upstream", ["status": 503, "body": "broken on purpose", "path": "/status/200"])
            try await f.add("web", "http_headers", ["set": ["X-Fault": "yes"]])
            let lines = try await Self.pythonHTTPS(port: proxy.listenPort!, ca: ca, paths: ["/status/200", "/", "/status/200"])
            #expect(lines == ["503 broken on purpose", "200 hello from nginx", "503 broken on purpose"])
            let headers = try await Self.curl(["--cacert", ca, "-D", "-", "-o", "/dev/null", "\(url)/"])
            #expect(headers.output.lowercased().contains("x-fault: yes"), "\(headers)")
            let report = try #require(f.server.toxicReport(named: "http_abort_upstream", on: "web"))
            #expect(report.contains("affected 2 of 2 matching requests"), "\(report)")
            // http_reset cuts a response mid-body: the client's TLS connection is reset after the head.
            try await f.add("web", "http_reset", ["body_bytes": 1000, "path": "/big"])
            let cut = try await Self.curl(["--cacert", ca, "\(url)/big", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"])
            let fields = cut.output.split(separator: " ")
            #expect(cut.status == 56 && fields.first == "200" && (Int(fields.last ?? "") ?? .max) <= 1000, "\(cut)")
        }
    }

    @Test("a proxy that does not terminate TLS passes it through untouched, and its HTTP toxics say they could not apply")
    func passThrough() async throws {
        try await closing(try await Fixture()) { f in
            let proxy = try await f.proxy("plain", upstream: "127.0.0.1:\(f.tlsPort)")
            try await f.add("plain", "http_abort", stream: "upstream", ["status": 503])
            let answer = try await Self.curl(["--cacert", f.certificates.ca, "https://localhost:\(proxy.listenPort!)/"])
            #expect(answer.output == "hello from nginx\n", "\(answer)")
            let report = try #require(f.server.toxicReport(named: "http_abort_upstream", on: "plain"))
            #expect(report.contains("not HTTP/1.x"), "\(report)")
        }
    }

    @Test("bad TLS files are refused when the proxy is made, saying what to fix")
    func badFiles() async throws {
        let certificates = try await TestCertificates.make()
        let server = ProxyServer(toxicTypes: ProxyFixture.toxicTypes, seed: 1, group: ProxyFixture.sharedGroup)
        func failure(_ tls: ListenTLS? = nil, upstream: UpstreamTLS? = nil) async -> String {
            do {
                _ = try await server.createProxy(name: "bad", listen: "127.0.0.1:0", upstream: "127.0.0.1:1", tls: tls, upstreamTLS: upstream)
                return "created"
            } catch {
                return error.message
            }
        }
        let missing = await failure(ListenTLS(cert: certificates.directory.path("nope.pem"), key: certificates.key))
        #expect(missing.contains("tls.cert: cannot read") && missing.contains("no such file"), "\(missing)")
        let mismatch = await failure(ListenTLS(cert: certificates.cert, key: certificates.otherKey))
        #expect(mismatch.contains("tls.key:") && mismatch.contains("is not the private key of the certificate"), "\(mismatch)")
        let notPEM = await failure(ListenTLS(cert: certificates.notPEM, key: certificates.key))
        #expect(notPEM.contains("holds no PEM certificate"), "\(notPEM)")
        let badCA = await failure(upstream: UpstreamTLS(ca: certificates.notPEM))
        #expect(badCA.contains("upstream_tls.ca:") && badCA.contains("holds no PEM certificate"), "\(badCA)")
        let both = await failure(upstream: UpstreamTLS(ca: certificates.ca, insecure: true))
        #expect(both.contains("insecure: true verifies nothing"), "\(both)")
        #expect(server.proxies().isEmpty)
        await server.shutdown()
    }

    @Test("a suite proxy's TLS settings are checked when it loads, at their line and column")
    func loadErrors() async throws {
        let c = try await TestCertificates.make()
        let errors = try validationErrors(
            """
            proxies:
              - {name: a, upstream: "127.0.0.1:1", tls: {cert: "\(c.cert)"}}
              - {name: b, upstream: "127.0.0.1:1", tls: {cert: "\(c.cert)", key: "\(c.otherKey)"}}
              - {name: c, upstream: "127.0.0.1:1", upstream_tls: {ca: "\(c.notPEM)"}}
              - {name: d, upstream: "127.0.0.1:1", tls: {cert: missing.pem, key: "\(c.key)"}}
              - {name: e, upstream: "127.0.0.1:1", tls: {self_signed: true, key: "\(c.key)"}}
              - {name: f, upstream: "127.0.0.1:1", upstream_tls: {insecure: true, sni: x}}
            experiments:
              - title: t
                method: [{type: action, name: a, provider: {type: toxic, proxy: a, toxic: http_bandwidth, stream: upstream, attributes: {rate: 10}}}]
            """)
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:2:") && $0.contains("tls.cert needs its private key") }, "\(errors)")
        #expect(
            errors.contains { $0.hasPrefix("experiment.yaml:3:") && $0.contains("tls.key: ") && $0.contains("is not the private key") },
            "\(errors)")
        #expect(
            errors.contains { $0.hasPrefix("experiment.yaml:4:") && $0.contains("upstream_tls.ca: ") && $0.contains("holds no PEM certificate") },
            "\(errors)")
        // A relative file is resolved against the suite's directory.
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:5:") && $0.contains("/missing.pem\": no such file") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:6:") && $0.contains("self_signed makes its own certificate") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:7:") && $0.contains("unknown key \"sni\"") }, "\(errors)")
        #expect(
            errors.contains {
                $0.hasPrefix("experiment.yaml:10:") && $0.contains("http_bandwidth acts on the downstream stream only, not upstream")
            }, "\(errors)")
    }

    @Test("http_bandwidth on the upstream stream is refused by the API too")
    func responseOnlyToxicUpstream() async throws {
        try await withProxyFixture(path: .nio) { fixture in
            await #expect(throws: ProxyError.self) { try await fixture.addToxic("http_bandwidth", stream: "upstream", ["rate": 10]) }
            do {
                try await fixture.addToxic("http_bandwidth", stream: "upstream", ["rate": 10])
            } catch let error as ProxyError {
                #expect(error.status == 400 && error.message.contains("http_bandwidth acts on the downstream stream only"), "\(error)")
            }
            try await fixture.addToxic("http_bandwidth", ["rate": 10])
        }
    }

    @Test("an experiment reaches a TLS suite proxy through ${proxies.NAME.ca} and ${proxies.NAME.port}")
    func experimentUsesCA() async throws {
        try await closing(try await TestNginx.start()) { nginx in
            let result = try await runSuite(
                """
                name: https faults
                proxies:
                  - {name: web, upstream: "127.0.0.1:\(nginx.port)", tls: {self_signed: true}}
                experiments:
                  - title: the proxy answers 503 over HTTPS
                    method:
                      - {type: probe, name: before, provider: {type: test.https, url: "https://localhost:${proxies.web.port}/", ca: "${proxies.web.ca}"}}
                      - type: action
                        name: abort
                        provider: {type: toxic, proxy: web, toxic: http_abort, stream: upstream, attributes: {status: 503, body: "down"}}
                      - {type: probe, name: after, provider: {type: test.https, url: "https://localhost:${proxies.web.port}/", ca: "${proxies.web.ca}"}}
                """, plugins: [HTTPSProbePlugin.self])
            #expect(result.setupError == nil)
            let journal = try #require(result.journals.first)
            #expect(journal.outcome == .completed)
            #expect(journal.run.first { $0.name == "before" }?.output == "hello from nginx\n")
            #expect(journal.run.first { $0.name == "after" }?.output == "down")
            let label = try #require(journal.faults.first?.label)
            #expect(label.hasSuffix("— affected 1 of 1 matching request"), "\(label)")
        }
    }

    @Test("proxy.create makes a TLS proxy for the experiment and exports <name>_CA beside <name>_PORT")
    func createAction() async throws {
        try await closing(try await TestNginx.start()) { nginx in
            let result = try await runSuite(
                """
                name: https proxy made by an action
                experiments:
                  - title: a TLS front for nginx
                    method:
                      - {type: action, name: make, provider: {type: proxy.create, name: front, upstream: "127.0.0.1:\(nginx.port)", tls: {self_signed: true}}}
                      - {type: probe, name: get, provider: {type: test.https, url: "https://localhost:${front_PORT}/status/202", ca: "${front_CA}"}}
                """, plugins: [HTTPSProbePlugin.self])
            #expect(result.setupError == nil)
            let journal = try #require(result.journals.first)
            #expect(journal.outcome == .completed)
            #expect(journal.run.first { $0.name == "get" }?.output == "status 202\n")
        }
    }

    @Test("the admin API creates TLS proxies (our extension), shows their settings, refuses bad ones with 400 and a change with 400")
    func adminAPI() async throws {
        try await withAdminFixture { fixture in
            let upstream = "127.0.0.1:\(fixture.proxies.upstream.port)"
            let created = try await http(
                "POST", fixture.port, "/proxies", body: #"{"name":"tls","listen":"127.0.0.1:0","upstream":"\#(upstream)","tls":{"self_signed":true}}"#
            )
            #expect(created.status == 201, "\(created)")
            let ca = try #require(created.json?["tls"]?["ca"]?.stringValue)
            #expect(created.json?["tls"]?["self_signed"] == true && FileManager.default.fileExists(atPath: ca), "\(created.body)")
            // A plain proxy reads exactly as Toxiproxy's: no tls fields.
            #expect(try await http("GET", fixture.port, "/proxies/test").json?["tls"] == nil)
            let bad = try await http(
                "POST", fixture.port, "/proxies",
                body: #"{"name":"bad","listen":"127.0.0.1:0","upstream":"\#(upstream)","upstream_tls":{"ca":"/nonexistent.pem"}}"#)
            #expect(bad.status == 400 && bad.body.contains("upstream_tls.ca: cannot read \\\"/nonexistent.pem\\\": no such file"), "\(bad)")
            let typo = try await http(
                "POST", fixture.port, "/proxies", body: #"{"name":"bad","upstream":"\#(upstream)","upstream_tls":{"insecur":true}}"#)
            #expect(typo.status == 400 && typo.body.contains("unknown field upstream_tls.insecur"), "\(typo)")
            let change = try await http("POST", fixture.port, "/proxies/tls", body: #"{"upstream_tls":{"insecure":true}}"#)
            #expect(change.status == 400 && change.body.contains("cannot change on a live proxy"), "\(change)")
            #expect(try await http("DELETE", fixture.port, "/proxies/tls").status == 204)
            #expect(!FileManager.default.fileExists(atPath: ca))
        }
    }

    @Test("faultline proxy --config makes a self-signed TLS proxy and prints its CA; a bad key is a load error at its line")
    func proxyCommand() async throws {
        let certificates = try await TestCertificates.make()
        try await closing(try await TestNginx.start()) { nginx in
            let scratch = try ScratchDirectory()
            let good = try scratch.write(
                "good.json", #"[{"name": "web", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:\#(nginx.port)", "tls": {"self_signed": true}}]"#)
            try await closing(try TestProcess.faultline(["proxy", "--port", "0", "--config", good], in: scratch)) { proxy in
                let line = try await proxy.line(startingWith: "faultline proxy: proxy web terminates TLS on ")
                let ca = try #require(line.components(separatedBy: "clients trust the CA in ").last)
                let listen = try #require(line.components(separatedBy: " terminates TLS on ").last?.components(separatedBy: ";").first)
                #expect(try await Self.curl(["--cacert", ca, "https://\(listen)/"]).output == "hello from nginx\n")
            }
            let bad = try scratch.write(
                "bad.json",
                """
                [
                  {"name": "web", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1",
                   "tls": {"cert": "\(certificates.cert)", "key": "\(certificates.otherKey)"}}
                ]
                """)
            let failed = try TestProcess.faultline(["proxy", "--port", "0", "--config", bad], in: scratch)
            #expect(await failed.wait() == 2)
            #expect(failed.stderr.contains("bad.json:3:") && failed.stderr.contains("is not the private key"), "\(failed.stderr)")
        }
    }
}

/// `test.https`: GETs a URL with curl, trusting the CA file given; returns the body.
struct HTTPSProbe: Probe {
    static let type = "test.https"
    static let summary = "The body of an HTTPS GET"

    struct Arguments: Codable, Sendable {
        var url: String
        var ca: String
    }

    func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        .string(try await HTTPToxicTests.curl(["--cacert", arguments.ca, arguments.url]).output)
    }
}

enum HTTPSProbePlugin: FaultlinePlugin {
    static let name = "test-https"
    static func register(into registry: inout PluginRegistry) { registry.register(probe: HTTPSProbe()) }
}
