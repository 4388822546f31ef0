import FaultlineKit
import NIOCore

extension ChannelHandlerContext {
    /// Half-closes (FIN) once everything written so far has reached the socket. NIO's own
    /// `close(mode: .output)` escalates to a full close that drops pending writes when the input
    /// is already closed; an empty write completes in order after the pending ones.
    func closeOutputAfterPendingWrites() {
        let promise = eventLoop.makePromise(of: Void.self)
        writeAndFlush(NIOAny(ByteBuffer()), promise: promise)
        let context = NIOLoopBound(self, eventLoop: eventLoop)
        promise.futureResult.whenComplete { _ in context.value.close(mode: .output, promise: nil) }
    }
}

/// A socket buffer as a toxic payload: splitting shares the storage, nothing is copied.
struct BufferPayload: ToxicPayload {
    var buffer: ByteBuffer

    var count: Int { buffer.readableBytes }

    func split(at index: Int) -> (any ToxicPayload, any ToxicPayload) {
        let start = buffer.readerIndex
        let head = buffer.getSlice(at: start, length: index)!
        let tail = buffer.getSlice(at: start + index, length: buffer.readableBytes - index)!
        return (BufferPayload(buffer: head), BufferPayload(buffer: tail))
    }

    var bytes: [UInt8] { Array(buffer.readableBytesView) }
}

/// One direction of a proxied connection: bytes read from the source socket pass through the
/// link's toxic stages, in order, and are written to the destination socket.
///
/// Confined to the connection's event loop. Backpressure: the source is read only while the
/// destination is writable, the stages hold less than ``maximumHeldBytes`` and no stage asked to
/// pause, so a slow reader or a slow toxic slows the sender through TCP flow control.
final class Link {
    /// What the toxics of one link may hold before the proxy stops reading the source. Latency
    /// under heavy traffic needs room (a 5 ms delay at 1 GB/s holds 5 MB); memory stays bounded.
    static let maximumHeldBytes = 8 << 20

    let direction: ToxicStream
    /// Weak: a timer of a stage may outlive the connection by one loop tick.
    weak var connection: ProxyConnection?
    let eventLoop: any EventLoop
    private let counters: DirectionCounters
    /// Toxics in chain order; a slot whose toxicity roll did not fire has no stage.
    private(set) var slots: [StageSlot] = []
    private var activeStages = 0
    var source: ChannelHandlerContext?
    var destination: ChannelHandlerContext?
    /// The upstream is connected: reading may start and the destination takes bytes.
    private(set) var isStarted = false
    /// What reached the end of the chain before the destination was connected: a client can send
    /// and close at once while its upstream (a host name) is still being dialled.
    private var early: [ByteBuffer] = []
    private var earlyEnd = false
    /// Nothing more is forwarded (the connection is closing or the destination is gone).
    private(set) var isDead = false
    private(set) var sourceEnded = false
    private(set) var endDelivered = false
    private var heldBytes = 0
    private var pausingStages = 0
    private var needsFlush = false
    /// The connection's HTTP session when it carries HTTP toxics: it reads the source's bytes
    /// before the stages do.
    var http: HTTPSession?

    init(direction: ToxicStream, connection: ProxyConnection, counters: DirectionCounters) {
        self.direction = direction
        self.connection = connection
        eventLoop = connection.eventLoop
        self.counters = counters
    }

    var now: UInt64 { NIODeadline.now().uptimeNanoseconds }

    // MARK: From the source socket

    func receive(_ buffer: ByteBuffer) {
        counters.received.add(UInt64(buffer.readableBytes), ordering: .relaxed)
        receiveCounted(buffer)
    }

    /// Bytes read from the source and counted already (by the relay, before a handover).
    func receiveCounted(_ buffer: ByteBuffer) {
        guard !isDead else { return }
        if let http {
            http.receive(buffer, from: direction)
        } else {
            forward(buffer)
        }
    }

    /// Bytes from the source or the HTTP session, through the stages: straight to the destination
    /// when no stage runs.
    func forward(_ buffer: ByteBuffer) {
        guard !isDead else { return }
        if activeStages == 0 {
            write(buffer)
        } else {
            deliver(ToxicChunk(payload: BufferPayload(buffer: buffer), receivedAt: now), from: 0)
        }
    }

    func sourceReachedEnd() {
        guard !sourceEnded else { return }
        sourceEnded = true
        guard !isDead else { return }
        if let http { http.sourceReachedEnd(direction) } else { deliverEnd(from: 0) }
        afterEvent()
    }

