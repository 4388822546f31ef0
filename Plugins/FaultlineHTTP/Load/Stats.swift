import FaultlineKit
import Foundation
import Histogram
import NIOCore

/// The error classes of the load output's `errors` object, in its order.
enum ErrorKey: Int, CaseIterable, Sendable {
    case refused, connectTimeout, reset, readTimeout, tls, dns, http4xx, http5xx, other

    var name: String {
        switch self {
        case .refused: "refused"
        case .connectTimeout: "connect_timeout"
        case .reset: "reset"
        case .readTimeout: "read_timeout"
        case .tls: "tls"
        case .dns: "dns"
        case .http4xx: "http_4xx"
        case .http5xx: "http_5xx"
        case .other: "other"
        }
    }

    init(_ failure: FailureClass) {
        switch failure {
        case .refused: self = .refused
        case .connectTimeout: self = .connectTimeout
        case .reset: self = .reset
        case .readTimeout: self = .readTimeout
        case .tls: self = .tls
        case .dns: self = .dns
        case .other: self = .other
        }
    }

    /// The class of a response whose status was not expected.
    init(unexpectedStatus status: Int) {
        switch status {
        case 400..<500: self = .http4xx
        case 500..<600: self = .http5xx
        default: self = .other
        }
    }
}

/// Latencies counted exactly, by microsecond: memory grows with the number of distinct values
/// (a few thousand in practice), not with the number of requests.
///
/// A busy load records millions of latencies, nearly all of them short: once ``denseAfter`` are
/// recorded, those under ``denseLimit`` µs are counted in a table indexed by the latency (128 KiB),
/// several times cheaper per request than hashing; the rest stay in a dictionary.
struct ExactLatencies: Sendable {
    static let denseLimit = 1 << 14
    static let denseAfter = 1024

    private var dense: [Int] = []
    private var sparse: [UInt32: Int] = [:]
    private(set) var total = 0

    mutating func record(_ micros: UInt32) {
        total += 1
        if Int(micros) < Self.denseLimit {
            if !dense.isEmpty {
                dense[Int(micros)] += 1
                return
            }
            if total >= Self.denseAfter {
                makeDense()
                dense[Int(micros)] += 1
                return
            }
        }
        sparse[micros, default: 0] += 1
    }

    /// Moves the short latencies counted so far into the table.
    private mutating func makeDense() {
        dense = Array(repeating: 0, count: Self.denseLimit)
        for (micros, count) in sparse where Int(micros) < Self.denseLimit { dense[Int(micros)] = count }
        sparse = sparse.filter { Int($0.key) >= Self.denseLimit }
    }

    private mutating func add(_ micros: UInt32, count: Int) {
        if !dense.isEmpty && Int(micros) < Self.denseLimit {
            dense[Int(micros)] += count
        } else {
            sparse[micros, default: 0] += count
        }
    }

    mutating func add(_ other: ExactLatencies) {
        if dense.isEmpty && total + other.total >= Self.denseAfter { makeDense() }
        other.forEachCount { add($0, count: $1) }
        total += other.total
    }

    /// Every latency with its count (above 0), in no particular order.
    func forEachCount(_ body: (_ micros: UInt32, _ count: Int) -> Void) {
        for (micros, count) in dense.enumerated() where count > 0 { body(UInt32(micros), count) }
        for (micros, count) in sparse { body(micros, count) }
    }

    /// Every latency with its count (above 0), ascending.
    var sortedCounts: [(micros: UInt32, count: Int)] {
        var counts: [(micros: UInt32, count: Int)] = []
        for (micros, count) in dense.enumerated() where count > 0 { counts.append((UInt32(micros), count)) }
        // Everything in the table is below everything left in the dictionary.
        counts += sparse.sorted { $0.key < $1.key }.map { (micros: $0.key, count: $0.value) }
        return counts
    }

