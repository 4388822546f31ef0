import FaultlineKit

/// Runs toxic stages on a fake ``ToxicLink`` whose clock only the test moves, like SwiftNIO's
/// `EmbeddedEventLoop.advanceTime`: a test feeds chunks and the end of stream into one stage or a
/// chain of stages, advances virtual time, and sees exactly what was forwarded and when, what the
/// stages hold, whether they want input, and whether they closed or reset the connection. No
/// sockets, no threads, no waiting: a 10-second latency is tested in microseconds, exactly.
///
/// ```swift
/// let harness = ToxicHarness(try ToxicHarness.stage(LatencyToxic.self, .init(latency: 100)))
/// harness.send("ping")
/// harness.advance(by: .milliseconds(99))
/// #expect(harness.events.isEmpty)
/// harness.advance(by: .milliseconds(1))
/// #expect(harness.events == [.data("ping", at: .milliseconds(100))])
/// ```
///
/// The harness drives stages the way the in-process proxy does: each stage gets a link of its own;
/// what a stage forwards goes to the next stage, and what the last one forwards is recorded as an
/// ``Event``; an end of stream reaches each stage at most once and is recorded once; a stage that
/// was stopped (``stop(stage:)``) is out of the chain and what it forwards later is dropped; a
/// closed or reset connection drops every stage without calling it and cancels every timer.
/// Timers run in deadline order (scheduling order for equal deadlines) with ``ToxicLink/now`` set
/// to their deadline; a timer scheduled in the past runs at the next ``advance(by:)``.
///
/// Not thread-safe: use it from one task, as a stage is used from one event loop.
public final class ToxicHarness {
    /// What left the end of the chain, or what a stage did to the connection, and when
    /// (virtual time since the harness was made).
    public enum Event: Equatable, Sendable, CustomStringConvertible {
        /// Bytes forwarded past the last stage (one event per forwarded chunk).
        case data([UInt8], at: Duration)
        /// The end of stream forwarded past the last stage (the destination is half-closed).
        case endOfStream(at: Duration)
        /// A stage closed the connection with FIN (``ToxicLink/closeConnection()``).
        case closed(at: Duration)
        /// A stage reset the connection (``ToxicLink/resetConnection()``).
        case reset(at: Duration)

        /// Text forwarded at `time`.
        public static func data(_ text: String, at time: Duration) -> Event { .data(Array(text.utf8), at: time) }

        /// When it happened.
        public var time: Duration {
            switch self {
            case .data(_, let time), .endOfStream(let time), .closed(let time), .reset(let time): time
            }
        }

        public var description: String {
            switch self {
            case .data(let bytes, let time):
                let text = String(decoding: bytes, as: UTF8.self)
                let shown = bytes.count <= 32 && text.utf8.elementsEqual(bytes) ? "\"\(text)\"" : "\(bytes.count) bytes"
                return "data \(shown) at \(time.harnessMilliseconds)"
            case .endOfStream(let time): return "end of stream at \(time.harnessMilliseconds)"
            case .closed(let time): return "closed at \(time.harnessMilliseconds)"
            case .reset(let time): return "reset at \(time.harnessMilliseconds)"
            }
        }
    }

    /// Where virtual time starts, in monotonic nanoseconds: not zero, as a real clock never is.
    public static let origin: UInt64 = 1_000_000_000

    /// Every event so far, in order.
    public private(set) var events: [Event] = []
    /// Virtual time since the harness was made.
    public private(set) var elapsed: Duration = .zero
    /// Whether a stage closed or reset the connection: nothing passes any more.
    public private(set) var isConnectionOpen = true

    private var slots: [Slot] = []
    private var timers: [Timer] = []
    private var nextTimerNumber = 0
    private var endSent = false
    private var endDelivered = false

    /// Makes a chain of `stages`, in order, and starts each (``ToxicStage/start(link:)``) at time zero.
    public init(_ stages: [any ToxicStage]) {
        for stage in stages { append(stage) }
    }

    /// Makes a harness for one stage, started at time zero.
    public convenience init(_ stage: any ToxicStage) {
        self.init([stage])
    }

    /// A stage of `toxic` with `attributes`, validated first as the registry does.
    /// - Parameters:
    ///   - toxic: the toxic type (`LatencyToxic.self`).
    ///   - attributes: its attributes.
    ///   - seed: seeds the stage's generator (jitter, slice sizes): the same seed, the same choices.
    /// - Throws: what the toxic's `validate` throws.
    public static func stage<T: Toxic>(_ toxic: T.Type, _ attributes: T.Attributes, seed: UInt64 = 1) throws -> any ToxicStage {
        try T.validate(attributes)
        return T.makeStage(attributes, random: SeededRandom(seed: seed))
    }

    /// Virtual now, in monotonic nanoseconds (what ``ToxicLink/now`` returns).
    public var now: UInt64 { Self.origin + elapsed.harnessNanoseconds }

    // MARK: Driving the chain

