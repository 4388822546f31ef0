import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

@testable import FaultlineHTTP
import FaultlineTestSupport

/// A latency set with a long tail, the same for a seed: most answers in 1–5 ms, some in 5–80 ms,
/// a few up to 2 s.
func latencySet(count: Int, seed: UInt64) -> [UInt32] {
    var random = SeededRandom(seed: seed)
    return (0..<count).map { _ in
        let unit = random.nextUnit()
        let spread = random.nextUnit()
        if unit < 0.9 { return UInt32(1000 + spread * 4000) }
        if unit < 0.995 { return UInt32(5000 + spread * 75000) }
        return UInt32(80000 + spread * 1_920_000)
    }
}

/// A shard's output for `latencies` (answered 200, but 503 for about one in 50), as the probe
/// writes it: stats with histograms, one request and one phase.
func shardOutput(_ latencies: [UInt32], shard: LoadShard, thresholds: [LoadThreshold] = [], seconds: Double = 10) -> LoadResult {
    var stats = RequestStats()
    for micros in latencies {
        // Which answers fail follows the latency, so a split of the set fails the same ones.
        let failing = micros % 50 == 49
        stats.record(status: failing ? 503 : 200, ok: !failing, micros: micros, received: 100, sent: 40)
    }
    let started = Timestamp(Date(timeIntervalSince1970: 1_800_000_000))
    let ended = Timestamp(Date(timeIntervalSince1970: 1_800_000_000 + seconds))
    return LoadResult(
        model: .closed, users: 30, rampUpSeconds: 0, durationSeconds: seconds, iterations: nil, rate: nil, thinkTimeSeconds: 0,
        started: started, ended: ended, elapsedSeconds: seconds, dropped: 0,
        overall: stats.stats(elapsedSeconds: seconds),
        requests: [.init(name: "orders", stats: stats.stats(elapsedSeconds: seconds, histogram: true))],
        timeline: [], thresholds: thresholds,
        phases: [
            LoadPhase(
                name: "before", kind: .before, fault: nil, fromSeconds: 0, toSeconds: seconds, seconds: seconds,
                stats: stats.stats(elapsedSeconds: seconds, histogram: true), dropped: 0)
        ],
        shard: LoadShardInfo(index: shard.index, count: shard.count, users: shard.share(of: 30), arrivals: nil, startAt: nil))
}

extension LoadPlan {
    /// A plan with no requests, for the arithmetic of who runs what.
    static func shape(users: Int) -> LoadPlan {
        LoadPlan(
            endpoints: [], steps: [], model: .closed(users: users, rampUp: 0, duration: 1, iterations: nil, think: .fixed(0)),
            connectTimeout: .seconds(1), readTimeout: .seconds(1), gracefulStop: .seconds(1))
    }

    static func shape(rate: Double, duration: Double, stages: [Stage]?) -> LoadPlan {
        LoadPlan(
            endpoints: [], steps: [], model: .open(rate: rate, duration: duration, maxUsers: 10), connectTimeout: .seconds(1),
            readTimeout: .seconds(1), gracefulStop: .seconds(1), ramp: stages.map { Ramp(start: rate, stages: $0) })
    }
}

@Suite("Load shards: the share of each runner, and their exact merge")
struct LoadShardTests {
    @Test(
        "every user and arrival belongs to exactly one shard, and the shares add up to the whole load",
        arguments: [1, 2, 3, 4, 5, 7, 10, 16, 33, 100])
    func sharesAddUp(count: Int) throws {
        for total in [0, 1, 2, 3, count - 1, count, count + 1, 99, 100, 1001, 30_000] where total >= 0 {
            let shards = try (0..<count).map { try LoadShard(index: $0, count: count) }
            #expect(shards.reduce(0) { $0 + $1.share(of: total) } == total, "\(total) over \(count)")
            for shard in shards {
                // Within one of each other: the first total % count shards take one more.
                #expect(shard.share(of: total) == total / count + (shard.index < total % count ? 1 : 0))
            }
            for number in [0, 1, total / 2, total - 1] where number >= 0 && number < total {
                #expect(shards.filter { $0.owns(number) }.count == 1)
            }
        }
    }

    @Test("closed model: the shards' loops run each user of the whole load once, at its unsharded number", arguments: [1, 2, 3, 8])
    func usersDealtOnce(count: Int) throws {
        for total in [1, 5, 64, 1000] {
            var seen: [Int] = []
            for index in 0..<count {
                var plan = LoadPlan.shape(users: total)
                plan.shard = try LoadShard(index: index, count: count)
                let workers = max(1, min(2, plan.localUsers))
                let mine = (0..<workers).flatMap { plan.userNumbers(of: total, worker: $0, workers: workers) }
                #expect(mine.count == plan.localUsers)
                #expect(mine.allSatisfy { $0 % count == index })
                seen += mine
            }
            #expect(seen.sorted() == Array(0..<total))
        }
    }

