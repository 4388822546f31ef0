import FaultlineKit
import Foundation

/// `html`: one self-contained page (inline CSS and SVG, no scripts, no external assets) in light
/// and dark themes, printable: a suite summary, then per experiment its verdict, a timeline with
/// the fault windows shaded, hypothesis tables, load charts (latency, errors per second, status
/// codes) and tables, and failures.
public struct HTMLReporter: ComparisonReporter {
    public let format = "html"
    public let fileExtension = "html"
    public let summary =
        "Self-contained HTML with inline SVG charts (timeline with fault windows, latency, errors, status codes); light/dark, printable"

    public init() {}

    public func render(_ journals: [Journal], options: ReportOptions) throws -> String {
        let report = ReportView(journals, options: options)
        var body = "<header>\n<p class=\"eyebrow\">Faultline · chaos report</p>\n<h1>\(HTML.escape(report.title))</h1>\n"
        body += "<p class=\"lead\">\(lead(report))</p>\n"
        if report.isSuite { body += tiles(report) }
        body += "</header>\n<main>\n"
        if report.isSuite { body += suiteSummary(report) }
        for experiment in report.experiments { body += article(experiment, inSuite: report.isSuite) }
        body += "</main>\n" + footer(report)
        return page(title: report.title, body: body)
    }

    public func renderComparison(baseline: [Journal], after: [Journal], options: ReportOptions) throws -> String {
        let comparison = Comparison(baseline: baseline, after: after, options: options)
        var body = "<header>\n<p class=\"eyebrow\">Faultline · before and after</p>\n<h1>\(HTML.escape(comparison.title))</h1>\n"
        let what =
            comparison.pairs.contains(where: \.comparesTwoExperiments)
            ? "Two experiments side by side, the baseline first" : "The same experiment before and after a change"
        body += "<p class=\"lead\">\(what): each metric with its direction (▲ up, ▼ down) and whether that is better or worse.</p>\n"
        body += "</header>\n<main>\n"
        for pair in comparison.pairs { body += comparisonCard(pair, showTitle: comparison.pairs.count > 1) }
        body += "</main>\n"
        return page(title: comparison.title, body: body)
    }

    // MARK: Page

    private func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <title>\(HTML.escape(title))</title>
        <style>
        \(Stylesheet.css)
        </style>
        </head>
        <body>
        <div class="page">
        \(body)</div>
        </body>
        </html>

