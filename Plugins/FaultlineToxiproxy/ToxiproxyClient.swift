import AsyncHTTPClient
import FaultlineKit
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// A client for the whole Toxiproxy 2.x REST API: proxies (list, get, create, update, delete,
/// populate), toxics (list, get, create, update, delete), reset and version.
///
/// - Every call has a connect timeout and a request timeout, and a refused connection fails at
///   once (no connection retries): a dead server is a fast ``ToxiproxyError`` naming its address,
///   never a hang.
/// - Errors are decoded from Toxiproxy's `{"error", "status"}` body into messages that say which
///   proxy or toxic and what to do.
/// - Any 2xx is success: Toxiproxy answers 201 or 200 for creations depending on the version.
/// - Updates use PATCH and fall back to POST (for Toxiproxy before 2.6), remembering the answer.
///
/// The client owns an `HTTPClient`: call ``shutdown()`` when done.
public final class ToxiproxyClient: Sendable {
    /// How long a call may take.
    public struct Timeouts: Sendable, Equatable {
        /// To establish the TCP connection.
        public var connect: Duration
        /// For the whole request, connection included. Above Toxiproxy's own 25 s handler timeout,
        /// so that its 503 (a stuck toxic removal) arrives rather than a local timeout.
        public var request: Duration

        public init(connect: Duration = .seconds(3), request: Duration = .seconds(30)) {
            self.connect = connect
            self.request = request
        }
    }

    public let address: ToxiproxyAddress
    public let timeouts: Timeouts
    /// Sent as `Authorization: Bearer` (Toxiproxy 2.13's `TOXIPROXY_AUTH_TOKEN`); never printed.
    private let token: String?
    private let http: HTTPClient
    /// Set when the server answered a PATCH with 405 (Toxiproxy before 2.6): updates use POST.
    private let patchUnsupported = Atomic<Bool>(false)

    /// The User-Agent Faultline sends (Toxiproxy refuses browser ones).
    static let userAgent = "faultline/\(Engine.version)"

