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
}

extension HTTPToxic {
    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage { ForwardingStage() }
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
    /// Replace the response body (the framing is rewritten: `Content-Length` of the new body).
    case replaceBody([UInt8])
    /// Forward the response head and this many bytes of its body, then close the connection
    /// (FIN): the client sees a body shorter than announced.
    case truncateBody(Int)
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

    /// The `Host` header without its port.
    public var host: String? {
        guard let host = header("host") else { return nil }
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") { return String(host[host.index(after: host.startIndex)..<end]) }
        return String(host.split(separator: ":", maxSplits: 1).first ?? "")
    }
}

/// Which requests an HTTP toxic acts on; an empty match takes every request.
///
/// Toxiproxy-style flat attributes: `method`, `path` (exact), `path_prefix`, `path_glob` (`*`
/// any run of characters, `?` one), `host` (without port, case-insensitive), `header` (present)
/// and `header_value` (equal to it). HTTP toxics decode them with ``init(from:)`` beside their own.
public struct HTTPRequestMatch: Codable, Sendable, Equatable {
    public var method: String?
    public var path: String?
    public var pathPrefix: String?
    public var pathGlob: String?
    public var host: String?
    public var header: String?
    public var headerValue: String?

    enum CodingKeys: String, CodingKey {
        case method, path, pathPrefix = "path_prefix", pathGlob = "path_glob", host, header, headerValue = "header_value"
    }

    public init(
        method: String? = nil, path: String? = nil, pathPrefix: String? = nil, pathGlob: String? = nil, host: String? = nil, header: String? = nil,
        headerValue: String? = nil
    ) {
        self.method = method
        self.path = path
        self.pathPrefix = pathPrefix
        self.pathGlob = pathGlob
        self.host = host
        self.header = header
        self.headerValue = headerValue
    }

    /// Help for the match attributes, merged into each HTTP toxic's attribute help.
    public static let help: [String: String] = [
        "method": "only requests with this method (e.g. POST); empty: any",
        "path": "only requests whose path (without query) is exactly this",
        "path_prefix": "only requests whose path starts with this",
        "path_glob": "only requests whose path matches this glob (* any characters, ? one)",
        "host": "only requests whose Host (without port) is this",
        "header": "only requests carrying this header",
        "header_value": "with header: only when the header's value equals this",
    ]

    /// Rejects a match that can never be judged: a header value without a header name, an empty path.
    public func validate() throws {
        if headerValue != nil && (header ?? "").isEmpty {
            throw ArgumentError("header_value", "header_value needs header (the header's name)")
        }
        for (key, value) in [("path", path), ("path_prefix", pathPrefix), ("path_glob", pathGlob)] {
            if let value, !value.hasPrefix("/") && value != "*" {
                throw ArgumentError(key, "\(key) must start with / (found \"\(value)\")")
            }
        }
    }

    /// Whether the request matches every condition given.
    public func matches(_ request: HTTPToxicRequest) -> Bool {
        if let method, !method.isEmpty, !request.method.caseInsensitiveEquals(method) { return false }
        if path != nil || pathPrefix != nil || pathGlob != nil {
            let requestPath = request.path
            if let path, requestPath != path[...] { return false }
            if let pathPrefix, !requestPath.hasPrefix(pathPrefix) { return false }
            if let pathGlob, !Glob.matches(Array(pathGlob.utf8), Array(requestPath.utf8)) { return false }
        }
        if let host, !host.isEmpty, !(request.host ?? "").caseInsensitiveEquals(host) { return false }
        if let header, !header.isEmpty {
            guard let value = request.header(header) else { return false }
            if let headerValue, value != headerValue { return false }
        }
        return true
    }

    /// Whether every condition is absent.
    public var isEmpty: Bool { self == HTTPRequestMatch() }
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
    public func caseInsensitiveEquals(_ other: some StringProtocol) -> Bool {
        let a = utf8
        let b = other.utf8
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { x, y in
            (x >= 65 && x <= 90 ? x + 32 : x) == (y >= 65 && y <= 90 ? y + 32 : y)
        }
    }
}
