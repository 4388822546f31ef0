import FaultlineKit
import Foundation

/// `md`: a report that reads well on GitHub (pull requests, issues, wikis): a summary table for a
/// suite, then per experiment its verdict, hypothesis tables, timelines, load tables and failures.
public struct MarkdownReporter: ComparisonReporter {
    public let format = "md"
    public let fileExtension = "md"
    public let summary = "Markdown for GitHub: summary, hypothesis, timelines, load tables, failures; also before/after comparisons"

    public init() {}

    public func render(_ journals: [Journal], options: ReportOptions) throws -> String {
        let report = ReportView(journals, options: options)
        var out = "# \(Markdown.escape(report.title))\n\n"
        if report.isSuite {
            out += suiteSummary(report)
        }
        for experiment in report.experiments {
            out += self.experiment(experiment, inSuite: report.isSuite)
        }
        out += footer(report)
        return out
    }

    public func renderComparison(baseline: [Journal], after: [Journal], options: ReportOptions) throws -> String {
        let comparison = Comparison(baseline: baseline, after: after, options: options)
        var out = "# \(Markdown.escape(comparison.title))\n\n"
        for pair in comparison.pairs {
            if comparison.pairs.count > 1 { out += "## \(Markdown.escape(pair.title))\n\n" }
            let experimentRow =
                pair.comparesTwoExperiments
                ? [
                    [
                        "Experiment", pair.baseline.map { Markdown.escape($0.journal.title) } ?? "—",
                        pair.after.map { Markdown.escape($0.journal.title) } ?? "—",
                    ]
                ]
                : []
            out += Markdown.table(
                ["", "Baseline", "After"],
                experimentRow + [
                    ["Run", pair.baseline.map(runCell) ?? "—", pair.after.map(runCell) ?? "—"],
                    ["Outcome", pair.baseline.map { outcomeCell($0.journal) } ?? "—", pair.after.map { outcomeCell($0.journal) } ?? "—"],
                    ["Duration", pair.baseline.map { Format.duration($0.duration) } ?? "—", pair.after.map { Format.duration($0.duration) } ?? "—"],
                    [
                        "Deviated probes", pair.baseline.map { probesCell($0.deviatedProbes) } ?? "—",
                        pair.after.map { probesCell($0.deviatedProbes) } ?? "—",
                    ],
                ])
            out += "\n"
            if pair.loads.isEmpty { out += "_Neither run has load-probe output to compare._\n\n" }
            let level = comparison.pairs.count > 1 ? "###" : "##"
            for load in pair.loads {
                out += "\(level) Load: \(Markdown.code(load.name)) (\(load.phase))\n\n"
                if let headline = Comparison.headline(load) { out += "**\(Markdown.escape(headline))**\n\n" }
                out += Markdown.table(
                    ["Metric", "Before", "After", "Change", ""], align: [.left, .right, .right, .right, .left],
                    load.metrics.map { metric in
                        let verdict = metric.verdict
                        let mark = verdict == .better ? "✅ better" : (verdict == .worse ? "❌ worse" : "")
                        return [metric.name, metric.format(metric.before), metric.format(metric.after), metric.change, mark]
                    })
                out += "\n"
                if load.requests.count > 1 || (load.requests.count == 1 && load.requests[0].name != "request") {
                    out += "Per request:\n\n" + pairTable("Request", load.requests)
                }
                if load.phases.count > 1 {
                    out += "Per phase:\n\n" + pairTable("Phase", load.phases)
                }
            }
        }
        return out
    }

    // MARK: Suite

