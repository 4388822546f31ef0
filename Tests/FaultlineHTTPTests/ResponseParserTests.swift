import NIOCore
import Testing

@testable import FaultlineHTTP

/// Feeds `text` to a parser in pieces of `split` bytes and collects what it makes.
private func parse(_ text: String, head: Bool = false, split: Int = .max, close: Bool = false) throws -> (
    status: Int?, keepAlive: Bool?, headers: [(String, String)], body: String, ended: Bool
) {
    var parser = ResponseParser()
    parser.begin(headRequest: head, collectHeaders: true)
    var status: Int?
    var keepAlive: Bool?
    var headers: [(String, String)] = []
    var body = ""
    var ended = false
    let bytes = Array(text.utf8)
    var offset = 0
    func consume(_ event: ResponseParser.Event) {
        switch event {
        case .head(let s, let k, let h):
            status = s
            keepAlive = k
            headers = h
        case .body(let part): body += String(buffer: part)
        case .end: ended = true
        }
    }
    while offset < bytes.count {
        let end = min(bytes.count, offset + split)
        parser.feed(ByteBuffer(bytes: bytes[offset..<end]))
        offset = end
        while !ended, let event = try parser.next() { consume(event) }
    }
    if close, !ended, let event = parser.endOfInput() { consume(event) }
    return (status, keepAlive, headers, body, ended)
}

@Suite("HTTP/1.x response parser")
struct ResponseParserTests {
    static let splits = [1, 2, 3, 7, 64, Int.max]

    @Test("a Content-Length body, fed in pieces of any size", arguments: splits)
    func contentLength(split: Int) throws {
        let r = try parse("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world", split: split)
        #expect(r.status == 200 && r.keepAlive == true && r.ended)
        #expect(r.body == "hello world")
        #expect(r.headers.map(\.0) == ["Content-Type", "Content-Length"])
        #expect(r.headers.first?.1 == "text/plain")
    }

    @Test("a chunked body with extensions and trailers", arguments: splits)
    func chunked(split: Int) throws {
        let r = try parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n", split: split)
        #expect(r.body == "hello world" && r.ended && r.keepAlive == true)
    }

    @Test("no framing: the body runs until the server closes, and the connection is not reused", arguments: splits)
    func untilClose(split: Int) throws {
        let r = try parse("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", split: split, close: true)
        #expect(r.body == "all of it" && r.ended && r.keepAlive == false)
    }

    @Test("no body after HEAD, 204 and 304, whatever the length says")
    func noBody() throws {
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", head: true).ended)
        #expect(try parse("HTTP/1.1 204 No Content\r\nContent-Length: 50\r\n\r\n").ended)
        #expect(try parse("HTTP/1.1 304 Not Modified\r\n\r\n").ended)
    }

    @Test("1xx responses are skipped; bare LF line ends are accepted", arguments: splits)
    func informational(split: Int) throws {
        let r = try parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\nContent-Length: 2\n\nok", split: split)
        #expect(r.status == 201 && r.body == "ok" && r.ended)
    }

    @Test(
        "keep-alive follows the version and Connection",
        arguments: [
            ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false),
            ("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Upgrade\r\nContent-Length: 0\r\n\r\n", true),
            ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true),
        ] as [(String, Bool)])
    func keepAlive(text: String, expected: Bool) throws {
        #expect(try parse(text).keepAlive == expected)
    }

    @Test(
        "malformed responses are errors, not hangs",
        arguments: [
            "SSH-2.0-OpenSSH_9.2\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ])
    func malformed(text: String) throws {
        #expect(throws: HTTPFailure.self) { _ = try parse(text) }
    }

    @Test("a response cut short is not complete")
    func cutShort() throws {
        let r = try parse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part", close: true)
        #expect(!r.ended)
    }
}