    /// Adds a stage at the end of the chain and starts it, as adding a toxic to a live connection does.
    public func append(_ stage: any ToxicStage) {
        let slot = Slot(harness: self, index: slots.count, stage: stage)
        slots.append(slot)
        guard isConnectionOpen else { return }
        stage.start(link: slot)
    }

    /// Bytes arrive from the source and go to the first stage.
    /// - Parameters:
    ///   - bytes: one chunk, as one socket read.
    ///   - readAt: when the proxy read them, if earlier than now (the chunk's `receivedAt`).
    public func send(_ bytes: [UInt8], readAt: Duration? = nil) {
        guard isConnectionOpen, !endSent else { return }
        let receivedAt = readAt.map { Self.origin + $0.harnessNanoseconds } ?? now
        deliver(ToxicChunk(bytes: bytes, receivedAt: receivedAt), from: 0)
    }

    /// Text arrives from the source now.
    public func send(_ text: String) { send(Array(text.utf8)) }

    /// `count` bytes (`0x2A`) arrive from the source now.
    public func send(count: Int) { send([UInt8](repeating: 0x2A, count: count)) }

    /// The source reaches its end (EOF).
    public func sendEndOfStream() {
        guard isConnectionOpen, !endSent else { return }
        endSent = true
        deliverEnd(from: 0)
    }

    /// Moves virtual time forward, running every timer due by then, in order.
    /// - Parameter duration: how far; zero runs the timers already due.
    public func advance(by duration: Duration) {
        precondition(duration >= .zero, "virtual time only moves forward")
        let target = elapsed + duration
        while let next = nextDueTimer(by: target) {
            timers.removeAll { $0 === next }
            elapsed = max(elapsed, next.deadline)
            next.fire()
        }
        elapsed = target
    }

    /// Moves virtual time to `time` since the start (no move if that is in the past).
    public func advance(to time: Duration) {
        advance(by: max(.zero, time - elapsed))
    }

    /// Runs every timer until none is left (at most `limit` of virtual time), and returns the time
    /// then.
    @discardableResult
    public func advanceUntilIdle(limit: Duration = .seconds(3600)) -> Duration {
        let end = elapsed + limit
        while let next = timers.filter({ !$0.isCancelled }).min(by: Timer.fireOrder), next.deadline <= end {
            advance(to: next.deadline)
        }
        return elapsed
    }

    /// Removes stage `index` from the link, as removing its toxic from a live connection does:
    /// ``ToxicStage/stop(link:)`` is called (it forwards what it holds), then the stage leaves the
    /// chain, its timers are cancelled and its held bytes and input pause are released.
    public func stop(stage index: Int) {
        let slot = slots[index]
        guard let stage = slot.stage, isConnectionOpen else { return }
        stage.stop(link: slot)
        detach(slot)
    }

    /// Changes the attributes of a stage on the live connection (``ToxicStage/update(_:link:)``).
    /// - Parameters:
    ///   - index: the stage's place in the chain, from 0.
    ///   - attributes: the toxic's `Attributes` value, as the proxy passes it.
    public func update(stage index: Int, _ attributes: any Sendable) {
        let slot = slots[index]
        guard let stage = slot.stage, isConnectionOpen else { return }
        stage.update(attributes, link: slot)
    }

    // MARK: What the test observes

    /// Every byte forwarded past the last stage, in order.
    public var output: [UInt8] {
        events.flatMap { event -> [UInt8] in
            if case .data(let bytes, _) = event { bytes } else { [] }
        }
    }

    /// The forwarded data events only, as (byte count, time) pairs.
    public var deliveries: [(count: Int, at: Duration)] {
        events.compactMap { event in
            if case .data(let bytes, let time) = event { (bytes.count, time) } else { nil }
        }
    }

    /// Returns the events since the last call (or the start) and forgets them, like
    /// `EmbeddedChannel.readOutbound()`.
    public func takeEvents() -> [Event] {
        defer { events.removeAll() }
        return events
    }

    /// The bytes stage `index` says it holds (``ToxicLink/setHeldBytes(_:)``).
    public func heldBytes(stage index: Int) -> Int { slots[index].held }

    /// The bytes every stage holds.
    public var heldBytes: Int { slots.reduce(0) { $0 + $1.held } }

    /// Whether stage `index` wants input (``ToxicLink/setWantsInput(_:)``; yes until it says no).
    public func wantsInput(stage index: Int) -> Bool { slots[index].wantsInput }

    /// Whether the proxy would read the source now: no stage paused input.
    public var wantsInput: Bool { slots.allSatisfy(\.wantsInput) }

    /// Timers scheduled and neither fired nor cancelled.
    public var pendingTimers: Int { timers.filter { !$0.isCancelled }.count }

    /// Whether stage `index` is still in the chain (not stopped, connection open).
    public func isRunning(stage index: Int) -> Bool { slots[index].stage != nil }

    // MARK: The link's side

    fileprivate func deliver(_ chunk: ToxicChunk, from index: Int) {
        guard isConnectionOpen else { return }
        for slot in slots[index...] {
            if let stage = slot.stage {
                stage.receive(chunk, link: slot)
                return
            }
        }
        events.append(.data(chunk.payload.bytes, at: elapsed))
    }