    private func suiteSummary(_ report: ReportView) -> String {
        var line = "**\(report.experiments.count) experiments**"
        for entry in report.outcomeCounts { line += " · \(entry.symbol) \(entry.count) \(entry.label)" }
        if !report.profiles.isEmpty { line += " · profile " + report.profiles.map(Markdown.code).joined(separator: ", ") }
        if let start = report.start, let end = report.end {
            line += " · \(Format.dateTime(start)) → \(Format.time(end, sameDayAs: start)) (\(Format.duration(end.timeIntervalSince(start))))"
        }
        var out = line + "\n\n"
        out += Markdown.table(
            ["#", "Experiment", "Outcome", "Deviated", "Duration", "Faults", "Load (requests · errors · p95)", "Notes"],
            align: [.right, .left, .left, .left, .right, .right, .left, .left],
            report.experiments.map { experiment in
                let journal = experiment.journal
                let load = experiment.headlineLoad.map {
                    "\(Format.integer($0.result.overall.count)) · \(Format.percent($0.result.overall.errorRate)) · \(Format.ms($0.result.overall.p95Ms))"
                }
                var notes = journal.reason ?? ""
                if notes.isEmpty, !experiment.deviatedProbes.isEmpty { notes = "deviated: " + experiment.deviatedProbes.joined(separator: ", ") }
                return [
                    "\(experiment.number)", "[\(Markdown.escape(journal.title))](#\(experiment.anchor))", outcomeCell(journal),
                    Label.yesNo(journal.deviated), Format.duration(experiment.duration), "\(experiment.faults.count)", load ?? "—",
                    notes.isEmpty ? "—" : Markdown.cell(Format.truncate(notes, 140)),
                ]
            })
        return out + "\n"
    }

    // MARK: Experiment

    private func experiment(_ experiment: ExperimentView, inSuite: Bool) -> String {
        let journal = experiment.journal
        let h2 = inSuite ? "##" : ""
        let h3 = inSuite ? "###" : "##"
        var out = ""
        if inSuite {
            out += "<a id=\"\(experiment.anchor)\"></a>\n\n"
            out += "\(h2) \(experiment.number). \(Markdown.escape(journal.title))\n\n"
        }
        out += "\(Label.symbol(journal)) **\(Label.outcome(journal))**"
        if let reason = journal.reason { out += " — \(Markdown.escape(reason))" }
        out += "\n\n"
        if let description = experiment.description, !description.isEmpty {
            out +=
                "> "
                + description.split(separator: "\n", omittingEmptySubsequences: false).map { Markdown.escape(String($0)) }.joined(separator: "\n> ")
                + "\n\n"
        }
        out += facts(experiment)

        if !experiment.failures.isEmpty {
            out += "\(h3) Failures\n\n"
            for failure in experiment.failures {
                out +=
                    "- \(failure.tone.symbol) **\(Markdown.escape(failure.phase))** › \(Markdown.code(failure.name)): \(Markdown.escape(failure.message))\n"
                if !failure.details.isEmpty {
                    out +=
                        "\n"
                        + Markdown.block(failure.details.joined(separator: "\n")).split(separator: "\n", omittingEmptySubsequences: false)
                        .map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
                }
            }
            out += "\n"
        }

        if !experiment.checks.isEmpty {
            out += "\(h3) Steady-state hypothesis" + (experiment.hypothesisTitle.map { ": \(Markdown.escape($0))" } ?? "") + "\n\n"
            for check in experiment.checks where !check.label.hasPrefix("during") {
                if check.label == "after" { out += during(experiment) }
                out += hypothesis(check, experiment)
            }
            if experiment.checks.allSatisfy({ $0.label != "after" }) { out += during(experiment) }
        }
        if !experiment.faults.isEmpty {
            out += "\(h3) Faults\n\n"
            out += Markdown.table(
                ["Fault", "From", "To", "Duration"], align: [.left, .right, .right, .right],
                experiment.faults.map { fault in
                    let from = experiment.start.map { fault.start.timeIntervalSince($0) } ?? 0
                    let to = experiment.start.map { fault.end.timeIntervalSince($0) } ?? 0
                    return [
                        Markdown.escape(fault.window.label), Format.offset(from), fault.isOpen ? "still active" : Format.offset(to),
                        Format.duration(fault.end.timeIntervalSince(fault.start)),
                    ]
                })
            out += "\n"
        }
        if !experiment.method.isEmpty {
            out += "\(h3) Method\n\n" + timeline(experiment.method, experiment) + "\n"
        }
        for load in experiment.loads {
            out += "\(h3) Load: \(Markdown.code(load.record.name)) (\(load.phase))\n\n" + self.load(load.result)
        }
        if !experiment.rollbacks.isEmpty {
            out += "\(h3) Rollbacks\n\n" + timeline(experiment.rollbacks, experiment) + "\n"
        }
        if !journal.cleanup.isEmpty {
            out += "\(h3) Cleanup\n\n"
            out += Markdown.table(
                ["At", "Undo", "Status", "Duration"], align: [.right, .left, .left, .right],
                journal.cleanup.map { record in
                    let duration = record.end.date?.timeIntervalSince(record.start.date ?? .distantPast) ?? 0
                    let tone = Label.tone(cleanupStatus: record.status)
                    return [
                        experiment.offset(record.start).map(Format.offset) ?? "", Markdown.escape(record.description),
                        "\(tone.symbol) \(Markdown.escape(record.status.rawValue))" + (record.error.map { ": " + Markdown.cell($0) } ?? ""),
                        Format.duration(duration),
                    ]
                })
            out += "\n"
        }
        if !journal.leftUndone.isEmpty {
            out += "\(h3) Left undone\n\n"
            out += journal.leftUndone.map { "- ⚠️ \(Markdown.escape($0))\n" }.joined() + "\n"
        }
        return out
    }