    /// k6's percentiles (`fractions` in 0...1) in microseconds: the sorted values v at rank
    /// r = fraction × (count − 1), interpolated between v[⌊r⌋] and v[⌈r⌉].
    func percentiles(_ fractions: [Double]) -> [Double] {
        guard total > 0 else { return fractions.map { _ in 0 } }
        let ranks = fractions.map { $0 * Double(total - 1) }
        let wanted = Set(ranks.flatMap { [Int($0.rounded(.down)), Int($0.rounded(.up))] }).sorted()
        var values: [Int: Double] = [:]
        var next = 0
        var seen = 0
        for (micros, count) in sortedCounts {
            seen += count
            while next < wanted.count, wanted[next] < seen {
                values[wanted[next]] = Double(micros)
                next += 1
            }
            if next == wanted.count { break }
        }
        return ranks.map { rank in
            let lower = values[Int(rank.rounded(.down))]!
            let upper = values[Int(rank.rounded(.up))]!
            return lower + (upper - lower) * (rank - rank.rounded(.down))
        }
    }
}

extension ExactLatencies {
    /// The latencies of a journal's histogram (a shard's), to merge.
    init(_ histogram: LatencyHistogram) {
        if histogram.total >= Self.denseAfter { makeDense() }
        for (micros, count) in histogram.counts { add(micros, count: count) }
        total = histogram.total
    }

    /// The counts as the load output writes them for merging.
    var histogram: LatencyHistogram { LatencyHistogram(sortedCounts) }
}

/// Everything measured for one named request in one segment of the load (or, merged, for a
/// request, a phase or the whole load), exactly and in memory that does not grow with the count.
struct RequestStats: Sendable {
    /// Latencies in microseconds, of exchanges that got a response.
    var latencies = ExactLatencies()
    var count = 0
    var ok = 0
    var failed = 0
    var sumMicros: UInt64 = 0
    var minMicros: UInt32 = .max
    var maxMicros: UInt32 = 0
    var bytesReceived = 0
    var bytesSent = 0
    var statusCodes: [Int: Int] = [:]
    var errors = [Int](repeating: 0, count: ErrorKey.allCases.count)

    static let highestMicros: UInt64 = 3_600_000_000

    /// Records an exchange that got a response.
    mutating func record(status: Int, ok isOK: Bool, micros: UInt32, received: Int, sent: Int) {
        count += 1
        latencies.record(micros)
        sumMicros += UInt64(micros)
        minMicros = min(minMicros, micros)
        maxMicros = max(maxMicros, micros)
        bytesReceived += received
        bytesSent += sent
        statusCodes[status, default: 0] += 1
        if isOK {
            ok += 1
        } else {
            failed += 1
            errors[ErrorKey(unexpectedStatus: status).rawValue] += 1
        }
    }

    /// Records an exchange that got no response.
    mutating func record(failure: FailureClass, sent: Int, received: Int) {
        count += 1
        failed += 1
        bytesSent += sent
        bytesReceived += received
        errors[ErrorKey(failure).rawValue] += 1
    }

    mutating func add(_ other: RequestStats) {
        latencies.add(other.latencies)
        count += other.count
        ok += other.ok
        failed += other.failed
        sumMicros += other.sumMicros
        minMicros = min(minMicros, other.minMicros)
        maxMicros = max(maxMicros, other.maxMicros)
        bytesReceived += other.bytesReceived
        bytesSent += other.bytesSent
        statusCodes.merge(other.statusCodes, uniquingKeysWith: +)
        for i in errors.indices { errors[i] += other.errors[i] }
    }

