import FaultlineKit
import Foundation

/// Where a Toxiproxy server's API is: a base URL such as `http://127.0.0.1:8474`.
///
/// Written as a URL (`http://host:port`, `https://toxiproxy.example.com/base` behind a reverse
/// proxy) or, as the Go client and `toxiproxy-cli` accept, `host:port` or `host` (port 8474).
public struct ToxiproxyAddress: Sendable, Hashable, CustomStringConvertible {
    /// The base URL, without a trailing slash; paths such as `/proxies` are appended to it.
    public let url: String
    /// `host:port`, for messages about connecting.
    public let hostAndPort: String

    /// Toxiproxy's default API port.
    public static let defaultPort = 8474

    /// Parses an address.
    /// - Throws: ``ArgumentError`` saying what is wrong and how to write it.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let example = "write e.g. http://127.0.0.1:8474"
        guard !trimmed.isEmpty else { throw ArgumentError(nil, "the Toxiproxy address is empty", hint: example) }
        let hasScheme = trimmed.contains("://")
        guard let components = URLComponents(string: hasScheme ? trimmed : "http://" + trimmed) else {
            throw ArgumentError(nil, "\"\(text)\" is not a URL", hint: example)
        }
        guard let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw ArgumentError(nil, "unsupported scheme in \"\(text)\": Toxiproxy's API is http or https", hint: example)
        }
        guard let host = components.host, !host.isEmpty else {
            throw ArgumentError(nil, "no host in \"\(text)\"", hint: example)
        }
        if components.query != nil || components.fragment != nil || components.user != nil || components.password != nil {
            throw ArgumentError(nil, "\"\(text)\" has a query, fragment or credentials; the address is a base URL only", hint: example)
        }
        if !hasScheme, !components.path.isEmpty {
            throw ArgumentError(nil, "\"\(text)\" has a path but no scheme", hint: "write the full URL, e.g. http://host:8474/base")
        }
        let port: Int
        if let explicit = components.port {
            guard HostPort.Role.connect.ports.contains(explicit) else {
                throw ArgumentError(nil, "port \(explicit) in \"\(text)\" is out of range", hint: example)
            }
            port = explicit
        } else {
            port = hasScheme ? (scheme == "https" ? 443 : 80) : Self.defaultPort
        }
        let address = HostPort(host: host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host, port: port)
        var path = components.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        url = "\(scheme)://\(address)\(path)"
        hostAndPort = address.description
    }

    public var description: String { url }

    /// The address an experiment's configuration names, as chaostoolkit-toxiproxy reads it:
    /// `toxiproxy_url` if set, otherwise `toxiproxy_host` with `toxiproxy_port` (default 8474).
    /// - Returns: nil when the configuration names no Toxiproxy server.
    /// - Throws: ``ArgumentError`` naming the configuration key when its value is unusable.
    public static func configured(in configuration: [String: Value]) throws -> ToxiproxyAddress? {
        if let url = configuration["toxiproxy_url"], !url.isNull {
            guard let text = url.stringValue else {
                throw ArgumentError("toxiproxy_url", "configuration toxiproxy_url must be a string, found \(url.kindDescription)")
            }
            do {
                return try ToxiproxyAddress(parsing: text)
            } catch let error as ArgumentError {
                throw ArgumentError("toxiproxy_url", "configuration toxiproxy_url: \(error.message)", hint: error.hint)
            }
        }
        guard let host = configuration["toxiproxy_host"], !host.isNull else { return nil }
        guard let hostText = host.stringValue, !hostText.isEmpty else {
            throw ArgumentError("toxiproxy_host", "configuration toxiproxy_host must be a host name, found \(host.kindDescription)")
        }
        var port = defaultPort
        if let value = configuration["toxiproxy_port"], !value.isNull {
            guard let parsed = value.intValue ?? value.stringValue.flatMap({ Int($0) }) else {
                throw ArgumentError("toxiproxy_port", "configuration toxiproxy_port must be a port number, found \(value.kindDescription)")
            }
            port = parsed
        }
        do {
            return try ToxiproxyAddress(parsing: "http://\(HostPort(host: hostText, port: port))")
        } catch let error as ArgumentError {
            throw ArgumentError("toxiproxy_host", "configuration toxiproxy_host/toxiproxy_port: \(error.message)", hint: error.hint)
        }
    }
}