    // MARK: Through the stages

    func deliver(_ chunk: ToxicChunk, from index: Int) {
        guard !isDead else { return }
        var position = index
        while position < slots.count {
            let slot = slots[position]
            if let stage = slot.stage {
                stage.receive(chunk, link: slot)
                return
            }
            position += 1
        }
        let buffer: ByteBuffer
        if let payload = chunk.payload as? BufferPayload {
            buffer = payload.buffer
        } else {
            buffer = ByteBuffer(bytes: chunk.payload.bytes)
        }
        write(buffer)
    }

    func deliverEnd(from index: Int) {
        guard !isDead else { return }
        var position = index
        while position < slots.count {
            let slot = slots[position]
            if let stage = slot.stage, !slot.endReceived {
                slot.endReceived = true
                stage.endOfStream(link: slot)
                return
            }
            position += 1
        }
        guard !endDelivered else { return }
        guard isStarted else {
            earlyEnd = true
            return
        }
        endDelivered = true
        needsFlush = false
        destination?.closeOutputAfterPendingWrites()
    }

    /// The upstream is connected: delivers what arrived before, then lets reading start.
    func start() {
        guard !isStarted else { return }
        isStarted = true
        for buffer in early { write(buffer) }
        early = []
        if earlyEnd {
            earlyEnd = false
            deliverEnd(from: slots.count)
        }
    }

    // MARK: To the destination socket

    /// Bytes the relay had read before the connection took toxics: written as they are, first
    /// (before ``start()``).
    func forwardUntouched(_ buffer: ByteBuffer) {
        guard let destination, buffer.readableBytes > 0 else { return }
        counters.sent.add(UInt64(buffer.readableBytes), ordering: .relaxed)
        destination.write(NIOAny(buffer), promise: nil)
        needsFlush = true
    }

    private func write(_ buffer: ByteBuffer) {
        guard isStarted else {
            early.append(buffer)
            return
        }
        guard let destination, buffer.readableBytes > 0 else { return }
        counters.sent.add(UInt64(buffer.readableBytes), ordering: .relaxed)
        destination.write(NIOAny(buffer), promise: nil)
        needsFlush = true
    }

    /// Flushes what was written and reads more if nothing holds the link back. Called after every
    /// event that may have forwarded bytes (a read batch, a timer, a toxic change).
    func afterEvent() {
        if needsFlush {
            needsFlush = false
            destination?.flush()
        }
        readIfPossible()
    }

    func readIfPossible() {
        guard isStarted, !isDead, !sourceEnded, pausingStages == 0, heldBytes < Self.maximumHeldBytes,
            let source, let destination, destination.channel.isWritable
        else { return }
        source.read()
    }

    // MARK: Held bytes and pauses, from slots

    func heldChanged(by delta: Int) { heldBytes += delta }

    func pausesChanged(by delta: Int) { pausingStages += delta }

    // MARK: Toxic changes

    /// Appends a toxic at the end of the chain (as Toxiproxy does) and starts it if it applies.
    func add(_ toxic: ActiveToxic, roll: ToxicRoll) {
        let slot = StageSlot(link: self, toxic: toxic, roll: roll, index: slots.count)
        slots.append(slot)
        if roll.applies(toxic.definition.toxicity) { start(slot) }
    }

    func update(_ toxic: ActiveToxic) {
        guard let slot = slots.first(where: { $0.toxic.definition.name == toxic.definition.name }) else { return }
        slot.toxic = toxic
        let applies = slot.roll.applies(toxic.definition.toxicity)
        if let stage = slot.stage {
            if applies { stage.update(toxic.prepared.typed, link: slot) } else { stop(slot) }
        } else if applies {
            start(slot)
        }
    }

    func remove(named name: String) {
        guard let index = slots.firstIndex(where: { $0.toxic.definition.name == name }) else { return }
        let slot = slots[index]
        stop(slot)
        slots.remove(at: index)
        for position in index..<slots.count { slots[position].index = position }
    }

    func removeAll() {
        while let last = slots.last { remove(named: last.toxic.definition.name) }
    }

    private func start(_ slot: StageSlot) {
        // A closing connection runs no new toxics (their timers would outlive it).
        guard !isDead else { return }
        let stage = slot.toxic.prepared.makeStage(random: slot.roll.stageRandom)
        // A stage that forwards everything as it comes (an HTTP toxic's, which acts in the HTTP
        // session instead) takes no place in the chain: bytes skip it.
        if stage is ForwardingStage { return }
        slot.stage = stage
        slot.endReceived = false
        activeStages += 1
        stage.start(link: slot)
    }

