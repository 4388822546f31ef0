#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation
import Synchronization

/// Runs a service's readiness check until it passes or the deadline comes.
enum ReadinessWaiter {
    /// Between attempts of a tcp or http check: nothing announces that a port opened.
    static let interval = Duration.milliseconds(50)

    /// Waits for the check to pass.
    /// - Returns: nil when ready, else what the last attempt saw; nil also on cancellation (the
    ///   caller checks for it).
    static func wait(_ check: Readiness.Check, timeout: Double, logWatch: LineWatch?) async -> String? {
        let deadline = ContinuousClock.now + .seconds(timeout)
        switch check {
        case .log(let pattern):
            guard let logWatch else { return "no output to watch for /\(pattern)/" }
            return await logWatch.wait(timeout: timeout) ? nil : "no line matched /\(pattern)/"
        case .tcp(let host, let port):
            return await poll(until: deadline, attemptLimit: 1) { remaining in
                await onThread {
                    switch SocketConnection.open(host: host, port: port, timeout: min(remaining, 1)) {
                    case .success(let connection):
                        connection.disconnect()
                        return nil
                    case .failure(let error): return "tcp \(host):\(port): \(error)"
                    }
                }
            }
        case .http(let host, let port, let target, let statuses):
            return await poll(until: deadline, attemptLimit: 2) { remaining in
                await onThread {
                    let result = HTTPStatusProbe.get(host: host, port: port, target: target, timeout: min(remaining, 2))
                    let url = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(target)"
                    switch result {
                    case .success(let status):
                        let accepted = statuses.map { $0.contains(status) } ?? (200...399).contains(status)
                        return accepted ? nil : "GET \(url) answered \(status)"
                    case .failure(let error): return "GET \(url): \(error)"
                    }
                }
            }
        }
    }

    /// Repeats `attempt` until it returns nil or the deadline passes.
    /// - Parameter attemptLimit: the seconds one attempt may take; the last one gets what is left.
    /// - Returns: what the last whole attempt saw: one the deadline cut short (a slow answer cut
    ///   off as "no response in time") says less than the answer before it.
    private static func poll(until deadline: ContinuousClock.Instant, attemptLimit: Double, _ attempt: (Double) async -> String?) async
        -> String?
    {
        var last: String?
        while !Task.isCancelled {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return last ?? "not tried" }
            guard let failure = await attempt(remaining.seconds) else { return nil }
            if last == nil || remaining.seconds >= attemptLimit { last = failure }
            try? await Task.sleep(for: min(interval, max(.zero, deadline - ContinuousClock.now)))
        }
        return last ?? "not tried"
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Watches a service's output for the first line that matches a pattern.
final class LineWatch: Sendable {
    private let regex: NSRegularExpression
    private let matched = OneShot<Bool>()
    private let seen = Mutex(false)

    init(pattern: String) throws {
        regex = try NSRegularExpression(pattern: pattern)
    }

    /// Called with each line of output (on a reader thread).
    func offer(_ line: String) {
        guard !seen.withLock({ $0 }) else { return }
        let range = NSRange(line.startIndex..., in: line)
        guard regex.firstMatch(in: line, range: range) != nil else { return }
        seen.withLock { $0 = true }
        matched.resume(true)
    }

    /// Waits for a matching line, at most `timeout` seconds.
    func wait(timeout: Double) async -> Bool {
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [matched] in matched.resume(false) }
        return await withTaskCancellationHandler {
            await matched.wait()
        } onCancel: {
            matched.resume(false)
        }
    }
}

/// A connected TCP socket, made with a deadline. Blocking calls: use from a thread of its own.
struct SocketConnection {
    let fd: Int32

    enum Failure: Error, CustomStringConvertible {
        case resolve(String)
        case system(String)
        case timedOut

        var description: String {
            switch self {
            case .resolve(let message): "cannot resolve: \(message)"
            case .system(let message): message
            case .timedOut: "timed out"
            }
        }
    }

    func disconnect() { close(fd) }

