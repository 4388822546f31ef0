import FaultlineKit
import FaultlineTesting
import Foundation
import Synchronization
import Testing

@testable import FaultlineHTTP
import FaultlineTestSupport

/// One row of a load's records file.
struct RecordRow {
    var sentMicros: Int64
    var request: String
    var phases: [String]
    var status: Int?
    var ok: Bool
    var error: String
    var latencyMicros: Int64?

    /// Reads the file the `records` argument writes.
    static func read(_ path: String) throws -> [RecordRow] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.first == "sent_s,request,phase,status,ok,error,latency_ms,bytes_received,bytes_sent")
        return lines.dropFirst().map { line in
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return RecordRow(
                sentMicros: micros(cells[0], places: 6), request: cells[1], phases: cells[2].split(separator: "|").map(String.init),
                status: Int(cells[3]), ok: cells[4] == "true", error: cells[5], latencyMicros: cells[6].isEmpty ? nil : micros(cells[6], places: 3))
        }
    }

    /// `1.234567` with 6 places is 1 234 567: the file's decimals are exact.
    static func micros(_ text: String, places: Int) -> Int64 {
        let parts = text.split(separator: ".")
        let fraction = parts.count > 1 ? String(parts[1]) : ""
        return Int64(parts[0])! * Int64(pow(10, Double(places))) + Int64(fraction.padding(toLength: places, withPad: "0", startingAt: 0))!
    }
}

/// The stats k6 would print for these rows: percentiles interpolated between the nearest ranks.
func expectedStats(_ rows: [RecordRow]) -> (
    count: Int, failed: Int, min: Double, avg: Double, max: Double, percentiles: [Double], codes: [String: Int]
) {
    let latencies = rows.compactMap(\.latencyMicros).sorted()
    func ms(_ micros: Double) -> Double { (micros / 1000 * 1000).rounded() / 1000 }
    func percentile(_ p: Double) -> Double {
        guard latencies.count > 1 else { return latencies.first.map { ms(Double($0)) } ?? 0 }
        let rank = p / 100 * Double(latencies.count - 1)
        let lower = Double(latencies[Int(rank.rounded(.down))])
        let upper = Double(latencies[Int(rank.rounded(.up))])
        return ms(lower + (upper - lower) * (rank - rank.rounded(.down)))
    }
    var codes: [String: Int] = [:]
    for row in rows { if let status = row.status { codes[String(status), default: 0] += 1 } }
    let average = latencies.isEmpty ? 0 : ms(Double(latencies.reduce(0, +)) / Double(latencies.count))
    return (
        rows.count, rows.filter { !$0.ok }.count, latencies.first.map { ms(Double($0)) } ?? 0, average, latencies.last.map { ms(Double($0)) } ?? 0,
        [50, 90, 95, 99, 99.9].map(percentile), codes
    )
}

/// Checks stats against the rows they were computed from.
func expectStats(_ stats: LoadStats, match rows: [RecordRow], _ scope: String) {
    let expected = expectedStats(rows)
    #expect(stats.count == expected.count, "count of \(scope)")
    #expect(stats.failed == expected.failed, "failures of \(scope)")
    #expect(
        stats.errorRate == (expected.count == 0 ? 0 : (Double(expected.failed) / Double(expected.count) * 1e6).rounded() / 1e6),
        "error rate of \(scope)")
    #expect([stats.minMs, stats.avgMs, stats.maxMs] == [expected.min, expected.avg, expected.max], "min/avg/max of \(scope)")
    #expect([stats.p50Ms, stats.p90Ms, stats.p95Ms, stats.p99Ms, stats.p999Ms] == expected.percentiles, "percentiles of \(scope)")
    #expect(Dictionary(uniqueKeysWithValues: stats.statusCodes.map { ($0.label, $0.count) }) == expected.codes, "status codes of \(scope)")
}

