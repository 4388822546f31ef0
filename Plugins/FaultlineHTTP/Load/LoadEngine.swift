import FaultlineKit
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A load, resolved and ready to run: what every event loop shares.
struct LoadPlan: Sendable {
    /// Where requests go: one per distinct scheme, host and port, resolved once.
    struct Endpoint: Sendable {
        var target: HTTPTarget
        var address: SocketAddress
        var tls: NIOSSLContext?
    }

    /// One named request of the sequence each user runs.
    struct Step: Sendable {
        var name: String
        var request: PreparedRequest
        var expected: ExpectedStatus
        var endpoint: Int
    }

    enum Model: Sendable {
        /// JMeter's thread group: `users` loop over the steps, started evenly over `rampUp`.
        case closed(users: Int, rampUp: Double, duration: Double?, iterations: Int?, think: ThinkTime)
        /// Constant arrival rate: an iteration starts every 1/`rate` s whatever the server does,
        /// on one of at most `maxUsers` connections; when none is free, the start is dropped.
        case open(rate: Double, duration: Double, maxUsers: Int)
    }

    var endpoints: [Endpoint]
    var steps: [Step]
    var model: Model
    var connectTimeout: TimeAmount
    var readTimeout: TimeAmount
    /// How long requests in flight at the end may take before they are abandoned.
    var gracefulStop: TimeAmount
    /// With stages: the users (closed) or the arrival rate (open) over time.
    var ramp: Ramp? = nil
    /// The run's fault windows, by which the measurements are split into phases.
    var faults = FaultClock(context: nil, origin: 0)
    /// Whether every exchange is kept for the records file.
    var keepsRecords = false
    /// The shard of the load this runner sends (`--shard I/N`); nil: all of it.
    var shard: LoadShard? = nil

    /// The most connections the load opens.
    var maxUsers: Int {
        switch model {
        case .closed(let users, _, _, _, _): users
        case .open(_, _, let maxUsers): maxUsers
        }
    }

    /// The most connections this runner opens: its shard's share (at least one in the open
    /// model, which needs a connection for its arrivals).
    var localUsers: Int {
        guard let shard else { return maxUsers }
        if case .open = model { return max(1, shard.share(of: maxUsers)) }
        return shard.share(of: maxUsers)
    }

    /// The users (closed model) one event loop of this runner runs, by their number in the whole
    /// load: the shard's (every `count`-th user), dealt round-robin to its `workers` loops.
    func userNumbers(of total: Int, worker: Int, workers: Int) -> [Int] {
        let mine = Array(stride(from: shard?.index ?? 0, to: total, by: shard?.count ?? 1))
        return stride(from: worker, to: mine.count, by: workers).map { mine[$0] }
    }

    /// Open model: the first arrival (by number in the whole load) one event loop of this runner
    /// starts, and the step to its next: the shard's arrivals (every `count`-th), round-robin to its loops.
    func arrivalNumbers(worker: Int, workers: Int) -> (first: Int, step: Int) {
        let count = shard?.count ?? 1
        return ((shard?.index ?? 0) + count * worker, count * workers)
    }

    /// Open model: the iterations the whole load starts.
    var arrivals: Int {
        guard case .open(let rate, let duration, _) = model else { return 0 }
        return ramp?.arrivals ?? Int((rate * duration).rounded())
    }
}

/// Pause between one user's requests: fixed, or uniform between two bounds (JMeter's timers).
public enum ThinkTime: Codable, Sendable, Equatable {
    case fixed(Double)
    case uniform(Double, Double)

    public init(from decoder: any Decoder) throws {
        let value = try Value(from: decoder)
        try decoder.checkRange(value.numberValue.map { [$0] } ?? value.arrayValue?.compactMap(\.numberValue) ?? [])
        if let seconds = value.numberValue, seconds >= 0 {
            self = .fixed(seconds)
        } else if let bounds = value.arrayValue?.compactMap(\.numberValue), bounds.count == 2, value.arrayValue?.count == 2, bounds[0] >= 0,
            bounds[0] <= bounds[1]
        {
            self = .uniform(bounds[0], bounds[1])
        } else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "think_time must be seconds (0 or more) or [min, max], found \(value)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .fixed(let s): try container.encode(s)
        case .uniform(let lo, let hi): try container.encode([lo, hi])
        }
    }

    /// The mean pause, for the output.
    var mean: Double {
        switch self {
        case .fixed(let s): s
        case .uniform(let lo, let hi): (lo + hi) / 2
        }
    }

    func next(_ random: inout SeededRandom) -> Double {
        switch self {
        case .fixed(let s): s
        case .uniform(let lo, let hi): lo + (hi - lo) * random.nextUnit()
        }
    }
}

