import FaultlineKit
import FaultlineNetwork
import FaultlineProxy
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

/// HTTP toxics end to end: real nginx (and the test HTTP server where a route nginx lacks is
/// needed) behind the in-process proxy, real clients (curl, Python's http.client, raw sockets for
/// pipelining and bytes that are not HTTP).
@Suite("HTTP toxics", .serialized)
struct HTTPToxicTests {
    /// nginx behind a proxy server with one proxy, `web`.
    final class Fixture: TestResource, @unchecked Sendable {
        let nginx: TestNginx
        let server: ProxyServer
        let group: MultiThreadedEventLoopGroup
        let port: Int

        init(seed: UInt64 = 1, upstreamPort: Int? = nil, path: DataPath = .relay) async throws {
            nginx = try await TestNginx.start()
            group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
            server = ProxyServer(toxicTypes: ProxyFixture.toxicTypes, seed: seed, group: group, relay: path == .relay)
            let proxy = try await server.createProxy(
                name: "web", listen: "127.0.0.1:\(try FreePort.take())", upstream: "127.0.0.1:\(upstreamPort ?? nginx.port)")
            port = proxy.listenPort!
        }

        var url: String { "http://127.0.0.1:\(port)" }

        @discardableResult
        func add(_ type: String, stream: String = "downstream", toxicity: Double? = nil, name: String? = nil, _ attributes: Value) async throws
            -> ToxicDefinition
        {
            try await server.addToxic(
                ProxyServer.ToxicRequest(name: name, type: type, stream: stream, toxicity: toxicity, attributes: attributes), to: "web")
        }

        func close() async {
            await server.shutdown()
            try? await group.shutdownGracefully()
            await nginx.close()
        }
    }

    /// `curl -s` with the given arguments; stdout, and the exit status.
    static func curl(_ arguments: [String]) async throws -> (output: String, status: Int32) {
        let result = try await run("curl", ["-s", "--max-time", "20"] + arguments)
        return (result.stdout, result.status)
    }

    /// Python's http.client over one keep-alive connection: `METHOD path` per request, prints
    /// `status length` per response.
    static func python(port: Int, _ requests: [(String, String)], headers: [String: String] = [:]) async throws -> [String] {
        let script = """
            import http.client, sys, json
            conn = http.client.HTTPConnection("127.0.0.1", \(port), timeout=20)
            headers = json.loads(sys.argv[1])
            for line in sys.argv[2:]:
                method, path = line.split(" ", 1)
                body = b"x" * 10 if method in ("POST", "PUT") else None
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                print(response.status, len(data), flush=True)
            """
        let headerJSON = String(decoding: try JSONSerialization.data(withJSONObject: headers), as: UTF8.self)
        let result = try await run("python3", ["-c", script, headerJSON] + requests.map { "\($0.0) \($0.1)" })
        #expect(result.status == 0, "python: \(result.stderr)")
        return result.stdout.split(separator: "\n").map(String.init)
    }

