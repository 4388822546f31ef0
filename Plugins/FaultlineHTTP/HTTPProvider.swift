import FaultlineKit
import Foundation
import NIOCore
import NIOHTTP1

/// Chaos Toolkit's `http` provider: one request, output `{status, headers, body, elapsed_ms}`.
///
/// Compatible with Chaos Toolkit's fields and their meaning, plus `body`, `expected_status` (which
/// Chaos Toolkit documents but ignores; here a mismatch fails the activity) and
/// `follow_redirects`. Connection failures fail the activity with their class named: refused,
/// connect timeout, reset, read timeout, TLS, DNS.
public struct HTTPProvider: Probe, Action {
    public static let type = "http"
    public static let summary = "Send one HTTP request; output {status, headers, body, elapsed_ms}"
    public static let argumentHelp = [
        "url": "http:// or https:// URL",
        "method": "HTTP method",
        "headers": "request headers",
        "arguments": "query string for GET; otherwise a JSON body when Content-Type is application/json, a form body if not",
        "body": "request body: a string as written, anything else as JSON",
        "timeout": "seconds, or [connect, read]; read is the longest wait for the next byte of the response",
        "verify_tls": "check the server's certificate",
        "max_retries": "retries after a failure to connect (refused, connect timeout, DNS); never after the request was sent",
        "expected_status": "fail unless the status is this code, list, range (\"200-299\") or class (\"2xx\")",
        "follow_redirects": "follow 301, 302, 303, 307 and 308 (at most 30)",
    ]

    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = [
            "timeout": .seconds, "max_retries": .count(1000), "expected_status": ExpectedStatus.range,
        ]
        public var url: String
        public var method: String
        public var headers: [String: String]
        public var arguments: Value?
        public var body: Value?
        public var timeout: RequestTimeout
        public var verify_tls: Bool
        public var max_retries: Int
        public var expected_status: ExpectedStatus?
        public var follow_redirects: Bool

        enum CodingKeys: String, CodingKey {
            case url, method, headers, arguments, body, timeout, verify_tls, max_retries, expected_status, follow_redirects
        }

