import FaultlineHTTP
import FaultlineKit
import Foundation

/// `faultline report --merge`: the journals of one suite run as shards on several runners
/// (`faultline run --shard I/N`) become, per experiment, one merged journal whose loads are the
/// exact merge of the shards' (``LoadMerge``) and whose load thresholds are judged on that merge.
///
/// The merged journal is the lowest shard's, with each `http.load` output replaced by the merge
/// and its tolerance judged again; its outcome is the worst of the shards' outcomes and of what
/// the merged thresholds say (a missed threshold in the steady-state hypothesis before the method
/// fails it, after or during the method, or in a method probe, deviates it).
struct ShardMerge {
    /// One experiment's merge: the merged journal and its shards' journals, in shard order.
    struct Group {
        var merged: Journal
        var shards: [Journal]
        /// The merged load outputs with their activity names, for the terminal.
        var loads: [(name: String, result: LoadResult)]
    }

    typealias Failure = ReportRequest.Failure

    /// Merges journals (with the paths they were read from, for messages), grouped by experiment.
    /// A journal with no sharded load (a suite's experiment without `http.load`) has nothing to
    /// merge: it is left out and named in `skipped`.
    /// - Throws: ``ReportRequest/Failure`` when no journal is a shard's, or the shards of an
    ///   experiment do not make one run (a different experiment, N, or loads; a shard twice or missing).
    static func merge(_ journals: [(path: String, journal: Journal)]) throws(Failure) -> (groups: [Group], skipped: [String]) {
        guard !journals.isEmpty else { throw Failure(message: "--merge needs the shards' journals (files or directories)") }
        var order: [String] = []
        var byTitle: [String: [(path: String, journal: Journal, shard: LoadShardInfo)]] = [:]
        var skipped: [String] = []
        for (path, journal) in journals {
            guard let shard = loads(of: journal).lazy.compactMap({ $0.result.shard }).first else {
                skipped.append(path)
                continue
            }
            if byTitle[journal.title] == nil { order.append(journal.title) }
            byTitle[journal.title, default: []].append((path, journal, shard))
        }
        guard !order.isEmpty else {
            throw Failure(
                message: "no load shard's journal in \(journals.count == 1 ? journals[0].path : "\(journals.count) journals") "
                    + "(no http.load in them ran with faultline run --shard I/N); --merge takes the journals of every shard of a run")
        }
        return (try order.map { title throws(Failure) in try mergeGroup(byTitle[title]!) }, skipped)
    }

    /// The load outputs of a journal with where they are: (section, position in it).
    private static func loads(of journal: Journal) -> [(key: String, name: String, result: LoadResult)] {
        var sections: [(String, [RunRecord])] = [("before", journal.steadyStates.before?.probes ?? []), ("method", journal.run)]
        for (number, check) in journal.steadyStates.during.enumerated() { sections.append(("during #\(number + 1)", check.probes)) }
        sections += [("after", journal.steadyStates.after?.probes ?? []), ("rollbacks", journal.rollbacks)]
        var out: [(key: String, name: String, result: LoadResult)] = []
        for (section, records) in sections {
            for (position, record) in records.enumerated() {
                if let result = LoadSummary.result(providerType: record.providerType, output: record.output) {
                    out.append(("\(section) \(position + 1)", record.name, result))
                }
            }
        }
        return out
    }

