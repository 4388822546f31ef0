import ArgumentParser
import Dispatch
import FaultlineKit
import FaultlineMetrics
import FaultlineProcess
import Foundation
import Logging

/// Options shared by `run` and `validate`: what to load and with which configuration.
struct LoadOptions: ParsableArguments {
    @Argument(help: "A suite (with experiments:) or one experiment, YAML or JSON. Default: ./experiments.yaml.")
    var file: String?

    @Option(help: "The suite profile to run (default: the suite's default profile).")
    var profile: String?

    @Option(
        name: .customLong("var"),
        help: ArgumentHelp(
            "Set a configuration value: key=value or key:type=value (type: str, int, float, bool, json).", valueName: "key[:type]=value"))
    var variables: [String] = []

    @Option(
        name: .customLong("var-file"),
        help: ArgumentHelp("Load configuration and secrets from a JSON/YAML file, or KEY=VALUE lines from a .env file.", valueName: "file"))
    var variableFiles: [String] = []

    @Option(
        name: .customLong("only"), help: ArgumentHelp("Run only experiments whose title or file contains this text (repeatable).", valueName: "text"))
    var only: [String] = []

    /// The file to load, checking the default exists.
    func resolvedFile() throws -> String {
        if let file { return file }
        guard FileManager.default.fileExists(atPath: "experiments.yaml") else {
            throw ValidationError("no experiments.yaml in \(FileManager.default.currentDirectoryPath); pass a suite or experiment file")
        }
        return "experiments.yaml"
    }

