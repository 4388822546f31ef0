import FaultlineKit
import FaultlineProxy
import FaultlineTesting
import Testing

/// Milliseconds of virtual time.
private func ms(_ value: Int) -> Duration { .milliseconds(value) }

/// Each built-in toxic's stage on a ``ToxicHarness``: what it forwards, when, to the nanosecond of
/// virtual time, what it holds and when it closes or resets. No sockets and no real time: every
/// timing here is exact and the suite runs in milliseconds. The proxy's own part (sockets,
/// backpressure, toxicity rolls, live changes) is tested over loopback in ToxicBehaviourTests.
@Suite("Toxic stages in virtual time")
struct ToxicTimingTests {
    typealias Event = ToxicHarness.Event

    /// A named way to make a stage, for parametrised tables.
    struct Toxic: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var make: @Sendable () throws -> any ToxicStage

        init(_ name: String, _ make: @escaping @Sendable () throws -> any ToxicStage) {
            testDescription = name
            self.make = make
        }

        static func latency(_ latency: Int, jitter: Int = 0) -> Toxic {
            Toxic("latency \(latency)±\(jitter) ms") { try ToxicHarness.stage(LatencyToxic.self, .init(latency: latency, jitter: jitter)) }
        }
        static func bandwidth(_ rate: Int) -> Toxic {
            Toxic("bandwidth \(rate) KB/s") { try ToxicHarness.stage(BandwidthToxic.self, .init(rate: rate)) }
        }
        static func slowClose(_ delay: Int) -> Toxic {
            Toxic("slow_close \(delay) ms") { try ToxicHarness.stage(SlowCloseToxic.self, .init(delay: delay)) }
        }
        static func timeout(_ timeout: Int) -> Toxic {
            Toxic("timeout \(timeout) ms") { try ToxicHarness.stage(TimeoutToxic.self, .init(timeout: timeout)) }
        }
        static func resetPeer(_ timeout: Int) -> Toxic {
            Toxic("reset_peer \(timeout) ms") { try ToxicHarness.stage(ResetPeerToxic.self, .init(timeout: timeout)) }
        }
        static func slicer(_ size: Int, variation: Int = 0, delay: Int = 0) -> Toxic {
            Toxic("slicer \(size)±\(variation) B, \(delay) µs") {
                try ToxicHarness.stage(SlicerToxic.self, .init(average_size: size, size_variation: variation, delay: delay))
            }
        }
        static func limitData(_ bytes: Int) -> Toxic {
            Toxic("limit_data \(bytes) B") { try ToxicHarness.stage(LimitDataToxic.self, .init(bytes: bytes)) }
        }
        static let noop = Toxic("noop") { try ToxicHarness.stage(NoopToxic.self, .init()) }
    }

    // MARK: Every toxic, one table

    /// "ping" and the end of stream arrive at time zero; the chain runs until no timer is left.
    @Test(
        "what each toxic does to \"ping\" and the end of stream, and exactly when",
        arguments: [
            (Toxic.noop, [Event.data("ping", at: ms(0)), .endOfStream(at: ms(0))]),
            (Toxic.latency(0), [.data("ping", at: ms(0)), .endOfStream(at: ms(0))]),
            (Toxic.latency(100), [.data("ping", at: ms(100)), .endOfStream(at: ms(100))]),
            (Toxic.latency(10_000), [.data("ping", at: ms(10_000)), .endOfStream(at: ms(10_000))]),
            // 1 KB/s: 4 bytes take 4 ms.
            (Toxic.bandwidth(1), [.data("ping", at: ms(4)), .endOfStream(at: ms(4))]),
            (Toxic.slowClose(300), [.data("ping", at: ms(0)), .endOfStream(at: ms(300))]),
            (Toxic.slowClose(0), [.data("ping", at: ms(0)), .endOfStream(at: ms(0))]),
            // The data is dropped; the connection closes `timeout` after the toxic started.
            (Toxic.timeout(200), [.endOfStream(at: ms(0)), .closed(at: ms(200))]),
            (Toxic.timeout(0), [.endOfStream(at: ms(0))]),
            // The reset comes `timeout` after the first data; what was held is lost with it.
            (Toxic.resetPeer(100), [.reset(at: ms(100))]),
            (Toxic.resetPeer(0), [.reset(at: ms(0))]),
            (Toxic.slicer(1), [.data("p", at: ms(0)), .data("i", at: ms(0)), .data("n", at: ms(0)), .data("g", at: ms(0)), .endOfStream(at: ms(0))]),
            // 1 ms between pieces: the last of four leaves 3 ms after the first.
            (
                Toxic.slicer(1, delay: 1000),
                [.data("p", at: ms(0)), .data("i", at: ms(1)), .data("n", at: ms(2)), .data("g", at: ms(3)), .endOfStream(at: ms(3))]
            ),
            (Toxic.limitData(2), [.data("pi", at: ms(0)), .closed(at: ms(0))]),
            (Toxic.limitData(4), [.data("ping", at: ms(0)), .closed(at: ms(0))]),
            (Toxic.limitData(0), [.closed(at: ms(0))]),
        ])
    func pingAndEnd(_ toxic: Toxic, _ expected: [Event]) throws {
        let harness = ToxicHarness(try toxic.make())
        harness.send("ping")
        harness.sendEndOfStream()
        harness.advanceUntilIdle()
        #expect(harness.events == expected)
        #expect(harness.pendingTimers == 0)
    }

    /// Bytes in, chunk by chunk, with the end of stream; the toxic removed while it still holds
    /// some: everything arrives, in order, at the moment of the removal, with the end of stream.
    @Test(
        "removing a toxic forwards what it holds at once, in order, and a pending end of stream",
        arguments: [
            Toxic.noop, .latency(1000), .latency(1000, jitter: 500), .bandwidth(1), .bandwidth(0), .slowClose(1000), .slicer(3, delay: 100_000),
            .resetPeer(1000), .limitData(1_000_000),
        ])
    func stopForwardsWhatIsHeld(_ toxic: Toxic) throws {
        let harness = ToxicHarness(try toxic.make())
        let chunks = ["first ", "second ", "third"]
        for chunk in chunks {
            harness.send(chunk)
            harness.advance(by: ms(10))
        }
        harness.sendEndOfStream()
        harness.advance(by: ms(10))
        harness.stop(stage: 0)
        #expect(String(decoding: harness.output, as: UTF8.self) == chunks.joined())
        #expect(harness.events.filter(\.isEndOfStream).count == 1 && harness.events.last?.isEndOfStream == true)
        #expect(harness.events.allSatisfy { $0.time <= ms(40) })
        #expect(harness.heldBytes == 0 && harness.wantsInput && harness.pendingTimers == 0)
        harness.advanceUntilIdle()
        #expect(harness.events.allSatisfy { $0.time <= ms(40) })
        // Once removed, the stage is out of the chain.
        #expect(!harness.isRunning(stage: 0))
    }

    // MARK: latency

    @Test("latency counts from when the proxy read the bytes, and keeps them in order")
    func latencyFromReadTime() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(LatencyToxic.self, .init(latency: 100)))
        harness.send("a")
        harness.advance(to: ms(10))
        harness.send("b")
        // Read at 5 ms but handed to the stage at 30 ms (an earlier stage held it): due at 105 ms.
        harness.advance(to: ms(30))
        harness.send(Array("c".utf8), readAt: ms(5))
        harness.advance(to: ms(99))
        #expect(harness.events == [])
        #expect(harness.heldBytes == 3)
        harness.advance(to: ms(100))
        #expect(harness.takeEvents() == [.data("a", at: ms(100))])
        harness.advance(to: ms(110))
        // "c" was due before "b" but never overtakes it.
        #expect(harness.events == [.data("b", at: ms(110)), .data("c", at: ms(110))])
        #expect(harness.heldBytes == 0)
    }

    @Test("two latency toxics on one direction add up, as in Toxiproxy's chain", arguments: [(100, 100), (100, 50), (0, 250)])
    func latenciesAddUp(_ first: Int, _ second: Int) throws {
        let harness = ToxicHarness([
            try ToxicHarness.stage(LatencyToxic.self, .init(latency: first)),
            try ToxicHarness.stage(LatencyToxic.self, .init(latency: second)),
        ])
        for _ in 0..<3 {
            harness.send("ping")
            harness.advance(by: ms(1000))
        }
        #expect(harness.events == (0..<3).map { .data("ping", at: ms(1000 * $0 + first + second)) })
    }

    /// Every delay, measured on chunks sent far apart.
    static func jitteredDelays(seed: UInt64) throws -> [Duration] {
        let harness = ToxicHarness(try ToxicHarness.stage(LatencyToxic.self, .init(latency: 100, jitter: 50), seed: seed))
        for index in 0..<50 {
            harness.advance(to: .seconds(index))
            harness.send("x")
        }
        harness.advanceUntilIdle()
        return harness.events.enumerated().map { $0.element.time - .seconds($0.offset) }
    }

    @Test("jitter: every delay lies in latency ± jitter, the seed replays the same delays, another seed others")
    func jitter() throws {
        let delays = try Self.jitteredDelays(seed: 7)
        #expect(delays.count == 50)
        #expect(delays.allSatisfy { $0 >= ms(50) && $0 < ms(150) }, "\(delays)")
        #expect(Set(delays).count > 40, "delays vary: \(delays)")
        #expect(try Self.jitteredDelays(seed: 7) == delays)
        #expect(try Self.jitteredDelays(seed: 8) != delays)
    }

    @Test("jitter never reorders: a chunk due earlier than the one before waits for it")
    func jitterKeepsOrder() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(LatencyToxic.self, .init(latency: 100, jitter: 90), seed: 3))
        for index in 0..<200 {
            harness.send(Array(String(index).utf8) + [0x20])
            harness.advance(by: .microseconds(100))
        }
        harness.advanceUntilIdle()
        #expect(String(decoding: harness.output, as: UTF8.self) == (0..<200).map { "\($0) " }.joined())
        let times = harness.events.map(\.time)
        #expect(times == times.sorted())
        #expect(times.first! >= ms(10) && times.last! < ms(20) + ms(190))
    }

    @Test("updating latency applies to bytes that arrive afterwards; held ones keep their time")
    func latencyUpdate() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(LatencyToxic.self, .init(latency: 100)))
        harness.send("a")
        harness.advance(by: ms(10))
        harness.update(stage: 0, LatencyToxic.Attributes(latency: 300))
        harness.send("b")
        harness.advanceUntilIdle()
        #expect(harness.events == [.data("a", at: ms(100)), .data("b", at: ms(310))])
    }

    // MARK: bandwidth

    @Test("bandwidth paces at the rate, 10 ms of data at a time", arguments: [(1, 100), (100, 10_000), (100, 1_000_000), (10_000, 1_000_000)])
    func bandwidthPacing(_ rate: Int, _ bytes: Int) throws {
        let harness = ToxicHarness(try ToxicHarness.stage(BandwidthToxic.self, .init(rate: rate)))
        harness.send(count: bytes)
        harness.advanceUntilIdle()
        let bytesPerSecond = rate * 1000
        let piece = bytesPerSecond / 100
        let deliveries = harness.deliveries
        #expect(deliveries.count == (bytes + piece - 1) / piece)
        #expect(deliveries.allSatisfy { $0.count <= piece })
        // After every piece, exactly as many bytes have left as the rate allows by then.
        var sent = 0
        for delivery in deliveries {
            sent += delivery.count
            #expect(delivery.at == .nanoseconds(Int64(sent) * 1_000_000_000 / Int64(bytesPerSecond)))
        }
        #expect(sent == bytes)
    }

    @Test("bandwidth holds about 100 ms of data (at least 64 KiB) before it asks the source to pause")
    func bandwidthBackpressure() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(BandwidthToxic.self, .init(rate: 100)))
        harness.send(count: 100_000)
        #expect(harness.heldBytes == 100_000)
        #expect(!harness.wantsInput)
        // 1 000 bytes leave every 10 ms; below 65 536 held, input resumes.
        harness.advance(to: ms(340))
        #expect(harness.heldBytes == 66_000 && !harness.wantsInput)
        harness.advance(to: ms(350))
        #expect(harness.heldBytes == 65_000 && harness.wantsInput)
    }

    @Test("after an idle spell bandwidth restarts its clock with 10 ms of credit, no more")
    func bandwidthIdleCredit() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(BandwidthToxic.self, .init(rate: 100)))
        harness.send(count: 1000)
        harness.advance(to: .seconds(1))
        harness.send(count: 3000)
        harness.advanceUntilIdle()
        #expect(harness.deliveries.map(\.at) == [ms(10), ms(1000), ms(1010), ms(1020)])
    }

    @Test("updating the rate mid-transfer keeps the pacing clock of the connection")
    func bandwidthUpdate() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(BandwidthToxic.self, .init(rate: 100)))
        harness.send(count: 10_000)
        harness.advance(to: ms(50))
        #expect(harness.output.count == 5000)
        harness.update(stage: 0, BandwidthToxic.Attributes(rate: 200))
        harness.advanceUntilIdle()
        // Twice the rate from 50 ms on: 2 000-byte pieces 10 ms apart.
        #expect(harness.deliveries.dropFirst(5).map(\.count) == [2000, 2000, 1000])
        #expect(harness.deliveries.dropFirst(5).map(\.at) == [ms(60), ms(70), ms(75)])
    }

    @Test("bandwidth 0 (Toxiproxy's default) holds everything, asks the source to pause past 64 KiB, and paces from the moment it gets a rate")
    func bandwidthZero() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(BandwidthToxic.self, .init(rate: 0)))
        harness.send(count: 70_000)
        harness.advance(to: .seconds(60))
        #expect(harness.output.isEmpty && harness.heldBytes == 70_000 && !harness.wantsInput && harness.pendingTimers == 0)
        harness.update(stage: 0, BandwidthToxic.Attributes(rate: 1000))
        harness.advanceUntilIdle()
        // 10 000-byte pieces 10 ms apart from the update at 60 s, not a burst of what waited.
        #expect(harness.deliveries.map(\.count) == [10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000])
        #expect(harness.deliveries.map(\.at) == (1...7).map { .seconds(60) + ms(10 * $0) })
        #expect(harness.wantsInput)
        harness.update(stage: 0, BandwidthToxic.Attributes(rate: 0))
        harness.send("held")
        harness.sendEndOfStream()
        harness.advance(by: .seconds(10))
        #expect(harness.output.count == 70_000 && harness.heldBytes == 4)
        #expect(harness.events.filter(\.isEndOfStream).isEmpty)
    }

    // MARK: slow_close

    @Test("slow_close: removed while it delays the close, the close passes at once")
    func slowCloseStop() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(SlowCloseToxic.self, .init(delay: 5000)))
        harness.send("bye")
        harness.sendEndOfStream()
        harness.advance(by: ms(40))
        #expect(harness.events == [.data("bye", at: ms(0))])
        harness.stop(stage: 0)
        #expect(harness.events == [.data("bye", at: ms(0)), .endOfStream(at: ms(40))])
        harness.advanceUntilIdle()
        #expect(harness.events.count == 2)
    }

    // MARK: timeout

    @Test("timeout: the timer runs from when the toxic starts on the connection, not from the data")
    func timeoutFromStart() throws {
        let harness = ToxicHarness([])
        harness.advance(to: ms(300))
        harness.append(try ToxicHarness.stage(TimeoutToxic.self, .init(timeout: 200)))
        harness.advance(to: ms(450))
        harness.send("lost")
        #expect(harness.events == [])
        harness.advance(to: ms(499))
        #expect(harness.events == [])
        harness.advance(to: ms(500))
        #expect(harness.events == [.closed(at: ms(500))])
        #expect(harness.pendingTimers == 0 && !harness.isConnectionOpen)
    }

    @Test("timeout 0 holds the connection open and silent for good")
    func timeoutForever() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(TimeoutToxic.self, .init(timeout: 0)))
        harness.send("lost")
        harness.advance(by: .seconds(3600))
        #expect(harness.events == [] && harness.isConnectionOpen && harness.pendingTimers == 0)
    }

    @Test("removing timeout closes the connection only if it dropped bytes (their stream is corrupt)", arguments: [true, false])
    func timeoutRemoval(_ dropped: Bool) throws {
        let harness = ToxicHarness(try ToxicHarness.stage(TimeoutToxic.self, .init(timeout: 1000)))
        if dropped { harness.send("lost") }
        harness.advance(to: ms(100))
        harness.stop(stage: 0)
        harness.advanceUntilIdle()
        if dropped {
            #expect(harness.events == [.closed(at: ms(100))])
        } else {
            #expect(harness.events == [] && harness.isConnectionOpen)
            harness.send("after")
            #expect(harness.events == [.data("after", at: ms(100))])
        }
    }

    @Test("updating timeout restarts its timer from the update")
    func timeoutUpdate() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(TimeoutToxic.self, .init(timeout: 1000)))
        harness.advance(to: ms(500))
        harness.update(stage: 0, TimeoutAttributes(timeout: 200))
        harness.advanceUntilIdle()
        #expect(harness.events == [.closed(at: ms(700))])
    }

    // MARK: reset_peer

    @Test("reset_peer holds what arrives until the reset; the end of stream also starts the timer")
    func resetPeerHolds() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(ResetPeerToxic.self, .init(timeout: 100)))
        harness.advance(to: ms(50))
        harness.send("hello")
        harness.advance(to: ms(80))
        harness.send("again")
        #expect(harness.heldBytes == 10 && harness.events == [])
        harness.advanceUntilIdle()
        #expect(harness.events == [.reset(at: ms(150))])

        let ended = ToxicHarness(try ToxicHarness.stage(ResetPeerToxic.self, .init(timeout: 100)))
        ended.advance(to: ms(20))
        ended.sendEndOfStream()
        ended.advanceUntilIdle()
        #expect(ended.events == [.reset(at: ms(120))])
    }

    @Test("updating reset_peer's timeout counts from the first data; a deadline already past resets at once")
    func resetPeerUpdate() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(ResetPeerToxic.self, .init(timeout: 1000)))
        harness.advance(to: ms(100))
        harness.send("x")
        harness.advance(to: ms(200))
        harness.update(stage: 0, ResetPeerToxic.Attributes(timeout: 400))
        harness.advanceUntilIdle()
        #expect(harness.events == [.reset(at: ms(500))])

        let late = ToxicHarness(try ToxicHarness.stage(ResetPeerToxic.self, .init(timeout: 1000)))
        late.advance(to: ms(100))
        late.send("x")
        late.advance(to: ms(300))
        late.update(stage: 0, ResetPeerToxic.Attributes(timeout: 100))
        #expect(late.events == [.reset(at: ms(300))])
    }

    // MARK: slicer

    @Test(
        "slicer halves data until every piece is within average ± variation, as Toxiproxy does; average 0 cuts single bytes",
        arguments: [
            (100, 0, 800, [Int](repeating: 100, count: 8)), (100, 0, 1000, [62, 63, 62, 63, 62, 63, 62, 63, 62, 63, 62, 63, 62, 63, 62, 63]),
            (1, 0, 3, [1, 1, 1]), (10, 0, 7, [7]), (0, 0, 3, [1, 1, 1]),
        ])
    func slicerSizes(_ size: Int, _ variation: Int, _ bytes: Int, _ pieces: [Int]) throws {
        let harness = ToxicHarness(try ToxicHarness.stage(SlicerToxic.self, .init(average_size: size, size_variation: variation)))
        harness.send(count: bytes)
        #expect(harness.deliveries.map(\.count) == pieces)
        #expect(harness.deliveries.allSatisfy { $0.at == .zero })
    }

    @Test("slicer with variation: pieces within average + variation, in order, the same for the same seed")
    func slicerVariation() throws {
        func slices(seed: UInt64) throws -> [Int] {
            let harness = ToxicHarness(try ToxicHarness.stage(SlicerToxic.self, .init(average_size: 50, size_variation: 20), seed: seed))
            let payload = (0..<5000).map { UInt8($0 % 251) }
            harness.send(payload)
            #expect(harness.output == payload)
            return harness.deliveries.map(\.count)
        }
        let sizes = try slices(seed: 1)
        #expect(sizes.allSatisfy { $0 >= 1 && $0 <= 70 }, "\(sizes)")
        #expect(Set(sizes).count > 5)
        #expect(try slices(seed: 1) == sizes)
        #expect(try slices(seed: 2) != sizes)
    }

    @Test(
        "slicer with a variation at or above the average (Toxiproxy takes it): every byte once, in order, no empty piece, none above average + variation",
        arguments: [(1000, 1000), (10, 10), (1, 5), (3, 1000), (2, 300), (0, 1), (0, 9)])
    func slicerWideVariation(_ average: Int, _ variation: Int) throws {
        for seed in UInt64(1)...20 {
            let harness = ToxicHarness(
                try ToxicHarness.stage(SlicerToxic.self, .init(average_size: average, size_variation: variation), seed: seed))
            let payload = (0..<(3 * (average + variation) + Int(seed) * 7 + 1)).map { UInt8(truncatingIfNeeded: $0 % 251) }
            harness.send(payload)
            #expect(harness.output == payload)
            let sizes = harness.deliveries.map(\.count)
            #expect(sizes.allSatisfy { $0 >= 1 && $0 <= average + variation }, "\(sizes)")
            #expect(sizes.count >= 2)
        }
    }

    @Test("slicer spaces pieces by its delay, across chunks, the first at once")
    func slicerDelay() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(SlicerToxic.self, .init(average_size: 100, delay: 500)))
        harness.send(count: 800)
        harness.advance(by: ms(1))
        harness.send(count: 200)
        harness.sendEndOfStream()
        harness.advanceUntilIdle()
        #expect(harness.deliveries.map(\.count) == [Int](repeating: 100, count: 10))
        #expect(harness.deliveries.map(\.at) == (0..<10).map { .microseconds(500 * $0) })
        #expect(harness.events.last == .endOfStream(at: .microseconds(4500)))
    }

    // MARK: limit_data

    @Test("limit_data passes exactly the limit across chunks, then closes")
    func limitDataAcrossChunks() throws {
        let harness = ToxicHarness(try ToxicHarness.stage(LimitDataToxic.self, .init(bytes: 50)))
        for _ in 0..<3 { harness.send(count: 30) }
        #expect(harness.deliveries.map(\.count) == [30, 20])
        #expect(harness.events.last == .closed(at: .zero))
    }

    @Test("updating limit_data keeps the count of bytes already passed", arguments: [(40, [30, 10]), (100, [30, 30]), (20, [30])])
    func limitDataUpdate(_ limit: Int, _ passed: [Int]) throws {
        let harness = ToxicHarness(try ToxicHarness.stage(LimitDataToxic.self, .init(bytes: 50)))
        harness.send(count: 30)
        harness.update(stage: 0, LimitDataToxic.Attributes(bytes: limit))
        harness.send(count: 30)
        #expect(harness.deliveries.map(\.count) == passed)
        #expect(harness.isConnectionOpen == (limit >= 60 + 1))
    }

    // MARK: chains

    @Test("chains: latency after slicer counts from the read (as Toxiproxy's); bandwidth after latency paces from the release")
    func chains() throws {
        let sliced = ToxicHarness([
            try ToxicHarness.stage(SlicerToxic.self, .init(average_size: 2, delay: 1000)),
            try ToxicHarness.stage(LatencyToxic.self, .init(latency: 100)),
        ])
        sliced.send("abcdefgh")
        sliced.advanceUntilIdle()
        #expect(sliced.events == [.data("ab", at: ms(100)), .data("cd", at: ms(100)), .data("ef", at: ms(100)), .data("gh", at: ms(100))])

        let paced = ToxicHarness([
            try ToxicHarness.stage(LatencyToxic.self, .init(latency: 100)),
            try ToxicHarness.stage(BandwidthToxic.self, .init(rate: 1)),
        ])
        paced.send(count: 20)
        paced.advanceUntilIdle()
        #expect(paced.deliveries.map(\.at) == [ms(110), ms(120)])
    }

    @Test("a toxic that closes the connection drops the rest of the chain and its timers")
    func closeDropsTheChain() throws {
        let harness = ToxicHarness([
            try ToxicHarness.stage(LatencyToxic.self, .init(latency: 100)),
            try ToxicHarness.stage(LimitDataToxic.self, .init(bytes: 3)),
        ])
        harness.send("abcdef")
        harness.advance(by: ms(50))
        harness.send("more")
        harness.advanceUntilIdle()
        #expect(harness.events == [.data("abc", at: ms(100)), .closed(at: ms(100))])
        #expect(harness.pendingTimers == 0 && !harness.isRunning(stage: 0))
    }
}

extension ToxicHarness.Event {
    var isEndOfStream: Bool {
        if case .endOfStream = self { true } else { false }
    }
}
