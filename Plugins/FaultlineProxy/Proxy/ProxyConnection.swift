import FaultlineKit
import NIOCore
import NIOPosix
import NIOSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The two sockets of a proxied connection.
enum Side {
    case client, server
}

/// One accepted client connection and its upstream connection, with a ``Link`` each way.
///
/// Confined to the event loop of the accepted channel; the upstream channel is created on the
/// same loop, so bytes move between the two sockets without a thread hop. Other threads reach a
/// connection only through ``ConnectionRef`` (which hops onto the loop).
final class ProxyConnection {
    let runtime: ProxyRuntime
    let eventLoop: any EventLoop
    private(set) var number: UInt64 = 0
    private(set) var upstream: Link!
    private(set) var downstream: Link!
    /// Set once the connection carries an HTTP toxic.
    private(set) var http: HTTPSession?
    /// The client's IP address bytes, for toxics limited to some clients.
    private var clientAddress: [UInt8]?
    private var client: ChannelHandlerContext?
    private var server: ChannelHandlerContext?
    private var clientHandler: SideHandler?
    private var serverHandler: SideHandler?
    private var clientClosed = false
    private var serverClosed = false
    private var registered = false
    private var closing = false
    private var failed: [Side: Bool] = [:]
    private var resetByPeer: [Side: Bool] = [:]
    private var tlsFailed: [Side: Bool] = [:]
    private var safetyClose: Scheduled<Void>?

    /// How long a gracefully closing connection waits for the peers' FIN before closing hard.
    static let lingerOnClose = TimeAmount.seconds(2)
    /// Set while taking over a connection from the relay.
    private var handover: Handover?
    private var handoverDone: EventLoopPromise<Void>?

    init(runtime: ProxyRuntime, eventLoop: any EventLoop) {
        self.runtime = runtime
        self.eventLoop = eventLoop
        upstream = Link(direction: .upstream, connection: self, counters: runtime.metrics.upstream)
        downstream = Link(direction: .downstream, connection: self, counters: runtime.metrics.downstream)
    }

    func link(from side: Side) -> Link { side == .client ? upstream : downstream }
    func link(to side: Side) -> Link { side == .client ? downstream : upstream }

    // MARK: Setup

    /// Runs a client socket the relay accepted (its proxy has toxics) on `eventLoop`.
    static func accept(_ fd: Int32, runtime: ProxyRuntime, on eventLoop: any EventLoop) {
        eventLoop.execute {
            let connection = ProxyConnection(runtime: runtime, eventLoop: eventLoop)
            connection.wrap(fd).whenFailure { error in
                runtime.log.warning("proxy \(runtime.name): cannot take an accepted connection: \(error)")
            }
        }
    }

    /// Takes over a connection from the relay: both sockets, the bytes the relay held, and the
    /// proxy's toxics as they are now. The future completes once the toxics are in place.
    static func adopt(_ handover: Handover, runtime: ProxyRuntime, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        eventLoop.execute {
            let connection = ProxyConnection(runtime: runtime, eventLoop: eventLoop)
            connection.handover = handover
            connection.handoverDone = promise
            connection.wrap(handover.client).whenFailure { error in
                // NIO has closed the client socket: on every path where `withConnectedSocket`
                // fails after taking the descriptor, it closes it (on Linux, wrapping cannot fail
                // before). The server socket is still ours.
                runtime.log.warning("proxy \(runtime.name): cannot take over connection \(handover.number): \(error)")
                if let server = handover.server { close(server) }
                runtime.unregister(handover.number)
                promise.succeed()
            }
        }
        return promise.futureResult
    }

