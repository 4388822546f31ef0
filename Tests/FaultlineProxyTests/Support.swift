import FaultlineKit
import FaultlineNetwork
import FaultlineProxy
import Foundation
import Testing
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking socket code on a thread of its own, never on the cooperative pool.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}

struct SocketFailure: Error, CustomStringConvertible {
    var description: String
    var code: Int32

    init(_ what: String, code: Int32 = errno) {
        self.code = code
        description = "\(what): \(String(cString: strerror(code)))"
    }
}

/// A plain blocking TCP client socket with timeouts, so a test never hangs.
final class TestSocket: @unchecked Sendable {
    let fd: Int32

    /// How a read ended.
    enum End: Equatable { case eof, reset, timeout }

    init(port: Int, timeout: Double = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure("socket") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - floor(timeout)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 {
            let failure = SocketFailure("connect to port \(port)")
            Glibc.close(fd)
            throw failure
        }
    }

    func send(_ bytes: [UInt8]) throws {
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

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Shuts down the write side (sends FIN), keeping the read side open.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads what arrives until `count` bytes, EOF, a reset or the timeout.
    func receive(count: Int) -> ([UInt8], End?) {
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
    func sendUntilBlocked(chunk: Int = 1 << 20, limit: Int) -> Int {
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
    func receiveAll() -> ([UInt8], End) {
        let (bytes, end) = receive(count: Int.max)
        return (bytes, end ?? .eof)
    }

    /// Closes with RST.
    func reset() {
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        Glibc.close(fd)
    }

    func close() { Glibc.close(fd) }
}

/// This process's open descriptors for the proxy's sockets: connections accepted on
/// `proxyPort` and connections to `upstreamPort` (not the listener, not sockets of other tests).
func proxySocketDescriptors(proxyPort: Int, upstreamPort: Int) -> Int {
    var inodes: Set<String> = []
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        // procfs files report no size: read to the end rather than by length.
        guard let data = FileHandle(forReadingAtPath: table)?.readDataToEndOfFile() else { continue }
        let text = String(decoding: data, as: UTF8.self)
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 9 else { continue }
            let local = Int(fields[1].split(separator: ":").last ?? "", radix: 16)
            let remote = Int(fields[2].split(separator: ":").last ?? "", radix: 16)
            let listening = fields[3] == "0A"
            if (local == proxyPort && !listening) || remote == upstreamPort { inodes.insert(String(fields[9])) }
        }
    }
    let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return descriptors.filter { fd in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)") else { return false }
        return target.hasPrefix("socket:[") && inodes.contains(String(target.dropFirst(8).dropLast()))
    }.count
}

/// Deterministic pseudo-random bytes. Word by word through a raw buffer: a debug build is slow at
/// a byte loop over tens of MiB, and tests run on a shared pool (large payloads: call it inside
/// ``blocking(_:)``).
func randomBytes(_ count: Int, seed: UInt64 = 7) -> [UInt8] {
    var random = SeededRandom(seed: seed)
    var bytes = [UInt8](repeating: 0, count: (count + 7) / 8 * 8)
    bytes.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for index in 0..<words.count { words[index] = random.next() }
    }
    bytes.removeLast(bytes.count - count)
    return bytes
}

/// An FNV-1a-style hash of bytes, a word at a time, to compare large payloads.
func checksum(_ bytes: [UInt8]) -> UInt64 {
    bytes.withUnsafeBytes { raw in
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(raw.count)
        let whole = raw.count / 8
        for index in 0..<whole {
            hash ^= raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)
            hash = hash &* 0x100_0000_01b3
        }
        for index in (whole * 8)..<raw.count {
            hash ^= UInt64(raw[index])
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}

/// What a test upstream does with each connection.
enum UpstreamBehaviour: Sendable {
    /// Echoes every byte; half-closes when the client half-closes.
    case echo
    /// Sends these bytes on connect and half-closes, then discards what it reads.
    case send([UInt8])
    /// Reads until EOF, then answers with what it read (a request/response over half-close).
    case replyAfterEnd
    /// Resets every connection as soon as it reads something.
    case resetOnData
    /// Never reads: what the client sends piles up in buffers.
    case stall
}

/// A loopback TCP server for tests, on an ephemeral port.
final class TestUpstream: Sendable {
    let channel: any Channel
    let port: Int
    let accepted = Atomic<Int>(0)

    init(_ behaviour: UpstreamBehaviour, group: any EventLoopGroup) async throws {
        let counter = AcceptCounter()
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 2048)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                counter.count.add(1, ordering: .relaxed)
                if case .stall = behaviour { return channel.setOption(.autoRead, value: false) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(behaviour))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
        self.counter = counter
    }

    private let counter: AcceptCounter

    var acceptedCount: Int { counter.count.load(ordering: .relaxed) }

    func close() async { try? await channel.close() }
}

