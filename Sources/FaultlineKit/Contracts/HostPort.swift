/// A TCP address written `host:port`, as Toxiproxy writes `listen` and `upstream`: a host name, an
/// IPv4 address or a bracketed IPv6 address (`[::1]:8474`), a colon and a port.
///
/// Every part of Faultline that takes `host:port` parses it here, so they agree on what is valid:
/// the text is split as Go's `net.SplitHostPort` splits it (Toxiproxy's own rules), and the port
/// range depends on the address's ``Role`` — a listener may ask for port 0 (any free port), a
/// connection target may not.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// The host without IPv6 brackets; empty for a listener on every interface (`:8080`).
    public var host: String
    public var port: Int

    /// What an address is for, which decides the ports and hosts it may have.
    public enum Role: Sendable, Hashable {
        /// An address to listen on: port 0 picks a free port, and no host means every interface.
        case listen
        /// An address to connect to: a host and a port from 1 to 65535.
        case connect

        /// The ports an address of this role may have.
        public var ports: ClosedRange<Int> {
            switch self {
            case .listen: 0...65535
            case .connect: 1...65535
            }
        }
    }

    /// - Parameters: See the properties.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `[v6]:port` or, for a listener, `:port`.
    /// - Throws: ``HostPortError`` saying what is wrong and how to write it.
    public init(parsing text: String, role: Role) throws(HostPortError) {
        // The port starts after the last colon; a bracketed host must end just before it (Go's rules).
        guard let colon = text.lastIndex(of: ":") else { throw HostPortError(text, .missingPort) }
        var hostStart = text.startIndex
        var hostEnd = colon
        var afterHost = text.startIndex
        if text.first == "[" {
            guard let close = text.firstIndex(of: "]") else { throw HostPortError(text, .missingBracket) }
            let next = text.index(after: close)
            if next == text.endIndex { throw HostPortError(text, .missingPort) }
            if next != colon { throw HostPortError(text, text[next] == ":" ? .tooManyColons : .missingPort) }
            hostStart = text.index(after: text.startIndex)
            hostEnd = close
            afterHost = next
        } else if text[..<colon].contains(":") {
            throw HostPortError(text, .tooManyColons)
        }
        if text[hostStart...].contains("[") { throw HostPortError(text, .unexpectedBracket("[")) }
        if text[afterHost...].contains("]") { throw HostPortError(text, .unexpectedBracket("]")) }

        let portText = String(text[text.index(after: colon)...])
        guard let port = Int(portText) else { throw HostPortError(text, .invalidPort(portText)) }
        guard role.ports.contains(port) else { throw HostPortError(text, .portOutOfRange(portText, allowed: role.ports)) }
        let host = String(text[hostStart..<hostEnd])
        if host.isEmpty, role == .connect { throw HostPortError(text, .missingHost) }
        self.init(host: host, port: port)
    }

    /// The host as a URL's authority writes it: IPv6 addresses in brackets.
    public var urlHost: String { host.contains(":") ? "[\(host)]" : host }

    /// Whether a listener here listens on every address (no host, `0.0.0.0` or `::`); a client
    /// on this machine reaches it at 127.0.0.1.
    public var isEveryAddress: Bool { host.isEmpty || host == "0.0.0.0" || host == "::" }

    /// `host:port`, with an IPv6 host in brackets: what ``init(parsing:role:)`` reads back.
    public var description: String { "\(urlHost):\(port)" }
}

