import NIOCore
import NIOPosix

/// How the order API talks to its store. Everything is off by default: the naive client is the
/// baseline the experiments break, and each option is a fix they can show the effect of.
public struct StoreOptions: Sendable, Equatable {
    /// How long a call may wait for its reply; `nil` waits forever. A call that times out fails and
    /// its connection is dropped, since replies on a pipelined RESP stream can no longer be matched.
    public var timeout: Duration?
    /// How many times a failed call is tried again; 0 means never. With retries the client also
    /// re-establishes a lost connection; without, a lost connection stays lost.
    public var retries: Int
    /// The pause before the first retry; it doubles for each further one, up to `maxBackoff`.
    public var backoff: Duration
    /// The longest pause between retries.
    public var maxBackoff: Duration
    /// Consecutive failed calls that open the circuit breaker; 0 turns the breaker off.
    public var breakerThreshold: Int
    /// How long an open breaker fails calls fast before it lets one trial call through.
    public var breakerCooldown: Duration

    /// - Parameters: See the properties.
    public init(
        timeout: Duration? = nil,
        retries: Int = 0,
        backoff: Duration = .milliseconds(100),
        maxBackoff: Duration = .seconds(2),
        breakerThreshold: Int = 0,
        breakerCooldown: Duration = .seconds(2)
    ) {
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.maxBackoff = maxBackoff
        self.breakerThreshold = breakerThreshold
        self.breakerCooldown = breakerCooldown
    }

    /// The pause before retry number `attempt` (1-based).
    func backoff(before attempt: Int) -> Duration {
        var pause = backoff
        for _ in 1..<max(attempt, 1) where pause < maxBackoff { pause *= 2 }
        return min(pause, maxBackoff)
    }
}

/// Why a store call failed.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// The connection was lost earlier and this client does not reconnect (no `--retries`).
    case connectionLost
    /// Connecting failed, or the connection broke while the call waited.
    case unavailable(String)
    /// No reply within the store timeout.
    case timedOut(milliseconds: Int64)
    /// The circuit breaker is open; calls fail fast until it lets a trial through.
    case breakerOpen(retryAfter: Duration)
    /// The store answered with a RESP error.
    case reply(String)

    public var description: String {
        switch self {
        case .connectionLost: "store connection lost; restart the service or run with --retries"
        case .unavailable(let reason): reason
        case .timedOut(let milliseconds): "no reply within \(milliseconds) ms"
        case .breakerOpen(let retryAfter) where retryAfter > .zero:
            "store circuit breaker open; next trial call in \(retryAfter.milliseconds) ms"
        case .breakerOpen: "store circuit breaker open; a trial call is in flight"
        case .reply(let message): message
        }
    }

    /// Failures of the link, which retries and the breaker act on; a RESP error reply is not one.
    var isLinkFailure: Bool {
        switch self {
        case .unavailable, .timedOut: true
        case .connectionLost, .breakerOpen, .reply: false
        }
    }
}

/// What the order API counts and shows on `GET /stats`.
public struct StoreClientEvents: Sendable {
    /// A call was tried again.
    public var retried: @Sendable () -> Void = {}
    /// A lost connection was established again.
    public var reconnected: @Sendable () -> Void = {}
    /// A call failed for good (after its retries), or was refused by the open breaker.
    public var failed: @Sendable (StoreError) -> Void = { _ in }
    /// A line for the service's log.
    public var log: @Sendable (String) -> Void = { _ in }

    /// - Parameters: See the properties.
    public init(
        retried: @escaping @Sendable () -> Void = {},
        reconnected: @escaping @Sendable () -> Void = {},
        failed: @escaping @Sendable (StoreError) -> Void = { _ in },
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.retried = retried
        self.reconnected = reconnected
        self.failed = failed
        self.log = log
    }
}

