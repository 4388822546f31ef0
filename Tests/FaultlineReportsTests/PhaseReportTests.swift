import FaultlineKit
import Foundation
import Testing

@testable import FaultlineReports

/// The load split by fault windows in the reports: a phase table under the load charts, the
/// coordinated-omission warning, and phases side by side in the comparison.
@Suite struct PhaseReportTests {
    static func phase(_ name: String, _ kind: LoadPhase.Kind, from: Double, to: Double, count: Int, p95: Double, rps: Double) -> LoadPhase {
        LoadPhase(
            name: name, kind: kind, fault: kind == .fault ? name : nil, fromSeconds: from, toSeconds: to, seconds: to - from,
            stats: LoadStats(
                count: count, ok: count, p50Ms: p95 / 2, p95Ms: p95, p99Ms: p95 * 2, rps: rps, statusCodes: [.init(label: "200", count: count)]),
            dropped: 0)
    }

    /// The fixture journal with phases in its load output: `fault` is the fault phase's p95 and rps.
    static func journal(_ file: String, fault: (p95: Double, rps: Double)) throws -> Journal {
        var journal = try Fixtures.journal(file)
        for index in journal.run.indices {
            guard var result = LoadResult(journal.run[index].output, providerType: journal.run[index].providerType) else { continue }
            result.phases = [
                phase("before", .before, from: 0, to: 2, count: 2000, p95: 4.2, rps: 1000),
                phase("latency store", .fault, from: 2, to: 4, count: Int(fault.rps * 2), p95: fault.p95, rps: fault.rps),
                phase("after", .after, from: 4, to: 6, count: 1980, p95: 4.4, rps: 990),
            ]
            journal.run[index].output = result.value
        }
        return journal
    }

    @Test func markdownShowsThePhaseTableAndTheCollapse() throws {
        let text = try MarkdownReporter().render([try Self.journal("compare-baseline.json", fault: (612, 12))], options: ReportOptions())
        #expect(text.contains("**Phases**"))
        let row = try #require(text.split(separator: "\n").first { $0.contains("fault `latency store`") })
        #expect(row.contains("612 ms") && row.contains("+2.000 s") && row.contains("+4.000 s"), "\(row)")
        #expect(text.contains("Throughput collapsed to 12.0/s during \"latency store\" (1000/s before it)"))
        #expect(text.contains("open model"))
    }

    @Test func htmlShowsThePhaseTableUnderTheCharts() throws {
        let text = try HTMLReporter().render([try Self.journal("compare-baseline.json", fault: (612, 800))], options: ReportOptions())
        let phases = try #require(text.range(of: "<h4>Phases</h4>"))
        let chart = try #require(text.range(of: "Requests per second: succeeded in grey"))
        #expect(chart.upperBound < phases.lowerBound, "the phase table is under the load charts")
        #expect(text.contains("<tr class=\"fault\"><td>fault <code>latency store</code>"))
        #expect(!text.contains("coordinated omission"), "800/s of 1000/s is no collapse")
    }

    @Test func comparisonComparesPhases() throws {
        let baseline = try Self.journal("compare-baseline.json", fault: (612, 12))
        let after = try Self.journal("compare-after.json", fault: (40, 900))
        let markdown = try MarkdownReporter().renderComparison(baseline: [baseline], after: [after], options: ReportOptions())
        #expect(markdown.contains("Per phase:"))
        let row = try #require(markdown.split(separator: "\n").first { $0.hasPrefix("| `latency store`") })
        #expect(row.contains("612 ms") && row.contains("40.0 ms"), "\(row)")
        let html = try HTMLReporter().renderComparison(baseline: [baseline], after: [after], options: ReportOptions())
        #expect(html.contains("<h4>Per phase</h4>"))
    }
}
