import FaultlineKit
import Foundation

/// Merges the outputs of one `http.load` run as shards on several runners (`--shard I/N`) into
/// the output one runner would have written for the whole load, and judges its thresholds there
/// (`faultline report --merge`).
///
/// Exact where it matters: every latency of every shard is in its output (``LatencyHistogram``),
/// so the merged percentiles, minimum, maximum and mean are computed by the same code, from the
/// same latencies, as an unsharded run's; counts, bytes, status codes, error classes, dropped
/// sends and abandoned requests are sums. The merged load lasted from the first shard's start to
/// the last one's end, which its rates are per. Phases merge by name; a merged phase lasted as long
/// as its longest shard's. The timeline adds the shards' seconds by wall clock; its per-second p50
/// and p99 are the highest of the shards' (a second's latencies are not kept).
public enum LoadMerge {
    /// Shards that do not make one load, in one line with the fix.
    public struct Mismatch: Error, Equatable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The merged output and, when the load had thresholds, their verdict on it.
    public struct Merged: Sendable {
        public var result: LoadResult
        /// Nil when the load had no thresholds (nothing to judge on the merged data).
        public var tolerance: ToleranceOutcome?
    }

    /// Merges one load's shard outputs (any order, each shard once).
    /// - Parameters:
    ///   - shards: the outputs, each with its ``LoadResult/shard`` and histograms.
    ///   - names: how to name each output in an error (its journal), in the same order.
    /// - Throws: ``Mismatch`` when an output is not a shard's, the shards split different loads
    ///   or a different number of ways, a shard is there twice, or one is missing.
    public static func merge(_ shards: [LoadResult], names: [String]) throws(Mismatch) -> Merged {
        guard let first = shards.first else { throw Mismatch("no shard outputs to merge") }
        let name = { (index: Int) in index < names.count ? names[index] : "output \(index + 1)" }
        var seen: [Int: Int] = [:]
        for (number, result) in shards.enumerated() {
            guard let shard = result.shard else {
                throw Mismatch("\(name(number)): this load did not run as a shard (run it with faultline run --shard I/N)")
            }
            let reference = first.shard!
            if shard.count != reference.count {
                throw Mismatch(
                    "\(name(number)) is shard \(shard.index)/\(shard.count) but \(name(0)) is \(reference.index)/\(reference.count): "
                        + "every shard of a load must be run with the same N")
            }
            if let other = seen[shard.index] {
                throw Mismatch("\(name(other)) and \(name(number)) are both shard \(shard.index)/\(shard.count); give each runner its own index")
            }
            seen[shard.index] = number
            if let difference = difference(first, result) {
                throw Mismatch("\(name(number)) and \(name(0)) ran different loads (\(difference)); merge shards of one load")
            }
            for stats in result.requests.map(\.stats) + result.phases.map(\.stats) where stats.histogram == nil {
                throw Mismatch("\(name(number)) has no latency histogram for every request and phase; it cannot be merged exactly")
            }
        }
        let count = first.shard!.count
        let missing = (0..<count).filter { seen[$0] == nil }
        if !missing.isEmpty {
            let list = missing.prefix(10).map(String.init).joined(separator: ", ") + (missing.count > 10 ? ", …" : "")
            throw Mismatch(
                "shard\(missing.count == 1 ? "" : "s") \(list) of \(count) missing: give every shard's journal "
                    + "(a missing shard's requests would be missing from the thresholds)")
        }
        let ordered = shards.sorted { $0.shard!.index < $1.shard!.index }
        var result = merged(ordered)
        let tolerance = judge(&result, thresholds: ordered.first { !$0.thresholds.isEmpty }?.thresholds ?? [])
        return Merged(result: result, tolerance: tolerance)
    }

    /// What differs between two shards' load definitions, or nil.
    private static func difference(_ a: LoadResult, _ b: LoadResult) -> String? {
        if a.model != b.model { return "model \(a.model.rawValue) and \(b.model.rawValue)" }
        if a.users != b.users { return "users \(a.users.map(String.init) ?? "-") and \(b.users.map(String.init) ?? "-")" }
        if a.rate != b.rate { return "rate \(a.rate.map { "\($0)" } ?? "-") and \(b.rate.map { "\($0)" } ?? "-")" }
        if a.durationSeconds != b.durationSeconds || a.iterations != b.iterations { return "duration or iterations" }
        if a.stages != b.stages { return "stages" }
        if a.requests.map(\.name) != b.requests.map(\.name) { return "requests" }
        if a.thresholds.map({ [$0.scope, $0.expression] }) != b.thresholds.map({ [$0.scope, $0.expression] }) { return "thresholds" }
        return nil
    }

