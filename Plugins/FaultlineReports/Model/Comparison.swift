import FaultlineKit

/// A baseline run set against a later one: experiments paired by title, load runs paired by
/// phase and name, and the metrics teams put in the before/after table.
struct Comparison {
    let title: String
    let pairs: [Pair]

    /// One experiment in both runs (or only in one of them).
    struct Pair {
        let title: String
        let baseline: ExperimentView?
        let after: ExperimentView?
        let loads: [LoadPair]

        /// Two different experiments set side by side (two APIs under the same fault, say) rather
        /// than one experiment before and after a change: the reports then name both.
        var comparesTwoExperiments: Bool {
            guard let baseline, let after else { return false }
            return baseline.journal.title != after.journal.title
        }
    }

    /// One load probe in both runs.
    struct LoadPair {
        /// The probe's name.
        let name: String
        let phase: String
        let baseline: ExperimentView.LoadRun?
        let after: ExperimentView.LoadRun?
        let metrics: [Metric]
        /// Per named request present on either side, in the baseline's order.
        let requests: [RequestPair]
        /// Per phase (before, each fault, between, after) present on either side, in the baseline's order.
        let phases: [RequestPair]
    }

    struct RequestPair {
        let name: String
        let baseline: LoadStats?
        let after: LoadStats?
    }

    /// One row of the table.
    struct Metric {
        let name: String
        let kind: Kind
        let better: Better
        let before: Double?
        let after: Double?

        enum Kind { case count, rate, milliseconds, perSecond }
        /// Which way is an improvement.
        enum Better { case lower, higher, neither }

        /// How the value moved and whether that is good.
        var verdict: Verdict {
            guard let before, let after else { return .unknown }
            if before == after { return .same }
            switch better {
            case .neither: return .changed
            case .lower: return after < before ? .better : .worse
            case .higher: return after > before ? .better : .worse
            }
        }

        func format(_ value: Double?) -> String {
            guard let value else { return "—" }
            switch kind {
            case .count: return Format.integer(Int(value.rounded()))
            case .rate: return Format.percent(value)
            case .milliseconds: return Format.ms(value)
            case .perSecond: return Format.rate(value)
            }
        }

        /// `▼ −12.30 pp (−99.2%)`, `▲ +7.9/s (+8.8%)`, `no change`, `—`.
        var change: String {
            guard let before, let after else { return "—" }
            let difference = after - before
            if difference == 0 { return "no change" }
            let arrow = difference < 0 ? "▼" : "▲"
            let sign = difference < 0 ? "−" : "+"
            let magnitude = abs(difference)
            let absolute: String
            switch kind {
            case .count: absolute = Format.integer(Int(magnitude.rounded()))
            case .rate: absolute = String(format: "%.2f pp", magnitude * 100)
            case .milliseconds: absolute = Format.ms(magnitude)
            case .perSecond: absolute = Format.rate(magnitude)
            }
            let relative = before != 0 ? " (\(sign)\(String(format: "%.1f", abs(difference / before) * 100))%)" : ""
            return "\(arrow) \(sign)\(absolute)\(relative)"
        }
    }

    enum Verdict: String {
        case better, worse, same, changed, unknown

        /// Words for the table: `better`, `worse`, empty for the rest.
        var word: String {
            switch self {
            case .better: "better"
            case .worse: "worse"
            case .same, .changed, .unknown: ""
            }
        }
    }

    init(baseline: [Journal], after: [Journal], options: ReportOptions) {
        let before = baseline.enumerated().map { ExperimentView($0.element, number: $0.offset + 1) }
        let later = after.enumerated().map { ExperimentView($0.element, number: $0.offset + 1) }
        pairs = Self.pairExperiments(before, later)
        title =
            options.title
            ?? (pairs.count == 1
                ? "Before and after: "
                    + (pairs[0].comparesTwoExperiments
                        ? "\(pairs[0].baseline!.journal.title) vs. \(pairs[0].after!.journal.title)" : pairs[0].title)
                : "Before and after" + (options.suiteName.map { ": \($0)" } ?? ""))
    }

