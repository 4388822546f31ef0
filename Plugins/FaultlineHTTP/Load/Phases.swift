import FaultlineKit
import Foundation
import NIOPosix

/// Splits a load by the run's fault windows into ``LoadPhase``s.
///
/// The load's span is cut at every fault's start and end; each piece belongs to the faults in
/// force in it (and to `during` when two or more windows overlapped the load), or, with no fault
/// in force, to `before` (no fault has begun yet), `after` (every fault has ended) or `between`.
/// A request belongs to the piece it was sent in; the recorders keep their measurements by
/// ``Segment``, and a phase is the merge of its segments. Times are whole microseconds since the
/// load's `started` timestamp, so the phases' `from_s`/`to_s` and the records' `sent_s` compare
/// exactly with each other and with the journal's fault windows.
struct PhaseSplit {
    /// A phase being built: its name and kind, and the spans of the load it covers.
    struct Phase {
        var name: String
        var kind: LoadPhase.Kind
        var fault: String?
        var spans: [(from: Int64, to: Int64)] = []

        var micros: Int64 { spans.reduce(0) { $0 + $1.to - $1.from } }
    }

    private(set) var phases: [Phase] = []
    private let windows: [FaultClock.Window]
    /// The fault phase of each window; nil for a window outside the load.
    private var faultPhase: [String: Int] = [:]
    private var faultCount = 0

    /// - Parameters:
    ///   - windows: the run's fault windows as offsets from the load's start.
    ///   - end: the load's length in microseconds.
    init(windows: [FaultClock.Window], end: Int64) {
        let end = max(end, 1)
        // A window that began after the load ended does not make its last stretch `between`.
        let windows = windows.filter { $0.from < end }
        self.windows = windows
        var labelCounts: [String: Int] = [:]
        for window in windows where window.from < end && (window.to ?? .max) > 0 {
            labelCounts[window.label, default: 0] += 1
            let count = labelCounts[window.label]!
            phases.append(Phase(name: count == 1 ? window.label : "\(window.label) #\(count)", kind: .fault, fault: window.label))
            faultPhase[window.identity] = phases.count - 1
        }
        faultCount = phases.count
        var cuts: Set<Int64> = [0]
        for window in windows {
            for cut in [window.from, window.to ?? end] where cut > 0 && cut < end { cuts.insert(cut) }
        }
        let starts = cuts.sorted()
        for (number, from) in starts.enumerated() {
            let to = number + 1 < starts.count ? starts[number + 1] : end
            for member in phases(of: Segment(at: from, windows: windows)) { phases[member].spans.append((from, to)) }
        }
    }

    /// The phases a segment's measurements belong to, created on first use.
    mutating func phases(of segment: Segment) -> [Int] {
        switch segment {
        case .faults(let identities):
            let members = identities.compactMap { faultPhase[$0] }
            return faultCount > 1 ? members + [phase(.during)] : members
        case .gap(let begun):
            return [phase(begun == 0 ? .before : (begun >= windows.count ? .after : .between))]
        }
    }

    private mutating func phase(_ kind: LoadPhase.Kind) -> Int {
        if let existing = phases.firstIndex(where: { $0.kind == kind }) { return existing }
        phases.append(Phase(name: kind.rawValue, kind: kind, fault: nil))
        return phases.count - 1
    }

    /// The phases in time order of their first span, `during` after the fault phases.
    var ordered: [Int] {
        phases.indices.sorted { a, b in
            (phases[a].kind == .during ? 1 : 0, phases[a].spans.first?.from ?? .max, a) < (
                phases[b].kind == .during ? 1 : 0, phases[b].spans.first?.from ?? .max, b
            )
        }
    }