        public init(
            url: String, method: String = "GET", headers: [String: String] = [:], arguments: Value? = nil, body: Value? = nil,
            timeout: RequestTimeout = .standard, verify_tls: Bool = true, max_retries: Int = 0, expected_status: ExpectedStatus? = nil,
            follow_redirects: Bool = true
        ) {
            self.url = url
            self.method = method
            self.headers = headers
            self.arguments = arguments
            self.body = body
            self.timeout = timeout
            self.verify_tls = verify_tls
            self.max_retries = max_retries
            self.expected_status = expected_status
            self.follow_redirects = follow_redirects
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            url = try c.decode(String.self, forKey: .url)
            method = try c.decodeIfPresent(String.self, forKey: .method)?.uppercased() ?? "GET"
            headers = try HeaderFields.decode(c, forKey: .headers)
            arguments = try c.decodeIfPresent(Value.self, forKey: .arguments)
            body = try c.decodeIfPresent(Value.self, forKey: .body)
            timeout = try c.decodeIfPresent(RequestTimeout.self, forKey: .timeout) ?? .standard
            verify_tls = try c.decodeIfPresent(Bool.self, forKey: .verify_tls) ?? true
            max_retries = try c.decodeIfPresent(Int.self, forKey: .max_retries) ?? 0
            expected_status = try c.decodeIfPresent(ExpectedStatus.self, forKey: .expected_status)
            follow_redirects = try c.decodeIfPresent(Bool.self, forKey: .follow_redirects) ?? true
        }
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        do {
            _ = try HTTPTarget(parsing: arguments.url)
        } catch {
            throw ArgumentError("url", error.description)
        }
        try RequestBuilder.validateMethod(arguments.method, key: "method")
        if arguments.max_retries < 0 { throw ArgumentError("max_retries", "max_retries must be 0 or more") }
        if arguments.body != nil, let given = arguments.arguments, !given.isNull, arguments.method != "GET" {
            throw ArgumentError("body", "give the body either as arguments or as body, not both")
        }
        if let given = arguments.arguments, !given.isNull, given.objectValue == nil {
            throw ArgumentError("arguments", "arguments must be an object of names and values", hint: "write arguments: {name: value}")
        }
    }

    public func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        try await Self.run(arguments, context: context)
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        try await Self.run(arguments, context: context)
    }

    /// Most redirects followed, as `requests`.
    static let redirectLimit = 30

    /// Sends the request (following redirects, retrying failed connects) and builds the output.
    public static func run(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        var request: PreparedRequest
        do {
            request = try RequestBuilder.build(
                url: arguments.url, method: arguments.method, headers: arguments.headers.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 },
                arguments: arguments.arguments, body: arguments.body)
        } catch let error as ArgumentError {
            throw ActivityFailure(error.description)
        }
        let started = NIODeadline.now()
        func elapsed() -> Value { .double(Stats.milliseconds(NIODeadline.now() - started)) }
        let options = ExchangeOptions(collectBody: true, readTimeout: Seconds.amount(arguments.timeout.read))
        let described = "\(request.method.rawValue) \(request.target)"

        var connection: HTTPClientConnection?
        defer { connection?.close() }
        var redirects = 0
        while true {
            let result: ExchangeResult
            do {
                if connection == nil || connection?.target.authority != request.target.authority || connection?.target.isTLS != request.target.isTLS {
                    connection?.close()
                    connection = nil
                    connection = try await connect(request.target, arguments: arguments, context: context)
                }
                result = try await connection!.send(request, options: options)
                if !(await connection!.isReusable) {
                    connection!.close()
                    connection = nil
                }
            } catch let failure as HTTPFailure {
                if Task.isCancelled { throw CancellationError() }
                throw ActivityFailure(
                    "\(described) failed: \(failure)", output: ["status": .null, "error": .string(failure.kind.rawValue), "elapsed_ms": elapsed()])
            }

            let status = result.status
            if arguments.follow_redirects, [301, 302, 303, 307, 308].contains(status),
                let location = result.header("location")
            {
                guard redirects < redirectLimit else {
                    throw ActivityFailure("\(described) redirected more than \(redirectLimit) times; the last went to \(location)")
                }
                guard let next = request.target.resolving(location) else {
                    throw ActivityFailure("\(described) redirected to \"\(location)\", which is not an http or https URL")
                }
                redirects += 1
                // 303 always becomes GET; 301 and 302 turn POST into GET, as browsers and `requests` do.
                let becomesGet = (status == 303 && request.method != .HEAD) || ((status == 301 || status == 302) && request.method == .POST)
                request = request.redirected(to: next, method: becomesGet ? .GET : request.method, keepBody: !becomesGet)
                context.logger.debug("following \(status) to \(next)")
                continue
            }

            let output = ResponseOutput.value(result, elapsedMilliseconds: elapsed())
            context.recordReceivedText(ResponseOutput.text(result), forOutputKey: "body")
            if result.truncated {
                context.logger.warning("the body of \(described) was longer than \(options.bodyLimit >> 20) MiB; the output keeps the start")
            }
            if let expected = arguments.expected_status, !expected.contains(status) {
                throw ActivityFailure(
                    "\(described) returned \(status), expected \(expected)", details: ["body: " + ResponseOutput.preview(result.body)], output: output
                )
            }
            return output
        }
    }

    private static func connect(_ target: HTTPTarget, arguments: Arguments, context: ActivityContext) async throws -> HTTPClientConnection {
        var attempt = 0
        while true {
            do {
                return try await HTTPClientConnection.connect(
                    to: target, verifyTLS: arguments.verify_tls, connectTimeout: Seconds.amount(arguments.timeout.connect))
            } catch var failure as HTTPFailure where failure.kind.isConnectPhase {
                guard attempt < arguments.max_retries else {
                    if attempt > 0 { failure.detail += " (\(attempt + 1) attempts)" }
                    throw failure
                }
                attempt += 1
                context.logger.debug("retry \(attempt) of \(arguments.max_retries) after \(failure)")
            }
        }
    }
}

/// `timeout`: seconds for both phases, or `[connect, read]`, as `requests` takes it.
public struct RequestTimeout: Codable, Sendable, Equatable {
    /// Longest wait for the TCP connection.
    public var connect: Double
    /// Longest wait for the next byte of the response.
    public var read: Double

    public init(connect: Double, read: Double) {
        self.connect = connect
        self.read = read
    }

    /// Five seconds to connect, thirty to read: a dead server fails fast, a slow one has time.
    public static let standard = RequestTimeout(connect: 5, read: 30)

    public init(from decoder: any Decoder) throws {
        let value = try Value(from: decoder)
        let numbers: [Double]? =
            if let single = value.numberValue { [single, single] } else { value.arrayValue?.compactMap(\.numberValue) }
        try decoder.checkRange(numbers ?? [])
        guard let numbers, numbers.count == 2, value.arrayValue.map({ $0.count == 2 }) ?? true, numbers.allSatisfy({ $0 > 0 && $0.isFinite })
        else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "timeout must be seconds (more than 0) or [connect, read], found \(value)"))
        }
        connect = numbers[0]
        read = numbers[1]
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if connect == read { try container.encode(connect) } else { try container.encode([connect, read]) }
    }
}

