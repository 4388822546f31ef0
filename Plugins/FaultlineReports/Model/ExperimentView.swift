import FaultlineKit
import Foundation

/// What every format shows about one experiment, derived once from its journal.
struct ExperimentView {
    let journal: Journal
    /// 1-based position in the report.
    let number: Int
    /// A stable fragment identifier for links inside a report.
    let anchor: String
    let start: Date?
    let end: Date?
    /// Seconds from start to end.
    let duration: Double
    let checks: [Check]
    /// The method's activities in the order they started.
    let method: [RunRecord]
    /// The rollbacks in the order they started.
    let rollbacks: [RunRecord]
    let loads: [LoadRun]
    let failures: [Failure]
    let faults: [Fault]
    /// Probes that missed their tolerance (or could not run) after or during the method, in order.
    let deviatedProbes: [String]

    /// One check of the steady-state hypothesis.
    struct Check {
        /// `before`, `during #2`, `after`.
        let label: String
        let record: HypothesisRecord
    }

    /// A load probe's output with where it ran.
    struct LoadRun {
        let record: RunRecord
        /// `method`, `hypothesis before`, ...
        let phase: String
        let result: LoadResult
        /// A stable fragment identifier.
        let anchor: String
    }

    /// Why something did not go as written.
    struct Failure {
        let phase: String
        let name: String
        /// `probe`, `action`, `cleanup`, `rollbacks`.
        let kind: String
        let message: String
        let details: [String]
        /// `bad`, or `warn` for an activity an interrupt cut short.
        let tone: Label.Tone
    }

    /// A fault window with its times resolved; an open window ends when the experiment ended.
    struct Fault {
        let window: FaultWindow
        let start: Date
        let end: Date
        let isOpen: Bool
    }

    init(_ journal: Journal, number: Int) {
        self.journal = journal
        self.number = number
        anchor = "exp-\(number)-\(slug(journal.title))"
        let start = journal.start.date
        self.start = start
        let allRecords = Self.allRecords(journal)
        let lastEnd = allRecords.compactMap(\.end.date).max()
        // A journal left by a crash has no end: the last activity's end is the best guess.
        let end = journal.end?.date ?? lastEnd.map { max($0, start ?? $0) } ?? start.map { $0.addingTimeInterval(journal.duration ?? 0) }
        self.end = end
        if let duration = journal.duration {
            self.duration = duration
        } else if let start, let end {
            self.duration = max(0, end.timeIntervalSince(start))
        } else {
            self.duration = 0
        }

        var checks: [Check] = []
        if let before = journal.steadyStates.before { checks.append(Check(label: "before", record: before)) }
        for (index, during) in journal.steadyStates.during.enumerated() { checks.append(Check(label: "during #\(index + 1)", record: during)) }
        if let after = journal.steadyStates.after { checks.append(Check(label: "after", record: after)) }
        self.checks = checks
        method = Self.chronological(journal.run)
        rollbacks = Self.chronological(journal.rollbacks)

        var loads: [LoadRun] = []
        for (phase, record) in Self.phasedRecords(journal, checks: checks) {
            if let result = LoadResult(record.output, providerType: record.providerType) {
                loads.append(LoadRun(record: record, phase: phase, result: result, anchor: "\(anchor)-load-\(loads.count + 1)"))
            }
        }
        self.loads = loads

        var failures: [Failure] = []
        // A probe that misses in many checks during the method is one failure, with the count.
        var duringMisses: [String: (index: Int, count: Int)] = [:]
        let duringCount = checks.filter { $0.label.hasPrefix("during") }.count
        for (phase, record) in Self.phasedRecords(journal, checks: checks) {
            let missed = record.status == .failed || record.toleranceMet == false
            if phase.hasPrefix("hypothesis during"), missed {
                if let seen = duringMisses[record.name] {
                    duringMisses[record.name] = (seen.index, seen.count + 1)
                    let first = failures[seen.index]
                    let note = "missed in \(seen.count + 1) of \(duringCount) checks during the method"
                    failures[seen.index] = Failure(
                        phase: "hypothesis during", name: first.name, kind: first.kind, message: first.message,
                        details: [note] + first.details.filter { !$0.hasPrefix("missed in ") }, tone: first.tone)
                    continue
                }
                duringMisses[record.name] = (failures.count, 1)
            }
            if record.status == .failed || record.status == .interrupted {
                let exception = record.exception ?? []
                let message = exception.first ?? (record.status == .interrupted ? "interrupted" : "failed")
                failures.append(
                    Failure(
                        phase: phase, name: record.name, kind: record.kind, message: message,
                        details: Array(exception.dropFirst()) + Self.evidence(record.output),
                        tone: Label.tone(record)))
            } else if record.toleranceMet == false {
                var details: [String] = []
                if let tolerance = ToleranceText.of(record) { details.append("tolerance: \(tolerance)") }
                if let value = ToleranceText.judgedValue(record) { details.append("value: \(value)") }
                failures.append(
                    Failure(
                        phase: phase, name: record.name, kind: record.kind, message: record.toleranceMessage ?? "tolerance not met",
                        details: details + Self.evidence(record.output), tone: .bad))
            }
        }
        for cleanup in journal.cleanup where cleanup.status != .succeeded {
            failures.append(
                Failure(
                    phase: "cleanup", name: cleanup.description, kind: "cleanup", message: cleanup.error ?? cleanup.status.rawValue, details: [],
                    tone: .bad))
        }
        self.failures = failures

        let experimentEnd = end ?? start ?? Date(timeIntervalSince1970: 0)
        faults = journal.faults.compactMap { window in
            guard let faultStart = window.start.date else { return nil }
            let faultEnd = window.end?.date
            return Fault(window: window, start: faultStart, end: max(faultStart, faultEnd ?? experimentEnd), isOpen: faultEnd == nil)
        }

        var deviated: [String] = []
        for check in checks where check.label != "before" {
            for record in check.record.probes where record.toleranceMet == false || record.status == .failed {
                if !deviated.contains(record.name) { deviated.append(record.name) }
            }
        }
        // A method probe whose tolerance missed deviates the experiment too (a load's thresholds).
        for record in journal.run where record.kind == "probe" && record.toleranceMet == false {
            if !deviated.contains(record.name) { deviated.append(record.name) }
        }
        deviatedProbes = deviated
    }