    /// A NIO channel around the accepted client socket, with this connection's handler.
    private func wrap(_ fd: Int32) -> EventLoopFuture<any Channel> {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        return ProxyChannelOptions.apply(to: ClientBootstrap(group: eventLoop))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try bound.value.attachClient(to: channel) }
            }
            .withConnectedSocket(fd)
    }

    /// Installs the client side's handler; called from the accepted channel's initializer.
    func attachClient(to channel: any Channel) throws {
        let handler = SideHandler(connection: self, side: .client)
        clientHandler = handler
        if let server = runtime.tls?.server {
            // Terminates the client's TLS: the handler and the toxics see decrypted bytes.
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: server))
        }
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    func handlerAdded(_ context: ChannelHandlerContext, side: Side) {
        switch side {
        case .client:
            client = context
            upstream.source = context
            downstream.destination = context
        case .server:
            server = context
            downstream.source = context
            upstream.destination = context
        }
    }

    /// The client connected: register with the proxy (taking its toxics) and dial the upstream.
    func clientActive() {
        let reference = ConnectionRef.nio(eventLoop, NIOLoopBound(self, eventLoop: eventLoop))
        let registration: ProxyRuntime.Registration?
        if let handover {
            registration = runtime.takeOver(handover.number, by: reference)
        } else {
            registration = runtime.register(reference)
        }
        defer {
            handoverDone?.succeed()
            handoverDone = nil
        }
        guard let registration else {
            if let server = handover?.server { close(server) }
            handover = nil
            abort()
            return
        }
        registered = true
        number = registration.number
        clientAddress = client?.channel.remoteAddress.flatMap(Self.addressBytes)
        for toxic in registration.toxics {
            add(toxic, midStream: handover != nil)
        }
        if let server = handover?.server {
            connect(serverBootstrap().withConnectedSocket(server))
        } else {
            connect(registration.target)
        }
    }

    /// The upstream side's handler joins the connection only once its channel has connected
    /// (``serverConnected(_:)``): connecting to a host name tries each of its addresses on its own
    /// channel (happy eyeballs), and an attempt that fails must not pass for the server closing.
    /// - Parameter target: where it connects, for the TLS server name (an upstream that speaks TLS).
    private func serverBootstrap(to target: UpstreamTarget? = nil) -> ClientBootstrap {
        let tls = runtime.tls
        return ProxyChannelOptions.apply(to: ClientBootstrap(group: eventLoop))
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let client = tls?.client, let target {
                        // Originates TLS to the upstream, verifying it as the settings say.
                        let handler = try NIOSSLClientHandler(context: client, serverHostname: tls?.serverName(for: target))
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    try channel.pipeline.syncOperations.addHandler(SideHandler(connection: nil, side: .server))
                }
            }
    }

    private func connect(_ target: UpstreamTarget) {
        let bootstrap = serverBootstrap(to: target)
        switch target {
        case .address(let address): connect(bootstrap.connect(to: address))
        case .host(let host, let port): connect(bootstrap.connect(host: host, port: port))
        case .unusable(let reason):
            // Fails as a dial would, on a later turn of the loop, after the connection is set up.
            let promise = eventLoop.makePromise(of: (any Channel).self)
            eventLoop.execute { promise.fail(ProxyError(.badRequest, reason)) }
            connect(promise.futureResult)
        }
    }

    private func connect(_ future: EventLoopFuture<any Channel>) {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        future.assumeIsolated().whenComplete { result in
            let connection = bound.value
            switch result {
            case .success(let channel): connection.serverConnected(channel)
            case .failure(let error): connection.connectFailed(error)
            }
        }
    }

    private func serverConnected(_ channel: any Channel) {
        let pipeline = channel.pipeline.syncOperations
        guard !closing, !clientClosed, let handler = try? pipeline.handler(type: SideHandler.self),
            let context = try? pipeline.context(handlerType: SideHandler.self)
        else {
            channel.close(promise: nil)
            serverNeverJoined()
            return
        }
        handler.connection = self
        serverHandler = handler
        handlerAdded(context, side: .server)
        guard channel.isActive else {
            // It closed before it joined, so its handler saw nothing.
            sideClosed(.server)
            return
        }
        let resume = handover?.resume
        if let handover {
            // What the relay had read and not yet written goes first, past the toxics.
            if let bytes = handover.pending[0] { upstream.forwardUntouched(bytes) }
            if let bytes = handover.pending[1] { downstream.forwardUntouched(bytes) }
            self.handover = nil
        }
        upstream.start()
        downstream.start()
        if let resume {
            // Bytes the relay's screen read and did not pass on. Nothing was read from the client
            // here yet: reading starts below.
            if http == nil {
                // No HTTP toxic applies any more: a head the screen had partly read goes on as it came.
                var requests = resume.requests
                if let partial = requests.becomeOpaque() { upstream.receiveCounted(partial) }
            }
            if let held = resume.unscreened { upstream.receiveCounted(held) }
        }
        upstream.afterEvent()
        downstream.afterEvent()
    }

    private func connectFailed(_ error: any Error) {
        handover = nil
        runtime.log.debug("upstream \(runtime.targetDescription) refused connection \(number): \(error)")
        serverNeverJoined()
    }

    /// The upstream side will not take part (refused, or the client left while it connected):
    /// close the client after what it was sent, or finish now if it is gone already.
    private func serverNeverJoined() {
        serverClosed = true
        if clientClosed { finish() } else { closeGracefully() }
    }

    // MARK: Events from the sockets

    func sideFailed(_ side: Side, error: any Error) {
        if side == .client, case .handshakeFailed(.sslError(let errors))? = error as? NIOSSLError, errors == [.eofDuringHandshake] {
            // A client that left before finishing its handshake (a port probe, a load tool
            // stopping) has not failed TLS: it closed, and the connection ends as any other.
            runtime.log.debug("proxy \(runtime.name): the client closed connection \(number) during the TLS handshake")
        } else if Self.isTLSFailure(error) {
            // A TLS proxy's peer that fails the handshake gets its connection closed, as any TLS
            // endpoint does; the other side is closed with it, and the log says why.
            if side == .client {
                runtime.metrics.clientHandshakeFailures.add(1, ordering: .relaxed)
            } else {
                runtime.metrics.upstreamHandshakeFailures.add(1, ordering: .relaxed)
            }
            let peer = side == .client ? "client" : "upstream \(runtime.targetDescription)"
            runtime.log.warning("proxy \(runtime.name): TLS with the \(peer) failed on connection \(number), closing it: \(error)")
            tlsFailed[side] = true
        }
        failed[side] = true
        if let error = error as? IOError, error.errnoCode == ECONNRESET || error.errnoCode == EPIPE {
            resetByPeer[side] = true
        }
    }

    func sideClosed(_ side: Side) {
        switch side {
        case .client:
            guard !clientClosed else { return }
            clientClosed = true
            clientHandler?.connection = nil
            clientHandler = nil
            client = nil
        case .server:
            guard !serverClosed else { return }
            serverClosed = true
            serverHandler?.connection = nil
            serverHandler = nil
            server = nil
        }
        link(to: side).kill()
        let other: Side = side == .client ? .server : .client
        if !closing {
            if resetByPeer[side] == true {
                // A reset on one side is passed on as a reset.
                resetSide(other)
                closing = true
            } else if tlsFailed[side] == true {
                // A failed handshake on one side closes the other with FIN, reading and dropping
                // what it still sends, so its peer sees the end rather than a reset.
                closeGracefully()
            } else if failed[side] == true {
                closeSide(other)
                closing = true
            } else {
                // A close without error is an end of stream: what the toxics still hold is
                // delivered, then the other side is half-closed.
                link(from: side).sourceReachedEnd()
            }
        }
        if clientClosed && serverClosed { finish() }
    }

    /// Both sockets are closed: release everything and leave the proxy's books.
    private func finish() {
        upstream.kill()
        downstream.kill()
        safetyClose?.cancel()
        safetyClose = nil
        if registered {
            registered = false
            runtime.unregister(number)
        }
        // Callers up the stack (a handler, a stage) may still touch this connection in this tick.
        eventLoop.assumeIsolatedUnsafeUnchecked().execute { withExtendedLifetime(self) {} }
    }

    /// Whether an error is a TLS failure (a handshake, a bad record) rather than the socket's.
    static func isTLSFailure(_ error: any Error) -> Bool {
        error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError
    }

    // MARK: Closing

    /// Closes both sides with FIN after what was already forwarded, then reads and discards
    /// until each peer closes too (closing with unread data would send RST), up to a limit.
    func closeGracefully() {
        guard !closing else { return }
        closing = true
        upstream.kill()
        downstream.kill()
        for context in [client, server].compactMap({ $0 }) {
            context.closeOutputAfterPendingWrites()
            context.channel.setOption(.autoRead, value: true).whenFailure { _ in }
        }
        if clientClosed && serverClosed { return }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        safetyClose = eventLoop.scheduleTask(in: Self.lingerOnClose) { bound.value.abort() }
    }

    /// Closes both sides with RST (SO_LINGER 0), discarding unsent data.
    func reset() {
        closing = true
        upstream.kill()
        downstream.kill()
        resetSide(.client)
        resetSide(.server)
    }

    /// Closes both sides at once (the proxy was disabled or deleted).
    func abort() {
        closing = true
        upstream.kill()
        downstream.kill()
        closeSide(.client)
        closeSide(.server)
        if !registered && server == nil { serverClosed = true }
    }

    private func context(_ side: Side) -> ChannelHandlerContext? { side == .client ? client : server }

    private func closeSide(_ side: Side) {
        context(side)?.close(promise: nil)
    }

    private func resetSide(_ side: Side) {
        guard let context = context(side) else { return }
        if let options = context.channel as? any SocketOptionProvider {
            _ = options.setSoLinger(linger(l_onoff: 1, l_linger: 0))
        }
        // A reset is a TCP reset: closed below a TLS handler, which would send close_notify first
        // and turn it into a clean TLS close.
        if let tls = try? context.pipeline.syncOperations.context(handlerType: NIOSSLHandler.self) {
            tls.close(promise: nil)
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: Toxic changes from the control plane

    /// Runs a toxic on this connection: a byte toxic in its stream's chain, an HTTP toxic in the
    /// connection's HTTP session (made on first need).
    /// - Parameter midStream: bytes may have crossed already, so HTTP parsing waits for a request.
    private func add(_ toxic: ActiveToxic, midStream: Bool) {
        guard toxic.applies(toClient: clientAddress) else { return }
        if toxic.isHTTP {
            if http == nil {
                let session = HTTPSession(connection: self, midStream: midStream, resume: handover?.resume)
                http = session
                upstream.http = session
                downstream.http = session
            }
            http?.add(toxic)
            return
        }
        let roll = ToxicRoll(seed: runtime.seed, proxy: runtime.name, toxic: toxic.definition.name, connection: number)
        (toxic.definition.stream == .upstream ? upstream : downstream).add(toxic, roll: roll)
    }

    /// The 4 or 16 bytes of an IP socket address.
    static func addressBytes(_ address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6):
            return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        default:
            return nil
        }
    }

    /// Resets both sides once what was written so far has reached the sockets (an HTTP toxic cuts
    /// a message after some of its bytes).
    func resetAfterPendingWrites() {
        guard !closing else { return }
        closing = true
        upstream.kill()
        downstream.kill()
        let contexts = [client, server].compactMap { $0 }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let flushed = contexts.map { context -> EventLoopFuture<Void> in
            let promise = eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(NIOAny(ByteBuffer()), promise: promise)
            return promise.futureResult
        }
        EventLoopFuture.andAllComplete(flushed, on: eventLoop).whenComplete { _ in
            bound.value.resetSide(.client)
            bound.value.resetSide(.server)
        }
    }

    func apply(_ change: ToxicChange) {
        guard registered else { return }
        switch change {
        case .add(let toxic):
            add(toxic, midStream: true)
        case .update(let toxic):
            if toxic.isHTTP {
                http?.update(toxic)
            } else {
                (toxic.definition.stream == .upstream ? upstream : downstream).update(toxic)
            }
        case .remove(let name, let stream):
            http?.remove(named: name)
            (stream == .upstream ? upstream : downstream).remove(named: name)
        case .removeAll:
            for rule in http?.rules ?? [] { http?.remove(named: rule.name) }
            upstream.removeAll()
            downstream.removeAll()
        }
        upstream.afterEvent()
        downstream.afterEvent()
    }
}

