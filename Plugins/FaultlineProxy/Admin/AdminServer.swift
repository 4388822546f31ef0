import FaultlineKit
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Serves ``AdminAPI`` over HTTP/1.1 (keep-alive, pipelining, `Expect: 100-continue`) on
/// SwiftNIO, reading requests with ``AdminHTTPParser`` and judging each head with ``AdminAccess``
/// before it is routed.
///
/// A stranger cannot hold the API's connections: a request must arrive whole within
/// ``Configuration/requestTimeout`` (15 s, as Toxiproxy's read timeout), a keep-alive connection
/// may wait ``Configuration/idleTimeout`` (60 s) for its next request, an answer must be taken
/// within ``Configuration/writeTimeout`` (30 s), heads and bodies are bounded, and at most
/// ``Configuration/maximumConnections`` are open at once (the proxies share the process's
/// descriptors).
public final class AdminServer: Sendable {
    private let channel: any Channel
    /// The bound address, `127.0.0.1:8474`.
    public let address: String
    public var port: Int { channel.localAddress?.port ?? 0 }

    /// How the server reads requests and whom it answers.
    public struct Configuration: Sendable {
        public var access: AdminAccess
        public var limits: AdminHTTPParser.Limits
        /// For a whole request, from its first byte (or from the connection's start).
        public var requestTimeout: TimeAmount
        /// Between requests on a keep-alive connection.
        public var idleTimeout: TimeAmount
        /// For an answer to be taken by the client.
        public var writeTimeout: TimeAmount
        public var maximumConnections: Int

        public init(
            access: AdminAccess = AdminAccess(), limits: AdminHTTPParser.Limits = .init(), requestTimeout: TimeAmount = .seconds(15),
            idleTimeout: TimeAmount = .seconds(60), writeTimeout: TimeAmount = .seconds(30), maximumConnections: Int = 256
        ) {
            self.access = access
            self.limits = limits
            self.requestTimeout = requestTimeout
            self.idleTimeout = idleTimeout
            self.writeTimeout = writeTimeout
            self.maximumConnections = maximumConnections
        }
    }

    private init(channel: any Channel) {
        self.channel = channel
        address = channel.localAddress.map { HostPort($0).description } ?? "?"
    }

    /// Binds the admin API.
    /// - Parameters:
    ///   - host: where to listen; loopback unless told otherwise.
    ///   - port: 0 picks a free port.
    public static func start(
        api: AdminAPI, host: String = "127.0.0.1", port: Int = 8474, group: any EventLoopGroup, configuration: Configuration = Configuration()
    ) async throws -> AdminServer {
        let open = ConnectionCount()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { channel in
                guard open.enter(limit: configuration.maximumConnections) else {
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.leave() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AdminConnection(api: api, configuration: configuration))
                }
            }
            .bind(host: host, port: port).get()
        return AdminServer(channel: channel)
    }

    /// Whether `host` (a name or an address to listen on) is this machine's loopback, where only
    /// local processes reach the API.
    public static func isLoopback(host: String) -> Bool {
        if host == "localhost" { return true }
        guard let address = try? SocketAddress.makeAddressResolvingHost(host, port: 0), let ip = address.ipAddress.flatMap(IPAddress.init) else {
            return false
        }
        return ip.isLoopback
    }

    /// Stops listening (open keep-alive connections finish their current request).
    public func stop() async {
        try? await channel.close()
    }
}

/// Open connections, against the limit.
private final class ConnectionCount: Sendable {
    private let count = Atomic<Int>(0)

