import FaultlineKit
import FaultlineTestSupport
import Foundation
import Testing

@testable import FaultlineReports

/// The HTML report through a real HTML5 parser (html5lib): no parse errors, nothing loaded from
/// outside the file, every chart present, and the fault bands where the journal's timestamps put them.
@Suite struct HTMLTests {
    /// What `inspect_html.py` reports about a page.
    struct Inspection {
        var errors: [Value]
        var external: [Value]
        var charts: [Value]
        var text: String

        func charts(_ kind: String, article: String? = nil, section: String? = nil) -> [Value] {
            charts.filter { chart in
                chart["chart"]?.stringValue == kind && (article == nil || chart["article"]?.stringValue == article)
                    && (section == nil || chart["section"]?.stringValue == section)
            }
        }
    }

    static func inspect(_ html: String) async throws -> Inspection {
        let python = try #require(await Tools.pythonWithHTML5Lib(), "no Python with html5lib: \(Tools.setupHint)")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-report-\(UUID().uuidString).html").path
        try html.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try await run(python, [Fixtures.path("inspect_html.py"), file])
        try #require(result.status == 0, "inspect_html.py failed: \(result.stderr)")
        let value = try JSONReader.value(result.stdout)
        return Inspection(
            errors: value["errors"]?.arrayValue ?? [], external: value["external"]?.arrayValue ?? [], charts: value["charts"]?.arrayValue ?? [],
            text: value["text"]?.stringValue ?? "")
    }

    static func allJournals() throws -> [Journal] {
        try Fixtures.suiteJournals() + [try Fixtures.journal("interrupted.json"), try Fixtures.journal("compare-baseline.json")]
    }

    @Test func parsesWithoutErrorsAndIsSelfContained() async throws {
        let pages = [
            try HTMLReporter().render(try Self.allJournals(), options: ReportOptions(title: "all fixtures")),
            try HTMLReporter().render([try Fixtures.journal("interrupted.json")], options: ReportOptions()),
            try HTMLReporter().renderComparison(
                baseline: [try Fixtures.journal("compare-baseline.json")], after: [try Fixtures.journal("compare-after.json")],
                options: ReportOptions()),
        ]
        for html in pages {
            let page = try await Self.inspect(html)
            #expect(page.errors.isEmpty, "HTML5 parse errors: \(page.errors)")
            #expect(page.external.isEmpty, "references outside the file: \(page.external)")
            #expect(!page.charts.isEmpty)
        }
    }

    /// The check itself must catch what it is meant to: an external stylesheet, a script, a remote image.
    @Test func inspectionCatchesExternalReferencesAndParseErrors() async throws {
        let bad = """
            <!DOCTYPE html><html><head><title>x</title><link rel="stylesheet" href="https://cdn.example/x.css">
            <style>body { background: url(https://example.com/bg.png) }</style></head>
            <body><img src="http://example.com/a.png"><script src="app.js"></script><p>unclosed <b>bold</i></p></body></html>
            """
        let page = try await Self.inspect(bad)
        #expect(page.external.count >= 4)
        #expect(!page.errors.isEmpty)
    }

    @Test func everyChartIsPresent() async throws {
        let journals = try Self.allJournals()
        let report = ReportView(journals, options: ReportOptions())
        let page = try await Self.inspect(try HTMLReporter().render(journals, options: ReportOptions()))
        var loadCount = 0
        for experiment in report.experiments {
            #expect(page.charts("timeline", article: experiment.anchor).count == 1, "timeline of \(experiment.journal.title)")
            for load in experiment.loads {
                loadCount += 1
                for kind in ["latency", "errors", "status"] {
                    let charts = page.charts(kind, article: experiment.anchor, section: load.anchor)
                    #expect(charts.count == 1, "\(kind) chart of \(load.record.name) in \(experiment.journal.title)")
                    #expect((charts.first?["shapes"]?.intValue ?? 0) > 1, "\(kind) chart of \(load.record.name) draws something")
                }
            }
        }
        #expect(loadCount == 4, "the fixtures hold four load runs (one in the method, two in a hypothesis, one in the comparison run)")
    }

    // MARK: Fault windows line up with the journal

