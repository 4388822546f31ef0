/// A toxic that acts on HTTP/1.x requests and responses instead of bytes.
///
/// A proxy that carries at least one HTTP toxic parses the HTTP/1.x messages crossing it (the
/// kernel does not: the proxy does). For every request it asks each HTTP toxic, in the order they
/// were added, whether the request matches (``match(_:)``), rolls the toxic's toxicity **per
/// request** (seeded by run, proxy, toxic, connection and request, so `--seed` replays the same
/// choices), and if it fires takes the toxic's ``fault(_:request:random:)``. An upstream toxic's
/// fault acts on the request, a downstream toxic's on the response to it. Bytes of messages no
/// fault touches pass unchanged.
///
/// A plugin adds its own HTTP toxic by conforming to this protocol and registering it with
/// `registry.register(toxic:)`, like any toxic; it composes what it does from ``HTTPFault``s.
///
/// ## Implementation requirements
/// - ``fault(_:request:random:)`` is cheap and never blocks: it runs on the connection's thread
///   once per matching request whose roll fired.
/// - The byte-stream ``Toxic/makeStage(_:random:)`` is never called for an HTTP toxic; the
///   default returns a stage that forwards everything.
public protocol HTTPToxic: Toxic {
    /// Which requests the toxic may act on.
    static func match(_ attributes: Attributes) -> HTTPRequestMatch
    /// What the toxic does to one request (upstream) or to its response (downstream).
    /// - Parameters:
    ///   - request: the request's head, as the client sent it.
    ///   - random: a generator seeded for this request (jitter).
    static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault
    /// Why these attributes cannot act on `stream`, or nil. The default refuses response
    /// conditions (`code`, `response_headers`) upstream, where there is no response yet.
    static func streamProblem(_ attributes: Attributes, stream: ToxicStream) -> String?
    /// The probability of acting on one matching request, given the toxicity configured; nil when
    /// the toxic does not apply to the request at all (it is then not counted as matching). The
    /// default is the toxicity; header-controlled faults read it from the request.
    static func toxicity(_ attributes: Attributes, request: HTTPToxicRequest, configured: Double) -> Double?
}

extension HTTPToxic {
    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage { ForwardingStage() }

    public static func streamProblem(_ attributes: Attributes, stream: ToxicStream) -> String? {
        match(attributes).streamProblem(stream)
    }

    public static func toxicity(_ attributes: Attributes, request: HTTPToxicRequest, configured: Double) -> Double? { configured }
}

/// A stage that forwards everything as it comes.
public final class ForwardingStage: ToxicStage {
    public init() {}
    public func receive(_ chunk: ToxicChunk, link: any ToxicLink) { link.forward(chunk) }
    public func stop(link: any ToxicLink) {}
    public func update(_ attributes: any Sendable, link: any ToxicLink) {}
}

/// What an HTTP toxic does to one request or response.
public enum HTTPFault: Sendable, Equatable {
    /// Answer the client with this response instead of forwarding the request (upstream), or
    /// instead of the server's response (downstream: the server saw the request).
    case respond(HTTPSyntheticResponse)
    /// Hold the message (and what follows it on the connection) this long, in nanoseconds.
    case delay(nanoseconds: UInt64)
    /// Forward the head and this many bytes of the body, then reset the connection (RST).
    case reset(afterBodyBytes: Int)
    /// Change the message's header fields.
    case editHeaders([HTTPHeaderEdit])
    /// Replace the body (the framing is rewritten: `Content-Length` of the new body).
    case replaceBody([UInt8])
    /// Merge this JSON value into the body (RFC 7396 JSON merge patch; `Content-Length`
    /// rewritten). A body that is not JSON passes unchanged.
    case mergeJSON(Value)
    /// Forward the head and this many bytes of the body, then close the connection (FIN): the
    /// other side sees a body shorter than announced.
    case truncateBody(Int)
    /// Forward nothing of the message and end the connection: reset (RST) or close (FIN). Upstream
    /// the server never sees the request; downstream the server's response is dropped.
    case drop(reset: Bool)
    /// Change the request line: method, path, query parameters (upstream only).
    case editRequest([HTTPRequestEdit])
    /// Replace the response's status code (and reason phrase), keeping its headers and body.
    case setStatus(Int)
    /// Send the body at most this many bytes per second (the head goes at once).
    case throttleBody(bytesPerSecond: UInt64)
    /// Several faults on the same message, in order.
    case all([HTTPFault])
}

