import FaultlineKit
import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves ``AdminAPI`` over HTTP/1.1 (keep-alive, pipelining) on SwiftNIO.
public final class AdminServer: Sendable {
    private let channel: any Channel
    /// The bound address, `127.0.0.1:8474`.
    public let address: String
    public var port: Int { channel.localAddress?.port ?? 0 }

    /// The largest request body accepted.
    static let maximumBody = 1 << 20

    private init(channel: any Channel) {
        self.channel = channel
        address = channel.localAddress.map { HostPort($0).description } ?? "?"
    }

    /// Binds the admin API.
    /// - Parameters:
    ///   - host: where to listen; loopback unless told otherwise.
    ///   - port: 0 picks a free port.
    public static func start(api: AdminAPI, host: String = "127.0.0.1", port: Int = 8474, group: any EventLoopGroup) async throws -> AdminServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(api: api))
                }
            }
            .bind(host: host, port: port).get()
        return AdminServer(channel: channel)
    }

    /// Stops listening (open keep-alive connections finish their current request).
    public func stop() async {
        try? await channel.close()
    }
}

/// Collects one request, hands it to the API off the event loop, writes the response.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let api: AdminAPI
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(api: AdminAPI) { self.api = api }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            tooLarge = false
        case .body(let buffer):
            if body.count + buffer.readableBytes > AdminServer.maximumBody {
                tooLarge = true
            } else {
                body += buffer.readableBytesView
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let keepAlive = head.isKeepAlive
            if tooLarge {
                respond(context, AdminAPI.Response(status: 413, headers: [], body: []), version: head.version, keepAlive: false)
                return
            }
            let request = AdminAPI.Request(
                method: head.method.rawValue, target: head.uri, userAgent: head.headers.first(name: "User-Agent"), body: body)
            body = []
            let api = self.api
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            Task {
                let response = await api.handle(request)
                eventLoop.execute {
                    let (handler, context) = bound.value
                    handler.respond(context, response, version: head.version, keepAlive: keepAlive)
                }
            }
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ response: AdminAPI.Response, version: HTTPVersion, keepAlive: Bool) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders(response.headers)
        headers.add(name: "Date", value: HTTPDate.now())
        headers.add(name: "Content-Length", value: String(response.body.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

/// RFC 7231 dates for the `Date` header.
enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func now() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