/// Socket options shared by both sides of proxied connections.
enum ProxyChannelOptions {
    /// Reads grow to 256 KiB under bulk traffic (fewer syscalls) and shrink back when idle.
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16_384, maximum: 262_144)
    /// A destination is "not writable" above 1 MiB of queued bytes: the source stops being read.
    static let waterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 256 * 1024, high: 1024 * 1024)

    /// The options of both sides' channels.
    static func apply(to bootstrap: ClientBootstrap) -> ClientBootstrap {
        bootstrap
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.autoRead, value: false)
            .channelOption(.recvAllocator, value: receiveAllocator)
            .channelOption(.writeBufferWaterMark, value: waterMark)
    }
}

/// What the control plane does to live connections.
enum ConnectionOperation: Sendable {
    /// The proxy went down: close at once.
    case abort
    case apply(ToxicChange)
}

/// A connection as the control plane sees it: in the relay, or on a NIO loop (reachable only on
/// that loop).
enum ConnectionRef: Sendable {
    case relayed(RelayedRef)
    case nio(any EventLoop, NIOLoopBound<ProxyConnection>)

    var eventLoop: any EventLoop {
        switch self {
        case .relayed(let ref): ref.relay.group.next()
        case .nio(let eventLoop, _): eventLoop
        }
    }