/// A response the proxy makes up.
public struct HTTPSyntheticResponse: Sendable, Equatable {
    public var status: Int
    public var headers: [HTTPHeaderField]
    public var body: [UInt8]

    public init(status: Int, headers: [HTTPHeaderField] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// One header field as written on the wire.
public struct HTTPHeaderField: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A change to a message's header fields.
public enum HTTPHeaderEdit: Sendable, Equatable {
    /// Removes every field of this name (case-insensitive), then adds one.
    case set(name: String, value: String)
    /// Adds a field, keeping existing ones of the same name.
    case add(name: String, value: String)
    /// Removes every field of this name.
    case remove(name: String)
}

/// A change to a request line.
public enum HTTPRequestEdit: Sendable, Equatable {
    case setMethod(String)
    /// Replaces the path, keeping the query.
    case setPath(String)
    /// Sets a query parameter: the first of that name takes the value and the others go; absent,
    /// it is appended.
    case setQuery(name: String, value: String)
    /// Appends a query parameter.
    case addQuery(name: String, value: String)
    /// Removes every query parameter of this name.
    case removeQuery(name: String)
}

/// A request head as the proxy parsed it.
public struct HTTPToxicRequest: Sendable, Equatable {
    public var method: String
    /// The request target as sent (`/orders?id=1`).
    public var target: String
    /// `HTTP/1.1`.
    public var version: String
    public var headers: [HTTPHeaderField]

    public init(method: String, target: String, version: String = "HTTP/1.1", headers: [HTTPHeaderField] = []) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }

    /// The target's path, without the query.
    public var path: Substring { target[..<(target.utf8.firstIndex(of: UInt8(ascii: "?")) ?? target.endIndex)] }

    /// The first value of a header field (case-insensitive name).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }

    /// The target's query, without `?` (nil when there is none).
    public var query: Substring? {
        guard let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        return target[target.index(after: mark)...]
    }

    /// The request line after one edit. Names and values are percent-encoded as needed;
    /// existing parameters are compared by their decoded names.
    public mutating func apply(_ edit: HTTPRequestEdit) {
        switch edit {
        case .setMethod(let newMethod): method = newMethod
        case .setPath(let newPath):
            let rest = query.map { "?" + $0 } ?? ""
            target = (newPath.isEmpty ? "/" : newPath) + rest
        case .setQuery(let name, let value):
            var pairs = queryPairs
            let encoded = QueryText.encode(name) + "=" + QueryText.encode(value)
            if let first = pairs.firstIndex(where: { QueryText.name(of: $0) == name }) {
                pairs[first] = encoded
                pairs = pairs.enumerated().filter { $0.offset == first || QueryText.name(of: $0.element) != name }.map(\.element)
            } else {
                pairs.append(encoded)
            }
            queryPairs = pairs
        case .addQuery(let name, let value):
            queryPairs.append(QueryText.encode(name) + "=" + QueryText.encode(value))
        case .removeQuery(let name):
            queryPairs.removeAll { QueryText.name(of: $0) == name }
        }
    }

    /// The query's `name=value` parts as written.
    private var queryPairs: [String] {
        get { (query ?? "").split(separator: "&", omittingEmptySubsequences: true).map(String.init) }
        set {
            let path = String(self.path)
            target = newValue.isEmpty ? path : path + "?" + newValue.joined(separator: "&")
        }
    }

    /// The `Host` header without its port.
    public var host: String? {
        guard let host = header("host") else { return nil }
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") { return String(host[host.index(after: host.startIndex)..<end]) }
        return String(host.split(separator: ":", maxSplits: 1).first ?? "")
    }
}

/// Which requests an HTTP toxic acts on; an empty match takes every request.
///
/// Toxiproxy-style flat attributes: `method`, `path` (exact; a glob when it holds `*`),
/// `path_prefix`, `path_glob` (`*` any run of characters, `?` one), `host` (without port,
/// case-insensitive), `header` (present) and `header_value` (equal to it), `request_headers`
/// (``HTTPHeaderConditions``); for the response (downstream toxics only) `code` and
/// `response_headers`; and `max_active_faults`, how many of the toxic's faults may be under way
/// at once. HTTP toxics decode them with ``init(from:)`` beside their own.
public struct HTTPRequestMatch: Codable, Sendable, Equatable {
    public var method: String?
    public var path: String?
    public var pathPrefix: String?
    public var pathGlob: String?
    public var host: String?
    public var header: String?
    public var headerValue: String?
    public var requestHeaders: HTTPHeaderConditions?
    /// The response's status code (decided when the response head arrives).
    public var code: Int?
    public var responseHeaders: HTTPHeaderConditions?
    /// At most this many of the toxic's faults under way at once, across the proxy's connections
    /// (Envoy's `max_active_faults`); a request over the limit is left alone.
    public var maxActiveFaults: Int?