    private func stop(_ slot: StageSlot) {
        guard let stage = slot.stage else { return }
        stage.stop(link: slot)
        slot.detach()
        activeStages -= 1
    }

    /// Stops forwarding for good: the connection is closing or the destination is gone.
    func kill() {
        guard !isDead else { return }
        isDead = true
        http?.kill()
        for slot in slots where slot.stage != nil {
            slot.detach()
        }
        activeStages = 0
        heldBytes = 0
        pausingStages = 0
        early = []
        earlyEnd = false
    }
}

/// The result of a toxicity roll for one toxic on one connection: drawn once, so updating a toxic's
/// toxicity re-judges the same draw, and other toxics are never re-rolled.
struct ToxicRoll {
    let value: Double
    let stageRandom: SeededRandom

    /// The roll for `toxic` on connection `number` of `proxy` in a run seeded with `seed`.
    init(seed: UInt64, proxy: String, toxic: String, connection: UInt64) {
        var random = SeededRandom(seed: seed, stream: "\(proxy)\u{1F}\(toxic)\u{1F}\(connection)")
        value = random.nextUnit()
        stageRandom = random
    }

    func applies(_ toxicity: Double) -> Bool { value < toxicity }
}

/// One toxic's place in a link: the ``ToxicLink`` its stage talks to.
final class StageSlot: ToxicLink {
    private(set) weak var link: Link?
    var toxic: ActiveToxic
    let roll: ToxicRoll
    var index: Int
    var stage: (any ToxicStage)?
    var endReceived = false
    var endForwarded = false
    private var held = 0
    private var pausing = false
    private var timers: [SlotTimer] = []

    init(link: Link, toxic: ActiveToxic, roll: ToxicRoll, index: Int) {
        self.link = link
        self.toxic = toxic
        self.roll = roll
        self.index = index
    }

    var now: UInt64 { NIODeadline.now().uptimeNanoseconds }

    func forward(_ chunk: ToxicChunk) {
        guard stage != nil else { return }
        link?.deliver(chunk, from: index + 1)
    }

    func forwardEndOfStream() {
        guard stage != nil, !endForwarded else { return }
        endForwarded = true
        link?.deliverEnd(from: index + 1)
    }

    @discardableResult
    func schedule(at deadline: UInt64, _ body: @escaping () -> Void) -> any ToxicTimer {
        let timer = SlotTimer(slot: self)
        guard let link, stage != nil else { return timer }
        timer.scheduled = link.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: .uptimeNanoseconds(deadline)) {
            [weak timer] in
            // A cancelled timer may still be in the loop's batch of due tasks: it has left its
            // slot's list and been released, so it does nothing.
            guard let timer, let slot = timer.slot, let link = slot.link else { return }
            slot.remove(timer)
            body()
            link.afterEvent()
        }
        timers.append(timer)
        return timer
    }

    func closeConnection() {
        guard stage != nil else { return }
        link?.connection?.closeGracefully()
    }

    func resetConnection() {
        guard stage != nil else { return }
        link?.connection?.reset()
    }

    func setHeldBytes(_ count: Int) {
        guard stage != nil, let link else { return }
        link.heldChanged(by: count - held)
        held = count
    }

    func setWantsInput(_ wants: Bool) {
        guard stage != nil, wants == pausing, let link else { return }
        pausing = !wants
        link.pausesChanged(by: pausing ? 1 : -1)
    }

    fileprivate func remove(_ timer: SlotTimer) {
        if let index = timers.firstIndex(where: { $0 === timer }) { timers.remove(at: index) }
    }

    /// Drops the stage: cancels its timers and returns what it held and paused to the link.
    func detach() {
        for timer in timers { timer.scheduled?.cancel() }
        timers.removeAll()
        link?.heldChanged(by: -held)
        held = 0
        if pausing { link?.pausesChanged(by: -1) }
        pausing = false
        stage = nil
        endForwarded = false
    }
}

/// A timer of a slot, cancelled with the slot's stage.
final class SlotTimer: ToxicTimer {
    weak var slot: StageSlot?
    var scheduled: Scheduled<Void>?

    init(slot: StageSlot) { self.slot = slot }

    func cancel() {
        scheduled?.cancel()
        scheduled = nil
        slot?.remove(self)
    }
}
