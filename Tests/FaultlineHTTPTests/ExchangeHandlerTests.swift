import FaultlineKit
import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import FaultlineHTTP

/// The exchange handler alone, on an `EmbeddedChannel`: what a request meets on a connection that
/// ended before it was sent. A TLS handshake cut short can end the connection before the connect's
/// own callbacks run (the official CI saw it), so the first request is the one that must say why.
@Suite("An exchange on a connection that ended before its request")
struct ExchangeHandlerTests {
    enum Ending: CaseIterable {
        case reset, close
    }

    /// The failure the first request gets after the connection ended as `ending`.
    static func firstRequest(tls: Bool, after ending: Ending) throws -> HTTPFailure {
        let handler = ExchangeHandler(peer: "127.0.0.1:8443", tls: tls)
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8443)).wait()
        switch ending {
        case .reset: channel.pipeline.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "read"))
        case .close: try channel.close().wait()
        }
        let request = PreparedRequest(
            method: .GET, target: try HTTPTarget(parsing: "\(tls ? "https" : "http")://127.0.0.1:8443/ok"), headers: [], body: nil)
        var outcome: Result<ExchangeResult, HTTPFailure>?
        handler.send(request, options: ExchangeOptions(collectBody: true, readTimeout: .seconds(5), ownTimer: false)) { outcome = $0 }
        _ = try? channel.finish()
        guard case .failure(let failure)? = outcome else {
            Issue.record("the request did not fail at once: \(String(describing: outcome))")
            throw CancellationError()
        }
        return failure
    }

    @Test("before the TLS handshake completed, the request fails as TLS, naming the handshake", arguments: Ending.allCases)
    func beforeHandshake(_ ending: Ending) throws {
        let failure = try Self.firstRequest(tls: true, after: ending)
        #expect(failure.kind == .tls, "\(failure)")
        #expect(failure.detail.hasPrefix("TLS handshake with 127.0.0.1:8443 did not complete"), "\(failure.detail)")
    }

    @Test("on plain HTTP the same endings are a reset or a closed connection", arguments: Ending.allCases)
    func plain(_ ending: Ending) throws {
        let failure = try Self.firstRequest(tls: false, after: ending)
        #expect(failure.kind == .reset, "\(failure)")
    }
}
