import FaultlineKit
import Foundation
import Testing

@testable import FaultlineReports

/// Reading the load-probe contract.
@Suite struct LoadResultTests {
    static let output: Value = [
        "model": "closed", "users": 5, "ramp_up_s": 1.0, "duration_s": 10.0, "iterations": nil, "rate": nil, "think_time_s": 0,
        "started": "2026-01-01T00:00:00.000000+00:00", "ended": "2026-01-01T00:00:10.020000+00:00", "elapsed_s": 10.02, "dropped": 0,
        "overall": [
            "count": 123, "ok": 120, "failed": 3, "error_rate": 0.0244, "min_ms": 1.5, "avg_ms": 12.0, "max_ms": 99.0, "p50_ms": 10.0,
            "p90_ms": 20.0, "p95_ms": 30.0, "p99_ms": 60.0, "p999_ms": 99.0, "rps": 12.3, "bytes_received": 4096, "bytes_sent": 1024,
            "bytes_per_s": 409.6, "status_codes": ["503": 2, "200": 120, "404": 1],
            "errors": [
                "refused": 0, "connect_timeout": 0, "reset": 0, "read_timeout": 0, "tls": 0, "dns": 0, "http_4xx": 1, "http_5xx": 2, "other": 0,
            ],
        ],
        "requests": ["login": ["count": 60], "prediction": ["count": 63]],
        "timeline": [["second": 0, "at": "2026-01-01T00:00:00.000000+00:00", "count": 12, "errors": 0, "p50_ms": 3.1, "p99_ms": 9.8]],
        "thresholds": [["scope": "overall", "expression": "p(95)<200", "metric": "p95_ms", "limit": 200, "measured": 312.4, "ok": false]],
    ]

    @Test func readsTheContract() throws {
        let result = try #require(LoadResult(Self.output, providerType: "http.load"))
        #expect(result.model == .closed && result.users == 5 && result.rampUpSeconds == 1 && result.iterations == nil)
        #expect(result.elapsedSeconds == 10.02 && result.spanSeconds == 10.02)
        #expect(result.overall.count == 123 && result.overall.failed == 3 && result.overall.p95Ms == 30)
        #expect(result.overall.statusCodes.map(\.label) == ["200", "404", "503"], "status codes in ascending order")
        #expect(result.overall.serverErrors == 2 && result.overall.connectionErrors == 0)
        #expect(result.requests.map(\.name) == ["login", "prediction"], "requests in configured order")
        #expect(result.requests[0].stats.p95Ms == 0, "missing numbers read as zero")
        #expect(result.timeline.first?.p99Ms == 9.8)
        #expect(result.thresholds.first?.ok == false && result.thresholds.first?.measured == 312.4)
    }

    @Test func recognisesALoadOutputByTypeOrShape() {
        #expect(LoadResult(Self.output, providerType: "test.probe") != nil, "overall and timeline are enough")
        var noTimeline = Self.output
        noTimeline["timeline"] = nil
        #expect(LoadResult(noTimeline, providerType: "test.probe") == nil)
        #expect(LoadResult(noTimeline, providerType: "http.load") != nil)
        #expect(LoadResult(["status": 200], providerType: "http") == nil)
        #expect(LoadResult(nil, providerType: "http.load") == nil)
    }

    @Test(arguments: [
        (0.0, "0 ms"), (0.42, "0.42 ms"), (3.14159, "3.14 ms"), (18.25, "18.2 ms"), (182.4, "182 ms"), (1250, "1.25 s"),
    ])
    func formatsMilliseconds(_ value: Double, _ text: String) {
        #expect(Format.ms(value) == text)
    }

    @Test(arguments: [(0.0, "0%"), (0.00375, "0.38%"), (0.125, "12.5%"), (1.0, "100%")])
    func formatsRates(_ value: Double, _ text: String) {
        #expect(Format.percent(value) == text)
    }

    @Test func formatsCountsAndMetrics() {
        #expect(Format.integer(1_234_567) == "1,234,567")
        #expect(Format.integer(-1000) == "-1,000")
        #expect(Format.metric("p95_ms", 312.4) == "312 ms")
        #expect(Format.metric("error_rate", 0.02) == "2.00%")
        #expect(Format.metric("rps", 51) == "51.0/s")
        #expect(Format.metric("count", 100) == "100")
    }
}

/// Every load output in the fixture journals is the shared ``LoadResult``: the real `http.load`
/// runs (`journals/demo/`) read and write back the same text; the generated ones (which write
/// whole limits as `200.0`) read back to the same result.
@Suite struct LoadResultFixtureTests {
    @Test func fixtureOutputsReadAndWriteBackUnchanged() throws {
        var checked = 0
        for file in try JournalFormatTests.fixtureFiles() {
            let journal = try Journal.load(path: file)
            let states = journal.steadyStates
            let records =
                (states.before?.probes ?? []) + journal.run + states.during.flatMap(\.probes) + (states.after?.probes ?? []) + journal.rollbacks
            for record in records where record.providerType == "http.load" {
                let output = try #require(record.output)
                let result = try #require(LoadResult(output, providerType: record.providerType))
                if file.contains("/demo/") {
                    #expect(JSONWriter.string(result.value, pretty: false) == JSONWriter.string(output, pretty: false), "\(file): \(record.name)")
                } else {
                    #expect(try LoadResult(decoding: result.value) == result, "\(file): \(record.name)")
                }
                checked += 1
            }
        }
        #expect(checked >= 5)
    }
}
