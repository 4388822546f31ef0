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
        "rate": "open model: iterations started per second",
        "request_timeout": "seconds, or [connect, read], for each request",
        "verify_tls": "check servers' certificates",
        "graceful_stop": "seconds requests in flight at the end may take before they are abandoned",
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

        public init(name: String? = nil, url: String, method: String = "GET", headers: [String: String] = [:], body: Value? = nil, expected_status: ExpectedStatus = .success) {
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
            "iterations": .count(1_000_000_000), "think_time": .seconds, "rate": NumberRange(0.001...1_000_000, unit: "iterations a second"),
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
        public var request_timeout: RequestTimeout
        public var verify_tls: Bool
        public var graceful_stop: Double

        enum CodingKeys: String, CodingKey {
            case url, name, method, headers, body, expected_status, requests, users, ramp_up, duration, iterations, think_time, rate,
                request_timeout, verify_tls, graceful_stop
        }

        public init(
            url: String? = nil, requests: [Request]? = nil, users: Int? = nil, ramp_up: Double = 0, duration: Double? = nil,
            iterations: Int? = nil, think_time: ThinkTime = .fixed(0), rate: Double? = nil
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
            request_timeout = .standard
            verify_tls = true
            graceful_stop = 5
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
            request_timeout = try c.decodeIfPresent(RequestTimeout.self, forKey: .request_timeout) ?? .standard
            verify_tls = try c.decodeIfPresent(Bool.self, forKey: .verify_tls) ?? true
            graceful_stop = try c.decodeIfPresent(Double.self, forKey: .graceful_stop) ?? 5
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

        /// Users in the closed model; the connection limit in the open model.
        var effectiveUsers: Int {
            if let users { return users }
            if let rate { return min(1000, max(10, Int(rate.rounded(.up)))) }
            return 1
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
            if name.isEmpty || name == "overall" {
                throw ArgumentError("\(key).name", "\"\(name)\" cannot name a request", hint: "\"overall\" is the whole load's scope in thresholds")
            }
            if !seen.insert(name).inserted {
                throw ArgumentError("\(key).name", "two requests are named \"\(name)\"; names must be unique")
            }
        }
        if let users = arguments.users, users < 1 { throw ArgumentError("users", "users must be 1 or more") }
        if let duration = arguments.duration, !(duration > 0) { throw ArgumentError("duration", "duration must be more than 0 seconds") }
        if arguments.graceful_stop < 0 { throw ArgumentError("graceful_stop", "graceful_stop must be 0 or more seconds") }
        if let rate = arguments.rate {
            guard rate > 0, rate.isFinite else { throw ArgumentError("rate", "rate must be more than 0 requests a second") }
            guard arguments.duration != nil else { throw ArgumentError("duration", "the open model (rate) needs a duration", hint: "add duration: seconds") }
            if arguments.iterations != nil { throw ArgumentError("iterations", "iterations belong to the closed model; with rate, the duration sets how many") }
            if arguments.ramp_up != 0 { throw ArgumentError("ramp_up", "ramp_up belongs to the closed model (users), not to rate") }
            if arguments.think_time != .fixed(0) { throw ArgumentError("think_time", "think_time belongs to the closed model (users), not to rate") }
        } else {
            if arguments.duration == nil, arguments.iterations == nil {
                throw ArgumentError(nil, "http.load needs a duration or iterations", hint: "add duration: seconds, iterations: N per user, or rate and duration")
            }
            if let iterations = arguments.iterations, iterations < 1 { throw ArgumentError("iterations", "iterations must be 1 or more") }
            if arguments.ramp_up < 0 { throw ArgumentError("ramp_up", "ramp_up must be 0 or more seconds") }
            if let duration = arguments.duration, arguments.ramp_up > duration {
                throw ArgumentError("ramp_up", "ramp_up (\(arguments.ramp_up) s) is longer than the duration (\(duration) s)")
            }
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
    public static func run(_ arguments: Arguments, context: ActivityContext, group: MultiThreadedEventLoopGroup = .singleton) async throws -> Value {
        let plan = try await makePlan(arguments)
        let loops = Array(group.makeIterator())
        let workerCount = max(1, min(loops.count, plan.maxUsers))
        var random = context.makeRandom()
        let wallStart = Date()
        let start = NIODeadline.now()
        var created: [NIOLoopBound<LoadWorker>] = []
        for index in 0..<workerCount {
            let loop = loops[index]
            let seed = random.next()
            created.append(
                try await loop.submit {
                    NIOLoopBound(LoadWorker(loop: loop, plan: plan, index: index, workerCount: workerCount, start: start, seed: seed), eventLoop: loop)
                }.get())
        }
        let workers = created
        let done = workers.map { worker in worker.eventLoop.flatSubmit { worker.value.done } }
        for worker in workers { worker.eventLoop.execute { worker.value.begin() } }
        context.logger.debug("http.load started: \(plan.steps.count) request(s), \(plan.maxUsers) user(s) on \(workerCount) event loop(s)")

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

        let elapsed = NIODeadline.now() - start
        let ended = Date()
        var snapshots: [LoadSnapshot] = []
        for worker in workers {
            snapshots.append(try await worker.eventLoop.submit { worker.value.recorder.snapshot() }.get())
        }
        for snapshot in snapshots { timeline.add(snapshot.seconds) }
        timeline.close(before: .max)
        let output = Self.result(
            arguments: arguments, plan: plan, snapshots: snapshots, timeline: timeline, started: wallStart, ended: ended,
            elapsedSeconds: Stats.seconds(elapsed)
        ).value
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
                .open(rate: rate, duration: arguments.duration ?? 0, maxUsers: arguments.effectiveUsers)
            } else {
                .closed(
                    users: arguments.effectiveUsers, rampUp: arguments.ramp_up, duration: arguments.duration, iterations: arguments.iterations,
                    think: arguments.think_time)
            }
        return LoadPlan(
            endpoints: endpoints, steps: steps, model: model, connectTimeout: Seconds.amount(arguments.request_timeout.connect),
            readTimeout: Seconds.amount(arguments.request_timeout.read), gracefulStop: Seconds.amount(arguments.graceful_stop))
    }

    /// The shared load output (``LoadResult``; see the README's "HTTP probes and load testing").
    static func result(
        arguments: Arguments, plan: LoadPlan, snapshots: [LoadSnapshot], timeline: Timeline, started: Date, ended: Date, elapsedSeconds: Double
    ) -> LoadResult {
        var perRequest = Array(repeating: RequestStats(), count: plan.steps.count)
        for snapshot in snapshots {
            for index in perRequest.indices { perRequest[index].add(snapshot.requests[index]) }
        }
        var overall = RequestStats()
        for stats in perRequest { overall.add(stats) }
        return LoadResult(
            model: arguments.rate != nil ? .open : .closed, users: plan.maxUsers, rampUpSeconds: arguments.ramp_up, durationSeconds: arguments.duration,
            iterations: arguments.iterations, rate: arguments.rate, thinkTimeSeconds: arguments.think_time.mean, started: Timestamp(started),
            ended: Timestamp(ended), elapsedSeconds: RequestStats.rounded(elapsedSeconds, places: 3), dropped: snapshots.reduce(0) { $0 + $1.dropped },
            overall: overall.stats(elapsedSeconds: elapsedSeconds),
            requests: plan.steps.enumerated().map { index, step in
                LoadResult.NamedStats(name: step.name, stats: perRequest[index].stats(elapsedSeconds: elapsedSeconds))
            },
            timeline: timeline.entries(elapsedSeconds: elapsedSeconds))
    }
}
