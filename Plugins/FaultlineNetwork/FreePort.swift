#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import FaultlineKit

/// `port: {type: free_port}`: a TCP port that is free on this machine when the run starts, so a
/// suite's services can listen without clashing with whatever else runs there.
///
/// The port is found by binding port 0 on the loopback (or `host:`) and releasing it; it is
/// computed once per run, so every experiment and service sees the same number. Another program
/// could take it in between — rare on a quiet machine, and a service that cannot bind fails the
/// run with its log.
public struct FreePortProvider: ConfigurationProvider {
    public let type = "free_port"

    public init() {}

    public func value(for node: SourceNode, key: String) throws -> Value {
        struct Arguments: Decodable {
            var type: String
            var host: String?
        }
        let host = try NodeDecoder().decode(Arguments.self, from: node).host ?? "127.0.0.1"
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw Diagnostic("free_port needs an IPv4 address for host, found \"\(host)\"", at: node["host"]?.location ?? node.location)
        }
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Diagnostic("cannot open a socket for \"\(key)\": \(String(cString: strerror(errno)))", at: node.location) }
        defer { close(fd) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw Diagnostic("cannot find a free port on \(host) for \"\(key)\": \(String(cString: strerror(errno)))", at: node.location) }
        return .int(Int(UInt16(bigEndian: address.sin_port)))
    }
}
