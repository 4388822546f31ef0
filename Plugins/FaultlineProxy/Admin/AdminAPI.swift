import FaultlineKit
import Synchronization

/// Toxiproxy 2.x's admin API over a ``ProxyServer``, independent of the HTTP transport: routes,
/// request bodies, status codes, error bodies and headers as Toxiproxy answers them, so existing
/// clients (Go, Ruby, Java, chaostoolkit-toxiproxy, testcontainers) work unchanged.
public struct AdminAPI: Sendable {
    /// The Toxiproxy version whose API this one matches, reported by `GET /version`.
    public static let compatibleVersion = "2.12.0"

    public let server: ProxyServer
    private let requestIDs = RequestIDs()

    public init(server: ProxyServer) { self.server = server }

    /// An HTTP request as the API sees it.
    public struct Request: Sendable {
        public var method: String
        /// The request target; a query string is ignored.
        public var target: String
        public var userAgent: String?
        public var body: [UInt8]

        public init(method: String, target: String, userAgent: String? = nil, body: [UInt8] = []) {
            self.method = method
            self.target = target
            self.userAgent = userAgent
            self.body = body
        }
    }

    /// An HTTP response: status, headers in order, body bytes.
    public struct Response: Sendable, Equatable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]

        public static func == (a: Response, b: Response) -> Bool {
            a.status == b.status && a.body == b.body && a.headers.map { "\($0.0):\($0.1)" } == b.headers.map { "\($0.0):\($0.1)" }
        }

        public var bodyText: String { String(decoding: body, as: UTF8.self) }
    }

    // MARK: Routing

    private enum Route {
        case version, metrics, reset, populate, proxies
        case proxy(String)
        case toxics(String)
        case toxic(String, String)

        var methods: Set<String> {
            switch self {
            case .version: ["GET"]
            case .metrics: []  // any method
            case .reset, .populate: ["POST"]
            case .proxies: ["GET", "POST"]
            case .proxy: ["GET", "POST", "PATCH", "DELETE"]
            case .toxics: ["GET", "POST"]
            case .toxic: ["GET", "POST", "PATCH", "DELETE"]
            }
        }
    }

    private static func route(_ target: String) -> Route? {
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        guard path.hasPrefix("/") else { return nil }
        let parts = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map { percentDecode(String($0)) }
        guard !parts.contains(where: { $0.isEmpty }) else { return nil }
        switch parts.count {
        case 1:
            switch parts[0] {
            case "version": return .version
            case "metrics": return .metrics
            case "reset": return .reset
            case "populate": return .populate
            case "proxies": return .proxies
            default: return nil
            }
        case 2 where parts[0] == "proxies": return .proxy(parts[1])
        case 3 where parts[0] == "proxies" && parts[2] == "toxics": return .toxics(parts[1])
        case 4 where parts[0] == "proxies" && parts[2] == "toxics": return .toxic(parts[1], parts[3])
        default: return nil
        }
    }

    static func percentDecode(_ text: String) -> String {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Answers one request. As in Toxiproxy's router, a path to clean up is redirected, and only a
    /// request that reaches an endpoint gets a request id.
    public func handle(_ request: Request) async -> Response {
        if let location = Self.cleanLocation(request.target) {
            return Response(status: 301, headers: [("Location", location)], body: [])
        }
        guard let route = Self.route(request.target) else {
            return Self.text(404, "404 page not found\n")
        }
        guard route.methods.isEmpty || route.methods.contains(request.method) else {
            return Response(status: 405, headers: [], body: [])
        }
        var response = await respond(request, route)
        response.headers.insert(("X-Toxiproxy-Request-Id", requestIDs.next()), at: 0)
        return response
    }

    /// Where gorilla/mux redirects a target whose path is not clean (`//proxies`, `/a/../b`):
    /// the cleaned path with the query; nil for a clean one.
    static func cleanLocation(_ target: String) -> String? {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts[0])
        guard path.hasPrefix("/") else { return nil }
        var cleaned: [Substring] = []
        for segment in path.split(separator: "/") where segment != "." {
            if segment == ".." { _ = cleaned.popLast() } else { cleaned.append(segment) }
        }
        var clean = "/" + cleaned.joined(separator: "/")
        if path.hasSuffix("/") && clean != "/" { clean += "/" }
        guard clean != path else { return nil }
        return parts.count > 1 ? clean + "?" + parts[1] : clean
    }

    private func respond(_ request: Request, _ route: Route) async -> Response {
        if request.userAgent?.hasPrefix("Mozilla/") == true {
            return Self.text(403, "User agent not allowed\n")
        }
        do throws(ProxyError) {
            switch (route, request.method) {
            case (.version, _):
                return Response(
                    status: 200, headers: [("Content-Type", "application/json;charset=utf-8")],
                    body: Array("{\"version\": \"\(Self.compatibleVersion)\"}\n".utf8))
            case (.metrics, _):
                return Response(
                    status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: Array(server.metricsText().utf8))
            case (.reset, _):
                try await server.reset()
                return Self.empty()
            case (.populate, _):
                return await populate(request)
            case (.proxies, "GET"):
                var object = ValueObject()
                for proxy in server.proxies() { object[proxy.name] = Self.encode(proxy) }
                return Self.json(200, .object(object))
            case (.proxies, _):
                let fields = try ProxyFields(try Self.object(request.body, as: .proxy), owner: "Proxy")
                let created = try await server.createProxy(
                    name: fields.name ?? "", listen: fields.listen ?? "", upstream: fields.upstream ?? "", enabled: fields.enabled ?? true,
                    tls: fields.tls, upstreamTLS: fields.upstreamTLS)
                return Self.json(201, Self.encode(created))
            case (.proxy(let name), "GET"):
                return Self.json(200, Self.encode(try server.proxy(named: name)))
            case (.proxy(let name), "DELETE"):
                try await server.deleteProxy(named: name)
                return Self.empty()
            case (.proxy(let name), _):
                _ = try server.proxy(named: name)
                let fields = try ProxyFields(try Self.object(request.body, as: .proxy), owner: "Proxy")
                if fields.tls != nil || fields.upstreamTLS != nil {
                    let current = try server.proxy(named: name)
                    if fields.tls != nil && fields.tls != current.tls || fields.upstreamTLS != nil && fields.upstreamTLS != current.upstreamTLS {
                        throw ProxyError(.badRequest, "tls and upstream_tls cannot change on a live proxy: delete it and create it again")
                    }
                }
                let updated = try await server.updateProxy(named: name, listen: fields.listen, upstream: fields.upstream, enabled: fields.enabled)
                return Self.json(200, Self.encode(updated))
            case (.toxics(let proxy), "GET"):
                return Self.json(200, .array(try server.toxics(of: proxy).map(Self.encode)))
            case (.toxics(let proxy), _):
                _ = try server.proxy(named: proxy)
                let toxic = try await server.addToxic(try Self.toxicRequest(try Self.object(request.body, as: .toxic)), to: proxy)
                return Self.json(200, Self.encode(toxic))
            case (.toxic(let proxy, let name), "GET"):
                return Self.json(200, Self.encode(try server.toxic(named: name, on: proxy)))
            case (.toxic(let proxy, let name), "DELETE"):
                try await server.removeToxic(named: name, from: proxy)
                return Self.empty()
            case (.toxic(let proxy, let name), _):
                let current = try server.toxic(named: name, on: proxy)
                let body = try Self.object(request.body, as: .toxicUpdate)
                try ToxiproxyWording.checkFields(body, ["toxicity": .float32], owner: "")
                // Toxiproxy decodes the attributes into the toxic's own struct: null or absent keeps them.
                let attributes = Self.present(ToxiproxyWording.field(body, "attributes"))
                    .map { ToxiproxyWording.canonicalAttributes($0, type: current.type) }
                if let attributes {
                    guard case .object(let object) = attributes else {
                        throw ToxiproxyWording.attributesNotObject(
                            attributes, owner: "", target: ToxiproxyWording.attributesTarget(type: current.type))
                    }
                    try ToxiproxyWording.checkAttributes(object, type: current.type)
                }
                let toxicity = Self.present(ToxiproxyWording.field(body, "toxicity"))?.doubleValue
                let updated = try await server.updateToxic(named: name, on: proxy, attributes: attributes, toxicity: toxicity)
                return Self.json(200, Self.encode(updated))
            }
        } catch {
            return Self.error(error)
        }
    }

    private func populate(_ request: Request) async -> Response {
        var requests: [ProxyServer.ProxyRequest] = []
        do throws(ProxyError) {
            let entries: [Value]
            switch try ToxiproxyWording.parse(request.body) {
            case .null: entries = []
            case .array(let array): entries = array
            case let other: throw ToxiproxyWording.cannotUnmarshal(other, into: .populate)
            }
            for entry in entries {
                let object = try Self.object(entry, as: .populateEntry)
                let fields = try ProxyFields(object, owner: "")
                var toxics: [ProxyServer.ToxicRequest]?
                switch ToxiproxyWording.field(object, "toxics") {
                case nil, .null?: toxics = nil
                case .array(let list)?:
                    toxics = try list.map { (toxic: Value) throws(ProxyError) in try Self.toxicRequest(try Self.object(toxic, as: .toxic)) }
                case let other?: throw ToxiproxyWording.badBody("toxics must be a list of toxics, found \(other.kindDescription)")
                }
                requests.append(
                    ProxyServer.ProxyRequest(
                        name: fields.name ?? "", listen: fields.listen ?? "", upstream: fields.upstream ?? "", enabled: fields.enabled ?? true,
                        toxics: toxics, tls: fields.tls, upstreamTLS: fields.upstreamTLS))
            }
        } catch {
            return Self.populateError(error, proxies: [])
        }
        let (proxies, error) = await server.populate(requests)
        if let error { return Self.populateError(error, proxies: error.kind == .badRequest ? [] : proxies) }
        return Self.json(201, ["proxies": Self.encode(proxies)])
    }

    // MARK: Bodies

    /// The fields of a proxy in a request body, type-checked.
    private struct ProxyFields {
        var name: String?
        var listen: String?
        var upstream: String?
        var enabled: Bool?
        /// Our extension: TLS terminated on listen, and originated to the upstream.
        var tls: ListenTLS?
        var upstreamTLS: UpstreamTLS?

        /// - Parameter owner: the Go struct Toxiproxy decodes into, for its error text.
        init(_ object: ValueObject, owner: String) throws(ProxyError) {
            try ToxiproxyWording.checkFields(object, ["name": .string, "listen": .string, "upstream": .string, "enabled": .bool], owner: owner)
            name = ToxiproxyWording.field(object, "name")?.stringValue
            listen = ToxiproxyWording.field(object, "listen")?.stringValue
            upstream = ToxiproxyWording.field(object, "upstream")?.stringValue
            enabled = ToxiproxyWording.field(object, "enabled")?.boolValue
            if let value = AdminAPI.present(ToxiproxyWording.field(object, "tls")) {
                let fields = try Self.tlsObject(value, "tls", strings: ["cert", "key", "ca"], bools: ["self_signed"])
                tls = ListenTLS(
                    cert: fields["cert"]?.stringValue, key: fields["key"]?.stringValue, selfSigned: fields["self_signed"]?.boolValue ?? false,
                    ca: fields["ca"]?.stringValue)
            }
            if let value = AdminAPI.present(ToxiproxyWording.field(object, "upstream_tls")) {
                let fields = try Self.tlsObject(value, "upstream_tls", strings: ["ca", "server_name"], bools: ["insecure"])
                upstreamTLS = UpstreamTLS(
                    ca: fields["ca"]?.stringValue, serverName: fields["server_name"]?.stringValue, insecure: fields["insecure"]?.boolValue ?? false)
            }
        }

        /// A TLS object of our extension: known keys of the right JSON types, nothing else.
        private static func tlsObject(_ value: Value, _ key: String, strings: [String], bools: [String]) throws(ProxyError) -> ValueObject {
            guard case .object(let object) = value else {
                throw ToxiproxyWording.badBody("\(key) must be an object, found \(value.kindDescription)")
            }
            for (field, item) in object where !item.isNull {
                if strings.contains(field) {
                    guard item.stringValue != nil else { throw ToxiproxyWording.badBody("\(key).\(field) must be a string") }
                } else if bools.contains(field) {
                    guard item.boolValue != nil else { throw ToxiproxyWording.badBody("\(key).\(field) must be true or false") }
                } else {
                    throw ToxiproxyWording.badBody("unknown field \(key).\(field) (known: \((strings + bools).joined(separator: ", ")))")
                }
            }
            return object
        }
    }

    /// A request body that must be an object (`null` counts as an empty one, as in Go).
    private static func object(_ body: [UInt8], as type: ToxiproxyWording.Body) throws(ProxyError) -> ValueObject {
        try object(try ToxiproxyWording.parse(body), as: type)
    }

    private static func object(_ value: Value, as type: ToxiproxyWording.Body) throws(ProxyError) -> ValueObject {
        try ToxiproxyWording.object(value, as: type)
    }

    /// The value unless it is absent or null (both leave a Go field as it was).
    fileprivate static func present(_ value: Value?) -> Value? {
        guard let value, !value.isNull else { return nil }
        return value
    }

    /// A toxic from `POST /proxies/{name}/toxics` (or a populate entry's `toxics`): the fields'
    /// JSON types are checked here, everything else by ``ProxyServer``.
    private static func toxicRequest(_ body: ValueObject) throws(ProxyError) -> ProxyServer.ToxicRequest {
        try ToxiproxyWording.checkFields(
            body, ["name": .string, "type": .string, "stream": .string, "toxicity": .float32], owner: "ToxicWrapper")
        let attributes = present(ToxiproxyWording.field(body, "attributes"))
        if let attributes, attributes.objectValue == nil {
            // Toxiproxy first decodes the attributes into a no-op toxic, before it knows the type.
            throw ToxiproxyWording.attributesNotObject(attributes, owner: "ToxicWrapper", target: "toxics.NoopToxic")
        }
        var clients: [String]?
        if let value = present(ToxiproxyWording.field(body, "clients")) {
            let texts = value.arrayValue?.compactMap(\.stringValue)
            guard let texts, texts.count == value.arrayValue?.count else {
                throw ProxyError(.badRequest, "bad request body: clients must be a list of addresses or CIDR blocks")
            }
            clients = texts
        }
        let type = ToxiproxyWording.field(body, "type")?.stringValue ?? ""
        return ProxyServer.ToxicRequest(
            name: ToxiproxyWording.field(body, "name")?.stringValue, type: type,
            stream: ToxiproxyWording.field(body, "stream")?.stringValue, toxicity: present(ToxiproxyWording.field(body, "toxicity"))?.doubleValue,
            attributes: attributes.map { ToxiproxyWording.canonicalAttributes($0, type: type) }, clients: clients)
    }

    // MARK: Encoding

    /// A proxy as Toxiproxy writes it.
    public static func encode(_ proxy: ProxyDefinition) -> Value {
        var object: ValueObject = [
            "name": .string(proxy.name), "listen": .string(proxy.listen), "upstream": .string(proxy.upstream), "enabled": .bool(proxy.enabled),
            "toxics": .array(proxy.toxics.map(encode)),
        ]
        // Our extension, shown only when set, so a plain proxy reads exactly as Toxiproxy's.
        if let tls = proxy.tls, let value = try? ValueEncoder().encode(tls) { object["tls"] = value }
        if let tls = proxy.upstreamTLS, let value = try? ValueEncoder().encode(tls) { object["upstream_tls"] = value }
        return .object(object)
    }

    /// A list of proxies as Toxiproxy's populate writes it: `null` when there is none.
    private static func encode(_ proxies: [ProxyDefinition]) -> Value {
        proxies.isEmpty ? .null : .array(proxies.map(encode))
    }

    /// A toxic as Toxiproxy writes it (attributes first, toxicity a float that prints `1`, not `1.0`).
    public static func encode(_ toxic: ToxicDefinition) -> Value {
        let toxicity: Value =
            toxic.toxicity.rounded() == toxic.toxicity && abs(toxic.toxicity) < 1e15 ? .int(Int(toxic.toxicity)) : .double(toxic.toxicity)
        var encoded: Value = [
            "attributes": toxic.attributes, "name": .string(toxic.name), "type": .string(toxic.type), "stream": .string(toxic.streamAsWritten),
            "toxicity": toxicity,
        ]
        // Faultline's condition is shown only when set, so Toxiproxy clients see Toxiproxy's fields.
        if let clients = toxic.clients, case .object(var object) = encoded {
            object["clients"] = .array(clients.map { .string($0) })
            encoded = .object(object)
        }
        return encoded
    }

    private static func json(_ status: Int, _ value: Value) -> Response {
        Response(status: status, headers: [("Content-Type", "application/json")], body: Array(JSONWriter.string(value, pretty: false).utf8))
    }

    private static func text(_ status: Int, _ body: String) -> Response {
        Response(
            status: status, headers: [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")], body: Array(body.utf8))
    }

    private static func empty() -> Response { Response(status: 204, headers: [], body: []) }

    /// Toxiproxy's errors: JSON in a `text/plain` response (Go's `http.Error`), ending in a newline.
    private static func error(_ error: ProxyError) -> Response {
        errorResponse(status: error.status, message: error.message)
    }

    /// Toxiproxy's error answer for a status and message.
    static func errorResponse(status: Int, message: String) -> Response {
        text(status, JSONWriter.string(["error": .string(message), "status": .int(status)], pretty: false) + "\n")
    }

    /// `/populate` errors carry the proxies applied before the failure, as JSON.
    private static func populateError(_ error: ProxyError, proxies: [ProxyDefinition]) -> Response {
        let body: Value = ["error": .string(error.message), "status": .int(error.status), "proxies": encode(proxies)]
        return Response(
            status: error.status, headers: [("Content-Type", "application/json")], body: Array(JSONWriter.string(body, pretty: false).utf8))
    }
}

/// Request ids in the form of Toxiproxy's (20 base-32 characters, time-ordered).
final class RequestIDs: Sendable {
    private let counter = Atomic<UInt64>(0)
    private static let alphabet = Array("0123456789abcdefghijklmnopqrstuv".utf8)

    func next() -> String {
        let count = counter.add(1, ordering: .relaxed).newValue
        var value = (UInt64(monotonicMilliseconds()) << 24) ^ count
        var text = [UInt8](repeating: 0, count: 20)
        for index in stride(from: 19, through: 0, by: -1) {
            text[index] = Self.alphabet[Int(value & 31)]
            value >>= 5
            if index == 8 { value = count &* 0x9E37_79B9_7F4A_7C15 }
        }
        return String(decoding: text, as: UTF8.self)
    }

    private func monotonicMilliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
