/// What a load generator measured: the output of the `http.load` probe, as it goes into the
/// journal and as reports read it back.
///
/// One type for both sides, so the producer and the readers cannot drift apart. It is kept in the
/// kernel because its producer (the HTTP plugin, built on SwiftNIO) and its readers (the reports
/// plugin) must not depend on each other. In the journal it is the probe's output object, with
/// the keys the README documents (`overall`, `requests`, `timeline`, `p95_ms`, …).
///
/// ## Evolving it
/// - Reading is lenient: a missing or unreadable number reads as 0, a missing list or object as
///   empty, and unknown keys are ignored. So a journal written before a field existed still
///   reads, and a newer journal reads in an older Faultline.
/// - A new measurement is a new field with a default and a new key, written after today's keys.
/// - A key whose meaning changes is a new ``version``: readers see which they hold. Version 1 is
///   not written (the journals before versions existed are version 1); later ones write `version`.
public struct LoadResult: Sendable, Equatable, Codable {
    /// The version this Faultline writes.
    public static let currentVersion = 1

    /// The contract version the result follows (see "Evolving it").
    public var version: Int
    public var model: Model
    /// Closed model: concurrent users; open model: the most connections.
    public var users: Int?
    public var rampUpSeconds: Double?
    public var durationSeconds: Double?
    public var iterations: Int?
    /// Open model: iterations started per second.
    public var rate: Double?
    public var thinkTimeSeconds: Double?
    /// When the first request was sent.
    public var started: Timestamp?
    public var ended: Timestamp?
    public var elapsedSeconds: Double
    /// Open model: sends that could not go out on time.
    public var dropped: Int
    /// Requests still in flight when the load ended (`graceful_stop` ran out, or it was
    /// interrupted): sent or being sent, never answered, and in no other count. Written when not 0.
    public var abandoned: Int
    public var overall: LoadStats
    /// Per named request, in configured order.
    public var requests: [NamedStats]
    /// One entry per elapsed second, overall.
    public var timeline: [LoadSecond]
    /// The thresholds the load was judged by, in the order written; empty when it was not judged
    /// (and then not written).
    public var thresholds: [LoadThreshold]
    /// The load split by the run's fault windows: before the first fault, during each fault,
    /// between faults and after the last (see ``LoadPhase``); empty when written before phases
    /// existed. A load that saw no fault has one phase, `before`.
    public var phases: [LoadPhase]
    /// The per-request records file (a CSV beside the journal) when the probe wrote one.
    public var recordsFile: String?
    /// A ramping load's stages (users or rate moving to each target), in order; empty otherwise.
    public var stages: [LoadStage]
    /// The shard of the load this output measured, when the run was one of several
    /// (`faultline run --shard I/N`); `users`, `rate` and `stages` above are the whole load's.
    public var shard: LoadShardInfo?
    /// The number of shards merged into this output (`faultline report --merge`); nil otherwise.
    public var mergedShards: Int?

    /// How the load was driven.
    public enum Model: String, Sendable, Codable, CaseIterable {
        /// A number of users, each running the requests in turn (JMeter's thread group).
        case closed
        /// A fixed arrival rate, whatever the server does (k6's constant-arrival-rate).
        case open
    }

    /// Stats of one named request.
    public struct NamedStats: Sendable, Equatable {
        public var name: String
        public var stats: LoadStats

        public init(name: String, stats: LoadStats) {
            self.name = name
            self.stats = stats
        }
    }

    public init(
        model: Model, users: Int?, rampUpSeconds: Double?, durationSeconds: Double?, iterations: Int?, rate: Double?, thinkTimeSeconds: Double?,
        started: Timestamp?, ended: Timestamp?, elapsedSeconds: Double, dropped: Int, overall: LoadStats, requests: [NamedStats],
        timeline: [LoadSecond], thresholds: [LoadThreshold] = [], phases: [LoadPhase] = [], recordsFile: String? = nil,
        stages: [LoadStage] = [], shard: LoadShardInfo? = nil, mergedShards: Int? = nil, abandoned: Int = 0
    ) {
        version = Self.currentVersion
        self.model = model
        self.users = users
        self.rampUpSeconds = rampUpSeconds
        self.durationSeconds = durationSeconds
        self.iterations = iterations
        self.rate = rate
        self.thinkTimeSeconds = thinkTimeSeconds
        self.started = started
        self.ended = ended
        self.elapsedSeconds = elapsedSeconds
        self.dropped = dropped
        self.abandoned = abandoned
        self.overall = overall
        self.requests = requests
        self.timeline = timeline
        self.thresholds = thresholds
        self.phases = phases
        self.recordsFile = recordsFile
        self.stages = stages
        self.shard = shard
        self.mergedShards = mergedShards
    }

