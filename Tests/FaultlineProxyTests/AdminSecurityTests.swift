import FaultlineKit
import FaultlineNetwork
import FaultlineProxy
import FaultlineTestSupport
import Foundation
import NIOCore
import Testing

/// One admin endpoint, with a request that reaches it.
struct Endpoint: Sendable, CustomTestStringConvertible {
    var method: String
    var path: String
    var body: String?
    /// What it answers with the right token.
    var status: Int

    var testDescription: String { "\(method) \(path)" }

    static let all: [Endpoint] = [
        Endpoint(method: "GET", path: "/version", status: 200),
        Endpoint(method: "GET", path: "/metrics", status: 200),
        Endpoint(method: "POST", path: "/metrics", status: 200),
        Endpoint(method: "GET", path: "/proxies", status: 200),
        Endpoint(method: "POST", path: "/proxies", body: #"{"name":"new","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}"#, status: 201),
        Endpoint(method: "POST", path: "/populate", body: "[]", status: 201),
        Endpoint(method: "POST", path: "/reset", status: 204),
        Endpoint(method: "GET", path: "/proxies/test", status: 200),
        Endpoint(method: "PATCH", path: "/proxies/test", body: #"{"enabled":true}"#, status: 200),
        Endpoint(method: "POST", path: "/proxies/test", body: #"{"enabled":true}"#, status: 200),
        Endpoint(method: "DELETE", path: "/proxies/nope", status: 404),
        Endpoint(method: "GET", path: "/proxies/test/toxics", status: 200),
        Endpoint(method: "POST", path: "/proxies/test/toxics", body: #"{"name":"slow","type":"latency","attributes":{"latency":1}}"#, status: 200),
        Endpoint(method: "GET", path: "/proxies/test/toxics/nope", status: 404),
        Endpoint(method: "PATCH", path: "/proxies/test/toxics/nope", body: "{}", status: 404),
        Endpoint(method: "DELETE", path: "/proxies/test/toxics/nope", status: 404),
        Endpoint(method: "GET", path: "/unknown", status: 404),
    ]
}

@Suite("Admin API security: token, Host, Origin, timeouts and limits")
struct AdminSecurityTests {
    static let token = "s3cret-token_42"
    static let withToken = AdminServer.Configuration(access: AdminAccess(token: token))

    @Test("with a token, every endpoint answers 401 without it or with a wrong one, and works with it", arguments: Endpoint.all)
    func tokenOnEveryEndpoint(_ endpoint: Endpoint) async throws {
        try await withAdminFixture(Self.withToken) { fixture in
            let port = fixture.port
            let wrong: [String?] = [
                nil, "Bearer wrong", "Bearer \(Self.token)x", "Bearer \(Self.token.dropLast())", "Basic \(Self.token)", Self.token, "Bearer",
            ]
            for authorization in wrong {
                let reply = try await http(
                    endpoint.method, port, endpoint.path, body: endpoint.body, headers: authorization.map { [("Authorization", $0)] } ?? [])
                #expect(reply.status == 401, "\(authorization ?? "no token")")
                #expect(reply.body == "{\"error\":\"unauthorized\",\"status\":401}\n")
                #expect(reply.headers["content-type"] == "text/plain; charset=utf-8")
                #expect(reply.headers["www-authenticate"] == "Bearer")
                #expect(!reply.body.contains(Self.token))
            }
            // Nothing the refused requests asked for happened.
            #expect(fixture.proxies.server.proxies().map(\.name) == ["test"])
            #expect(try fixture.proxies.server.toxics(of: "test").isEmpty)

            for scheme in ["Bearer", "bearer", "BEARER"] {
                let reply = try await http(
                    endpoint.method, port, endpoint.path, body: endpoint.body, headers: [("Authorization", "\(scheme) \(Self.token)")])
                #expect(reply.status == endpoint.status, "\(scheme): \(reply.body)")
                if endpoint.method == "POST" && endpoint.path == "/proxies" { try await fixture.proxies.server.deleteProxy(named: "new") }
                if endpoint.path == "/proxies/test/toxics" && endpoint.method == "POST" {
                    try await fixture.proxies.server.removeToxic(named: "slow", from: "test")
                }
            }
        }
    }

    @Test("without a token nothing asks for one")
    func noToken() async throws {
        try await withAdminFixture { (fixture: AdminFixture) async throws in
            #expect(try await http("GET", fixture.port, "/proxies").status == 200)
            #expect(try await http("GET", fixture.port, "/metrics").status == 200)
        }
    }

    @Test("a request whose Host names another machine is refused (DNS rebinding); this machine's names and addresses are answered")
    func hostCheck() async throws {
        let configuration = AdminServer.Configuration(access: AdminAccess(allowedHosts: ["toxiproxy", ".svc.cluster.local"]))
        try await withAdminFixture(configuration) { fixture in
            let port = fixture.port
            for host in [
                "rebind.attacker.example:\(port)", "attacker.example", "127.0.0.1.nip.io:\(port)", "localhost.attacker.example", "8.8.8.8:\(port)",
                "toxiproxy.evil",
            ] {
                let reply = try await http("GET", port, "/proxies", host: host)
                #expect(reply.status == 403, "\(host)")
                #expect(reply.json?["error"]?.stringValue?.contains("is not allowed") == true, "\(reply.body)")
                #expect(reply.headers["access-control-allow-origin"] == nil)
            }
            let created = try await http("POST", port, "/proxies", body: #"{"name":"evil","upstream":"127.0.0.1:1"}"#, host: "attacker.example")
            #expect(created.status == 403)
            #expect(fixture.proxies.server.proxies().map(\.name) == ["test"])

            for host in [
                "127.0.0.1:\(port)", "127.0.0.1", "localhost:\(port)", "LOCALHOST", "app.localhost:\(port)", "[::1]:\(port)", "127.1.2.3",
                "toxiproxy:\(port)", "toxiproxy", "a.svc.cluster.local:\(port)", "0.0.0.0:\(port)",
            ] {
                #expect(try await http("GET", port, "/proxies", host: host).status == 200, "\(host)")
            }
        }
    }

    @Test("with a token, a request carrying it may name any host (a service name, a Docker host); without it, a foreign Host is still a 403")
    func hostWithToken() async throws {
        try await withAdminFixture(Self.withToken) { fixture in
            let port = fixture.port
            // Even with the token, a Host must be a host.
            for host in ["", "127.0.0.2:1x", "a b", "user@toxiproxy"] {
                let malformed = try await http("GET", port, "/proxies", host: host, headers: [("Authorization", "Bearer \(Self.token)")])
                #expect(malformed.status == 403, "\(host): \(malformed.body)")
            }
            for host in ["toxiproxy:\(port)", "172.17.0.1:32768", "rebind.attacker.example"] {
                let allowed = try await http("GET", port, "/proxies", host: host, headers: [("Authorization", "Bearer \(Self.token)")])
                #expect(allowed.status == 200, "\(host): \(allowed.body)")
                for authorization in [nil, "Bearer wrong"] {
                    let refused = try await http("GET", port, "/proxies", host: host, headers: authorization.map { [("Authorization", $0)] } ?? [])
                    #expect(
                        refused.status == 403 && refused.json?["error"]?.stringValue?.contains("is not allowed") == true, "\(host): \(refused.body)")
                }
            }
        }
    }

    @Test("cross-origin browser requests are refused, text/plain and form posts included; no CORS allowance")
    func crossOrigin() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port
            let create = #"{"name":"csrf","upstream":"127.0.0.1:1"}"#
            // A page elsewhere posting a "simple" request that needs no CORS preflight.
            for contentType in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json"] {
                let reply = try await http(
                    "POST", port, "/proxies", body: create, headers: [("Origin", "http://attacker.example"), ("Content-Type", contentType)])
                #expect(reply.status == 403, "\(contentType)")
                #expect(reply.json?["error"]?.stringValue == "cross-origin request from \"http://attacker.example\" refused")
            }
            let reset = try await http("POST", port, "/reset", headers: [("Origin", "null")])
            #expect(reset.status == 403)
            for headers in [
                [("Sec-Fetch-Site", "cross-site")], [("Sec-Fetch-Site", "same-site")], [("Referer", "http://attacker.example/page")],
                [("Origin", "http://localhost:\(port)")], [("Origin", "https://127.0.0.1:\(port)")],
            ] {
                #expect(try await http("POST", port, "/proxies", body: create, headers: headers).status == 403, "\(headers)")
            }
            let preflight = try await http(
                "OPTIONS", port, "/proxies", headers: [("Origin", "http://attacker.example"), ("Access-Control-Request-Method", "POST")])
            #expect(preflight.status == 403)
            #expect(!preflight.headers.keys.contains { $0.hasPrefix("access-control-") })
            #expect(fixture.proxies.server.proxies().map(\.name) == ["test"])

            // The API's own origin, and clients that are not browsers whatever their content type
            // (Ruby's Net::HTTP posts form-encoded by default).
            let same = try await http(
                "GET", port, "/proxies", host: "127.0.0.1:\(port)",
                headers: [("Origin", "http://127.0.0.1:\(port)"), ("Sec-Fetch-Site", "same-origin")])
            #expect(same.status == 200)
            let form = try await http(
                "POST", port, "/proxies", body: create, userAgent: "Ruby", headers: [("Content-Type", "application/x-www-form-urlencoded")])
            #expect(form.status == 201)
        }
    }

    @Test("an idle connection, and one that sends half a head, are closed after the request timeout; a kept-alive one after the idle timeout")
    func slowClientsAreClosed() async throws {
        let configuration = AdminServer.Configuration(requestTimeout: .milliseconds(300), idleTimeout: .milliseconds(600))
        try await withAdminFixture(configuration) { fixture in
            let port = fixture.port
            let ends = try await blocking { () -> [TestSocket.End] in
                let idle = try TestSocket(port: port, timeout: 20)
                let halfHead = try TestSocket(port: port, timeout: 20)
                try halfHead.send("GET /proxies HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                let halfBody = try TestSocket(port: port, timeout: 20)
                try halfBody.send("POST /proxies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"name\"")
                defer { [idle, halfHead, halfBody].forEach { $0.close() } }
                return [idle.receiveAll().1, halfHead.receiveAll().1, halfBody.receiveAll().1]
            }
            #expect(ends == [.eof, .eof, .eof])

            let (first, end) = try await blocking { () -> (HTTPReply, TestSocket.End) in
                let socket = try TestSocket(port: port, timeout: 20)
                defer { socket.close() }
                try socket.send("GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                let (bytes, end) = socket.receiveAll()
                return (try HTTPReply(parsing: String(decoding: bytes, as: UTF8.self)), end)
            }
            #expect(first.status == 200)
            #expect(end == .eof)
        }
    }

    @Test("heads and bodies are bounded; chunked bodies, pipelining and 100-continue work")
    func framing() async throws {
        let configuration = AdminServer.Configuration(limits: AdminHTTPParser.Limits(headBytes: 4096, headerCount: 20, bodyBytes: 2048))
        try await withAdminFixture(configuration) { fixture in
            let port = fixture.port
            let bigHead = try await exchange(
                port, "GET /proxies HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: \(String(repeating: "a", count: 5000))\r\n\r\n")
            #expect(bigHead.status == 431)
            let manyHeaders = try await exchange(
                port, "GET /proxies HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (0..<30).map { "X-\($0): 1\r\n" }.joined() + "\r\n")
            #expect(manyHeaders.status == 431)
            let bigBody = try await exchange(port, "POST /populate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4096\r\n\r\n")
            #expect(bigBody.status == 413)
            let chunkedTooBig = try await exchange(
                port,
                "POST /populate HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + String(repeating: "400\r\n" + String(repeating: " ", count: 1024) + "\r\n", count: 3))
            #expect(chunkedTooBig.status == 413)
            let smuggled = try await exchange(
                port, "POST /reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            #expect(smuggled.status == 400)

            let pieces = [#"{"name":"chunk","#, #""upstream":"127.0.0.1:1"}"#]
            let chunks = pieces.map { String($0.utf8.count, radix: 16) + ";ext=1\r\n" + $0 + "\r\n" }.joined()
            let chunked = try await exchange(
                port,
                "POST /proxies HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks
                    + "0\r\nX-Trailer: 1\r\n\r\n")
            #expect(chunked.status == 201, "\(chunked.body)")

            let (pipelined, continued) = try await blocking { () -> (String, String) in
                let socket = try TestSocket(port: port, timeout: 20)
                defer { socket.close() }
                try socket.send(
                    "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /proxies/chunk HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                let pipelined = String(decoding: socket.receiveAll().0, as: UTF8.self)
                let other = try TestSocket(port: port, timeout: 20)
                defer { other.close() }
                let body = #"{"enabled":true}"#
                try other.send(
                    "PATCH /proxies/chunk HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                )
                let interim = String(decoding: other.receive(count: 25).0, as: UTF8.self)
                try other.send(body)
                return (pipelined, interim + String(decoding: other.receiveAll().0, as: UTF8.self))
            }
            #expect(pipelined.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(pipelined)")
            #expect(pipelined.contains(#""name":"chunk""#))
            #expect(continued.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"), "\(continued)")
        }
    }

    @Test("a head or a chunked body sent a few bytes at a time is answered, its end split across reads; past the limits, 431 and 413")
    func trickledHeads() async throws {
        let configuration = AdminServer.Configuration(limits: AdminHTTPParser.Limits(headBytes: 4096, headerCount: 200, bodyBytes: 2048))
        try await withAdminFixture(configuration) { fixture in
            let port = fixture.port
            let replies = try await blocking { () -> [String] in
                var replies: [String] = []
                let heads = [
                    "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\r\nConnection: close\r\n\r\n",
                    "GET /version HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n",
                    "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n" + String(repeating: "X-Pad: 0123456789\r\n", count: 300) + "\r\n",
                    // A body of one-byte chunks, with a trailer; then one that outgrows the body limit.
                    "POST /proxies HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                        + #"{"name":"trickled","upstream":"127.0.0.1:1"}"#.map { "1\r\n\($0)\r\n" }.joined() + "0\r\nX-T: 1\r\n\r\n",
                    "POST /proxies HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + String(repeating: "1\r\na\r\n", count: 2100) + "0\r\n\r\n",
                ]
                for head in heads {
                    let socket = try TestSocket(port: port, timeout: 20)
                    defer { socket.close() }
                    // Three bytes a send: the blank line's LF (CR) LF is cut between reads.
                    let bytes = Array(head.utf8)
                    for start in stride(from: 0, to: bytes.count, by: 3) { try socket.send(Array(bytes[start..<min(start + 3, bytes.count)])) }
                    replies.append(String(decoding: socket.receiveAll().0, as: UTF8.self))
                }
                return replies
            }
            #expect(replies[0].hasPrefix("HTTP/1.1 200 OK") && replies[1].hasPrefix("HTTP/1.1 200 OK"), "\(replies)")
            #expect(replies[2].hasPrefix("HTTP/1.1 431"), "\(replies[2])")
            #expect(replies[3].hasPrefix("HTTP/1.1 201"), "\(replies[3])")
            #expect(replies[4].hasPrefix("HTTP/1.1 413"), "\(replies[4])")
        }
    }

    @Test("at most the configured number of connections are open at once")
    func connectionLimit() async throws {
        try await withAdminFixture(AdminServer.Configuration(maximumConnections: 2)) { fixture in
            let port = fixture.port
            let third = try await blocking { () -> TestSocket.End in
                let first = try TestSocket(port: port, timeout: 20)
                let second = try TestSocket(port: port, timeout: 20)
                // The server has both once each answers.
                for socket in [first, second] {
                    try socket.send("GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    _ = socket.receive(count: 100)
                }
                let third = try TestSocket(port: port, timeout: 20)
                let end = third.receiveAll().1
                third.close()
                first.close()
                second.close()
                return end
            }
            #expect(third == .eof)
            // Room again once they are gone.
            var answered = false
            for _ in 0..<200 where !answered {
                answered = (try? await http("GET", port, "/version"))?.status == 200
                if !answered { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(answered)
        }
    }
}

@Suite("Admin request parser (a pure function of bytes)")
struct AdminHTTPParserTests {
    static func parse(_ text: String, _ limits: AdminHTTPParser.Limits = .init()) -> AdminHTTPParser.Outcome {
        AdminHTTPParser.parse(Array(text.utf8), limits: limits)
    }

    @Test("a whole request, with what it consumed; LF line ends and leading empty lines accepted")
    func complete() throws {
        let text = "\r\nPOST /proxies?x=1 HTTP/1.1\nHost: h\nContent-Length: 2\n\n{}GET"
        guard case .complete(let request, let consumed) = Self.parse(text) else {
            Issue.record("not complete")
            return
        }
        #expect(request.method == "POST" && request.target == "/proxies?x=1" && request.minorVersion == 1)
        #expect(request.header("host") == "h")
        #expect(request.body == Array("{}".utf8))
        #expect(consumed == text.utf8.count - 3)
        #expect(request.keepAlive)
    }

    @Test("incomplete heads and bodies say how many bytes to wait for")
    func incomplete() {
        #expect(Self.parse("GET / HTTP/1.1\r\nHost: h\r\n") == .incomplete(minimumBytes: 26))
        let head = "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"
        guard case .head(let request, let minimum) = Self.parse(head + "abc") else {
            Issue.record("no head")
            return
        }
        #expect(request.expectsContinue)
        #expect(minimum == head.utf8.count + 10)
    }

    @Test(
        "malformed and oversized requests fail with their status",
        arguments: [
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            ("GET / FTP/1.0\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\u{1}b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX", 400),
        ])
    func failures(_ text: String, _ status: Int) {
        guard case .failure(let error) = Self.parse(text) else {
            Issue.record("\(text.debugDescription) parsed as \(Self.parse(text))")
            return
        }
        #expect(error.status == status, "\(text.debugDescription): \(error)")
    }

    @Test("a head without its end fails once it passes the limit")
    func headLimit() {
        let limits = AdminHTTPParser.Limits(headBytes: 100)
        #expect(Self.parse("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 70), limits) == .incomplete(minimumBytes: 90))
        guard case .failure(let error) = Self.parse("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200), limits) else {
            Issue.record("no failure")
            return
        }
        #expect(error.status == 431)
    }

    @Test("a chunk size with a sign is a 400, not a trap (found by scripts/fuzz)", arguments: ["-5", "+5", "-0", " -1"])
    func signedChunkSize(_ size: String) {
        let outcome = Self.parse("POST /proxies HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\(size)\r\nabcde\r\n0\r\n\r\n")
        #expect(outcome == .failure(AdminHTTPError(400, "invalid chunk size")))
    }

    @Test("any bytes give an outcome, never a trap")
    func arbitraryBytes() {
        var random = SeededRandom(seed: 15)
        let pieces = [
            "GET", "POST", " ", "/", "HTTP/1.1", "HTTP/1.0", "\r\n", "\n", "Host: a", "Content-Length: ", "5", "-",
            "Transfer-Encoding: chunked", "0", "ffffffffffffffffff", ";x", ":", "\u{0}", "\u{7f}", "é",
        ]
        for _ in 0..<3000 {
            var text = ""
            for _ in 0..<(random.next() % 24) { text += pieces[Int(random.next() % UInt64(pieces.count))] }
            var bytes = Array(text.utf8)
            if random.next() % 4 == 0, !bytes.isEmpty { bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next()) }
            switch AdminHTTPParser.parse(bytes) {
            case .complete(_, let consumed): #expect(consumed > 0 && consumed <= bytes.count)
            case .head(_, let minimum), .incomplete(let minimum): #expect(minimum > bytes.count)
            case .failure(let error): #expect([400, 413, 431, 501, 505].contains(error.status))
            }
        }
    }
}

@Suite("Admin access rules")
struct AdminAccessTests {
    @Test("Host values: this machine's names and addresses pass, other names do not")
    func hosts() {
        let access = AdminAccess(allowedHosts: ["Proxy.Example.", "*.internal"])
        let local: () -> Set<String> = { ["10.1.2.3", "fe80::1"] }
        for host in [
            "localhost", "a.localhost:1", "127.0.0.1:8474", "[::1]", "[::ffff:127.0.0.1]:80", "10.1.2.3:8474", "[fe80::1]:1", "0.0.0.0",
            "proxy.example", "PROXY.EXAMPLE:9", "db.internal",
        ] {
            #expect(access.hostAllowed(host, localAddresses: local), "\(host)")
        }
        for host in [
            "10.1.2.4", "example.com", "proxy.example.com", "internal", "localhost.example", "", ":80", "[::1", "a b", "evil.com:x",
            "user@localhost",
        ] {
            #expect(!access.hostAllowed(host, localAddresses: local), "\(host)")
        }
    }
}
