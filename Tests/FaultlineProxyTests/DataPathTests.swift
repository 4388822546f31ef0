import FaultlineKit
@testable import FaultlineProxy
import Foundation
import Testing

@Suite("Proxy data path over loopback")
struct DataPathTests {
    @Test("a small echo round trip passes unchanged")
    func echo() async throws {
        let fixture = try await ProxyFixture()
        defer { Task { await fixture.close() } }
        let socket = try await fixture.connect()
        defer { socket.close() }
        let (bytes, end) = try await blocking {
            try socket.send("hello")
            return socket.receive(count: 5)
        }
        #expect(String(decoding: bytes, as: UTF8.self) == "hello")
        #expect(end == nil)
    }

    @Test("a large random payload arrives byte-exact both ways", arguments: [false, true])
    func largePayload(sliced: Bool) async throws {
        let fixture = try await ProxyFixture()
        defer { Task { await fixture.close() } }
        if sliced {
            try await fixture.addToxic("slicer", stream: "upstream", ["average_size": 1500, "size_variation": 1000, "delay": 0])
            try await fixture.addToxic("slicer", stream: "downstream", ["average_size": 700, "size_variation": 300, "delay": 0])
        }
        let payload = randomBytes(sliced ? 4 << 20 : 32 << 20)
        let socket = try await fixture.connect()
        defer { socket.close() }
        async let writer: Void = blocking {
            try socket.send(payload)
            socket.shutdownWrite()
        }
        let (received, end) = try await blocking { socket.receiveAll() }
        try await writer
        #expect(end == .eof)
        #expect(received.count == payload.count)
        #expect(checksum(received) == checksum(payload))
    }

    @Test("a client that half-closes still receives the reply")
    func halfClose() async throws {
        let fixture = try await ProxyFixture(.replyAfterEnd)
        defer { Task { await fixture.close() } }
        let socket = try await fixture.connect()
        defer { socket.close() }
        let (bytes, end) = try await blocking {
            try socket.send("request body")
            socket.shutdownWrite()
            return socket.receiveAll()
        }
        #expect(String(decoding: bytes, as: UTF8.self) == "request body")
        #expect(end == .eof)
    }

    @Test("an upstream that refuses closes the client cleanly")
    func refusedUpstream() async throws {
        let fixture = try await ProxyFixture()
        defer { Task { await fixture.close() } }
        let dead = try await TestUpstream(.echo, group: fixture.group)
        let port = dead.port
        await dead.close()
        let proxy = try await fixture.server.createProxy(name: "dead", listen: "127.0.0.1:0", upstream: "127.0.0.1:\(port)")
        let socket = try await blocking { try TestSocket(port: proxy.listenPort!) }
        defer { socket.close() }
        let (bytes, end) = try await blocking {
            try socket.send("anyone?")
            return socket.receiveAll()
        }
        #expect(bytes.isEmpty)
        #expect(end == .eof)
        #expect(try await fixture.waitForNoConnections("dead") == 0)
    }

    @Test("a reset from the upstream reaches the client as a reset")
    func resetPropagates() async throws {
        let fixture = try await ProxyFixture(.resetOnData)
        defer { Task { await fixture.close() } }
        let socket = try await fixture.connect()
        defer { socket.close() }
        let end = try await blocking {
            try socket.send("poke")
            return socket.receiveAll().1
        }
        #expect(end == .reset)
    }

    @Test("a reader that stops reading stops the sender: buffering is bounded", arguments: [false, true])
    func backpressure(withLatency: Bool) async throws {
        let fixture = try await ProxyFixture(.stall)
        defer { Task { await fixture.close() } }
        if withLatency { try await fixture.addToxic("latency", stream: "upstream", ["latency": 10_000]) }
        let port = fixture.proxyPort
        let socket = try await blocking { try TestSocket(port: port, timeout: 1) }
        defer { socket.close() }
        let limit = 256 << 20
        let sent = try await blocking { socket.sendUntilBlocked(limit: limit) }
        // Kernel socket buffers on loopback take a few MiB each; the proxy adds at most its write
        // buffer (1 MiB) and what toxics may hold (8 MiB).
        #expect(sent < 64 << 20, "\(sent >> 20) MiB went out before the sender blocked")
        #expect(sent > 0)
    }
}