    /// Reads a load output from a journal or a probe, leniently (see "Evolving it").
    /// - Throws: when `value` is not an object.
    public init(decoding value: Value) throws {
        self = try NodeDecoder(rejectsUnknownKeys: false).decode(LoadResult.self, from: value)
    }

    /// The result as the probe's output.
    public var value: Value { (try? ValueEncoder().encode(self)) ?? .null }

    /// The stats a threshold scope names: `overall`, a request's name, or a phase (`before`,
    /// `during`, `between`, `after`, or a fault's label); nil when the scope measured nothing.
    public func stats(scope: String) -> LoadStats? {
        if scope == "overall" { return overall }
        if let request = requests.first(where: { $0.name == scope }) { return request.stats }
        return phase(named: scope)?.stats
    }

    /// The phase a scope names: `during` is every fault together (the one fault's phase when
    /// there was one), the other names are phases' names.
    public func phase(named name: String) -> LoadPhase? {
        if name == LoadPhase.Kind.during.rawValue {
            let faults = phases.filter { $0.kind == .fault }
            if faults.count == 1 { return faults[0] }
        }
        return phases.first { $0.name == name }
    }

    /// Closed model: the fault phases whose throughput fell below half of the load's before the
    /// faults (else of its phases without a fault). Users wait for slow answers, so few requests
    /// are sent, and measured, while the fault is in force: the latency numbers understate it
    /// (coordinated omission), and the open model (`rate`) measures it honestly.
    public var collapsedPhases: [LoadPhase] {
        guard model == .closed else { return [] }
        let calm = phases.filter { $0.kind != .fault && $0.kind != .during && $0.seconds > 0 }
        let reference =
            phases.first { $0.kind == .before && $0.seconds > 0 }?.stats.rps
            ?? (calm.isEmpty ? nil : Double(calm.reduce(0) { $0 + $1.stats.count }) / calm.reduce(0) { $0 + $1.seconds })
        guard let reference, reference > 0 else { return [] }
        return phases.filter { $0.kind == .fault && $0.seconds > 0 && $0.stats.rps < reference / 2 }
    }

    /// One sentence per collapsed phase (``collapsedPhases``) for reports and the console.
    public var collapseWarnings: [String] {
        let reference = phases.first { $0.kind == .before && $0.seconds > 0 }
        return collapsedPhases.map { phase in
            let before = reference.map { " (\(Self.rateText($0.stats.rps))/s before it)" } ?? ""
            return "throughput collapsed to \(Self.rateText(phase.stats.rps))/s during \"\(phase.name)\"\(before): closed-model users wait for "
                + "slow answers, so few requests measure the fault and its latency is understated; use the open model (rate:) to measure it"
        }
    }

    private static func rateText(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(format: "%.1f", value)
    }

    /// Whether a scope names a phase of this kind of output (it may have measured nothing).
    public static func isPhaseScope(_ scope: String) -> Bool { LoadPhase.Kind.scopeNames.contains(scope) }

    /// The run's length in seconds: `elapsed_s`, else the timeline's length.
    public var spanSeconds: Double { elapsedSeconds > 0 ? elapsedSeconds : max(Double(timeline.count), 0.001) }