    /// Converts `--var` options.
    func parsedVariables() throws -> [(String, Value)] {
        try variables.map { text in
            guard let equals = text.firstIndex(of: "=") else {
                throw ValidationError("--var \(text): expected key=value or key:type=value")
            }
            let left = String(text[..<equals])
            let raw = String(text[text.index(after: equals)...])
            let parts = left.split(separator: ":", maxSplits: 1).map(String.init)
            guard let key = parts.first, !key.isEmpty else { throw ValidationError("--var \(text): the key is empty") }
            guard parts.count == 2 else { return (key, .string(raw)) }
            guard let type = EnvironmentValueType(rawValue: parts[1]) else {
                throw ValidationError(
                    "--var \(text): unknown type \(parts[1]) (use \(EnvironmentValueType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            do {
                return (key, try type.convert(raw))
            } catch {
                throw ValidationError("--var \(text): \(error)")
            }
        }
    }

    func runnerOptions() throws -> SuiteRunner.Options {
        var options = SuiteRunner.Options()
        options.profile = profile
        options.variables = try parsedVariables()
        options.variableFiles = variableFiles
        options.only = only
        return options
    }
}

/// Prints validation problems the way compilers do, and says how many.
func printDiagnostics(_ diagnostics: [Diagnostic]) {
    let t = Terminal.shared
    for diagnostic in diagnostics {
        let text = diagnostic.description
        t.error(diagnostic.severity == .error ? t.paint("error: ", .red) + text : t.paint("warning: ", .yellow) + text)
    }
}

/// `faultline run`.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a suite (default ./experiments.yaml on its default profile) or one experiment.",
        discussion: """
            Exit codes: 0 completed, 1 deviated, failed or aborted, 2 invalid input, 130 interrupted.
            With --shard, load thresholds are not judged in the run (it reports how its share did): \
            faultline report --merge judges them on every shard's requests. With --start-at, a run ready more than \
            --start-lateness seconds after the instant fails before any experiment.
            SIGINT or SIGTERM stops the method and runs the rollbacks; a second one aborts the rollbacks.
            Before it starts, the run undoes what killed runs left (see faultline recover): those of the same file \
            on this machine, and any on the Toxiproxy servers it uses.
            """)

    @OptionGroup var load: LoadOptions

    @Option(
        help: ArgumentHelp(
            "For one experiment, the journal file (default journal.json); for a suite, the journal directory (default journals/).", valueName: "path")
    )
    var journalPath: String?

    @Option(help: "When rollbacks play: default (after any method activity started), always, never, deviated.")
    var rollbackStrategy: RollbackStrategy?

    @Option(help: "When the hypothesis is checked: default, before-method-only, after-method-only, during-method-only, continuously.")
    var hypothesisStrategy: HypothesisStrategy?

    @Option(help: ArgumentHelp("Seconds between hypothesis checks during the method.", valueName: "seconds"))
    var hypothesisFrequency: Double?

    @Flag(help: "Stop the method at the first deviation seen during it.")
    var failFast = false

    @Option(help: "Skip part of the run: probes, actions, activities or pause.")
    var dry: DryMode?

    @Option(help: "Seed for every random choice (toxicity, jitter, kill targets), to replay a run.")
    var seed: UInt64?

    @Option(help: ArgumentHelp("Reports to write when the run ends, comma-separated (e.g. md,html,junit).", valueName: "formats"))
    var report: String?

    @Option(help: ArgumentHelp("Where reports go (default reports/).", valueName: "dir"))
    var reportDir: String?

    @Option(
        help: ArgumentHelp(
            "Write the whole run as one JSON document (outcome, experiments, faults, load results with phases and thresholds), "
                + "as docs/summary.schema.json describes.", valueName: "file"))
    var summaryJson: String?

    @Option(
        help: ArgumentHelp(
            "Serve live Prometheus metrics (load requests, errors and latency, faults in force, experiment progress) "
                + "at http://HOST:PORT/metrics while the run lasts; :PORT listens on every interface, port 0 on any free port.",
            valueName: "host:port"))
    var metricsListen: String?

    @Option(
        help: ArgumentHelp(
            "Run every http.load as shard I (from 0) of N: its share of the users or rate, for faultline report --merge.",
            valueName: "I/N"))
    var shard: String?

    @Option(
        help: ArgumentHelp(
            "Like --shard, with I from JOB_COMPLETION_INDEX (set in each pod of a Kubernetes Indexed Job).", valueName: "N"))
    var shardCount: Int?

    @Option(
        help: ArgumentHelp(
            "Start the experiments at this RFC 3339 instant (e.g. 2026-01-01T09:30:00Z), once services and proxies are up, "
                + "so that every shard keeps one schedule.", valueName: "instant"))
    var startAt: String?

    @Option(
        help: ArgumentHelp(
            "How many seconds late a run may be ready for --start-at and still start (at once); later, it fails.", valueName: "seconds"))
    var startLateness: Double = 1

    @Flag(name: .shortAndLong, help: "Print only the summary, errors and missed load thresholds.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Print debug logs.")
    var verbose = false

    func validate() throws {
        // The range every `frequency` in an experiment has, so that a flag cannot trap the run either.
        if let hypothesisFrequency, !NumberRange.seconds.contains(hypothesisFrequency) {
            throw ValidationError(NumberRange.seconds.message("--hypothesis-frequency", found: hypothesisFrequency))
        }
        _ = try shardingOptions()
        _ = try metricsAddress()
    }

    /// `--shard`/`--shard-count` and `--start-at`, checked; a problem is invalid input (exit 2),
    /// like a malformed experiment, since a shard that cannot run breaks the whole sharded run.
    func shardingOptions() throws -> (shard: LoadShard?, startAt: Date?) {
        do {
            return (try loadShard(environment: ProcessInfo.processInfo.environment), try startInstant(now: Date()))
        } catch let error as ArgumentParser.ValidationError {
            let t = Terminal.shared
            t.error(t.paint("error: ", .red) + error.message)
            throw ExitCode(2)
        }
    }

    /// `--shard I/N`, or `--shard-count N` with I from `JOB_COMPLETION_INDEX`; nil when neither is given.
    func loadShard(environment: [String: String]) throws -> LoadShard? {
        switch (shard, shardCount) {
        case (_?, _?):
            throw ValidationError("give --shard I/N or --shard-count N (with JOB_COMPLETION_INDEX), not both")
        case (let text?, nil):
            do {
                return try LoadShard(parsing: text)
            } catch {
                throw ValidationError("--shard \(text): \(error)")
            }
        case (nil, let count?):
            guard let index = environment["JOB_COMPLETION_INDEX"] else {
                throw ValidationError(
                    "--shard-count takes the shard's index from JOB_COMPLETION_INDEX, which Kubernetes sets in an Indexed Job's pods; "
                        + "it is not set here: give --shard I/\(count)")
            }
            guard let number = Int(index) else { throw ValidationError("JOB_COMPLETION_INDEX is \"\(index)\", not a number") }
            do {
                return try LoadShard(index: number, count: count)
            } catch {
                throw ValidationError("--shard-count \(count) with JOB_COMPLETION_INDEX=\(index): \(error) (is the Job's completions \(count)?)")
            }
        case (nil, nil):
            return nil
        }
    }

    /// `--start-at` as a moment; nil when not given.
    func startInstant(now: Date) throws -> Date? {
        guard let startAt else { return nil }
        if !(0...3600).contains(startLateness) {
            throw ValidationError(NumberRange(0...3600, unit: "seconds").message("--start-lateness", found: startLateness))
        }
        guard let date = Timestamp(text: startAt).date else {
            throw ValidationError(
                "--start-at \(startAt): not an RFC 3339 instant; write e.g. 2026-01-01T09:30:00Z (UTC) or 2026-01-01T10:30:00+01:00")
        }
        let ahead = date.timeIntervalSince(now)
        if ahead < -startLateness {
            throw ValidationError(
                "--start-at \(startAt) passed \(DurationFormat.seconds(-ahead)) ago: shards starting late would not line up; "
                    + "give every shard an instant far enough ahead for all of them to be ready")
        }
        if ahead > 86_400 {
            throw ValidationError("--start-at \(startAt) is \(DurationFormat.seconds(ahead)) ahead; at most 24 hours")
        }
        return date
    }

    /// `--metrics-listen` parsed, or nil without it.
    func metricsAddress() throws -> HostPort? {
        guard let metricsListen else { return nil }
        do {
            return try HostPort(parsing: metricsListen, role: .listen)
        } catch {
            throw ValidationError("--metrics-listen \(error)")
        }
    }

    func run() async throws {
        LogSettings.level = verbose ? .debug : (quiet ? .error : .warning)
        let registry = CommandEnvironment.registry
        var options = try load.runnerOptions()
        options.journalPath = journalPath
        options.seed = seed
        options.run.dry = dry
        options.run.rollbackStrategy = rollbackStrategy
        options.run.hypothesisStrategy = hypothesisStrategy
        options.run.hypothesisFrequency = hypothesisFrequency
        options.run.failFast = failFast ? true : nil
        options.reportFormats = report.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        options.reportDirectory = reportDir
        let sharding = try shardingOptions()
        options.run.loadShard = sharding.shard
        if let instant = sharding.startAt {
            options.startAt = instant
            options.startLateness = startLateness
            options.run.scheduledStart = Timestamp(instant)
        }

        let observer = ConsoleObserver(verbosity: quiet ? .quiet : (verbose ? .verbose : .normal))
        let metricsListen = try metricsAddress()
        let metrics = metricsListen.map { _ in RunMetrics() }
        if let metrics { options.resources[LoadMonitorKey.self] = metrics }
        let runner = SuiteRunner(
            registry: registry, observer: metrics.map { RunObservers([observer, $0]) } ?? observer, logger: Logger(label: "faultline"))
        let plan: RunPlan
        do {
            plan = try runner.load(path: try load.resolvedFile(), options: options)
        } catch let error as FaultlineKit.ValidationError {
            printDiagnostics(error.diagnostics)
            let count = error.errors.count
            Terminal.shared.error("\(count) error\(count == 1 ? "" : "s"); nothing was run")
            throw ExitCode(2)
        }
        printDiagnostics(plan.warnings)
        // Activities' loggers are masked by the engine; this covers what plugins log on their own.
        LogSettings.redactor = plan.redactor

        let t = Terminal.shared
        // Bound before anything runs, so a port in use stops the run before it injects anything.
        var metricsServer: MetricsServer?
        if let metrics, let address = metricsListen {
            do {
                metricsServer = try await MetricsServer.start(metrics, on: address)
            } catch {
                t.error(t.paint("error: ", .red) + "the run could not start: \(error)")
                throw ExitCode(Outcome.failed.exitCode)
            }
            if !quiet { t.write(t.paint("metrics: \(metricsServer!.url)", .dim) + "\n") }
        }

        let interruption = Interruption()
        let signals = SignalHandlers(interruption: interruption, observer: observer)
        signals.install()
        let result = await runner.run(plan, interruption: interruption)
        signals.restoreAfterRun()
        await metricsServer?.stop()

        if let setupError = result.setupError {
            t.error(t.paint("error: ", .red) + "the run could not start: \(setupError)")
        }
        for problem in result.teardownProblems { t.error(t.paint("warning: ", .yellow) + problem) }
        if !result.journals.isEmpty {
            t.write("\n" + SummaryTable.render(result.journals, terminal: t) + "\n")
            let loads = LoadSummary.runLines(result.journals, onlyFailures: quiet, terminal: t)
            if !loads.isEmpty { t.write("\n" + loads.joined(separator: "\n") + "\n") }
        }
        if !result.journalPaths.isEmpty, !quiet {
            let shown = result.journalPaths.count == 1 ? result.journalPaths[0] : (result.journalPaths[0] as NSString).deletingLastPathComponent + "/"
            t.write(t.paint("journal\(result.journalPaths.count == 1 ? "" : "s"): \(shown)", .dim) + "\n")
        }
        for path in result.reportPaths where !quiet { t.write(t.paint("report: \(path)", .dim) + "\n") }
        if let summaryJson {
            do {
                try JSONWriter.data(RunSummary.document(result)).write(to: URL(fileURLWithPath: summaryJson))
                if !quiet { t.write(t.paint("summary: \(summaryJson)", .dim) + "\n") }
            } catch {
                t.error(t.paint("error: ", .red) + "cannot write the summary to \(summaryJson): \(error)")
            }
        }
        let outcome = result.outcome
        if outcome != .completed || !quiet {
            t.write("\(ConsoleObserver.paintOutcome(outcome, t)) (exit \(outcome.exitCode))\n")
        }
        throw ExitCode(outcome.exitCode)
    }
}

