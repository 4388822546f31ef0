import FaultlineKit

/// A load's end-of-test summary for the terminal, as k6 prints one: requests, rate, error rate,
/// p50/p95/p99 overall and per phase, each threshold with its measured value and ✓/✗, and the
/// warning when a closed model's throughput collapsed under a fault.
enum LoadSummary {
    /// The load output of an activity, or nil when it is not an `http.load` output.
    static func result(providerType: String?, output: Value?) -> LoadResult? {
        guard providerType == "http.load", let output, output["overall"] != nil else { return nil }
        return try? LoadResult(decoding: output)
    }

    /// The summary's lines, indented by `indent`.
    /// - Parameters:
    ///   - onlyFailures: `--quiet`: only the missed thresholds and the collapse warnings.
    static func lines(_ result: LoadResult, name: String, indent: String, onlyFailures: Bool, terminal t: Terminal) -> [String] {
        let missed = result.thresholds.filter { !$0.ok }
        if onlyFailures {
            guard !missed.isEmpty || !result.collapseWarnings.isEmpty else { return [] }
            return [indent + t.paint(name, .bold)] + missed.map { indent + "  " + threshold($0, t) }
                + result.collapseWarnings.map { indent + "  " + t.paint("⚠ " + $0, .yellow) }
        }
        let overall = result.overall
        var head = "\(name): \(overall.count) requests in \(DurationFormat.seconds(result.elapsedSeconds)), \(rate(overall.rps))/s, "
        head += "\(percent(overall.errorRate)) errors"
        if result.dropped > 0 { head += ", \(result.dropped) dropped" }
        if result.abandoned > 0 { head += ", \(result.abandoned) abandoned in flight at the end" }
        if let shard = result.shard { head += " (shard \(shard.index)/\(shard.count): its thresholds are judged by faultline report --merge)" }
        if let merged = result.mergedShards { head += " (\(merged) shards merged)" }
        var out = [indent + t.paint(head, .bold)]
        var rows = [["", "requests", "rate/s", "errors", "p50", "p95", "p99"] + (result.model == .open ? ["dropped"] : [])]
        func row(_ label: String, _ stats: LoadStats, dropped: Int) -> [String] {
            [label, String(stats.count), rate(stats.rps), percent(stats.errorRate), ms(stats.p50Ms), ms(stats.p95Ms), ms(stats.p99Ms)]
                + (result.model == .open ? [String(dropped)] : [])
        }
        rows.append(row("overall", overall, dropped: result.dropped))
        for phase in result.phases where !(result.phases.count == 1 && phase.kind == .before) {
            rows.append(row(phase.kind == .fault ? "fault " + phase.name : phase.name, phase.stats, dropped: phase.dropped))
        }
        var widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        widths[0] = min(widths[0], 40)
        for (number, cells) in rows.enumerated() {
            let text = cells.enumerated().map { column, cell in
                let clipped = cell.count > widths[column] ? String(cell.prefix(widths[column] - 1)) + "…" : cell
                let padding = String(repeating: " ", count: max(0, widths[column] - clipped.count))
                return column == 0 ? clipped + padding : padding + clipped
            }.joined(separator: "  ")
            out.append(indent + "  " + (number == 0 ? t.paint(text, .dim) : text))
        }
        for entry in result.thresholds { out.append(indent + "  " + threshold(entry, t)) }
        for warning in result.collapseWarnings { out.append(indent + "  " + t.paint("⚠ " + warning, .yellow)) }
        return out
    }

    /// `✓ p(95)<500 on during: 312.4 ms`.
    private static func threshold(_ entry: LoadThreshold, _ t: Terminal) -> String {
        let measured =
            entry.measured.map { value in
                switch entry.metric {
                case "error_rate": percent(value)
                case "count": String(Int(value))
                case "rps": rate(value) + "/s"
                default: ms(value)
                }
            } ?? "not measured"
        let mark = entry.ok ? t.paint("✓", .green) : t.paint("✗", .red)
        return "\(mark) \(entry.expression) on \(entry.scope): \(entry.ok ? measured : t.paint(measured, .red))"
    }

    private static func ms(_ value: Double) -> String {
        value >= 100 ? "\(Int(value.rounded())) ms" : String(format: "%.1f ms", value)
    }

    private static func rate(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(format: "%.1f", value)
    }

    private static func percent(_ value: Double) -> String { String(format: "%.2f%%", value * 100) }
}

extension LoadSummary {
    /// The summaries of every load in the run's journals, under the experiment's title.
    static func runLines(_ journals: [Journal], onlyFailures: Bool, terminal t: Terminal) -> [String] {
        var out: [String] = []
        for journal in journals {
            let records = (journal.steadyStates.before?.probes ?? []) + journal.run + (journal.steadyStates.after?.probes ?? [])
            var block: [String] = []
            for record in records {
                guard let load = result(providerType: record.providerType, output: record.output) else { continue }
                block += lines(load, name: record.name, indent: "  ", onlyFailures: onlyFailures, terminal: t)
            }
            if !block.isEmpty { out += [t.paint("load · \(journal.title)", .bold)] + block }
        }
        return out
    }
}