    enum CodingKeys: String, CodingKey {
        case version, model, users, rampUpSeconds = "ramp_up_s", durationSeconds = "duration_s", iterations, rate, thinkTimeSeconds = "think_time_s",
            started, ended, elapsedSeconds = "elapsed_s", dropped, abandoned, overall, requests, timeline, thresholds, phases,
            recordsFile = "records_file", stages, shard, mergedShards = "merged_shards"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = c.lenient(.version) ?? 1
        model = c.lenient(.model) ?? .closed
        users = c.lenient(.users)
        rampUpSeconds = c.lenient(.rampUpSeconds)
        durationSeconds = c.lenient(.durationSeconds)
        iterations = c.lenient(.iterations)
        rate = c.lenient(.rate)
        thinkTimeSeconds = c.lenient(.thinkTimeSeconds)
        started = c.lenient(.started)
        ended = c.lenient(.ended)
        elapsedSeconds = c.lenient(.elapsedSeconds) ?? 0
        dropped = c.lenient(.dropped) ?? 0
        abandoned = c.lenient(.abandoned) ?? 0
        overall = c.lenient(.overall) ?? LoadStats()
        requests = c.lenientObject(.requests).map { name, stats in NamedStats(name: name, stats: stats ?? LoadStats()) }
        timeline = c.lenientList(.timeline) ?? []
        thresholds = c.lenientList(.thresholds) ?? []
        phases = c.lenientList(.phases) ?? []
        recordsFile = c.lenient(.recordsFile)
        stages = c.lenientList(.stages) ?? []
        shard = c.lenient(.shard)
        mergedShards = c.lenient(.mergedShards)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if version != 1 { try c.encode(version, forKey: .version) }
        try c.encode(model, forKey: .model)
        try c.encodeIfPresent(users, forKey: .users)
        try c.encodeIfPresent(rampUpSeconds, forKey: .rampUpSeconds)
        // Written as null when absent, so every load output has the same keys.
        try c.encodeOrNull(durationSeconds, forKey: .durationSeconds)
        try c.encodeOrNull(iterations, forKey: .iterations)
        try c.encodeOrNull(rate, forKey: .rate)
        try c.encodeIfPresent(thinkTimeSeconds, forKey: .thinkTimeSeconds)
        try c.encodeIfPresent(started, forKey: .started)
        try c.encodeIfPresent(ended, forKey: .ended)
        try c.encode(elapsedSeconds, forKey: .elapsedSeconds)
        try c.encode(dropped, forKey: .dropped)
        if abandoned > 0 { try c.encode(abandoned, forKey: .abandoned) }
        try c.encode(overall, forKey: .overall)
        var requestsContainer = c.nestedContainer(keyedBy: AnyKey.self, forKey: .requests)
        for request in requests { try requestsContainer.encode(request.stats, forKey: AnyKey(request.name)) }
        try c.encode(timeline, forKey: .timeline)
        if !thresholds.isEmpty { try c.encode(thresholds, forKey: .thresholds) }
        if !phases.isEmpty { try c.encode(phases, forKey: .phases) }
        try c.encodeIfPresent(recordsFile, forKey: .recordsFile)
        if !stages.isEmpty { try c.encode(stages, forKey: .stages) }
        try c.encodeIfPresent(shard, forKey: .shard)
        try c.encodeIfPresent(mergedShards, forKey: .mergedShards)
    }
}

/// One stage of a ramping load: over `duration_s` the users (closed model) or the arrival rate
/// (open model) moved linearly to `target`.
public struct LoadStage: Sendable, Equatable, Codable {
    public var durationSeconds: Double
    public var target: Double

    public init(durationSeconds: Double, target: Double) {
        self.durationSeconds = durationSeconds
        self.target = target
    }

    enum CodingKeys: String, CodingKey { case durationSeconds = "duration_s", target }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        durationSeconds = c.lenient(.durationSeconds) ?? 0
        target = c.lenient(.target) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(durationSeconds, forKey: .durationSeconds)
        try c.encode(target, forKey: .target)
    }
}

/// Which shard of a load an output measured, and its share (see ``LoadShard``).
public struct LoadShardInfo: Sendable, Equatable, Codable {
    /// From 0.
    public var index: Int
    /// How many shards the load was split into.
    public var count: Int
    /// Closed model: the users this shard ran; open model: the most connections it opened.
    public var users: Int
    /// Open model: the iterations scheduled for this shard (every `count`-th of the load's).
    public var arrivals: Int?
    /// The instant every shard's run started at (`--start-at`), when one was given.
    public var startAt: Timestamp?

    public init(index: Int, count: Int, users: Int, arrivals: Int?, startAt: Timestamp?) {
        self.index = index
        self.count = count
        self.users = users
        self.arrivals = arrivals
        self.startAt = startAt
    }

    enum CodingKeys: String, CodingKey { case index, count, users, arrivals, startAt = "start_at" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        index = c.lenient(.index) ?? 0
        count = c.lenient(.count) ?? 1
        users = c.lenient(.users) ?? 0
        arrivals = c.lenient(.arrivals)
        startAt = c.lenient(.startAt)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(count, forKey: .count)
        try c.encode(users, forKey: .users)
        try c.encodeIfPresent(arrivals, forKey: .arrivals)
        try c.encodeIfPresent(startAt, forKey: .startAt)
    }
}