    /// - Parameters:
    ///   - address: the server's base URL.
    ///   - timeouts: connect and request timeouts for every call.
    ///   - token: the server's API token, sent with every call; nil or empty for none.
    ///   - caFile: a PEM file of the certificate authorities an `https` server's certificate must
    ///     chain to, instead of the system's (a private agent's own CA); nil for the system's.
    public init(address: ToxiproxyAddress, timeouts: Timeouts = Timeouts(), token: String? = nil, caFile: String? = nil) {
        self.address = address
        self.timeouts = timeouts
        self.token = token.flatMap { $0.isEmpty ? nil : $0 }
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: TimeAmount(timeouts.connect), read: TimeAmount(timeouts.request)))
        if let caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            configuration.tlsConfiguration = tls
        }
        // A refused connection is an answer: the server is not there. Retrying would turn a dead
        // server into a wait as long as the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Closes the client's connections. Calls after it fail.
    public func shutdown() async {
        try? await http.shutdown()
    }

    // MARK: Server

    /// `GET /version`: the server's version, e.g. `2.12.0`.
    /// - Parameter timeout: for this call, instead of the request timeout (a quick check).
    public func version(timeout: Duration? = nil) async throws(ToxiproxyError) -> String {
        let response = try await send(.GET, "/version", operation: "read the version", timeout: timeout)
        // Before 2.7.0 the body was the bare version rather than JSON (toxiproxy#538).
        if let value = try? JSONReader.value(response.text), let version = value["version"]?.stringValue { return version }
        let text = response.text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty, text.count < 64, !text.contains("<") else {
            throw ToxiproxyError(
                .notToxiproxy, server: address.url, operation: "read the version", status: response.status,
                reason: "the answer is not a Toxiproxy version", hint: Self.notToxiproxyHint)
        }
        return text
    }

    /// `POST /reset`: enables every proxy and removes every toxic **on the whole server**,
    /// including other users' (see ``ToxiproxyBackend`` for a reset limited to one run).
    public func reset() async throws(ToxiproxyError) {
        _ = try await send(.POST, "/reset", operation: "reset the server")
    }

    // MARK: Proxies

    /// `GET /proxies`: every proxy with its toxics, sorted by name.
    public func proxies() async throws(ToxiproxyError) -> [ProxyDefinition] {
        let operation = "list proxies"
        let response = try await send(.GET, "/proxies", operation: operation)
        guard case .object(let object) = try decode(response, operation: operation) else {
            throw unexpected(response, operation: operation, expected: "an object of proxies by name")
        }
        var proxies: [ProxyDefinition] = []
        for (_, value) in object { proxies.append(try proxy(from: value, response: response, operation: operation)) }
        return proxies.sorted { $0.name < $1.name }
    }

    /// `GET /proxies/{name}`.
    public func proxy(named name: String) async throws(ToxiproxyError) -> ProxyDefinition {
        let operation = "read proxy \(name)"
        let response = try await send(.GET, "/proxies/\(Self.escape(name))", operation: operation, subject: .proxy(name))
        return try proxy(from: try decode(response, operation: operation), response: response, operation: operation)
    }

    /// `POST /proxies`: creates a proxy (its `toxics` are not sent; add them with ``addToxic(_:to:)``).
    /// - Returns: the proxy with the address it bound (port 0 becomes the chosen port).
    public func createProxy(_ proxy: ProxyDefinition) async throws(ToxiproxyError) -> ProxyDefinition {
        let operation = "create proxy \(proxy.name)"
        let body: Value = [
            "name": .string(proxy.name), "listen": .string(proxy.listen), "upstream": .string(proxy.upstream), "enabled": .bool(proxy.enabled),
        ]
        let response = try await send(.POST, "/proxies", body: body, operation: operation, subject: .proxy(proxy.name))
        return try self.proxy(from: try decode(response, operation: operation), response: response, operation: operation)
    }

    /// `POST /populate`: creates the proxies that do not exist, replaces those whose listen or
    /// upstream differ (dropping their toxics and connections) and keeps the others untouched.
    /// - Returns: the proxies as the server holds them afterwards.
    public func populate(_ proxies: [ProxyDefinition]) async throws(ToxiproxyError) -> [ProxyDefinition] {
        let operation = "populate \(proxies.count) prox\(proxies.count == 1 ? "y" : "ies")"
        let body: Value = .array(
            proxies.map { ["name": .string($0.name), "listen": .string($0.listen), "upstream": .string($0.upstream), "enabled": .bool($0.enabled)] })
        let response = try await send(.POST, "/populate", body: body, operation: operation)
        guard let list = try decode(response, operation: operation)["proxies"]?.arrayValue else {
            throw unexpected(response, operation: operation, expected: "{\"proxies\": [...]}")
        }
        var result: [ProxyDefinition] = []
        for value in list { result.append(try proxy(from: value, response: response, operation: operation)) }
        return result
    }

    /// `PATCH /proxies/{name}` (POST on servers before 2.6): changes listen, upstream or enabled;
    /// nil keeps the current value. Changing listen or upstream drops the proxy's connections.
    public func updateProxy(named name: String, listen: String? = nil, upstream: String? = nil, enabled: Bool? = nil) async throws(ToxiproxyError)
        -> ProxyDefinition
    {
        var body = ValueObject()
        if let listen { body["listen"] = .string(listen) }
        if let upstream { body["upstream"] = .string(upstream) }
        if let enabled { body["enabled"] = .bool(enabled) }
        let what =
            enabled == false && listen == nil && upstream == nil
            ? "disable" : enabled == true && listen == nil && upstream == nil ? "enable" : "update"
        let operation = "\(what) proxy \(name)"
        let response = try await sendUpdate("/proxies/\(Self.escape(name))", body: .object(body), operation: operation, subject: .proxy(name))
        return try proxy(from: try decode(response, operation: operation), response: response, operation: operation)
    }

    /// `DELETE /proxies/{name}`: closes the proxy's listener and connections.
    public func deleteProxy(named name: String) async throws(ToxiproxyError) {
        _ = try await send(.DELETE, "/proxies/\(Self.escape(name))", operation: "delete proxy \(name)", subject: .proxy(name))
    }

    // MARK: Toxics

    /// `GET /proxies/{proxy}/toxics`: upstream toxics first, then downstream, each in order added.
    public func toxics(of proxy: String) async throws(ToxiproxyError) -> [ToxicDefinition] {
        let operation = "list the toxics of proxy \(proxy)"
        let response = try await send(.GET, "/proxies/\(Self.escape(proxy))/toxics", operation: operation, subject: .proxy(proxy))
        guard let list = try decode(response, operation: operation).arrayValue else {
            throw unexpected(response, operation: operation, expected: "a list of toxics")
        }
        var toxics: [ToxicDefinition] = []
        for value in list { toxics.append(try toxic(from: value, response: response, operation: operation)) }
        return toxics
    }

    /// `GET /proxies/{proxy}/toxics/{name}`.
    public func toxic(named name: String, on proxy: String) async throws(ToxiproxyError) -> ToxicDefinition {
        let operation = "read toxic \(name) of proxy \(proxy)"
        let response = try await send(
            .GET, "/proxies/\(Self.escape(proxy))/toxics/\(Self.escape(name))", operation: operation, subject: .toxic(name, proxy: proxy, type: nil))
        return try toxic(from: try decode(response, operation: operation), response: response, operation: operation)
    }

    /// `POST /proxies/{proxy}/toxics`: adds a toxic; it applies to live connections at once.
    /// - Returns: the toxic as the server holds it, every attribute of its type filled in.
    public func addToxic(_ toxic: ToxicDefinition, to proxy: String) async throws(ToxiproxyError) -> ToxicDefinition {
        let operation = "add toxic \(toxic.name) (\(toxic.type)) to proxy \(proxy)"
        if let crash = Self.crashingAttributes(type: toxic.type, attributes: toxic.attributes) {
            throw ToxiproxyError(.badRequest, server: address.url, operation: operation, reason: crash.reason, hint: crash.hint)
        }
        let body: Value = [
            "name": .string(toxic.name), "type": .string(toxic.type), "stream": .string(toxic.streamAsWritten), "toxicity": .double(toxic.toxicity),
            "attributes": toxic.attributes,
        ]
        let response = try await send(
            .POST, "/proxies/\(Self.escape(proxy))/toxics", body: body, operation: operation,
            subject: .toxic(toxic.name, proxy: proxy, type: toxic.type))
        return try self.toxic(from: try decode(response, operation: operation), response: response, operation: operation)
    }

    /// `PATCH /proxies/{proxy}/toxics/{name}` (POST before 2.6): merges `attributes` into the
    /// toxic's and sets `toxicity` when given.
    public func updateToxic(named name: String, on proxy: String, attributes: Value? = nil, toxicity: Double? = nil) async throws(ToxiproxyError)
        -> ToxicDefinition
    {
        var body = ValueObject()
        if let attributes { body["attributes"] = attributes }
        if let toxicity { body["toxicity"] = .double(toxicity) }
        let operation = "update toxic \(name) of proxy \(proxy)"
        if let attributes, Self.crashingKeys.contains(where: { attributes[$0] != nil }) {
            // Judge the toxic as it would be after the merge.
            let current = try await toxic(named: name, on: proxy)
            var merged = current.attributes.objectValue ?? [:]
            for (key, value) in attributes.objectValue ?? [:] { merged[key] = value }
            if let crash = Self.crashingAttributes(type: current.type, attributes: .object(merged)) {
                throw ToxiproxyError(.badRequest, server: address.url, operation: operation, reason: crash.reason, hint: crash.hint)
            }
        }
        let response = try await sendUpdate(
            "/proxies/\(Self.escape(proxy))/toxics/\(Self.escape(name))", body: .object(body), operation: operation,
            subject: .toxic(name, proxy: proxy, type: nil))
        return try toxic(from: try decode(response, operation: operation), response: response, operation: operation)
    }

    /// The attributes that would take a Toxiproxy server down, and why (2.8 and later; checked
    /// against 2.8). Its slicer halves a chunk around its middle ± `size_variation` until every
    /// piece is within `average_size + size_variation`:
    /// - with `average_size` 0 and no variation, a 1-byte piece never is, and its halving recurses
    ///   until the stack overflows at the first byte sent;
    /// - once the variation exceeds `average_size + 1`, a cut can fall outside the chunk, a slice
    ///   out of range that panics.
    /// Either ends the whole server, with every proxy on it. An attribute left out counts as
    /// Toxiproxy's default, 0; one that is not a number yet (`${var}`) is not judged. `faultline
    /// proxy` keeps every piece at least a byte and its cuts inside, and takes both. Refused
    /// before anything is sent, on every path: experiments, Chaos Toolkit functions, updates.
    public static func crashingAttributes(type: String, attributes: Value?) -> (key: String, reason: String, hint: String)? {
        func number(_ key: String) -> Int? {
            guard let value = attributes?[key], value != .null else { return 0 }
            return value.intValue
        }
        guard type == "slicer", let average = number("average_size"), let variation = number("size_variation") else { return nil }
        if average <= 0 && variation <= 0 {
            return (
                "average_size",
                "slicer average_size \(average) with size_variation \(variation) crashes a Toxiproxy server (its slicing never ends: a stack overflow at the first byte)",
                "use an average_size of at least 1, or run the toxic on the in-process proxy"
            )
        }
        guard variation > average + 1 else { return nil }
        return (
            "size_variation",
            "slicer size_variation \(variation) is above average_size \(average) + 1, which crashes a Toxiproxy server (its cut falls outside the data and panics)",
            "use a size_variation of at most \(average + 1), or run the toxic on the in-process proxy"
        )
    }

    /// The attribute names ``crashingAttributes(type:attributes:)`` judges.
    static let crashingKeys = ["average_size", "size_variation"]

    /// `DELETE /proxies/{proxy}/toxics/{name}`.
    public func removeToxic(named name: String, from proxy: String) async throws(ToxiproxyError) {
        _ = try await send(
            .DELETE, "/proxies/\(Self.escape(proxy))/toxics/\(Self.escape(name))", operation: "remove toxic \(name) from proxy \(proxy)",
            subject: .toxic(name, proxy: proxy, type: nil))
    }

    // MARK: Transport

    /// What a call is about, for hints.
    enum Subject {
        case none
        case proxy(String)
        case toxic(String, proxy: String, type: String?)
    }

    struct Response {
        var status: Int
        var body: ByteBuffer

        var text: String { String(buffer: body) }
    }

    private static let maximumBody = 16 << 20

    /// Sends an update with PATCH, or POST when the server does not know PATCH (405).
    private func sendUpdate(_ path: String, body: Value, operation: String, subject: Subject) async throws(ToxiproxyError) -> Response {
        if !patchUnsupported.load(ordering: .relaxed) {
            do {
                return try await send(.PATCH, path, body: body, operation: operation, subject: subject)
            } catch  where error.status == 405 {
                patchUnsupported.store(true, ordering: .relaxed)
            }
        }
        return try await send(.POST, path, body: body, operation: operation, subject: subject)
    }

    private func send(
        _ method: HTTPMethod, _ path: String, body: Value? = nil, operation: String, subject: Subject = .none, timeout: Duration? = nil
    ) async throws(ToxiproxyError) -> Response {
        let timeout = timeout ?? timeouts.request
        var request = HTTPClientRequest(url: address.url + path)
        request.method = method
        request.headers.add(name: "User-Agent", value: Self.userAgent)
        request.headers.add(name: "Accept", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: JSONWriter.string(body, pretty: false)))
        }
        let response: Response
        do {
            let answer = try await http.execute(request, timeout: TimeAmount(timeout))
            response = Response(status: Int(answer.status.code), body: try await answer.body.collect(upTo: Self.maximumBody))
        } catch {
            throw transportError(error, operation: operation, timeout: timeout)
        }
        guard (200..<300).contains(response.status) else {
            throw httpError(response, method: method, path: path, operation: operation, subject: subject)
        }
        return response
    }

    private func transportError(_ error: any Error, operation: String, timeout: Duration) -> ToxiproxyError {
        let server = address.url
        let seconds = { (duration: Duration) in
            Substitution.interpolated(.double(Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18))
        }
        if error is CancellationError {
            return ToxiproxyError(.timedOut, server: server, operation: operation, reason: "cancelled")
        }
        if let client = error as? HTTPClientError {
            switch client {
            case .deadlineExceeded, .readTimeout:
                return ToxiproxyError(
                    .timedOut, server: server, operation: operation, reason: "no answer within \(seconds(timeout)) s",
                    hint: "the server accepted the connection but did not answer; is this a Toxiproxy API, and is it overloaded?")
            case .connectTimeout, .getConnectionFromPoolTimeout:
                return ToxiproxyError(
                    .unreachable, server: server, operation: operation,
                    reason: "no connection to \(address.hostAndPort) within \(seconds(timeouts.connect)) s",
                    hint: "check the address and that nothing drops packets on the way")
            case .cancelled:
                return ToxiproxyError(.timedOut, server: server, operation: operation, reason: "cancelled")
            case .alreadyShutdown:
                return ToxiproxyError(.unreachable, server: server, operation: operation, reason: "the client was already shut down")
            default:
                break
            }
        }
        let text = String(describing: error)
        let refused = text.contains("refused") || text.contains("ECONNREFUSED") || text.contains("errno: 111")
        let lookup = text.lowercased().contains("resolv") || text.contains("lookup") || text.contains("NXDOMAIN")
        let reason =
            refused
            ? "connection refused at \(address.hostAndPort)"
            : lookup ? "cannot resolve \(address.hostAndPort)" : "cannot reach \(address.hostAndPort): \(text)"
        return ToxiproxyError(
            .unreachable, server: server, operation: operation, reason: reason,
            hint: "is toxiproxy-server (or faultline proxy) running there? Start it, or fix the address (toxics.url, TOXIPROXY_URL, toxiproxy_url)")
    }

    static let notToxiproxyHint = "no Toxiproxy 2.x API at this address: check the scheme, host, port and any base path"

    private func httpError(_ response: Response, method: HTTPMethod, path: String, operation: String, subject: Subject) -> ToxiproxyError {
        let server = address.url
        let status = response.status
        if status == 401 {
            // The server's words are not needed (and a token is never repeated back).
            return token == nil
                ? ToxiproxyError(
                    .unauthorized, server: server, operation: operation, status: status, reason: "needs a token",
                    hint: "give the server's token in the profile's toxics: {token: ${secret}} or set TOXIPROXY_AUTH_TOKEN")
                : ToxiproxyError(
                    .unauthorized, server: server, operation: operation, status: status, reason: "refused the token",
                    hint: "the token (profile toxics.token, else TOXIPROXY_AUTH_TOKEN) is not the server's")
        }
        // Toxiproxy's errors are JSON `{"error": …, "status": …}`, sent as text/plain.
        guard let value = try? JSONReader.value(response.text), let message = value["error"]?.stringValue else {
            switch status {
            case 403:
                return ToxiproxyError(
                    .forbidden, server: server, operation: operation, status: status, reason: Self.firstLine(response.text, or: "forbidden"))
            case 404, 405:
                return ToxiproxyError(
                    .notToxiproxy, server: server, operation: operation, status: status,
                    reason: status == 404 ? "\(path) does not exist" : "\(method) \(path) is not allowed", hint: Self.notToxiproxyHint)
            case 503:
                return ToxiproxyError(
                    .serverError, server: server, operation: operation, status: status, reason: "the server timed out handling the request",
                    hint:
                        "Toxiproxy gives up after 25 s when a toxic cannot be removed from a busy connection (toxiproxy#558); retry, or restart the server"
                )
            default:
                return ToxiproxyError(
                    status >= 500 ? .serverError : .notToxiproxy, server: server, operation: operation, status: status,
                    reason: Self.firstLine(response.text, or: "unexpected answer"), hint: status >= 500 ? nil : Self.notToxiproxyHint)
            }
        }
        switch status {
        case 404:
            let hint: String
            if message.contains("toxic"), case .toxic(let name, let proxy, _) = subject {
                hint = "proxy \(proxy) has no toxic named \"\(name)\"; toxic names default to <type>_<stream>, e.g. latency_downstream"
            } else if case .proxy(let name) = subject {
                hint = "the server has no proxy named \"\(name)\"; create it first (suite proxies:, proxy.create or create_proxy) or check the name"
            } else if case .toxic(_, let proxy, _) = subject {
                hint = "the server has no proxy named \"\(proxy)\"; create it first (suite proxies:, proxy.create or create_proxy) or check the name"
            } else {
                hint = "check the name"
            }
            return ToxiproxyError(.notFound, server: server, operation: operation, status: status, reason: message, hint: hint)
        case 409:
            let hint: String
            switch subject {
            case .toxic(let name, let proxy, _):
                hint = "proxy \(proxy) already has a toxic named \"\(name)\"; give each toxic its own name (names are unique across both streams)"
            case .proxy(let name):
                hint = "a proxy named \"\(name)\" is already on the server (perhaps left by an earlier run); pick another name or delete that one"
            case .none:
                hint = "names must be unique"
            }
            return ToxiproxyError(.conflict, server: server, operation: operation, status: status, reason: message, hint: hint)
        case 400:
            var hint = "check the fields against Toxiproxy's API"
            if message.contains("invalid toxic type"), case .toxic(_, _, let type?) = subject {
                hint =
                    "the server has no toxic type \"\(type)\"; Toxiproxy 2.x has latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data"
            } else if message.contains("stream") {
                hint = "stream is upstream or downstream"
            } else if message.contains("missing required field") {
                hint = "give every required field"
            }
            return ToxiproxyError(.badRequest, server: server, operation: operation, status: status, reason: message, hint: hint)
        default:
            var hint: String?
            if message.contains("address already in use") {
                hint = "the listen address is taken; use port 0 to let the server pick a free one"
            } else if message.contains("cannot assign requested address") || message.contains("missing port") {
                hint = "the listen address must be host:port on the server's machine"
            }
            return ToxiproxyError(
                status >= 500 ? .serverError : .notToxiproxy, server: server, operation: operation, status: status, reason: message, hint: hint)
        }
    }

    private static func firstLine(_ text: String, or fallback: String) -> String {
        let line = text.split(separator: "\n").first.map { String($0.prefix(200)) } ?? ""
        return line.trimmingCharacters(in: .whitespaces).isEmpty ? fallback : line
    }

    // MARK: Decoding

    private func decode(_ response: Response, operation: String) throws(ToxiproxyError) -> Value {
        do {
            return try JSONReader.value(response.text)
        } catch {
            throw unexpected(response, operation: operation, expected: "JSON")
        }
    }

    private func unexpected(_ response: Response, operation: String, expected: String) -> ToxiproxyError {
        ToxiproxyError(
            .notToxiproxy, server: address.url, operation: operation, status: response.status,
            reason: "expected \(expected), got \"\(String(response.text.prefix(120)))\"", hint: Self.notToxiproxyHint)
    }

    private func proxy(from value: Value, response: Response, operation: String) throws(ToxiproxyError) -> ProxyDefinition {
        guard let name = value["name"]?.stringValue, let listen = value["listen"]?.stringValue, let upstream = value["upstream"]?.stringValue,
            let enabled = value["enabled"]?.boolValue
        else {
            throw unexpected(response, operation: operation, expected: "a proxy {name, listen, upstream, enabled, toxics}")
        }
        var toxics: [ToxicDefinition] = []
        for toxic in value["toxics"]?.arrayValue ?? [] { toxics.append(try self.toxic(from: toxic, response: response, operation: operation)) }
        return ProxyDefinition(name: name, listen: listen, upstream: upstream, enabled: enabled, toxics: toxics)
    }

    private func toxic(from value: Value, response: Response, operation: String) throws(ToxiproxyError) -> ToxicDefinition {
        // Toxiproxy keeps the stream as sent ("UpStream") and parses it case-insensitively.
        let written = value["stream"]?.stringValue ?? "downstream"
        guard let name = value["name"]?.stringValue, let type = value["type"]?.stringValue, let stream = ToxicStream(parsing: written) else {
            throw unexpected(response, operation: operation, expected: "a toxic {name, type, stream, toxicity, attributes}")
        }
        return ToxicDefinition(
            name: name, type: type, stream: stream, toxicity: value["toxicity"]?.doubleValue ?? 1, attributes: value["attributes"] ?? .object([:]),
            streamSpelling: written)
    }

    /// Percent-encodes a name for one path segment.
    static func escape(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: unreserved) ?? name
    }

    /// RFC 3986's unreserved characters, which a path segment carries as they are.
    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}