/// A Redis client the way a typical naive one is written: ONE persistent connection, calls
/// pipelined on it and their replies matched in order. `StoreOptions` add the resilience.
public actor StoreClient {
    private enum Connection {
        /// Never connected yet: the next call connects.
        case idle
        case connecting(Task<any Channel, any Error>)
        case ready(any Channel)
        /// Was connected and lost it; only a client with retries connects again.
        case lost
    }

    private let host: String
    private let port: Int
    private let options: StoreOptions
    private let events: StoreClientEvents
    private let group: any EventLoopGroup
    private var connection = Connection.idle
    private var hasConnected = false
    private var breaker: CircuitBreaker
    private var isShutDown = false

    /// - Parameters:
    ///   - host: The store's host.
    ///   - port: The store's port.
    ///   - options: Timeout, retries and breaker.
    ///   - events: Counters and log.
    ///   - group: The event loops for the connection.
    public init(
        host: String,
        port: Int,
        options: StoreOptions = StoreOptions(),
        events: StoreClientEvents = StoreClientEvents(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.options = options
        self.events = events
        self.group = group
        self.breaker = CircuitBreaker(threshold: options.breakerThreshold, cooldown: options.breakerCooldown)
    }

    /// The breaker's state: `off`, `closed`, `open` or `half-open`.
    public var breakerState: String { breaker.stateName }

    /// Sends one command and returns its reply.
    /// - Throws: `StoreError`, or `CancellationError` when the calling task is cancelled.
    public func call(_ command: [String]) async throws -> RESPValue {
        let isTrial: Bool
        do {
            isTrial = try breaker.admit(now: .now)
        } catch {
            events.failed(error)
            throw error
        }
        var attempt = 0
        while true {
            do {
                let reply = try await send(.command(command), on: try await channel())
                breaker.recordSuccess()
                if case .error(let message) = reply { throw StoreError.reply(message) }
                return reply
            } catch let error as StoreError where error.isLinkFailure && attempt < options.retries && !Task.isCancelled {
                attempt += 1
                events.retried()
                do {
                    try await Task.sleep(for: options.backoff(before: attempt))
                } catch {
                    if isTrial { breaker.abandonTrial() }
                    throw error
                }
            } catch let error as StoreError {
                if error == .connectionLost || error.isLinkFailure {
                    if breaker.recordFailure(now: .now) { events.log("store circuit breaker opened") }
                }
                events.failed(error)
                throw error
            } catch {
                if isTrial { breaker.abandonTrial() }
                throw error
            }
        }
    }

    /// Connects now rather than on the first call; a failure is only logged.
    public func connectEagerly() async {
        do {
            _ = try await channel()
        } catch {
            events.log("store \(host):\(port) not reachable yet (\(error)); will connect on the first call")
        }
    }

    /// Closes the connection; later calls fail.
    public func shutdown() {
        isShutDown = true
        switch connection {
        case .ready(let channel): channel.close(promise: nil)
        case .connecting(let task): task.cancel()
        case .idle, .lost: break
        }
        connection = .lost
    }

    private func channel() async throws -> any Channel {
        switch connection {
        case .ready(let channel) where channel.isActive:
            return channel
        case .ready(let channel):
            // Closed, but the close notification has not reached us yet.
            connectionClosed(channel)
            return try await self.channel()
        case .connecting(let task):
            return try await task.value
        case .lost where options.retries == 0 || isShutDown:
            throw StoreError.connectionLost
        case .idle, .lost:
            let task = Task { try await self.connect() }
            connection = .connecting(task)
            do {
                let channel = try await task.value
                guard !isShutDown else {
                    channel.close(promise: nil)
                    throw StoreError.connectionLost
                }
                if case .connecting(let current) = connection, current == task { connection = .ready(channel) }
                if hasConnected {
                    events.reconnected()
                    events.log("store connection to \(host):\(port) re-established")
                }
                hasConnected = true
                return channel
            } catch {
                if case .connecting(let current) = connection, current == task { connection = hasConnected ? .lost : .idle }
                throw error
            }
        }
    }

    private func connect() async throws -> any Channel {
        let connectTimeout = options.timeout.map { TimeAmount.nanoseconds(Int64($0.milliseconds) * 1_000_000) } ?? .seconds(10)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(connectTimeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder(allowInline: false)))
                        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(RESPEncoder()))
                        try channel.pipeline.syncOperations.addHandler(PipelinedCallHandler())
                    }
                }
                .connect(host: host, port: port)
                .get()
        } catch {
            throw StoreError.unavailable(NetworkError.describe(error, connecting: "\(host):\(port)"))
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            Task { await self?.connectionClosed(channel) }
        }
        return channel
    }

    private func connectionClosed(_ channel: any Channel) {
        guard case .ready(let current) = connection, current === channel else { return }
        connection = .lost
        guard !isShutDown else { return }
        events.log(
            options.retries == 0
                ? "store connection to \(host):\(port) lost; not reconnecting (run with --retries to reconnect)"
                : "store connection to \(host):\(port) lost; reconnecting on the next call"
        )
    }

    private func send(_ command: RESPValue, on channel: any Channel) async throws -> RESPValue {
        let reply = channel.eventLoop.makePromise(of: RESPValue.self)
        if let timeout = options.timeout {
            let milliseconds = timeout.milliseconds
            let expiry = channel.eventLoop.scheduleTask(in: .milliseconds(milliseconds)) {
                reply.fail(StoreError.timedOut(milliseconds: milliseconds))
                channel.close(promise: nil)
            }
            reply.futureResult.whenComplete { _ in expiry.cancel() }
        }
        channel.writeAndFlush(PipelinedCall(command: command, reply: reply), promise: nil)
        return try await withTaskCancellationHandler {
            try await reply.futureResult.get()
        } onCancel: {
            // The reply, should it come, is still matched to this call's slot and dropped.
            reply.fail(CancellationError())
        }
    }
}

