import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Who may use the admin API, judged on a request's head before it is routed:
///
/// - **Host** (DNS rebinding): a page whose name the attacker made resolve to this machine sends
///   its own name as `Host`. Allowed are IP addresses of this machine (the bound one, loopback,
///   any interface's), `localhost` and `*.localhost` (RFC 6761: never resolved by outside DNS),
///   this machine's host name and the names given with `--allowed-host`.
/// - **Origin** (cross-site requests): a browser names the page's origin on every cross-origin
///   POST, including the `text/plain` and form posts it sends without a CORS preflight. A request
///   with an `Origin` (or, without one, a `Referer`) other than the API's own, or a
///   `Sec-Fetch-Site` other than `same-origin` or `none`, is refused; no CORS header is ever sent.
///   Clients that are not browsers send none of these, whatever their content type.
/// - **Token**: with a token, every request needs `Authorization: Bearer <token>` (compared in
///   constant time), `/metrics` included, as Toxiproxy 2.13's `TOXIPROXY_AUTH_TOKEN`.
public struct AdminAccess: Sendable {
    private let token: [UInt8]?
    /// Lowercased; an entry starting with `.` also allows its subdomains.
    public let allowedHosts: [String]

    /// - Parameters:
    ///   - token: the bearer token every request must carry; nil or empty for none.
    ///   - allowedHosts: names requests may give as `Host` besides this machine's own.
    public init(token: String? = nil, allowedHosts: [String] = []) {
        self.token = token.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        self.allowedHosts = allowedHosts.map { Self.normalize($0) }
    }

    /// Whether requests need a token.
    public var requiresToken: Bool { token != nil }

    /// The answer that refuses `request`, or nil when it may go on.
    /// - Parameter localAddresses: this machine's IP addresses (as ``LocalAddresses/current()``
    ///   gives them); a parameter so that the check stays a pure function.
    public func refusal(of request: AdminHTTPRequest, localAddresses: () -> Set<String> = LocalAddresses.current) -> AdminAPI.Response? {
        // A request with the token is not a rebinding page's (a page never has the token), so
        // any name may reach the API with it: a container's service name (`toxiproxy:8474`), a
        // Docker host's address, as Toxiproxy's clients reach it, without --allowed-host.
        // It must still be a host (`name[:port]`): an empty or malformed Host is refused.
        let authorized = token.map { Self.bearer(request, matches: $0) } ?? false
        if let host = request.header("Host"),
            authorized ? Self.hostPart(of: host) == nil : !hostAllowed(host, localAddresses: localAddresses)
        {
            return Self.refuse(
                403,
                "host \(Self.quoted(host)) is not allowed: requests must name this machine (start faultline proxy with --allowed-host NAME to allow another name)"
            )
        }
        if let origin = crossOrigin(request) {
            return Self.refuse(403, "cross-origin request from \(Self.quoted(origin)) refused")
        }
        if token != nil, !authorized {
            var response = Self.refuse(401, "unauthorized")
            response.headers.append(("WWW-Authenticate", "Bearer"))
            return response
        }
        return nil
    }

    // MARK: Host

    /// Whether a `Host` value (`name[:port]`, `[v6]:port`) names this machine.
    public func hostAllowed(_ value: String, localAddresses: () -> Set<String>) -> Bool {
        guard let host = Self.hostPart(of: value) else { return false }
        if let address = IPAddress(host) {
            return address.isLoopback || address.isUnspecified || localAddresses().contains(address.text)
        }
        if host == "localhost" || host.hasSuffix(".localhost") { return true }
        if host == LocalAddresses.hostName { return true }
        return allowedHosts.contains { $0 == host || ($0.hasPrefix(".") && host.hasSuffix($0)) }
    }

