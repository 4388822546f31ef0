/// An address or a CIDR block (`10.0.0.0/8`, `127.0.0.1`, `::1`, `fd00::/8`): which client
/// connections a toxic's `clients` condition takes.
///
/// Plain Swift (the kernel has no sockets): the proxy compares the bytes of a connection's peer
/// address. An IPv4 client that reaches an IPv6 listener as `::ffff:a.b.c.d` matches IPv4 blocks.
public struct ClientNetwork: Sendable, Equatable, CustomStringConvertible {
    /// The network's address bytes (4 or 16), host bits cleared.
    public let address: [UInt8]
    public let prefixLength: Int
    public let description: String

    /// Parses `address` or `address/prefix`.
    /// - Throws: ``ArgumentError`` naming `key`.
    public init(parsing text: String, key: String = "clients") throws {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.parseAddress(String(parts[0])) else {
            throw ArgumentError(key, "\"\(text)\" is not an IP address or CIDR block", hint: "write e.g. 127.0.0.1, 10.0.0.0/8, ::1 or fd00::/8")
        }
        let maximum = bytes.count * 8
        var length = maximum
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...maximum).contains(parsed) else {
                throw ArgumentError(key, "\"\(text)\": the prefix length must be 0…\(maximum)")
            }
            length = parsed
        }
        address = Self.masked(bytes, length)
        prefixLength = length
        description = text
    }

    /// Whether a peer address (4 or 16 bytes) lies in the network.
    public func contains(_ peer: [UInt8]) -> Bool {
        var peer = peer
        if address.count == 4, peer.count == 16, peer[0..<10].allSatisfy({ $0 == 0 }), peer[10] == 0xFF, peer[11] == 0xFF {
            peer = Array(peer[12...])
        } else if address.count == 16, peer.count == 4 {
            peer = [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + peer
        }
        guard peer.count == address.count else { return false }
        return Self.masked(peer, prefixLength) == address
    }

    private static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = length - index * 8
            if bits >= 8 { return byte }
            if bits <= 0 { return 0 }
            return byte & UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
        }
    }

    /// 4 bytes for dotted IPv4, 16 for IPv6 (with `::` and an embedded IPv4 tail); nil otherwise.
    static func parseAddress(_ text: String) -> [UInt8]? {
        if !text.contains(":") { return parseIPv4(Substring(text)) }
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        var halves = [String(text)]
        if let gap = text.firstRange(of: "::") {
            halves = [String(text[..<gap.lowerBound]), String(text[gap.upperBound...])]
            guard !halves[1].contains("::") else { return nil }
        }
        func groups(_ part: String) -> [UInt8]? {
            guard !part.isEmpty else { return [] }
            var bytes: [UInt8] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.contains(".") {
                    guard let v4 = parseIPv4(piece) else { return nil }
                    bytes += v4
                    continue
                }
                guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
            }
            return bytes
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 16 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count <= 14 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }

    private static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }
}

extension [ClientNetwork] {
    /// Parses a `clients` list; an empty list is refused (it would match no connection).
    public init(parsing texts: [String], key: String = "clients") throws {
        guard !texts.isEmpty else {
            throw ArgumentError(
                key, "clients must list at least one address or CIDR block", hint: "leave clients out to apply the toxic to every client")
        }
        self = try texts.enumerated().map { index, text in try ClientNetwork(parsing: text, key: "\(key).\(index)") }
    }
}