/// The part of a load run that fell before, during, between or after the run's fault windows.
///
/// A request belongs to the phase in which it was sent — in the open model, in which it was
/// due to be sent — so its latency counts where the fault could have caused it. Fault windows
/// that overlap each other give a request to each fault phase it was sent in; `during` counts it
/// once. Phases are in time order (`during`, when written, after the fault phases).
public struct LoadPhase: Sendable, Equatable, Codable {
    /// What part of the run a phase is.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// Before the first fault began.
        case before
        /// While one fault window was open (named by the fault's label).
        case fault
        /// While no fault was in force, after one ended and before the next began.
        case between
        /// After the last fault ended.
        case after
        /// While any fault was in force; written when there were two or more fault windows.
        case during

        /// The names thresholds use for phases besides faults' labels.
        static let scopeNames: Set<String> = ["before", "during", "between", "after"]
    }

    /// `before`, `between`, `after`, `during`, or the fault's label (a second window with the
    /// same label is `label #2`).
    public var name: String
    public var kind: Kind
    /// The fault's label (fault phases only).
    public var fault: String?
    /// Seconds since the load started when the phase began and ended (clipped to the load;
    /// the first and last of `between`'s spans for `between`, of the faults' for `during`).
    public var fromSeconds: Double
    public var toSeconds: Double
    /// Seconds the phase lasted within the load (the sum of its spans).
    public var seconds: Double
    public var stats: LoadStats
    /// Open model: sends due in this phase that could not go out on time.
    public var dropped: Int

    public init(name: String, kind: Kind, fault: String?, fromSeconds: Double, toSeconds: Double, seconds: Double, stats: LoadStats, dropped: Int) {
        self.name = name
        self.kind = kind
        self.fault = fault
        self.fromSeconds = fromSeconds
        self.toSeconds = toSeconds
        self.seconds = seconds
        self.stats = stats
        self.dropped = dropped
    }

    enum CodingKeys: String, CodingKey {
        case name, kind, fault, fromSeconds = "from_s", toSeconds = "to_s", seconds = "seconds", stats, dropped
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = c.lenient(.name) ?? ""
        kind = c.lenient(.kind) ?? .fault
        fault = c.lenient(.fault)
        fromSeconds = c.lenient(.fromSeconds) ?? 0
        toSeconds = c.lenient(.toSeconds) ?? 0
        seconds = c.lenient(.seconds) ?? max(0, toSeconds - fromSeconds)
        stats = c.lenient(.stats) ?? LoadStats()
        dropped = c.lenient(.dropped) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(kind, forKey: .kind)
        try c.encodeIfPresent(fault, forKey: .fault)
        try c.encode(fromSeconds, forKey: .fromSeconds)
        try c.encode(toSeconds, forKey: .toSeconds)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(stats, forKey: .stats)
        try c.encode(dropped, forKey: .dropped)
    }
}

/// Request statistics of a load run, overall or for one request (times in milliseconds).
public struct LoadStats: Sendable, Equatable, Codable {
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
    /// `http_4xx`, `http_5xx`, `other`), in that order.
    public var errors: [Count]
    /// Every latency measured, losslessly; written by shards (`--shard`) so that their outputs
    /// merge exactly, nil otherwise.
    public var histogram: LatencyHistogram?

    /// A label with a count.
    public struct Count: Sendable, Equatable {
        public var label: String
        public var count: Int

        public init(label: String, count: Int) {
            self.label = label
            self.count = count
        }
    }

    /// Error classes that are not HTTP responses: the connection never gave a status code.
    public static let connectionErrorClasses: Set<String> = ["refused", "connect_timeout", "reset", "read_timeout", "tls", "dns", "other"]

