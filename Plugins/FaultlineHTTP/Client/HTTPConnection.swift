import FaultlineKit
import NIOCore
import Synchronization
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS

/// A request built once and sent as often as needed: a load sends the same bytes every time.
struct PreparedRequest: Sendable {
    var method: HTTPMethod
    var target: HTTPTarget
    /// The header fields as sent, defaults included.
    var headers: [(String, String)]
    var body: ByteBuffer?
    /// The whole request as it goes on the wire, encoded once.
    var encoded: ByteBuffer

    /// Builds the request: `Host`, `User-Agent` and `Accept` unless given, and `Content-Length`
    /// always from the body actually sent — a `Content-Length` written in the experiment is
    /// replaced, as `requests` does, so it can never promise more or fewer bytes than follow.
    init(method: HTTPMethod, target: HTTPTarget, headers given: [(String, String)], body: ByteBuffer?) {
        self.method = method
        self.target = target
        self.body = body
        var fields: [(String, String)] = []
        let given = given.filter { $0.0.lowercased() != "content-length" }
        let names = Set(given.map { $0.0.lowercased() })
        if !names.contains("host") { fields.append(("Host", target.hostHeader)) }
        if !names.contains("user-agent") { fields.append(("User-Agent", PreparedRequest.userAgent)) }
        if !names.contains("accept") { fields.append(("Accept", "*/*")) }
        fields += given
        if let body, !names.contains("transfer-encoding") {
            fields.append(("Content-Length", String(body.readableBytes)))
        } else if body == nil, method != .GET, method != .HEAD {
            fields.append(("Content-Length", "0"))
        }
        headers = fields
        var bytes = ByteBuffer()
        bytes.writeString("\(method.rawValue) \(target.pathAndQuery) HTTP/1.1\r\n")
        for (name, value) in fields { bytes.writeString("\(name): \(value)\r\n") }
        bytes.writeString("\r\n")
        if var body { bytes.writeBuffer(&body) }
        encoded = bytes
    }

    /// The same request sent elsewhere (a redirect).
    func redirected(to target: HTTPTarget, method: HTTPMethod, keepBody: Bool) -> PreparedRequest {
        var kept: [(String, String)] = []
        for (name, value) in headers {
            let lower = name.lowercased()
            if lower == "host" || lower == "content-length" { continue }
            if !keepBody, lower == "content-type" || lower == "transfer-encoding" { continue }
            // Credentials go only to the host they were written for, as `requests` does.
            if lower == "authorization" || lower == "cookie", target.authority != self.target.authority { continue }
            kept.append((name, value))
        }
        return PreparedRequest(method: method, target: target, headers: kept, body: keepBody ? body : nil)
    }

    static let userAgent = "faultline/\(Engine.version)"
}

/// What came back from one exchange.
struct ExchangeResult: Sendable {
    var status: Int
    /// The header fields, when the exchange collected them.
    var headers: [(String, String)]
    /// The body, when the exchange collected it.
    var body: ByteBuffer?
    /// Whether the body was longer than the limit and cut.
    var truncated: Bool
    /// Bytes of the response and of the request (HTTP bytes; TLS adds its records on top).
    var bytesReceived: Int
    var bytesSent: Int

    /// The first value of a header field, by case-insensitive name.
    func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
}

/// How one exchange treats the response.
struct ExchangeOptions: Sendable {
    /// Keep the header fields and the body (the `http` provider); a load only counts bytes.
    var collectBody: Bool
    /// The most body bytes kept; the rest is counted and dropped.
    var bodyLimit: Int = 16 << 20
    /// Time allowed without a byte of the response arriving.
    var readTimeout: TimeAmount
    /// Whether the exchange arms its own timer; a load's users are swept by their loop instead
    /// (``ExchangeHandler/checkTimeout(now:)``), which saves a scheduled task per request.
    var ownTimer = true
}

/// One exchange in flight, as its response arrives: what either transport (``ExchangeHandler``
/// on NIO, ``PlainConnection`` on a load loop) keeps while it waits.
struct PendingExchange {
    typealias Completion = (Result<ExchangeResult, HTTPFailure>) -> Void

