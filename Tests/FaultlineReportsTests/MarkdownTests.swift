import FaultlineKit
import Foundation
import Testing

@testable import FaultlineReports

@Suite struct MarkdownTests {
    @Test func suiteStartsWithTheSummaryTable() throws {
        let journals = try Fixtures.suiteJournals()
        let markdown = try MarkdownReporter().render(journals, options: ReportOptions(title: "checkout-resilience", suiteName: "checkout-resilience"))
        let lines = markdown.split(separator: "\n").map(String.init)
        #expect(lines[0] == "# checkout-resilience")
        let table = try #require(lines.firstIndex { $0.hasPrefix("| # | Experiment | Outcome |") })
        let firstExperiment = try #require(lines.firstIndex { $0.hasPrefix("## 1. ") })
        #expect(table < firstExperiment, "the summary table comes before the experiments")
        // One row per experiment, linking to its section, in run order.
        for (index, journal) in journals.enumerated() {
            let anchor = "exp-\(index + 1)-\(slug(journal.title))"
            #expect(lines[table + 2 + index].hasPrefix("| \(index + 1) | [\(Markdown.escape(journal.title))](#\(anchor))"))
            #expect(markdown.contains("<a id=\"\(anchor)\"></a>"))
        }
    }

    @Test func experimentSectionsHoldWhatTheIssueAsksFor() throws {
        let markdown = try MarkdownReporter().render(try Fixtures.suiteJournals(), options: ReportOptions())
        for heading in [
            "### Steady-state hypothesis: checkout answers quickly", "### Faults", "### Method", "### Rollbacks", "### Cleanup", "### Failures",
            "### Load: `browse-and-checkout` (method)", "### Load: `orders-load` (hypothesis after)",
        ] {
            #expect(markdown.contains(heading + "\n"), "missing \(heading)")
        }
        // Hypothesis tables: probe, tolerance, result, value.
        #expect(markdown.contains("| Probe | Tolerance | Result | Value |"))
        #expect(markdown.contains("| `p95-under-500ms` | `0 … 500 (p95_ms)` | ✅ met | 41.7 |"))
        // Timelines: offset, activity, type, status, duration.
        #expect(markdown.contains("| At | Activity | Type | Status | Duration |"))
        #expect(markdown.contains("| `drain-retry-queue` | action | ❌ failed: action \"drain-retry-queue\" timed out"))
        // Load: per request with status codes and percentages, then all requests; users and ramp-up.
        #expect(markdown.contains("| Request | Requests | Errors | Error rate | Min | Avg | Max | p50 | p95 | p99 | Throughput | Status codes |"))
        #expect(markdown.contains("20 users · ramp-up 1.0 s"))
        #expect(markdown.contains("| **All requests** |"))
        let statusCell = try #require(markdown.split(separator: "\n").first { $0.hasPrefix("| `GET /products` |") })
        #expect(statusCell.contains("200: ") && statusCell.contains("%)"))
        // Thresholds of the hypothesis load.
        #expect(markdown.contains("| `overall` | `p(95)<200` |"))
        #expect(markdown.contains("❌ missed"))
        // Failures with their messages.
        #expect(markdown.contains("- ❌ **hypothesis before** › `search-answers`: expected 0, got 3"))
        #expect(markdown.contains("stderr: GET /search: 503 Service Unavailable"))
    }

    @Test func summaryFactsOfOneExperiment() throws {
        let journal = try Fixtures.journal("interrupted.json")
        let markdown = try MarkdownReporter().render([journal], options: ReportOptions())
        #expect(
            markdown.hasPrefix(
                "# Inventory sync survives a network partition\n\n⚠️ **interrupted** — interrupted by SIGINT; steady state was not met during"))
        for row in ["| Status | interrupted |", "| Deviated | yes |", "| Started | ", "| Ended | ", "| Duration | "] {
            #expect(markdown.contains(row), "missing \(row)")
        }
        #expect(!markdown.contains("| # | Experiment |"), "one journal has no suite table")
        #expect(markdown.contains("- ⚠️ **method** › `wait-for-resync`"))
        // Checks during the method: one row each, with the probes that missed.
        #expect(markdown.contains("**During the method** — 5 checks, 3 not met"))
        #expect(markdown.contains("| 3 | +0.601 s | ❌ not met | `warehouse-lag-seconds`: 2.6 is outside \\[0, 2\\] |"))
    }

    @Test func escapesTableBreakingText() {
        #expect(Markdown.escape("a|b *c* <d> [e](f)") == "a\\|b \\*c\\* \\<d\\> \\[e\\](f)")
        #expect(Markdown.cell("one\ntwo|three") == "one<br>two\\|three")
        #expect(Markdown.code("x`y|z") == "``x`y\\|z``")
        let table = Markdown.table(["A", "B"], align: [.left, .right], [["1", ""]])
        #expect(table == "| A | B |\n|---|---:|\n| 1 |   |\n")
    }
}