    enum CodingKeys: String, CodingKey {
        case method, path, pathPrefix = "path_prefix", pathGlob = "path_glob", host, header, headerValue = "header_value"
        case requestHeaders = "request_headers", code, responseHeaders = "response_headers", maxActiveFaults = "max_active_faults"
    }

    /// The ranges of the numbers among the match attributes; HTTP toxics add them to their own.
    public static let numberRanges: [String: NumberRange] = [
        "code": NumberRange(100...599, unit: "(HTTP status)", integer: true),
        "max_active_faults": NumberRange(1...1_000_000_000, integer: true),
    ]

    public init(
        method: String? = nil, path: String? = nil, pathPrefix: String? = nil, pathGlob: String? = nil, host: String? = nil, header: String? = nil,
        headerValue: String? = nil, requestHeaders: HTTPHeaderConditions? = nil, code: Int? = nil, responseHeaders: HTTPHeaderConditions? = nil,
        maxActiveFaults: Int? = nil
    ) {
        self.method = method
        self.path = path
        self.pathPrefix = pathPrefix
        self.pathGlob = pathGlob
        self.host = host
        self.header = header
        self.headerValue = headerValue
        self.requestHeaders = requestHeaders
        self.code = code
        self.responseHeaders = responseHeaders
        self.maxActiveFaults = maxActiveFaults
    }

    /// Whether the match looks at the response (so it is decided when the response head arrives).
    public var needsResponse: Bool { code != nil || responseHeaders != nil }

    /// Why the match cannot be judged on `stream`, or nil.
    public func streamProblem(_ stream: ToxicStream) -> String? {
        guard stream == .upstream, needsResponse else { return nil }
        let keys = [code == nil ? nil : "code", responseHeaders == nil ? nil : "response_headers"].compactMap { $0 }
        return
            "\(keys.joined(separator: " and ")) match\(keys.count == 1 ? "es" : "") the response, which an upstream toxic acts before (use stream: downstream)"
    }

    /// Whether a response meets the response conditions (`code`, `response_headers`).
    public func matchesResponse(status: Int, headers: [HTTPHeaderField]) -> Bool {
        if let code, status != code { return false }
        if let responseHeaders, !responseHeaders.matches(headers) { return false }
        return true
    }

    /// Help for the match attributes, merged into each HTTP toxic's attribute help.
    public static let help: [String: String] = [
        "method": "only requests with this method (e.g. POST); empty: any",
        "path": "only requests whose path (without query) is exactly this; with a * in it, a glob (Chaos Mesh's path)",
        "path_prefix": "only requests whose path starts with this",
        "path_glob": "only requests whose path matches this glob (* any characters, ? one)",
        "host": "only requests whose Host (without port) is this",
        "header": "only requests carrying this header",
        "header_value": "with header: only when the header's value equals this",
        "request_headers":
            "only requests whose headers all match: {name: value} (equal), or a list of {name, exact|prefix|suffix|contains|regex|present|range, invert}",
        "code": "downstream: only responses with this status code",
        "response_headers": "downstream: only responses whose headers all match (as request_headers)",
        "max_active_faults": "at most this many of the toxic's faults under way at once (others pass untouched)",
    ]