    /// The output's stats over `elapsedSeconds` (for the rates). Latencies are milliseconds to
    /// the microsecond; percentiles are k6's (see ``ExactLatencies/percentiles(_:)``).
    /// - Parameters:
    ///   - histogram: whether to write every latency too (a shard's output, for merging).
    func stats(elapsedSeconds: Double, histogram: Bool = false) -> LoadStats {
        let measured = latencies.total
        func ms(_ micros: Double) -> Double { Self.rounded(micros / 1000, places: 3) }
        let p = latencies.percentiles([0.5, 0.9, 0.95, 0.99, 0.999]).map(ms)
        let seconds = max(elapsedSeconds, 1e-9)
        return LoadStats(
            count: count, ok: ok, failed: failed, errorRate: count == 0 ? 0 : Self.rounded(Double(failed) / Double(count), places: 6),
            minMs: measured == 0 ? 0 : ms(Double(minMicros)), avgMs: measured == 0 ? 0 : ms(Double(sumMicros) / Double(measured)),
            maxMs: ms(Double(maxMicros)), p50Ms: p[0], p90Ms: p[1], p95Ms: p[2], p99Ms: p[3], p999Ms: p[4],
            rps: Self.rounded(Double(count) / seconds, places: 3), bytesReceived: bytesReceived, bytesSent: bytesSent,
            bytesPerSecond: Self.rounded(Double(bytesReceived) / seconds, places: 1),
            statusCodes: statusCodes.keys.sorted().map { LoadStats.Count(label: String($0), count: statusCodes[$0]!) },
            errors: ErrorKey.allCases.map { LoadStats.Count(label: $0.name, count: errors[$0.rawValue]) },
            histogram: histogram ? latencies.histogram : nil)
    }

    static func rounded(_ value: Double, places: Int) -> Double {
        let scale = pow(10, Double(places))
        return (value * scale).rounded() / scale
    }
}

/// One exchange, kept only when the probe writes its records file (`records: true`).
struct LoadRecord: Sendable {
    /// Microseconds since the load started when the request was sent (open model: when it was due).
    var sentMicros: Int64
    /// Microseconds to the response; 0 when none came.
    var latencyMicros: UInt32
    /// The request's index in the sequence; -1 for a dropped send.
    var step: Int32
    /// The HTTP status; 0 when no response came.
    var status: UInt16
    /// The error class (``ErrorKey`` raw value), or -1 for a success.
    var error: Int8
    /// The recorder's segment the record fell in.
    var segment: UInt16
    var received: UInt32
    var sent: UInt32

    var responded: Bool { status != 0 }
    var isOK: Bool { error < 0 }
}

/// One second of the time series, while it is still being filled.
struct SecondBucket: Sendable {
    var count = 0
    var errors = 0
    /// Two significant digits are plenty for a chart and keep a second to a few kilobytes.
    var latencies = Histogram<UInt32>(
        lowestDiscernibleValue: 1, highestTrackableValue: RequestStats.highestMicros, numberOfSignificantValueDigits: .two)

    mutating func add(_ other: SecondBucket) {
        count += other.count
        errors += other.errors
        latencies.add(other.latencies)
    }

    /// The finished second as the output's `timeline` entry.
    func entry(second: Int, at start: Date) -> LoadSecond {
        let measured = latencies.totalCount > 0
        return LoadSecond(
            second: second, at: Timestamp(start.addingTimeInterval(Double(second))), count: count, errors: errors,
            p50Ms: measured ? Double(latencies.valueAtPercentile(50)) / 1000 : 0, p99Ms: measured ? Double(latencies.valueAtPercentile(99)) / 1000 : 0
        )
    }
}

/// What one event loop measured; confined to that loop, so recording takes no lock.
///
/// Measurements are kept per *segment* of the load — a stretch with the same fault windows in
/// force, or between them — and per request, so that the phases (``PhaseSplit``) are merges of
/// whole segments and their stats are exact. A request's segment is decided by when it was sent,
/// against the run's fault windows as they stand when it completes (a window begins or ends long
/// before a request sent after that moment can complete).
final class LoadRecorder {
    /// Segments in the order first seen; `stats[segment][request]`.
    private(set) var segments: [Segment] = []
    private(set) var stats: [[RequestStats]] = []
    private(set) var drops: [Int] = []
    /// Requests in flight when the load ended, which no other count holds.
    private(set) var abandoned = 0
    /// Every exchange, when the records file is wanted.
    private(set) var records: [LoadRecord] = []
    private let keepsRecords: Bool
    private let requestCount: Int
    private let faults: FaultClock
    private var windows: [FaultClock.Window] = []
    private var generation = -1
    private var lastSegment: (key: Segment, index: Int)?
    /// Seconds not yet handed over, oldest first (usually one or two).
    private var seconds: [(index: Int, bucket: SecondBucket)] = []
    private let start: NIODeadline

