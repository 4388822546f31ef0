import FaultlineKit
import FaultlineTesting
import Testing

/// The harness plugin authors test their toxics with keeps the in-process proxy's rules for a
/// link: these tests drive it with small stages written here (the built-in toxics' timings are
/// tested with it in FaultlineProxyTests).
@Suite("ToxicHarness")
struct ToxicHarnessTests {
    /// Holds every chunk until `release` runs, and records what it was told.
    final class Recorder: ToxicStage {
        var log: [String] = []
        var held: [ToxicChunk] = []
        var onStart: ((any ToxicLink) -> Void)?

        func start(link: any ToxicLink) {
            log.append("start")
            onStart?(link)
        }

        func receive(_ chunk: ToxicChunk, link: any ToxicLink) {
            log.append("receive \(chunk.count)")
            held.append(chunk)
            link.setHeldBytes(held.reduce(0) { $0 + $1.count })
        }

        func endOfStream(link: any ToxicLink) { log.append("end") }

        func stop(link: any ToxicLink) {
            log.append("stop")
            release(link)
        }

        func update(_ attributes: any Sendable, link: any ToxicLink) { log.append("update \(attributes)") }

        func release(_ link: any ToxicLink) {
            for chunk in held { link.forward(chunk) }
            held = []
            link.setHeldBytes(0)
        }
    }

    /// Passes everything on.
    final class Pass: ToxicStage {
        func receive(_ chunk: ToxicChunk, link: any ToxicLink) { link.forward(chunk) }
        func stop(link: any ToxicLink) {}
        func update(_ attributes: any Sendable, link: any ToxicLink) {}
    }

    @Test("timers fire in deadline order, equal deadlines in scheduling order, with now at their deadline")
    func timerOrder() {
        let stage = Recorder()
        var fired: [String] = []
        stage.onStart = { link in
            let start = link.now
            link.schedule(at: start + 30) { fired.append("c at \(link.now - start)") }
            link.schedule(at: start + 10) { fired.append("a at \(link.now - start)") }
            link.schedule(at: start + 10) { fired.append("b at \(link.now - start)") }
            let cancelled = link.schedule(at: start + 20) { fired.append("cancelled") }
            cancelled.cancel()
            // In the past: runs at the next advance, at the current time.
            link.schedule(at: start - 5) { fired.append("late at \(link.now - start)") }
        }
        let harness = ToxicHarness(stage)
        #expect(harness.pendingTimers == 4)
        harness.advance(by: .nanoseconds(0))
        #expect(fired == ["late at 0"])
        harness.advance(by: .nanoseconds(29))
        #expect(fired == ["late at 0", "a at 10", "b at 10"])
        harness.advance(by: .nanoseconds(1))
        #expect(fired == ["late at 0", "a at 10", "b at 10", "c at 30"])
        #expect(harness.elapsed == .nanoseconds(30) && harness.pendingTimers == 0)
    }

    @Test("chunks go stage to stage; the end reaches each stage once and is recorded once")
    func chain() {
        let first = Recorder()
        let harness = ToxicHarness([first, Pass(), Pass()])
        harness.send("abc")
        harness.sendEndOfStream()
        harness.sendEndOfStream()
        #expect(first.log == ["start", "receive 3", "end"])
        #expect(harness.events.isEmpty && harness.heldBytes(stage: 0) == 3 && harness.heldBytes == 3)
        harness.advance(by: .milliseconds(5))
        harness.stop(stage: 0)
        #expect(first.log == ["start", "receive 3", "end", "stop"])
        // The end the first stage never forwarded is lost with it, as with a stage that ate it.
        #expect(harness.events == [.data("abc", at: .milliseconds(5))])
        #expect(!harness.isRunning(stage: 0) && harness.isRunning(stage: 1) && harness.heldBytes == 0)

        let passing = ToxicHarness([Pass(), Pass()])
        passing.send("abc")
        passing.sendEndOfStream()
        passing.sendEndOfStream()
        passing.send("late")
        #expect(passing.events == [.data("abc", at: .zero), .endOfStream(at: .zero)])
    }

    @Test("a stopped stage is out of the chain: later bytes skip it, and what it forwards afterwards is dropped")
    func stoppedStage() {
        let stage = Recorder()
        var link: (any ToxicLink)?
        stage.onStart = { link = $0 }
        let harness = ToxicHarness([stage, Pass()])
        harness.stop(stage: 0)
        harness.send("direct")
        #expect(harness.events == [.data("direct", at: .zero)])
        link?.forward(ToxicChunk(bytes: Array("ghost".utf8), receivedAt: harness.now))
        link?.closeConnection()
        #expect(harness.events.count == 1 && harness.isConnectionOpen)
    }