    var completion: Completion
    var options: ExchangeOptions
    var lastActivity: NIODeadline
    var timer: Scheduled<Void>?
    var status: Int?
    var headers: [(String, String)] = []
    var body: ByteBuffer?
    var truncated = false
    var receivedAtStart: Int
    var sent: Int

    /// Takes one event of the response; returns the result at its end. A response that closes
    /// the connection clears `reusable`.
    /// - Parameter received: the connection's bytes received so far.
    mutating func take(_ event: ResponseParser.Event, received: Int, reusable: inout Bool) -> ExchangeResult? {
        switch event {
        case .head(let status, let keepAlive, let headers):
            self.status = status
            self.headers = headers
            if !keepAlive { reusable = false }
        case .body(var part):
            guard options.collectBody else { return nil }
            let room = options.bodyLimit - (body?.readableBytes ?? 0)
            if part.readableBytes > room {
                truncated = true
                part = part.getSlice(at: part.readerIndex, length: max(room, 0)) ?? part
            }
            if body == nil {
                body = part
            } else {
                body!.writeBuffer(&part)
            }
        case .end:
            guard let status else { return nil }
            return ExchangeResult(
                status: status, headers: headers, body: body, truncated: truncated, bytesReceived: received - receivedAtStart, bytesSent: sent)
        }
        return nil
    }
}