    /// The metrics of the table, from the issue teams file after a fix.
    static func metrics(_ before: LoadStats?, _ after: LoadStats?) -> [Metric] {
        func row(_ name: String, _ kind: Metric.Kind, _ better: Metric.Better, _ value: (LoadStats) -> Double) -> Metric {
            Metric(name: name, kind: kind, better: better, before: before.map(value), after: after.map(value))
        }
        return [
            row("Requests", .count, .neither) { Double($0.count) },
            row("Error rate", .rate, .lower) { $0.errorRate },
            row("Avg response time", .milliseconds, .lower) { $0.avgMs },
            row("p50", .milliseconds, .lower) { $0.p50Ms },
            row("p95", .milliseconds, .lower) { $0.p95Ms },
            row("p99", .milliseconds, .lower) { $0.p99Ms },
            row("Max", .milliseconds, .lower) { $0.maxMs },
            row("Throughput", .perSecond, .higher) { $0.rps },
            row("Connection errors", .count, .lower) { Double($0.connectionErrors) },
            row("5xx responses", .count, .lower) { Double($0.serverErrors) },
        ]
    }

    /// One sentence with the moves that matter most: error rate, p95, throughput.
    static func headline(_ pair: LoadPair) -> String? {
        let wanted = ["Error rate", "p95", "Throughput"]
        let parts = pair.metrics.filter { wanted.contains($0.name) }.compactMap { metric -> String? in
            guard let before = metric.before, let after = metric.after else { return nil }
            let verb =
                before == after
                ? "stayed at \(metric.format(after))" : "\(after < before ? "fell" : "rose") from \(metric.format(before)) to \(metric.format(after))"
            return "\(metric.name == "p95" ? "p95" : metric.name.lowercased()) \(verb)"
        }
        guard !parts.isEmpty else { return nil }
        let sentence = parts.joined(separator: "; ")
        return sentence.prefix(1).uppercased() + sentence.dropFirst() + "."
    }

    private static func pairExperiments(_ baseline: [ExperimentView], _ after: [ExperimentView]) -> [Pair] {
        var matched: [(ExperimentView?, ExperimentView?)] = []
        if baseline.count == 1 && after.count == 1 {
            matched = [(baseline[0], after[0])]
        } else {
            var unused = after
            for experiment in baseline {
                if let index = unused.firstIndex(where: { $0.journal.title == experiment.journal.title }) {
                    matched.append((experiment, unused.remove(at: index)))
                } else {
                    matched.append((experiment, nil))
                }
            }
            matched += unused.map { (nil, $0) }
        }
        return matched.map { before, later in
            Pair(title: (later ?? before)!.journal.title, baseline: before, after: later, loads: pairLoads(before?.loads ?? [], later?.loads ?? []))
        }
    }

    private static func pairLoads(_ baseline: [ExperimentView.LoadRun], _ after: [ExperimentView.LoadRun]) -> [LoadPair] {
        func keyed(_ runs: [ExperimentView.LoadRun]) -> [(String, ExperimentView.LoadRun)] {
            var seen: [String: Int] = [:]
            return runs.map { run in
                let base = run.phase + "\u{1}" + run.record.name
                let occurrence = seen[base, default: 0]
                seen[base] = occurrence + 1
                return ("\(base)\u{1}\(occurrence)", run)
            }
        }
        let before = keyed(baseline)
        let later = keyed(after)
        var keys = before.map(\.0)
        for (key, _) in later where !keys.contains(key) { keys.append(key) }
        return keys.map { key in
            let b = before.first { $0.0 == key }?.1
            let a = later.first { $0.0 == key }?.1
            let run = (b ?? a)!
            var names = b?.result.requests.map(\.name) ?? []
            for name in a?.result.requests.map(\.name) ?? [] where !names.contains(name) { names.append(name) }
            let requests = names.map { name in
                RequestPair(
                    name: name, baseline: b?.result.requests.first { $0.name == name }?.stats,
                    after: a?.result.requests.first { $0.name == name }?.stats)
            }
            var phaseNames = b?.result.phases.map(\.name) ?? []
            for name in a?.result.phases.map(\.name) ?? [] where !phaseNames.contains(name) { phaseNames.append(name) }
            let phases = phaseNames.map { name in
                RequestPair(
                    name: name, baseline: b?.result.phases.first { $0.name == name }?.stats, after: a?.result.phases.first { $0.name == name }?.stats)
            }
            return LoadPair(
                name: run.record.name, phase: run.phase, baseline: b, after: a,
                metrics: metrics(b?.result.overall, a?.result.overall), requests: requests, phases: phases)
        }
    }
}