/// Header fields written as an object; numbers and booleans become their text.
enum HeaderFields {
    static func decode<K: CodingKey>(_ container: KeyedDecodingContainer<K>, forKey key: K) throws -> [String: String] {
        let raw = try container.decodeIfPresent([String: Value].self, forKey: key) ?? [:]
        return raw.compactMapValues { value in
            switch value {
            case .null: nil
            case .string(let s): s
            default: Substitution.interpolated(value)
            }
        }
    }
}

/// Turns provider arguments into a ``PreparedRequest``.
enum RequestBuilder {
    static func validateMethod(_ method: String, key: String) throws {
        let token = CharacterSet(charactersIn: "!#$%&'*+-.^_`|~").union(.alphanumerics)
        guard !method.isEmpty, method.unicodeScalars.allSatisfy({ token.contains($0) }) else {
            throw ArgumentError(key, "\"\(method)\" is not an HTTP method", hint: "write GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS")
        }
    }

    /// Builds a request the way Chaos Toolkit's `http` provider does: `arguments` become the query
    /// of a GET, a JSON body when `Content-Type` is JSON, and a form otherwise.
    static func build(url: String, method: String, headers: [(String, String)], arguments: Value?, body: Value?) throws -> PreparedRequest {
        var target: HTTPTarget
        do {
            target = try HTTPTarget(parsing: url)
        } catch {
            throw ArgumentError("url", error.description)
        }
        let httpMethod = HTTPMethod(rawValue: method.uppercased())
        var headers = headers
        let contentType = headers.first { $0.0.lowercased() == "content-type" }?.1
        var payload: ByteBuffer?
        if case .object(let fields)? = arguments {
            if httpMethod == .GET {
                target = target.appendingQuery(formItems(fields))
            } else if let contentType, isJSON(contentType) {
                payload = ByteBuffer(string: JSONWriter.string(.object(fields), pretty: false))
            } else {
                payload = ByteBuffer(string: FormEncoding.encode(formItems(fields)))
                if contentType == nil { headers.append(("Content-Type", "application/x-www-form-urlencoded")) }
            }
        }
        switch body {
        case nil, .null?: break
        case .string(let text)?:
            payload = ByteBuffer(string: text)
        case let value?:
            payload = ByteBuffer(string: JSONWriter.string(value, pretty: false))
            if contentType == nil { headers.append(("Content-Type", "application/json")) }
        }
        return PreparedRequest(method: httpMethod, target: target, headers: headers, body: payload)
    }

    /// `name=value` pairs as `requests` writes them: lists repeat the name, nulls are left out,
    /// other values are Python's `str()` (`True`, `1.0`).
    static func formItems(_ fields: ValueObject) -> [(String, String)] {
        fields.flatMap { key, value -> [(String, String)] in
            let values: [Value] = if case .array(let list) = value { list } else { [value] }
            return values.compactMap { item in item.isNull ? nil : (key, item.pythonText) }
        }
    }

    /// `application/json` and the `+json` types, parameters ignored.
    static func isJSON(_ contentType: String) -> Bool {
        let media = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        return media == "application/json" || (media.hasPrefix("application/") && media.hasSuffix("+json"))
    }
}

/// The `http` provider's output.
enum ResponseOutput {
    static func value(_ result: ExchangeResult, elapsedMilliseconds: Value) -> Value {
        var headers = ValueObject()
        for (name, value) in result.headers {
            // Repeated fields are joined, as `requests` shows them.
            if let existing = headers[name]?.stringValue {
                headers[name] = .string(existing + ", " + value)
            } else {
                headers[name] = .string(value)
            }
        }
        let text = text(result)
        var body: Value = .string(text)
        if let type = result.header("content-type"), RequestBuilder.isJSON(type), let decoded = try? JSONReader.value(text) {
            body = decoded
        }
        return ["status": .int(result.status), "headers": .object(headers), "body": body, "elapsed_ms": elapsedMilliseconds]
    }

    /// The body as text, as received.
    static func text(_ result: ExchangeResult) -> String {
        result.body.map { String(decoding: $0.readableBytesView, as: UTF8.self) } ?? ""
    }

    /// The start of a body for a failure message.
    static func preview(_ body: ByteBuffer?, limit: Int = 200) -> String {
        guard let body, body.readableBytes > 0 else { return "(empty)" }
        let text = String(decoding: body.readableBytesView.prefix(limit * 4), as: UTF8.self)
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count > limit ? String(flat.prefix(limit)) + "…" : flat
    }
}

extension HTTPProvider {
    /// A request succeeded when it was answered 2xx.
    public static func isSuccess(_ output: Value) -> Bool? { output["status"]?.intValue.map { (200..<300).contains($0) } }
}