    @Test("open model: the shards' loops start each arrival of the whole load once, stages included", arguments: [1, 2, 3, 7])
    func arrivalsDealtOnce(count: Int) throws {
        for (rate, stages) in [(100.0, nil), (33.3, nil), (0.0, [Stage(duration: 3, target: 50), Stage(duration: 2, target: 7)])] {
            var all: [Int] = []
            var total = 0
            for index in 0..<count {
                var plan = LoadPlan.shape(rate: rate, duration: 5, stages: stages)
                plan.shard = try LoadShard(index: index, count: count)
                total = plan.arrivals
                for worker in 0..<2 {
                    let (first, step) = plan.arrivalNumbers(worker: worker, workers: 2)
                    all += Array(stride(from: first, to: plan.arrivals, by: step))
                }
                #expect(plan.localUsers >= 1)
            }
            #expect(total > 0)
            #expect(all.sorted() == Array(0..<total), "rate \(rate), stages \(String(describing: stages))")
        }
    }

    @Test("--shard is I/N from 0: clear errors for anything else")
    func parsing() throws {
        #expect(try LoadShard(parsing: "2/3") == LoadShard(index: 2, count: 3))
        #expect(throws: LoadShard.Invalid.self) { try LoadShard(parsing: "3/3") }
        #expect(throws: LoadShard.Invalid.self) { try LoadShard(parsing: "1/0") }
        #expect(throws: LoadShard.Invalid.self) { try LoadShard(parsing: "-1/3") }
        #expect(throws: LoadShard.Invalid.self) { try LoadShard(parsing: "1") }
        #expect(throws: LoadShard.Invalid.self) { try LoadShard(parsing: "a/b") }
        #expect(throws: LoadShard.Invalid.self) { try LoadShard(parsing: "0/10001") }
        let error = try #require(throws: LoadShard.Invalid.self) { try LoadShard(parsing: "3/3") }
        #expect(error.description.contains("numbered from 0 to 2"))
    }

    @Test("a histogram reads back exactly as written, in the journal's JSON too")
    func histogramRoundTrip() throws {
        let latencies = latencySet(count: 20_000, seed: 7) + [1, UInt32.max]
        var exact = ExactLatencies()
        for micros in latencies { exact.record(micros) }
        let histogram = exact.histogram
        #expect(histogram.total == latencies.count)
        #expect(try LatencyHistogram(encoded: histogram.encoded) == histogram)
        // Compact: a few bytes per distinct latency, not per request.
        #expect(histogram.encoded.count < histogram.counts.count * 8)
        let stats = LoadStats(count: latencies.count, histogram: histogram)
        let read = try LoadStats(decoding: try ValueEncoder().encode(stats))
        #expect(read.histogram == histogram)
        #expect(try ValueEncoder().encode(stats)["histogram"]?["version"] == 1)
        #expect(throws: LatencyHistogram.Unreadable.self) { try LatencyHistogram(encoded: "not base64!") }
        // A varint cut short.
        #expect(throws: LatencyHistogram.Unreadable.self) { try LatencyHistogram(encoded: Data([0x81]).base64EncodedString()) }
    }

