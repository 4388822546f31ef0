import FaultlineKit
@testable import FaultlineProcess
@testable import FaultlineProxy
import FaultlineTestSupport
import Foundation
import Synchronization
import Testing

/// Toxics end to end, through real sockets and the proxy's event loops: that a toxic's effect
/// reaches the peer (a delay, a pace, a FIN, an RST), what the proxy does around stages (toxicity
/// rolls, live changes, removal under load, disabling) and that nothing leaks. Each toxic's exact
/// timing is tested in virtual time (ToxicTimingTests); a delay here is only checked to be at
/// least what was asked — never at most, which a loaded machine could miss.
@Suite("Toxics over loopback")
struct ToxicBehaviourTests {
    /// One echo round trip of `message`, in seconds.
    static func roundTrip(_ socket: TestSocket, _ message: String = "ping") async throws -> (Double, String) {
        try await blocking {
            let start = monotonicSeconds()
            try socket.send(message)
            let (bytes, _) = socket.receive(count: message.utf8.count)
            return (monotonicSeconds() - start, String(decoding: bytes, as: UTF8.self))
        }
    }

    @Test("latency delays each direction by at least the latency")
    func latency() async throws {
        try await withProxyFixture { fixture in
            try await fixture.addToxic("latency", ["latency": 100])
            try await fixture.addToxic("latency", stream: "upstream", ["latency": 50])
            let socket = try await fixture.connect()
            defer { socket.close() }
            let (elapsed, echoed) = try await Self.roundTrip(socket)
            #expect(echoed == "ping")
            #expect(elapsed >= 0.150)
        }
    }

    @Test("bandwidth paces a transfer at the rate")
    func bandwidth() async throws {
        let payload = randomBytes(60_000)
        try await withProxyFixture(.send(payload)) { fixture in
            try await fixture.addToxic("bandwidth", ["rate": 100])
            let port = fixture.proxyPort
            // Timed from before connecting: the proxy starts pacing when the connection opens.
            let (bytes, end, elapsed) = try await blocking {
                let start = monotonicSeconds()
                let socket = try TestSocket(port: port)
                defer { socket.close() }
                let (bytes, end) = socket.receiveAll()
                return (bytes, end, monotonicSeconds() - start)
            }
            #expect(bytes.count == payload.count && checksum(bytes) == checksum(payload))
            #expect(end == .eof)
            // 60 000 bytes at 100 000 bytes/s: 0.6 s.
            #expect(elapsed >= 0.58)
        }
    }

    @Test("timeout drops data and closes the connection after the timeout")
    func timeout() async throws {
        try await withProxyFixture { fixture in
            try await fixture.addToxic("timeout", ["timeout": 200])
            let port = fixture.proxyPort
            // Timed from before connecting: the timeout runs from when the connection opens.
            let (bytes, end, elapsed) = try await blocking {
                let start = monotonicSeconds()
                let socket = try TestSocket(port: port)
                defer { socket.close() }
                try socket.send("lost")
                let (bytes, end) = socket.receiveAll()
                return (bytes, end, monotonicSeconds() - start)
            }
            #expect(bytes.isEmpty)
            #expect(end == .eof)
            #expect(elapsed >= 0.2)
        }
    }

    @Test("reset_peer resets the connection after the timeout")
    func resetPeer() async throws {
        try await withProxyFixture { fixture in
            try await fixture.addToxic("reset_peer", stream: "upstream", ["timeout": 100])
            let socket = try await fixture.connect()
            defer { socket.close() }
            let (bytes, end, elapsed) = try await blocking {
                let start = monotonicSeconds()
                try socket.send("hello")
                let (bytes, end) = socket.receiveAll()
                return (bytes, end, monotonicSeconds() - start)
            }
            #expect(bytes.isEmpty)
            #expect(end == .reset)
            #expect(elapsed >= 0.095)
        }
    }

    @Test("reset_peer with toxicity 0 resets nothing and loses nothing")
    func resetPeerToxicityZero() async throws {
        try await withProxyFixture(.replyAfterEnd) { fixture in
            try await fixture.addToxic("reset_peer", toxicity: 0, ["timeout": 0])
            try await fixture.addToxic("reset_peer", stream: "upstream", toxicity: 0, ["timeout": 0])
            for _ in 0..<5 {
                let socket = try await fixture.connect()
                let (bytes, end) = try await blocking {
                    try socket.send("hello")
                    socket.shutdownWrite()
                    return socket.receiveAll()
                }
                socket.close()
                #expect(String(decoding: bytes, as: UTF8.self) == "hello")
                #expect(end == .eof)
            }
        }
    }