    private static func mergeGroup(_ shards: [(path: String, journal: Journal, shard: LoadShardInfo)]) throws(Failure) -> Group {
        let sorted = shards.sorted { $0.shard.index < $1.shard.index }
        let first = sorted[0]
        for other in sorted.dropFirst() where other.journal.experimentHash != first.journal.experimentHash {
            throw Failure(
                message: "\(other.path) and \(first.path) ran different versions of \"\(first.journal.title)\" (their experiment_hash differs): "
                    + "run every shard from the same experiment files")
        }
        let layouts = sorted.map { loads(of: $0.journal) }
        for (number, layout) in layouts.enumerated() where layout.map({ [$0.key, $0.name] }) != layouts[0].map({ [$0.key, $0.name] }) {
            let mine = layout.map { "\($0.name) (\($0.key))" }.joined(separator: ", ")
            let theirs = layouts[0].map { "\($0.name) (\($0.key))" }.joined(separator: ", ")
            throw Failure(
                message: "\(sorted[number].path) ran other loads than \(first.path) (\(mine.isEmpty ? "none" : mine) against \(theirs)): "
                    + "a shard stopped early or ran another experiment")
        }

        var merged = first.journal
        var mergedLoads: [(String, LoadResult)] = []
        var gateMissed: [String] = []
        var deviations: [String] = []
        for (position, slot) in layouts[0].enumerated() {
            let outputs = layouts.map { $0[position].result }
            let names = sorted.map { "\($0.path) (\(slot.name))" }
            let result: LoadMerge.Merged
            do {
                result = try LoadMerge.merge(outputs, names: names)
            } catch {
                throw Failure(message: error.description)
            }
            mergedLoads.append((slot.name, result.result))
            let missed = result.tolerance.flatMap { $0.met ? nil : "\(slot.name): \($0.message ?? "thresholds missed")" }
            replace(in: &merged, key: slot.key, output: result.result.value, tolerance: result.tolerance)
            if let missed {
                if slot.key.hasPrefix("before") { gateMissed.append(missed) } else if !slot.key.hasPrefix("rollbacks") { deviations.append(missed) }
            }
        }
        for index in merged.steadyStates.during.indices { recheck(&merged.steadyStates.during[index]) }
        if merged.steadyStates.before != nil { recheck(&merged.steadyStates.before!) }
        if merged.steadyStates.after != nil { recheck(&merged.steadyStates.after!) }

        // The worst of what the shards' runs came to and of what the merged thresholds say.
        let worstShard = sorted.max { $0.journal.outcome < $1.journal.outcome }!
        merged.outcome = worstShard.journal.outcome
        merged.status = worstShard.journal.status
        merged.deviated = sorted.contains { $0.journal.deviated }
        merged.reason = worstShard.journal.outcome == .completed ? nil : worstShard.journal.reason.map { "shard \(worstShard.shard.index): \($0)" }
        if !gateMissed.isEmpty, merged.outcome < .failed {
            merged.outcome = .failed
            merged.status = .failed
            merged.reason = "the merged load missed its thresholds before the method: " + gateMissed.joined(separator: "; ")
        } else if !deviations.isEmpty, merged.outcome < .deviated {
            merged.outcome = .deviated
            merged.deviated = true
            merged.reason = "the merged load missed its thresholds: " + deviations.joined(separator: "; ")
        }
        merged.start = sorted.map(\.journal.start).min()!
        merged.end = sorted.compactMap(\.journal.end).max()
        if let start = merged.start.date, let end = merged.end?.date { merged.duration = end.timeIntervalSince(start) }
        let count = first.shard.count
        merged.experiment["title"] = .string("\(first.journal.title) — \(count) shard\(count == 1 ? "" : "s") merged")
        let shardJournals = sorted.map { shard in
            var journal = shard.journal
            journal.experiment["title"] = .string("\(shard.journal.title) — shard \(shard.shard.index)/\(count)")
            return journal
        }
        return Group(merged: merged, shards: shardJournals, loads: mergedLoads)
    }

    /// Puts a merged output (and its verdict) in the record at `key`.
    private static func replace(in journal: inout Journal, key: String, output: Value, tolerance: ToleranceOutcome?) {
        func update(_ records: inout [RunRecord], _ position: Int) {
            records[position].output = output
            if let tolerance {
                records[position].toleranceMet = tolerance.met
                records[position].toleranceMessage = tolerance.message
            }
        }
        let parts = key.split(separator: " ")
        guard let position = Int(parts.last ?? "").map({ $0 - 1 }) else { return }
        switch parts[0] {
        case "before": if journal.steadyStates.before != nil { update(&journal.steadyStates.before!.probes, position) }
        case "after": if journal.steadyStates.after != nil { update(&journal.steadyStates.after!.probes, position) }
        case "method": update(&journal.run, position)
        case "rollbacks": update(&journal.rollbacks, position)
        case "during":
            if let number = Int(parts[1].dropFirst()), journal.steadyStates.during.indices.contains(number - 1) {
                update(&journal.steadyStates.during[number - 1].probes, position)
            }
        default: break
        }
    }

    /// A hypothesis check holds when every probe ran and was within tolerance.
    private static func recheck(_ check: inout HypothesisRecord) {
        guard check.steadyStateMet != nil else { return }
        check.steadyStateMet = check.probes.allSatisfy { $0.status != .failed && $0.toleranceMet != false }
    }
}