@Suite("http.load phases: the load split by the run's fault windows")
struct LoadPhaseTests {
    /// Runs a load while a fault window opens and closes: it opens when the server receives its
    /// request number `opens` and closes at number `closes`, so where the fault falls does not
    /// depend on how fast a loaded machine runs. With `breaking`, the server answers 503 while it is
    /// open; otherwise it keeps its routes (`/slow?ms=…`).
    func loadAcrossAFault(
        _ arguments: Value, path: String, breaking: Bool = true, opens: Int = 20, closes: Int = 60
    ) async throws -> (LoadResult, [RecordRow]) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("phases-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let context = ActivityContext.standalone(name: "orders under load", runDirectory: directory)
        let broken = Mutex(false)
        // The window opens before the server breaks and closes before it mends, as a toxic's
        // window is recorded around its effect.
        let onRequest: @Sendable (Int) -> Void = { number in
            if number == opens {
                context.beginFault("store down", id: "fault")
                broken.withLock { $0 = true }
            } else if number == closes {
                context.endFault("fault")
                broken.withLock { $0 = false }
            }
        }
        let responder: TestHTTPServer.Responder = { _, uri, _ in
            if broken.withLock({ $0 }) { return (503, "text/plain", "down") }
            return (200, "text/plain", uri)
        }
        return try await closing(TestHTTPServer.start(respond: breaking ? responder : nil, onRequest: onRequest)) { server in
            var full = arguments
            full["url"] = .string(server.url + path)
            full["records"] = true
            let result = try LoadResult(decoding: try await LoadProbe.run(try prepared(LoadProbe.self, full), context: context))
            let file = try #require(result.recordsFile)
            return (result, try RecordRow.read(file))
        }
    }

    @Test("closed model: before, the fault and after each have the stats of exactly their records")
    func closedModel() async throws {
        let (result, rows) = try await loadAcrossAFault(["users": 4, "iterations": 40], path: "/ok", opens: 40, closes: 100)
        #expect(result.overall.count == 160)
        try #require(result.phases.map(\.name) == ["before", "store down", "after"])
        #expect(result.phases.map(\.kind) == [.before, .fault, .after])
        #expect(result.phases[1].fault == "store down")
        expectStats(result.overall, match: rows, "overall")
        for phase in result.phases {
            let mine = rows.filter { $0.phases.contains(phase.name) }
            expectStats(phase.stats, match: mine, phase.name)
            // A record's phase is the span it was sent in.
            for row in mine {
                #expect(Double(row.sentMicros) / 1e6 >= phase.fromSeconds && Double(row.sentMicros) / 1e6 < phase.toSeconds)
            }
        }
        // The phases partition the load, and cover its span end to end.
        #expect(result.phases.reduce(0) { $0 + $1.stats.count } == result.overall.count)
        #expect(result.phases[0].fromSeconds == 0 && result.phases[0].toSeconds == result.phases[1].fromSeconds)
        #expect(result.phases[1].toSeconds == result.phases[2].fromSeconds)
        // The fault shows: the server failed while it was in force, and not before it.
        #expect(result.phases[0].stats.errorRate <= 0.15, "at most the requests in flight when the server broke")
        #expect(result.phases[1].stats.errorRate > 0.5)
        #expect(result.phases[1].stats.statusCodes.contains { $0.label == "503" })
    }

    @Test("open model: latency from the intended send, and dropped sends counted per phase")
    func openModel() async throws {
        let (result, rows) = try await loadAcrossAFault(
            ["rate": 100, "users": 2, "duration": 2], path: "/slow?ms=40", breaking: false, opens: 10, closes: 30)
        #expect(result.model == .open)
        expectStats(result.overall, match: rows.filter { $0.error != "dropped" }, "overall")
        for phase in result.phases {
            let mine = rows.filter { $0.phases.contains(phase.name) }
            expectStats(phase.stats, match: mine.filter { $0.error != "dropped" }, phase.name)
            #expect(phase.dropped == mine.filter { $0.error == "dropped" }.count, "dropped in \(phase.name)")
        }
        #expect(result.phases.reduce(0) { $0 + $1.dropped } == result.dropped)
        #expect(result.dropped > 0, "2 connections cannot carry 100 requests a second at 40 ms each")
        #expect(result.overall.minMs >= 40, "latency counts from the intended send time")
    }