    /// Nothing measured.
    public init(
        count: Int = 0, ok: Int = 0, failed: Int = 0, errorRate: Double = 0, minMs: Double = 0, avgMs: Double = 0, maxMs: Double = 0,
        p50Ms: Double = 0,
        p90Ms: Double = 0, p95Ms: Double = 0, p99Ms: Double = 0, p999Ms: Double = 0, rps: Double = 0, bytesReceived: Int = 0, bytesSent: Int = 0,
        bytesPerSecond: Double = 0, statusCodes: [Count] = [], errors: [Count] = [], histogram: LatencyHistogram? = nil
    ) {
        self.count = count
        self.ok = ok
        self.failed = failed
        self.errorRate = errorRate
        self.minMs = minMs
        self.avgMs = avgMs
        self.maxMs = maxMs
        self.p50Ms = p50Ms
        self.p90Ms = p90Ms
        self.p95Ms = p95Ms
        self.p99Ms = p99Ms
        self.p999Ms = p999Ms
        self.rps = rps
        self.bytesReceived = bytesReceived
        self.bytesSent = bytesSent
        self.bytesPerSecond = bytesPerSecond
        self.statusCodes = statusCodes
        self.errors = errors
        self.histogram = histogram
    }

    /// Reads stats from a load output's `overall` or one of its `requests`, leniently.
    /// - Throws: when `value` is not an object.
    public init(decoding value: Value) throws {
        self = try NodeDecoder(rejectsUnknownKeys: false).decode(LoadStats.self, from: value)
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

    enum CodingKeys: String, CodingKey {
        case count, ok, failed, errorRate = "error_rate", minMs = "min_ms", avgMs = "avg_ms", maxMs = "max_ms", p50Ms = "p50_ms", p90Ms = "p90_ms",
            p95Ms = "p95_ms", p99Ms = "p99_ms", p999Ms = "p999_ms", rps, bytesReceived = "bytes_received", bytesSent = "bytes_sent",
            bytesPerSecond = "bytes_per_s", statusCodes = "status_codes", errors, histogram
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        count = c.lenient(.count) ?? 0
        ok = c.lenient(.ok) ?? 0
        failed = c.lenient(.failed) ?? 0
        errorRate = c.lenient(.errorRate) ?? (count > 0 ? Double(failed) / Double(count) : 0)
        minMs = c.lenient(.minMs) ?? 0
        avgMs = c.lenient(.avgMs) ?? 0
        maxMs = c.lenient(.maxMs) ?? 0
        p50Ms = c.lenient(.p50Ms) ?? 0
        p90Ms = c.lenient(.p90Ms) ?? 0
        p95Ms = c.lenient(.p95Ms) ?? 0
        p99Ms = c.lenient(.p99Ms) ?? 0
        p999Ms = c.lenient(.p999Ms) ?? 0
        rps = c.lenient(.rps) ?? 0
        bytesReceived = c.lenient(.bytesReceived) ?? 0
        bytesSent = c.lenient(.bytesSent) ?? 0
        bytesPerSecond = c.lenient(.bytesPerSecond) ?? 0
        statusCodes = c.lenientObject(.statusCodes).map { Count(label: $0, count: $1 ?? 0) }
            .sorted { (Int($0.label) ?? Int.max, $0.label) < (Int($1.label) ?? Int.max, $1.label) }
        errors = c.lenientObject(.errors).map { Count(label: $0, count: $1 ?? 0) }
        histogram = c.lenient(.histogram)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(count, forKey: .count)
        try c.encode(ok, forKey: .ok)
        try c.encode(failed, forKey: .failed)
        try c.encode(errorRate, forKey: .errorRate)
        try c.encode(minMs, forKey: .minMs)
        try c.encode(avgMs, forKey: .avgMs)
        try c.encode(maxMs, forKey: .maxMs)
        try c.encode(p50Ms, forKey: .p50Ms)
        try c.encode(p90Ms, forKey: .p90Ms)
        try c.encode(p95Ms, forKey: .p95Ms)
        try c.encode(p99Ms, forKey: .p99Ms)
        try c.encode(p999Ms, forKey: .p999Ms)
        try c.encode(rps, forKey: .rps)
        try c.encode(bytesReceived, forKey: .bytesReceived)
        try c.encode(bytesSent, forKey: .bytesSent)
        try c.encode(bytesPerSecond, forKey: .bytesPerSecond)
        var codes = c.nestedContainer(keyedBy: AnyKey.self, forKey: .statusCodes)
        for code in statusCodes { try codes.encode(code.count, forKey: AnyKey(code.label)) }
        var errorClasses = c.nestedContainer(keyedBy: AnyKey.self, forKey: .errors)
        for error in errors { try errorClasses.encode(error.count, forKey: AnyKey(error.label)) }
        try c.encodeIfPresent(histogram, forKey: .histogram)
    }
}

/// One second of a load run's time series.
public struct LoadSecond: Sendable, Equatable, Codable {
    /// Seconds since the load started.
    public var second: Int
    public var at: Timestamp?
    public var count: Int
    public var errors: Int
    public var p50Ms: Double
    public var p99Ms: Double

