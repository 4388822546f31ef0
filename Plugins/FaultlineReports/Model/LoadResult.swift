import FaultlineKit
import Foundation

/// The output of an `http.load` probe, read from a journal (the shared load-probe contract).
///
/// Reading is lenient: a missing number reads as zero and a missing list as empty, so a report
/// still renders a journal written by an older or newer load probe.
public struct LoadResult: Sendable, Equatable {
    /// `closed` (users) or `open` (fixed arrival rate).
    public var model: String
    public var users: Int?
    public var rampUpSeconds: Double?
    public var durationSeconds: Double?
    public var iterations: Int?
    public var rate: Double?
    public var thinkTimeSeconds: Double?
    /// When the first request was sent (RFC 3339).
    public var started: String?
    public var ended: String?
    public var elapsedSeconds: Double
    /// Open model: sends that could not go out on time.
    public var dropped: Int
    public var overall: LoadStats
    /// Per named request, in configured order.
    public var requests: [NamedStats]
    /// One entry per elapsed second, overall.
    public var timeline: [LoadSecond]
    public var thresholds: [LoadThreshold]

    /// Stats of one named request.
    public struct NamedStats: Sendable, Equatable {
        public var name: String
        public var stats: LoadStats
    }

    /// Reads a probe output as a load result, or returns nil when it is not one: a load output is
    /// recognised by the provider type `http.load` or by the presence of `overall` and `timeline`.
    /// - Parameters:
    ///   - output: the probe's output.
    ///   - providerType: the activity's `provider.type`.
    public init?(_ output: Value?, providerType: String? = nil) {
        guard let output, case .object(let object) = output else { return nil }
        guard providerType == "http.load" || (object["overall"]?.objectValue != nil && object["timeline"]?.arrayValue != nil) else { return nil }
        guard let overall = object["overall"] else { return nil }
        model = object["model"]?.stringValue ?? "closed"
        users = object["users"]?.intValue
        rampUpSeconds = object["ramp_up_s"]?.doubleValue
        durationSeconds = object["duration_s"]?.doubleValue
        iterations = object["iterations"]?.intValue
        rate = object["rate"]?.doubleValue
        thinkTimeSeconds = object["think_time_s"]?.doubleValue
        started = object["started"]?.stringValue
        ended = object["ended"]?.stringValue
        elapsedSeconds = object["elapsed_s"]?.doubleValue ?? 0
        dropped = object["dropped"]?.intValue ?? 0
        self.overall = LoadStats(overall)
        requests = (object["requests"]?.objectValue ?? ValueObject()).map { NamedStats(name: $0.key, stats: LoadStats($0.value)) }
        timeline = (object["timeline"]?.arrayValue ?? []).map(LoadSecond.init)
        thresholds = (object["thresholds"]?.arrayValue ?? []).map(LoadThreshold.init)
    }

    /// The run's length in seconds: `elapsed_s`, else the timeline's length.
    public var spanSeconds: Double { elapsedSeconds > 0 ? elapsedSeconds : max(Double(timeline.count), 0.001) }
}

/// Request statistics of a load run, overall or for one request (times in milliseconds).
public struct LoadStats: Sendable, Equatable {
    public var count: Int
    public var ok: Int
    public var failed: Int
    /// 0...1.
    public var errorRate: Double
    public var minMs: Double
    public var avgMs: Double
    public var maxMs: Double
    public var p50Ms: Double
    public var p90Ms: Double
    public var p95Ms: Double
    public var p99Ms: Double
    public var p999Ms: Double
    /// Requests per second.
    public var rps: Double
    public var bytesReceived: Int
    public var bytesSent: Int
    public var bytesPerSecond: Double
    /// Responses by HTTP status code, in ascending code order.
    public var statusCodes: [Count]
    /// Failures by class (`refused`, `connect_timeout`, `reset`, `read_timeout`, `tls`, `dns`,
    /// `http_4xx`, `http_5xx`, `other`), in the contract's order.
    public var errors: [Count]

