import FaultlineKit
import FaultlineTestSupport
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import FaultlineProxy

/// The relay's HTTP screen: a proxy whose toxics are all HTTP toxics keeps its connections on the
/// relay while no toxic acts on a request, and moves one to NIO at the first request a toxic acts
/// on, with the same rolls and counts either way.
@Suite("HTTP toxics screened on the relay", .serialized)
struct HTTPScreenTests {
    typealias Fixture = HTTPToxicTests.Fixture

    /// Reads one response with a Content-Length body (nginx's and the test server's), head and body.
    static func response(_ socket: TestSocket) throws -> String {
        var bytes: [UInt8] = []
        while !bytes.reversed().starts(with: [10, 13, 10, 13]) {
            let (byte, end) = socket.receive(count: 1)
            guard byte.count == 1 else { throw SocketFailure("the response ended after \(bytes.count) bytes: \(String(describing: end))", code: 0) }
            bytes += byte
        }
        let head = String(decoding: bytes, as: UTF8.self)
        let length =
            head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        let (body, _) = length > 0 ? socket.receive(count: length) : ([], nil)
        return head + String(decoding: body, as: UTF8.self)
    }

    static func status(_ response: String) -> String { response.split(separator: " ").dropFirst().first.map(String.init) ?? "?" }

    @Test(
        "requests no toxic acts on stay on the relay, their matches counted; the first one a toxic acts on (but an answer) moves the connection to NIO"
    )
    func staysUntilAFaultFires() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_headers", name: "api", ["set": ["X-Chaos": "1"], "path_prefix": "/status/"])
            try await f.add("http_abort", stream: "upstream", toxicity: 0, name: "never", ["status": 500])
            let runtime = try #require(f.server.runtime(of: "web"))
            let socket = try await blocking { try TestSocket(port: f.port) }
            defer { socket.close() }
            for _ in 0..<3 {
                let answer = try await blocking {
                    try socket.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); return try Self.response(socket)
                }
                #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.hasSuffix("hello from nginx\n"), "\(answer)")
            }
            #expect(runtime.relayedConnections == 1, "a request no toxic acts on keeps the connection on the relay")
            #expect(f.server.toxicReport(named: "never", on: "web") == "affected 0 of 3 matching requests")
            let marked = try await blocking {
                try socket.send("GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n"); return try Self.response(socket)
            }
            #expect(marked.contains("\r\nX-Chaos: 1\r\n"), "\(marked)")
            #expect(runtime.relayedConnections == 0, "NIO edited the response: the connection moved there")
            let after = try await blocking {
                try socket.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); return try Self.response(socket)
            }
            #expect(after.hasSuffix("hello from nginx\n"), "\(after)")
            #expect(f.server.toxicReport(named: "api", on: "web") == "affected 1 of 1 matching request")
            #expect(f.server.toxicReport(named: "never", on: "web") == "affected 0 of 5 matching requests")
        }
    }

    @Test("an upstream http_abort is answered on the relay: the server never sees the request or its body, and the connection stays")
    func answeredOnTheRelay() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add(
                "http_abort", stream: "upstream", name: "flaky",
                ["status": 503, "body": "try later", "headers": ["Retry-After": "1"], "path_prefix": "/orders"])
            let runtime = try #require(f.server.runtime(of: "web"))
            let socket = try await blocking { try TestSocket(port: f.port) }
            defer { socket.close() }
            func exchange(_ request: String) async throws -> String {
                try await blocking {
                    try socket.send(request); return try Self.response(socket)
                }
            }
            #expect(Self.status(try await exchange("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")) == "200")
            // A body by length and a chunked one, each dropped with its request.
            let byLength = try await exchange("POST /orders HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
            #expect(byLength.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n") && byLength.contains("\r\nRetry-After: 1\r\n"), "\(byLength)")
            #expect(byLength.hasSuffix("\r\n\r\ntry later"), "\(byLength)")
            let chunked = try await exchange(
                "POST /orders/7 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            #expect(Self.status(chunked) == "503")
            // HEAD gets the head alone; a request after the answers is the server's again.
            let head = try await blocking {
                try socket.send("HEAD /orders HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
                var bytes: [UInt8] = []
                while !bytes.reversed().starts(with: [10, 13, 10, 13]) { bytes += socket.receive(count: 1).0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            #expect(head.hasPrefix("HTTP/1.1 503 ") && head.contains("Content-Length: 9\r\n"), "\(head)")
            let echoed = try await blocking { try Self.response(socket) }
            #expect(Self.status(echoed) == "200" && echoed.contains("\"method\":\"GET\""), "\(echoed)")
            #expect(runtime.relayedConnections == 1, "answered on the relay: the connection stayed there")
            #expect(upstream.count("/orders") == 0 && upstream.count("/orders/7") == 0)
            #expect(upstream.total == 2, "the server saw /ok and /echo only: \(upstream.requests)")
            #expect(f.server.toxicReport(named: "flaky", on: "web") == "affected 3 of 3 matching requests")
        }
        await upstream.close()
    }

    @Test(
        "an answer the client asked to close after (Connection: close, HTTP/1.0, Expect: 100-continue) is the session's",
        arguments: [
            "GET /orders HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "GET /orders HTTP/1.0\r\nHost: a\r\n\r\n",
            "POST /orders HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        ])
    func answersThatClose(request: String) async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_abort", stream: "upstream", ["status": 503, "path": "/orders"])
            let runtime = try #require(f.server.runtime(of: "web"))
            let (text, end) = try await blocking { () throws -> (String, TestSocket.End) in
                let socket = try TestSocket(port: f.port)
                defer { socket.close() }
                try socket.send(request)
                let (bytes, end) = socket.receiveAll()
                return (String(decoding: bytes, as: UTF8.self), end)
            }
            #expect(text.hasPrefix("HTTP/1.1 503 ") && text.contains("Connection: close\r\n"), "\(text)")
            #expect(end == .eof, "the proxy closed the connection after its answer")
            #expect(await eventually { runtime.relayedConnections == 0 })
        }
    }

    @Test("a seeded run makes the same faults, and counts the same, whether the relay screened a request or NIO ran it")
    func sameRollsOnBothPaths() async throws {
        func run(_ path: DataPath) async throws -> (statuses: [String], reports: [String?]) {
            try await closing(try await Fixture(seed: 11, path: path)) { f in
                // Rare enough that the relay screens several requests before the first fault.
                try await f.add("http_abort", stream: "upstream", toxicity: 0.05, name: "some", ["status": 503])
                try await f.add("http_abort", stream: "upstream", toxicity: 0.3, name: "big", ["status": 502, "path": "/big"])
                try await f.add("http_headers", stream: "downstream", toxicity: 0.2, name: "marked", ["set": ["X-Chaos": "1"]])
                // Matches on the response too: a request it matches moves to NIO, to be judged there.
                try await f.add(
                    "http_body", stream: "downstream", toxicity: 0.5, name: "short", ["body": "x", "code": 404, "path": "/status/404"])
                let requests = (0..<60).map { index in
                    ("GET", index % 8 == 5 ? "/big" : index >= 40 && index % 5 == 0 ? "/status/404" : "/")
                }
                let statuses = try await HTTPToxicTests.python(port: f.port, requests)
                let statusesAgain = try await HTTPToxicTests.python(port: f.port, requests)
                return (statuses + statusesAgain, ["some", "big", "marked", "short"].map { f.server.toxicReport(named: $0, on: "web") })
            }
        }
        let screened = try await run(.relay)
        let nio = try await run(.nio)
        #expect(screened.statuses == nio.statuses)
        #expect(screened.reports == nio.reports)
        #expect(screened.statuses.contains { $0.hasPrefix("503") } && screened.statuses.contains { $0.hasPrefix("502") })
        #expect(screened.statuses.contains("200 17") && screened.statuses.contains("200 100000") && screened.statuses.contains("404 1"))
        // Each connection passed requests on the relay before its first fault.
        #expect(screened.statuses.prefix(3).allSatisfy { $0 == "200 17" } && screened.statuses[60..<63].allSatisfy { $0 == "200 17" })
    }

    @Test("requests pipelined behind a long response: the one a toxic acts on waits for it, then everything comes in order")
    func pipelinedBehindALongResponse() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_abort", stream: "upstream", ["status": 429, "path": "/status/201"])
            let port = f.port
            let (text, end) = try await blocking { () throws -> (String, TestSocket.End) in
                let socket = try TestSocket(port: port)
                defer { socket.close() }
                try socket.send(
                    "GET /big HTTP/1.1\r\nHost: a\r\n\r\nGET /status/201 HTTP/1.1\r\nHost: a\r\n\r\nGET /big HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                )
                let (bytes, end) = socket.receiveAll()
                return (String(decoding: bytes, as: UTF8.self), end)
            }
            // The big bodies do not end in a line end: status lines are found by their pattern.
            let statusLines = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statusLines == ["200", "429", "200", "200"])
            let big = String(decoding: TestNginx.bigBody, as: UTF8.self)
            #expect(text.components(separatedBy: big).count == 3, "both big bodies whole")
            #expect(text.hasSuffix("hello from nginx\n") && end == .eof)
        }
    }

    @Test("a head split across reads is not passed on before it is whole: the server never sees the request a toxic answers")
    func splitHeadIsHeld() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add("http_abort", stream: "upstream", ["status": 503, "path": "/ok"])
            let runtime = try #require(f.server.runtime(of: "web"))
            let socket = try await blocking { try TestSocket(port: f.port) }
            defer { socket.close() }
            // Each piece is read by the proxy before the next is sent: a read of its own.
            var sent = 0
            func send(_ pieces: [String]) async throws -> String {
                for piece in pieces {
                    try await blocking { try socket.send(piece) }
                    sent += piece.utf8.count
                    let total = UInt64(sent)
                    #expect(await eventually { runtime.metrics.upstream.received.load(ordering: .relaxed) == total })
                }
                return try await blocking { try Self.response(socket) }
            }
            // A passing request whose head comes in three pieces, then one the toxic answers.
            let answers = [
                try await send(["GET /ec", "ho HTTP/1.1\r\nHo", "st: a\r\n\r\n"]), try await send(["GET /o", "k HTTP/1.1\r\nHost: a\r\n", "\r\n"]),
            ]
            #expect(Self.status(answers[0]) == "200", "\(answers[0])")
            #expect(Self.status(answers[1]) == "503", "\(answers[1])")
            #expect(upstream.count("/ok") == 0)
            #expect(upstream.count("/echo") == 1)
        }
        await upstream.close()
    }

    @Test("a toxic change keeps a screened connection on the relay while the toxics are all HTTP ones; a byte toxic moves it to NIO")
    func toxicChanges() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_abort", stream: "upstream", name: "a", ["status": 503, "path": "/never"])
            let runtime = try #require(f.server.runtime(of: "web"))
            let socket = try await blocking { try TestSocket(port: f.port) }
            defer { socket.close() }
            func get(_ path: String) async throws -> String {
                try await blocking {
                    try socket.send("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n"); return try Self.response(socket)
                }
            }
            #expect(Self.status(try await get("/")) == "200")
            // Another HTTP toxic: the screen takes it, and the next matching request meets it.
            try await f.add("http_abort", stream: "upstream", name: "b", ["status": 418, "path": "/status/404"])
            #expect(runtime.relayedConnections == 1)
            #expect(Self.status(try await get("/")) == "200")
            _ = try await f.server.removeToxic(named: "a", from: "web")
            #expect(runtime.relayedConnections == 1)
            // A byte toxic: the relay cannot run it, so the connection moves to NIO at once.
            try await f.add("latency", stream: "downstream", name: "slow", ["latency": 0])
            #expect(runtime.relayedConnections == 0)
            #expect(Self.status(try await get("/status/404")) == "418")
            #expect(Self.status(try await get("/")) == "200")
        }
    }

    @Test("a fault on a request pipelined behind one still unanswered: the connection moves to NIO at once, and the made-up answer waits its turn")
    func faultBehindAnUnansweredRequest() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add("http_abort", stream: "upstream", ["status": 503, "path": "/abort"])
            let runtime = try #require(f.server.runtime(of: "web"))
            let socket = try await blocking { try TestSocket(port: f.port) }
            defer { socket.close() }
            try await blocking {
                try socket.send(
                    "GET /gate/a HTTP/1.1\r\nHost: a\r\n\r\nGET /abort HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                )
            }
            #expect(await eventually { upstream.waiting(atGate: "a") == 1 })
            #expect(await eventually { runtime.relayedConnections == 0 }, "handed over with the gate's response still to come")
            upstream.openGate("a")
            let (bytes, end) = try await blocking { socket.receiveAll() }
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) } == ["200", "503", "200"], "\(text)")
            #expect(text.hasSuffix("hello") && end == .eof)
            #expect(upstream.count("/abort") == 0)
        }
        await upstream.close()
    }

    @Test(
        "a byte toxic added while a response is on its way: the session frames that response as the connection's, and a fault after it waits for it")
    func byteToxicMidExchange() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add("http_abort", stream: "upstream", ["status": 503, "path": "/abort"])
            let runtime = try #require(f.server.runtime(of: "web"))
            let socket = try await blocking { try TestSocket(port: f.port) }
            defer { socket.close() }
            let first = "GET /gate/b HTTP/1.1\r\nHost: a\r\n\r\n"
            try await blocking { try socket.send(first) }
            #expect(await eventually { upstream.waiting(atGate: "b") == 1 })
            #expect(runtime.relayedConnections == 1)
            try await f.add("latency", stream: "downstream", name: "slow", ["latency": 0])
            #expect(runtime.relayedConnections == 0)
            // The request the toxic answers reaches the session while the gate's response is still to come.
            let second = "GET /abort HTTP/1.1\r\nHost: a\r\n\r\n"
            try await blocking { try socket.send(second) }
            let total = UInt64(first.utf8.count + second.utf8.count)
            #expect(await eventually { runtime.metrics.upstream.received.load(ordering: .relaxed) == total })
            upstream.openGate("b")
            let answers = try await blocking { [try Self.response(socket), try Self.response(socket)] }
            #expect(answers.map(Self.status) == ["200", "503"], "\(answers)")
        }
        await upstream.close()
    }

    /// Runs `body` with screens (a new one per call of `make`) over the toxics of a proxy with a
    /// toxic on `/abort`: by default one the session runs (a delay); `http_abort` the screen answers.
    static func withScreens(toxic: String = "http_latency", _ body: (_ make: () -> HTTPScreen) async throws -> Void) async throws {
        let server = ProxyServer(toxicTypes: ProxyFixture.toxicTypes, seed: 1, group: MultiThreadedEventLoopGroup.singleton, relay: false)
        do {
            _ = try await server.createProxy(name: "web", listen: "127.0.0.1:0", upstream: "127.0.0.1:9")
            _ = try await server.addToxic(ProxyServer.ToxicRequest(type: toxic, stream: "upstream", attributes: ["path": "/abort"]), to: "web")
            let runtime = try #require(server.runtime(of: "web"))
            let toxics = try #require(runtime.screenableToxics())
            try await body { HTTPScreen(runtime: runtime, connection: 1, toxics: toxics, client: nil) }
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    /// Feeds a screen `stream` in reads of 1 to 40 bytes until it holds a request: what it
    /// passed, the answers it made, and how far it read.
    static func feed(_ screen: HTTPScreen, _ stream: [UInt8], random: inout SeededRandom) -> (passed: [UInt8], answers: [UInt8], read: Int) {
        var passed: [UInt8] = []
        var answers: [UInt8] = []
        var offset = 0
        while offset < stream.count && screen.held == nil {
            let length = min(stream.count - offset, Int.random(in: 1...40, using: &random))
            let chunk = Array(stream[offset..<offset + length])
            offset += length
            var input = ByteBuffer(bytes: chunk)
            switch screen.requestBytes(&input) {
            case .prefix(let count): passed += chunk[..<count]
            case .bytes(let bytes): passed += Array(bytes.readableBytesView)
            }
            if let made = screen.takeAnswers() { answers += Array(made.readableBytesView) }
        }
        return (passed, answers, offset)
    }

    static let requestKinds = [
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\nPOST /orders HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
        "PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: t\r\n\r\n",
        "HEAD /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
        "GET /a?q=1 HTTP/1.0\r\nHost: a\r\n\tfolded\r\n\r\n",
    ]

    @Test("what the screen passes, then what it holds, is every byte the client sent, in order, however the reads split it")
    func passedAndHeldAreTheStream() async throws {
        var random = SeededRandom(seed: 5)
        try await Self.withScreens { make in
            for round in 0..<300 {
                let screen = make()
                let count = Int.random(in: 1...6, using: &random)
                var requests = (0..<count).map { _ in Self.requestKinds.randomElement(using: &random)! }
                // Every other stream has a request the toxic acts on, somewhere in it.
                let abortAt = round % 2 == 0 ? Int.random(in: 0...count, using: &random) : nil
                if let abortAt { requests.insert("GET /abort HTTP/1.1\r\nHost: a\r\n\r\n", at: abortAt) }
                let stream = Array(requests.joined().utf8)
                let (passed, _, offset) = Self.feed(screen, stream, random: &random)
                let kept = screen.takeUnpassed().map { Array($0.readableBytesView) } ?? []
                #expect(passed + kept + stream[offset...] == stream, "round \(round): \(requests)")
                // Everything before the request the toxic acts on passed (all of a stream without
                // one); that request and what follows did not.
                #expect(passed == Array(requests[..<(abortAt ?? requests.count)].joined().utf8), "round \(round): \(requests)")
                #expect(screen.requestCount == UInt64(abortAt ?? count), "round \(round)")
            }
        }
    }

    @Test("answered requests leave the stream whole, bodies included, however the reads split it; the first after a passed one is held")
    func answeredAreLeftOut() async throws {
        var random = SeededRandom(seed: 6)
        let answered = [
            "GET /abort HTTP/1.1\r\nHost: a\r\n\r\n", "POST /abort HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
            "PUT /abort HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: t\r\n\r\n",
            "HEAD /abort HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        try await Self.withScreens(toxic: "http_abort") { make in
            for round in 0..<300 {
                let screen = make()
                // Answers first (no response is owed yet, so each is answered at once), then
                // requests that pass, then one more for the toxic: it waits for their responses.
                let aborts = (0..<Int.random(in: 0...4, using: &random)).map { _ in answered.randomElement(using: &random)! }
                let passing = (0..<Int.random(in: 0...4, using: &random)).map { _ in Self.requestKinds.randomElement(using: &random)! }
                let last = passing.isEmpty ? [] : ["GET /abort HTTP/1.1\r\nHost: a\r\n\r\n"]
                let stream = Array((aborts + passing + last).joined().utf8)
                let (passed, answers, offset) = Self.feed(screen, stream, random: &random)
                let text = String(decoding: answers, as: UTF8.self)
                #expect(passed == Array(passing.joined().utf8), "round \(round): \(aborts) \(passing)")
                #expect(text.components(separatedBy: "HTTP/1.1 503 ").count - 1 == aborts.count, "round \(round): \(text)")
                let held = screen.takeUnpassed().map { Array($0.readableBytesView) } ?? []
                #expect(held + stream[offset...] == Array(last.joined().utf8)[...], "round \(round)")
                #expect(screen.requestCount == UInt64(aborts.count + passing.count), "round \(round)")
            }
        }
    }

    @Test("responses read in any split end the exchanges they answer: 1xx interim, HEAD, chunked, bodies of every length")
    func responsesEndExchanges() async throws {
        var random = SeededRandom(seed: 9)
        let requests =
            "GET / HTTP/1.1\r\n\r\nHEAD / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\n\r\n"
        let stream = Array(
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                + "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                + "HTTP/1.1 204 No Content\r\n\r\n").utf8)
        try await Self.withScreens { make in
            for round in 0..<200 {
                // The same split fed to two screens: one gets every byte, one all but the last.
                let cuts = (0..<stream.count).filter { _ in Int.random(in: 0..<8, using: &random) == 0 }
                for withheld in [0, 1] {
                    let screen = make()
                    var input = ByteBuffer(string: requests)
                    _ = screen.requestBytes(&input)
                    #expect(screen.requestCount == 4)
                    var start = 0
                    for end in cuts + [stream.count - withheld] where end > start {
                        var chunk = ByteBuffer(bytes: stream[start..<end])
                        screen.responseBytes(&chunk)
                        start = end
                    }
                    #expect(!screen.stopped, "round \(round)")
                    // The 204's head ends with its last byte: until it comes, its exchange is in flight.
                    #expect(screen.resume().inFlight.count == withheld, "round \(round), cuts \(cuts)")
                }
            }
        }
    }

    @Test("a toxic limited to other clients is never rolled for this one: its requests stay on the relay")
    func otherClients() async throws {
        try await closing(try await Fixture()) { f in
            try await f.server.addToxic(
                ToxicDefinition(name: "far", type: "http_abort", stream: .upstream, attributes: ["status": 503], clients: ["10.0.0.0/8"]), to: "web")
            try await f.server.addToxic(
                ToxicDefinition(
                    name: "near", type: "http_abort", stream: .upstream, attributes: ["status": 429, "path": "/near"], clients: ["127.0.0.1"]),
                to: "web")
            let runtime = try #require(f.server.runtime(of: "web"))
            let socket = try await blocking { try TestSocket(port: f.port) }
            defer { socket.close() }
            let passed = try await blocking {
                try socket.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); return try Self.response(socket)
            }
            #expect(Self.status(passed) == "200")
            #expect(runtime.relayedConnections == 1)
            let near = try await blocking {
                try socket.send("GET /near HTTP/1.1\r\nHost: a\r\n\r\n"); return try Self.response(socket)
            }
            #expect(Self.status(near) == "429")
            #expect(f.server.toxicReport(named: "far", on: "web") == "affected 0 of 0 matching requests")
        }
    }
}
