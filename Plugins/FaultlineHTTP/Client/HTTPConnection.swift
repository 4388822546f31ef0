import FaultlineKit
import NIOCore
import Synchronization
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A request built once and sent as often as needed: a load sends the same head and body bytes.
struct PreparedRequest: Sendable {
    var method: HTTPMethod
    var target: HTTPTarget
    var head: HTTPRequestHead
    var body: ByteBuffer?

    /// Builds the head: `Host`, `Content-Length` and a `User-Agent` unless given.
    init(method: HTTPMethod, target: HTTPTarget, headers: [(String, String)], body: ByteBuffer?) {
        self.method = method
        self.target = target
        self.body = body
        var fields = HTTPHeaders()
        let given = Set(headers.map { $0.0.lowercased() })
        if !given.contains("host") { fields.add(name: "Host", value: target.hostHeader) }
        if !given.contains("user-agent") { fields.add(name: "User-Agent", value: PreparedRequest.userAgent) }
        if !given.contains("accept") { fields.add(name: "Accept", value: "*/*") }
        for (name, value) in headers { fields.add(name: name, value: value) }
        if let body, !given.contains("content-length"), !given.contains("transfer-encoding") {
            fields.add(name: "Content-Length", value: String(body.readableBytes))
        } else if body == nil, [.POST, .PUT, .PATCH].contains(method), !given.contains("content-length") {
            fields.add(name: "Content-Length", value: "0")
        }
        head = HTTPRequestHead(version: .http1_1, method: method, uri: target.pathAndQuery, headers: fields)
        var bytes = ByteBuffer()
        bytes.writeString("\(method.rawValue) \(target.pathAndQuery) HTTP/1.1\r\n")
        for (name, value) in fields { bytes.writeString("\(name): \(value)\r\n") }
        bytes.writeString("\r\n")
        if var body { bytes.writeBuffer(&body) }
        encoded = bytes
    }

    /// The whole request as it goes on the wire, encoded once.
    var encoded: ByteBuffer

    /// The same request sent elsewhere (a redirect).
    func redirected(to target: HTTPTarget, method: HTTPMethod, keepBody: Bool) -> PreparedRequest {
        var headers: [(String, String)] = []
        for (name, value) in head.headers {
            let lower = name.lowercased()
            if lower == "host" || lower == "content-length" { continue }
            if !keepBody, lower == "content-type" || lower == "transfer-encoding" { continue }
            // Credentials go only to the host they were written for, as `requests` does.
            if lower == "authorization" || lower == "cookie", target.authority != self.target.authority { continue }
            headers.append((name, value))
        }
        return PreparedRequest(method: method, target: target, headers: headers, body: keepBody ? body : nil)
    }

    static let userAgent = "faultline/\(Engine.version)"

}

/// What came back from one exchange.
struct ExchangeResult: Sendable {
    var head: HTTPResponseHead
    /// The body, when the exchange collected it.
    var body: ByteBuffer?
    /// Whether the body was longer than the limit and cut.
    var truncated: Bool
    var bytesReceived: Int
    var bytesSent: Int

    var status: Int { Int(head.status.code) }
}

/// How one exchange treats the response.
struct ExchangeOptions: Sendable {
    /// Keep the body (the `http` provider); a load only counts its bytes.
    var collectBody: Bool
    /// The most body bytes kept; the rest is counted and dropped.
    var bodyLimit: Int = 16 << 20
    /// Time allowed without a byte of the response arriving.
    var readTimeout: TimeAmount
    /// Whether the exchange arms its own timer; a load's users are swept by their loop instead
    /// (``ExchangeHandler/checkTimeout(now:)``), which saves a scheduled task per request.
    var ownTimer = true
}

/// Writes requests as the bytes ``PreparedRequest`` encoded once. The response decoder still
/// sees each request head go by (it needs the method to frame the response of a HEAD).
final class RequestWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = ByteBuffer

    /// The bytes of the request whose head is written next.
    var pending: ByteBuffer?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head:
            guard let bytes = pending else {
                promise?.fail(HTTPFailure(.other, "a request was written without its bytes"))
                return
            }
            pending = nil
            context.write(wrapOutboundOut(bytes), promise: promise)
        case .body, .end:
            // Bodies are part of the encoded bytes.
            promise?.succeed()
        }
    }
}

/// Counts the bytes that cross the socket in each direction. It sits first in the pipeline, so
/// TLS records count as sent, as wrk and k6 count them.
final class WireCounter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private(set) var received = 0
    private(set) var sent = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        sent += unwrapOutboundIn(data).readableBytes
        context.write(data, promise: promise)
    }
}

