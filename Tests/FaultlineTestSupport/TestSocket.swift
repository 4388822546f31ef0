#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// A socket call that failed, with the system's reason.
public struct SocketFailure: Error, CustomStringConvertible {
    public var description: String
    public var code: Int32

    public init(_ what: String, code: Int32 = errno) {
        self.code = code
        description = "\(what): \(String(cString: strerror(code)))"
    }
}

/// A plain blocking TCP client socket with timeouts, so a test never hangs.
public final class TestSocket: @unchecked Sendable {
    public let fd: Int32

    /// How a read ended.
    public enum End: Equatable, Sendable { case eof, reset, timeout }

    /// Connects to `host` (an IPv4 or IPv6 address; IPv4 loopback by default) on `port`. The timeout
    /// bounds each read and write, so a test never hangs; generous, since a loaded machine is slow.
    public init(host: String = "127.0.0.1", port: Int, timeout: Double = 30) throws {
        let ipv6 = host.contains(":")
        fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure("socket") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - floor(timeout)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let result: Int32
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET6, host, &address.sin6_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr(host)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        if result != 0 {
            let failure = SocketFailure("connect to \(host):\(port)")
            Glibc.close(fd)
            throw failure
        }
    }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SocketFailure("send")
            }
            offset += n
        }
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Shuts down the write side (sends FIN), keeping the read side open.
    public func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads what arrives until `count` bytes, EOF, a reset or the timeout.
    public func receive(count: Int) -> ([UInt8], End?) {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while result.count < count {
            let want = min(buffer.count, count - result.count)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, want, 0) }
            if n > 0 {
                result += buffer[..<n]
            } else if n == 0 {
                return (result, .eof)
            } else if errno == EINTR {
                continue
            } else if errno == ECONNRESET {
                return (result, .reset)
            } else {
                return (result, .timeout)
            }
        }
        return (result, nil)
    }

    /// Sends until the peer stops taking bytes (the send timeout); returns how many went out.
    public func sendUntilBlocked(chunk: Int = 1 << 20, limit: Int) -> Int {
        let buffer = [UInt8](repeating: 0x5A, count: chunk)
        var total = 0
        while total < limit {
            let n = buffer.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            total += n
        }
        return total
    }

    /// Reads until EOF, reset or timeout.
    public func receiveAll() -> ([UInt8], End) {
        let (bytes, end) = receive(count: Int.max)
        return (bytes, end ?? .eof)
    }

    /// Closes with RST.
    public func reset() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        Glibc.close(fd)
    }

    public func close() { Glibc.close(fd) }
}