    @Test("N shards' merged stats equal one run's over the same latencies, exactly", arguments: [1, 2, 3, 5, 8, 16])
    func mergeIsExact(count: Int) throws {
        let latencies = latencySet(count: 30_000, seed: UInt64(count))
        let single = shardOutput(latencies, shard: try LoadShard(index: 0, count: 1))
        // Split unevenly, as runners measure: shard i gets a different slice size.
        var parts = Array(repeating: [UInt32](), count: count)
        var random = SeededRandom(seed: 99)
        for micros in latencies { parts[Int(random.next() % UInt64(count))].append(micros) }
        let shards = try (0..<count).map { shardOutput(parts[$0], shard: try LoadShard(index: $0, count: count)) }
        let merged = try LoadMerge.merge(shards.reversed(), names: []).result
        let expected = single.requests[0].stats
        let got = merged.requests[0].stats
        #expect(got.count == expected.count)
        #expect(
            [got.p50Ms, got.p90Ms, got.p95Ms, got.p99Ms, got.p999Ms] == [
                expected.p50Ms, expected.p90Ms, expected.p95Ms, expected.p99Ms, expected.p999Ms,
            ])
        #expect([got.minMs, got.avgMs, got.maxMs] == [expected.minMs, expected.avgMs, expected.maxMs])
        #expect(got.statusCodes == expected.statusCodes)
        #expect(got.errors == expected.errors)
        #expect(got.failed == expected.failed)
        #expect(merged.overall.p99Ms == expected.p99Ms)
        #expect(merged.phases.map(\.name) == ["before"])
        #expect(merged.phases[0].stats.p95Ms == expected.p95Ms)
        #expect(merged.phases[0].stats.count == latencies.count)
        #expect(merged.mergedShards == count)
        #expect(merged.shard == nil)
        // The merge of the same shards is the same whatever their order.
        #expect(try LoadMerge.merge(shards, names: []).result == merged)
    }

    @Test("thresholds are judged on the merged requests: a count no shard reaches passes, a tail one shard hides fails")
    func thresholdsOnMergedData() throws {
        let thresholds = [
            LoadThreshold(scope: "overall", expression: "count>=20000", metric: "count", limit: 20000, measured: nil, ok: false),
            LoadThreshold(scope: "orders", expression: "p(99)<100", metric: "p99_ms", limit: 100, measured: nil, ok: false),
            LoadThreshold(scope: "before", expression: "rate<0.05", metric: "error_rate", limit: 0.05, measured: nil, ok: false),
        ]
        // Shard 0 is fast; shard 1 has every slow answer.
        let fast = latencySet(count: 10_000, seed: 1).map { min($0, 5000) }
        let slow = latencySet(count: 10_000, seed: 2).map { $0 < 5000 ? $0 : $0 + 200_000 }
        let shards = [
            shardOutput(fast, shard: try LoadShard(index: 0, count: 2), thresholds: thresholds),
            shardOutput(slow, shard: try LoadShard(index: 1, count: 2), thresholds: thresholds),
        ]
        // In a shard's run the thresholds are not judged: its share is not what they are written for.
        let tolerance = try #require(try ThresholdTolerance.parse(SourceNode(["overall": ["count>=20000"]], at: nil), path: DocumentPath()))
        let deferred = tolerance.check(shards[0].value)
        #expect(deferred.met)
        #expect(deferred.message?.contains("faultline report --merge") == true)
        #expect(deferred.message?.contains("shard 0/2 alone: count of overall is 10000, limit >= 20000") == true, "\(deferred)")

        let merged = try LoadMerge.merge(shards, names: ["a.json", "b.json"])
        let verdicts = merged.result.thresholds
        #expect(verdicts.map(\.expression) == ["count>=20000", "p(99)<100", "rate<0.05"])
        #expect(verdicts.map(\.ok) == [true, false, true])
        #expect(verdicts[0].measured == 20000)
        #expect(verdicts[1].measured == merged.result.requests[0].stats.p99Ms)
        let outcome = try #require(merged.tolerance)
        #expect(!outcome.met)
        #expect(outcome.message?.contains("p(99) of orders") == true)
    }

    @Test("shards that are not one load's are refused, naming the journals")
    func mismatches() throws {
        let latencies = latencySet(count: 100, seed: 3)
        let zero = shardOutput(latencies, shard: try LoadShard(index: 0, count: 2))
        let one = shardOutput(latencies, shard: try LoadShard(index: 1, count: 2))
        let ofThree = shardOutput(latencies, shard: try LoadShard(index: 1, count: 3))
        func message(_ shards: [LoadResult]) -> String {
            do {
                _ = try LoadMerge.merge(shards, names: ["a.json", "b.json"])
                return "merged"
            } catch {
                return error.description
            }
        }
        #expect(message([zero, zero]).contains("a.json and b.json are both shard 0/2"))
        #expect(message([zero]).contains("shard 1 of 2 missing"))
        #expect(message([zero, ofThree]).contains("b.json is shard 1/3 but a.json is 0/2"))
        var otherLoad = one
        otherLoad.users = 31
        #expect(message([zero, otherLoad]).contains("ran different loads (users 30 and 31)"))
        var unsharded = one
        unsharded.shard = nil
        #expect(message([zero, unsharded]).contains("b.json: this load did not run as a shard"))
        var noHistogram = one
        noHistogram.requests[0].stats.histogram = nil
        #expect(message([zero, noHistogram]).contains("no latency histogram"))
        #expect(message([zero, one]) == "merged")
    }

    @Test("two shards of a real load: the merge holds every request, with the percentiles of their records together")
    func realShardsMerge() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let directory = try ScratchDirectory(prefix: "shards")
            var outputs: [LoadResult] = []
            var rows: [RecordRow] = []
            for index in 0..<2 {
                let context = ActivityContext.standalone(
                    name: "load", runDirectory: directory.path("shard-\(index)"), loadShard: try LoadShard(index: index, count: 2))
                let output = try await LoadProbe.run(
                    try prepared(LoadProbe.self, ["url": .string(server.url + "/ok"), "users": 5, "iterations": 40, "records": true]),
                    context: context)
                let result = try LoadResult(decoding: output)
                outputs.append(result)
                rows += try RecordRow.read(try #require(result.recordsFile))
            }
            // 5 users: shard 0 runs users 0, 2, 4 and shard 1 users 1, 3.
            #expect(outputs.map { $0.shard?.users } == [3, 2])
            #expect(outputs.map(\.overall.count) == [120, 80])
            #expect(outputs.allSatisfy { $0.users == 5 })
            let merged = try LoadMerge.merge(outputs, names: []).result
            #expect(merged.overall.count == 200)
            #expect(server.count("/ok") == 200)
            expectStats(merged.requests[0].stats, match: rows, "the merged request")
            expectStats(merged.overall, match: rows, "the merged load")
        }
    }
}
