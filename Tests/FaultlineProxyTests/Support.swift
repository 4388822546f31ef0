import FaultlineKit
import FaultlineNetwork
import FaultlineProxy
import FaultlineTestSupport
import Foundation
import NIOCore
import NIOPosix
import Testing

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

/// Which way a connection without toxics goes through the proxy: the relay (the default), or
/// NIO as every connection with toxics does (and every connection where there is no relay).
enum DataPath: String, CaseIterable, CustomTestStringConvertible {
    case relay, nio

    var testDescription: String { rawValue }
}

/// A proxy server with one proxy in front of a test upstream, torn down by ``close()``.
final class ProxyFixture: TestResource, Sendable {
    let server: ProxyServer
    let upstream: TestTCPServer
    let proxyPort: Int
    let group: MultiThreadedEventLoopGroup

    static let toxicTypes = PluginRegistry(plugins: [ProxyPlugin.self]).toxics

    init(_ behaviour: TestTCPServer.Behaviour = .echo, seed: UInt64 = 1, name: String = "test", path: DataPath = .relay) async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        server = ProxyServer(toxicTypes: Self.toxicTypes, seed: seed, group: group, relay: path == .relay)
        upstream = try await TestTCPServer(behaviour, group: group)
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
    func addToxic(_ type: String, stream: String = "downstream", toxicity: Double? = nil, name: String? = nil, _ attributes: Value) async throws
        -> ToxicDefinition
    {
        try await server.addToxic(
            ProxyServer.ToxicRequest(name: name, type: type, stream: stream, toxicity: toxicity, attributes: attributes), to: "test")
    }

    /// Waits until the proxy has no open connection (or a few seconds pass); returns how many are open.
    func waitForNoConnections(_ proxy: String = "test") async throws -> Int {
        _ = try await eventually(timeout: .seconds(10)) { try server.openConnections(of: proxy) == 0 }
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
func withProxyFixture<T>(
    _ behaviour: TestTCPServer.Behaviour = .echo, seed: UInt64 = 1, path: DataPath = .relay, _ body: (ProxyFixture) async throws -> T
) async throws -> T {
    try await closing(try await ProxyFixture(behaviour, seed: seed, path: path), body)
}

/// Monotonic seconds, for measuring delays in tests.
func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