    @Test("Toxics that match nothing leave HTTP traffic byte for byte, keep-alive included")
    func passThrough() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_abort", stream: "upstream", ["path": "/never"])
            let direct = try await Self.curl(["\(f.nginx.url)/big", "-o", "-"])
            let proxied = try await Self.curl(["\(f.url)/big", "\(f.url)/", "\(f.url)/big"])
            #expect(direct.status == 0 && proxied.status == 0)
            let big = String(decoding: TestNginx.bigBody, as: UTF8.self)
            #expect(proxied.output == big + "hello from nginx\n" + big)
            let statuses = try await Self.python(
                port: f.port, [("GET", "/"), ("HEAD", "/big"), ("GET", "/empty"), ("POST", "/"), ("GET", "/status/404"), ("GET", "/big")])
            #expect(statuses == ["200 17", "200 0", "204 0", "200 17", "404 11", "200 100000"])
            #expect(f.server.toxicReport(named: "http_abort_upstream", on: "web")?.hasPrefix("affected 0 of 0") == true)
        }
    }

    @Test("http_abort answers matching requests without forwarding them; the rest reach the server")
    func abortUpstream() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add(
                "http_abort", stream: "upstream",
                ["status": 503, "body": "down for chaos", "headers": ["Retry-After": "1"], "method": "POST", "path_prefix": "/ok"])
            let statuses = try await Self.python(
                port: f.port, [("POST", "/ok"), ("GET", "/ok"), ("POST", "/okay"), ("POST", "/echo"), ("GET", "/ok")])
            #expect(statuses == ["503 14", "200 5", "503 14", "200 \(statuses.count > 3 ? statuses[3].split(separator: " ")[1] : "?")", "200 5"])
            #expect(upstream.count("/ok") == 2)
            #expect(upstream.count("/okay") == 0)
            let withHeaders = try await Self.curl(["-i", "-X", "POST", "\(f.url)/ok"])
            #expect(withHeaders.output.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
            #expect(withHeaders.output.contains("Retry-After: 1\r\n"))
            #expect(f.server.toxicReport(named: "http_abort_upstream", on: "web") == "affected 3 of 3 matching requests")
        }
        await upstream.close()
    }

    @Test("Pipelined requests get their responses in order, made-up ones in their place")
    func pipelining() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_abort", stream: "upstream", ["status": 429, "path": "/big"])
            let port = f.port
            let text = try await blocking { () throws -> String in
                let socket = try TestSocket(port: port)
                defer { socket.close() }
                try socket.send(
                    "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /big HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET /status/201 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                )
                let (bytes, end) = socket.receiveAll()
                return String(decoding: bytes, as: UTF8.self) + "<\(end)>"
            }
            // nginx's bodies end in a bare LF, heads in CR LF (one Character): split on both.
            let statusLines = text.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("HTTP/1.1 ") }.map { $0.split(separator: " ")[1] }
            #expect(statusLines == ["200", "429", "200", "201"], "\(text.prefix(2000))")
            #expect(text.hasSuffix("status 201\n<eof>"))
        }
    }

    @Test("Per-request toxicity is seeded: the same seed replays the same requests")
    func seededProbability() async throws {
        func pattern(seed: UInt64) async throws -> [String] {
            try await closing(try await Fixture(seed: seed)) { f in
                try await f.add("http_abort", stream: "upstream", toxicity: 0.5, ["status": 503])
                return try await Self.python(port: f.port, Array(repeating: ("GET", "/"), count: 40))
            }
        }
        let first = try await pattern(seed: 42)
        let again = try await pattern(seed: 42)
        let other = try await pattern(seed: 43)
        #expect(first == again)
        #expect(first != other)
        let aborted = first.filter { $0.hasPrefix("503") }.count
        #expect(aborted > 5 && aborted < 35)
    }

    @Test("http_latency delays only the matching requests")
    func latency() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_latency", stream: "upstream", ["latency": 400, "path": "/status/202"])
            try await f.add("http_latency", stream: "downstream", name: "slow_response", ["latency": 300, "method": "HEAD"])
            let start = monotonicSeconds()
            #expect(try await Self.python(port: f.port, [("GET", "/status/202")]) == ["202 11"])
            #expect(monotonicSeconds() - start >= 0.4)
            let head = monotonicSeconds()
            #expect(try await Self.python(port: f.port, [("HEAD", "/")]) == ["200 0"])
            #expect(monotonicSeconds() - head >= 0.3)
            #expect(f.server.toxicReport(named: "slow_response", on: "web") == "affected 1 of 1 matching request")
        }
    }

    @Test("http_reset cuts a response after some of its body; the client sees a reset")
    func resetMidResponse() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_reset", ["body_bytes": 1000, "path": "/big"])
            let port = f.port
            let (bytes, end) = try await blocking { () throws -> ([UInt8], TestSocket.End) in
                let socket = try TestSocket(port: port)
                defer { socket.close() }
                try socket.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
                return socket.receiveAll()
            }
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
            let body = bytes.count - (text.range(of: "\r\n\r\n").map { text.utf8.distance(from: text.startIndex, to: $0.upperBound) } ?? 0)
            #expect(body == 1000)
            #expect(end == .reset)
            // Other requests on the proxy are untouched.
            #expect(try await Self.curl(["\(f.url)/"]).output == "hello from nginx\n")
        }
    }

    @Test("http_reset upstream cuts a request in its body: the client sees the connection reset, other paths pass")
    func resetMidRequest() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add("http_reset", stream: "upstream", ["body_bytes": 100, "method": "POST"])
            let cut = try await Self.curl(["--data-binary", String(repeating: "x", count: 50_000), "\(f.url)/echo"])
            #expect(cut.status == 56 || cut.status == 52, "curl exit \(cut.status)")  // recv failure (reset) / empty reply
            #expect(upstream.count("/echo") == 0)
            #expect(try await Self.curl(["\(f.url)/ok"]).output == "hello")
        }
        await upstream.close()
    }

    @Test("http_headers edits requests (upstream) and responses (downstream)")
    func headers() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_headers", stream: "upstream", ["set": ["X-Test": "injected"]])
            try await f.add("http_headers", ["set": ["X-Fault": "yes"], "remove": ["Content-Type"], "path": "/headers"])
            let response = try await Self.curl(["-i", "\(f.url)/headers"])
            #expect(response.output.contains("X-Echo: injected\r\n"))
            #expect(response.output.contains("X-Fault: yes\r\n"))
            #expect(!response.output.lowercased().contains("content-type"))
            #expect(response.output.hasSuffix("headers\n"))
        }
    }

    @Test("http_body replaces or truncates response bodies")
    func body() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_body", name: "replace", ["body": "{\"fault\":true}", "path": "/"])
            try await f.add("http_body", name: "cut", ["truncate": 10, "path": "/big"])
            #expect(try await Self.python(port: f.port, [("GET", "/"), ("GET", "/status/200"), ("GET", "/")]) == ["200 14", "200 11", "200 14"])
            #expect(try await Self.curl(["\(f.url)/"]).output == "{\"fault\":true}")
            let cut = try await Self.curl(["\(f.url)/big"])
            #expect(cut.status == 18)  // curl: partial file
            #expect(cut.output.utf8.count == 10)
        }
    }

    @Test("Bytes that are not HTTP pass through untouched, and the toxic's report says so")
    func notHTTP() async throws {
        try await withProxyFixture { fixture in
            try await fixture.addToxic("http_abort", stream: "upstream", ["status": 503])
            let socket = try await fixture.connect()
            defer { socket.close() }
            let hello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]
            let (echo, prior) = try await blocking { () throws -> ([UInt8], [UInt8]) in
                try socket.send(hello)
                let (first, _) = socket.receive(count: hello.count)
                try socket.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                let (second, _) = socket.receive(count: 24)
                return (first, second)
            }
            #expect(echo == hello)
            #expect(String(decoding: prior, as: UTF8.self) == "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            let report = fixture.server.toxicReport(named: "http_abort_upstream", on: "test")
            #expect(report?.contains("1 connection was not HTTP/1.x") == true)
        }
    }

    @Test("HTTP/2 prior knowledge and malformed requests are passed through, not answered")
    func http2PriorKnowledge() async throws {
        try await withProxyFixture { fixture in
            try await fixture.addToxic("http_abort", stream: "upstream", ["status": 503])
            let socket = try await fixture.connect()
            defer { socket.close() }
            let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            let received = try await blocking { () throws -> [UInt8] in
                try socket.send(preface)
                return socket.receive(count: preface.utf8.count).0
            }
            #expect(String(decoding: received, as: UTF8.self) == preface)
        }
    }

    @Test("Expect: 100-continue and chunked uploads cross an HTTP-aware proxy")
    func expectContinueAndChunked() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add("http_headers", stream: "upstream", ["set": ["X-Seen": "1"], "path": "/nothing"])
            let body = String(repeating: "b", count: 5000)
            let expect = try await Self.curl(["-H", "Expect: 100-continue", "-H", "Content-Type: text/plain", "--data-binary", body, "\(f.url)/echo"])
            #expect(expect.status == 0)
            #expect(expect.output.contains(body))
            let chunked = try await Self.curl(["-H", "Transfer-Encoding: chunked", "--data-binary", "hello chunks", "\(f.url)/echo", "\(f.url)/ok"])
            #expect(chunked.output.contains("hello chunks"))
            #expect(chunked.output.hasSuffix("hello"))
        }
        await upstream.close()
    }

    @Test("a held request's 100 Continue comes after the earlier pipelined response, and its body is merged")
    func expectContinueBehindEarlierResponse() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add("http_body", stream: "upstream", ["merge_patch": #"{"patched": true}"#, "method": "POST"])
            // The socket's timeout only ends a hang: without the proxy's 100 the client would wait forever.
            let socket = try await blocking { [port = f.port] in try TestSocket(port: port, timeout: 60) }
            defer { socket.close() }
            let body = #"{"order":1}"#
            // The first response is held at the server's gate while the second request's head arrives.
            try socket.send(
                "GET /gate/first HTTP/1.1\r\nHost: a\r\n\r\n"
                    + "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n")
            try #require(await eventually { upstream.waiting(atGate: "first") == 1 })
            upstream.openGate("first")
            let first = try await blocking { try HTTPToxicLiveTests.readResponse(socket) }
            #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n") && first.hasSuffix("\r\n\r\nthrough"), "\(first)")
            let interim = try await blocking { try HTTPToxicLiveTests.readResponse(socket) }
            #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n")
            try socket.send(body)
            let second = try await blocking { try HTTPToxicLiveTests.readResponse(socket) }
            #expect(second.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(second)")
            let headEnd = try #require(second.range(of: "\r\n\r\n"))
            let echoed = try JSONReader.value(String(second[headEnd.upperBound...]))
            #expect(echoed["body"] == #"{"order":1,"patched":true}"#)
            #expect(echoed["headers"]?["expect"] == nil)
        }
        await upstream.close()
    }

    @Test("Toxics are validated: bad HTTP attributes are refused with the attribute named")
    func validation() async throws {
        try await closing(try await Fixture()) { f in
            await #expect(throws: ProxyError.self) { try await f.add("http_abort", ["status": 42]) }
            await #expect(throws: ProxyError.self) { try await f.add("http_headers", ["header_value": "x", "set": ["A": "b"]]) }
            await #expect(throws: ProxyError.self) { try await f.add("http_body", [:]) }
        }
    }
}