    /// Runs the operation; the future completes once it took effect.
    func perform(_ operation: ConnectionOperation) -> EventLoopFuture<Void> {
        switch self {
        case .relayed(let ref):
            switch operation {
            case .abort: return ref.relay.abort(ref)
            case .apply: return ref.relay.handOver(ref)
            }
        case .nio(let eventLoop, let connection):
            return eventLoop.submit {
                switch operation {
                case .abort: connection.value.abort()
                case .apply(let change): connection.value.apply(change)
                }
            }
        }
    }
}

/// The handler on each of the two channels of a proxied connection.
final class SideHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    var connection: ProxyConnection?
    let side: Side

    /// - Parameter connection: nil for an upstream attempt that has not connected yet.
    init(connection: ProxyConnection?, side: Side) {
        self.connection = connection
        self.side = side
    }

    func handlerAdded(context: ChannelHandlerContext) {
        connection?.handlerAdded(context, side: side)
    }

    func channelActive(context: ChannelHandlerContext) {
        if side == .client { connection?.clientActive() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection?.link(from: side).receive(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        connection?.link(from: side).afterEvent()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection?.link(to: side).readIfPossible()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent {
            connection?.link(from: side).sourceReachedEnd()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A TLS peer that closes its socket without close_notify (common, and harmless in HTTP
        // with lengths) is an end of stream: NIOSSL's inputClosed event follows.
        if case .uncleanShutdown? = error as? NIOSSLError { return }
        connection?.sideFailed(side, error: error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection?.sideClosed(side)
    }
}