/// One command on its way to the store, with the promise its reply completes.
struct PipelinedCall: Sendable {
    let command: RESPValue
    let reply: EventLoopPromise<RESPValue>
}

/// Matches replies to calls in the order the calls were written, as RESP pipelining requires.
final class PipelinedCallHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = PipelinedCall
    typealias OutboundOut = RESPValue

    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        waiting.append(call.reply)
        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.whenFailure { call.reply.fail(StoreError.unavailable(NetworkError.describe($0))) }
        context.write(wrapOutboundOut(call.command), promise: written)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let reply = waiting.popFirst() else {
            // A reply nobody asked for: the stream is out of step, so nothing after it can be trusted.
            context.close(promise: nil)
            return
        }
        reply.succeed(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(StoreError.unavailable("connection closed by the store"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(StoreError.unavailable(NetworkError.describe(error)))
        context.close(promise: nil)
    }

    private func failAll(_ error: StoreError) {
        while let reply = waiting.popFirst() { reply.fail(error) }
    }
}

/// Opens after `threshold` consecutive failed calls, fails calls fast for `cooldown`, then lets one
/// trial call through: its success closes the breaker, its failure opens it again.
struct CircuitBreaker {
    private enum State {
        case closed(failures: Int)
        case open(until: ContinuousClock.Instant)
        case halfOpen
    }

    let threshold: Int
    let cooldown: Duration
    private var state = State.closed(failures: 0)

    init(threshold: Int, cooldown: Duration) {
        self.threshold = threshold
        self.cooldown = cooldown
    }

    var stateName: String {
        guard threshold > 0 else { return "off" }
        switch state {
        case .closed: return "closed"
        case .open: return "open"
        case .halfOpen: return "half-open"
        }
    }

    /// Lets a call through or throws `StoreError.breakerOpen`; returns whether the call is the trial.
    mutating func admit(now: ContinuousClock.Instant) throws(StoreError) -> Bool {
        guard threshold > 0 else { return false }
        switch state {
        case .closed:
            return false
        case .open(let until) where now >= until:
            state = .halfOpen
            return true
        case .open(let until):
            throw .breakerOpen(retryAfter: until - now)
        case .halfOpen:
            throw .breakerOpen(retryAfter: .zero)
        }
    }

    mutating func recordSuccess() {
        state = .closed(failures: 0)
    }

    /// Counts a failed call; returns whether this failure opened the breaker.
    mutating func recordFailure(now: ContinuousClock.Instant) -> Bool {
        guard threshold > 0 else { return false }
        switch state {
        case .closed(let failures) where failures + 1 < threshold:
            state = .closed(failures: failures + 1)
            return false
        case .closed, .halfOpen:
            state = .open(until: now + cooldown)
            return true
        case .open:
            return false
        }
    }

    /// The trial call was cancelled before it could tell anything: let the next call try.
    mutating func abandonTrial() {
        if case .halfOpen = state { state = .open(until: .now) }
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
