import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

@testable import FaultlineHTTP
import FaultlineNetwork
import FaultlineTestSupport

/// Decodes and validates a provider's arguments written as a value, as the engine does.
func prepared<P: Provider>(_ provider: P.Type, _ arguments: Value) throws -> P.Arguments {
    let decoded = try NodeDecoder().decode(P.Arguments.self, from: arguments)
    try P.validate(decoded)
    return decoded
}

/// Runs the `http` provider with arguments written as a value, as an experiment would give them.
func runHTTP(_ arguments: Value) async throws -> Value {
    try await HTTPProvider.run(try prepared(HTTPProvider.self, arguments), context: .standalone(name: "http"))
}

/// Runs the `http` provider expecting a failure, and returns it.
func failingHTTP(_ arguments: Value) async throws -> ActivityFailure {
    do {
        let output = try await runHTTP(arguments)
        Issue.record("expected a failure, got \(output)")
        throw CancellationError()
    } catch let failure as ActivityFailure {
        return failure
    }
}

@Suite("http provider against a real server")
struct HTTPProviderTests {
    @Test("a JSON response is decoded, with status, headers and elapsed time")
    func jsonResponse() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP(["url": .string(server.url + "/json")])
            #expect(output["status"] == 200)
            #expect(output["body"]?["name"] == "faultline")
            #expect(output["body"]?["values"] == [1, 2, 3])
            #expect(output["headers"]?["Content-Type"] == "application/json; charset=utf-8")
            #expect((output["elapsed_ms"]?.doubleValue ?? -1) >= 0)
        }
    }

    @Test("a chunked response is reassembled")
    func chunkedResponse() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP(["url": .string(server.url + "/chunked")])
            #expect(output["body"] == ["parts": [1, 2]])
            #expect(output["headers"]?["transfer-encoding"] == "chunked")
        }
    }

    @Test("a text response stays text")
    func textResponse() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP(["url": .string(server.url + "/ok")])
            #expect(output["body"] == "hello")
        }
    }

    @Test("arguments of a GET become the query string; lists repeat the name, nulls are dropped")
    func getArguments() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP([
                "url": .string(server.url + "/echo?fixed=1"), "arguments": ["q": "a b&c", "n": 3, "tag": ["x", "y"], "gone": nil],
            ])
            #expect(output["body"]?["method"] == "GET")
            #expect(output["body"]?["query"] == "fixed=1&q=a+b%26c&n=3&tag=x&tag=y")
        }
    }

    @Test("arguments become a JSON body when Content-Type is application/json")
    func jsonArguments() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP([
                "url": .string(server.url + "/echo"), "method": "post", "headers": ["Content-Type": "application/json"],
                "arguments": ["user": "ada", "admin": true],
            ])
            let body = try #require(output["body"]?["body"]?.stringValue)
            #expect(try JSONReader.value(body) == ["user": "ada", "admin": true])
            #expect(output["body"]?["method"] == "POST")
        }
    }

    @Test("a Content-Length written in headers is replaced by the length of the body sent, as requests does")
    func contentLength() async throws {
        try await closing(TestHTTPServer.start()) { server in
            // A body shorter than the header promises: the server would wait for the rest and time out.
            let output = try await runHTTP([
                "url": .string(server.url + "/echo"), "method": "POST", "timeout": 5,
                "headers": ["Content-Type": "application/json", "Content-Length": "164"], "arguments": ["username": "ada"],
            ])
            #expect(output["body"]?["body"] == #"{"username":"ada"}"#)
            #expect(output["body"]?["headers"]?["content-length"] == "18")
            // A GET without a body sends none (requests would pass the header on and hang the server).
            let get = try await runHTTP(["url": .string(server.url + "/echo"), "timeout": 5, "headers": ["Content-Length": "10"]])
            #expect(get["body"]?["headers"]?["content-length"] == nil)
        }
    }

    @Test("numbers given as text are numbers: timeout \"5\", as from an env value")
    func numbersAsText() throws {
        let arguments = try prepared(HTTPProvider.self, ["url": "http://127.0.0.1:1/", "timeout": "5"])
        #expect(arguments.timeout == RequestTimeout(connect: 5, read: 5))
        let pair = try prepared(HTTPProvider.self, ["url": "http://127.0.0.1:1/", "timeout": ["2", 3.5]])
        #expect(pair.timeout == RequestTimeout(connect: 2, read: 3.5))
    }

    @Test("a JSON body keeps the text it came as, for regex tolerances")
    func receivedText() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let context = ActivityContext.standalone(name: "http")
            let output = try await HTTPProvider.run(try prepared(HTTPProvider.self, ["url": .string(server.url + "/json")]), context: context)
            #expect(output["body"]?["name"] == "faultline")
            #expect(context.receivedTexts["body"] == #"{"name":"faultline","values":[1,2,3],"nested":{"ok":true}}"#)
        }
    }

    @Test("arguments become a form body otherwise")
    func formArguments() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP(["url": .string(server.url + "/echo"), "method": "PUT", "arguments": ["user": "ada lovelace", "id": 7]])
            #expect(output["body"]?["body"] == "user=ada+lovelace&id=7")
            #expect(output["body"]?["headers"]?["content-type"] == "application/x-www-form-urlencoded")
            #expect(output["body"]?["method"] == "PUT")
        }
    }

    @Test("body: a string is sent as written, anything else as JSON")
    func bodies() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let text = try await runHTTP(["url": .string(server.url + "/echo"), "method": "POST", "body": "raw text"])
            #expect(text["body"]?["body"] == "raw text")
            #expect(text["body"]?["headers"]?["content-length"] == "8")
            let json = try await runHTTP(["url": .string(server.url + "/echo"), "method": "PATCH", "body": ["a": [1, 2]]])
            #expect(json["body"]?["body"] == #"{"a":[1,2]}"#)
            #expect(json["body"]?["headers"]?["content-type"] == "application/json")
        }
    }

    @Test("headers are sent; numbers are written as text; a default User-Agent names Faultline")
    func headers() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP(["url": .string(server.url + "/echo"), "headers": ["X-Request-Id": "abc", "X-Count": 3]])
            #expect(output["body"]?["headers"]?["x-request-id"] == "abc")
            #expect(output["body"]?["headers"]?["x-count"] == "3")
            #expect(output["body"]?["headers"]?["user-agent"]?.stringValue?.hasPrefix("faultline/") == true)
            #expect(output["body"]?["headers"]?["host"] == .string("127.0.0.1:\(server.port)"))
        }
    }

    @Test("HEAD gets a response without a body")
    func head() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP(["url": .string(server.url + "/ok"), "method": "HEAD"])
            #expect(output["status"] == 200)
            #expect(output["body"] == "")
        }
    }

    @Test(
        "a status outside expected_status fails with the status and the start of the body",
        arguments: [
            Value.int(200), "200-299", "2xx", [200, 204],
        ])
    func expectedStatusMismatch(expected: Value) async throws {
        try await closing(TestHTTPServer.start()) { server in
            let failure = try await failingHTTP(["url": .string(server.url + "/status/503"), "expected_status": expected])
            #expect(failure.message.contains("returned 503"))
            #expect(failure.details.joined().contains("status 503 body"))
            #expect(failure.output?["status"] == 503)
        }
    }

    @Test("a status inside expected_status passes", arguments: [Value.int(503), "500-599", "5xx", [200, 503]])
    func expectedStatusMatch(expected: Value) async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP(["url": .string(server.url + "/status/503"), "expected_status": expected])
            #expect(output["status"] == 503)
        }
    }

    @Test("without expected_status an error status is an output, not a failure (as Chaos Toolkit)")
    func errorStatusIsOutput() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP(["url": .string(server.url + "/status/500")])
            #expect(output["status"] == 500)
        }
    }

    @Test("redirects are followed to the final response")
    func redirects() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP(["url": .string(server.url + "/redirect/3")])
            #expect(output["status"] == 200)
            #expect(output["body"] == "hello")
            #expect(server.count("/redirect/3") == 1 && server.count("/redirect/1") == 1 && server.count("/ok") == 1)
        }
    }

    @Test("follow_redirects: false returns the redirect itself")
    func redirectNotFollowed() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runHTTP(["url": .string(server.url + "/redirect/1"), "follow_redirects": false])
            #expect(output["status"] == 302)
            #expect(output["headers"]?["Location"] == "/ok")
        }
    }

    @Test("303 turns a POST into a GET without body; 308 keeps the method and body")
    func redirectMethods() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let seeOther = try await runHTTP(["url": .string(server.url + "/see-other"), "method": "POST", "body": "payload"])
            #expect(seeOther["body"]?["method"] == "GET")
            #expect(seeOther["body"]?["body"] == "")
            let permanent = try await runHTTP(["url": .string(server.url + "/permanent"), "method": "POST", "body": "payload"])
            #expect(permanent["body"]?["method"] == "POST")
            #expect(permanent["body"]?["body"] == "payload")
        }
    }

    @Test("a closed port fails fast as connection refused, after the retries")
    func refused() async throws {
        let port = try FreePort.take()
        let failure = try await failingHTTP(["url": .string("http://127.0.0.1:\(port)/"), "max_retries": 2])
        #expect(failure.message.contains("connection refused"))
        #expect(failure.message.contains("3 attempts"))
        #expect(failure.output?["error"] == "refused")
    }

    @Test("a server that never answers fails as a read timeout")
    func readTimeout() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let failure = try await failingHTTP(["url": .string(server.url + "/hang"), "timeout": [2, 0.3]])
            #expect(failure.message.contains("read timeout"))
            #expect(failure.output?["error"] == "read_timeout")
        }
    }

    @Test("a server that resets, or closes halfway through a response, fails as a reset", arguments: ["/reset", "/half"])
    func reset(path: String) async throws {
        try await closing(TestHTTPServer.start()) { server in
            let failure = try await failingHTTP(["url": .string(server.url + path), "timeout": 5])
            #expect(failure.message.contains("connection reset"), "\(failure.message)")
            #expect(failure.output?["error"] == "reset")
        }
    }

    @Test("a listener that never accepts fails as a connect timeout")
    func connectTimeout() async throws {
        let listener = try FullBacklogListener()
        defer { listener.close() }
        let failure = try await failingHTTP(["url": .string("http://127.0.0.1:\(listener.port)/"), "timeout": [0.3, 1]])
        #expect(failure.message.contains("connect timeout"), "\(failure.message)")
        #expect(failure.output?["error"] == "connect_timeout")
    }

    @Test("https to a plain HTTP server fails as TLS")
    func tlsToPlainServer() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let failure = try await failingHTTP(["url": .string("https://127.0.0.1:\(server.port)/ok"), "timeout": 5])
            #expect(failure.message.contains("TLS"), "\(failure.message)")
            #expect(failure.output?["error"] == "tls")
        }
    }

    @Test(
        "https to a server that resets or closes the connection before the TLS handshake completes fails as TLS, as curl says it",
        arguments: [
            TestTCPServer.Behaviour.resetOnData, .closeOnAccept,
        ])
    func tlsCutShort(_ behaviour: TestTCPServer.Behaviour) async throws {
        try await closing(TestTCPServer(behaviour)) { server in
            let failure = try await failingHTTP(["url": .string("https://127.0.0.1:\(server.port)/ok"), "timeout": 5])
            #expect(failure.output?["error"] == "tls", "\(failure.message)")
            // "did not complete" (closed or reset), or BoringSSL's "EOF during handshake" when it saw the close first.
            #expect(failure.message.contains("TLS handshake with 127.0.0.1:\(server.port) "), "\(failure.message)")
        }
    }

    @Test("a self-signed certificate fails verification, and passes with verify_tls: false")
    func verifyTLS() async throws {
        try await closing(TestHTTPServer.start(tls: true)) { server in
            let url = "https://localhost:\(server.port)/json"
            let failure = try await failingHTTP(["url": .string(url), "timeout": 5])
            #expect(failure.output?["error"] == "tls")
            let output = try await runHTTP(["url": .string(url), "verify_tls": false])
            #expect(output["status"] == 200)
            #expect(output["body"]?["nested"]?["ok"] == true)
        }
    }

    @Test("a host that does not resolve fails as DNS")
    func dns() async throws {
        let failure = try await failingHTTP(["url": "http://no-such-host.invalid/", "timeout": 5])
        #expect(failure.output?["error"] == "dns", "\(failure.message)")
    }

    @Test("cancelling the task stops a connect that is waiting at once", .timeLimit(.minutes(1)))
    func cancellationWhileConnecting() async throws {
        let listener = try FullBacklogListener()
        defer { listener.close() }
        let task = Task { try await runHTTP(["url": .string("http://127.0.0.1:\(listener.port)/"), "timeout": [600, 600]]) }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    @Test("cancelling the task stops a request that is waiting at once", .timeLimit(.minutes(1)))
    func cancellation() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let task = Task { try await runHTTP(["url": .string(server.url + "/hang"), "timeout": 60]) }
            while server.count("/hang") == 0 { await Task.yield() }
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
        }
    }
}

