#if canImport(Glibc)
    import Glibc
#endif
import FaultlineKit
import FaultlineTestSupport
import FaultlineTesting
import FaultlineToxiproxy
import Foundation
import Testing

/// The package's root directory.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// `faultline proxy` on an ephemeral port, standing in for a Toxiproxy server.
final class ToxiproxyStandIn: Sendable {
    let child: TestProcess
    let scratch: ScratchDirectory
    let address: ToxiproxyAddress

    /// The API token the server requires, if any.
    let token: String?

    /// - Parameter token: started with `TOXIPROXY_AUTH_TOKEN` set to it.
    init(token: String? = nil) async throws {
        scratch = try ScratchDirectory()
        self.token = token
        child = try TestProcess.faultline(
            ["proxy", "--port", "0", "--seed", "7"], in: scratch, environment: token.map { ["TOXIPROXY_AUTH_TOKEN": $0] } ?? [:])
        let child = child
        // The first line of standard output names the API address.
        let started = await eventually { child.stdout.contains("\n") || !child.isRunning }
        let banner = child.stdout.split(separator: "\n").first.map(String.init) ?? ""
        guard started, let range = banner.range(of: #"http://[0-9.]+:[0-9]+"#, options: .regularExpression) else {
            await child.stop()
            throw TestFailure("faultline proxy did not start: \(banner) \(child.stderr)")
        }
        address = try ToxiproxyAddress(parsing: String(banner[range]))
    }

    var url: String { address.url }

    /// A client (with the server's token); shut it down when done. Its timeouts only bound a
    /// hang: generous, since on a loaded machine the test process's event loop may wait seconds
    /// for a core (CI once saw a loopback connect miss a 2 s limit).
    func client() -> ToxiproxyClient { client(token: token) }

    func client(token: String?) -> ToxiproxyClient {
        ToxiproxyClient(address: address, timeouts: .init(connect: .seconds(10), request: .seconds(30)), token: token)
    }

    /// Stops the server with SIGTERM and waits for it.
    func stop() async -> Int32 {
        child.signal(SIGTERM)
        return await child.wait(timeout: .seconds(30))
    }
}

extension ToxiproxyStandIn: TestResource {
    func close() async { _ = await stop() }
}

extension ToxiproxyClient: TestResource {
    public func close() async { await shutdown() }
}

/// Runs `body` with a stand-in server and a client for it, stopping both afterwards.
func withStandIn<T>(token: String? = nil, _ body: (ToxiproxyStandIn, ToxiproxyClient) async throws -> T) async throws -> T {
    try await closing(try await ToxiproxyStandIn(token: token)) { server in
        try await closing(server.client()) { client in try await body(server, client) }
    }
}

extension ToxiproxyBackend: TestResource {
    /// Shuts the backend down (undoing the run's work) also when the test throws first: its
    /// HTTP client must not be released while still running.
    public func close() async { await shutdown() }
}