    init(requestCount: Int, start: NIODeadline, faults: FaultClock, keepsRecords: Bool) {
        self.requestCount = requestCount
        self.start = start
        self.faults = faults
        self.keepsRecords = keepsRecords
    }

    private func micros(since moment: NIODeadline) -> Int64 { max((moment - start).nanoseconds / 1000, 0) }

    /// The segment a moment (microseconds since the start) falls in, created on first use.
    private func segment(at micros: Int64) -> Int {
        // Odd: a window is changing right now; the windows are read under its lock, after it.
        let now = faults.generation
        if now != generation || now % 2 != 0 {
            windows = faults.windows()
            generation = now
            lastSegment = nil
        }
        let key = Segment(at: micros, windows: windows)
        if let lastSegment, lastSegment.key == key { return lastSegment.index }
        let index: Int
        if let known = segments.firstIndex(of: key) {
            index = known
        } else {
            segments.append(key)
            stats.append(Array(repeating: RequestStats(), count: requestCount))
            drops.append(0)
            index = segments.count - 1
        }
        lastSegment = (key, index)
        return index
    }

    /// Records a response for request `index`.
    func record(_ index: Int, result: ExchangeResult, expected: ExpectedStatus, began: NIODeadline, now: NIODeadline) {
        let micros = UInt32(min(max((now - began).nanoseconds / 1000, 1), Int64(RequestStats.highestMicros)))
        let isOK = expected.contains(result.status)
        let sentAt = self.micros(since: began)
        let segment = segment(at: sentAt)
        stats[segment][index].record(status: result.status, ok: isOK, micros: micros, received: result.bytesReceived, sent: result.bytesSent)
        if keepsRecords {
            records.append(
                LoadRecord(
                    sentMicros: sentAt, latencyMicros: micros, step: Int32(index), status: UInt16(clamping: result.status),
                    error: isOK ? -1 : Int8(ErrorKey(unexpectedStatus: result.status).rawValue), segment: UInt16(clamping: segment),
                    received: UInt32(clamping: result.bytesReceived), sent: UInt32(clamping: result.bytesSent)))
        }
        addToTimeline(now: now, micros: UInt64(micros), isError: !isOK)
    }

    /// Records an exchange that failed without a response.
    func record(_ index: Int, failure: HTTPFailure, sent: Int, received: Int, began: NIODeadline, now: NIODeadline) {
        let sentAt = micros(since: began)
        let segment = segment(at: sentAt)
        stats[segment][index].record(failure: failure.kind, sent: sent, received: received)
        if keepsRecords {
            records.append(
                LoadRecord(
                    sentMicros: sentAt, latencyMicros: 0, step: Int32(index), status: 0, error: Int8(ErrorKey(failure.kind).rawValue),
                    segment: UInt16(clamping: segment), received: UInt32(clamping: received), sent: UInt32(clamping: sent)))
        }
        addToTimeline(now: now, micros: nil, isError: true)
    }

    /// Records a send that was due at `due` but found no free connection (open model).
    func recordDrop(due: NIODeadline) {
        let sentAt = micros(since: due)
        let segment = segment(at: sentAt)
        drops[segment] += 1
        if keepsRecords {
            records.append(
                LoadRecord(
                    sentMicros: sentAt, latencyMicros: 0, step: -1, status: 0, error: -1, segment: UInt16(clamping: segment), received: 0, sent: 0))
        }
    }

    /// Records requests still in flight when the load ends (they will not complete).
    func recordAbandoned(_ count: Int) { abandoned += count }

    private func addToTimeline(now: NIODeadline, micros: UInt64?, isError: Bool) {
        let second = Int(max((now - start).nanoseconds, 0) / 1_000_000_000)
        if seconds.last?.index != second {
            // Completions on one loop arrive in time order, so a new second is always the latest.
            seconds.append((second, SecondBucket()))
        }
        let last = seconds.count - 1
        seconds[last].bucket.count += 1
        if isError { seconds[last].bucket.errors += 1 }
        if let micros { _ = seconds[last].bucket.latencies.record(min(micros, RequestStats.highestMicros)) }
    }

