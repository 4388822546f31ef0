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

    /// Answers one request.
    public func handle(_ request: Request) async -> Response {
        var response = await respond(request)
        response.headers.insert(("X-Toxiproxy-Request-Id", requestIDs.next()), at: 0)
        return response
    }

    private func respond(_ request: Request) async -> Response {
        guard let route = Self.route(request.target) else {
            return Self.text(404, "404 page not found\n")
        }
        let methods = route.methods
        guard methods.isEmpty || methods.contains(request.method) else {
            return Response(status: 405, headers: [], body: [])
        }
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
                let body = try Self.object(request.body)
                let fields = try ProxyFields(body)
                let created = try await server.createProxy(
                    name: fields.name ?? "", listen: fields.listen ?? "", upstream: fields.upstream ?? "", enabled: fields.enabled ?? true)
                return Self.json(201, Self.encode(created))
            case (.proxy(let name), "GET"):
                return Self.json(200, Self.encode(try server.proxy(named: name)))
            case (.proxy(let name), "DELETE"):
                try await server.deleteProxy(named: name)
                return Self.empty()
            case (.proxy(let name), _):
                _ = try server.proxy(named: name)
                let fields = try ProxyFields(try Self.object(request.body))
                let updated = try await server.updateProxy(named: name, listen: fields.listen, upstream: fields.upstream, enabled: fields.enabled)
                return Self.json(200, Self.encode(updated))
            case (.toxics(let proxy), "GET"):
                return Self.json(200, .array(try server.toxics(of: proxy).map(Self.encode)))
            case (.toxics(let proxy), _):
                _ = try server.proxy(named: proxy)
                let body = try Self.object(request.body)
                let toxic = try await server.addToxic(try Self.toxicRequest(body), to: proxy)
                return Self.json(200, Self.encode(toxic))
            case (.toxic(let proxy, let name), "GET"):
                return Self.json(200, Self.encode(try server.toxic(named: name, on: proxy)))
            case (.toxic(let proxy, let name), "DELETE"):
                try await server.removeToxic(named: name, from: proxy)
                return Self.empty()
            case (.toxic(let proxy, let name), _):
                _ = try server.toxic(named: name, on: proxy)
                let body = try Self.object(request.body)
                let attributes = body["attributes"].flatMap { $0.isNull ? nil : $0 }
                let toxicity = try Self.number(body["toxicity"], "toxicity")
                let updated = try await server.updateToxic(named: name, on: proxy, attributes: attributes, toxicity: toxicity)
                return Self.json(200, Self.encode(updated))
            }
        } catch {
            return Self.error(error)
        }
    }

    private func populate(_ request: Request) async -> Response {
        let entries: [Value]
        do {
            guard case .array(let array) = try JSONReader.value(String(decoding: request.body, as: UTF8.self)) else {
                return Self.populateError(ProxyError(.badRequest, "bad request body: expected a JSON array of proxies"), proxies: nil)
            }
            entries = array
        } catch {
            return Self.populateError(ProxyError(.badRequest, Self.badBody(request.body, error)), proxies: nil)
        }
        var requests: [ProxyServer.ProxyRequest] = []
        for entry in entries {
            do throws(ProxyError) {
                guard case .object(let object) = entry else { throw ProxyError(.badRequest, "bad request body: each proxy must be an object") }
                let fields = try ProxyFields(object)
                requests.append(
                    ProxyServer.ProxyRequest(name: fields.name ?? "", listen: fields.listen ?? "", upstream: fields.upstream ?? "", enabled: fields.enabled ?? true))
            } catch {
                return Self.populateError(error, proxies: nil)
            }
        }
        let (proxies, error) = await server.populate(requests)
        if let error { return Self.populateError(error, proxies: error.kind == .badRequest ? nil : proxies) }
        return Self.json(201, ["proxies": .array(proxies.map(Self.encode))])
    }

    // MARK: Bodies

    /// The fields of a proxy in a request body, type-checked.
    private struct ProxyFields {
        var name: String?
        var listen: String?
        var upstream: String?
        var enabled: Bool?

        init(_ object: ValueObject) throws(ProxyError) {
            name = try AdminAPI.string(object["name"], "name")
            listen = try AdminAPI.string(object["listen"], "listen")
            upstream = try AdminAPI.string(object["upstream"], "upstream")
            switch object["enabled"] {
            case nil, .null?: enabled = nil
            case .bool(let value)?: enabled = value
            case let other?: throw ProxyError(.badRequest, "bad request body: enabled must be a boolean, found \(other.kindDescription)")
            }
        }
    }

    private static func object(_ body: [UInt8]) throws(ProxyError) -> ValueObject {
        do {
            guard case .object(let object) = try JSONReader.value(String(decoding: body, as: UTF8.self)) else {
                throw ProxyError(.badRequest, "bad request body: expected a JSON object")
            }
            return object
        } catch let error as ProxyError {
            throw error
        } catch {
            throw ProxyError(.badRequest, badBody(body, error))
        }
    }

    private static func badBody(_ body: [UInt8], _ error: any Error) -> String {
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return "bad request body: EOF" }
        if let diagnostic = error as? Diagnostic { return "bad request body: \(diagnostic.message)" }
        return "bad request body: \(error)"
    }

    fileprivate static func string(_ value: Value?, _ key: String) throws(ProxyError) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?: return text
        case let other?: throw ProxyError(.badRequest, "bad request body: \(key) must be a string, found \(other.kindDescription)")
        }
    }

    private static func number(_ value: Value?, _ key: String) throws(ProxyError) -> Double? {
        switch value {
        case nil, .null?: return nil
        case let value?:
            guard let number = value.doubleValue else {
                throw ProxyError(.badRequest, "bad request body: \(key) must be a number, found \(value.kindDescription)")
            }
            return number
        }
    }

    private static func toxicRequest(_ body: ValueObject) throws(ProxyError) -> ProxyServer.ToxicRequest {
        let attributes = body["attributes"].flatMap { $0.isNull ? nil : $0 }
        if let attributes, attributes.objectValue == nil {
            throw ProxyError(.badRequest, "bad request body: attributes must be an object, found \(attributes.kindDescription)")
        }
        return ProxyServer.ToxicRequest(
            name: try string(body["name"], "name"), type: try string(body["type"], "type") ?? "", stream: try string(body["stream"], "stream"),
            toxicity: try number(body["toxicity"], "toxicity"), attributes: attributes)
    }

    // MARK: Encoding

    /// A proxy as Toxiproxy writes it.
    public static func encode(_ proxy: ProxyDefinition) -> Value {
        [
            "name": .string(proxy.name), "listen": .string(proxy.listen), "upstream": .string(proxy.upstream), "enabled": .bool(proxy.enabled),
            "toxics": .array(proxy.toxics.map(encode)),
        ]
    }

    /// A toxic as Toxiproxy writes it (attributes first, toxicity a float that prints `1`, not `1.0`).
    public static func encode(_ toxic: ToxicDefinition) -> Value {
        let toxicity: Value = toxic.toxicity.rounded() == toxic.toxicity && abs(toxic.toxicity) < 1e15 ? .int(Int(toxic.toxicity)) : .double(toxic.toxicity)
        return [
            "attributes": toxic.attributes, "name": .string(toxic.name), "type": .string(toxic.type), "stream": .string(toxic.stream.rawValue),
            "toxicity": toxicity,
        ]
    }

    private static func json(_ status: Int, _ value: Value) -> Response {
        Response(status: status, headers: [("Content-Type", "application/json")], body: Array(JSONWriter.string(value, pretty: false).utf8))
    }

    private static func text(_ status: Int, _ body: String) -> Response {
        Response(status: status, headers: [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")], body: Array(body.utf8))
    }

    private static func empty() -> Response { Response(status: 204, headers: [], body: []) }

    /// Toxiproxy's errors: JSON in a `text/plain` response (Go's `http.Error`), ending in a newline.
    private static func error(_ error: ProxyError) -> Response {
        text(error.status, JSONWriter.string(["error": .string(error.message), "status": .int(error.status)], pretty: false) + "\n")
    }

    /// `/populate` errors carry the proxies applied before the failure, as JSON.
    private static func populateError(_ error: ProxyError, proxies: [ProxyDefinition]?) -> Response {
        let body: Value = [
            "error": .string(error.message), "status": .int(error.status), "proxies": proxies.map { .array($0.map(encode)) } ?? .null,
        ]
        return Response(status: error.status, headers: [("Content-Type", "application/json")], body: Array(JSONWriter.string(body, pretty: false).utf8))
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