extension RollbackStrategy: ExpressibleByArgument {}
extension HypothesisStrategy: ExpressibleByArgument {}
extension DryMode: ExpressibleByArgument {}

/// SIGINT and SIGTERM become interrupts of the run; a third one exits at once, killing children.
///
/// The handlers are in place when ``install()`` returns, so no signal is lost (``SignalPipe``); a
/// thread of its own reads them, so a third signal exits even when the run's tasks are stuck.
final class SignalHandlers: @unchecked Sendable {
    let interruption: Interruption
    let observer: ConsoleObserver

    init(interruption: Interruption, observer: ConsoleObserver) {
        self.interruption = interruption
        self.observer = observer
    }

    func install() {
        Thread { [interruption, observer] in
            while let number = SignalPipe.next() {
                let name = SignalPipe.name(number)
                let count = interruption.count + 1
                if count >= 3 {
                    Terminal.shared.error("\(name) a third time: exiting now, killing every process Faultline started")
                    ChildRegistry.shared.killAll()
                    exit(130)
                }
                observer.handle(.interrupted(signal: name, count: count))
                interruption.interrupt(name)
            }
        }.start()
        SignalPipe.install([SIGINT, SIGTERM])
    }

    /// After the run, a signal during reporting simply ends the process.
    func restoreAfterRun() {
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