/// Runs one request/response exchange at a time on a keep-alive HTTP/1.1 connection.
///
/// Confined to its channel's event loop: a load drives thousands of exchanges a second through
/// it without a thread hop, and the `http` provider reaches it through ``HTTPClientConnection``.
/// It writes the request's bytes as encoded once and parses the response in place
/// (``ResponseParser``), so the pipeline is this handler alone (after TLS). Every exchange ends
/// exactly once — with a response, or with a classified ``HTTPFailure`` when the peer closes,
/// resets, stalls past the read timeout or breaks TLS.
final class ExchangeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    typealias Completion = PendingExchange.Completion

    private let peer: String
    private var context: ChannelHandlerContext?
    private var inFlight: PendingExchange?
    private var parser = ResponseParser()
    private var received = 0
    /// False once the connection closed or the server asked to close it.
    private(set) var isReusable = true
    /// Why the connection closed, for a request sent after it did (a TLS handshake can fail
    /// between the connect and the first request, even before the connect's future completes).
    private(set) var closeReason: HTTPFailure?
    /// True while a TLS handshake has not completed: a close then is a TLS failure (an https
    /// request to a plain HTTP server is answered with an error page and a close, or a reset).
    private var awaitingHandshake: Bool

    init(peer: String, tls: Bool = false) {
        self.peer = peer
        awaitingHandshake = tls
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted? = event as? TLSUserEvent { awaitingHandshake = false }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Sends a request; `completion` runs on the event loop when the exchange ends.
    func send(_ request: PreparedRequest, options: ExchangeOptions, completion: @escaping Completion) {
        precondition(inFlight == nil, "one exchange at a time")
        guard let context, isReusable else {
            completion(.failure(closeReason ?? HTTPFailure(.reset, "the connection to \(peer) is closed")))
            return
        }
        inFlight = PendingExchange(
            completion: completion, options: options, lastActivity: .now(), receivedAtStart: received, sent: request.encoded.readableBytes)
        parser.begin(headRequest: request.method == .HEAD, collectHeaders: options.collectBody)
        if options.ownTimer { armTimer(after: options.readTimeout) }
        context.writeAndFlush(wrapOutboundOut(request.encoded), promise: nil)
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
            checkTimeout(now: .now())
        } else {
            armTimer(after: flight.options.readTimeout - idle)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        received += bytes.readableBytes
        guard inFlight != nil else { return }  // Bytes nobody asked for: ignored.
        inFlight!.lastActivity = .now()
        parser.feed(bytes)
        do {
            while inFlight != nil, let event = try parser.next() { handle(event) }
            parser.releaseIfConsumed()
        } catch {
            fail(error)
        }
    }

    private func handle(_ event: ResponseParser.Event) {
        guard let result = inFlight!.take(event, received: received, reusable: &isReusable), let flight = inFlight else { return }
        inFlight = nil
        flight.timer?.cancel()
        if !isReusable { context?.close(promise: nil) }
        flight.completion(.success(result))
    }

    func channelInactive(context: ChannelHandlerContext) {
        isReusable = false
        if awaitingHandshake {
            let failure =
                closeReason ?? HTTPFailure(.tls, "TLS handshake with \(peer) did not complete: the connection closed (is it an HTTPS server?)")
            if closeReason == nil { closeReason = failure }
            fail(failure)
            context.fireChannelInactive()
            return
        }
        if inFlight != nil, let end = parser.endOfInput() { handle(end) }
        fail(HTTPFailure(.reset, "\(peer) closed the connection before the response was complete"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        var failure = HTTPFailure.classify(error, target: peer)
        if awaitingHandshake, failure.kind == .reset {
            // Closed or reset before the TLS handshake completed: most likely a server that does
            // not speak TLS, which curl too reports as a TLS (SSL connect) error.
            failure = HTTPFailure(.tls, "TLS handshake with \(peer) did not complete: \(failure.detail) (is it an HTTPS server?)")
        }
        if closeReason == nil { closeReason = failure }
        fail(failure)
        context.close(promise: nil)
    }

    /// Ends the running exchange as abandoned (a stopped load) and closes the connection.
    func abandon() {
        fail(.abandonedExchange)
        context?.close(promise: nil)
    }

    func close() { context?.close(promise: nil) }

    private func fail(_ failure: HTTPFailure) {
        isReusable = false
        guard let flight = inFlight else { return }
        inFlight = nil
        flight.timer?.cancel()
        context?.close(promise: nil)
        flight.completion(.failure(failure))
    }
}

/// A connected channel and the exchange handler at the end of its pipeline.
///
/// The handler is kept from the moment the pipeline is built: a TLS handshake that fails as the
/// connect completes empties the pipeline before the connect's callbacks run, and a request then
/// sent on the handler fails with why the connection closed.
struct ConnectedExchange: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<ExchangeHandler>
}

/// Opens connections with the pipeline every exchange needs.
enum HTTPConnector {
    /// Connects to `target` (at `address` when already resolved) on `loop`.
    ///
    /// The future completes on `loop`. A connect that fails after the handler saw the connection
    /// close fails with the handler's reason (a TLS handshake cut short), not the channel's.
    static func connect(
        to target: HTTPTarget, address: SocketAddress?, tls: NIOSSLContext?, connectTimeout: TimeAmount, on loop: any EventLoop
    ) -> EventLoopFuture<ConnectedExchange> {
        let peer = target.authority
        let serverName = target.hostIsAddress ? nil : target.host
        // Each connection attempt's handler, by channel: a host name may be tried at several
        // addresses at once (Happy Eyeballs), and any of them may win.
        let handlers = NIOLoopBoundBox.makeEmptyBox(valueType: [ObjectIdentifier: ExchangeHandler].self, eventLoop: loop)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName)) }
                    let handler = ExchangeHandler(peer: peer, tls: tls != nil)
                    var known = handlers.value ?? [:]
                    known[ObjectIdentifier(channel)] = handler
                    handlers.value = known
                    try sync.addHandler(handler)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let connecting = address.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: target.host, port: target.port)
        return connecting.flatMapThrowing { channel in
            guard let handler = handlers.value?[ObjectIdentifier(channel)] else { throw ChannelError.ioOnClosedChannel }
            return ConnectedExchange(channel: channel, handler: NIOLoopBound(handler, eventLoop: loop))
        }.flatMapErrorThrowing { error in
            throw handlers.value?.values.lazy.compactMap(\.closeReason).first ?? error
        }
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
            .map { HTTPClientConnection(channel: $0.channel, handler: $0.handler, target: target) }
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