    fileprivate func deliverEnd(from index: Int) {
        guard isConnectionOpen else { return }
        for slot in slots[index...] {
            if let stage = slot.stage, !slot.endReceived {
                slot.endReceived = true
                stage.endOfStream(link: slot)
                return
            }
        }
        guard !endDelivered else { return }
        endDelivered = true
        events.append(.endOfStream(at: elapsed))
    }

    private func schedule(_ slot: Slot, at deadline: UInt64, _ body: @escaping () -> Void) -> Timer {
        let time = Duration.harnessNanoseconds(deadline > Self.origin ? deadline - Self.origin : 0)
        let timer = Timer(slot: slot, deadline: time, number: nextTimerNumber, body: body)
        nextTimerNumber += 1
        // A stage dropped with its connection schedules nothing.
        if slot.stage != nil && isConnectionOpen { timers.append(timer) }
        return timer
    }

    private func cancel(_ timer: Timer) {
        timers.removeAll { $0 === timer }
    }

    fileprivate func end(_ event: Event) {
        guard isConnectionOpen else { return }
        events.append(event)
        isConnectionOpen = false
        // The proxy kills both links: stages are dropped without a call, timers cancelled.
        for slot in slots where slot.stage != nil { detach(slot) }
    }

    private func detach(_ slot: Slot) {
        slot.stage = nil
        slot.held = 0
        slot.wantsInput = true
        for timer in timers where timer.slot === slot { timer.isCancelled = true }
        timers.removeAll { $0.slot === slot }
    }

    private func nextDueTimer(by target: Duration) -> Timer? {
        guard let next = timers.filter({ !$0.isCancelled }).min(by: Timer.fireOrder), next.deadline <= target else { return nil }
        return next
    }

    /// One stage's place in the chain: the ``ToxicLink`` it talks to.
    private final class Slot: ToxicLink {
        // Weak: a stage may keep its link after the test let the harness go.
        weak var harness: ToxicHarness?
        let index: Int
        var stage: (any ToxicStage)?
        var endReceived = false
        var endForwarded = false
        var held = 0
        var wantsInput = true

        init(harness: ToxicHarness, index: Int, stage: any ToxicStage) {
            self.harness = harness
            self.index = index
            self.stage = stage
        }

        var now: UInt64 { harness?.now ?? ToxicHarness.origin }

        func forward(_ chunk: ToxicChunk) {
            guard stage != nil else { return }
            harness?.deliver(chunk, from: index + 1)
        }

        func forwardEndOfStream() {
            guard stage != nil, !endForwarded else { return }
            endForwarded = true
            harness?.deliverEnd(from: index + 1)
        }

        @discardableResult
        func schedule(at deadline: UInt64, _ body: @escaping () -> Void) -> any ToxicTimer {
            guard let harness else { return Timer(slot: self, deadline: .zero, number: -1, body: {}) }
            return harness.schedule(self, at: deadline, body)
        }

        func closeConnection() {
            guard stage != nil, let harness else { return }
            harness.end(.closed(at: harness.elapsed))
        }

        func resetConnection() {
            guard stage != nil, let harness else { return }
            harness.end(.reset(at: harness.elapsed))
        }

        func setHeldBytes(_ count: Int) {
            guard stage != nil else { return }
            held = count
        }

        func setWantsInput(_ wants: Bool) {
            guard stage != nil else { return }
            wantsInput = wants
        }
    }

    /// A timer of a slot; cancelled with its stage.
    private final class Timer: ToxicTimer {
        weak var slot: Slot?
        let deadline: Duration
        let number: Int
        let body: () -> Void
        var isCancelled = false

        init(slot: Slot, deadline: Duration, number: Int, body: @escaping () -> Void) {
            self.slot = slot
            self.deadline = deadline
            self.number = number
            self.body = body
        }

        static func fireOrder(_ a: Timer, _ b: Timer) -> Bool { (a.deadline, a.number) < (b.deadline, b.number) }

        func fire() {
            guard !isCancelled, slot?.stage != nil else { return }
            isCancelled = true
            body()
        }

        func cancel() {
            guard !isCancelled else { return }
            isCancelled = true
            slot?.harness?.cancel(self)
        }
    }
}

extension Duration {
    /// Whole nanoseconds (a harness's virtual time is never negative).
    fileprivate var harnessNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds / 1_000_000_000))
    }

    fileprivate static func harnessNanoseconds(_ nanoseconds: UInt64) -> Duration { .nanoseconds(Int64(nanoseconds)) }

    /// `12.5 ms`, for event descriptions.
    fileprivate var harnessMilliseconds: String {
        let nanoseconds = harnessNanoseconds
        let whole = nanoseconds / 1_000_000
        let rest = nanoseconds % 1_000_000
        return rest == 0 ? "\(whole) ms" : "\(Double(nanoseconds) / 1e6) ms"
    }
}