    /// A label with a count.
    public struct Count: Sendable, Equatable {
        public var label: String
        public var count: Int
    }

    /// Error classes that are not HTTP responses: the connection never gave a status code.
    public static let connectionErrorClasses: Set<String> = ["refused", "connect_timeout", "reset", "read_timeout", "tls", "dns", "other"]

    init(_ value: Value) {
        func number(_ key: String) -> Double { value[key]?.doubleValue ?? 0 }
        count = value["count"]?.intValue ?? 0
        ok = value["ok"]?.intValue ?? 0
        failed = value["failed"]?.intValue ?? 0
        errorRate = value["error_rate"]?.doubleValue ?? (count > 0 ? Double(failed) / Double(count) : 0)
        minMs = number("min_ms")
        avgMs = number("avg_ms")
        maxMs = number("max_ms")
        p50Ms = number("p50_ms")
        p90Ms = number("p90_ms")
        p95Ms = number("p95_ms")
        p99Ms = number("p99_ms")
        p999Ms = number("p999_ms")
        rps = number("rps")
        bytesReceived = value["bytes_received"]?.intValue ?? 0
        bytesSent = value["bytes_sent"]?.intValue ?? 0
        bytesPerSecond = number("bytes_per_s")
        statusCodes = (value["status_codes"]?.objectValue ?? ValueObject())
            .map { Count(label: $0.key, count: $0.value.intValue ?? 0) }
            .sorted { (Int($0.label) ?? Int.max, $0.label) < (Int($1.label) ?? Int.max, $1.label) }
        errors = (value["errors"]?.objectValue ?? ValueObject()).map { Count(label: $0.key, count: $0.value.intValue ?? 0) }
    }

    /// Failures where no HTTP response came back (refused, timeouts, resets, TLS, DNS).
    public var connectionErrors: Int {
        errors.filter { Self.connectionErrorClasses.contains($0.label) }.reduce(0) { $0 + $1.count }
    }

    /// Responses with a 5xx status code.
    public var serverErrors: Int {
        let fromCodes = statusCodes.filter { $0.label.hasPrefix("5") }.reduce(0) { $0 + $1.count }
        return max(fromCodes, errors.first { $0.label == "http_5xx" }?.count ?? 0)
    }
}

/// One second of a load run's time series.
public struct LoadSecond: Sendable, Equatable {
    /// Seconds since the load started.
    public var second: Int
    public var at: String?
    public var count: Int
    public var errors: Int
    public var p50Ms: Double
    public var p99Ms: Double

    init(second: Int, at: String?, count: Int, errors: Int, p50Ms: Double, p99Ms: Double) {
        self.second = second
        self.at = at
        self.count = count
        self.errors = errors
        self.p50Ms = p50Ms
        self.p99Ms = p99Ms
    }

    init(_ value: Value) {
        second = value["second"]?.intValue ?? 0
        at = value["at"]?.stringValue
        count = value["count"]?.intValue ?? 0
        errors = value["errors"]?.intValue ?? 0
        p50Ms = value["p50_ms"]?.doubleValue ?? 0
        p99Ms = value["p99_ms"]?.doubleValue ?? 0
    }
}

/// A k6-style threshold the load was judged by.
public struct LoadThreshold: Sendable, Equatable {
    /// `overall` or a request's name.
    public var scope: String
    /// As written, e.g. `p(95)<200`.
    public var expression: String
    public var metric: String
    public var limit: Double?
    public var measured: Double?
    public var ok: Bool

    init(_ value: Value) {
        scope = value["scope"]?.stringValue ?? "overall"
        expression = value["expression"]?.stringValue ?? ""
        metric = value["metric"]?.stringValue ?? ""
        limit = value["limit"]?.doubleValue
        measured = value["measured"]?.doubleValue
        ok = value["ok"]?.boolValue ?? false
    }
}