    @Test("phase thresholds judge the phase's stats; a missing phase is not measured and says why")
    func phaseThresholds() async throws {
        let (result, _) = try await loadAcrossAFault(["users": 2, "iterations": 50], path: "/ok")
        let tolerance = ThresholdTolerance(
            scopes: [
                ("during", [try Threshold(parsing: "rate<0.5")]), ("after", [try Threshold(parsing: "rate<0.5")]),
                ("store down", [try Threshold(parsing: "count>0")]), ("between", [try Threshold(parsing: "count>0")]),
            ], written: .null)
        try #require(result.phases.map(\.kind) == [.before, .fault, .after])
        let judged = tolerance.evaluate(result)
        #expect(judged.map(\.scope) == ["during", "after", "store down", "between"])
        #expect(judged[0].measured == result.phases[1].stats.errorRate && !judged[0].ok)
        #expect(judged[1].measured == result.phases[2].stats.errorRate && judged[1].ok)
        #expect(judged[2].ok)
        #expect(judged[3].measured == nil && !judged[3].ok)
        let outcome = tolerance.check(result.value)
        #expect(!outcome.met)
        let message = try #require(outcome.message)
        #expect(message.contains("rate of during is"))
        #expect(message.contains("no \"between\" phase"))
        #expect(!message.contains("after"))
    }

    @Test("windows are cut into before, each fault, between, after; overlaps count in each fault and once in during")
    func split() {
        func window(_ label: String, _ from: Double, _ to: Double?) -> FaultClock.Window {
            FaultClock.Window(identity: label, label: label, from: Int64(from * 1e6), to: to.map { Int64($0 * 1e6) })
        }
        // Load of 10 s; faults a 2–4 s, b 3–5 s (overlapping), c 7 s – still in force.
        let windows = [window("a", 2, 4), window("b", 3, 5), window("c", 7, nil)]
        var split = PhaseSplit(windows: windows, end: 10_000_000)
        func at(_ seconds: Double) -> Set<String> {
            let names = split.phases.map(\.name)
            return Set(split.phases(of: Segment(at: Int64((seconds * 1e6).rounded()), windows: windows)).map { names[$0] })
        }
        #expect(at(0) == ["before"] && at(1.999_999) == ["before"])
        #expect(at(2) == ["a", "during"] && at(3.5) == ["a", "b", "during"] && at(4.5) == ["b", "during"])
        #expect(at(5) == ["between"] && at(6.9) == ["between"])
        #expect(at(7) == ["c", "during"] && at(9.9) == ["c", "during"])
        #expect(split.ordered.map { split.phases[$0].name } == ["before", "a", "b", "between", "c", "during"])
        #expect(split.phases.first { $0.kind == .during }?.micros == 6_000_000)
        #expect(split.phases.first { $0.kind == .between }?.micros == 2_000_000)

        // A fault over before the load began: the whole load is after it.
        #expect(PhaseSplit(windows: [window("gone", -5, -1)], end: 3_000_000).phases.map(\.name) == ["after"])
        // No fault: one phase, before; a fault that began after the load ended changes nothing.
        #expect(PhaseSplit(windows: [], end: 1_000_000).phases.map(\.name) == ["before"])
        #expect(PhaseSplit(windows: [window("late", 2, 3)], end: 1_000_000).phases.map(\.name) == ["before"])
        // The same label twice is two phases.
        let twice = PhaseSplit(
            windows: [window("x", 1, 2), FaultClock.Window(identity: "x2", label: "x", from: 3_000_000, to: 4_000_000)], end: 10_000_000)
        #expect(twice.phases.filter { $0.kind == .fault }.map(\.name) == ["x", "x #2"])
    }

    @Test("percentiles are k6's: interpolated between the nearest ranks, exactly")
    func percentiles() {
        var latencies = ExactLatencies()
        for micros: UInt32 in [10, 20, 30, 40, 50, 60, 70, 80, 90, 100] { latencies.record(micros) }
        // rank 0.5 × 9 = 4.5 → 50 + (60 − 50) × 0.5; rank 0.95 × 9 = 8.55 → 90 + 10 × 0.55.
        let measured = latencies.percentiles([0.5, 0.95, 0, 1])
        #expect(zip(measured, [55, 95.5, 10, 100]).allSatisfy { abs($0 - $1) < 1e-9 }, "\(measured)")
        var one = ExactLatencies()
        one.record(7)
        #expect(one.percentiles([0.5, 0.99]) == [7, 7])
        #expect(ExactLatencies().percentiles([0.5]) == [0])
    }

