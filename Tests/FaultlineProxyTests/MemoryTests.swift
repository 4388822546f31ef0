import FaultlineKit
import FaultlineTestSupport
import Foundation
import NIOPosix
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A process's resident memory, from /proc/PID/status.
func residentBytes(of pid: Int32) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return (line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
}

@Suite("Proxy memory")
struct MemoryTests {
    /// Memory only: the bounds hold on any machine, however loaded; only the waits depend on time,
    /// and they end as soon as the memory is where it should be.
    @Test(
        "memory that connections held under a toxic goes back to the system once they are gone",
        .enabled(if: FileManager.default.fileExists(atPath: "/proc/self/status"), "reads the proxy's memory from /proc"))
    func memoryComesBack() async throws {
        let server = try await FaultlineProxyProcess()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let upstream = try await TestTCPServer(.stall, group: group)
        let pid = server.pid
        let port = server.port
        do {
            let idle = residentBytes(of: pid)
            var peak = idle
            var after = idle
            // Twice: memory freed by the first round's connections is what a careless allocator
            // keeps for the second (glibc then serves large blocks from its heaps).
            for round in 1...2 {
                let created = try await http(
                    "POST", port, "/proxies", body: #"{"name":"mem","listen":"127.0.0.1:0","upstream":"127.0.0.1:\#(upstream.port)"}"#)
                let listen = try #require(created.json?["listen"]?.stringValue?.split(separator: ":").last.flatMap { Int($0) })
                // A minute of latency: each connection's link holds what it reads (up to its 8 MiB
                // limit), and the proxy then stops reading it.
                let toxic = try await http(
                    "POST", port, "/proxies/mem/toxics", body: #"{"type":"latency","stream":"upstream","attributes":{"latency":60000}}"#)
                #expect(toxic.status == 200)
                let clients = try await withThrowingTaskGroup(of: TestSocket.self) { tasks in
                    for _ in 0..<24 {
                        tasks.addTask {
                            try await blocking {
                                let socket = try TestSocket(port: listen, timeout: 2)
                                _ = socket.sendUntilBlocked(limit: 16 << 20)
                                return socket
                            }
                        }
                    }
                    return try await tasks.reduce(into: []) { $0.append($1) }
                }
                var held = 0
                for _ in 0..<600 {
                    held = max(held, residentBytes(of: pid))
                    if held >= idle + (128 << 20) { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                // The test measures something only if the connections made the proxy grow.
                try #require(held >= idle + (128 << 20), "round \(round): the proxy grew from \(idle >> 20) MiB to only \(held >> 20) MiB")
                peak = max(peak, held)

                for client in clients { client.reset() }
                #expect(try await http("DELETE", port, "/proxies/mem").status == 204)
                after = residentBytes(of: pid)
                for _ in 0..<600 where after > 2 * idle {
                    try await Task.sleep(for: .milliseconds(50))
                    after = residentBytes(of: pid)
                }
            }
            #expect(after <= 2 * idle, "idle \(idle >> 20) MiB, peak \(peak >> 20) MiB, after \(after >> 20) MiB")
        } catch {
            _ = await server.stop()
            await upstream.close()
            try await group.shutdownGracefully()
            throw error
        }
        #expect(await server.stop() == 0)
        await upstream.close()
        try await group.shutdownGracefully()
    }
}