    func enter(limit: Int) -> Bool {
        if count.add(1, ordering: .relaxed).newValue > limit {
            count.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func leave() { count.subtract(1, ordering: .relaxed) }
}

/// One admin connection: reads a request, answers it (off the event loop), then reads the next.
/// Reading stops while a request is handled, so a client that sends without reading answers
/// holds at most one request and one answer here.
final class AdminConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let api: AdminAPI
    private let configuration: Configuration
    private var buffer = ByteBuffer()
    /// Parse again once this many bytes are buffered.
    private var minimumBytes = 1
    private var handling = false
    private var closing = false
    /// The current request's head passed the access check / got its `100 Continue`.
    private var headChecked = false
    /// While a head or a chunked body is incomplete: how much of the buffer was searched, and the
    /// size past which it is parsed anyway. Both end with LF (CR) LF, so only new bytes are
    /// searched for that before the request is parsed again from its start: parsing on every read
    /// made a head sent a byte at a time (before any token check), or a body of tiny chunks, cost
    /// time quadratic in its length. A head is parsed again past its limit (431), a chunked body
    /// once the buffer doubled (413 in time).
    private var waitingForEnd: (scanned: Int, parseBeyond: Int)?
    private var continueSent = false
    private var timer: Scheduled<Void>?
    private var waitingIdle = false
    /// The last answer is written: what arrives is discarded until the client closes.
    private var draining = false

    typealias Configuration = AdminServer.Configuration

    init(api: AdminAPI, configuration: Configuration) {
        self.api = api
        self.configuration = configuration
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, after: configuration.requestTimeout, idle: false)
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !closing, !draining else { return }
        if waitingIdle && bytes.readableBytes > 0 {
            // The next request started: it has the request timeout from its first byte.
            arm(context, after: configuration.requestTimeout, idle: false)
        }
        buffer.writeBuffer(&bytes)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if draining && !closing {
            context.read()
            return
        }
        guard !closing, !handling else { return }
        process(context)
        if !closing && !handling { context.read() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close(context)
    }

    /// Parses what is buffered: answers a complete request, or checks a head whose body is still
    /// coming, or waits for more.
    private func process(_ context: ChannelHandlerContext) {
        while !closing, !handling, buffer.readableBytes >= minimumBytes {
            if let waiting = waitingForEnd {
                let view = buffer.readableBytesView
                let scanFrom = view.startIndex + max(0, waiting.scanned - 2)
                guard view.count > waiting.parseBeyond || Self.mayEndHead(view[scanFrom...]) else {
                    waitingForEnd = (view.count, waiting.parseBeyond)
                    return
                }
                waitingForEnd = nil
            }
            switch AdminHTTPParser.parse(buffer.readableBytesView, limits: configuration.limits) {
            case .incomplete(let minimum):
                minimumBytes = minimum
                waitingForEnd = (buffer.readableBytes, configuration.limits.headBytes)
                return
            case .head(let request, let minimum):
                minimumBytes = minimum
                // A body with a Transfer-Encoding is chunked (the parser refuses any other).
                if !request.headers(named: "Transfer-Encoding").isEmpty {
                    waitingForEnd = (buffer.readableBytes, 2 * buffer.readableBytes)
                }
                if !headChecked {
                    headChecked = true
                    if let refusal = configuration.access.refusal(of: request) {
                        respond(context, refusal, to: request, keepAlive: false)
                        return
                    }
                }
                if request.expectsContinue && !continueSent {
                    continueSent = true
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
                }
                return
            case .failure(let error):
                respondAndClose(context, error)
                return
            case .complete(let request, let consumed):
                buffer.moveReaderIndex(forwardBy: consumed)
                buffer.discardReadBytes()
                minimumBytes = 1
                let checked = headChecked
                headChecked = false
                continueSent = false
                handle(context, request, checked: checked)
            }
        }
    }

    /// Whether `bytes` hold LF LF or LF CR LF, the end of a head or of a chunked body.
    private static func mayEndHead(_ bytes: ByteBufferView.SubSequence) -> Bool {
        var index = bytes.startIndex
        while let newline = bytes[index...].firstIndex(of: 10) {
            let next = newline + 1
            if next < bytes.endIndex && (bytes[next] == 10 || (bytes[next] == 13 && next + 1 < bytes.endIndex && bytes[next + 1] == 10)) {
                return true
            }
            index = next
            if index >= bytes.endIndex { return false }
        }
        return false
    }

    private func handle(_ context: ChannelHandlerContext, _ request: AdminHTTPRequest, checked: Bool) {
        timer?.cancel()
        timer = nil
        if !checked, let refusal = configuration.access.refusal(of: request) {
            // A refused host or origin is not a client to keep talking to; a missing token may be.
            respond(context, refusal, to: request, keepAlive: refusal.status == 401 && request.keepAlive)
            return
        }
        handling = true
        let api = self.api
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let apiRequest = AdminAPI.Request(method: request.method, target: request.target, userAgent: request.header("User-Agent"), body: request.body)
        Task {
            let response = await api.handle(apiRequest)
            eventLoop.execute {
                let (connection, context) = bound.value
                connection.respond(context, response, to: request, keepAlive: request.keepAlive)
            }
        }
    }

    /// Writes an answer; then reads the next request, or closes.
    private func respond(_ context: ChannelHandlerContext, _ response: AdminAPI.Response, to request: AdminHTTPRequest, keepAlive: Bool) {
        guard !closing, context.channel.isActive else { return }
        handling = true
        let bytes = Self.serialize(response, omitBody: request.method == "HEAD", close: !keepAlive)
        arm(context, after: configuration.writeTimeout, idle: false)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(bytes)).whenComplete { result in
            let (connection, context) = bound.value
            connection.handling = false
            guard case .success = result else {
                connection.close(context)
                return
            }
            guard keepAlive else {
                connection.drainAndClose(context)
                return
            }
            connection.arm(
                context, after: connection.buffer.readableBytes > 0 ? connection.configuration.requestTimeout : connection.configuration.idleTimeout,
                idle: connection.buffer.readableBytes == 0)
            // A pipelined request may be waiting already.
            connection.process(context)
            if !connection.closing && !connection.handling { context.read() }
        }
    }

