@testable import FaultlineDemo
import FaultlineTestSupport
import NIOPosix
import Testing

@Suite("Demo servers stop cleanly")
struct ServerStopTests {
    /// Stopping used to cancel the accept loop, which dropped the connections still buffered in its
    /// stream; a connection dropped that way traps the process (NIOAsyncWriter's "Deinited without
    /// calling finish()"). Now every accepted connection is handed over and closed.
    @Test("stopping a server just after clients connected closes every connection it accepted, and nothing traps")
    func stopWithFreshConnections() async throws {
        for _ in 0..<5 {
            let server = try await HTTPServer.bind(name: "stop", host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton) { _ in
                HTTPResponse(status: .noContent)
            }
            let running = Task { try await server.run() }
            // Sockets block: off the cooperative pool, which the servers under test run on.
            let port = server.port
            let sockets = try await blocking { try (0..<64).map { _ in try TestSocket(port: port) } }
            defer { for socket in sockets { socket.close() } }
            running.cancel()
            try await running.value
            // Accepted ones are closed by the server; ones still in the kernel's backlog are reset
            // when the listener closes. A timeout would be a connection left open.
            let ends = try await blocking { sockets.map { $0.receiveAll().1 } }
            #expect(ends.allSatisfy { $0 == .eof || $0 == .reset }, "\(ends)")
        }
    }
}
