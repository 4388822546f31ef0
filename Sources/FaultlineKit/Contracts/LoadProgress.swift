/// What a running load has measured so far, as counters that only grow: what a live metrics
/// endpoint shows while the load runs (``LoadMonitor``).
///
/// It is kept in the kernel for the reason ``LoadResult`` is: its producer (the HTTP plugin) and
/// its reader (the metrics endpoint) must not depend on each other.
public struct LoadProgress: Sendable, Equatable {
    /// The upper bounds of the latency buckets, in microseconds, shared by every load: from half a
    /// millisecond (a local service) to 30 s (a read timeout), about ×2.5 apart.
    public static let latencyBucketMicros: [UInt32] = [
        500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
    ]

    /// Counters of one named request.
    public struct Request: Sendable, Equatable {
        public var name: String
        /// Exchanges by HTTP status; exchanges that got no response are counted under 0.
        public var statuses: [Int: Int]
        /// Failed exchanges by error class, with the names of the load output's `errors`
        /// (`refused`, `read_timeout`, `http_5xx`, …); classes with no failure are left out.
        public var errors: [String: Int]
        /// Responses by latency bucket: `latencyBuckets[i]` counts responses slower than bucket
        /// i − 1's bound and at most bucket i's (``latencyBucketMicros``); the last entry, one past
        /// the bounds, counts the slower ones.
        public var latencyBuckets: [Int]
        /// The latencies of the responses added up, in microseconds.
        public var latencySumMicros: UInt64

        /// A request with nothing counted yet.
        public init(name: String) {
            self.name = name
            statuses = [:]
            errors = [:]
            latencyBuckets = Array(repeating: 0, count: LoadProgress.latencyBucketMicros.count + 1)
            latencySumMicros = 0
        }

        /// The bucket of a latency: the first bound it does not exceed, or the overflow bucket.
        public static func bucket(ofMicros micros: UInt32) -> Int {
            let bounds = LoadProgress.latencyBucketMicros
            var low = 0
            var high = bounds.count
            while low < high {
                let middle = (low + high) / 2
                if bounds[middle] < micros { low = middle + 1 } else { high = middle }
            }
            return low
        }

        /// Every exchange counted.
        public var count: Int { statuses.values.reduce(0, +) }
        /// Responses measured (the latency buckets' total).
        public var responses: Int { latencyBuckets.reduce(0, +) }

        /// Adds another count of the same request (another event loop's).
        public mutating func add(_ other: Request) {
            statuses.merge(other.statuses, uniquingKeysWith: +)
            errors.merge(other.errors, uniquingKeysWith: +)
            for i in latencyBuckets.indices where i < other.latencyBuckets.count { latencyBuckets[i] += other.latencyBuckets[i] }
            latencySumMicros += other.latencySumMicros
        }
    }

    /// Per named request, in configured order.
    public var requests: [Request]
    /// Open model: sends that found no free connection.
    public var dropped: Int

    /// Nothing counted yet for these requests.
    public init(requests: [String]) {
        self.requests = requests.map(Request.init(name:))
        dropped = 0
    }

    /// Adds another count of the same load (another event loop's), request by request.
    public mutating func add(_ other: LoadProgress) {
        for (index, request) in other.requests.enumerated() where index < requests.count { requests[index].add(request) }
        dropped += other.dropped
    }
}

/// Watches the loads of a run while they run: a run that serves live metrics puts one in its
/// ``Resources`` (``LoadMonitorKey``), and a load generator that finds it reports there. Without
/// one, loads report nothing and pay nothing.
///
/// ## Implementation requirements
/// - Neither method blocks: they are called from the load's task, which must not wait.
/// - `progress` is called only on demand (a scrape), never per request; it must stay cheap for the
///   load, reading what the load keeps anyway rather than making the load keep more.
/// - After ``loadEnded(_:final:)``, `progress` is not called again, and the final counts are kept
///   (counters never go back) until the run ends.
public protocol LoadMonitor: Sendable {
    /// A load started.
    /// - Parameters:
    ///   - activity: the probe's name in the experiment.
    ///   - requests: the names of its requests, in order.
    ///   - progress: reads the counts so far.
    /// - Returns: an identifier for ``loadEnded(_:final:)``.
    func loadStarted(activity: String, requests: [String], progress: @escaping @Sendable () async -> LoadProgress) -> Int

    /// The load ended (on every path, an interrupt included) with these counts: the same the load's
    /// output holds.
    func loadEnded(_ id: Int, final: LoadProgress)
}

/// A run's ``LoadMonitor``, in ``Resources``.
public enum LoadMonitorKey: ResourceKey {
    public typealias Value = any LoadMonitor
}
