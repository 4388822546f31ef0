import FaultlineKit
@testable import FaultlineProxy
import NIOCore
import Testing

/// A ``ToxicLink`` whose clock the test moves: it records what a stage forwards and runs its
/// timers when the test says.
final class FakeLink: ToxicLink {
    var now: UInt64 = 1_000_000_000
    private(set) var forwarded: [ToxicChunk] = []
    private(set) var ended = false
    private(set) var held = 0
    private var timers: [(deadline: UInt64, body: () -> Void, timer: FakeTimer)] = []

    final class FakeTimer: ToxicTimer {
        var cancelled = false
        func cancel() { cancelled = true }
    }

    var pendingTimers: Int { timers.filter { !$0.timer.cancelled }.count }

    func forward(_ chunk: ToxicChunk) { forwarded.append(chunk) }
    func forwardEndOfStream() { ended = true }
    func closeConnection() {}
    func resetConnection() {}
    func setHeldBytes(_ count: Int) { held = count }
    func setWantsInput(_ wants: Bool) {}

    @discardableResult
    func schedule(at deadline: UInt64, _ body: @escaping () -> Void) -> any ToxicTimer {
        let timer = FakeTimer()
        timers.append((deadline, body, timer))
        return timer
    }

    /// Moves the clock to `time`, running the timers due by then in deadline order.
    func advance(to time: UInt64) {
        while let next = timers.enumerated().filter({ !$0.element.timer.cancelled && $0.element.deadline <= time }).min(by: {
            $0.element.deadline < $1.element.deadline
        }) {
            timers.remove(at: next.offset)
            now = max(now, next.element.deadline)
            next.element.body()
        }
        now = max(now, time)
    }

    /// Runs the timers due now, as the next turn of the loop does.
    func turn() { advance(to: now) }
}

@Suite("Toxic stages on a virtual clock")
struct StageTests {
    static func chunk(_ count: Int, at time: UInt64) -> ToxicChunk {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        for index in 0..<count { buffer.writeInteger(UInt8(truncatingIfNeeded: index)) }
        return ToxicChunk(payload: BufferPayload(buffer: buffer), receivedAt: time)
    }

    @Test("slicer cuts pieces only as it sends them, a turn's worth at a time, in order and within the size bounds")
    func slicerCutsLazily() {
        let link = FakeLink()
        let stage = SlicerStage(SlicerToxic.Attributes(average_size: 2, size_variation: 1, delay: 0), random: SeededRandom(seed: 3))
        stage.receive(Self.chunk(100_000, at: link.now), link: link)
        // The first turn sends its share; the rest waits whole, counted as held, until the next turns.
        #expect(link.forwarded.count == SlicerStage.piecesPerTurn)
        #expect(link.held == 100_000 - link.forwarded.reduce(0) { $0 + $1.count })
        #expect(link.pendingTimers == 1)
        stage.endOfStream(link: link)
        #expect(!link.ended)
        while link.pendingTimers > 0 { link.turn() }
        #expect(link.held == 0)
        #expect(link.ended)
        let bytes = link.forwarded.flatMap { $0.payload.bytes }
        #expect(bytes == (0..<100_000).map { UInt8(truncatingIfNeeded: $0) })
        #expect(link.forwarded.allSatisfy { (1...3).contains($0.count) })
    }

    @Test("slicer spaces pieces by its delay across chunks, and a stop forwards what is left at once")
    func slicerDelayAndStop() {
        let link = FakeLink()
        let stage = SlicerStage(SlicerToxic.Attributes(average_size: 10, size_variation: 0, delay: 1000), random: SeededRandom(seed: 3))
        let start = link.now
        stage.receive(Self.chunk(40, at: start), link: link)
        stage.receive(Self.chunk(25, at: start), link: link)
        #expect(link.forwarded.map(\.count) == [10])
        link.advance(to: start + 2_000_000)
        #expect(link.forwarded.map(\.count) == [10, 10, 10])
        stage.stop(link: link)
        #expect(link.forwarded.map(\.count) == [10, 10, 10, 10, 25])
        #expect(link.held == 0)
    }
}