    /// Rejects a match that can never be judged: a header value without a header name, an empty path.
    public func validate() throws {
        if headerValue != nil && (header ?? "").isEmpty {
            throw ArgumentError("header_value", "header_value needs header (the header's name)")
        }
        for (key, value) in [("path", path), ("path_prefix", pathPrefix), ("path_glob", pathGlob)] {
            if let value, !value.hasPrefix("/") && !value.hasPrefix("*") {
                throw ArgumentError(key, "\(key) must start with / (found \"\(value)\")")
            }
        }
        try requestHeaders?.validate(key: "request_headers")
        try responseHeaders?.validate(key: "response_headers")
    }

    /// Whether the request matches every condition given.
    public func matches(_ request: HTTPToxicRequest) -> Bool {
        if let method, !method.isEmpty, !request.method.caseInsensitiveEquals(method) { return false }
        if path != nil || pathPrefix != nil || pathGlob != nil {
            let requestPath = request.path
            if let path, requestPath != path[...], !(path.utf8.contains(UInt8(ascii: "*")) && Glob.matches(Array(path.utf8), Array(requestPath.utf8)))
            {
                return false
            }
            if let pathPrefix, !requestPath.hasPrefix(pathPrefix) { return false }
            if let pathGlob, !Glob.matches(Array(pathGlob.utf8), Array(requestPath.utf8)) { return false }
        }
        if let host, !host.isEmpty, !(request.host ?? "").caseInsensitiveEquals(host) { return false }
        if let header, !header.isEmpty {
            guard let value = request.header(header) else { return false }
            if let headerValue, value != headerValue { return false }
        }
        if let requestHeaders, !requestHeaders.matches(request.headers) { return false }
        return true
    }

    /// Whether every condition is absent.
    public var isEmpty: Bool { self == HTTPRequestMatch() }
}

/// Percent-encoding of query parameters.
enum QueryText {
    static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"), UInt8(ascii: ":"), UInt8(ascii: ","):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return out
    }

    /// The decoded name of a `name=value` part (`+` is a space, `%XX` a byte).
    static func name(of part: String) -> String {
        let raw = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        var bytes: [UInt8] = []
        var utf8 = Array(raw.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "+") {
                bytes.append(32)
            } else if byte == UInt8(ascii: "%"), utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// `*` and `?` globs over bytes, iteratively (no backtracking blow-up).
enum Glob {
    static func matches(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        var p = 0
        var t = 0
        var star = -1
        var mark = 0
        while t < text.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                star = p
                mark = t
                p += 1
            } else if star >= 0 {
                p = star + 1
                mark += 1
                t = mark
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}

extension StringProtocol {
    /// ASCII case-insensitive equality (header names, methods, hosts).
    ///
    /// Inlinable, so that the proxy's per-request header lookups are specialised for `String` where
    /// they are called: unspecialised, each call looked up generic metadata at run time (measured as
    /// ~5 % of the HTTP proxy's CPU).
    @inlinable
    public func caseInsensitiveEquals(_ other: some StringProtocol) -> Bool {
        utf8.asciiCaseInsensitiveEquals(other.utf8)
    }
}

extension Collection where Element == UInt8 {
    /// ASCII case-insensitive equality of bytes: header names and tokens as they come off a socket,
    /// compared without making strings. Inlinable for the same reason as ``StringProtocol/caseInsensitiveEquals(_:)``.
    @inlinable
    public func asciiCaseInsensitiveEquals(_ other: some Collection<UInt8>) -> Bool {
        guard count == other.count else { return false }
        var i = startIndex
        var j = other.startIndex
        while i != endIndex {
            let x = self[i]
            let y = other[j]
            if x != y {
                // Equal apart from case only for letters, which differ in bit 0x20.
                let lower = x | 0x20
                guard lower == y | 0x20, lower >= 97, lower <= 122 else { return false }
            }
            formIndex(after: &i)
            other.formIndex(after: &j)
        }
        return true
    }
}