@Suite("HTTP toxics on live connections, upgrades and the shipped binary")
struct HTTPToxicLiveTests {
    /// One request over an open socket; the response head and body as text (by Content-Length).
    static func roundTrip(_ socket: TestSocket, _ request: String) throws -> String {
        try socket.send(request)
        return try readResponse(socket)
    }

    /// The next response on a socket, head and body as text (by Content-Length; none for a 1xx),
    /// read to its last byte and no further.
    static func readResponse(_ socket: TestSocket) throws -> String {
        var received: [UInt8] = []
        while true {
            let text = String(decoding: received, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound].lowercased()
                let length =
                    head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }.flatMap {
                        Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces))
                    } ?? 0
                if received.count >= text.utf8.distance(from: text.startIndex, to: end.upperBound) + length { return text }
            }
            let (bytes, end) = socket.receive(count: 1)
            if bytes.isEmpty { throw TestFailure("connection ended (\(String(describing: end))) after \(text)") }
            received += bytes
        }
    }

    @Test("a toxic added while a keep-alive connection is open applies from its next request", arguments: DataPath.allCases)
    func liveAdd(path: DataPath) async throws {
        try await closing(try await TestNginx.start()) { nginx in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
            let server = ProxyServer(toxicTypes: ProxyFixture.toxicTypes, seed: 1, group: group, relay: path == .relay)
            let proxy = try await server.createProxy(name: "web", listen: "127.0.0.1:\(try FreePort.take())", upstream: "127.0.0.1:\(nginx.port)")
            let port = proxy.listenPort!
            let socket = try await blocking { try TestSocket(port: port) }
            let request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
            let before = try await blocking { try Self.roundTrip(socket, request) }
            _ = try await server.addToxic(ProxyServer.ToxicRequest(type: "http_abort", stream: "upstream", attributes: ["status": 503]), to: "web")
            let during = try await blocking { try Self.roundTrip(socket, request) }
            try await server.removeToxic(named: "http_abort_upstream", from: "web")
            let after = try await blocking { try Self.roundTrip(socket, request) }
            socket.close()
            await server.shutdown()
            try await group.shutdownGracefully()
            #expect(before.hasPrefix("HTTP/1.1 200 OK") && before.hasSuffix("hello from nginx\n"))
            #expect(during.hasPrefix("HTTP/1.1 503 Service Unavailable"), "\(during)")
            #expect(after.hasPrefix("HTTP/1.1 200 OK"), "\(after)")
        }
    }

    @Test("after 101 Switching Protocols the connection is a tunnel: nothing in it is answered by HTTP toxics", arguments: DataPath.allCases)
    func upgrade(_ path: DataPath) async throws {
        let switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        try await withProxyFixture(.reply(switching), path: path) { fixture in
            try await fixture.addToxic("http_abort", stream: "upstream", ["status": 503, "path": "/x"])
            let socket = try await fixture.connect()
            defer { socket.close() }
            let (first, second) = try await blocking { () throws -> (String, String) in
                try socket.send("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                let first = String(decoding: socket.receive(count: switching.utf8.count).0, as: UTF8.self)
                // Inside the tunnel, bytes that look like a matching request go to the server.
                try socket.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
                let second = String(decoding: socket.receive(count: switching.utf8.count).0, as: UTF8.self)
                return (first, second)
            }
            #expect(first == switching)
            #expect(second == switching)
            #expect(fixture.server.toxicReport(named: "http_abort_upstream", on: "test") == "affected 0 of 0 matching requests")
        }
    }

    @Test("faultline run: the load probe through an http_abort toxic sees the requests it affected, as the journal counts them")
    func loadProbeThroughBinary() async throws {
        try await closing(try await TestNginx.start()) { nginx in
            let scratch = try ScratchDirectory(prefix: "faultline-http-run")
            let suite = try scratch.write(
                "suite.yaml",
                """
                name: http load
                seed: 11
                proxies:
                  - {name: web, upstream: "127.0.0.1:\(nginx.port)"}
                experiments:
                  - title: a fifth of the requests fail
                    method:
                      - type: action
                        name: flaky
                        provider: {type: toxic, proxy: web, toxic: http_abort, stream: upstream, toxicity: 0.2, attributes: {status: 503}}
                      - type: probe
                        name: load
                        provider: {type: http.load, url: "http://127.0.0.1:${proxies.web.port}/", users: 4, iterations: 50}
                """)
            let process = try TestProcess.faultline(["run", suite, "--journal-path", scratch.path("journals")], in: scratch)
            #expect(await process.wait() == 0, "\(process.stdout)\(process.stderr)")
            // A suite writes one journal per experiment into the directory.
            let file = try #require(try FileManager.default.contentsOfDirectory(atPath: scratch.path("journals")).first { $0.hasSuffix(".json") })
            let journal = try Journal.load(path: scratch.path("journals/\(file)"))
            let load = try #require(journal.run.first { $0.name == "load" }?.output)
            let failed = try #require(load["overall"]?["failed"]?.intValue)
            #expect(load["overall"]?["count"] == 200)
            #expect(failed > 10 && failed < 80)
            let label = try #require(journal.faults.first?.label)
            #expect(label.hasSuffix("— affected \(failed) of 200 matching requests"), "\(label)")
        }
    }
}