    private func facts(_ experiment: ExperimentView) -> String {
        let journal = experiment.journal
        var rows: [[String]] = [
            ["Status", Markdown.escape(journal.status.rawValue)],
            ["Deviated", Label.yesNo(journal.deviated)],
        ]
        if let profile = journal.profile { rows.append(["Profile", Markdown.code(profile)]) }
        if let start = experiment.start { rows.append(["Started", Format.dateTime(start)]) }
        if let end = experiment.end { rows.append(["Ended", Format.time(end, sameDayAs: experiment.start)]) }
        rows.append(["Duration", Format.duration(experiment.duration)])
        if let dry = journal.dry { rows.append(["Dry run", Markdown.escape(dry)]) }
        rows.append(["Experiment", Markdown.code(journal.origin)])
        rows.append(["Run", "\(Markdown.code(journal.runID)) · seed \(journal.seed)"])
        return Markdown.table(["", ""], rows) + "\n"
    }

    private func hypothesis(_ check: ExperimentView.Check, _ experiment: ExperimentView) -> String {
        let met = check.record.steadyStateMet
        let verdict = met == true ? "✅ met" : (met == false ? "❌ not met" : "⚠️ not concluded")
        let at = check.record.start.flatMap(experiment.offset).map { " (\(Format.offset($0)))" } ?? ""
        var out = "**\(check.label.prefix(1).uppercased() + check.label.dropFirst())** — \(verdict)\(at)\n\n"
        if check.record.probes.isEmpty { return out + "_No probes ran._\n\n" }
        out += Markdown.table(
            ["Probe", "Tolerance", "Result", "Value"],
            check.record.probes.map { record in
                [
                    Markdown.code(record.name), ToleranceText.of(record).map(Markdown.code) ?? "—",
                    "\(Label.tone(record).symbol) \(Label.result(record))",
                    (ToleranceText.judgedValue(record) ?? record.exception?.first).map(Markdown.cell) ?? "—",
                ]
            })
        return out + "\n"
    }

    /// Checks made while the method ran, one row each: there may be hundreds.
    private func during(_ experiment: ExperimentView) -> String {
        let checks = experiment.duringChecks
        guard !checks.isEmpty else { return "" }
        let missed = checks.filter { $0.record.steadyStateMet == false }.count
        var out = "**During the method** — \(checks.count) check\(checks.count == 1 ? "" : "s"), \(missed) not met\n\n"
        out += Markdown.table(
            ["#", "At", "Result", "Not met"], align: [.right, .right, .left, .left],
            checks.enumerated().map { index, check in
                let met = check.record.steadyStateMet
                let misses = ExperimentView.misses(check.record)
                return [
                    "\(index + 1)", check.record.start.flatMap(experiment.offset).map(Format.offset) ?? "",
                    met == true ? "✅ met" : (met == false ? "❌ not met" : "⚠️ not concluded"),
                    misses.isEmpty ? "—" : misses.map { "\(Markdown.code($0.name)): \(Markdown.cell($0.why))" }.joined(separator: "<br>"),
                ]
            })
        return out + "\n"
    }

