import Foundation
import Logging

/// Where a run starts: ``load(path:options:)`` builds the ``RunPlan`` of a suite (or of a single
/// experiment, run as a one-entry suite), and ``run(_:interruption:)`` runs it.
///
/// The path of a run through the code: the command line → ``PlanBuilder`` (what to run, loaded,
/// resolved and validated once) → ``RunLifecycle`` (run extensions up, experiments, extensions
/// down on every path out, reports) → ``Engine`` (one experiment) → the providers → the journal →
/// the reporters.
public struct SuiteRunner: Sendable {
    public let registry: PluginRegistry
    public let observer: any RunObserver
    public let logger: Logger

    public init(registry: PluginRegistry, observer: any RunObserver = SilentObserver(), logger: Logger = Logger(label: "faultline")) {
        self.registry = registry
        self.observer = observer
        self.logger = logger
    }

    /// What the command line adds to a run.
    public struct Options: Sendable {
        public var profile: String?
        /// `--var key[:type]=value`, converted.
        public var variables: [(String, Value)] = []
        public var variableFiles: [String] = []
        public var environment: [String: String] = ProcessInfo.processInfo.environment
        public var run = RunOptions()
        /// Overrides every seed in the suite.
        public var seed: UInt64?
        /// For one experiment, the journal file; for a suite, the directory of journals.
        public var journalPath: String?
        /// Run only experiments whose title or file contains one of these.
        public var only: [String] = []
        public var reportFormats: [String]?
        public var reportDirectory: String?
        /// `--start-at`: the experiments start at this instant, after the run's services and
        /// proxies are up, so that shards on several runners keep one schedule.
        public var startAt: Date?
        /// How late the run may be ready for ``startAt`` and still start (it then starts at once);
        /// later, it fails before any experiment.
        public var startLateness: Double = 1
        /// Shared services the command line brings to every activity of the run (a
        /// ``LoadMonitor`` that serves live metrics), beside what the run extensions provide.
        public var resources = Resources()

        public init() {}
    }

    /// The result of a run.
    public struct Result: Sendable {
        public var journals: [Journal]
        public var journalPaths: [String]
        public var reportPaths: [String]
        /// Why the run could not start (a service that never became ready), if so.
        public var setupError: String?
        public var teardownProblems: [String]
        public var interrupted: Bool

        /// The worst outcome of the run.
        public var outcome: Outcome {
            if interrupted { return .interrupted }
            if setupError != nil { return .failed }
            return journals.map(\.verdict).max() ?? .completed
        }

        public var exitCode: Int32 { outcome.exitCode }
    }

    /// Loads a suite or an experiment and validates everything it refers to, once.
    /// - Throws: ``ValidationError`` with every problem found, in file order.
    public func load(path: String, options: Options) throws -> RunPlan {
        let sink = DiagnosticSink()
        let plan = PlanBuilder(registry: registry, path: path, options: options, sink: sink).build()
        try sink.throwIfErrors()
        guard var plan else { throw ValidationError(sink.sorted) }
        plan.warnings = sink.sorted.filter { $0.severity == .warning }
        return plan
    }

    /// Runs a plan. Everything brought up is torn down on every path out.
    public func run(_ plan: RunPlan, interruption: Interruption = Interruption()) async -> Result {
        await RunLifecycle(registry: registry, observer: observer, logger: logger).run(plan, interruption: interruption)
    }
}
