import FaultlineKit
import Foundation

/// An `http` or `https` URL taken apart into what a connection and a request line need.
struct HTTPTarget: Sendable, Hashable, CustomStringConvertible {
    var isTLS: Bool
    /// The host without IPv6 brackets, as the resolver and SNI want it.
    var host: String
    var port: Int
    /// The request target: the percent-encoded path and query, never empty.
    var pathAndQuery: String

    /// Parses an absolute URL.
    /// - Throws: ``TargetError`` with a message naming what is wrong.
    init(parsing text: String) throws(TargetError) {
        guard let components = URLComponents(string: text) else {
            throw TargetError("\"\(text)\" is not a valid URL")
        }
        guard let scheme = components.scheme?.lowercased() else {
            throw TargetError("\"\(text)\" has no scheme; write http://\(text) or https://\(text)")
        }
        guard scheme == "http" || scheme == "https" else {
            throw TargetError("\"\(text)\" uses the scheme \"\(scheme)\"; only http and https are supported")
        }
        guard var host = components.host, !host.isEmpty else {
            throw TargetError("\"\(text)\" has no host")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        isTLS = scheme == "https"
        self.host = host
        port = components.port ?? (isTLS ? 443 : 80)
        guard HostPort.Role.connect.ports.contains(port) else { throw TargetError("\"\(text)\" has port \(port), outside 1…65535") }
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        pathAndQuery = components.percentEncodedQuery.map { path + "?" + $0 } ?? path
    }

    /// The `Host` header: the port is left out when it is the scheme's default.
    var hostHeader: String { port == (isTLS ? 443 : 80) ? address.urlHost : address.description }

    /// Where to connect.
    var address: HostPort { HostPort(host: host, port: port) }

    /// Where to connect, for messages and for reusing a connection.
    var authority: String { address.description }

    var description: String { "\(isTLS ? "https" : "http")://\(hostHeader)\(pathAndQuery)" }

    /// Whether `host` is an IP address literal (no DNS lookup, no SNI).
    var hostIsAddress: Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// The target with query items appended (form-encoded, as `requests` writes `params`).
    func appendingQuery(_ items: [(String, String)]) -> HTTPTarget {
        guard !items.isEmpty else { return self }
        var copy = self
        let encoded = FormEncoding.encode(items)
        copy.pathAndQuery += (pathAndQuery.contains("?") ? "&" : "?") + encoded
        return copy
    }

    /// Resolves a `Location` header against this target.
    func resolving(_ location: String) -> HTTPTarget? {
        guard let base = URL(string: description), let resolved = URL(string: location, relativeTo: base)?.absoluteString else { return nil }
        return try? HTTPTarget(parsing: resolved)
    }
}

/// A URL that cannot be used.
struct TargetError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `application/x-www-form-urlencoded`, as browsers and Python's `urlencode` write it.
enum FormEncoding {
    private static let unreserved: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))

    static func encode(_ items: [(String, String)]) -> String {
        items.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if unreserved.contains(byte) {
                out.unicodeScalars.append(UnicodeScalar(byte))
            } else if byte == UInt8(ascii: " ") {
                out += "+"
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}