    @Test("counted in a table past the first thousand, long latencies aside: the same percentiles, merges and histogram as sorting every latency")
    func denseLatencies() {
        // Short and long latencies, the table made part way through, one side merged from a
        // histogram, the other recorded one by one.
        var random = SystemRandomNumberGenerator()
        let values: [UInt32] = (0..<5_000).map { index in
            index % 7 == 0 ? UInt32.random(in: 16_000...2_000_000, using: &random) : UInt32.random(in: 1...20_000, using: &random)
        }
        var first = ExactLatencies()
        for micros in values[..<3_000] { first.record(micros) }
        var small = ExactLatencies()
        for micros in values[3_000..<3_500] { small.record(micros) }
        var second = ExactLatencies(small.histogram)
        for micros in values[3_500...] { second.record(micros) }
        var merged = first
        merged.add(second)
        let sorted = values.sorted()
        #expect(merged.total == values.count)
        let fractions = [0, 0.5, 0.9, 0.95, 0.99, 0.999, 1]
        let expected = fractions.map { fraction -> Double in
            let rank = fraction * Double(sorted.count - 1)
            let lower = Double(sorted[Int(rank.rounded(.down))])
            return lower + (Double(sorted[Int(rank.rounded(.up))]) - lower) * (rank - rank.rounded(.down))
        }
        #expect(zip(merged.percentiles(fractions), expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(merged.percentiles(fractions)) vs \(expected)")
        var counts: [UInt32: Int] = [:]
        for micros in values { counts[micros, default: 0] += 1 }
        #expect(merged.histogram == LatencyHistogram(counts.map { (micros: $0.key, count: $0.value) }))
        #expect(merged.histogram.counts.map(\.micros) == counts.keys.sorted())
    }

    @Test("a journal written before phases existed still reads; phases round-trip")
    func compatibility() throws {
        let old: Value = ["model": "closed", "elapsed_s": 1.0, "dropped": 0, "overall": ["count": 3], "requests": [:], "timeline": []]
        let result = try LoadResult(decoding: old)
        #expect(result.phases.isEmpty && result.recordsFile == nil && result.overall.count == 3)
        var written = result
        written.phases = [
            LoadPhase(
                name: "before", kind: .before, fault: nil, fromSeconds: 0, toSeconds: 1.5, seconds: 1.5, stats: LoadStats(count: 2), dropped: 0),
            LoadPhase(
                name: "slow", kind: .fault, fault: "slow", fromSeconds: 1.5, toSeconds: 2, seconds: 0.5, stats: LoadStats(count: 1), dropped: 4),
        ]
        let back = try LoadResult(decoding: written.value)
        #expect(back == written)
        #expect(back.stats(scope: "during")?.count == 1)
        #expect(back.stats(scope: "slow")?.count == 1)
        #expect(back.stats(scope: "after") == nil)
    }

    @Test("a closed load whose throughput collapses under a fault says so and points to the open model")
    func collapse() {
        func phase(_ name: String, _ kind: LoadPhase.Kind, rps: Double) -> LoadPhase {
            LoadPhase(
                name: name, kind: kind, fault: nil, fromSeconds: 0, toSeconds: 1, seconds: 1, stats: LoadStats(count: Int(rps), rps: rps), dropped: 0)
        }
        var result = LoadResult(
            model: .closed, users: 5, rampUpSeconds: 0, durationSeconds: 3, iterations: nil, rate: nil, thinkTimeSeconds: 0, started: nil, ended: nil,
            elapsedSeconds: 3, dropped: 0, overall: LoadStats(), requests: [], timeline: [],
            phases: [phase("before", .before, rps: 1000), phase("slow", .fault, rps: 15), phase("after", .after, rps: 990)])
        #expect(result.collapsedPhases.map(\.name) == ["slow"])
        #expect(result.collapseWarnings.count == 1 && result.collapseWarnings[0].contains("open model"))
        result.phases[1].stats.rps = 800
        #expect(result.collapsedPhases.isEmpty)
        result.model = .open
        result.phases[1].stats.rps = 15
        #expect(result.collapsedPhases.isEmpty, "the open model keeps sending")
    }

    @Test("request names cannot take a phase's name")
    func reservedNames() throws {
        #expect(throws: (any Error).self) {
            try LoadProbe.validate(try prepared(LoadProbe.self, ["requests": [["name": "during", "url": "http://127.0.0.1:1/"]], "iterations": 1]))
        }
    }
}