    @Test("closing or resetting drops every stage without a call, cancels every timer, and stops the flow", arguments: [false, true])
    func closing(_ reset: Bool) {
        let first = Recorder()
        let second = Recorder()
        var link: (any ToxicLink)?
        second.onStart = {
            link = $0; $0.schedule(at: $0.now + 1_000_000) { Issue.record("a dropped stage's timer fired") }
        }
        let harness = ToxicHarness([first, second])
        harness.send("x")
        if reset { link?.resetConnection() } else { link?.closeConnection() }
        harness.send("y")
        harness.sendEndOfStream()
        harness.stop(stage: 0)
        harness.advance(by: .seconds(1))
        #expect(harness.events == [reset ? .reset(at: .zero) : .closed(at: .zero)])
        #expect(first.log == ["start", "receive 1"] && !harness.isConnectionOpen && harness.pendingTimers == 0)
    }

    @Test("held bytes and input pauses are per stage; the source is read only while no stage pauses")
    func backpressure() {
        var links: [any ToxicLink] = []
        let stages = [Recorder(), Recorder()]
        for stage in stages { stage.onStart = { links.append($0) } }
        let harness = ToxicHarness(stages)
        links[1].setWantsInput(false)
        #expect(harness.wantsInput(stage: 0) && !harness.wantsInput(stage: 1) && !harness.wantsInput)
        harness.stop(stage: 1)
        #expect(harness.wantsInput)
    }

    @Test("update reaches the stage with the attributes; appending starts a stage on the live link")
    func updateAndAppend() {
        let first = Recorder()
        let harness = ToxicHarness(first)
        harness.update(stage: 0, 42)
        harness.advance(by: .milliseconds(7))
        let late = Recorder()
        var startedAt: UInt64?
        late.onStart = { startedAt = $0.now }
        harness.append(late)
        #expect(first.log == ["start", "update 42"])
        #expect(startedAt == ToxicHarness.origin + 7_000_000)
    }

    @Test("events describe themselves for failure messages")
    func descriptions() {
        #expect(ToxicHarness.Event.data("hi", at: .milliseconds(12)).description == "data \"hi\" at 12 ms")
        #expect(ToxicHarness.Event.data([UInt8](repeating: 0, count: 100), at: .microseconds(1500)).description == "data 100 bytes at 1.5 ms")
        #expect(ToxicHarness.Event.reset(at: .seconds(2)).description == "reset at 2000 ms")
    }
}

/// The toxic docs/extending.md writes, verbatim, tested as the guide shows.
public struct DropEveryToxic: Toxic {
    public static let type = "drop_every"
    public static let summary = "Drop every n-th chunk of a direction"
    public static let attributeHelp = ["n": "drop one chunk in n (n ≥ 2)"]

    public struct Attributes: Codable, Sendable {
        public var n: Int
        public init(n: Int = 10) { self.n = n }
        enum CodingKeys: String, CodingKey { case n }
        public init(from decoder: any Decoder) throws {
            n = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Int.self, forKey: .n) ?? 10
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        if attributes.n < 2 { throw ArgumentError("n", "n must be at least 2") }
    }

    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage {
        DropEveryStage(n: attributes.n)
    }
}

final class DropEveryStage: ToxicStage {
    private var n: Int
    private var seen = 0
    init(n: Int) { self.n = n }

    func receive(_ chunk: ToxicChunk, link: any ToxicLink) {
        seen += 1
        if seen % n != 0 { link.forward(chunk) }
    }

    func stop(link: any ToxicLink) {}

    func update(_ attributes: any Sendable, link: any ToxicLink) {
        if let attributes = attributes as? DropEveryToxic.Attributes { n = attributes.n }
    }
}

@Suite("The guide's toxic")
struct GuideToxicTests {
    @Test("drop_every, tested as docs/extending.md shows")
    func dropsEveryThirdChunk() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(DropEveryToxic.self, .init(n: 3)))  // validated first
        for word in ["a", "b", "c", "d"] {
            harness.send(word)
            harness.advance(by: .milliseconds(10))
        }
        harness.sendEndOfStream()
        #expect(
            harness.events == [
                .data("a", at: .zero), .data("b", at: .milliseconds(10)), .data("d", at: .milliseconds(30)), .endOfStream(at: .milliseconds(40)),
            ])
        #expect(throws: ArgumentError.self) { try ToxicHarness.stage(DropEveryToxic.self, .init(n: 1)) }
    }
}