    /// The host of `name[:port]` or `[v6][:port]`, lowercased, without a trailing dot; nil when it
    /// is not one.
    static func hostPart(of value: String) -> String? {
        var text = Substring(value.trimmingCharacters(in: .whitespaces))
        var host: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            text = text[text.index(after: close)...]
            guard text.isEmpty || (text.hasPrefix(":") && text.dropFirst().allSatisfy(\.isASCIIDigit)) else { return nil }
        } else {
            if let colon = text.lastIndex(of: ":") {
                guard text[text.index(after: colon)...].allSatisfy(\.isASCIIDigit) else { return nil }
                text = text[..<colon]
            }
            host = text
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "@") }) else {
            return nil
        }
        return host.lowercased()
    }

    static func normalize(_ name: String) -> String {
        var name = name.trimmingCharacters(in: .whitespaces).lowercased()
        if name.hasPrefix("*.") { name.removeFirst() }
        if name.hasSuffix(".") && name.count > 1 { name.removeLast() }
        return name
    }

    // MARK: Origin

    /// The foreign origin a browser says the request comes from, or nil when it comes from the
    /// API's own origin or from a client that is not a browser.
    func crossOrigin(_ request: AdminHTTPRequest) -> String? {
        if let site = request.header("Sec-Fetch-Site")?.lowercased(), site != "same-origin" && site != "none" {
            return request.header("Origin") ?? "a \(site) page"
        }
        let own = request.header("Host").flatMap(Self.origin(host:))
        if let origin = request.header("Origin") {
            return Self.origin(of: origin) == own && own != nil ? nil : origin
        }
        if let referer = request.header("Referer") {
            return Self.origin(of: referer) == own && own != nil ? nil : referer
        }
        return nil
    }

    /// `(host, port)` of an `http://` URL or origin; nil for anything else (`null`, other schemes).
    static func origin(of url: String) -> Origin? {
        let lowered = url.lowercased()
        guard lowered.hasPrefix("http://") else { return nil }
        let authority = lowered.dropFirst(7).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.contains("@") else { return nil }
        return origin(host: String(authority))
    }

    /// The origin a `Host` value makes with `http://`.
    static func origin(host value: String) -> Origin? {
        guard let host = hostPart(of: value) else { return nil }
        let text = value.trimmingCharacters(in: .whitespaces)
        let afterHost = text.hasPrefix("[") ? text[(text.firstIndex(of: "]") ?? text.startIndex)...] : Substring(text)
        let port = afterHost.lastIndex(of: ":").flatMap { Int(afterHost[afterHost.index(after: $0)...]) } ?? 80
        return Origin(host: IPAddress(host)?.text ?? host, port: port)
    }

    struct Origin: Equatable {
        var host: String
        var port: Int
    }

    // MARK: Token

    /// Whether the request carries exactly one `Authorization: Bearer <token>` with this token.
    static func bearer(_ request: AdminHTTPRequest, matches token: [UInt8]) -> Bool {
        let fields = request.headers(named: "Authorization")
        guard fields.count == 1 else { return false }
        let field = fields[0]
        guard field.count > 7, field.prefix(7).lowercased() == "bearer ",
            let presented = Optional(field.dropFirst(7).trimmingCharacters(in: .whitespaces)),
            !presented.isEmpty
        else { return false }
        return constantTimeEqual(Array(presented.utf8), token)
    }

    /// Compares in a time that depends only on the expected token's length, never on where the
    /// presented one differs.
    static func constantTimeEqual(_ presented: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference: UInt8 = presented.count == expected.count ? 0 : 1
        for index in expected.indices {
            difference |= expected[index] ^ (index < presented.count ? presented[index] : 0)
        }
        return difference == 0
    }

    // MARK: Answers

    private static func refuse(_ status: Int, _ message: String) -> AdminAPI.Response {
        AdminAPI.errorResponse(status: status, message: message)
    }

    /// At most 100 characters of what a client sent, quoted, for a message.
    private static func quoted(_ text: String) -> String {
        "\"" + String(text.prefix(100).map { $0.isASCII && !$0.isNewline && $0 != "\"" ? $0 : "?" }) + "\""
    }
}

/// An IPv4 or IPv6 address literal.
struct IPAddress: Equatable {
    /// The canonical text (`127.0.0.1`, `::1`).
    let text: String
    let isLoopback: Bool
    let isUnspecified: Bool

    init?(_ literal: String) {
        guard let parsed = Self.parse(literal) else { return nil }
        self = parsed
    }

    private init(text: String, isLoopback: Bool, isUnspecified: Bool) {
        self.text = text
        self.isLoopback = isLoopback
        self.isUnspecified = isUnspecified
    }

    private static func parse(_ literal: String) -> IPAddress? {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 {
            let value = UInt32(bigEndian: v4.s_addr)
            return IPAddress(text: format(AF_INET, &v4), isLoopback: value >> 24 == 127, isUnspecified: value == 0)
        }
        guard inet_pton(AF_INET6, literal, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 address.
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return parse("\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])")
        }
        return IPAddress(
            text: format(AF_INET6, &v6), isLoopback: bytes[0..<15].allSatisfy { $0 == 0 } && bytes[15] == 1,
            isUnspecified: bytes.allSatisfy { $0 == 0 })
    }

    private static func format(_ family: Int32, _ address: UnsafeRawPointer) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = inet_ntop(family, address, &buffer, socklen_t(buffer.count))
        return cStringText(buffer)
    }
}

/// This machine's IP addresses and host name, for the `Host` check.
public enum LocalAddresses {
    /// The addresses of every interface now (they may change while the server runs).
    public static func current() -> Set<String> {
        var result: Set<String> = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return result }
        defer { freeifaddrs(list) }
        var entry = list
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let address = current.pointee.ifa_addr else { continue }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                _ = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    inet_ntop(AF_INET, &$0.pointee.sin_addr, &buffer, socklen_t(buffer.count))
                }
            case AF_INET6:
                _ = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    inet_ntop(AF_INET6, &$0.pointee.sin6_addr, &buffer, socklen_t(buffer.count))
                }
            default:
                continue
            }
            if let ip = IPAddress(cStringText(buffer)) { result.insert(ip.text) }
        }
        return result
    }

    /// This machine's host name, lowercased.
    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return cStringText(buffer).lowercased()
    }()
}

/// A NUL-terminated C string in a buffer.
private func cStringText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