    private func timeline(_ records: [RunRecord], _ experiment: ExperimentView) -> String {
        Markdown.table(
            ["At", "Activity", "Type", "Status", "Duration"], align: [.right, .left, .left, .left, .right],
            records.map { record in
                var status = "\(Label.tone(record).symbol) \(Label.result(record))"
                if record.status == .failed || record.status == .interrupted, let message = record.exception?.first {
                    status += ": " + Markdown.cell(Format.truncate(message, 120))
                }
                return [
                    experiment.offset(record.start).map(Format.offset) ?? "",
                    Markdown.code(record.name) + (record.background == true ? " (background)" : ""),
                    record.kind, status, record.status == .skipped ? "—" : Format.duration(record.duration),
                ]
            })
    }

    // MARK: Load

    /// Error rate, p95 and throughput of each request or phase, before and after.
    private func pairTable(_ title: String, _ pairs: [Comparison.RequestPair]) -> String {
        Markdown.table(
            [title, "Error rate before", "Error rate after", "p95 before", "p95 after", "Throughput before", "Throughput after"],
            align: [.left, .right, .right, .right, .right, .right, .right],
            pairs.map { pair in
                [
                    Markdown.code(pair.name),
                    pair.baseline.map { Format.percent($0.errorRate) } ?? "—", pair.after.map { Format.percent($0.errorRate) } ?? "—",
                    pair.baseline.map { Format.ms($0.p95Ms) } ?? "—", pair.after.map { Format.ms($0.p95Ms) } ?? "—",
                    pair.baseline.map { Format.rate($0.rps) } ?? "—", pair.after.map { Format.rate($0.rps) } ?? "—",
                ]
            }) + "\n"
    }

    /// The load split by the run's fault windows, one row per phase.
    private func phaseTable(_ result: LoadResult) -> String {
        guard !result.phases.isEmpty else { return "" }
        let open = result.model == .open
        var header = ["Phase", "From", "To", "Requests", "Error rate", "Min", "Avg", "Max", "p50", "p90", "p95", "p99", "Throughput"]
        if open { header.append("Dropped") }
        header.append("Status codes")
        var out = "**Phases** (requests by when they were sent; the fault windows are the run's)\n\n"
        out += Markdown.table(
            header, align: [.left] + Array(repeating: .right, count: header.count - 2) + [.left],
            result.phases.map { phase in
                let stats = phase.stats
                var row = [
                    phase.kind == .fault ? "fault " + Markdown.code(phase.name) : Markdown.code(phase.name),
                    Format.offset(phase.fromSeconds), Format.offset(phase.toSeconds), Format.integer(stats.count), Format.percent(stats.errorRate),
                    Format.ms(stats.minMs), Format.ms(stats.avgMs), Format.ms(stats.maxMs), Format.ms(stats.p50Ms), Format.ms(stats.p90Ms),
                    Format.ms(stats.p95Ms), Format.ms(stats.p99Ms), Format.rate(stats.rps),
                ]
                if open { row.append(Format.integer(phase.dropped)) }
                row.append(
                    stats.statusCodes.isEmpty ? "—" : stats.statusCodes.map { "\($0.label): \(Format.integer($0.count))" }.joined(separator: "<br>"))
                return row
            })
        out += "\n"
        for warning in result.collapseWarnings { out += "> ⚠️ \(Markdown.escape(warning.prefix(1).uppercased() + warning.dropFirst())).\n\n" }
        return out
    }

