import FaultlineKit
import Foundation

/// `faultline run --summary-json FILE`: the whole run as one JSON document for machines — its
/// outcome, each experiment with its faults and its load results (phases and thresholds
/// included) — versioned by `summary_version` and described by `docs/summary.schema.json`.
///
/// Evolving it: keys are only added (readers ignore keys they do not know); a key whose meaning
/// changes is a new `summary_version`.
enum RunSummary {
    /// The version this Faultline writes.
    static let version = 1

    /// The document for a finished run.
    static func document(_ result: SuiteRunner.Result) -> Value {
        let experiments = result.journals.enumerated().map { index, journal in
            experiment(journal, path: index < result.journalPaths.count ? result.journalPaths[index] : nil)
        }
        let starts = result.journals.map(\.start).sorted()
        let ends = result.journals.compactMap(\.end).sorted()
        var document: ValueObject = [:]
        document["summary_version"] = .int(version)
        document["faultline_version"] = .string(Engine.version)
        document["outcome"] = .string(result.outcome.rawValue)
        document["exit_code"] = .int(Int(result.exitCode))
        document["started"] = starts.first.map { .string($0.text) } ?? .null
        document["ended"] = ends.last.map { .string($0.text) } ?? .null
        document["setup_error"] = result.setupError.map(Value.string) ?? .null
        document["experiments"] = .array(experiments)
        return .object(document)
    }

    private static func experiment(_ journal: Journal, path: String?) -> Value {
        var out: ValueObject = [:]
        out["title"] = .string(journal.title)
        out["origin"] = .string(journal.origin)
        out["journal"] = path.map(Value.string) ?? .null
        out["run_id"] = .string(journal.runID)
        out["outcome"] = .string(journal.outcome.rawValue)
        out["expected"] = journal.expected.map { .string($0.rawValue) } ?? .null
        out["as_expected"] = .bool(journal.verdict == .completed)
        out["deviated"] = .bool(journal.deviated)
        out["reason"] = journal.reason.map(Value.string) ?? .null
        out["start"] = .string(journal.start.text)
        out["end"] = journal.end.map { .string($0.text) } ?? .null
        out["duration_s"] = journal.duration.map(Value.double) ?? .null
        out["faults"] = .array(
            journal.faults.map { fault in
                .object(["label": .string(fault.label), "start": .string(fault.start.text), "end": fault.end.map { .string($0.text) } ?? .null])
            })
        var loads: [Value] = []
        let phased: [(String, [RunRecord])] = [
            ("hypothesis before", journal.steadyStates.before?.probes ?? []), ("method", journal.run),
            ("hypothesis after", journal.steadyStates.after?.probes ?? []), ("rollbacks", journal.rollbacks),
        ]
        for (phase, records) in phased {
            for record in records {
                guard let load = LoadSummary.result(providerType: record.providerType, output: record.output) else { continue }
                loads.append(
                    .object([
                        "activity": .string(record.name), "phase": .string(phase), "status": .string(record.status.rawValue),
                        "tolerance_met": record.toleranceMet.map(Value.bool) ?? .null, "result": load.value,
                    ]))
            }
        }
        out["loads"] = .array(loads)
        return .object(out)
    }
}