/// Text that is not `host:port`, with what is wrong and how to write it.
public struct HostPortError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, in the order Go's `net.SplitHostPort` finds it (Toxiproxy's admin API repeats Go's words).
    public enum Reason: Sendable, Hashable {
        /// No colon, or nothing after a bracketed host. Go: `missing port in address`.
        case missingPort
        /// A colon in the host: an IPv6 address without brackets, or a scheme. Go: `too many colons in address`.
        case tooManyColons
        /// `[` without `]`. Go: `missing ']' in address`.
        case missingBracket
        /// A bracket where none belongs. Go: `unexpected '[' in address`.
        case unexpectedBracket(Character)
        /// The text after the last colon is not a number (a path, a service name). Go: `invalid port`.
        case invalidPort(String)
        /// A number outside the role's ports (port 0 for a connection). Go: `invalid port`.
        case portOutOfRange(String, allowed: ClosedRange<Int>)
        /// `:port` where a host is needed.
        case missingHost
    }

    /// The text as written.
    public var text: String
    public var reason: Reason

    public init(_ text: String, _ reason: Reason) {
        self.text = text
        self.reason = reason
    }

    /// One line: `"db" is not host:port: the port is missing; write e.g. db:8080`.
    public var description: String { "\"\(text)\" is not host:port: \(hint)" }

    /// What is wrong, e.g. `the port is missing`.
    public var problem: String {
        switch reason {
        case .missingPort: "the port is missing"
        case .tooManyColons where text.contains("://"): "it has a scheme"
        case .tooManyColons: "the host has a colon; an IPv6 address goes in brackets"
        case .missingBracket: "\"[\" has no matching \"]\""
        case .unexpectedBracket(let bracket): "unexpected \"\(bracket)\""
        case .invalidPort(let port) where port.contains("/"): "it has a path"
        case .invalidPort(let port): "the port \"\(port)\" is not a number"
        case .portOutOfRange(let port, let allowed): "the port \(port) is outside \(allowed.lowerBound)…\(allowed.upperBound)"
        case .missingHost: "the host is missing"
        }
    }

    /// How to write it, with the user's own host and port where they can be told apart.
    public var fix: String {
        let example = "\(exampleHost):\(examplePort)"
        switch reason {
        case .tooManyColons where text.contains("://"): return "write it without the scheme and path, e.g. \(example)"
        case .tooManyColons where !text.hasPrefix("["):
            guard let colon = text.lastIndex(of: ":") else { return "write e.g. \(example)" }
            return "write [\(text[..<colon])]:\(text[text.index(after: colon)...])"
        case .missingBracket, .unexpectedBracket: return "write an IPv6 address in brackets before the port, e.g. [::1]:8080"
        case .invalidPort(let port) where port.contains("/"): return "write it without the path, e.g. \(example)"
        case .portOutOfRange(_, let allowed) where allowed.lowerBound > 0: return "a connection needs a port from 1 to 65535, e.g. \(example)"
        case .portOutOfRange: return "use a port from 0 (any free port) to 65535, e.g. \(exampleHost):0"
        default: return "write e.g. \(example)"
        }
    }

    /// What is wrong and how to write it: `the port is missing; write e.g. db:8080`.
    public var hint: String { "\(problem); \(fix)" }

    /// The host the text seems to name, for examples; `127.0.0.1` when none can be told.
    private var exampleHost: String {
        var rest = Substring(text)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        rest = rest.prefix { $0 != "/" }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") { return String(rest[...close]) }
        let host = rest.prefix { $0 != ":" }
        return host.isEmpty || host.contains("[") || host.contains("]") ? "127.0.0.1" : String(host)
    }

    /// The port the text seems to name, for examples; `8080` when none can be told.
    private var examplePort: String {
        var rest = Substring(text)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        rest = rest.prefix { $0 != "/" }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") { rest = rest[rest.index(after: close)...] }
        guard let colon = rest.lastIndex(of: ":") else { return "8080" }
        let digits = rest[rest.index(after: colon)...].prefix { $0.isASCII && $0.isNumber }
        guard let port = Int(digits), HostPort.Role.connect.ports.contains(port) else { return "8080" }
        return String(port)
    }
}

extension HostPort {
    /// Parses a provider argument.
    /// - Throws: ``ArgumentError`` `key must be host:port, found "text"`, with what is wrong and
    ///   how to write it as the hint.
    public static func argument(_ text: String, key: String, role: Role) throws(ArgumentError) -> HostPort {
        do {
            return try HostPort(parsing: text, role: role)
        } catch {
            throw ArgumentError(key, error.message(key: key), hint: error.hint)
        }
    }
}

extension HostPortError {
    /// The error as an argument's message: `upstream must be host:port, found "db"`.
    public func message(key: String) -> String { "\(key) must be host:port, found \"\(text)\"" }
}