    private func load(_ result: LoadResult) -> String {
        var out = loadParameters(result).joined(separator: " · ")
        let overall = result.overall
        out += " — **\(Format.integer(overall.count)) requests** in \(Format.duration(result.elapsedSeconds)) · \(Format.rate(overall.rps))"
        out += " · \(Format.percent(overall.errorRate)) errors"
        if result.dropped > 0 { out += " · \(Format.integer(result.dropped)) dropped (not sent on time)" }
        if result.abandoned > 0 { out += " · \(Format.integer(result.abandoned)) abandoned (in flight when graceful_stop ran out)" }
        out += " · received \(Format.bytes(Double(overall.bytesReceived)))\n\n"

        var rows = result.requests.map { statsRow(Markdown.code($0.name), $0.stats, total: $0.stats.count) }
        if result.requests.count != 1 { rows.append(statsRow("**All requests**", overall, total: overall.count)) }
        out += Markdown.table(
            ["Request", "Requests", "Errors", "Error rate", "Min", "Avg", "Max", "p50", "p95", "p99", "Throughput", "Status codes"],
            align: [.left, .right, .right, .right, .right, .right, .right, .right, .right, .right, .right, .left], rows)
        out += "\n"
        out += phaseTable(result)
        let errorClasses = overall.errors.filter { $0.count > 0 }
        if !errorClasses.isEmpty {
            out +=
                "Failures by class: "
                + errorClasses.map { "\(Markdown.escape(Label.errorClass($0.label))) \(Format.integer($0.count))" }.joined(separator: " · ") + "\n\n"
        }
        if !result.thresholds.isEmpty {
            out += "**Thresholds**\n\n"
            out += Markdown.table(
                ["Scope", "Threshold", "Measured", "Result"], align: [.left, .left, .right, .left],
                result.thresholds.map { threshold in
                    [
                        Markdown.code(threshold.scope), Markdown.code(threshold.expression),
                        threshold.measured.map { Format.metric(threshold.metric, $0) } ?? "—", threshold.ok ? "✅ passed" : "❌ missed",
                    ]
                })
            out += "\n"
        }
        return out
    }

    /// Users, ramp-up, rate, duration: how the load was shaped.
    private func loadParameters(_ result: LoadResult) -> [String] {
        var parts: [String] = []
        if result.model == .open {
            if let rate = result.rate { parts.append("\(Format.number(rate)) requests/s (open model)") }
        } else {
            if let users = result.users { parts.append("\(users) user\(users == 1 ? "" : "s")") }
            if let ramp = result.rampUpSeconds { parts.append("ramp-up \(Format.duration(ramp))") }
        }
        if let stages = Format.stages(result) { parts.append(stages) }
        if let shard = Format.shard(result) { parts.append(shard) }
        if let duration = result.durationSeconds { parts.append("\(Format.duration(duration)) planned") }
        if let iterations = result.iterations { parts.append("\(iterations) iterations") }
        if let think = result.thinkTimeSeconds, think > 0 { parts.append("think time \(Format.duration(think))") }
        if result.model != .open { parts.append("closed model") }
        return parts
    }

    private func statsRow(_ name: String, _ stats: LoadStats, total: Int) -> [String] {
        [
            name, Format.integer(stats.count), Format.integer(stats.failed), Format.percent(stats.errorRate), Format.ms(stats.minMs),
            Format.ms(stats.avgMs),
            Format.ms(stats.maxMs), Format.ms(stats.p50Ms), Format.ms(stats.p95Ms), Format.ms(stats.p99Ms), Format.rate(stats.rps),
            stats.statusCodes.isEmpty
                ? "—"
                : stats.statusCodes.map {
                    "\($0.label): \(Format.integer($0.count)) (\(Format.percent(total > 0 ? Double($0.count) / Double(total) : 0)))"
                }
                .joined(separator: "<br>"),
        ]
    }

    // MARK: Pieces

    private func outcomeCell(_ journal: Journal) -> String { "\(Label.symbol(journal)) \(Label.outcome(journal))" }

    private func probesCell(_ probes: [String]) -> String { probes.isEmpty ? "none" : probes.map(Markdown.code).joined(separator: ", ") }

    private func runCell(_ experiment: ExperimentView) -> String {
        (experiment.start.map(Format.dateTime) ?? Markdown.escape(experiment.journal.start.text)) + " · "
            + Markdown.code(String(experiment.journal.runID.prefix(8)))
    }

    private func footer(_ report: ReportView) -> String {
        var versions: [String] = []
        for experiment in report.experiments where !versions.contains(experiment.journal.faultlineVersion) {
            versions.append(experiment.journal.faultlineVersion)
        }
        let count = report.experiments.count
        return "---\n\n<sub>Faultline \(versions.joined(separator: ", ")) · \(count) journal\(count == 1 ? "" : "s")</sub>\n"
    }
}