    /// Every activity record with the phase it ran in, in the order the run went:
    /// hypothesis before, method (with checks during it), hypothesis after, rollbacks.
    static func phasedRecords(_ journal: Journal, checks: [Check]) -> [(String, RunRecord)] {
        var result: [(String, RunRecord)] = []
        for check in checks where check.label == "before" { result += check.record.probes.map { ("hypothesis before", $0) } }
        result += chronological(journal.run).map { ("method", $0) }
        for check in checks where check.label.hasPrefix("during") { result += check.record.probes.map { ("hypothesis \(check.label)", $0) } }
        for check in checks where check.label == "after" { result += check.record.probes.map { ("hypothesis after", $0) } }
        result += chronological(journal.rollbacks).map { ("rollbacks", $0) }
        return result
    }

    /// Records by start time; the journal lists them as they finished (background activities last).
    static func chronological(_ records: [RunRecord]) -> [RunRecord] {
        records.enumerated().sorted { a, b in
            let x = a.element.start.date ?? .distantPast
            let y = b.element.start.date ?? .distantPast
            return x != y ? x < y : a.offset < b.offset
        }.map(\.element)
    }

    /// What the output says about a failure: a process's stderr, an HTTP body, shortened.
    static func evidence(_ output: Value?) -> [String] {
        var lines: [String] = []
        for key in ["stderr", "body"] {
            if let text = output?[key]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty {
                lines.append("\(key): \(Format.truncate(text, 400))")
            }
        }
        return lines
    }

    private static func allRecords(_ journal: Journal) -> [RunRecord] {
        let states = journal.steadyStates
        return (states.before?.probes ?? []) + journal.run + states.during.flatMap(\.probes) + (states.after?.probes ?? []) + journal.rollbacks
    }

    /// The checks made while the method ran (`continuously`, `during-method-only`).
    var duringChecks: [Check] { checks.filter { $0.label.hasPrefix("during") } }

    /// The probes of a check that missed their tolerance or could not run, with why.
    static func misses(_ record: HypothesisRecord) -> [(name: String, why: String)] {
        record.probes.filter { $0.toleranceMet == false || $0.status == .failed }.map { probe in
            (probe.name, probe.toleranceMessage ?? probe.exception?.first ?? Label.result(probe))
        }
    }

    /// Seconds from the experiment's start to `timestamp`.
    func offset(_ timestamp: Timestamp) -> Double? {
        guard let start, let date = timestamp.date else { return nil }
        return date.timeIntervalSince(start)
    }

    /// The experiment's description, if written.
    var description: String? {
        journal.experiment["description"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The hypothesis's title, if written.
    var hypothesisTitle: String? { journal.experiment["steady-state-hypothesis"]?["title"]?.stringValue }

    /// Load numbers for a summary line: the first load run in the method, else the last one (the
    /// hypothesis after the method, where a deviation shows).
    var headlineLoad: LoadRun? { loads.first { $0.phase == "method" } ?? loads.last }
}

/// The whole report: the experiments, and what a suite summary shows.
struct ReportView {
    let title: String
    let experiments: [ExperimentView]
    let options: ReportOptions

    init(_ journals: [Journal], options: ReportOptions) {
        experiments = journals.enumerated().map { ExperimentView($0.element, number: $0.offset + 1) }
        self.options = options
        if let title = options.title {
            self.title = title
        } else if journals.count == 1 {
            self.title = journals[0].title
        } else {
            self.title = options.suiteName ?? "Chaos experiments"
        }
    }

    /// A suite report (several journals) starts with a summary table.
    var isSuite: Bool { experiments.count > 1 }

    /// The worst verdict (an experiment that ends as its suite documents counts as completed).
    var outcome: Outcome { experiments.map(\.journal.verdict).max() ?? .completed }

    var start: Date? { experiments.compactMap(\.start).min() }
    var end: Date? { experiments.compactMap(\.end).max() }

    /// Profiles the experiments ran on, in order of first appearance.
    var profiles: [String] {
        var seen: [String] = []
        for experiment in experiments {
            if let profile = experiment.journal.profile, !seen.contains(profile) { seen.append(profile) }
        }
        return seen
    }

    /// How many experiments ended each way (`deviated (as expected)` apart from `deviated`), in
    /// severity order, with the tone of each; zero counts left out.
    var outcomeCounts: [(label: String, tone: Label.Tone, symbol: String, count: Int)] {
        var counts: [(label: String, tone: Label.Tone, symbol: String, count: Int, rank: (Outcome, Outcome))] = []
        for experiment in experiments {
            let journal = experiment.journal
            let label = Label.outcome(journal)
            if let index = counts.firstIndex(where: { $0.label == label }) {
                counts[index].count += 1
            } else {
                counts.append((label, Label.tone(journal), Label.symbol(journal), 1, (journal.verdict, journal.outcome)))
            }
        }
        return counts.sorted { $0.rank.0 != $1.rank.0 ? $0.rank.0 < $1.rank.0 : $0.rank.1 < $1.rank.1 }.map {
            ($0.label, $0.tone, $0.symbol, $0.count)
        }
    }
}
