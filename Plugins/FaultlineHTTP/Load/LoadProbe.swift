import FaultlineKit
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// `http.load`: a load generator that runs as a probe and reports what JMeter and k6 report.
///
/// Two models: closed (`users` loop over the requests, started over `ramp_up`, for a `duration`
/// or a number of `iterations`, with optional `think_time` — JMeter's thread group) and open
/// (`rate` iterations a second for `duration`, whatever the server does — k6's
/// constant-arrival-rate, wrk2's model). In the open model latency is measured from the
/// scheduled start, so a stalled server shows in the tail, and an arrival that finds every
/// connection busy is counted as `dropped`.
///
/// Each event loop runs its share of the users with their connections on that loop and records
/// into its own HdrHistograms; the probe merges them at the end (and the time series every
/// second), so memory stays flat however many requests run.
public struct LoadProbe: Probe, ToleranceProviding {
    public static let type = "http.load"
    public static let summary = "Drive HTTP load (closed: users/ramp-up; open: fixed rate); output latency percentiles, throughput, errors"
    public static let argumentHelp = [
        "url": "the URL to load (or give requests)",
        "name": "the request's name in the output (single-URL form)",
        "method": "HTTP method (single-URL form)",
        "headers": "request headers (single-URL form)",
        "body": "request body: a string as written, anything else as JSON (single-URL form)",
        "expected_status": "statuses that count as success (single-URL form)",
        "requests": "named requests each user runs in sequence: [{name, url, method, headers, body, expected_status}]",
        "users": "closed model: concurrent users; open model: most connections (default: a second's worth of rate, 10…1000)",
        "ramp_up": "closed model: seconds over which users start, evenly",
        "duration": "seconds the load runs",
        "iterations": "closed model: times each user runs the requests",
        "think_time": "closed model: pause after each request, seconds or [min, max]",
        "rate": "open model: iterations started per second (with stages, the rate they start from)",
        "stages": "ramping load, k6's stages: [{duration, target}], users (closed) or rate (open) moving linearly to each target",
        "request_timeout": "seconds, or [connect, read], for each request",
        "verify_tls": "check servers' certificates",
        "graceful_stop": "seconds requests in flight at the end may take before they are abandoned (counted in abandoned)",
        "records": "write every request (and dropped send) to a CSV beside the journal, the records the stats are computed from",
    ]

    /// One request of the sequence.
    public struct Request: Codable, Sendable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["expected_status": ExpectedStatus.range]
        public var name: String?
        public var url: String
        public var method: String
        public var headers: [String: String]
        public var body: Value?
        public var expected_status: ExpectedStatus

        enum CodingKeys: String, CodingKey { case name, url, method, headers, body, expected_status }