    private func respondAndClose(_ context: ChannelHandlerContext, _ error: AdminHTTPError) {
        // As Go's server answers a request it cannot read: plain text, then close.
        let status = HTTPResponseStatus(statusCode: error.status)
        let text = "\(error.status) \(status.reasonPhrase): \(error.reason)"
        let response = AdminAPI.Response(
            status: error.status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(text.utf8))
        handling = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(Self.serialize(response, omitBody: false, close: true))).whenComplete { result in
            let (connection, context) = bound.value
            if case .success = result { connection.drainAndClose(context) } else { connection.close(context) }
        }
    }

    /// After a last answer: half-closes, then reads and discards what the client still sends until
    /// it closes too (for at most a second), as Go's server does. Closing with unread bytes would
    /// reset the connection, and the client could lose the answer.
    private func drainAndClose(_ context: ChannelHandlerContext) {
        guard !closing else { return }
        draining = true
        buffer = ByteBuffer()
        arm(context, after: .seconds(1), idle: false)
        context.close(mode: .output, promise: nil)
        context.read()
    }

    /// Closes the connection when `timeout` passes before it is re-armed or cancelled.
    private func arm(_ context: ChannelHandlerContext, after timeout: TimeAmount, idle: Bool) {
        timer?.cancel()
        waitingIdle = idle
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (connection, context) = bound.value
            connection.timer = nil
            connection.close(context)
        }
    }

    private func close(_ context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        timer?.cancel()
        timer = nil
        buffer = ByteBuffer()
        context.close(promise: nil)
    }

    /// An HTTP/1.1 response. 1xx, 204 and 304 answers carry no body and no length.
    static func serialize(_ response: AdminAPI.Response, omitBody: Bool, close: Bool) -> ByteBuffer {
        let status = HTTPResponseStatus(statusCode: response.status)
        var head = "HTTP/1.1 \(response.status) \(status.reasonPhrase)\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "Date: \(HTTPDate.now())\r\n"
        let bodiless = response.status < 200 || response.status == 204 || response.status == 304
        if !bodiless { head += "Content-Length: \(response.body.count)\r\n" }
        if close { head += "Connection: close\r\n" }
        head += "\r\n"
        var bytes = ByteBuffer()
        bytes.reserveCapacity(head.utf8.count + response.body.count)
        bytes.writeString(head)
        if !bodiless && !omitBody { bytes.writeBytes(response.body) }
        return bytes
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