    /// Connects to the first address of `host` that accepts.
    static func open(host: String, port: Int, timeout: Double) -> Result<SocketConnection, Failure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else { return .failure(.resolve(String(cString: gai_strerror(status)))) }
        defer { freeaddrinfo(list) }
        var failure = Failure.system("no address")
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let address = entry {
            entry = address.pointee.ai_next
            let fd = socket(address.pointee.ai_family, address.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), address.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 {
                return .success(SocketConnection(fd: fd))
            }
            guard errno == EINPROGRESS else {
                failure = .system(String(cString: strerror(errno)).lowercased())
                close(fd)
                continue
            }
            switch waitFor(fd, events: Int16(POLLOUT), timeout: timeout) {
            case true:
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                if error == 0 { return .success(SocketConnection(fd: fd)) }
                failure = .system(String(cString: strerror(error)).lowercased())
            case false:
                failure = .timedOut
            }
            close(fd)
        }
        return .failure(failure)
    }

    /// Writes everything or fails.
    func sendAll(_ bytes: [UInt8], deadline: ContinuousClock.Instant) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                offset += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                guard Self.waitFor(fd, events: Int16(POLLOUT), timeout: (deadline - ContinuousClock.now).seconds) else { return false }
            } else {
                return false
            }
        }
        return true
    }

    /// Reads what is available, waiting until the deadline; empty at end of stream, nil on error
    /// or timeout.
    func receive(deadline: ContinuousClock.Instant) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n >= 0 { return Array(buffer[0..<n]) }
            guard errno == EAGAIN || errno == EINTR else { return nil }
            guard Self.waitFor(fd, events: Int16(POLLIN), timeout: (deadline - ContinuousClock.now).seconds) else { return nil }
        }
    }

    static func waitFor(_ fd: Int32, events: Int16, timeout: Double) -> Bool {
        var descriptor = pollfd(fd: fd, events: events, revents: 0)
        let milliseconds = Int32(max(0, min(timeout, 3600)) * 1000)
        while true {
            let result = poll(&descriptor, 1, milliseconds)
            if result < 0 && errno == EINTR { continue }
            return result > 0
        }
    }
}

/// The smallest HTTP/1.1 client that answers "what status does GET return": enough for a
/// readiness check, with no dependency on an HTTP library.
enum HTTPStatusProbe {
    enum Failure: Error, CustomStringConvertible {
        case connect(SocketConnection.Failure)
        case closed
        case timedOut
        case malformed(String)

        var description: String {
            switch self {
            case .connect(let failure): "\(failure)"
            case .closed: "the connection closed before a response"
            case .timedOut: "no response in time"
            case .malformed(let line): "not an HTTP response: \(line.prefix(60))"
            }
        }
    }

    static func get(host: String, port: Int, target: String, timeout: Double) -> Result<Int, Failure> {
        let deadline = ContinuousClock.now + .seconds(timeout)
        let connection: SocketConnection
        switch SocketConnection.open(host: host, port: port, timeout: timeout) {
        case .success(let made): connection = made
        case .failure(let failure): return .failure(.connect(failure))
        }
        defer { connection.disconnect() }
        let hostHeader = (host.contains(":") ? "[\(host)]" : host) + (port == 80 ? "" : ":\(port)")
        let request = "GET \(target) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: faultline\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        guard connection.sendAll(Array(request.utf8), deadline: deadline) else { return .failure(.closed) }
        var received: [UInt8] = []
        while !received.contains(UInt8(ascii: "\n")) {
            guard let chunk = connection.receive(deadline: deadline) else { return .failure(ContinuousClock.now >= deadline ? .timedOut : .closed) }
            if chunk.isEmpty { return .failure(received.isEmpty ? .closed : .malformed(String(decoding: received, as: UTF8.self))) }
            received += chunk
            if received.count > 8192 { break }
        }
        return parseStatus(String(decoding: received, as: UTF8.self))
    }

    /// `HTTP/1.1 200 OK` → 200.
    static func parseStatus(_ response: String) -> Result<Int, Failure> {
        let line = response.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? response
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]), (100...599).contains(status) else {
            return .failure(.malformed(line))
        }
        return .success(status)
    }
}
