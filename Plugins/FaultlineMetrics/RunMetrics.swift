import FaultlineKit
import Synchronization

/// A run's live metrics: what the run's events say (experiments, faults) and what its loads have
/// counted so far, rendered as Prometheus text on demand.
///
/// It is a ``RunObserver`` (give it to the runner beside the console) and a ``LoadMonitor`` (put
/// it in the run's resources under ``LoadMonitorKey``). Loads are read only when
/// ``exposition()`` is called, so an endpoint nobody scrapes costs the run nothing, and one that
/// is scraped costs a load one task per event loop per scrape.
public final class RunMetrics: RunObserver, LoadMonitor, Sendable {
    /// One load probe's series: an experiment's probe, over every time it runs.
    private struct LoadSeries {
        var experiment: String
        var probe: String
        /// Finished runs of the probe, added up, by request name in first-seen order.
        var finished: [LoadProgress.Request] = []
        var dropped = 0
        /// Runs in progress, by id.
        var live: [Int: LiveLoad] = [:]

        mutating func add(_ progress: LoadProgress) {
            for request in progress.requests {
                if let index = finished.firstIndex(where: { $0.name == request.name }) {
                    finished[index].add(request)
                } else {
                    finished.append(request)
                }
            }
            dropped += progress.dropped
        }
    }

    private struct LiveLoad {
        var requests: [String]
        var read: @Sendable () async -> LoadProgress
    }

    /// A fault's series: the windows of an experiment with the same label.
    private struct FaultSeries {
        var experiment: String
        var label: String
        /// Windows in force, by id.
        var open: Set<String> = []
        var lastStart: Timestamp?
        var lastEnd: Timestamp?
    }

    private struct State {
        var suite: String?
        var profile: String?
        var experimentCount = 0
        var experiments: [(index: Int, title: String, running: Bool)] = []
        var currentIndex = 0
        var finished: [Outcome: Int] = [:]
        var faults: [FaultSeries] = []
        var loads: [LoadSeries] = []
        /// Load id → its series.
        var loadSeries: [Int: Int] = [:]
        var nextLoad = 0

        var currentExperiment: String { experiments.last(where: \.running)?.title ?? "" }

        mutating func faultSeries(experiment: String, label: String) -> Int {
            if let index = faults.firstIndex(where: { $0.experiment == experiment && $0.label == label }) { return index }
            faults.append(FaultSeries(experiment: experiment, label: label))
            return faults.count - 1
        }
    }

    private let state = Mutex(State())

    public init() {}

    // MARK: RunObserver

    public func handle(_ event: RunEvent) {
        state.withLock { s in
            switch event {
            case .suiteStarted(let name, let profile, let count):
                s.suite = name
                s.profile = profile
                s.experimentCount = count
            case .experimentStarted(let title, _, let index, let total):
                s.experimentCount = max(s.experimentCount, total)
                s.currentIndex = index
                s.experiments.append((index, title, true))
            case .experimentFinished(let journal):
                if let last = s.experiments.lastIndex(where: \.running) { s.experiments[last].running = false }
                s.finished[journal.outcome, default: 0] += 1
            case .faultStarted(let window):
                let index = s.faultSeries(experiment: s.currentExperiment, label: window.label)
                s.faults[index].open.insert(window.id)
                s.faults[index].lastStart = window.start
            case .faultEnded(let window):
                let index = s.faultSeries(experiment: s.currentExperiment, label: window.label)
                s.faults[index].open.remove(window.id)
                s.faults[index].lastEnd = window.end
            default:
                break
            }
        }
    }

    // MARK: LoadMonitor

    public func loadStarted(activity: String, requests: [String], progress: @escaping @Sendable () async -> LoadProgress) -> Int {
        state.withLock { s in
            let experiment = s.currentExperiment
            let series: Int
            if let known = s.loads.firstIndex(where: { $0.experiment == experiment && $0.probe == activity }) {
                series = known
            } else {
                s.loads.append(LoadSeries(experiment: experiment, probe: activity))
                series = s.loads.count - 1
            }
            s.nextLoad += 1
            s.loads[series].live[s.nextLoad] = LiveLoad(requests: requests, read: progress)
            s.loadSeries[s.nextLoad] = series
            return s.nextLoad
        }
    }

    public func loadEnded(_ id: Int, final: LoadProgress) {
        state.withLock { s in
            guard let series = s.loadSeries.removeValue(forKey: id) else { return }
            s.loads[series].live[id] = nil
            s.loads[series].add(final)
        }
    }

    // MARK: Exposition