/// Runs one request/response exchange at a time on a keep-alive HTTP/1.1 connection.
///
/// Confined to its channel's event loop: a load drives thousands of exchanges a second through
/// it without a thread hop, and the `http` provider reaches it through ``HTTPClientConnection``.
/// Every exchange ends exactly once — with a response, or with a classified ``HTTPFailure`` when
/// the peer closes, resets, stalls past the read timeout or breaks TLS.
final class ExchangeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    typealias Completion = (Result<ExchangeResult, HTTPFailure>) -> Void

    private struct InFlight {
        var completion: Completion
        var options: ExchangeOptions
        var lastActivity: NIODeadline
        var timer: Scheduled<Void>?
        var head: HTTPResponseHead?
        var body: ByteBuffer?
        var truncated = false
        var receivedAtStart: Int
        var sentAtStart: Int
    }

    private let counter: WireCounter
    private let writer: RequestWriter
    private let peer: String
    private var context: ChannelHandlerContext?
    private var inFlight: InFlight?
    /// False once the connection closed or the server asked to close it.
    private(set) var isReusable = true
    /// Why the connection closed, for a request sent after it did (a TLS handshake can fail
    /// between the connect and the first request).
    private var closeReason: HTTPFailure?
    /// Whether a response ever arrived on this connection (a stale keep-alive connection fails
    /// before one does, and a request on it may be retried).
    private(set) var exchanges = 0

    init(counter: WireCounter, writer: RequestWriter, peer: String) {
        self.counter = counter
        self.writer = writer
        self.peer = peer
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Whether an exchange is running.
    var isBusy: Bool { inFlight != nil }

    /// Sends a request; `completion` runs on the event loop when the exchange ends.
    func send(_ request: PreparedRequest, options: ExchangeOptions, completion: @escaping Completion) {
        precondition(inFlight == nil, "one exchange at a time")
        guard let context, isReusable else {
            completion(.failure(closeReason ?? HTTPFailure(.reset, "the connection to \(peer) is closed")))
            return
        }
        inFlight = InFlight(
            completion: completion, options: options, lastActivity: .now(), receivedAtStart: counter.received, sentAtStart: counter.sent)
        if options.ownTimer { armTimer(after: options.readTimeout) }
        writer.pending = request.encoded
        context.writeAndFlush(wrapOutboundOut(.head(request.head)), promise: nil)
    }

    /// Fails the exchange if the response stalled for its read timeout; called by a sweep.
    func checkTimeout(now: NIODeadline) {
        guard let flight = inFlight, now - flight.lastActivity >= flight.options.readTimeout else { return }
        fail(HTTPFailure(.readTimeout, "\(peer) sent nothing for \(Seconds.text(flight.options.readTimeout))"))
    }

    private func armTimer(after delay: TimeAmount) {
        guard let context else { return }
        inFlight?.timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            self?.timerFired()
        }
    }

    private func timerFired() {
        guard let flight = inFlight else { return }
        let idle = NIODeadline.now() - flight.lastActivity
        if idle >= flight.options.readTimeout {
            fail(HTTPFailure(.readTimeout, "\(peer) sent nothing for \(Seconds.text(flight.options.readTimeout))"))
        } else {
            armTimer(after: flight.options.readTimeout - idle)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard inFlight != nil else { return }  // Bytes nobody asked for: ignored.
        switch unwrapInboundIn(data) {
        case .head(let head):
            // 1xx responses precede the real one.
            guard head.status.code >= 200 else { return }
            inFlight!.head = head
            inFlight!.lastActivity = .now()
            if !head.isKeepAlive { isReusable = false }
        case .body(var part):
            inFlight!.lastActivity = .now()
            guard inFlight!.options.collectBody else { return }
            let room = inFlight!.options.bodyLimit - (inFlight!.body?.readableBytes ?? 0)
            if part.readableBytes > room {
                inFlight!.truncated = true
                part = part.getSlice(at: part.readerIndex, length: max(room, 0)) ?? part
            }
            if inFlight!.body == nil {
                inFlight!.body = part
            } else {
                inFlight!.body!.writeBuffer(&part)
            }
        case .end:
            guard let flight = inFlight, let head = flight.head else { return }
            inFlight = nil
            exchanges += 1
            flight.timer?.cancel()
            let result = ExchangeResult(
                head: head, body: flight.body, truncated: flight.truncated, bytesReceived: counter.received - flight.receivedAtStart,
                bytesSent: counter.sent - flight.sentAtStart)
            if !isReusable { context.close(promise: nil) }
            flight.completion(.success(result))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isReusable = false
        fail(HTTPFailure(.reset, "\(peer) closed the connection before the response was complete"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let failure = HTTPFailure.classify(error, target: peer)
        if closeReason == nil { closeReason = failure }
        fail(failure)
        context.close(promise: nil)
    }

    /// Ends the running exchange as abandoned (a stopped load) and closes the connection.
    func abandon() {
        fail(.abandonedExchange)
        context?.close(promise: nil)
    }

    private func fail(_ failure: HTTPFailure) {
        isReusable = false
        guard let flight = inFlight else { return }
        inFlight = nil
        flight.timer?.cancel()
        context?.close(promise: nil)
        flight.completion(.failure(failure))
    }
}

/// Opens connections with the pipeline every exchange needs.
enum HTTPConnector {
    /// Connects to `target` (at `address` when already resolved) on `loop`.
    ///
    /// The future completes on `loop`; read the handler there with ``handler(of:)``.
    static func connect(
        to target: HTTPTarget, address: SocketAddress?, tls: NIOSSLContext?, connectTimeout: TimeAmount, on loop: any EventLoop
    ) -> EventLoopFuture<any Channel> {
        let peer = target.authority
        let serverName = target.hostIsAddress ? nil : target.host
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    let counter = WireCounter()
                    try sync.addHandler(counter)
                    if let tls { try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName)) }
                    let writer = RequestWriter()
                    try sync.addHandler(writer)
                    try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try sync.addHandler(ExchangeHandler(counter: counter, writer: writer, peer: peer))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        if let address { return bootstrap.connect(to: address) }
        return bootstrap.connect(host: target.host, port: target.port)
    }

    /// The exchange handler of a channel made by ``connect(to:address:tls:connectTimeout:on:)``; call on its loop.
    static func handler(of channel: any Channel) -> ExchangeHandler? {
        try? channel.pipeline.syncOperations.handler(type: ExchangeHandler.self)
    }

    /// TLS contexts are costly to build (they load the trust roots): one per verification mode.
    static func tlsContext(verify: Bool) throws -> NIOSSLContext {
        try (verify ? verifyingContext : trustingContext).get()
    }

    private static let verifyingContext = Result { try NIOSSLContext(configuration: .makeClientConfiguration()) }
    private static let trustingContext = Result {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        return try NIOSSLContext(configuration: configuration)
    }
}

/// One connection for the `http` provider, used from async code.
final class HTTPClientConnection: Sendable {
    let channel: any Channel
    let target: HTTPTarget
    /// Held from the moment of connecting: once the channel closes, the pipeline no longer has it.
    private let handler: NIOLoopBound<ExchangeHandler>

    private init(channel: any Channel, handler: NIOLoopBound<ExchangeHandler>, target: HTTPTarget) {
        self.channel = channel
        self.handler = handler
        self.target = target
    }

    /// Opens a connection, failing with a classified ``HTTPFailure``.
    static func connect(to target: HTTPTarget, verifyTLS: Bool, connectTimeout: TimeAmount) async throws -> HTTPClientConnection {
        let tls: NIOSSLContext?
        do {
            tls = target.isTLS ? try HTTPConnector.tlsContext(verify: verifyTLS) : nil
        } catch {
            throw HTTPFailure(.tls, "cannot set up TLS: \(error)")
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let future = HTTPConnector.connect(to: target, address: nil, tls: tls, connectTimeout: connectTimeout, on: loop)
            .flatMapThrowing { channel in
                // Runs on the loop as the connect completes, before a TLS failure can empty the pipeline.
                guard let handler = HTTPConnector.handler(of: channel) else { throw ChannelError.ioOnClosedChannel }
                return HTTPClientConnection(channel: channel, handler: NIOLoopBound(handler, eventLoop: loop), target: target)
            }
        do {
            // A connect in progress cannot be aborted, so a cancelled task stops waiting for it
            // and closes the connection if it comes.
            let connection = try await future.getCancellable { future.whenSuccess { $0.close() } }
            if Task.isCancelled {
                connection.close()
                throw CancellationError()
            }
            return connection
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw HTTPFailure.classify(error, target: target.authority)
        }
    }

    /// Sends one request and waits for the whole response. Cancelling the task closes the connection.
    func send(_ request: PreparedRequest, options: ExchangeOptions) async throws -> ExchangeResult {
        let promise = channel.eventLoop.makePromise(of: ExchangeResult.self)
        let channel = self.channel
        let handler = self.handler
        channel.eventLoop.execute {
            handler.value.send(request, options: options) { result in promise.completeWith(result.mapError { $0 as any Error }) }
        }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    /// Whether another request may go on this connection.
    var isReusable: Bool {
        get async {
            let handler = self.handler
            return (try? await channel.eventLoop.submit { handler.value.isReusable }.get()) ?? false
        }
    }

    func close() { channel.close(promise: nil) }
}

extension EventLoopFuture where Value: Sendable {
    /// The future's value, or `CancellationError` as soon as the task is cancelled (after running
    /// `onCancel`), without waiting for the future.
    func getCancellable(onCancel: @escaping @Sendable () -> Void) async throws -> Value {
        let waiter = ResumeOnce<Value>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                waiter.store(continuation)
                if Task.isCancelled { waiter.resume(with: .failure(CancellationError())) }
                self.whenComplete { waiter.resume(with: $0) }
            }
        } onCancel: {
            onCancel()
            waiter.resume(with: .failure(CancellationError()))
        }
    }
}

/// A continuation resumed by whichever comes first: the result or the cancellation.
private final class ResumeOnce<Value: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<Value, any Error>?, early: Result<Value, any Error>?)>((nil, nil))

    func store(_ continuation: CheckedContinuation<Value, any Error>) {
        let early = state.withLock { s -> Result<Value, any Error>? in
            if let early = s.early { return early }
            s.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func resume(with result: Result<Value, any Error>) {
        let continuation = state.withLock { s -> CheckedContinuation<Value, any Error>? in
            guard let continuation = s.continuation else {
                if s.early == nil { s.early = result }
                return nil
            }
            s.continuation = nil
            s.early = result
            return continuation
        }
        continuation?.resume(with: result)
    }
}
