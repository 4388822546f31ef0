#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import FaultlineKit
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Serves a run's ``RunMetrics`` for Prometheus: `GET /metrics` answers the text exposition
/// (`text/plain; version=0.0.4`), read as the run stands at that moment.
public final class MetricsServer: Sendable {
    private let channel: any Channel
    private let connections: Connections
    /// The address it listens on, the port resolved (`127.0.0.1:9464`).
    public let address: HostPort

    private init(channel: any Channel, connections: Connections, address: HostPort) {
        self.channel = channel
        self.connections = connections
        self.address = address
    }

    /// The URL to scrape, e.g. `http://127.0.0.1:9464/metrics`.
    public var url: String {
        let host = address.isEveryAddress ? "127.0.0.1" : address.urlHost
        return "http://\(host):\(address.port)/metrics"
    }

    /// Binds the endpoint.
    /// - Parameters:
    ///   - address: where to listen (no host: every interface; port 0: any free port).
    /// - Throws: ``MetricsServerError`` naming the address, and saying when it is in use.
    public static func start(
        _ metrics: RunMetrics, on address: HostPort, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(MetricsServerError) -> MetricsServer {
        let connections = Connections()
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    connections.track(channel)
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(MetricsHandler(metrics: metrics))
                    }
                }
                .bind(host: address.host.isEmpty ? "0.0.0.0" : address.host, port: address.port).get()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw MetricsServerError(address: address, reason: .inUse)
        } catch {
            throw MetricsServerError(address: address, reason: .other("\(error)"))
        }
        let bound = HostPort(host: address.host, port: channel.localAddress?.port ?? address.port)
        return MetricsServer(channel: channel, connections: connections, address: bound)
    }

    /// Stops listening and closes the connections of scrapers; idempotent.
    public func stop() async {
        try? await channel.close()
        await connections.closeAll()
    }
}

/// Why the metrics endpoint could not listen.
public struct MetricsServerError: Error, Sendable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// Another process listens there.
        case inUse
        case other(String)
    }

    public var address: HostPort
    public var reason: Reason

    public var description: String {
        switch reason {
        case .inUse:
            "cannot serve metrics on \(address): the address is in use (another process listens there); "
                + "choose another port with --metrics-listen, or \(address.urlHost.isEmpty ? "" : address.urlHost):0 for any free one"
        case .other(let message): "cannot serve metrics on \(address): \(message)"
        }
    }
}

/// The connections a server accepted, to close them when it stops.
private final class Connections: Sendable {
    private let open = Mutex<[ObjectIdentifier: any Channel]>([:])

    func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        open.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in _ = open.withLock { $0.removeValue(forKey: id) } }
    }

    func closeAll() async {
        for channel in open.withLock({ Array($0.values) }) { try? await channel.close() }
    }
}

/// Answers one connection's requests in order: `/metrics`, and a pointer to it at `/`.
private final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: RunMetrics
    private var head: HTTPRequestHead?

    init(metrics: RunMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let keepAlive = head.isKeepAlive
        guard head.method == .GET || head.method == .HEAD else {
            send(context, .methodNotAllowed, "only GET\n", extra: [("Allow", "GET, HEAD")], keepAlive: keepAlive, head: false)
            return
        }
        let isHead = head.method == .HEAD
        switch path {
        case "/metrics":
            let metrics = self.metrics
            let loop = context.eventLoop
            loop.makeFutureWithTask { await metrics.exposition() }.assumeIsolated().whenSuccess { text in
                self.send(context, .ok, text, type: Exposition.contentType, keepAlive: keepAlive, head: isHead)
            }
        case "/":
            send(context, .ok, "Faultline run metrics: GET /metrics\n", keepAlive: keepAlive, head: isHead)
        default:
            send(context, .notFound, "no such page: the metrics are at /metrics\n", keepAlive: keepAlive, head: isHead)
        }
    }

    private func send(
        _ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ text: String, type: String = "text/plain; charset=utf-8",
        extra: [(String, String)] = [], keepAlive: Bool, head isHead: Bool
    ) {
        var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", String(text.utf8.count))] + extra)
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !isHead { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