@Suite("http provider arguments")
struct HTTPArgumentTests {
    @Test("bad arguments are load errors pointing at file, line and column")
    func badArguments() async throws {
        let kit = TestKit()
        await #expect {
            _ = try await kit.run(
                yaml: """
                    title: bad
                    method:
                      - type: probe
                        name: call
                        provider:
                          type: http
                          url: http://127.0.0.1:1/
                          timeout: [1, 2, 3]
                    """, plugins: [HTTPPlugin.self])
        } throws: { error in
            let text = "\(error)"
            return text.contains("experiment.yaml:8:") && text.contains("timeout must be seconds")
        }
    }

    @Test(
        "defaults",
        arguments: [
            ("method", "\"GET\""), ("timeout", "[5.0,30.0]"), ("verify_tls", "true"), ("max_retries", "0"), ("follow_redirects", "true"),
        ] as [(String, String)])
    func defaults(key: String, expected: String) throws {
        let arguments = try NodeDecoder().decode(HTTPProvider.Arguments.self, from: ["url": "http://x/"])
        let encoded = try ValueEncoder().encode(arguments)
        #expect(encoded[key]?.description == expected)
    }

    @Test(
        "unparseable values are rejected",
        arguments: [
            (Value.object(["url": "ftp://x/"]), "only http and https"),
            (["url": "http://x/", "expected_status": "20x"], "not a status"),
            (["url": "http://x/", "expected_status": 99], "not an HTTP status"),
            (["url": "http://x/", "method": "GE T"], "not an HTTP method"),
            (["url": "http://x/", "timeout": 0], "more than 0"),
        ] as [(Value, String)])
    func rejected(arguments: Value, message: String) throws {
        #expect {
            _ = try prepared(HTTPProvider.self, arguments)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test(
        "expected_status forms",
        arguments: [
            (Value.int(204), [204...204]), ("2xx", [200...299]), ("200-299", [200...299]), (["200", 301, "5xx"], [200...200, 301...301, 500...599]),
        ] as [(Value, [ClosedRange<Int>])])
    func expectedStatusForms(value: Value, ranges: [ClosedRange<Int>]) throws {
        #expect(try NodeDecoder().decode(ExpectedStatus.self, from: value).ranges == ranges)
    }
}

/// A loopback listener whose accept queue is full, so a further connect gets no answer (SYNs are
/// dropped): the only way to see a connect timeout without leaving the machine.
final class FullBacklogListener: Sendable {
    let port: Int
    private let descriptors: [Int32]

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                guard bind(listener, raw, length) == 0, listen(listener, 0) == 0, getsockname(listener, raw, &length) == 0 else {
                    throw POSIXError(.EADDRINUSE)
                }
            }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        // Fill the queue: with a backlog of 0 Linux keeps one completed connection; later SYNs wait.
        var fillers: [Int32] = []
        for _ in 0..<3 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            _ = fcntl(filler, F_SETFL, O_NONBLOCK)
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                    _ = connect(filler, raw, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            fillers.append(filler)
        }
        descriptors = [listener] + fillers
    }

    func close() {
        for descriptor in descriptors { _ = Glibc.close(descriptor) }
    }
}