    /// The output's phases, each the merge of its segments' measurements.
    /// - Parameters:
    ///   - segments: per segment, its stats per request and its dropped sends.
    ///   - histograms: whether each phase writes every latency too (a shard's output, for merging).
    mutating func loadPhases(_ segments: [Segment: (stats: [RequestStats], dropped: Int)], histograms: Bool = false) -> [LoadPhase] {
        var merged: [Int: (stats: RequestStats, dropped: Int)] = [:]
        for (segment, measured) in segments {
            var total = RequestStats()
            for stats in measured.stats { total.add(stats) }
            for phase in phases(of: segment) {
                merged[phase, default: (RequestStats(), 0)].stats.add(total)
                merged[phase, default: (RequestStats(), 0)].dropped += measured.dropped
            }
        }
        return ordered.map { index in
            let phase = phases[index]
            let seconds = Double(phase.micros) / 1e6
            return LoadPhase(
                name: phase.name, kind: phase.kind, fault: phase.fault, fromSeconds: Double(phase.spans.first?.from ?? 0) / 1e6,
                toSeconds: Double(phase.spans.last?.to ?? 0) / 1e6, seconds: seconds,
                stats: (merged[index]?.stats ?? RequestStats()).stats(elapsedSeconds: seconds, histogram: histograms),
                dropped: merged[index]?.dropped ?? 0)
        }
    }
}

/// The per-request records file: one CSV row per exchange and per dropped send, the rows every
/// statistic of the output is computed from (JMeter's results file, k6's `--out csv`).
///
/// Columns: `sent_s` (seconds since the load's `started`, to the microsecond; open model: when
/// the send was due), `request`, `phase` (the phases it belongs to, `|`-separated), `status` (empty
/// when no response came), `ok`, `error` (the error class, `dropped` for a send that could not go
/// out), `latency_ms` (to the microsecond; empty without a response), `bytes_received`, `bytes_sent`.
enum RecordsFile {
    static let header = "sent_s,request,phase,status,ok,error,latency_ms,bytes_received,bytes_sent\n"

    /// Writes the file `<activity>.load.csv` (numbered when it exists) in `directory`.
    /// - Parameters:
    ///   - records: each loop's records with the phases of each of its segments.
    /// - Returns: the file's path.
    static func write(_ records: [(records: [LoadRecord], phases: [String])], plan: LoadPlan, directory: String, activity: String) async throws
        -> String
    {
        let base = String(activity.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" })
        var path = directory + "/" + base + ".load.csv"
        var number = 1
        while FileManager.default.fileExists(atPath: path) {
            number += 1
            path = directory + "/" + base + "-\(number).load.csv"
        }
        let names = plan.steps.map { csvField($0.name) }
        var rows: [(LoadRecord, String)] = []
        for loop in records { rows += loop.records.map { ($0, loop.phases[Int($0.segment)]) } }
        rows.sort { $0.0.sentMicros < $1.0.sentMicros }
        var text = header
        text.reserveCapacity(rows.count * 64)
        for (record, phases) in rows {
            text += "\(decimal(record.sentMicros, places: 6)),\(record.step < 0 ? "" : names[Int(record.step)]),\(phases),"
            if record.step < 0 {
                text += ",false,dropped,,0,0\n"
                continue
            }
            let error = record.isOK ? "" : (ErrorKey(rawValue: Int(record.error))?.name ?? "other")
            text +=
                record.responded
                ? "\(record.status),\(record.isOK),\(error),\(decimal(Int64(record.latencyMicros), places: 3))," : ",false,\(error),,"
            text += "\(record.received),\(record.sent)\n"
        }
        let contents = text
        let target = path
        do {
            try await NIOThreadPool.singleton.runIfActive {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try contents.write(toFile: target, atomically: true, encoding: .utf8)
            }
        } catch {
            throw ActivityFailure("cannot write the load records to \(target): \(error)")
        }
        return path
    }

    /// A phase list for the file: names `|`-separated.
    static func phaseField(_ names: [String]) -> String { csvField(names.joined(separator: "|")) }

    /// Microseconds as seconds (`places` 6) or milliseconds (`places` 3), exactly: 1500 µs is `0.001500` or `1.500`.
    private static func decimal(_ value: Int64, places: Int) -> String {
        let sign = value < 0 ? "-" : ""
        let scale: UInt64 = places == 6 ? 1_000_000 : 1000
        let fraction = String(value.magnitude % scale)
        return "\(sign)\(value.magnitude / scale).\(String(repeating: "0", count: places - fraction.count))\(fraction)"
    }

    private static func csvField(_ text: String) -> String {
        text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "|" })
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
}