    public init(second: Int, at: Timestamp?, count: Int, errors: Int, p50Ms: Double, p99Ms: Double) {
        self.second = second
        self.at = at
        self.count = count
        self.errors = errors
        self.p50Ms = p50Ms
        self.p99Ms = p99Ms
    }

    enum CodingKeys: String, CodingKey {
        case second, at, count, errors, p50Ms = "p50_ms", p99Ms = "p99_ms"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        second = c.lenient(.second) ?? 0
        at = c.lenient(.at)
        count = c.lenient(.count) ?? 0
        errors = c.lenient(.errors) ?? 0
        p50Ms = c.lenient(.p50Ms) ?? 0
        p99Ms = c.lenient(.p99Ms) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(second, forKey: .second)
        try c.encodeIfPresent(at, forKey: .at)
        try c.encode(count, forKey: .count)
        try c.encode(errors, forKey: .errors)
        try c.encode(p50Ms, forKey: .p50Ms)
        try c.encode(p99Ms, forKey: .p99Ms)
    }
}

/// A k6-style threshold the load was judged by, with what was measured.
public struct LoadThreshold: Sendable, Equatable, Codable {
    /// `overall` or a request's name.
    public var scope: String
    /// As written, e.g. `p(95)<200`.
    public var expression: String
    /// The stats key it judges, e.g. `p95_ms`.
    public var metric: String
    public var limit: Double?
    /// Nil when the scope measured nothing (a request that never ran).
    public var measured: Double?
    public var ok: Bool

    public init(scope: String, expression: String, metric: String, limit: Double?, measured: Double?, ok: Bool) {
        self.scope = scope
        self.expression = expression
        self.metric = metric
        self.limit = limit
        self.measured = measured
        self.ok = ok
    }

    /// The limit as the journal writes it: `200`, `0.01`.
    public var limitText: String? { limit.map { Self.written($0).description } }

    /// A whole limit is written as the integer the user wrote (`p(95)<200` → 200).
    private static func written(_ limit: Double) -> Value { limit.rounded() == limit && abs(limit) < 1e15 ? .int(Int(limit)) : .double(limit) }

    enum CodingKeys: String, CodingKey { case scope, expression, metric, limit, measured, ok }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        scope = c.lenient(.scope) ?? "overall"
        expression = c.lenient(.expression) ?? ""
        metric = c.lenient(.metric) ?? ""
        limit = c.lenient(.limit)
        measured = c.lenient(.measured)
        ok = c.lenient(.ok) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(scope, forKey: .scope)
        try c.encode(expression, forKey: .expression)
        try c.encode(metric, forKey: .metric)
        try c.encodeIfPresent(limit.map(Self.written), forKey: .limit)
        try c.encodeOrNull(measured, forKey: .measured)
        try c.encode(ok, forKey: .ok)
    }
}

extension KeyedDecodingContainer {
    /// The value at `key`; nil when it is missing, null or not a `T` (contract outputs are read leniently).
    fileprivate func lenient<T: Decodable>(_ key: Key) -> T? {
        (try? decodeIfPresent(T.self, forKey: key)) ?? nil
    }

    /// The list at `key`, its unreadable elements left out; nil when there is no list.
    fileprivate func lenientList<T: Decodable>(_ key: Key) -> [T]? {
        guard let values: [Value] = lenient(key) else { return nil }
        return values.compactMap { try? NodeDecoder(rejectsUnknownKeys: false).decode(T.self, from: $0) }
    }

    /// The members of the object at `key`, in order, each value read leniently; empty when there is no object.
    fileprivate func lenientObject<T: Decodable>(_ key: Key) -> [(String, T?)] {
        guard let members = (try? nestedContainer(keyedBy: AnyKey.self, forKey: key)) else { return [] }
        return members.allKeys.map { ($0.stringValue, members.lenient($0)) }
    }
}

extension KeyedEncodingContainer {
    /// Writes `value`, or null when it is nil (where a key is always present).
    fileprivate mutating func encodeOrNull<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
}
