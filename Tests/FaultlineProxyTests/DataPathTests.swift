import FaultlineKit
import FaultlineNetwork
@testable import FaultlineProxy
import FaultlineTestSupport
import Foundation
import Testing

@Suite("Proxy data path over loopback")
struct DataPathTests {
    @Test("a small echo round trip passes unchanged", arguments: DataPath.allCases)
    func echo(path: DataPath) async throws {
        try await withProxyFixture(path: path) { fixture in
            let socket = try await fixture.connect()
            defer { socket.close() }
            let (bytes, end) = try await blocking {
                try socket.send("hello")
                return socket.receive(count: 5)
            }
            #expect(String(decoding: bytes, as: UTF8.self) == "hello")
            #expect(end == nil)
        }
    }

    @Test("a large random payload arrives byte-exact both ways", arguments: [(DataPath.relay, false), (.nio, false), (.nio, true)])
    func largePayload(path: DataPath, sliced: Bool) async throws {
        try await withProxyFixture(path: path) { fixture in
            if sliced {
                try await fixture.addToxic("slicer", stream: "upstream", ["average_size": 1500, "size_variation": 1000, "delay": 0])
                try await fixture.addToxic("slicer", stream: "downstream", ["average_size": 700, "size_variation": 300, "delay": 0])
            }
            let payload = try await blocking { randomBytes(sliced ? 4 << 20 : 32 << 20) }
            let socket = try await fixture.connect()
            defer { socket.close() }
            async let writer: Void = blocking {
                try socket.send(payload)
                socket.shutdownWrite()
            }
            let (count, sum, end) = try await blocking {
                let (received, end) = socket.receiveAll()
                return (received.count, checksum(received), end)
            }
            try await writer
            #expect(end == .eof)
            #expect(count == payload.count)
            #expect(sum == (try await blocking { checksum(payload) }))
        }
    }

    @Test("a client that half-closes still receives the reply", arguments: DataPath.allCases)
    func halfClose(path: DataPath) async throws {
        try await withProxyFixture(.replyAfterEnd, path: path) { fixture in
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
    }

    @Test("an upstream that refuses closes the client cleanly", arguments: DataPath.allCases)
    func refusedUpstream(path: DataPath) async throws {
        try await withProxyFixture(path: path) { fixture in
            let dead = try await TestTCPServer(.echo, group: fixture.group)
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
    }

    @Test("a client that connects and closes at once through a host-name upstream leaves no connection open", arguments: DataPath.allCases)
    func closeAtOnceThroughHostName(path: DataPath) async throws {
        try await withProxyFixture(path: path) { fixture in
            // A host name is dialled after the accept; the client's FIN can arrive before the dial ends.
            let proxy = try await fixture.server.createProxy(
                name: "named", listen: "127.0.0.1:\(try FreePort.take())", upstream: "localhost:\(fixture.upstream.port)")
            let port = try #require(proxy.listenPort)
            try await blocking {
                for _ in 0..<20 { try TestSocket(port: port).close() }
            }
            #expect(try await fixture.waitForNoConnections("named") == 0)
        }
    }

    @Test("bytes sent and half-closed at once reach a host-name upstream, and its reply comes back", arguments: DataPath.allCases)
    func sendAndCloseThroughHostName(path: DataPath) async throws {
        try await withProxyFixture(.replyAfterEnd, path: path) { fixture in
            let proxy = try await fixture.server.createProxy(
                name: "named", listen: "127.0.0.1:\(try FreePort.take())", upstream: "localhost:\(fixture.upstream.port)")
            let port = try #require(proxy.listenPort)
            for _ in 0..<5 {
                let (bytes, end) = try await blocking {
                    let socket = try TestSocket(port: port)
                    defer { socket.close() }
                    try socket.send("hello")
                    socket.shutdownWrite()
                    return socket.receiveAll()
                }
                #expect(String(decoding: bytes, as: UTF8.self) == "hello")
                #expect(end == .eof)
            }
            #expect(try await fixture.waitForNoConnections("named") == 0)
        }
    }

    @Test("a reset from the upstream reaches the client as a reset", arguments: DataPath.allCases)
    func resetPropagates(path: DataPath) async throws {
        try await withProxyFixture(.resetOnData, path: path) { fixture in
            let socket = try await fixture.connect()
            defer { socket.close() }
            let end = try await blocking {
                try socket.send("poke")
                return socket.receiveAll().1
            }
            #expect(end == .reset)
        }
    }

    @Test("a reader that stops reading stops the sender: buffering is bounded", arguments: [(DataPath.relay, false), (.nio, false), (.nio, true)])
    func backpressure(path: DataPath, withLatency: Bool) async throws {
        try await withProxyFixture(.stall, path: path) { fixture in
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

    @Test("toxics added in the middle of a transfer take the connection off the relay without losing or reordering a byte")
    func handoverMidTransfer() async throws {
        try await withProxyFixture { fixture in
            let payload = try await blocking { randomBytes(16 << 20) }
            let socket = try await fixture.connect()
            defer { socket.close() }
            // The client half-closes only at the end: a connection one side of which has ended its
            // stream finishes on the relay.
            async let writer: Void = blocking { try socket.send(payload) }
            // The client does not read yet, so the echo backs up to the relay, which then holds bytes
            // it read and could not write: the state a handover must carry over.
            let runtime = try #require(fixture.server.runtime(of: "test"))
            let downstream = runtime.metrics.downstream
            let held = await eventually { downstream.received.load(ordering: .relaxed) > downstream.sent.load(ordering: .relaxed) }
            #expect(held, "the relay never held bytes")
            #expect(runtime.relayedConnections == 1)
            try await fixture.addToxic("slicer", stream: "upstream", ["average_size": 4096, "size_variation": 1000, "delay": 0])
            #expect(runtime.relayedConnections == 0, "the connection runs with the toxic once addToxic returns")
            try await fixture.addToxic("latency", stream: "downstream", ["latency": 1])
            async let reader = blocking {
                let (received, end) = socket.receiveAll()
                return (received.count, checksum(received), end)
            }
            try await writer
            socket.shutdownWrite()
            let (count, sum, end) = try await reader
            #expect(downstream.sent.load(ordering: .relaxed) == UInt64(payload.count))
            #expect(end == .eof)
            #expect(count == payload.count)
            #expect(sum == (try await blocking { checksum(payload) }))
        }
    }
}