/// The users of one event loop, their scheduler and their measurements. Confined to the loop:
/// every exchange, timer and record runs there without locks or thread hops.
final class LoadWorker {
    let loop: any EventLoop
    let plan: LoadPlan
    let recorder: LoadRecorder
    let start: NIODeadline
    private let index: Int
    private let workerCount: Int
    private var random: SeededRandom
    private let finished: EventLoopPromise<Void>

    private var users: [LoadUser] = []
    /// Open model: connected users waiting for the next arrival.
    private var idle: [LoadUser] = []
    private var userLimit = 0
    /// Closed model: users that still loop.
    private var running = 0
    /// Users inside an exchange.
    private var busy = 0
    private var timers: [Scheduled<Void>] = []
    /// Checks every user's exchange against the read timeout; runs until the worker terminates.
    private var sweep: Scheduled<Void>?
    /// No new iterations start; requests in flight may finish.
    private(set) var stopping = false
    /// Everything stopped; late completions are ignored.
    private(set) var terminated = false

    /// Open model: the next arrival this loop handles (arrivals are dealt round-robin).
    private var nextArrival = 0
    /// How far apart this loop's arrivals are: the loops of every shard take turns.
    private var arrivalStep = 1
    private var arrivals = 0
    private var arrivalInterval: Int64 = 0

    init(loop: any EventLoop, plan: LoadPlan, index: Int, workerCount: Int, start: NIODeadline, seed: UInt64) {
        self.loop = loop
        self.plan = plan
        self.index = index
        self.workerCount = workerCount
        self.start = start
        random = SeededRandom(seed: seed)
        recorder = LoadRecorder(requestCount: plan.steps.count, start: start, faults: plan.faults, keepsRecords: plan.keepsRecords)
        finished = loop.makePromise()
    }

    /// Completes when every user on this loop stopped.
    var done: EventLoopFuture<Void> { finished.futureResult }

    // MARK: Running

    /// Starts the users (closed model) or the arrival schedule (open model).
    func begin() {
        scheduleSweep()
        let isolated = loop.assumeIsolated()
        switch plan.model {
        case .closed(let total, _, let duration?, _, _) where plan.ramp != nil:
            // User n runs while the ramp's target is n + 1 or more, and finishes its request when it drops.
            for number in plan.userNumbers(of: total, worker: index, workers: workerCount) {
                let active = plan.ramp!.intervals(atLeast: Double(number + 1))
                guard !active.isEmpty else { continue }
                let user = LoadUser(worker: self, active: false)
                users.append(user)
                running += 1
                for span in active {
                    timers.append(
                        isolated.scheduleTask(deadline: start + Seconds.amount(span.from)) { [weak self, user] in
                            guard let self, !self.stopping else { return }
                            user.resume()
                        })
                    if span.to < duration {
                        timers.append(isolated.scheduleTask(deadline: start + Seconds.amount(span.to)) { [user] in user.pause() })
                    }
                }
            }
            timers.append(isolated.scheduleTask(deadline: start + Seconds.amount(duration)) { [weak self] in self?.stop() })
            if running == 0 { stop() }
        case .closed(let total, let rampUp, let duration, _, _):
            for number in plan.userNumbers(of: total, worker: index, workers: workerCount) {
                let user = LoadUser(worker: self)
                users.append(user)
                running += 1
                let offset = Seconds.amount(rampUp * Double(number) / Double(total))
                timers.append(
                    isolated.scheduleTask(deadline: start + offset) { [weak self, user] in
                        guard let self, !self.stopping else { return }
                        user.runNext()
                    })
            }
            if let duration {
                timers.append(isolated.scheduleTask(deadline: start + Seconds.amount(duration)) { [weak self] in self?.stop() })
            }
            if running == 0 { stop() }
        case .open(let rate, _, _):
            let connections = plan.localUsers
            userLimit = connections / workerCount + (index < connections % workerCount ? 1 : 0)
            arrivals = plan.arrivals
            arrivalInterval = rate > 0 ? Int64(nanosecondsIn: 1 / rate) : 0
            (nextArrival, arrivalStep) = plan.arrivalNumbers(worker: index, workers: workerCount)
            scheduleArrivals()
        }
    }

    private func arrivalTime(_ k: Int) -> NIODeadline {
        if let ramp = plan.ramp { return start + Seconds.amount(ramp.arrivalTime(k)) }
        return start + .nanoseconds(Int64(k) * arrivalInterval)
    }

    /// Starts every arrival that is due, then sleeps until the next one.
    private func scheduleArrivals() {
        guard !stopping else { return }
        let now = NIODeadline.now()
        while nextArrival < arrivals, arrivalTime(nextArrival) <= now {
            arrive(scheduled: arrivalTime(nextArrival))
            nextArrival += arrivalStep
        }
        if nextArrival < arrivals {
            timers.append(loop.assumeIsolated().scheduleTask(deadline: arrivalTime(nextArrival)) { [weak self] in self?.scheduleArrivals() })
        } else {
            stop()
        }
    }