    /// The merge of outputs already checked, in shard order.
    private static func merged(_ shards: [LoadResult]) -> LoadResult {
        let first = shards[0]
        let starts = shards.compactMap { $0.started?.microsecondsSinceEpoch }
        let ends = shards.compactMap { $0.ended?.microsecondsSinceEpoch }
        let origin = starts.min()
        // Seconds from the merged start to each shard's.
        let offsets = shards.map { shard -> Double in
            guard let origin, let start = shard.started?.microsecondsSinceEpoch else { return 0 }
            return Double(start - origin) / 1e6
        }
        var elapsed = shards.map(\.elapsedSeconds).max() ?? 0
        if let origin, let end = ends.max(), starts.count == shards.count, ends.count == shards.count {
            elapsed = Double(end - origin) / 1e6
        }

        var perRequest = Array(repeating: RequestStats(), count: first.requests.count)
        for shard in shards {
            for (index, request) in shard.requests.enumerated() { perRequest[index].add(RequestStats(request.stats)) }
        }
        var overall = RequestStats()
        for stats in perRequest { overall.add(stats) }

        // Phases by name, in the order they first appear.
        var phaseOrder: [String] = []
        var phases: [String: (template: LoadPhase, stats: RequestStats, from: Double, to: Double, seconds: Double, dropped: Int)] = [:]
        for (number, shard) in shards.enumerated() {
            for phase in shard.phases {
                let from = phase.fromSeconds + offsets[number]
                let to = phase.toSeconds + offsets[number]
                if var known = phases[phase.name] {
                    known.stats.add(RequestStats(phase.stats))
                    known.from = min(known.from, from)
                    known.to = max(known.to, to)
                    known.seconds = max(known.seconds, phase.seconds)
                    known.dropped += phase.dropped
                    phases[phase.name] = known
                } else {
                    phaseOrder.append(phase.name)
                    phases[phase.name] = (phase, RequestStats(phase.stats), from, to, phase.seconds, phase.dropped)
                }
            }
        }
        let mergedPhases = phaseOrder.map { name in
            let phase = phases[name]!
            return LoadPhase(
                name: name, kind: phase.template.kind, fault: phase.template.fault, fromSeconds: RequestStats.rounded(phase.from, places: 6),
                toSeconds: RequestStats.rounded(phase.to, places: 6), seconds: phase.seconds, stats: phase.stats.stats(elapsedSeconds: phase.seconds),
                dropped: phase.dropped)
        }

        // The timeline by wall-clock second.
        var seconds: [Int: LoadSecond] = [:]
        for (number, shard) in shards.enumerated() {
            for entry in shard.timeline {
                let second = max(0, Int((Double(entry.second) + offsets[number]).rounded(.down)))
                var merged = seconds[second] ?? LoadSecond(second: second, at: nil, count: 0, errors: 0, p50Ms: 0, p99Ms: 0)
                merged.count += entry.count
                merged.errors += entry.errors
                merged.p50Ms = max(merged.p50Ms, entry.p50Ms)
                merged.p99Ms = max(merged.p99Ms, entry.p99Ms)
                seconds[second] = merged
            }
        }
        let startDate = origin.map { Date(timeIntervalSince1970: Double($0) / 1e6) }
        let last = max(Int(elapsed.rounded(.up)) - 1, seconds.keys.max() ?? -1)
        let timeline: [LoadSecond] =
            last < 0
            ? []
            : (0...last).map { second -> LoadSecond in
                var entry = seconds[second] ?? LoadSecond(second: second, at: nil, count: 0, errors: 0, p50Ms: 0, p99Ms: 0)
                entry.at = startDate.map { Timestamp($0.addingTimeInterval(Double(second))) }
                return entry
            }

        return LoadResult(
            model: first.model, users: first.users, rampUpSeconds: first.rampUpSeconds, durationSeconds: first.durationSeconds,
            iterations: first.iterations, rate: first.rate, thinkTimeSeconds: first.thinkTimeSeconds,
            started: origin.map { _ in shards.compactMap(\.started).min()! }, ended: ends.isEmpty ? nil : shards.compactMap(\.ended).max(),
            elapsedSeconds: RequestStats.rounded(elapsed, places: 3), dropped: shards.reduce(0) { $0 + $1.dropped },
            overall: overall.stats(elapsedSeconds: elapsed),
            requests: first.requests.enumerated().map { index, request in
                LoadResult.NamedStats(name: request.name, stats: perRequest[index].stats(elapsedSeconds: elapsed))
            },
            timeline: timeline, phases: mergedPhases, stages: first.stages, mergedShards: shards.count,
            abandoned: shards.reduce(0) { $0 + $1.abandoned })
    }

    /// Judges the thresholds the shards carried on the merged output, with the probe's own
    /// tolerance, and writes the verdicts into it.
    private static func judge(_ result: inout LoadResult, thresholds: [LoadThreshold]) -> ToleranceOutcome? {
        guard !thresholds.isEmpty else { return nil }
        var scopes: [(scope: String, thresholds: [Threshold])] = []
        for entry in thresholds {
            guard let parsed = try? Threshold(parsing: entry.expression) else { continue }
            if scopes.last?.scope == entry.scope {
                scopes[scopes.count - 1].thresholds.append(parsed)
            } else {
                scopes.append((entry.scope, [parsed]))
            }
        }
        let written = Value.object(ValueObject(scopes.map { ($0.scope, Value.array($0.thresholds.map { .string($0.expression) })) }))
        let tolerance = ThresholdTolerance(scopes: scopes, written: written)
        let outcome = tolerance.check(result.value)
        result.thresholds = tolerance.evaluate(result)
        return outcome
    }
}

extension RequestStats {
    /// A shard's measurements of a request or phase, rebuilt from its output so that they merge
    /// as the probe merges its event loops' (the latencies from the histogram, exactly).
    init(_ stats: LoadStats) {
        self.init()
        if let histogram = stats.histogram {
            latencies = ExactLatencies(histogram)
            sumMicros = histogram.sumMicros
            if let low = histogram.counts.first, let high = histogram.counts.last {
                minMicros = low.micros
                maxMicros = high.micros
            }
        }
        count = stats.count
        ok = stats.ok
        failed = stats.failed
        bytesReceived = stats.bytesReceived
        bytesSent = stats.bytesSent
        for code in stats.statusCodes {
            if let status = Int(code.label) { statusCodes[status, default: 0] += code.count }
        }
        for key in ErrorKey.allCases {
            errors[key.rawValue] = stats.errors.first { $0.label == key.name }?.count ?? 0
        }
    }
}