        """
    }

    private func lead(_ report: ReportView) -> String {
        var parts: [String] = []
        if report.isSuite {
            parts.append("\(report.experiments.count) experiments")
        } else if let experiment = report.experiments.first {
            parts.append(HTML.pill(Label.outcome(experiment.journal), Label.tone(experiment.journal)))
        }
        if !report.profiles.isEmpty { parts.append("profile " + report.profiles.map(HTML.code).joined(separator: ", ")) }
        if let start = report.start, let end = report.end {
            parts.append("\(Format.dateTime(start)) → \(Format.time(end, sameDayAs: start))")
            parts.append(Format.duration(report.isSuite ? end.timeIntervalSince(start) : report.experiments[0].duration))
        }
        return parts.joined(separator: " · ")
    }

    private func tiles(_ report: ReportView) -> String {
        var out = "<div class=\"tiles\">\n"
        out += tile("\(report.experiments.count)", "experiments", nil)
        for entry in report.outcomeCounts { out += tile("\(entry.count)", entry.label, entry.tone) }
        out += tile("\(report.experiments.reduce(0) { $0 + $1.faults.count })", "faults injected", nil)
        let requests = report.experiments.flatMap(\.loads).reduce(0) { $0 + $1.result.overall.count }
        if requests > 0 { out += tile(Format.integer(requests), "load requests", nil) }
        return out + "</div>\n"
    }

    private func tile(_ number: String, _ label: String, _ tone: Label.Tone?) -> String {
        "<div class=\"tile\(tone.map { " \($0.rawValue)" } ?? "")\"><div class=\"n\">\(HTML.escape(number))</div><div class=\"k\">\(HTML.escape(label))</div></div>\n"
    }

    private func suiteSummary(_ report: ReportView) -> String {
        let rows = report.experiments.map { experiment -> [String] in
            let journal = experiment.journal
            let load = experiment.headlineLoad?.result.overall
            var notes = journal.reason ?? ""
            if notes.isEmpty, !experiment.deviatedProbes.isEmpty { notes = "deviated: " + experiment.deviatedProbes.joined(separator: ", ") }
            let title =
                "<a href=\"#\(experiment.anchor)\">\(HTML.escape(journal.title))</a>"
                + (notes.isEmpty ? "" : "<div class=\"muted small\">\(HTML.escape(Format.truncate(notes, 160)))</div>")
            return [
                "\(experiment.number)", title, HTML.pill(Label.outcome(journal), Label.tone(journal)), Format.duration(experiment.duration),
                "\(experiment.faults.count)", load.map { Format.integer($0.count) } ?? "—", load.map { Format.percent($0.errorRate) } ?? "—",
                load.map { Format.ms($0.p95Ms) } ?? "—",
            ]
        }
        return "<section class=\"card\">\n<h2>Summary</h2>\n"
            + HTML.table(
                ["#", "Experiment", "Outcome", "Duration", "Faults", "Requests", "Errors", "p95"], numeric: [0, 3, 4, 5, 6, 7], classes: "summary",
                rows)
            + "</section>\n"
    }

    // MARK: Experiment

    private func article(_ experiment: ExperimentView, inSuite: Bool) -> String {
        let journal = experiment.journal
        let tone = Label.tone(journal)
        var out = "<article class=\"card\" id=\"\(experiment.anchor)\">\n<div class=\"exp-head\">"
        if inSuite {
            out += "<span class=\"num\">\(experiment.number)</span><h2>\(HTML.escape(journal.title))</h2>"
        } else {
            out += "<h2>Result</h2>"
        }
        out += HTML.pill(Label.outcome(journal), tone).replacingOccurrences(of: "class=\"pill ", with: "class=\"pill big ") + "</div>\n"
        if let description = experiment.description, !description.isEmpty { out += "<p class=\"description\">\(HTML.escape(description))</p>\n" }
        if let reason = journal.reason { out += "<div class=\"reason \(tone.rawValue)\">\(HTML.escape(reason))</div>\n" }
        out += facts(experiment)

        out += "<h3>Timeline</h3>\n<figure>\n" + TimelineChart.render(experiment)
        out += "<figcaption>Seconds since the experiment started; bars run from each activity's start to its end"
        out += experiment.faults.isEmpty ? ".</figcaption>\n</figure>\n" : ", shaded bands are the fault windows.</figcaption>\n</figure>\n"

        if !experiment.failures.isEmpty {
            out += "<h3>Failures</h3>\n"
            for failure in experiment.failures {
                out +=
                    "<div class=\"failure \(failure.tone.rawValue)\"><div class=\"where\">\(HTML.escape(failure.phase)) · \(HTML.escape(failure.kind))</div>"
                out += "<div><strong>\(HTML.escape(failure.name))</strong>: \(HTML.escape(failure.message))</div>"
                if !failure.details.isEmpty { out += "<pre>\(HTML.escape(failure.details.joined(separator: "\n")))</pre>" }
                out += "</div>\n"
            }
        }
        if !experiment.checks.isEmpty {
            out += "<h3>Steady-state hypothesis</h3>\n"
            if let title = experiment.hypothesisTitle { out += "<p class=\"muted\">\(HTML.escape(title))</p>\n" }
            for check in experiment.checks where !check.label.hasPrefix("during") {
                if check.label == "after" { out += during(experiment) }
                out += hypothesis(check, experiment)
            }
            if experiment.checks.allSatisfy({ $0.label != "after" }) { out += during(experiment) }
        }
        if !experiment.faults.isEmpty {
            out += "<h3>Faults</h3>\n"
            out += HTML.table(
                ["Fault", "From", "To", "Duration"], numeric: [1, 2, 3],
                experiment.faults.map { fault in
                    let from = experiment.start.map { fault.start.timeIntervalSince($0) } ?? 0
                    let to = experiment.start.map { fault.end.timeIntervalSince($0) } ?? 0
                    return [
                        "⚡ " + HTML.escape(fault.window.label), Format.offset(from), fault.isOpen ? "still active" : Format.offset(to),
                        Format.duration(fault.end.timeIntervalSince(fault.start)),
                    ]
                })
        }
        if !experiment.method.isEmpty { out += "<h3>Method</h3>\n" + timeline(experiment.method, experiment) }
        for load in experiment.loads { out += self.load(load, experiment) }
        if !experiment.rollbacks.isEmpty { out += "<h3>Rollbacks</h3>\n" + timeline(experiment.rollbacks, experiment) }
        if !journal.cleanup.isEmpty {
            out += "<h3>Cleanup</h3>\n"
            out += HTML.table(
                ["At", "Undo", "Status", "Duration"], numeric: [0, 3],
                journal.cleanup.map { record in
                    let duration = record.end.date.flatMap { end in record.start.date.map { end.timeIntervalSince($0) } } ?? 0
                    return [
                        experiment.offset(record.start).map(Format.offset) ?? "", HTML.escape(record.description),
                        HTML.pill(record.status.rawValue, Label.tone(cleanupStatus: record.status))
                            + (record.error.map { " " + HTML.escape($0) } ?? ""),
                        Format.duration(duration),
                    ]
                })
        }
        if !journal.leftUndone.isEmpty {
            out += "<h3>Left undone</h3>\n<ul>\n" + journal.leftUndone.map { "<li>\(HTML.escape($0))</li>\n" }.joined() + "</ul>\n"
        }
        out += outputs(experiment)
        return out + "</article>\n"
    }

    private func facts(_ experiment: ExperimentView) -> String {
        let journal = experiment.journal
        var facts: [(String, String)] = [("Status", HTML.escape(journal.status.rawValue)), ("Deviated", Label.yesNo(journal.deviated))]
        if let profile = journal.profile { facts.append(("Profile", HTML.code(profile))) }
        if let start = experiment.start { facts.append(("Started", Format.dateTime(start))) }
        if let end = experiment.end { facts.append(("Ended", Format.time(end, sameDayAs: experiment.start))) }
        facts.append(("Duration", Format.duration(experiment.duration)))
        if let dry = journal.dry { facts.append(("Dry run", HTML.escape(dry))) }
        facts.append(("Experiment", HTML.code(journal.origin)))
        facts.append(("Run", "<span class=\"mono\">\(HTML.escape(String(journal.runID.prefix(8))))</span> · seed \(journal.seed)"))
        return "<dl class=\"facts\">\n" + facts.map { "<div><dt>\($0.0)</dt><dd>\($0.1)</dd></div>\n" }.joined() + "</dl>\n"
    }

    private func hypothesis(_ check: ExperimentView.Check, _ experiment: ExperimentView) -> String {
        let met = check.record.steadyStateMet
        let pill = met == true ? HTML.pill("met", .ok) : (met == false ? HTML.pill("not met", .bad) : HTML.pill("not concluded", .warn))
        let at = check.record.start.flatMap(experiment.offset).map { "<span class=\"muted\">\(Format.offset($0))</span>" } ?? ""
        var out = "<div class=\"check-title\">\(HTML.escape(check.label.prefix(1).uppercased() + check.label.dropFirst())) \(pill) \(at)</div>\n"
        if check.record.probes.isEmpty { return out + "<p class=\"muted\">No probes ran.</p>\n" }
        out += HTML.table(
            ["Probe", "Tolerance", "Result", "Value"], classes: "hypothesis",
            check.record.probes.map { record in
                var value = (ToleranceText.judgedValue(record) ?? record.exception?.first).map(HTML.escape) ?? "—"
                if let message = record.toleranceMessage { value += "<div class=\"small muted\">\(HTML.escape(message))</div>" }
                return [
                    HTML.code(record.name), ToleranceText.of(record).map(HTML.code) ?? "—", HTML.status(record), value,
                ]
            })
        return out
    }

    /// Checks made while the method ran, one row each: there may be hundreds.
    private func during(_ experiment: ExperimentView) -> String {
        let checks = experiment.duringChecks
        guard !checks.isEmpty else { return "" }
        let missed = checks.filter { $0.record.steadyStateMet == false }.count
        var out = "<div class=\"check-title\">During the method <span class=\"muted\">\(checks.count) check\(checks.count == 1 ? "" : "s"), "
        out += "\(missed) not met</span></div>\n"
        return out
            + HTML.table(
                ["#", "At", "Result", "Not met"], numeric: [0, 1],
                checks.enumerated().map { index, check in
                    let met = check.record.steadyStateMet
                    let misses = ExperimentView.misses(check.record)
                    return [
                        "\(index + 1)", check.record.start.flatMap(experiment.offset).map(Format.offset) ?? "",
                        met == true ? HTML.pill("met", .ok) : (met == false ? HTML.pill("not met", .bad) : HTML.pill("not concluded", .warn)),
                        misses.isEmpty
                            ? "<span class=\"muted\">—</span>"
                            : misses.map { "\(HTML.code($0.name)): \(HTML.escape($0.why))" }.joined(separator: "<br>"),
                    ]
                })
    }

    private func timeline(_ records: [RunRecord], _ experiment: ExperimentView) -> String {
        HTML.table(
            ["At", "Activity", "Type", "Status", "Duration"], numeric: [0, 4],
            records.map { record in
                var status = HTML.status(record)
                if record.status == .failed || record.status == .interrupted, let message = record.exception?.first {
                    status += " <span class=\"small\">\(HTML.escape(message))</span>"
                }
                return [
                    experiment.offset(record.start).map(Format.offset) ?? "",
                    HTML.code(record.name) + (record.background == true ? " <span class=\"muted small\">background</span>" : ""), record.kind, status,
                    record.status == .skipped ? "—" : Format.duration(record.duration),
                ]
            })
    }

    // MARK: Load

    private func load(_ load: ExperimentView.LoadRun, _ experiment: ExperimentView) -> String {
        let result = load.result
        let overall = result.overall
        var out =
            "<section id=\"\(load.anchor)\">\n<h3>Load · \(HTML.escape(load.record.name)) <span class=\"muted\">(\(HTML.escape(load.phase)))</span></h3>\n"
        var shape: [String] = []
        if result.model == .open {
            if let rate = result.rate { shape.append("\(Format.number(rate)) requests/s, open model") }
        } else {
            if let users = result.users { shape.append("\(users) user\(users == 1 ? "" : "s")") }
            if let ramp = result.rampUpSeconds { shape.append("ramp-up \(Format.duration(ramp))") }
            shape.append("closed model")
        }
        if let stages = Format.stages(result) { shape.append(stages) }
        if let shard = Format.shard(result) { shape.append(shard) }
        if let duration = result.durationSeconds { shape.append("\(Format.duration(duration)) planned") }
        if let iterations = result.iterations { shape.append("\(iterations) iterations") }
        if let think = result.thinkTimeSeconds, think > 0 { shape.append("think time \(Format.duration(think))") }
        if let started = result.started, let offset = experiment.offset(started) { shape.append("started at \(Format.offset(offset))") }
        out += "<p class=\"muted\">\(shape.map(HTML.escape).joined(separator: " · "))</p>\n"

        out += "<div class=\"tiles\">\n"
        out += tile(Format.integer(overall.count), "requests in \(Format.duration(result.elapsedSeconds))", nil)
        out += tile(Format.percent(overall.errorRate), "error rate", overall.failed > 0 ? .bad : .ok)
        out += tile(Format.ms(overall.avgMs), "average", nil)
        out += tile(Format.ms(overall.p95Ms), "p95", nil)
        out += tile(Format.ms(overall.p99Ms), "p99", nil)
        out += tile(Format.rate(overall.rps), "throughput", nil)
        if result.dropped > 0 { out += tile(Format.integer(result.dropped), "dropped (not sent on time)", .warn) }
        if result.abandoned > 0 { out += tile(Format.integer(result.abandoned), "abandoned (in flight at the end)", .warn) }
        out += "</div>\n"

        out += "<div class=\"charts-2\">\n"
        out += "<figure>\n" + LoadCharts.latency(load, experiment) + "<figcaption>Latency per second: p50 and p99, the band between them shaded"
        out += experiment.faults.isEmpty ? ".</figcaption>\n</figure>\n" : "; fault windows shaded.</figcaption>\n</figure>\n"
        out +=
            "<figure>\n" + LoadCharts.throughput(load, experiment)
            + "<figcaption>Requests per second: succeeded in grey, failed in red.</figcaption>\n</figure>\n"
        out += "</div>\n"
        out += phaseTable(result)
        out +=
            "<h4>Status codes</h4>\n<figure>\n" + LoadCharts.statusCodes(load)
            + "<figcaption>Share of all \(Format.integer(overall.count)) requests; failures without a response listed by class.</figcaption>\n</figure>\n"

        var rows = result.requests.map { statsRow(HTML.code($0.name), $0.stats) }
        if result.requests.count != 1 { rows.append(statsRow("All requests", overall)) }
        var table = HTML.table(
            ["Request", "Requests", "Error rate", "Min", "Avg", "Max", "p50", "p90", "p95", "p99", "Throughput", "Status codes"],
            numeric: Set(1...10), classes: "compact", rows)
        if result.requests.count != 1, let last = table.range(of: "<tr><td>All requests", options: .backwards) {
            table.replaceSubrange(last, with: "<tr class=\"total\"><td>All requests")
        }
        out += "<h4>Per request</h4>\n" + table
        let errorClasses = overall.errors.filter { $0.count > 0 }
        if !errorClasses.isEmpty {
            out +=
                "<p class=\"small muted\">Failures by class: "
                + errorClasses.map { "\(HTML.escape(Label.errorClass($0.label))) \(Format.integer($0.count))" }.joined(separator: " · ") + "</p>\n"
        }
        if !result.thresholds.isEmpty {
            out += "<h4>Thresholds</h4>\n"
            out += HTML.table(
                ["Scope", "Threshold", "Measured", "Result"], numeric: [2],
                result.thresholds.map { threshold in
                    [
                        HTML.code(threshold.scope), HTML.code(threshold.expression),
                        threshold.measured.map { Format.metric(threshold.metric, $0) } ?? "—",
                        threshold.ok ? HTML.pill("passed", .ok) : HTML.pill("missed", .bad),
                    ]
                })
        }
        return out + "</section>\n"
    }

    /// The load split by the run's fault windows, one row per phase, under the charts.
    private func phaseTable(_ result: LoadResult) -> String {
        guard !result.phases.isEmpty else { return "" }
        let open = result.model == .open
        var out = "<h4>Phases</h4>\n<p class=\"small muted\">Requests by when they were sent, split by the run's fault windows.</p>\n"
        var header = ["Phase", "From", "To", "Requests", "Error rate", "Min", "Avg", "Max", "p50", "p90", "p95", "p99", "Throughput"]
        if open { header.append("Dropped") }
        header.append("Status codes")
        let table = HTML.table(
            header, numeric: Set(1..<(header.count - 1)), classes: "compact phases",
            result.phases.map { phase in
                var row = statsRow((phase.kind == .fault ? "fault " : "") + HTML.code(phase.name), phase.stats)
                row.insert(contentsOf: [Format.offset(phase.fromSeconds), Format.offset(phase.toSeconds)], at: 1)
                if open { row.insert(Format.integer(phase.dropped), at: row.count - 1) }
                return row
            })
        out += table.replacingOccurrences(of: "<tr><td>fault ", with: "<tr class=\"fault\"><td>fault ")
        for warning in result.collapseWarnings {
            out += "<p>\(HTML.pill("coordinated omission", .warn)) \(HTML.escape(warning.prefix(1).uppercased() + warning.dropFirst())).</p>\n"
        }
        return out
    }

    private func statsRow(_ name: String, _ stats: LoadStats) -> [String] {
        let codes = stats.statusCodes.map { code in
            "<span>\(HTML.escape(code.label)) × \(Format.integer(code.count)) <span class=\"muted\">\(Format.percent(stats.count > 0 ? Double(code.count) / Double(stats.count) : 0))</span></span>"
        }
        let errors =
            Format.percent(stats.errorRate) + (stats.failed > 0 ? "<div class=\"small muted\">\(Format.integer(stats.failed)) failed</div>" : "")
        return [
            name, Format.integer(stats.count), errors, Format.ms(stats.minMs), Format.ms(stats.avgMs), Format.ms(stats.maxMs), Format.ms(stats.p50Ms),
            Format.ms(stats.p90Ms), Format.ms(stats.p95Ms), Format.ms(stats.p99Ms),
            Format.rate(stats.rps) + "<div class=\"small muted\">\(Format.bytes(stats.bytesPerSecond))/s</div>",
            codes.isEmpty ? "—" : "<div class=\"codes\">\(codes.joined())</div>",
        ]
    }

    /// Activity outputs, folded away: for the reader who wants the raw answer of a probe. Load
    /// outputs are the tables above, and checks during the method (there may be hundreds) are left out.
    private func outputs(_ experiment: ExperimentView) -> String {
        let records = ExperimentView.phasedRecords(experiment.journal, checks: experiment.checks).filter { phase, record in
            record.output != nil && !phase.hasPrefix("hypothesis during") && LoadResult(record.output, providerType: record.providerType) == nil
        }
        guard !records.isEmpty else { return "" }
        var out = "<details>\n<summary>Activity outputs (\(records.count))</summary>\n<div class=\"output\">\n"
        for (phase, record) in records {
            let text = JSONWriter.string(record.output ?? .null, pretty: true)
            out +=
                "<h4>\(HTML.escape(record.name)) <span class=\"muted small\">\(HTML.escape(phase))</span></h4>\n<pre>\(HTML.escape(Format.truncate(text, 4000)))</pre>\n"
        }
        return out + "</div>\n</details>\n"
    }

    private func footer(_ report: ReportView) -> String {
        var versions: [String] = []
        for experiment in report.experiments where !versions.contains(experiment.journal.faultlineVersion) {
            versions.append(experiment.journal.faultlineVersion)
        }
        let count = report.experiments.count
        return "<footer>Faultline \(HTML.escape(versions.joined(separator: ", "))) · \(count) journal\(count == 1 ? "" : "s")</footer>\n"
    }

    // MARK: Comparison

    private func comparisonCard(_ pair: Comparison.Pair, showTitle: Bool) -> String {
        var out = "<section class=\"card\">\n"
        if showTitle { out += "<h2>\(HTML.escape(pair.title))</h2>\n" }
        func cell(_ view: ExperimentView?, _ body: (ExperimentView) -> String) -> String { view.map(body) ?? "<span class=\"muted\">not run</span>" }
        let experimentRow =
            pair.comparesTwoExperiments
            ? [["Experiment", cell(pair.baseline) { HTML.escape($0.journal.title) }, cell(pair.after) { HTML.escape($0.journal.title) }]] : []
        out += HTML.table(
            ["", "Baseline", "After"],
            experimentRow + [
                [
                    "Run",
                    cell(pair.baseline) {
                        ($0.start.map(Format.dateTime) ?? "") + " · <span class=\"mono\">\(HTML.escape(String($0.journal.runID.prefix(8))))</span>"
                    },
                    cell(pair.after) {
                        ($0.start.map(Format.dateTime) ?? "") + " · <span class=\"mono\">\(HTML.escape(String($0.journal.runID.prefix(8))))</span>"
                    },
                ],
                [
                    "Outcome", cell(pair.baseline) { HTML.pill(Label.outcome($0.journal), Label.tone($0.journal)) },
                    cell(pair.after) { HTML.pill(Label.outcome($0.journal), Label.tone($0.journal)) },
                ],
                ["Duration", cell(pair.baseline) { Format.duration($0.duration) }, cell(pair.after) { Format.duration($0.duration) }],
                [
                    "Deviated probes",
                    cell(pair.baseline) { $0.deviatedProbes.isEmpty ? "none" : $0.deviatedProbes.map(HTML.code).joined(separator: ", ") },
                    cell(pair.after) { $0.deviatedProbes.isEmpty ? "none" : $0.deviatedProbes.map(HTML.code).joined(separator: ", ") },
                ],
            ])
        if pair.loads.isEmpty { out += "<p class=\"muted\">Neither run has load-probe output to compare.</p>\n" }
        for load in pair.loads {
            out += "<h3>Load · \(HTML.escape(load.name)) <span class=\"muted\">(\(HTML.escape(load.phase)))</span></h3>\n"
            if let headline = Comparison.headline(load) { out += "<p><strong>\(HTML.escape(headline))</strong></p>\n" }
            if let chart = LoadCharts.comparison(load, after: pair.after) {
                out += "<figure>\n" + chart + "<figcaption>p99 latency per second: the baseline in grey, the run after the change in colour"
                out +=
                    (pair.after?.faults.isEmpty ?? true)
                    ? ".</figcaption>\n</figure>\n" : "; shaded: the later run's fault windows.</figcaption>\n</figure>\n"
            }
            out += HTML.table(
                ["Metric", "Before", "After", "Change", ""], numeric: [1, 2, 3],
                load.metrics.map { metric in
                    let verdict = metric.verdict
                    let change =
                        verdict == .better || verdict == .worse
                        ? "<span class=\"\(verdict.rawValue)\">\(HTML.escape(metric.change))</span>" : HTML.escape(metric.change)
                    let word = verdict.word.isEmpty ? "" : " " + HTML.pill(verdict.word, verdict == .better ? .ok : .bad)
                    return [
                        HTML.escape(metric.name), HTML.escape(metric.format(metric.before)), HTML.escape(metric.format(metric.after)), change + word,
                        bars(metric),
                    ]
                })
            if load.requests.count > 1 || (load.requests.count == 1 && load.requests[0].name != "request") {
                out += "<h4>Per request</h4>\n" + pairTable("Request", load.requests)
            }
            if load.phases.count > 1 {
                out += "<h4>Per phase</h4>\n" + pairTable("Phase", load.phases)
            }
        }
        return out + "</section>\n"
    }

    /// Error rate, p95 and throughput of each request or phase, before and after.
    private func pairTable(_ title: String, _ pairs: [Comparison.RequestPair]) -> String {
        HTML.table(
            [title, "Error rate before", "after", "p95 before", "after", "Throughput before", "after"], numeric: Set(1...6),
            pairs.map { pair in
                [
                    HTML.code(pair.name),
                    pair.baseline.map { Format.percent($0.errorRate) } ?? "—", pair.after.map { Format.percent($0.errorRate) } ?? "—",
                    pair.baseline.map { Format.ms($0.p95Ms) } ?? "—", pair.after.map { Format.ms($0.p95Ms) } ?? "—",
                    pair.baseline.map { Format.rate($0.rps) } ?? "—", pair.after.map { Format.rate($0.rps) } ?? "—",
                ]
            })
    }

    /// Two bars, before (grey) and after (coloured by verdict), on a shared scale.
    private func bars(_ metric: Comparison.Metric) -> String {
        guard let before = metric.before, let after = metric.after else { return "" }
        let top = max(before, after)
        let width = 180.0
        func length(_ value: Double) -> Double { top > 0 ? max(1, value / top * width) : 1 }
        let verdict = metric.verdict == .changed ? "same" : metric.verdict.rawValue
        return "<svg class=\"chart\" data-chart=\"compare\" viewBox=\"0 0 180 22\" width=\"180\" height=\"22\" role=\"img\" "
            + "aria-label=\"\(HTML.escape("\(metric.name): \(metric.format(before)) before, \(metric.format(after)) after"))\" "
            + "xmlns=\"http://www.w3.org/2000/svg\" style=\"width:180px\">"
            + "<rect class=\"before\" x=\"0\" y=\"2\" width=\"\(Charts.n(length(before)))\" height=\"8\" rx=\"2\"/>"
            + "<rect class=\"after \(verdict)\" x=\"0\" y=\"12\" width=\"\(Charts.n(length(after)))\" height=\"8\" rx=\"2\"/></svg>"
    }
}