    private func arrive(scheduled: NIODeadline) {
        if let user = idle.popLast() {
            user.runIteration(scheduled: scheduled)
        } else if users.count < userLimit {
            let user = LoadUser(worker: self)
            users.append(user)
            user.runIteration(scheduled: scheduled)
        } else {
            recorder.recordDrop(due: scheduled)
        }
    }

    /// One timer per loop instead of one per request: read timeouts are found within a quarter
    /// of the timeout (at most 250 ms late).
    private func scheduleSweep() {
        let period = TimeAmount.nanoseconds(min(max(plan.readTimeout.nanoseconds / 4, 1_000_000), 250_000_000))
        sweep = loop.assumeIsolated().scheduleTask(in: period) { [weak self] in
            guard let self, !self.terminated else { return }
            let now = NIODeadline.now()
            for user in self.users { user.checkTimeouts(now: now) }
            self.scheduleSweep()
        }
    }

    /// Users whose next request goes out once this loop has read everything that is ready.
    private var ready: [LoadUser] = []
    private var readyScheduled = false

    /// Queues a user's next request behind the responses the loop is still reading.
    ///
    /// Tasks run after the loop has handled its ready sockets, so the requests of one wake-up go
    /// out together, as wrk sends them: the server then finds several requests per wake-up
    /// instead of being woken for each (on loopback, that wake-up is most of a write's cost).
    func sendSoon(_ user: LoadUser) {
        ready.append(user)
        guard !readyScheduled else { return }
        readyScheduled = true
        loop.assumeIsolated().execute { [self] in
            readyScheduled = false
            let users = ready
            ready.removeAll(keepingCapacity: true)
            for user in users where !stopping { user.runNext() }
        }
    }

    /// The pause a user takes before its next request.
    func thinkTime(afterConnectFailure: Bool) -> Double {
        guard case .closed(_, _, _, _, let think) = plan.model else { return 0 }
        let pause = think.next(&random)
        // A dead server must not turn the load into a busy loop of failed connects.
        return afterConnectFailure ? max(pause, 0.01) : pause
    }

    /// Whether a user has run its iterations (closed model).
    func isComplete(iterations: Int) -> Bool {
        if case .closed(_, _, _, let limit?, _) = plan.model { return iterations >= limit }
        return false
    }

    // MARK: Bookkeeping from users

    func exchangeStarted() { busy += 1 }

    func exchangeEnded() {
        busy -= 1
        checkFinished()
    }

    func userStopped() {
        running -= 1
        checkFinished()
    }

    func userIdle(_ user: LoadUser) {
        idle.append(user)
        checkFinished()
    }

    private func checkFinished() {
        guard !terminated else { return }
        let drained: Bool =
            switch plan.model {
            case .closed: stopping || running == 0
            case .open: stopping
            }
        if drained && busy == 0 { terminate() }
    }

    // MARK: Stopping

    /// Ends the load gracefully: no new iterations; requests in flight get ``LoadPlan/gracefulStop``.
    func stop() {
        guard !stopping else { return }
        stopping = true
        for timer in timers { timer.cancel() }
        timers.removeAll()
        if case .closed = plan.model {
            // Users waiting for their ramp-up or thinking will not run again.
            running = 0
        }
        if busy > 0 {
            timers.append(loop.assumeIsolated().scheduleTask(in: plan.gracefulStop) { [weak self] in self?.terminate() })
        }
        checkFinished()
    }

    /// Stops at once: requests in flight are abandoned (counted as such, in no other count) and
    /// connections closed.
    func terminate() {
        guard !terminated else { return }
        recorder.recordAbandoned(busy)
        stopping = true
        terminated = true
        sweep?.cancel()
        for timer in timers { timer.cancel() }
        timers.removeAll()
        for user in users { user.closeConnections() }
        users.removeAll()
        idle.removeAll()
        finished.succeed()
    }
}

/// One virtual user: a connection per endpoint, reused across its requests, and its place in
/// the sequence of steps.
final class LoadUser {
    // Strong: a user's pending think-time timer may outlive the worker's list of users.
    private let worker: LoadWorker
    private var connections: [(any LoadConnection)?]
    private var step = 0
    private var iterations = 0
    /// Closed model with stages: whether the ramp's target includes this user now.
    private var active: Bool
    /// A request, a think-time pause or a queued send of this user is pending.
    private var looping = false

    init(worker: LoadWorker, active: Bool = true) {
        self.worker = worker
        self.active = active
        connections = Array(repeating: nil, count: worker.plan.endpoints.count)
    }