final class AcceptCounter: Sendable {
    let count = Atomic<Int>(0)
}

final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let behaviour: UpstreamBehaviour
    var collected: ByteBuffer?

    init(_ behaviour: UpstreamBehaviour) { self.behaviour = behaviour }

    func channelActive(context: ChannelHandlerContext) {
        if case .send(let bytes) = behaviour {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil)
            context.close(mode: .output, promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        switch behaviour {
        case .echo: context.write(wrapOutboundOut(buffer), promise: nil)
        case .send, .stall: break
        case .replyAfterEnd:
            if collected == nil { collected = buffer } else { collected!.writeBuffer(&buffer) }
        case .resetOnData:
            if let options = context.channel as? any SocketOptionProvider {
                _ = options.setSoLinger(linger(l_onoff: 1, l_linger: 0))
            }
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .inputClosed? = event as? ChannelEvent else { return }
        switch behaviour {
        case .echo:
            closeOutputAfterWrites(context, last: ByteBuffer())
        case .replyAfterEnd:
            closeOutputAfterWrites(context, last: collected ?? ByteBuffer())
        case .send, .resetOnData, .stall:
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    /// NIO's `close(mode: .output)` after the input closed drops pending writes; wait for them.
    private func closeOutputAfterWrites(_ context: ChannelHandlerContext, last: ByteBuffer) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(last), promise: promise)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        promise.futureResult.whenComplete { _ in bound.value.close(mode: .output, promise: nil) }
    }
}

/// Which way a connection without toxics goes through the proxy: the relay (the default), or
/// NIO as every connection with toxics does (and every connection where there is no relay).
enum DataPath: String, CaseIterable, CustomTestStringConvertible {
    case relay, nio

    var testDescription: String { rawValue }
}

/// A proxy server with one proxy in front of a test upstream, torn down by ``close()``.
final class ProxyFixture: Sendable {
    let server: ProxyServer
    let upstream: TestUpstream
    let proxyPort: Int
    let group: MultiThreadedEventLoopGroup

    static let toxicTypes = PluginRegistry(plugins: [ProxyPlugin.self]).toxics

    init(_ behaviour: UpstreamBehaviour = .echo, seed: UInt64 = 1, name: String = "test", path: DataPath = .relay) async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        server = ProxyServer(toxicTypes: Self.toxicTypes, seed: seed, group: group, relay: path == .relay)
        upstream = try await TestUpstream(behaviour, group: group)
        // A port below the ephemeral range: tests that disable and enable the proxy rebind it, and
        // a port from bind(0) could be taken in between by another test's outgoing connection.
        let proxy = try await server.createProxy(name: name, listen: "127.0.0.1:\(try FreePort.take())", upstream: "127.0.0.1:\(upstream.port)")
        proxyPort = proxy.listenPort!
    }

    func connect() async throws -> TestSocket {
        let port = proxyPort
        return try await blocking { try TestSocket(port: port) }
    }

    @discardableResult
    func addToxic(_ type: String, stream: String = "downstream", toxicity: Double? = nil, name: String? = nil, _ attributes: Value) async throws -> ToxicDefinition {
        try await server.addToxic(ProxyServer.ToxicRequest(name: name, type: type, stream: stream, toxicity: toxicity, attributes: attributes), to: "test")
    }

    /// Waits until the proxy has no open connection (or a few seconds pass).
    func waitForNoConnections(_ proxy: String = "test") async throws -> Int {
        for _ in 0..<500 {
            let open = try server.openConnections(of: proxy)
            if open == 0 { return 0 }
            try await Task.sleep(for: .milliseconds(10))
        }
        return try server.openConnections(of: proxy)
    }

    func close() async {
        await server.shutdown()
        await upstream.close()
        try? await group.shutdownGracefully()
    }
}

/// Runs `body` with a fresh ``ProxyFixture`` and closes the fixture before returning, also when
/// `body` throws.
func withProxyFixture<T: Sendable>(
    _ behaviour: UpstreamBehaviour = .echo, path: DataPath = .relay, _ body: (ProxyFixture) async throws -> T
) async throws -> T {
    let fixture = try await ProxyFixture(behaviour, path: path)
    do {
        let result = try await body(fixture)
        await fixture.close()
        return result
    } catch {
        await fixture.close()
        throw error
    }
}

/// Monotonic seconds, for measuring delays in tests.
func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
