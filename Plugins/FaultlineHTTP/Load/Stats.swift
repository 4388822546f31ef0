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

/// Everything measured for one named request (or, merged, for the whole load), in constant
/// memory: latencies go into an HdrHistogram (1 µs to 1 hour, 3 significant digits).
struct RequestStats: Sendable {
    /// Latencies in microseconds, of exchanges that got a response.
    var latencies = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: Self.highestMicros, numberOfSignificantValueDigits: .three)
    var count = 0
    var ok = 0
    var failed = 0
    var sumMicros: UInt64 = 0
    var minMicros: UInt64 = .max
    var maxMicros: UInt64 = 0
    var bytesReceived = 0
    var bytesSent = 0
    var statusCodes: [Int: Int] = [:]
    var errors = [Int](repeating: 0, count: ErrorKey.allCases.count)

    static let highestMicros: UInt64 = 3_600_000_000

    /// Records an exchange that got a response.
    mutating func record(status: Int, ok isOK: Bool, micros: UInt64, received: Int, sent: Int) {
        count += 1
        let clamped = min(max(micros, 1), Self.highestMicros)
        _ = latencies.record(clamped)
        sumMicros += clamped
        minMicros = min(minMicros, clamped)
        maxMicros = max(maxMicros, clamped)
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

    /// The output's stats of this request (or of the whole load).
    func stats(elapsedSeconds: Double) -> LoadStats {
        let measured = latencies.totalCount
        func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
        func percentile(_ p: Double) -> Double { measured == 0 ? 0 : ms(latencies.valueAtPercentile(p)) }
        let seconds = max(elapsedSeconds, 1e-9)
        return LoadStats(
            count: count, ok: ok, failed: failed, errorRate: count == 0 ? 0 : Self.rounded(Double(failed) / Double(count), places: 6),
            minMs: measured == 0 ? 0 : ms(minMicros), avgMs: measured == 0 ? 0 : Self.rounded(Double(sumMicros) / Double(measured) / 1000, places: 3),
            maxMs: ms(maxMicros), p50Ms: percentile(50), p90Ms: percentile(90), p95Ms: percentile(95), p99Ms: percentile(99),
            p999Ms: percentile(99.9), rps: Self.rounded(Double(count) / seconds, places: 3), bytesReceived: bytesReceived, bytesSent: bytesSent,
            bytesPerSecond: Self.rounded(Double(bytesReceived) / seconds, places: 1),
            statusCodes: statusCodes.keys.sorted().map { LoadStats.Count(label: String($0), count: statusCodes[$0]!) },
            errors: ErrorKey.allCases.map { LoadStats.Count(label: $0.name, count: errors[$0.rawValue]) })
    }

    static func rounded(_ value: Double, places: Int) -> Double {
        let scale = pow(10, Double(places))
        return (value * scale).rounded() / scale
    }
}

/// One second of the time series, while it is still being filled.
struct SecondBucket: Sendable {
    var count = 0
    var errors = 0
    /// Two significant digits are plenty for a chart and keep a second to a few kilobytes.
    var latencies = Histogram<UInt32>(lowestDiscernibleValue: 1, highestTrackableValue: RequestStats.highestMicros, numberOfSignificantValueDigits: .two)

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
            p50Ms: measured ? Double(latencies.valueAtPercentile(50)) / 1000 : 0, p99Ms: measured ? Double(latencies.valueAtPercentile(99)) / 1000 : 0)
    }
}

/// What one event loop measured; confined to that loop, so recording takes no lock.
final class LoadRecorder {
    private(set) var requests: [RequestStats]
    /// Seconds not yet handed over, oldest first (usually one or two).
    private var seconds: [(index: Int, bucket: SecondBucket)] = []
    private let start: NIODeadline
    var dropped = 0

    init(requestCount: Int, start: NIODeadline) {
        requests = Array(repeating: RequestStats(), count: requestCount)
        self.start = start
    }

    /// Records a response for request `index`.
    func record(_ index: Int, result: ExchangeResult, expected: ExpectedStatus, began: NIODeadline, now: NIODeadline) {
        let micros = UInt64(max((now - began).nanoseconds / 1000, 1))
        let isOK = expected.contains(result.status)
        requests[index].record(status: result.status, ok: isOK, micros: micros, received: result.bytesReceived, sent: result.bytesSent)
        addToTimeline(now: now, micros: micros, isError: !isOK)
    }

    /// Records an exchange that failed without a response.
    func record(_ index: Int, failure: HTTPFailure, sent: Int, received: Int, now: NIODeadline) {
        requests[index].record(failure: failure.kind, sent: sent, received: received)
        addToTimeline(now: now, micros: nil, isError: true)
    }

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
        LoadSnapshot(requests: requests, seconds: drainSeconds(before: .max), dropped: dropped)
    }
}

/// A loop's measurements, handed to the probe at the end.
struct LoadSnapshot: Sendable {
    var requests: [RequestStats]
    var seconds: [(Int, SecondBucket)]
    var dropped: Int
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