    /// Closed model: the next request of the sequence, unless the load is over for this user.
    func runNext() {
        looping = false
        guard !worker.stopping, active else { return }
        if worker.isComplete(iterations: iterations) {
            closeConnections()
            worker.userStopped()
            return
        }
        looping = true
        exchange(step, began: .now())
    }

    /// Stages: the target dropped below this user; its request in flight finishes, then it waits.
    func pause() { active = false }

    /// Stages: the target includes this user again (or for the first time).
    func resume() {
        active = true
        if !looping { runNext() }
    }

    /// Open model: one iteration of the sequence, its first request timed from `scheduled`.
    func runIteration(scheduled: NIODeadline) {
        step = 0
        exchange(0, began: scheduled)
    }

    private func exchange(_ index: Int, began: NIODeadline) {
        worker.exchangeStarted()
        let endpoint = worker.plan.steps[index].endpoint
        if let connection = connections[endpoint], connection.isReusable {
            send(index, on: connection, began: began)
            return
        }
        connections[endpoint]?.close()
        connections[endpoint] = nil
        let plan = worker.plan
        let target = plan.endpoints[endpoint]
        let connected = { [self] (result: Result<any LoadConnection, HTTPFailure>) in
            switch result {
            case .success(let connection):
                guard !worker.terminated else {
                    connection.close()
                    return
                }
                connections[endpoint] = connection
                send(index, on: connection, began: began)
            case .failure(let failure):
                completed(index, began: began, result: .failure(failure))
            }
        }
        if let loop = worker.loop as? LoadLoop, target.tls == nil {
            PlainConnection.connect(to: target.address, peer: target.target.authority, timeout: plan.connectTimeout, on: loop) { result in
                connected(result.map { $0 })
            }
            return
        }
        HTTPConnector.connect(to: target.target, address: target.address, tls: target.tls, connectTimeout: plan.connectTimeout, on: worker.loop)
            .assumeIsolated().whenComplete { result in
                switch result {
                case .success(let opened):
                    // A TLS failure may have closed it already: the first request then fails with why.
                    connected(.success(opened.handler.value))
                case .failure(let error):
                    connected(.failure(HTTPFailure.classify(error, target: target.target.authority)))
                }
            }
    }

    /// The exchange in flight (a user has one at a time), for ``onResult``.
    private var pendingIndex = 0
    private var pendingBegan = NIODeadline.uptimeNanoseconds(0)
    /// Made once per user: a closure made per request would cost the load an allocation a request.
    private lazy var onResult: PendingExchange.Completion = { [unowned self] result in
        completed(pendingIndex, began: pendingBegan, result: result)
    }

    private func send(_ index: Int, on connection: any LoadConnection, began: NIODeadline) {
        let options = ExchangeOptions(collectBody: false, readTimeout: worker.plan.readTimeout, ownTimer: false)
        pendingIndex = index
        pendingBegan = began
        connection.send(worker.plan.steps[index].request, options: options, completion: onResult)
    }

    private func completed(_ index: Int, began: NIODeadline, result: Result<ExchangeResult, HTTPFailure>) {
        guard !worker.terminated else { return }
        let now = NIODeadline.now()
        var connectFailure = false
        switch result {
        case .success(let response):
            worker.recorder.record(index, result: response, expected: worker.plan.steps[index].expected, began: began, now: now)
        case .failure(let failure):
            connectFailure = failure.kind.isConnectPhase
            // A request that failed after its connection was up was sent.
            let sent = connectFailure ? 0 : worker.plan.steps[index].request.encoded.readableBytes
            worker.recorder.record(index, failure: failure, sent: sent, received: 0, began: began, now: now)
        }
        step += 1
        let iterationDone = step == worker.plan.steps.count
        if iterationDone {
            step = 0
            iterations += 1
        }
        switch worker.plan.model {
        case .closed:
            let pause = worker.thinkTime(afterConnectFailure: connectFailure)
            worker.exchangeEnded()
            if worker.stopping { return }
            looping = true
            if pause > 0 {
                worker.loop.assumeIsolated().scheduleTask(in: Seconds.amount(pause)) { [self] in runNext() }
            } else {
                worker.sendSoon(self)
            }
        case .open:
            if iterationDone || worker.stopping {
                worker.exchangeEnded()
                worker.userIdle(self)
            } else {
                worker.exchangeEnded()
                exchange(step, began: now)
            }
        }
    }

    func checkTimeouts(now: NIODeadline) {
        for connection in connections { connection?.checkTimeout(now: now) }
    }

    func closeConnections() {
        for connection in connections { connection?.abandon() }
        connections = connections.map { _ in nil }
    }
}