    @Test("limit_data passes exactly the limit, then closes")
    func limitData() async throws {
        let payload = randomBytes(100_000)
        try await withProxyFixture(.send(payload)) { fixture in
            try await fixture.addToxic("limit_data", ["bytes": 40_000])
            let socket = try await fixture.connect()
            defer { socket.close() }
            let (bytes, end) = try await blocking { socket.receiveAll() }
            #expect(bytes.count == 40_000)
            #expect(checksum(bytes) == checksum(Array(payload[..<40_000])))
            #expect(end == .eof)
        }
    }

    @Test("toxics added, updated and removed on a live connection apply without dropping it")
    func liveChanges() async throws {
        try await withProxyFixture { fixture in
            let socket = try await fixture.connect()
            defer { socket.close() }
            #expect(try await Self.roundTrip(socket).1 == "ping")
            try await fixture.addToxic("latency", ["latency": 600])
            let (during, echoed) = try await Self.roundTrip(socket, "pong")
            #expect(echoed == "pong")
            #expect(during >= 0.6)
            _ = try await fixture.server.updateToxic(named: "latency_downstream", on: "test", attributes: ["latency": 800], toxicity: nil)
            let (updated, _) = try await Self.roundTrip(socket)
            #expect(updated >= 0.8)
            // Removed, it delays nothing: a 10-minute latency left in place would outlast the read.
            _ = try await fixture.server.updateToxic(named: "latency_downstream", on: "test", attributes: ["latency": 600_000], toxicity: nil)
            try await fixture.server.removeToxic(named: "latency_downstream", from: "test")
            #expect(try await Self.roundTrip(socket, "ping again").1 == "ping again")
        }
    }

    @Test("removing a toxic delivers what it held at once")
    func removalFlushes() async throws {
        try await withProxyFixture { fixture in
            // Ten minutes of latency: the bytes arrive within the socket's read timeout only if the
            // removal delivers them.
            try await fixture.addToxic("latency", ["latency": 600_000])
            let socket = try await fixture.connect()
            defer { socket.close() }
            try await blocking { try socket.send("held") }
            // The echo reached the proxy and waits in the toxic.
            let downstream = try #require(fixture.server.runtime(of: "test")?.metrics.downstream)
            #expect(await eventually { downstream.received.load(ordering: .relaxed) == 4 })
            #expect(downstream.sent.load(ordering: .relaxed) == 0)
            try await fixture.server.removeToxic(named: "latency_downstream", from: "test")
            let (bytes, _) = try await blocking { socket.receive(count: 4) }
            #expect(String(decoding: bytes, as: UTF8.self) == "held")
        }
    }

    @Test("removing toxics under heavy traffic returns and the transfer completes", .timeLimit(.minutes(2)))
    func removalUnderLoad() async throws {
        try await withProxyFixture { fixture in
            // At 1 KB/s the echo of 8 MiB would take hours: the transfer completes only because the
            // removal returns and lets everything held and stalled through (Toxiproxy's API hangs
            // here until its 25 s handler timeout).
            try await fixture.addToxic("bandwidth", ["rate": 1])
            try await fixture.addToxic("latency", stream: "upstream", ["latency": 20])
            let payload = try await blocking { randomBytes(8 << 20) }
            let socket = try await fixture.connect()
            defer { socket.close() }
            async let writer: Void = blocking {
                try socket.send(payload)
                socket.shutdownWrite()
            }
            // The first paced bytes are back: both toxics hold traffic now.
            let (first, _) = try await blocking { socket.receive(count: 10) }
            #expect(first == Array(payload[..<10]))
            try await fixture.server.removeToxic(named: "bandwidth_downstream", from: "test")
            try await fixture.server.removeToxic(named: "latency_upstream", from: "test")
            let (rest, end) = try await blocking { socket.receiveAll() }
            try await writer
            #expect(end == .eof)
            #expect(checksum(first + rest) == checksum(payload))
        }
    }