    /// RFC 3339 with fractions, parsed here rather than by the code under test.
    static func date(_ text: String) throws -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return try #require(formatter.date(from: text), "bad timestamp \(text)")
    }

    static func date(_ timestamp: Timestamp) throws -> Date { try date(timestamp.text) }

    /// Where a window [from, to] (seconds on an axis of `span` seconds) is drawn between `left` and `right`.
    static func expectedBand(from: Double, to: Double, span: Double, left: Double, right: Double) -> (x: Double, width: Double) {
        func x(_ t: Double) -> Double { left + min(max(t, 0), span) / span * (right - left) }
        let x1 = x(from)
        return (x1, max(x(to), x1 + 1) - x1)
    }

    @Test func faultWindowsLineUpOnTheTimeline() async throws {
        let journals = try Self.allJournals()
        let page = try await Self.inspect(try HTMLReporter().render(journals, options: ReportOptions()))
        var checked = 0
        for (index, journal) in journals.enumerated() {
            let anchor = "exp-\(index + 1)-\(slug(journal.title))"
            let chart = try #require(page.charts("timeline", article: anchor).first)
            let bands = chart["faults"]?.arrayValue ?? []
            #expect(bands.count == journal.faults.count, "one band per fault in \(journal.title)")
            let start = try Self.date(journal.start)
            let end = try Self.date(try #require(journal.end))
            let span = journal.duration ?? end.timeIntervalSince(start)
            for (fault, band) in zip(journal.faults, bands) {
                #expect(band["id"]?.stringValue == fault.id)
                let from = try Self.date(fault.start).timeIntervalSince(start)
                let to = try Self.date(fault.end ?? journal.end!).timeIntervalSince(start)
                let expected = Self.expectedBand(from: from, to: to, span: span, left: TimelineChart.plotLeft, right: TimelineChart.plotRight)
                let x = try #require(band["x"]?.doubleValue)
                let width = try #require(band["width"]?.doubleValue)
                #expect(abs(x - expected.x) < 0.011, "\(fault.label) starts at x \(x), expected \(expected.x)")
                #expect(abs(width - expected.width) < 0.021, "\(fault.label) is \(width) wide, expected \(expected.width)")
                checked += 1
            }
        }
        #expect(checked >= 5)
    }

    @Test func faultWindowsLineUpOnLoadCharts() async throws {
        let journals = try Self.allJournals()
        let report = ReportView(journals, options: ReportOptions())
        let page = try await Self.inspect(try HTMLReporter().render(journals, options: ReportOptions()))
        var checked = 0
        for experiment in report.experiments {
            let journal = experiment.journal
            for load in experiment.loads {
                let output = try #require(load.record.output)
                let origin = try Self.date(try #require(output["started"]?.stringValue))
                let span = try #require(output["elapsed_s"]?.doubleValue)
                // The windows that overlap the load, in journal order.
                let overlapping = try journal.faults.compactMap { fault -> (FaultWindow, Double, Double)? in
                    let from = try Self.date(fault.start).timeIntervalSince(origin)
                    let to = try Self.date(fault.end ?? journal.end!).timeIntervalSince(origin)
                    return to >= 0 && from <= span ? (fault, from, to) : nil
                }
                for kind in ["latency", "errors"] {
                    let chart = try #require(page.charts(kind, article: experiment.anchor, section: load.anchor).first)
                    let bands = chart["faults"]?.arrayValue ?? []
                    #expect(bands.count == overlapping.count, "\(kind) chart of \(load.record.name): one band per overlapping fault")
                    for ((fault, from, to), band) in zip(overlapping, bands) {
                        #expect(band["id"]?.stringValue == fault.id)
                        let expected = Self.expectedBand(from: from, to: to, span: span, left: LoadCharts.plotLeft, right: LoadCharts.plotRight)
                        #expect(abs((band["x"]?.doubleValue ?? -1) - expected.x) < 0.011, "\(fault.label) on \(kind): x")
                        #expect(abs((band["width"]?.doubleValue ?? -1) - expected.width) < 0.021, "\(fault.label) on \(kind): width")
                        checked += 1
                    }
                }
            }
        }
        #expect(checked >= 6, "the fixtures put faults over the method load, the hypothesis-after load and the comparison load")
    }

    @Test func usesThemesAndPrintStylesWithoutScripts() throws {
        let html = try HTMLReporter().render(try Fixtures.suiteJournals(), options: ReportOptions())
        #expect(html.contains("@media (prefers-color-scheme: dark)"))
        #expect(html.contains("@media print"))
        #expect(html.contains("<meta name=\"color-scheme\" content=\"light dark\">"))
        #expect(!html.lowercased().contains("<script"))
    }

    @Test func escapesWhatJournalsHold() async throws {
        var journal = try Fixtures.journal("interrupted.json")
        journal.experiment["title"] = "<script>alert(1)</script> & \"quotes\""
        journal.reason = "<img src=x onerror=alert(1)>"
        let html = try HTMLReporter().render([journal], options: ReportOptions())
        #expect(!html.contains("<script>alert"))
        #expect(!html.contains("<img src=x"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"))
        let page = try await Self.inspect(html)
        #expect(page.external.isEmpty)
    }

    /// An hour of per-second points becomes at most 600 on the chart, keeping the worst p99 and any errors.
    @Test func longRunsAreCondensed() {
        let timeline = (0..<3600).map { second in
            LoadSecond(second: second, at: nil, count: 100, errors: second == 1234 ? 1 : 0, p50Ms: 10, p99Ms: second == 2000 ? 900 : 50)
        }
        let (points, width) = LoadCharts.condensed(timeline)
        #expect(width == 6 && points.count == 600)
        #expect(points.map(\.second) == Array(stride(from: 0, to: 3600, by: 6)))
        #expect(points.allSatisfy { $0.count == 100 && $0.p50Ms == 10 })
        #expect(points.first { $0.second == 1998 }?.p99Ms == 900, "the worst p99 of a bucket survives")
        #expect(points.first { $0.second == 1230 }?.errors == 1, "a bucket with an error keeps it")
        #expect(LoadCharts.condensed(Array(timeline.prefix(600))).width == 1, "short runs are drawn as they are")
    }
}
