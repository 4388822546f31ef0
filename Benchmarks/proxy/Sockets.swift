import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Plain blocking loopback sockets: the load generator and test servers stay simple and cheap, so
/// the numbers are the proxy's.
enum Sockets {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ what: String) { description = "\(what): \(String(cString: strerror(errno)))" }
    }

    static func listen() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 4096) == 0 else { throw Failure("listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    static func connect(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let failure = Failure("connect to \(port)")
            close(fd)
            throw failure
        }
        return fd
    }

    static func accept(_ listener: Int32) -> Int32 {
        let fd = Glibc.accept(listener, nil, nil)
        if fd >= 0 {
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        return fd
    }

    /// Writes all of `count` bytes from `buffer`.
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < buffer.count {
            let n = send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    /// Reads exactly `count` bytes; false on EOF or error.
    static func readExactly(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, _ count: Int) -> Bool {
        var offset = 0
        while offset < count {
            let n = recv(fd, buffer.baseAddress! + offset, count - offset, 0)
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    /// Reads until EOF, returning the byte count.
    static func drain(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
        var total = 0
        while true {
            let n = recv(fd, buffer.baseAddress!, buffer.count, 0)
            if n > 0 {
                total += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return total
            }
        }
    }

    /// Runs `body` on a new thread.
    static func thread(_ body: @escaping @Sendable () -> Void) {
        Thread.detachNewThread(body)
    }
}

/// One admin API call on a fresh connection; the status and body (0 when the server is not there).
@discardableResult
func adminRequest(port: Int, _ method: String, _ path: String, _ body: String = "") -> (status: Int, body: String) {
    guard let fd = try? Sockets.connect(port) else { return (0, "") }
    defer { close(fd) }
    // Toxiproxy can take 25 s to answer (and then 503) when a toxic will not come off a busy connection.
    var timeout = timeval(tv_sec: 40, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let request =
        "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    _ = Array(request.utf8).withUnsafeBytes { Sockets.writeAll(fd, $0) }
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        if n <= 0 { break }
        data += buffer[..<n]
    }
    let text = String(decoding: data, as: UTF8.self)
    let status = Int(text.split(separator: " ").dropFirst().first ?? "0") ?? 0
    return (status, text.components(separatedBy: "\r\n\r\n").dropFirst().joined())
}

/// A server on a loopback port whose accept loop runs on its own thread.
final class TestServer: @unchecked Sendable {
    let port: Int
    let fd: Int32

    /// - Parameter handle: called on the accept thread with each accepted socket.
    init(_ handle: @escaping @Sendable (Int32) -> Void) throws {
        (fd, port) = try Sockets.listen()
        let listener = fd
        Sockets.thread {
            while true {
                let client = Sockets.accept(listener)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                handle(client)
            }
        }
    }

    /// Echoes on a thread per connection.
    static func echo() throws -> TestServer {
        try TestServer { client in
            Sockets.thread {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
                defer { buffer.deallocate() }
                while true {
                    let n = recv(client, buffer.baseAddress!, buffer.count, 0)
                    if n <= 0 { break }
                    if !Sockets.writeAll(client, UnsafeRawBufferPointer(rebasing: buffer[..<n])) { break }
                }
                close(client)
            }
        }
    }

    /// Reads and discards, then reports the byte count.
    static func sink(_ done: @escaping @Sendable (Int) -> Void) throws -> TestServer {
        try TestServer { client in
            Sockets.thread {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)
                defer { buffer.deallocate() }
                let total = Sockets.drain(client, buffer)
                close(client)
                done(total)
            }
        }
    }
}

/// Monotonic nanoseconds.
func nanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// The resident memory of a process, in bytes.
func residentBytes(pid: Int32) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// The machine's CPU time so far from /proc/stat, in ticks: all of it, and the part stolen by the
/// hypervisor for other guests (a VM's benchmark numbers are only as steady as that part is small).
func cpuTicks() -> (total: UInt64, steal: UInt64) {
    guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
    else { return (0, 0) }
    let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
    // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user]
    guard fields.count >= 8 else { return (0, 0) }
    return (fields[..<8].reduce(0, +), fields[7])
}