        public init(
            name: String? = nil, url: String, method: String = "GET", headers: [String: String] = [:], body: Value? = nil,
            expected_status: ExpectedStatus = .success
        ) {
            self.name = name
            self.url = url
            self.method = method
            self.headers = headers
            self.body = body
            self.expected_status = expected_status
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decodeIfPresent(String.self, forKey: .name)
            url = try c.decode(String.self, forKey: .url)
            method = try c.decodeIfPresent(String.self, forKey: .method)?.uppercased() ?? "GET"
            headers = try HeaderFields.decode(c, forKey: .headers)
            body = try c.decodeIfPresent(Value.self, forKey: .body)
            expected_status = try c.decodeIfPresent(ExpectedStatus.self, forKey: .expected_status) ?? .success
        }
    }

    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = [
            "expected_status": ExpectedStatus.range, "users": .count(100_000), "ramp_up": .seconds, "duration": .seconds,
            "iterations": .count(1_000_000_000), "think_time": .seconds, "rate": NumberRange(0...1_000_000, unit: "iterations a second"),
            "request_timeout": .seconds, "graceful_stop": .seconds,
        ]
        public var url: String?
        public var name: String?
        public var method: String
        public var headers: [String: String]
        public var body: Value?
        public var expected_status: ExpectedStatus
        public var requests: [Request]?
        public var users: Int?
        public var ramp_up: Double
        public var duration: Double?
        public var iterations: Int?
        public var think_time: ThinkTime
        public var rate: Double?
        public var stages: [Stage]?
        public var request_timeout: RequestTimeout
        public var verify_tls: Bool
        public var graceful_stop: Double
        public var records: Bool

        enum CodingKeys: String, CodingKey {
            case url, name, method, headers, body, expected_status, requests, users, ramp_up, duration, iterations, think_time, rate, stages,
                request_timeout, verify_tls, graceful_stop, records
        }

        public init(
            url: String? = nil, requests: [Request]? = nil, users: Int? = nil, ramp_up: Double = 0, duration: Double? = nil,
            iterations: Int? = nil, think_time: ThinkTime = .fixed(0), rate: Double? = nil, stages: [Stage]? = nil
        ) {
            self.url = url
            name = nil
            method = "GET"
            headers = [:]
            body = nil
            expected_status = .success
            self.requests = requests
            self.users = users
            self.ramp_up = ramp_up
            self.duration = duration
            self.iterations = iterations
            self.think_time = think_time
            self.rate = rate
            self.stages = stages
            request_timeout = .standard
            verify_tls = true
            graceful_stop = 5
            records = false
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            url = try c.decodeIfPresent(String.self, forKey: .url)
            name = try c.decodeIfPresent(String.self, forKey: .name)
            method = try c.decodeIfPresent(String.self, forKey: .method)?.uppercased() ?? "GET"
            headers = try HeaderFields.decode(c, forKey: .headers)
            body = try c.decodeIfPresent(Value.self, forKey: .body)
            expected_status = try c.decodeIfPresent(ExpectedStatus.self, forKey: .expected_status) ?? .success
            requests = try c.decodeIfPresent([Request].self, forKey: .requests)
            users = try c.decodeIfPresent(Int.self, forKey: .users)
            ramp_up = try c.decodeIfPresent(Double.self, forKey: .ramp_up) ?? 0
            duration = try c.decodeIfPresent(Double.self, forKey: .duration)
            iterations = try c.decodeIfPresent(Int.self, forKey: .iterations)
            think_time = try c.decodeIfPresent(ThinkTime.self, forKey: .think_time) ?? .fixed(0)
            rate = try c.decodeIfPresent(Double.self, forKey: .rate)
            stages = try c.decodeIfPresent([Stage].self, forKey: .stages)
            request_timeout = try c.decodeIfPresent(RequestTimeout.self, forKey: .request_timeout) ?? .standard
            verify_tls = try c.decodeIfPresent(Bool.self, forKey: .verify_tls) ?? true
            graceful_stop = try c.decodeIfPresent(Double.self, forKey: .graceful_stop) ?? 5
            records = try c.decodeIfPresent(Bool.self, forKey: .records) ?? false
        }

        /// The requests in order, the single-URL form included, each with its name.
        var sequence: [Request] {
            if let requests {
                return requests.enumerated().map { index, request in
                    var named = request
                    if named.name == nil { named.name = requests.count == 1 ? "request" : "request \(index + 1)" }
                    return named
                }
            }
            guard let url else { return [] }
            return [Request(name: name ?? "request", url: url, method: method, headers: headers, body: body, expected_status: expected_status)]
        }

        /// The ramp the stages describe, from `users` (closed) or `rate` (open).
        var ramp: Ramp? {
            stages.map { Ramp(start: rate ?? Double(users ?? 0), stages: $0) }
        }

        /// The load's length: `duration`, or the stages' total.
        var effectiveDuration: Double? { ramp?.total ?? duration }

        /// Users in the closed model (with stages, the most); the connection limit in the open model.
        var effectiveUsers: Int {
            if rate != nil, let users { return users }
            if let rate { return min(1000, max(10, Int(max(rate, ramp?.peak ?? 0).rounded(.up)))) }
            if let ramp { return max(1, Int(ramp.peak.rounded(.down))) }
            return users ?? 1
        }
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        let singleKeys = arguments.name != nil || arguments.body != nil || !arguments.headers.isEmpty || arguments.method != "GET"
        switch (arguments.url, arguments.requests) {
        case (nil, nil):
            throw ArgumentError(nil, "http.load needs a url or a list of requests", hint: "add url: http://… or requests: [{name, url}]")
        case (_?, _?):
            throw ArgumentError("requests", "give either url or requests, not both")
        case (nil, let requests?):
            if singleKeys { throw ArgumentError("requests", "method, headers, body and name belong inside each request when requests is given") }
            if requests.isEmpty { throw ArgumentError("requests", "requests is empty", hint: "list at least one {name, url}") }
        default:
            break
        }
        var seen: Set<String> = []
        for (index, request) in arguments.sequence.enumerated() {
            let key = arguments.requests == nil ? "url" : "requests.\(index)"
            do {
                _ = try HTTPTarget(parsing: request.url)
            } catch {
                throw ArgumentError(arguments.requests == nil ? "url" : "\(key).url", error.description)
            }
            try RequestBuilder.validateMethod(request.method, key: arguments.requests == nil ? "method" : "\(key).method")
            let name = request.name ?? ""
            if name.isEmpty || name == "overall" || LoadResult.isPhaseScope(name) {
                throw ArgumentError(
                    "\(key).name", "\"\(name)\" cannot name a request",
                    hint: "\"overall\", \"before\", \"during\", \"between\" and \"after\" are scopes of thresholds")
            }
            if !seen.insert(name).inserted {
                throw ArgumentError("\(key).name", "two requests are named \"\(name)\"; names must be unique")
            }
        }
        if let stages = arguments.stages {
            try validate(stages: stages, arguments)
        } else if let users = arguments.users, users < 1 {
            throw ArgumentError("users", "users must be 1 or more")
        }
        if let duration = arguments.duration, !(duration > 0) { throw ArgumentError("duration", "duration must be more than 0 seconds") }
        if arguments.graceful_stop < 0 { throw ArgumentError("graceful_stop", "graceful_stop must be 0 or more seconds") }
        if let rate = arguments.rate {
            guard rate > 0 || (rate == 0 && arguments.stages != nil), rate.isFinite, rate <= 1_000_000 else {
                throw ArgumentError("rate", "rate must be more than 0 and at most 1000000 requests a second (0 with stages: ramp up from nothing)")
            }
            guard arguments.duration != nil || arguments.stages != nil else {
                throw ArgumentError("duration", "the open model (rate) needs a duration", hint: "add duration: seconds")
            }
            if arguments.iterations != nil {
                throw ArgumentError("iterations", "iterations belong to the closed model; with rate, the duration sets how many")
            }
            if arguments.ramp_up != 0 { throw ArgumentError("ramp_up", "ramp_up belongs to the closed model (users), not to rate") }
            if arguments.think_time != .fixed(0) { throw ArgumentError("think_time", "think_time belongs to the closed model (users), not to rate") }
        } else {
            if arguments.duration == nil, arguments.iterations == nil, arguments.stages == nil {
                throw ArgumentError(
                    nil, "http.load needs a duration or iterations", hint: "add duration: seconds, iterations: N per user, or rate and duration")
            }
            if let iterations = arguments.iterations, iterations < 1 { throw ArgumentError("iterations", "iterations must be 1 or more") }
            if arguments.ramp_up < 0 { throw ArgumentError("ramp_up", "ramp_up must be 0 or more seconds") }
            if let duration = arguments.duration, arguments.ramp_up > duration {
                throw ArgumentError("ramp_up", "ramp_up (\(arguments.ramp_up) s) is longer than the duration (\(duration) s)")
            }
        }
    }

    /// Stages replace `duration` (and `ramp_up`, `iterations`): each has a length and a target in range.
    private static func validate(stages: [Stage], _ arguments: Arguments) throws {
        let open = arguments.rate != nil
        guard !stages.isEmpty else { throw ArgumentError("stages", "stages is empty", hint: "list at least one {duration, target}") }
        for key in ["duration", "ramp_up", "iterations"] {
            let given =
                switch key {
                case "duration": arguments.duration != nil
                case "ramp_up": arguments.ramp_up != 0
                default: arguments.iterations != nil
                }
            if given {
                throw ArgumentError(
                    key, "\(key) cannot be given with stages: the stages set how the load runs and for how long", hint: "remove \(key)")
            }
        }
        if !open, let users = arguments.users, users < 0 || users > 100_000 {
            throw ArgumentError("users", "with stages, users is where the ramp starts: 0 to 100000")
        }
        for (index, stage) in stages.enumerated() {
            guard stage.duration > 0, stage.duration.isFinite, stage.duration <= 86_400 else {
                throw ArgumentError("stages.\(index).duration", "a stage lasts more than 0 and at most 86400 seconds, found \(stage.duration)")
            }
            if open {
                guard stage.target >= 0, stage.target <= 1_000_000 else {
                    throw ArgumentError("stages.\(index).target", "a rate target is 0 to 1000000 iterations a second, found \(stage.target)")
                }
            } else {
                guard stage.target >= 0, stage.target <= 100_000, stage.target.rounded() == stage.target else {
                    throw ArgumentError(
                        "stages.\(index).target", "a users target is a whole number from 0 to 100000, found \(stage.target)",
                        hint: "for an arrival rate, give rate: (the rate to start from) beside stages")
                }
            }
        }
        if (arguments.ramp?.peak ?? 0) <= 0 {
            throw ArgumentError("stages", "every target is 0, so the load would send nothing", hint: "give a stage a target above 0")
        }
    }

    public static func tolerance(from node: SourceNode, path: DocumentPath) throws -> (any ToleranceCheck)? {
        try ThresholdTolerance.parse(node, path: path)
    }

    public func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        try await Self.run(arguments, context: context)
    }

    /// Runs the load and returns the shared load output.
    /// - Throws: ``ActivityFailure`` when a host does not resolve, and when interrupted (with the
    ///   partial output, so the journal keeps what was measured).
    /// - Parameters:
    ///   - group: the event loops for a load that has a TLS endpoint.
    ///   - plainLoops: the event loops for a load whose endpoints are all plain HTTP (nil: `group`).
    public static func run(
        _ arguments: Arguments, context: ActivityContext, group: MultiThreadedEventLoopGroup = .singleton, plainLoops: LoadLoops? = .shared
    ) async throws -> Value {
        var plan = try await makePlan(arguments)
        plan.shard = context.loadShard
        let loops: [any EventLoop] =
            if let plainLoops, plan.endpoints.allSatisfy({ $0.tls == nil }) { plainLoops.loops } else { Array(group.makeIterator()) }
        let workerCount = max(1, min(loops.count, plan.localUsers))
        var random = context.makeRandom()
        let wallStart = Date()
        let start = NIODeadline.now()
        let started = Timestamp(wallStart)
        plan.faults = FaultClock(context: context, origin: started.microsecondsSinceEpoch ?? 0)
        plan.keepsRecords = arguments.records
        let ready = plan
        var created: [NIOLoopBound<LoadWorker>] = []
        for index in 0..<workerCount {
            let loop = loops[index]
            let seed = random.next()
            created.append(
                try await loop.submit {
                    NIOLoopBound(
                        LoadWorker(loop: loop, plan: ready, index: index, workerCount: workerCount, start: start, seed: seed), eventLoop: loop)
                }.get())
        }
        let workers = created
        let done = workers.map { worker in worker.eventLoop.flatSubmit { worker.value.done } }
        for worker in workers { worker.eventLoop.execute { worker.value.begin() } }
        let shardText = plan.shard.map { ", shard \($0)" } ?? ""
        context.logger.debug(
            "http.load started: \(plan.steps.count) request(s), \(plan.localUsers) user(s) on \(workerCount) event loop(s)\(shardText)")
        // A live metrics endpoint reads the loops' recorders when it is scraped, never per request.
        let names = plan.steps.map(\.name)
        let readProgress: @Sendable () async -> LoadProgress = {
            var total = LoadProgress(requests: names)
            for worker in workers {
                if let counted = try? await worker.eventLoop.submit({ worker.value.recorder.progress(names: names) }).get() { total.add(counted) }
            }
            return total
        }
        let monitor = context.resources[LoadMonitorKey.self]
        let monitored = monitor?.loadStarted(activity: context.activityName, requests: names, progress: readProgress)

        let (interrupted, ticked) = await withTaskCancellationHandler {
            await withTaskGroup(of: Timeline?.self) { group -> (Bool, Timeline) in
                group.addTask {
                    for future in done { try? await future.get() }
                    return nil
                }
                // Every second, fold the finished seconds of every loop into the time series.
                group.addTask {
                    var timeline = Timeline(wallStart: wallStart)
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        let second = Int((NIODeadline.now() - start).nanoseconds / 1_000_000_000)
                        for worker in workers {
                            timeline.add((try? await worker.eventLoop.submit { worker.value.recorder.drainSeconds(before: second) }.get()) ?? [])
                        }
                        timeline.close(before: second)
                    }
                    return timeline
                }
                _ = await group.next()
                group.cancelAll()
                var timeline = Timeline(wallStart: wallStart)
                while let finished = await group.next() {
                    if let finished { timeline = finished }
                }
                return (Task.isCancelled, timeline)
            }
        } onCancel: {
            for worker in workers { worker.eventLoop.execute { worker.value.terminate() } }
        }
        var timeline = ticked
        if let monitor, let monitored { monitor.loadEnded(monitored, final: await readProgress()) }

        let elapsed = NIODeadline.now() - start
        let ended = Date()
        var snapshots: [LoadSnapshot] = []
        for worker in workers {
            snapshots.append(try await worker.eventLoop.submit { worker.value.recorder.snapshot() }.get())
        }
        for snapshot in snapshots { timeline.add(snapshot.seconds) }
        timeline.close(before: .max)
        let windows = plan.faults.windows()
        var split = PhaseSplit(windows: windows, end: Int64((Stats.seconds(elapsed) * 1e6).rounded()))
        var result = Self.result(
            arguments: arguments, plan: plan, snapshots: snapshots, timeline: timeline, started: started, ended: ended,
            elapsedSeconds: Stats.seconds(elapsed), split: &split, scheduledStart: context.scheduledStart)
        if arguments.records {
            let names = split.phases.map(\.name)
            let loops = snapshots.map { snapshot in
                (snapshot.records, snapshot.segments.map { RecordsFile.phaseField(split.phases(of: $0).map { names[$0] }) })
            }
            result.recordsFile = try await RecordsFile.write(loops, plan: plan, directory: context.runDirectory, activity: context.activityName)
        }
        let output = result.value
        if interrupted {
            throw ActivityFailure(
                "http.load was interrupted after \(DurationFormat.seconds(Stats.seconds(elapsed))); the output holds what was measured until then",
                output: output)
        }
        return output
    }

    /// Resolves hosts, builds TLS contexts and prepares every request once.
    static func makePlan(_ arguments: Arguments) async throws -> LoadPlan {
        var endpoints: [LoadPlan.Endpoint] = []
        var steps: [LoadPlan.Step] = []
        for request in arguments.sequence {
            let prepared: PreparedRequest
            do {
                prepared = try RequestBuilder.build(
                    url: request.url, method: request.method, headers: request.headers.sorted { $0.key < $1.key }, arguments: nil, body: request.body)
            } catch {
                throw ActivityFailure("\(error)")
            }
            let target = prepared.target
            let endpoint: Int
            if let existing = endpoints.firstIndex(where: { $0.target.authority == target.authority && $0.target.isTLS == target.isTLS }) {
                endpoint = existing
            } else {
                let address: SocketAddress
                do {
                    address = try await NIOThreadPool.singleton.runIfActive {
                        try SocketAddress.makeAddressResolvingHost(target.host, port: target.port)
                    }
                } catch {
                    throw ActivityFailure("DNS failure: cannot resolve \(target.host) for \(request.name ?? "request") (\(error))")
                }
                let tls: NIOSSLContext?
                do {
                    tls = target.isTLS ? try HTTPConnector.tlsContext(verify: arguments.verify_tls) : nil
                } catch {
                    throw ActivityFailure("TLS failure: cannot set up TLS: \(error)")
                }
                endpoints.append(LoadPlan.Endpoint(target: target, address: address, tls: tls))
                endpoint = endpoints.count - 1
            }
            steps.append(LoadPlan.Step(name: request.name ?? "request", request: prepared, expected: request.expected_status, endpoint: endpoint))
        }
        let model: LoadPlan.Model =
            if let rate = arguments.rate {
                .open(rate: rate, duration: arguments.effectiveDuration ?? 0, maxUsers: arguments.effectiveUsers)
            } else {
                .closed(
                    users: arguments.effectiveUsers, rampUp: arguments.ramp_up, duration: arguments.effectiveDuration,
                    iterations: arguments.iterations,
                    think: arguments.think_time)
            }
        return LoadPlan(
            endpoints: endpoints, steps: steps, model: model, connectTimeout: Seconds.amount(arguments.request_timeout.connect),
            readTimeout: Seconds.amount(arguments.request_timeout.read), gracefulStop: Seconds.amount(arguments.graceful_stop), ramp: arguments.ramp)
    }

    /// The shared load output (``LoadResult``; see the README's "HTTP probes and load testing"),
    /// its phases split by `split`.
    static func result(
        arguments: Arguments, plan: LoadPlan, snapshots: [LoadSnapshot], timeline: Timeline, started: Timestamp, ended: Date, elapsedSeconds: Double,
        split: inout PhaseSplit, scheduledStart: Timestamp? = nil
    ) -> LoadResult {
        // A shard writes every latency, so that the shards' outputs merge exactly.
        let histograms = plan.shard != nil
        var perRequest = Array(repeating: RequestStats(), count: plan.steps.count)
        var segments: [Segment: (stats: [RequestStats], dropped: Int)] = [:]
        for snapshot in snapshots {
            for (number, segment) in snapshot.segments.enumerated() {
                var merged = segments[segment] ?? (Array(repeating: RequestStats(), count: plan.steps.count), 0)
                for index in perRequest.indices {
                    perRequest[index].add(snapshot.stats[number][index])
                    merged.stats[index].add(snapshot.stats[number][index])
                }
                merged.dropped += snapshot.drops[number]
                segments[segment] = merged
            }
        }
        var overall = RequestStats()
        for stats in perRequest { overall.add(stats) }
        return LoadResult(
            model: arguments.rate != nil ? .open : .closed, users: plan.maxUsers, rampUpSeconds: arguments.ramp_up,
            durationSeconds: arguments.effectiveDuration,
            iterations: arguments.iterations, rate: arguments.rate, thinkTimeSeconds: arguments.think_time.mean, started: started,
            ended: Timestamp(ended), elapsedSeconds: RequestStats.rounded(elapsedSeconds, places: 3),
            dropped: snapshots.reduce(0) { $0 + $1.drops.reduce(0, +) }, overall: overall.stats(elapsedSeconds: elapsedSeconds),
            requests: plan.steps.enumerated().map { index, step in
                LoadResult.NamedStats(name: step.name, stats: perRequest[index].stats(elapsedSeconds: elapsedSeconds, histogram: histograms))
            },
            timeline: timeline.entries(elapsedSeconds: elapsedSeconds), phases: split.loadPhases(segments, histograms: histograms),
            stages: (arguments.stages ?? []).map { LoadStage(durationSeconds: $0.duration, target: $0.target) },
            shard: plan.shard.map { shard in
                LoadShardInfo(
                    index: shard.index, count: shard.count, users: plan.localUsers,
                    arrivals: arguments.rate != nil ? shard.share(of: plan.arrivals) : nil, startAt: scheduledStart)
            }, abandoned: snapshots.reduce(0) { $0 + $1.abandoned })
    }
}
