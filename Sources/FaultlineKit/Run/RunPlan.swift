/// A run, loaded, layered, resolved and validated once by ``PlanBuilder``: what ``RunLifecycle``
/// runs and the command line shows. Nothing in it changes while it runs.
public struct RunPlan: Sendable {
    public let suite: Suite
    /// The profile the run uses, if the suite has one.
    public let profile: Suite.Profile?
    /// The configuration every experiment shares (suite < profile < var files < `--var`), resolved,
    /// with its redactor.
    public let shared: ResolvedConfiguration
    /// The run extensions with their sections checked, in start order.
    public let extensions: [PlannedExtension]
    /// The experiments to run, in order, after `--only`.
    public let experiments: [PlannedExperiment]
    /// The experiments the profile skips (their entries' `skip_profiles`), in suite order.
    public let skipped: [SkippedExperiment]
    /// The seed of every random choice: `--seed`, the profile's, the suite's, or a random one.
    public let seed: UInt64
    public let journals: JournalLayout
    public let reports: ReportPlan
    public let options: SuiteRunner.Options
    /// Every secret the plan knows (the shared ones and each experiment's), for log handlers
    /// outside the kernel: the engine already masks what activities log.
    public let redactor: Redactor
    /// Problems that do not stop the run.
    public internal(set) var warnings: [Diagnostic] = []

    init(
        suite: Suite, profile: Suite.Profile?, shared: ResolvedConfiguration, extensions: [PlannedExtension], experiments: [PlannedExperiment],
        skipped: [SkippedExperiment] = [], seed: UInt64, journals: JournalLayout, reports: ReportPlan, options: SuiteRunner.Options
    ) {
        self.suite = suite
        self.profile = profile
        self.shared = shared
        self.extensions = extensions
        self.experiments = experiments
        self.skipped = skipped
        self.seed = seed
        self.journals = journals
        self.reports = reports
        self.options = options
        var redactor = shared.redactor
        for experiment in experiments {
            redactor.add(Array(experiment.configuration.redactor.needles) + Array(experiment.configuration.redactor.exact))
        }
        self.redactor = redactor
    }

    /// Example values of everything the extensions will export, which the experiments were
    /// validated against (`${proxies.NAME.port}` is a plausible port).
    public var placeholders: [String: Value] {
        extensions.reduce(into: [:]) { values, planned in values.merge(planned.placeholders) { $1 } }
    }

    /// An experiment's configuration with what the extensions really exported (bound ports, pids)
    /// in place of the example values it was validated with. Nothing is evaluated again (no
    /// environment read, no plugin value computed): only the experiment's references to the
    /// exports resolve anew.
    func configuration(of experiment: PlannedExperiment, exports: [String: Value]) -> ResolvedConfiguration {
        if exports == placeholders { return experiment.configuration }
        return ConfigurationLayers.experiment(experiment.evaluatedLayer, exports: exports, shared: shared, sink: DiagnosticSink())
    }
}

/// One experiment of a plan.
public struct PlannedExperiment: Sendable {
    public let experiment: Experiment
    /// The outcome its suite entry documents (`expect: deviated`), if any.
    public let expectation: Outcome?
    /// Its configuration as validated: its own layer under the extensions' example exports and
    /// the shared configuration.
    public let configuration: ResolvedConfiguration
    /// Its own configuration layer, evaluated once.
    let evaluatedLayer: ConfigurationLayer
    /// Where its journal goes.
    public let journalPath: String
}

/// An experiment of the suite that the run's profile skips (`skip_profiles`).
public struct SkippedExperiment: Sendable, Equatable {
    public let title: String
    /// Its file.
    public let origin: String
    /// The profile that skips it.
    public let profile: String
}

/// Which reports a run writes when it ends, and where.
public struct ReportPlan: Sendable {
    /// Report formats (`md`, `html`, `junit`), each a registered reporter.
    public let formats: [String]
    public let directory: String
    /// Before/after comparisons of two experiments (`reports.compare`), written with the reports.
    public var comparisons: [ComparisonReportPlan] = []
}

/// One `reports.compare` entry: the two experiments' files as their journals' `origin` names them.
public struct ComparisonReportPlan: Sendable {
    /// The report's file name, without extension.
    public let name: String
    public let title: String?
    public let baselineOrigin: String
    public let afterOrigin: String
}