    @Test("removing a timeout toxic keeps the connections it never applied to")
    func timeoutRemovalSparesOthers() async throws {
        try await withProxyFixture { fixture in
            try await fixture.addToxic("timeout", toxicity: 0, ["timeout": 0])
            let socket = try await fixture.connect()
            defer { socket.close() }
            let (_, first) = try await Self.roundTrip(socket)
            #expect(first == "ping")
            try await fixture.server.removeToxic(named: "timeout_downstream", from: "test")
            let (_, second) = try await Self.roundTrip(socket, "still here")
            #expect(second == "still here")
        }
    }

    @Test("disabling a proxy closes its connections and refuses new ones; enabling accepts again")
    func down() async throws {
        try await withProxyFixture { fixture in
            let socket = try await fixture.connect()
            defer { socket.close() }
            _ = try await Self.roundTrip(socket)
            _ = try await fixture.server.updateProxy(named: "test", enabled: false)
            let (_, end) = try await blocking { socket.receiveAll() }
            #expect(end == .eof || end == .reset)
            let port = fixture.proxyPort
            await #expect(throws: SocketFailure.self) { try await blocking { try TestSocket(port: port) } }
            let enabled = try await fixture.server.updateProxy(named: "test", enabled: true)
            #expect(enabled.listenPort == port)
            let again = try await fixture.connect()
            defer { again.close() }
            let (_, echoed) = try await Self.roundTrip(again)
            #expect(echoed == "ping")
        }
    }

    @Test(
        "a new upstream ends the proxy's connections and sends new ones there, on the same listening socket (the port is never free for another to take)",
        arguments: DataPath.allCases)
    func newUpstreamKeepsListener(path: DataPath) async throws {
        try await withProxyFixture(path: path) { fixture in
            let socket = try await fixture.connect()
            defer { socket.close() }
            #expect(try await Self.roundTrip(socket).1 == "ping")
            let before = ListeningSockets.inodes(port: fixture.proxyPort)
            #expect(before.count == 1)
            try await closing(try await TestTCPServer(.reply("pong"), group: fixture.group)) { second in
                let moved = try await fixture.server.updateProxy(named: "test", upstream: "127.0.0.1:\(second.port)")
                #expect(moved.listenPort == fixture.proxyPort)
                let (_, end) = try await blocking { socket.receiveAll() }
                #expect(end == .eof || end == .reset)
                #expect(ListeningSockets.inodes(port: fixture.proxyPort) == before)
                let again = try await fixture.connect()
                defer { again.close() }
                #expect(try await Self.roundTrip(again, "ping").1 == "pong")
            }
        }
    }

    @Test("1,000 concurrent connections leave no file descriptors behind")
    func thousandConnections() async throws {
        try await withProxyFixture { fixture in
            let port = fixture.proxyPort
            let upstreamPort = fixture.upstream.port
            let (echoed, whileOpen) = try await blocking {
                var sockets: [TestSocket] = []
                defer { sockets.forEach { $0.close() } }
                for _ in 0..<1000 { sockets.append(try TestSocket(port: port)) }
                for socket in sockets { try socket.send("x") }
                let echoed = sockets.reduce(0) { $0 + $1.receive(count: 1).0.count }
                return (echoed, proxySocketDescriptors(proxyPort: port, upstreamPort: upstreamPort))
            }
            #expect(echoed == 1000)
            #expect(whileOpen == 2000)
            #expect(try await fixture.waitForNoConnections() == 0)
            #expect(await eventually { proxySocketDescriptors(proxyPort: port, upstreamPort: upstreamPort) == 0 })
        }
    }

    @Test("toxicity rolls replay with the seed and do not depend on other toxics")
    func toxicityRolls() {
        let a = (1...200).map { ToxicRoll(seed: 42, proxy: "db", toxic: "latency_downstream", connection: $0).applies(0.5) }
        let b = (1...200).map { ToxicRoll(seed: 42, proxy: "db", toxic: "latency_downstream", connection: $0).applies(0.5) }
        let other = (1...200).map { ToxicRoll(seed: 43, proxy: "db", toxic: "latency_downstream", connection: $0).applies(0.5) }
        #expect(a == b)
        #expect(a != other)
        let fired = a.filter { $0 }.count
        #expect(fired > 60 && fired < 140)
        #expect(!ToxicRoll(seed: 1, proxy: "p", toxic: "t", connection: 1).applies(0))
        #expect(ToxicRoll(seed: 1, proxy: "p", toxic: "t", connection: 1).applies(1))
    }
}
