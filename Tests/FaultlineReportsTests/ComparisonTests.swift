import FaultlineKit
import Foundation
import Testing

@testable import FaultlineReports

@Suite struct ComparisonTests {
    static func stats(count: Int, failed: Int, avg: Double, p95: Double, rps: Double, codes: [String: Int], errors: [String: Int]) -> Value {
        [
            "count": .int(count), "ok": .int(count - failed), "failed": .int(failed), "error_rate": .double(Double(failed) / Double(count)),
            "min_ms": 1.0, "avg_ms": .double(avg), "max_ms": .double(p95 * 2), "p50_ms": .double(avg), "p90_ms": .double(p95 * 0.9),
            "p95_ms": .double(p95), "p99_ms": .double(p95 * 1.2), "p999_ms": .double(p95 * 1.5), "rps": .double(rps), "bytes_received": 1000,
            "bytes_sent": 100, "bytes_per_s": 10.0,
            "status_codes": .object(ValueObject(codes.keys.sorted().map { ($0, Value.int(codes[$0]!)) })),
            "errors": .object(ValueObject(errors.keys.sorted().map { ($0, Value.int(errors[$0]!)) })),
        ]
    }

    @Test func metricsHaveDirectionsAndVerdicts() throws {
        let before = try LoadStats(
            decoding: Self.stats(
                count: 1000, failed: 120, avg: 400, p95: 1200, rps: 80, codes: ["200": 880, "503": 100], errors: ["refused": 20, "http_5xx": 100]))
        let after = try LoadStats(
            decoding: Self.stats(count: 1100, failed: 2, avg: 120, p95: 180, rps: 95, codes: ["200": 1098, "503": 2], errors: ["http_5xx": 2]))
        let metrics = Dictionary(uniqueKeysWithValues: Comparison.metrics(before, after).map { ($0.name, $0) })
        for name in ["Error rate", "Avg response time", "p95", "Throughput", "Connection errors", "5xx responses"] {
            #expect(metrics[name] != nil, "the table has \(name)")
        }
        #expect(metrics["Error rate"]?.verdict == .better)
        #expect(metrics["Error rate"]?.change == "▼ −11.82 pp (−98.5%)")
        #expect(metrics["Avg response time"]?.change == "▼ −280 ms (−70.0%)")
        #expect(metrics["Throughput"]?.verdict == .better)
        #expect(metrics["Throughput"]?.change == "▲ +15.0/s (+18.8%)")
        #expect(metrics["Connection errors"]?.before == 20 && metrics["Connection errors"]?.after == 0)
        #expect(metrics["5xx responses"]?.before == 100 && metrics["5xx responses"]?.after == 2)
        #expect(metrics["Requests"]?.verdict == .changed, "more requests is neither better nor worse")

        let worse = Comparison.metrics(after, before)
        #expect(worse.first { $0.name == "p95" }?.verdict == .worse)
        #expect(worse.first { $0.name == "Throughput" }?.verdict == .worse)
        let same = Comparison.metrics(before, before)
        #expect(same.allSatisfy { $0.verdict == .same && $0.change == "no change" })
    }

    @Test func pairsTheFixtureRunsAndWritesAHeadline() throws {
        let comparison = Comparison(
            baseline: [try Fixtures.journal("compare-baseline.json")], after: [try Fixtures.journal("compare-after.json")], options: ReportOptions())
        let pair = try #require(comparison.pairs.first)
        #expect(comparison.pairs.count == 1)
        #expect(pair.baseline?.journal.outcome == .deviated && pair.after?.journal.outcome == .completed)
        let load = try #require(pair.loads.first)
        #expect(load.name == "search-load" && load.phase == "method")
        #expect(load.requests.map(\.name) == ["GET /search", "GET /product"])
        let headline = try #require(Comparison.headline(load))
        #expect(headline.hasPrefix("Error rate fell from "))
        #expect(headline.contains("p95 fell from"))
    }

    @Test func suitesPairByTitleAndKeepUnmatchedRuns() throws {
        let suite = try Fixtures.suiteJournals()
        let comparison = Comparison(baseline: Array(suite[0..<3]), after: Array(suite[1..<5].reversed()), options: ReportOptions())
        // Baseline order first, then what only the later run has, in its order.
        #expect(comparison.pairs.map(\.title) == [suite[0], suite[1], suite[2], suite[4], suite[3]].map(\.title))
        #expect(comparison.pairs[0].after == nil, "only in the baseline")
        #expect(comparison.pairs[1].baseline?.journal.title == comparison.pairs[1].after?.journal.title)
        #expect(comparison.pairs[3].baseline == nil, "only in the later run")
    }

    @Test func markdownAndHTMLShowTheTable() throws {
        let baseline = [try Fixtures.journal("compare-baseline.json")]
        let after = [try Fixtures.journal("compare-after.json")]
        let markdown = try MarkdownReporter().renderComparison(baseline: baseline, after: after, options: ReportOptions())
        #expect(markdown.contains("| Metric | Before | After | Change |  |"))
        #expect(markdown.contains("| Error rate |"))
        #expect(markdown.contains("✅ better"))
        let html = try HTMLReporter().renderComparison(baseline: baseline, after: after, options: ReportOptions())
        #expect(html.contains("<th>Metric</th>"))
        #expect(html.contains("class=\"better\""))
        #expect(html.contains("data-chart=\"compare\""))
        #expect(html.contains("data-chart=\"compare-latency\""), "p99 of both runs on one chart")
    }
}