    /// Hands over the seconds before `second` (complete on this loop once its clock has passed them).
    func drainSeconds(before second: Int) -> [(Int, SecondBucket)] {
        let split = seconds.firstIndex { $0.index >= second } ?? seconds.count
        let drained = seconds[..<split].map { ($0.index, $0.bucket) }
        seconds.removeFirst(split)
        return drained
    }

    /// Everything recorded, for the final merge.
    func snapshot() -> LoadSnapshot {
        LoadSnapshot(segments: segments, stats: stats, drops: drops, abandoned: abandoned, records: records, seconds: drainSeconds(before: .max))
    }
}

/// A stretch of the load with the same faults in force: the fault windows (by identity) in force,
/// or, with none, how many windows had begun (0: before the first fault).
enum Segment: Hashable, Sendable {
    case faults([String])
    case gap(begun: Int)

    init(at micros: Int64, windows: [FaultClock.Window]) {
        var inForce: [String] = []
        var begun = 0
        for window in windows where window.from <= micros {
            begun += 1
            if micros < (window.to ?? .max) { inForce.append(window.identity) }
        }
        self = inForce.isEmpty ? .gap(begun: begun) : .faults(inForce)
    }
}

/// The run's fault windows as a load sees them: offsets from the load's start, re-read only when
/// a window began or ended.
struct FaultClock: Sendable {
    /// A fault window in microseconds since the load started (`to` nil: still in force).
    struct Window: Sendable, Equatable {
        var identity: String
        var label: String
        var from: Int64
        var to: Int64?
    }

    /// The run's windows and their generation; none outside an experiment.
    let context: ActivityContext?
    /// The load's `started` timestamp, in whole microseconds since 1970.
    let origin: Int64

    var generation: Int { context?.faultGeneration ?? 0 }

    func windows() -> [Window] { Self.windows(context?.faultWindows ?? [], origin: origin) }

    /// Windows as offsets from `origin`, to the microsecond of the texts the journal writes.
    static func windows(_ faults: [FaultWindow], origin: Int64) -> [Window] {
        faults.compactMap { fault in
            guard let start = fault.start.microsecondsSinceEpoch else { return nil }
            return Window(
                identity: fault.id + "@" + fault.start.text, label: fault.label, from: start - origin,
                to: fault.end?.microsecondsSinceEpoch.map { $0 - origin })
        }
    }
}

/// A loop's measurements, handed to the probe at the end.
struct LoadSnapshot: Sendable {
    var segments: [Segment]
    var stats: [[RequestStats]]
    var drops: [Int]
    var abandoned: Int
    var records: [LoadRecord]
    var seconds: [(Int, SecondBucket)]
}

/// Merges seconds from every loop and keeps only the numbers of finished ones, so the series
/// costs a few dozen bytes a second however many requests it counts.
struct Timeline: Sendable {
    private var open: [Int: SecondBucket] = [:]
    private(set) var finished: [Int: LoadSecond] = [:]
    let wallStart: Date

    init(wallStart: Date) { self.wallStart = wallStart }

    mutating func add(_ seconds: [(Int, SecondBucket)]) {
        for (index, bucket) in seconds { open[index, default: SecondBucket()].add(bucket) }
    }

    /// Reduces the merged seconds before `second` to their entries.
    mutating func close(before second: Int) {
        for index in open.keys where index < second {
            finished[index] = open.removeValue(forKey: index)!.entry(second: index, at: wallStart)
        }
    }

    /// One entry per elapsed second, seconds without a completion included.
    func entries(elapsedSeconds: Double) -> [LoadSecond] {
        let last = max(Int(elapsedSeconds.rounded(.up)) - 1, finished.keys.max() ?? -1)
        guard last >= 0 else { return [] }
        return (0...last).map { finished[$0] ?? SecondBucket().entry(second: $0, at: wallStart) }
    }
}

/// Conversions of durations for outputs.
enum Stats {
    /// Milliseconds with microsecond precision, as the outputs show durations.
    static func milliseconds(_ amount: TimeAmount) -> Double { (Double(amount.nanoseconds) / 1000).rounded() / 1000 }

    /// Seconds as a Double from a time amount.
    static func seconds(_ amount: TimeAmount) -> Double { Double(amount.nanoseconds) / 1e9 }
}
