import FaultlineKit
@testable import FaultlineProxy
import FaultlineTestSupport
import Foundation
import Testing

/// Each toxic's observable behaviour through real sockets. Delays are checked to be at least what
/// was asked and not grossly longer (generous bounds: these are behaviours, not benchmarks).
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
            #expect(elapsed < 1.0)
        }
    }

    @Test("two latency toxics on one direction add up, as in Toxiproxy's chain")
    func latenciesAddUp() async throws {
        try await withProxyFixture { fixture in
            try await fixture.addToxic("latency", name: "first", ["latency": 100])
            try await fixture.addToxic("latency", name: "second", ["latency": 100])
            let socket = try await fixture.connect()
            defer { socket.close() }
            for _ in 0..<3 {
                let (elapsed, echoed) = try await Self.roundTrip(socket)
                #expect(echoed == "ping")
                #expect(elapsed >= 0.2)
            }
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
            #expect(elapsed < 1.2)
        }
    }

    @Test("slow_close delays the end of stream, not the data")
    func slowClose() async throws {
        try await withProxyFixture(.send(Array("bye".utf8))) { fixture in
            try await fixture.addToxic("slow_close", ["delay": 300])
            let port = fixture.proxyPort
            let (data, dataAt, endAt, end) = try await blocking {
                let start = monotonicSeconds()
                let socket = try TestSocket(port: port)
                defer { socket.close() }
                let (data, _) = socket.receive(count: 3)
                let dataAt = monotonicSeconds() - start
                let (_, end) = socket.receiveAll()
                return (data, dataAt, monotonicSeconds() - start, end)
            }
            #expect(String(decoding: data, as: UTF8.self) == "bye")
            #expect(dataAt < endAt - 0.1)
            #expect(end == .eof)
            #expect(endAt >= 0.3)
            #expect(endAt < 1.5)
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
            #expect(elapsed < 1.5)
        }
    }

    @Test("timeout 0 holds the connection open and silent")
    func timeoutForever() async throws {
        try await withProxyFixture { fixture in
            try await fixture.addToxic("timeout", ["timeout": 0])
            let port = fixture.proxyPort
            let socket = try await blocking { try TestSocket(port: port, timeout: 0.5) }
            defer { socket.close() }
            let (bytes, end) = try await blocking {
                try socket.send("lost")
                return socket.receiveAll()
            }
            #expect(bytes.isEmpty)
            #expect(end == .timeout)
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
            #expect(elapsed < 1.0)
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

    @Test("slicer spaces pieces by its microsecond delay")
    func slicerDelay() async throws {
        let payload = randomBytes(10_000)
        try await withProxyFixture(.send(payload)) { fixture in
            // 100-byte pieces, 500 µs apart: about 100 pieces, at least 49.5 ms in all.
            try await fixture.addToxic("slicer", ["average_size": 100, "size_variation": 0, "delay": 500])
            let port = fixture.proxyPort
            // Timed from before connecting: 99 gaps of 500 µs follow the first piece.
            let (bytes, elapsed) = try await blocking {
                let start = monotonicSeconds()
                let socket = try TestSocket(port: port)
                defer { socket.close() }
                let (bytes, _) = socket.receiveAll()
                return (bytes, monotonicSeconds() - start)
            }
            #expect(checksum(bytes) == checksum(payload))
            #expect(elapsed >= 0.0495)
            #expect(elapsed < 1.5)
        }
    }

    @Test("toxics added and removed on a live connection apply without dropping it")
    func liveChanges() async throws {
        try await withProxyFixture { fixture in
            let socket = try await fixture.connect()
            defer { socket.close() }
            let (before, _) = try await Self.roundTrip(socket)
            // "Fast" is well under the 600-800 ms toxics, with room for a loaded machine.
            #expect(before < 0.4)
            try await fixture.addToxic("latency", ["latency": 600])
            let (during, echoed) = try await Self.roundTrip(socket, "pong")
            #expect(echoed == "pong")
            #expect(during >= 0.6)
            _ = try await fixture.server.updateToxic(named: "latency_downstream", on: "test", attributes: ["latency": 800], toxicity: nil)
            let (updated, _) = try await Self.roundTrip(socket)
            #expect(updated >= 0.8)
            try await fixture.server.removeToxic(named: "latency_downstream", from: "test")
            let (after, again) = try await Self.roundTrip(socket, "ping again")
            #expect(again == "ping again")
            #expect(after < 0.4)
        }
    }

    @Test("removing a toxic delivers what it held at once")
    func removalFlushes() async throws {
        try await withProxyFixture { fixture in
            // A 60 s latency: delivery well before it proves the removal flushed (the bound is loose
            // on purpose, so a busy machine cannot make the test flaky).
            try await fixture.addToxic("latency", ["latency": 60_000])
            let socket = try await fixture.connect()
            defer { socket.close() }
            try await blocking { try socket.send("held") }
            try await Task.sleep(for: .milliseconds(50))
            let start = monotonicSeconds()
            try await fixture.server.removeToxic(named: "latency_downstream", from: "test")
            let (bytes, _) = try await blocking { socket.receive(count: 4) }
            #expect(String(decoding: bytes, as: UTF8.self) == "held")
            #expect(monotonicSeconds() - start < 15)
        }
    }

    @Test("removing a toxic under heavy traffic returns promptly and the transfer completes")
    func removalUnderLoad() async throws {
        try await withProxyFixture { fixture in
            try await fixture.addToxic("bandwidth", ["rate": 2_000])
            try await fixture.addToxic("latency", stream: "upstream", ["latency": 20])
            let payload = randomBytes(8 << 20)
            let socket = try await fixture.connect()
            defer { socket.close() }
            async let writer: Void = blocking {
                try socket.send(payload)
                socket.shutdownWrite()
            }
            async let reader = blocking { socket.receiveAll() }
            try await Task.sleep(for: .milliseconds(200))
            let start = monotonicSeconds()
            try await fixture.server.removeToxic(named: "bandwidth_downstream", from: "test")
            try await fixture.server.removeToxic(named: "latency_upstream", from: "test")
            // Toxiproxy's API hangs here until its 25 s handler timeout; ours returns.
            #expect(monotonicSeconds() - start < 10)
            let (received, end) = try await reader
            try await writer
            #expect(end == .eof)
            #expect(checksum(received) == checksum(payload))
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
            var open = proxySocketDescriptors(proxyPort: port, upstreamPort: upstreamPort)
            for _ in 0..<300 where open > 0 {
                try await Task.sleep(for: .milliseconds(10))
                open = proxySocketDescriptors(proxyPort: port, upstreamPort: upstreamPort)
            }
            #expect(open == 0)
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