    /// Every metric as Prometheus text (format 0.0.4), the loads read as they stand now.
    public func exposition() async -> String {
        let snapshot = state.withLock { $0 }
        // Read the running loads outside the lock: their loops answer in their own time.
        var loads = snapshot.loads
        for index in loads.indices {
            for (_, live) in loads[index].live.sorted(by: { $0.key < $1.key }) {
                var progress = await live.read()
                if progress.requests.isEmpty { progress = LoadProgress(requests: live.requests) }
                loads[index].add(progress)
            }
        }
        return Self.render(snapshot, loads: loads)
    }

    private static func render(_ s: State, loads: [LoadSeries]) -> String {
        var out = Exposition()
        out.family("faultline_run_info", .gauge, help: "The run: its suite and profile (always 1).")
        out.sample("faultline_run_info", [("suite", s.suite ?? ""), ("profile", s.profile ?? "")], 1)

        out.family("faultline_experiments", .gauge, help: "Experiments the run runs.")
        out.sample("faultline_experiments", [], s.experimentCount)
        out.family("faultline_experiments_finished_total", .counter, help: "Experiments finished, by outcome.")
        for outcome in Outcome.allCases where outcome != .running {
            out.sample("faultline_experiments_finished_total", [("outcome", outcome.rawValue)], s.finished[outcome] ?? 0)
        }
        out.family("faultline_experiment_current", .gauge, help: "The 1-based index of the experiment running or last run; 0 before the first.")
        out.sample("faultline_experiment_current", [], s.currentIndex)
        out.family("faultline_experiment_running", .gauge, help: "1 while the experiment runs, 0 once it finished.")
        for experiment in s.experiments {
            out.sample(
                "faultline_experiment_running", [("index", String(experiment.index)), ("experiment", experiment.title)], experiment.running ? 1 : 0)
        }

        out.family(
            "faultline_fault_active", .gauge, help: "Fault windows with this label in force now (a toxic, a kill): shade a panel where it is above 0."
        )
        for fault in s.faults {
            out.sample("faultline_fault_active", [("experiment", fault.experiment), ("fault", fault.label)], fault.open.count)
        }
        let edges: [(name: String, help: String, time: (FaultSeries) -> Timestamp?)] = [
            ("faultline_fault_start_timestamp_seconds", "When the latest window of the fault began, in seconds since 1970.", \.lastStart),
            ("faultline_fault_end_timestamp_seconds", "When the latest window of the fault ended, in seconds since 1970.", \.lastEnd),
        ]
        for edge in edges {
            out.family(edge.name, .gauge, help: edge.help)
            for fault in s.faults {
                guard let micros = edge.time(fault)?.microsecondsSinceEpoch else { continue }
                out.sample(edge.name, [("experiment", fault.experiment), ("fault", fault.label)], Exposition.seconds(micros: micros))
            }
        }

        out.family("faultline_load_running", .gauge, help: "Runs of the load probe in progress.")
        for load in loads {
            out.sample("faultline_load_running", [("experiment", load.experiment), ("probe", load.probe)], load.live.count)
        }
        out.family("faultline_load_requests_total", .counter, help: "Load requests by HTTP status (0: no response).")
        for load in loads {
            for request in load.finished {
                for status in request.statuses.keys.sorted() {
                    out.sample(
                        "faultline_load_requests_total",
                        [("experiment", load.experiment), ("probe", load.probe), ("request", request.name), ("status", String(status))],
                        request.statuses[status]!)
                }
            }
        }
        out.family("faultline_load_errors_total", .counter, help: "Failed load requests by error class (refused, read_timeout, http_5xx, ...).")
        for load in loads {
            for request in load.finished {
                for error in request.errors.keys.sorted() {
                    out.sample(
                        "faultline_load_errors_total",
                        [("experiment", load.experiment), ("probe", load.probe), ("request", request.name), ("error", error)],
                        request.errors[error]!)
                }
            }
        }
        out.family("faultline_load_request_duration_seconds", .histogram, help: "Latency of load requests that got a response.")
        for load in loads {
            for request in load.finished {
                out.histogram(
                    "faultline_load_request_duration_seconds", [("experiment", load.experiment), ("probe", load.probe), ("request", request.name)],
                    bounds: LoadProgress.latencyBucketMicros, counts: request.latencyBuckets, sumMicros: request.latencySumMicros)
            }
        }
        out.family("faultline_load_dropped_total", .counter, help: "Open model: sends that found no free connection.")
        for load in loads {
            out.sample("faultline_load_dropped_total", [("experiment", load.experiment), ("probe", load.probe)], load.dropped)
        }
        return out.text
    }
}
