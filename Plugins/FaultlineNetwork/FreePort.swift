#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import FaultlineKit
import Foundation
import Synchronization

/// `port: {type: free_port}`: a TCP port that is free on this machine when the run starts, so a
/// suite's services can listen without clashing with whatever else runs there.
///
/// The port is computed once per run, so every experiment and service sees the same number. It
/// is released before the service binds it, so it must not be one the kernel hands out in the
/// meantime: a port from `bind(0)` lies in the ephemeral range, where every outgoing connection
/// on the machine also takes its local port, and a busy machine (a test run, a load test) takes
/// it back within seconds. So the port is picked at random *below* the ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), where only programs that ask for a port by number
/// land, and is checked free by binding it. No two keys of one process get the same port.
/// Where the range leaves no room below it, `bind(0)` is the fallback.
public struct FreePortProvider: ConfigurationProvider {
    public let type = "free_port"

    public init() {}

    public func value(for node: SourceNode, key: String) throws -> Value {
        struct Arguments: Decodable {
            var type: String
            var host: String?
        }
        let host = try NodeDecoder().decode(Arguments.self, from: node).host ?? "127.0.0.1"
        var address = in_addr()
        guard inet_pton(AF_INET, host, &address) == 1 else {
            throw Diagnostic("free_port needs an IPv4 address for host, found \"\(host)\"", at: node["host"]?.location ?? node.location)
        }
        do {
            return .int(try FreePorts.shared.take(on: address))
        } catch {
            throw Diagnostic(
                "cannot find a free port on \(host) for \"\(key)\": \((error as? FreePorts.Failure)?.reason ?? "\(error)")", at: node.location)
        }
    }
}

/// A free TCP port for a server that will bind it later, by number: what `free_port` gives, for
/// tests and plugins that start servers of their own.
public enum FreePort {
    /// A port free on `host` (an IPv4 address) now, below the ephemeral range, not given before
    /// by this process.
    public static func take(host: String = "127.0.0.1") throws -> Int {
        var address = in_addr()
        guard inet_pton(AF_INET, host, &address) == 1 else { throw FreePorts.Failure(reason: "\(host) is not an IPv4 address") }
        return try FreePorts.shared.take(on: address)
    }
}

/// The ports this process has handed out, and how to find another.
final class FreePorts: Sendable {
    static let shared = FreePorts()

    struct Failure: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    private let given = Mutex<Set<Int>>([])

    /// The range of ports to pick from: below the ephemeral range, above the privileged ports;
    /// nil when the ephemeral range leaves too little room below it.
    static func candidates(ephemeral: ClosedRange<Int>) -> ClosedRange<Int>? {
        let upper = ephemeral.lowerBound - 1
        let lower = max(1024, upper - 16383)
        return upper - lower >= 1023 ? lower...upper : nil
    }

    /// The kernel's ephemeral port range; Linux's default where it cannot be read (macOS uses
    /// 49152...65535, above Linux's, so the same candidates serve).
    static func ephemeralRange() -> ClosedRange<Int> {
        let fallback = 32768...60999
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) else { return fallback }
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] <= bounds[1] else { return fallback }
        return bounds[0]...bounds[1]
    }

    /// A port free on `address` now, not handed out before by this process.
    func take(on address: in_addr) throws -> Int {
        if let range = Self.candidates(ephemeral: Self.ephemeralRange()) {
            for _ in 0..<200 {
                let port = Int.random(in: range)
                guard given.withLock({ !$0.contains(port) }) else { continue }
                if (try? Self.bindAndRelease(address, port: port)) != nil, given.withLock({ $0.insert(port).inserted }) { return port }
            }
        }
        for _ in 0..<20 {
            let port = try Self.bindAndRelease(address, port: 0)
            if given.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw Failure(reason: "every port tried was taken")
    }

    /// Binds `port` (0: any) on `address`, releases it, and returns the port bound.
    static func bindAndRelease(_ address: in_addr, port: Int) throws -> Int {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_addr = address
        socketAddress.sin_port = in_port_t(UInt16(port).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &socketAddress) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw Failure(reason: String(cString: strerror(errno))) }
        return Int(UInt16(bigEndian: socketAddress.sin_port))
    }
}
