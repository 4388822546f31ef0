import FaultlineKit
import NIOCore
import Testing

@testable import FaultlineProxy

/// The HTTP framing the proxy's HTTP toxics rely on: every byte comes out in exactly one event,
/// in order, whatever the read boundaries.
@Suite("HTTP framing")
struct HTTPFramingTests {
    /// A compact trace of events: `H:<method or status>`, `B:<bytes>`, `E`, `O:<bytes>`, `N:<bytes>`.
    static func trace(_ role: HTTPFraming.Role, _ text: String, readSize: Int, head: Bool = false) -> (events: [String], bytes: String) {
        var framing = HTTPFraming(role: role)
        framing.nextResponseToHEAD = head
        var events: [String] = []
        var output = ""
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            var input = ByteBuffer(bytes: bytes[offset..<min(bytes.count, offset + readSize)])
            offset += readSize
            while let event = framing.next(&input) {
                switch event {
                case .head(let raw, .request(let request)):
                    events.append("H:\(request.method)")
                    output += String(buffer: raw)
                case .head(let raw, .response(let response)):
                    events.append("H:\(response.status)")
                    output += String(buffer: raw)
                case .body(let body):
                    if let last = events.last, last.hasPrefix("B") { events.removeLast() }
                    events.append("B")
                    output += String(buffer: body)
                case .end: events.append("E")
                case .opaque(let body):
                    events.append("O")
                    output += String(buffer: body)
                case .notHTTP(_, let body):
                    events.append("N")
                    output += String(buffer: body)
                }
            }
        }
        return (events, output)
    }

    static let pipelined =
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        + "POST /orders HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        + "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n0\r\nTrailer: t\r\n\r\n"
        + "\r\nDELETE /y HTTP/1.0\r\n\r\n"

    @Test("pipelined requests with length and chunked bodies, at every read size", arguments: [1, 2, 3, 7, 64, 4096])
    func requests(readSize: Int) {
        let (events, bytes) = Self.trace(.request, Self.pipelined, readSize: readSize)
        #expect(events == ["H:GET", "E", "H:POST", "B", "E", "H:PUT", "B", "E", "H:DELETE", "E"])
        #expect(bytes == Self.pipelined)
    }

    @Test("responses: chunked, bodyless statuses, HEAD, and a body until the close", arguments: [1, 5, 4096])
    func responses(readSize: Int) {
        let text =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            + "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n" + "HTTP/1.1 304 Not Modified\r\n\r\n"
            + "HTTP/1.0 200 OK\r\n\r\nuntil the close"
        let (events, bytes) = Self.trace(.response, text, readSize: readSize)
        #expect(events == ["H:100", "E", "H:200", "B", "E", "H:204", "E", "H:304", "E", "H:200", "B"])
        #expect(bytes == text)
        let head = Self.trace(.response, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", readSize: readSize, head: true)
        #expect(head.events == ["H:200", "E"])
    }

    @Test("bytes that are not HTTP/1.x come back whole, as soon as they cannot be HTTP")
    func notHTTP() {
        #expect(Self.trace(.request, "\u{16}\u{03}\u{01}hello", readSize: 3).events.first == "N")
        let prior = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        let (events, bytes) = Self.trace(.request, prior, readSize: 4)
        #expect(events.first == "N" && bytes == prior)
        let malformed = "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy"
        let bad = Self.trace(.request, malformed, readSize: 4096)
        #expect(bad.events == ["N"] && bad.bytes == malformed)
        let badChunk = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        #expect(Self.trace(.request, badChunk, readSize: 4096).bytes == badChunk)
    }

    @Test("a head trickled in a byte at a time is judged as it grows, and given up past its limits")
    func trickled() {
        // A plausible request line held back until its head ends; a kilobyte of empty lines, a
        // request line past 16 KiB or a head past 64 KiB is not HTTP, and passes through whole.
        let head = "GET /\(String(repeating: "a", count: 4000)) HTTP/1.1\r\n" + String(repeating: "X-A: b\r\n", count: 500) + "\r\n"
        #expect(Self.trace(.request, head, readSize: 1) == (["H:GET", "E"], head))
        for stream in [
            String(repeating: "\r\n", count: 600) + "GET / HTTP/1.1\r\n\r\n", "GET /" + String(repeating: "a", count: 17_000),
            "GET / HTTP/1.1\r\n" + String(repeating: "X-A: b\r\n", count: 9_000),
        ] {
            let (events, bytes) = Self.trace(.request, stream, readSize: 1)
            // Given up, then the rest passes read by read.
            #expect(events.first == "N" && !events.contains { $0.hasPrefix("H") } && bytes == stream)
        }
        // A line that cannot be HTTP is found by the time its line ends (the reads after it pass as they come).
        let smtp = Self.trace(.request, "GET / SMTP/1.0\r\nmore", readSize: 1)
        #expect(smtp.events.first == "N" && smtp.events.count - 1 >= "more".count)
        let ssh = Self.trace(.response, "SSH-2.0-OpenSSH_9.2\r\n", readSize: 1)
        #expect(ssh.events.first == "N" && ssh.events.count > 1)
    }

    /// The one head a trace of `text` yields, as a request.
    static func request(_ text: String) -> HTTPToxicRequest? {
        var framing = HTTPFraming(role: .request)
        var input = ByteBuffer(string: text)
        guard case .head(_, .request(let request)) = framing.next(&input) else { return nil }
        return request
    }

    @Test("heads: every field kept as sent, folded lines joined, framing read from the last coding and agreeing lengths")
    func heads() throws {
        let request = try #require(
            Self.request("\r\nPOST /a%20b?x=1 HTTP/1.1\r\nHost: shop\r\nX-Long:  first \r\n \tsecond\r\nX-Empty:\r\nContent-Length: 2\r\n\r\nhi"))
        #expect(request.method == "POST" && request.target == "/a%20b?x=1" && request.version == "HTTP/1.1")
        #expect(
            request.headers == [
                HTTPHeaderField(name: "Host", value: "shop"), HTTPHeaderField(name: "X-Long", value: "first second"),
                HTTPHeaderField(name: "X-Empty", value: ""), HTTPHeaderField(name: "Content-Length", value: "2"),
            ])
        // Transfer-Encoding: the last coding listed decides; empty members are not codings.
        for (coding, chunked) in [
            ("chunked", true), ("gzip, CHUNKED", true), ("chunked,", true), ("chunked, gzip", false), ("chunked, ,", false), ("chunked, ", true),
        ] {
            let text = "POST / HTTP/1.1\r\nTransfer-Encoding: \(coding)\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            let (events, bytes) = Self.trace(.request, text, readSize: 4096)
            // Not chunked is not a request body a server could frame: passed through as it is.
            #expect(events == (chunked ? ["H:POST", "B", "E"] : ["N"]), "\(coding)")
            #expect(bytes == text)
        }
        // A folded Content-Length is one value, "1 2": not a length.
        #expect(Self.trace(.request, "POST / HTTP/1.1\r\nContent-Length: 1\r\n 2\r\n\r\nab", readSize: 4096).events == ["N"])
        // Equal lengths twice frame the body; a field name with a space, or a fold first, is not HTTP.
        #expect(
            Self.trace(.request, "POST / HTTP/1.1\r\ncontent-length: 2\r\nContent-Length: 2\r\n\r\nab", readSize: 4096).events == [
                "H:POST", "B", "E",
            ])
        #expect(Self.trace(.request, "GET / HTTP/1.1\r\nX Bad: 1\r\n\r\n", readSize: 4096).events == ["N"])
        #expect(Self.trace(.request, "GET / HTTP/1.1\r\n folded: 1\r\n\r\n", readSize: 4096).events == ["N"])
        #expect(Self.trace(.request, "GET  HTTP/1.1\r\n\r\n", readSize: 4096).events == ["N"])
        #expect(Self.trace(.response, "HTTP/1.1 2000 OK\r\n\r\n", readSize: 4096).events == ["N"])
        // A response's fields are parsed when a toxic asks, from the same bytes.
        let response = HTTPFraming.responseHead(ByteBuffer(string: "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n  2\r\n\r\n"))
        #expect(response.version == "HTTP/1.1" && response.status == 503 && response.reason == "Service Unavailable")
        #expect(response.headers == [HTTPHeaderField(name: "Retry-After", value: "1 2")])
        // Folded, the codings are "gzip, chunked": a chunked body (unfolded, gzip's would run until the close).
        let folded = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        #expect(Self.trace(.response, folded, readSize: 4096).events == ["H:200", "B", "E"])
    }

    @Test("request matching: method, exact path, prefix, glob, host and header")
    func matching() {
        let request = HTTPToxicRequest(
            method: "POST", target: "/orders/42/items?x=1",
            headers: [HTTPHeaderField(name: "Host", value: "shop.local:8080"), HTTPHeaderField(name: "X-Canary", value: "yes")])
        #expect(HTTPRequestMatch().matches(request))
        #expect(HTTPRequestMatch(method: "post", path: "/orders/42/items").matches(request))
        #expect(!HTTPRequestMatch(method: "GET").matches(request))
        #expect(HTTPRequestMatch(pathPrefix: "/orders/").matches(request))
        #expect(HTTPRequestMatch(pathGlob: "/orders/*/items").matches(request))
        #expect(!HTTPRequestMatch(pathGlob: "/orders/*/item").matches(request))
        #expect(HTTPRequestMatch(pathGlob: "/orders/??/*").matches(request))
        #expect(HTTPRequestMatch(host: "SHOP.local").matches(request))
        #expect(!HTTPRequestMatch(host: "shop").matches(request))
        #expect(HTTPRequestMatch(header: "x-canary", headerValue: "yes").matches(request))
        #expect(!HTTPRequestMatch(header: "x-canary", headerValue: "no").matches(request))
        #expect(!HTTPRequestMatch(header: "x-missing").matches(request))
    }
}
