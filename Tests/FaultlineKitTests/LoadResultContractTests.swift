import FaultlineKit
import Foundation
import Testing

/// The load result two plugins share: written with the documented keys, read back leniently.
@Suite struct LoadResultContractTests {
    static let result = LoadResult(
        model: .open, users: 10, rampUpSeconds: 0, durationSeconds: 5, iterations: nil, rate: 20, thinkTimeSeconds: 0,
        started: Timestamp(text: "2026-01-01T00:00:00.000000+00:00"), ended: Timestamp(text: "2026-01-01T00:00:05.010000+00:00"),
        elapsedSeconds: 5.01, dropped: 2,
        overall: LoadStats(
            count: 100, ok: 99, failed: 1, errorRate: 0.01, minMs: 1.5, avgMs: 3.25, maxMs: 40, p50Ms: 3, p90Ms: 5, p95Ms: 6, p99Ms: 30, p999Ms: 40,
            rps: 19.96, bytesReceived: 5000, bytesSent: 1000, bytesPerSecond: 998, statusCodes: [.init(label: "200", count: 99)],
            errors: [.init(label: "refused", count: 1), .init(label: "http_5xx", count: 0)]),
        requests: [.init(name: "home", stats: LoadStats(count: 100))],
        timeline: [LoadSecond(second: 0, at: Timestamp(text: "2026-01-01T00:00:00.000000+00:00"), count: 20, errors: 0, p50Ms: 3, p99Ms: 9.5)])

    @Test func writesTheDocumentedKeysInOrderWithNullsForWhatIsNotSet() throws {
        let value = Self.result.value
        #expect(
            value.objectValue?.keys == [
                "model", "users", "ramp_up_s", "duration_s", "iterations", "rate", "think_time_s", "started", "ended", "elapsed_s", "dropped",
                "overall", "requests", "timeline",
            ])
        #expect(value["model"] == "open" && value["iterations"] == .null && value["rate"] == .double(20))
        #expect(value["started"] == "2026-01-01T00:00:00.000000+00:00")
        #expect(
            value["overall"]?.objectValue?.keys == [
                "count", "ok", "failed", "error_rate", "min_ms", "avg_ms", "max_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "rps",
                "bytes_received", "bytes_sent", "bytes_per_s", "status_codes", "errors",
            ])
        #expect(value["overall"]?["status_codes"] == ["200": 99])
        #expect(value["overall"]?["errors"]?.objectValue?.keys == ["refused", "http_5xx"])
        #expect(value["requests"]?["home"]?["count"] == 100)
        #expect(value["timeline"]?[0]?.objectValue?.keys == ["second", "at", "count", "errors", "p50_ms", "p99_ms"])
        #expect(try LoadResult(decoding: value) == Self.result)
    }

    @Test func thresholdsAreWrittenOnlyWhenJudgedWithLimitsAsWritten() throws {
        var judged = Self.result
        judged.thresholds = [
            LoadThreshold(scope: "overall", expression: "p(95)<200", metric: "p95_ms", limit: 200, measured: 6, ok: true),
            LoadThreshold(scope: "home", expression: "rate<0.01", metric: "error_rate", limit: 0.01, measured: nil, ok: false),
        ]
        let thresholds = try #require(judged.value["thresholds"]?.arrayValue)
        #expect(thresholds[0]["limit"] == .int(200) && thresholds[1]["limit"] == .double(0.01))
        #expect(thresholds[1]["measured"] == .null && thresholds[1].objectValue?.keys.contains("measured") == true)
        #expect(judged.thresholds[0].limitText == "200" && judged.thresholds[1].limitText == "0.01")
        #expect(try LoadResult(decoding: judged.value) == judged)
    }

    @Test func readsOldAndPartialOutputsLeniently() throws {
        let sparse = try LoadResult(decoding: [
            "overall": ["count": 3, "failed": 1, "status_codes": ["503": 1, "200": 2]], "timeline": [["count": "x"], 7],
        ])
        #expect(sparse.version == 1 && sparse.model == .closed && sparse.elapsedSeconds == 0 && sparse.dropped == 0)
        #expect(sparse.overall.count == 3 && sparse.overall.p95Ms == 0, "missing numbers read as zero")
        #expect(sparse.overall.errorRate == 1.0 / 3.0, "an old output without error_rate gets it from its counts")
        #expect(sparse.overall.statusCodes.map(\.label) == ["200", "503"])
        #expect(
            sparse.timeline == [LoadSecond(second: 0, at: nil, count: 0, errors: 0, p50Ms: 0, p99Ms: 0)], "an entry that is no object is left out")
        #expect(sparse.thresholds.isEmpty && sparse.requests.isEmpty && sparse.started == nil)
        #expect(throws: (any Error).self) { try LoadResult(decoding: "not a load") }
    }

    @Test func aLaterVersionIsWrittenAndReadBack() throws {
        var later = Self.result
        later.version = 2
        #expect(later.value["version"] == 2)
        #expect(try LoadResult(decoding: later.value).version == 2)
        #expect(Self.result.value["version"] == nil, "version 1 is what journals without a version hold")
    }
}
