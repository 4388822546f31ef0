import Foundation
import Logging
import Synchronization

/// What a run may skip, as Chaos Toolkit's `--dry`.
public enum DryMode: String, Sendable, Codable, CaseIterable {
    case probes, actions, activities, pause
}

/// How to run one experiment.
public struct RunOptions: Sendable {
    public var dry: DryMode?
    /// Overrides the experiment's `runtime.rollbacks.strategy`.
    public var rollbackStrategy: RollbackStrategy?
    /// Overrides the experiment's `runtime.hypothesis.strategy`.
    public var hypothesisStrategy: HypothesisStrategy?
    /// Seconds between checks of a continuous hypothesis (default 1).
    public var hypothesisFrequency: Double?
    /// Stop the method at the first deviation seen during it.
    public var failFast: Bool?
    public var seed: UInt64
    public var profile: String?
    /// Where the journal is written as the run goes (nil: only returned).
    public var journalPath: String?
    /// Where activities put files (service logs).
    public var runDirectory: String
    /// The outcome the experiment is documented to have (a suite entry's `expect:`).
    public var expectedOutcome: Outcome?
    /// The run's ledger id, written into the journal for `faultline recover`.
    public var ledgerID: String?
    /// The shard of every load this run sends (`--shard I/N`); nil: the whole load.
    public var loadShard: LoadShard?
    /// The instant the run's experiments started at (`--start-at`), for loads to record.
    public var scheduledStart: Timestamp?

    public init(
        dry: DryMode? = nil, rollbackStrategy: RollbackStrategy? = nil, hypothesisStrategy: HypothesisStrategy? = nil,
        hypothesisFrequency: Double? = nil, failFast: Bool? = nil, seed: UInt64 = 0, profile: String? = nil, journalPath: String? = nil,
        runDirectory: String = "."
    ) {
        self.dry = dry
        self.rollbackStrategy = rollbackStrategy
        self.hypothesisStrategy = hypothesisStrategy
        self.hypothesisFrequency = hypothesisFrequency
        self.failFast = failFast
        self.seed = seed
        self.profile = profile
        self.journalPath = journalPath
        self.runDirectory = runDirectory
    }
}

/// Runs experiments: steady-state hypothesis (gate) → method → hypothesis again → rollbacks →
/// cleanups, writing the journal as it goes.
///
/// - The first interrupt cancels the in-flight activity and skips the rest of the method; the
///   rollbacks then run (under the `default` strategy, whenever a method activity had started).
///   A second interrupt aborts the rollbacks; the undos of what Faultline injected itself (a
///   toxic, a frozen process) still run, unless a third interrupt stops them too. The journal
///   lists what was left undone.
/// - A failed action in the method aborts the method: the fault was not injected as written, so
///   the hypothesis cannot tell anything. A failed probe in the method is recorded and the
///   method goes on: probes observe, and failing to reach a system under fault is an observation.
public struct Engine: Sendable {
    public let registry: PluginRegistry
    public let observer: any RunObserver
    public let logger: Logger

    public static let version = "0.1.0"

    public init(registry: PluginRegistry, observer: any RunObserver = SilentObserver(), logger: Logger = Logger(label: "faultline")) {
        self.registry = registry
        self.observer = observer
        self.logger = logger
    }

    /// Runs one experiment and returns its final journal.
    /// - Parameters:
    ///   - configuration: merged configuration and secrets (``ResolvedConfiguration/resolve(_:environment:sink:)``).
    ///   - resources: shared services set up for the run (toxic backend, services).
    ///   - interruption: signals delivered by the CLI.
    public func run(
        _ experiment: Experiment, configuration: ResolvedConfiguration, resources: Resources = Resources(), options: RunOptions,
        interruption: Interruption = Interruption(), index: Int = 1, total: Int = 1
    ) async -> Journal {
        let run = ExperimentRun(
            engine: self, experiment: experiment, configuration: configuration, resources: resources, options: options, interruption: interruption)
        observer.handle(.experimentStarted(title: experiment.title, origin: experiment.origin, index: index, total: total))
        let journal = await run.execute()
        observer.handle(.experimentFinished(journal))
        return journal
    }

    /// A hash of the experiment as written, to tell runs of the same experiment apart from runs of edited ones.
    public static func hash(of experiment: Experiment) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in JSONWriter.string(experiment.document.value, pretty: false).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// The state of one experiment's run.
private final class ExperimentRun: Sendable {
    let engine: Engine
    let experiment: Experiment
    let configuration: ResolvedConfiguration
    let resources: Resources
    let options: RunOptions
    let interruption: Interruption
    let recorder: JournalRecorder
    let state: RunState
    let redactor: Redactor
    /// The engine's logger with this experiment's secrets (its own and the shared ones) masked.
    let logger: Logger
    let startDate = Date()
    let hypothesisStrategy: HypothesisStrategy
    let rollbackStrategy: RollbackStrategy
    let frequency: Double
    let failFast: Bool

    private struct Progress {
        var methodStarted = false
        var deviated = false
        var gateFailed = false
        var actionFailed = false
        /// The first hypothesis probe after the method that did not pass could not run at all.
        var afterProbeFailed = false
        var failFastStopped = false
        var reason: String?
    }
    private let progress = Mutex(Progress())

    init(
        engine: Engine, experiment: Experiment, configuration: ResolvedConfiguration, resources: Resources, options: RunOptions,
        interruption: Interruption
    ) {
        self.engine = engine
        self.experiment = experiment
        self.configuration = configuration
        self.resources = resources
        self.options = options
        self.interruption = interruption
        redactor = configuration.redactor
        logger = engine.logger.redacting(configuration.redactor)
        state = RunState { [observer = engine.observer, redactor = configuration.redactor] window, began in
            var window = window
            window.id = redactor.redact(window.id)
            window.label = redactor.redact(window.label)
            observer.handle(began ? .faultStarted(window) : .faultEnded(window))
        }
        hypothesisStrategy = options.hypothesisStrategy ?? experiment.runtime.hypothesis?.strategy ?? .default
        rollbackStrategy = options.rollbackStrategy ?? experiment.runtime.rollbacks?.strategy ?? .default
        frequency = max(0.01, options.hypothesisFrequency ?? experiment.runtime.hypothesis?.frequency ?? 1.0)
        failFast = options.failFast ?? experiment.runtime.hypothesis?.fail_fast ?? false

        let start = Timestamp(startDate)
        let journal = Journal(
            faultlineVersion: Engine.version, platform: Self.platform, node: ProcessInfo.processInfo.hostName,
            runID: UUID().uuidString.lowercased(), experimentHash: Engine.hash(of: experiment), profile: options.profile, origin: experiment.origin,
            seed: options.seed, dry: options.dry?.rawValue, experiment: configuration.redactor.redact(experiment.document.value), start: start,
            status: .running, deviated: false, outcome: .running, expected: options.expectedOutcome, reason: nil, steadyStates: SteadyStates(),
            run: [], rollbacks: [], cleanup: [],
            faults: [], leftUndone: [], end: nil, duration: nil, ledger: options.ledgerID)
        recorder = JournalRecorder(journal, path: options.journalPath)
    }

    static let platform: String = {
        var name = utsname()
        uname(&name)
        func text<T>(_ field: T) -> String {
            withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return "\(text(name.sysname))-\(text(name.release))-\(text(name.machine))"
    }()

    var observer: any RunObserver { engine.observer }

    func execute() async -> Journal {
        // The journal is on disk, saying `running`, before anything runs.
        recorder.update { _ in }
        await recorder.flush()

        // Main phases: cancelled by the first interrupt.
        let main = Task { await self.mainPhases() }
        let mainToken = interruption.on(count: 1) { main.cancel() }
        await main.value
        interruption.remove(mainToken)

        // Rollbacks: cancelled by the second interrupt.
        let rollbacks = Task { await self.rollbackPhase() }
        let rollbackToken = interruption.on(count: 2) { rollbacks.cancel() }
        await rollbacks.value
        interruption.remove(rollbackToken)

        // Undoing what Faultline injected itself: only a third interrupt stops it.
        let cleanups = Task { await self.cleanupPhase() }
        let cleanupToken = interruption.on(count: 3) { cleanups.cancel() }
        await cleanups.value
        interruption.remove(cleanupToken)

        return await finalize()
    }

    // MARK: Phases

    private func mainPhases() async {
        if let hypothesis = experiment.hypothesis, hypothesisStrategy.before {
            observer.handle(.phaseStarted(.hypothesisBefore))
            let record = await runHypothesis(hypothesis, phase: .hypothesisBefore)
            if Task.isCancelled { return }
            if record.steadyStateMet == false {
                let failing = record.probes.first { $0.toleranceMet == false || $0.status == .failed }
                progress.withLock {
                    $0.gateFailed = true
                    $0.reason = "steady state was not met before the method" + (failing.map { ": \($0.name): \(Self.why($0))" } ?? "")
                }
                return
            }
        }

        if !experiment.method.isEmpty {
            // The gate's verdict is on disk before the method injects anything.
            await recorder.flush()
            observer.handle(.phaseStarted(.method))
            await runMethodWithContinuousHypothesis()
        }
        if Task.isCancelled { return }
        if progress.withLock({ $0.actionFailed }) { return }

        if let hypothesis = experiment.hypothesis, hypothesisStrategy.after {
            observer.handle(.phaseStarted(.hypothesisAfter))
            let record = await runHypothesis(hypothesis, phase: .hypothesisAfter)
            if Task.isCancelled { return }
            if record.steadyStateMet == false {
                let failing = record.probes.first { $0.toleranceMet == false || $0.status == .failed }
                progress.withLock {
                    $0.deviated = true
                    // Chaos Toolkit's journal: `failed` when the first probe that did not pass could not run.
                    $0.afterProbeFailed = failing?.status == .failed
                    if $0.reason == nil {
                        $0.reason = "steady state was not met after the method" + (failing.map { ": \($0.name): \(Self.why($0))" } ?? "")
                    }
                }
            }
        }
    }

    private static func why(_ record: RunRecord) -> String {
        if record.status == .failed { return record.exception?.first ?? "failed" }
        return record.toleranceMessage ?? "tolerance not met"
    }

    private enum MethodChild: Sendable {
        case method
        case during(failFast: Bool)
    }

    private func runMethodWithContinuousHypothesis() async {
        let methodDone = Latch()
        let hypothesis = experiment.hypothesis
        let during = hypothesisStrategy.during && hypothesis != nil && !experiment.method.isEmpty
        await withTaskGroup(of: MethodChild.self) { group in
            group.addTask {
                await self.runMethod()
                return .method
            }
            if during, let hypothesis {
                group.addTask {
                    while !Task.isCancelled, !methodDone.isSet {
                        let record = await self.runHypothesis(hypothesis, phase: .hypothesisDuring)
                        if Task.isCancelled { break }
                        if record.steadyStateMet == false {
                            let failing = record.probes.first { $0.toleranceMet == false || $0.status == .failed }
                            self.progress.withLock {
                                $0.deviated = true
                                if $0.reason == nil {
                                    $0.reason = "steady state was not met during the method" + (failing.map { ": \($0.name): \(Self.why($0))" } ?? "")
                                }
                            }
                            if self.failFast { return .during(failFast: true) }
                        }
                        if await methodDone.wait(seconds: self.frequency) { break }
                    }
                    return .during(failFast: false)
                }
            }
            for await child in group {
                switch child {
                case .method:
                    methodDone.set()
                case .during(let stop):
                    if stop {
                        progress.withLock {
                            $0.failFastStopped = true
                            $0.reason = ($0.reason ?? "deviation during the method") + " (--fail-fast stopped the method)"
                        }
                        group.cancelAll()
                    }
                }
            }
        }
    }

    private func runMethod() async {
        await withTaskGroup(of: Void.self) { background in
            for activity in experiment.method {
                if Task.isCancelled { break }
                progress.withLock { $0.methodStarted = true }
                if activity.background {
                    background.addTask { self.judgeMethodRecord(await self.runActivity(activity, phase: .method), activity) }
                    continue
                }
                let record = await runActivity(activity, phase: .method)
                judgeMethodRecord(record, activity)
                if record.status == .failed, activity.kind == .action {
                    progress.withLock {
                        $0.actionFailed = true
                        $0.reason = "action \"\(activity.name)\" failed: \(record.exception?.first ?? "unknown error")"
                    }
                    background.cancelAll()
                    break
                }
            }
            await background.waitForAll()
        }
    }

    /// A method probe with a tolerance is judged: a miss, or no output to judge, is a deviation.
    /// (Chaos Toolkit ignores tolerances in the method; a user who wrote one means it.)
    private func judgeMethodRecord(_ record: RunRecord, _ activity: Activity) {
        guard activity.kind == .probe, activity.tolerance != nil, record.status != .skipped, record.status != .interrupted else { return }
        guard record.toleranceMet == false || record.status == .failed else { return }
        progress.withLock {
            $0.deviated = true
            if $0.reason == nil { $0.reason = "probe \"\(activity.name)\" in the method was not within tolerance: \(Self.why(record))" }
        }
    }

    private func runHypothesis(_ hypothesis: Experiment.Hypothesis, phase: RunEvent.Phase) async -> HypothesisRecord {
        let start = Timestamp.now()
        var record = HypothesisRecord(steadyStateMet: nil, probes: [], start: start)
        var duringIndex: Int?
        recorder.update { journal in
            switch phase {
            case .hypothesisBefore: journal.steadyStates.before = record
            case .hypothesisAfter: journal.steadyStates.after = record
            default:
                journal.steadyStates.during.append(record)
                duringIndex = journal.steadyStates.during.count - 1
            }
        }

        func store(_ record: HypothesisRecord) {
            recorder.update { journal in
                switch phase {
                case .hypothesisBefore: journal.steadyStates.before = record
                case .hypothesisAfter: journal.steadyStates.after = record
                default:
                    if let duringIndex, journal.steadyStates.during.indices.contains(duringIndex) {
                        journal.steadyStates.during[duringIndex] = record
                    }
                }
            }
        }

        var met = true
        for probe in hypothesis.probes {
            if Task.isCancelled { break }
            let probeRecord = await runActivity(probe, phase: phase, recordInPhaseList: false)
            record.probes.append(probeRecord)
            if probeRecord.status == .interrupted { met = false; break }
            if probeRecord.status == .failed || probeRecord.toleranceMet == false { met = false }
            store(record)
        }
        record.steadyStateMet = Task.isCancelled && record.probes.count < hypothesis.probes.count ? nil : met
        record.end = Timestamp.now()
        store(record)
        return record
    }

    private func rollbackPhase() async {
        let snapshot = progress.withLock { $0 }
        let shouldRollback: Bool =
            switch rollbackStrategy {
            case .default: snapshot.methodStarted
            case .always: true
            case .never: false
            case .deviated: snapshot.deviated
            }
        guard shouldRollback, !experiment.rollbacks.isEmpty else { return }
        observer.handle(.phaseStarted(.rollbacks))
        for (index, activity) in experiment.rollbacks.enumerated() {
            if Task.isCancelled {
                let rest = experiment.rollbacks[index...].map { redactor.redact("rollback \"\($0.name)\"") }
                recorder.update { $0.leftUndone += rest }
                break
            }
            // A failed rollback does not stop the others.
            _ = await runActivity(activity, phase: .rollbacks)
        }
    }

    /// Runs the undos actions registered (remove a toxic, thaw a process, stop a service the
    /// experiment started), newest first. They run after an aborted rollback phase too: they are
    /// quick, and skipping them would leave a fault injected after the run.
    private func cleanupPhase() async {
        var interrupted: [String] = []
        if !state.pendingCleanups.isEmpty {
            // What happened is on disk before the undos change the system.
            await recorder.flush()
            observer.handle(.phaseStarted(.cleanup))
            interrupted = await state.runCleanups { record in
                var record = record
                record.description = self.redactor.redact(record.description)
                record.error = record.error.map { self.redactor.redact($0) }
                self.recorder.update { $0.cleanup.append(record) }
                self.observer.handle(.cleanupFinished(record))
            }.filter { $0.status == .interrupted }.map { redactor.redact($0.description) }
        }
        if Task.isCancelled {
            let pending = interrupted + state.pendingCleanups.reversed().map { redactor.redact($0.description) }
            recorder.update { $0.leftUndone += pending }
        }
    }

    private func finalize() async -> Journal {
        state.closeFaults()
        let snapshot = progress.withLock { $0 }
        let interrupted = interruption.count > 0
        let end = Date()
        recorder.update { journal in
            journal.faults = state.recordedFaults.map { fault in
                var fault = fault
                fault.id = redactor.redact(fault.id)
                fault.label = redactor.redact(fault.label)
                return fault
            }
            journal.deviated = snapshot.deviated
            if interrupted {
                journal.status = .interrupted
                journal.outcome = .interrupted
                journal.reason = "interrupted by \(interruption.signal ?? "a signal")" + (snapshot.reason.map { "; \($0)" } ?? "")
            } else if snapshot.gateFailed {
                journal.status = .failed
                journal.outcome = .failed
            } else if snapshot.actionFailed {
                journal.status = .aborted
                journal.outcome = .aborted
            } else if snapshot.afterProbeFailed {
                // As Chaos Toolkit writes it (status failed, deviated); it prints "deviated" too.
                journal.status = .failed
                journal.outcome = .deviated
            } else if snapshot.deviated {
                journal.status = .completed
                journal.outcome = .deviated
            } else {
                journal.status = .completed
                journal.outcome = .completed
            }
            if !interrupted { journal.reason = snapshot.reason }
            if !journal.leftUndone.isEmpty {
                journal.reason = (journal.reason ?? "") + "; left undone: " + journal.leftUndone.joined(separator: ", ")
            }
            journal.end = Timestamp(end)
            journal.duration = (end.timeIntervalSince(startDate) * 1_000_000).rounded() / 1_000_000
        }
        await recorder.close()
        return recorder.current
    }

    // MARK: Activities

    /// Runs one activity and records it. Hypothesis probes are recorded by the caller.
    @discardableResult
    private func runActivity(_ activity: Activity, phase: RunEvent.Phase, recordInPhaseList: Bool = true) async -> RunRecord {
        let isHypothesis = phase == .hypothesisBefore || phase == .hypothesisAfter || phase == .hypothesisDuring
        // Hypothesis probes are judged, and method probes that carry a tolerance.
        let judged = isHypothesis || (phase == .method && activity.kind == .probe && activity.tolerance != nil)
        observer.handle(.activityStarted(name: activity.name, kind: activity.kind, phase: phase, background: activity.background))
        let variables = currentSubstitution()

        var record: RunRecord
        var prepared: PreparedActivity?
        var failure: (String, [String])?
        do {
            prepared = try PreparedActivity.prepare(activity, substitution: variables, registry: engine.registry, sink: nil)
        } catch {
            failure = ("\(error)", [])
        }

        let skipPauses = options.dry != nil
        if let before = prepared?.pauseBefore, before > 0, !skipPauses {
            observer.handle(.pausing(activity: activity.name, seconds: before, before: true))
            _ = await pause(seconds: before)
        }

        // Before an action changes the system, the journal on disk holds everything before it.
        if activity.kind == .action, prepared != nil { await recorder.flush() }
        let start = Date()
        var output: Value?
        var status = RecordStatus.succeeded
        var toleranceOutcome: ToleranceOutcome?

        if Task.isCancelled {
            status = .interrupted
        } else if let failure {
            status = .failed
            record = makeRecord(
                activity, phase: phase, start: start, status: .failed, output: nil, exception: [failure.0] + failure.1,
                tolerance: isHypothesis ? ToleranceOutcome(met: false) : nil)
            return await finish(record, activity: activity, phase: phase, recordInPhaseList: recordInPhaseList, pauseAfter: nil)
        } else if let prepared {
            let dryCovers: Bool =
                switch options.dry {
                case .probes?: activity.kind == .probe
                case .actions?: activity.kind == .action
                case .activities?: true
                default: false
                }
            if dryCovers && !prepared.descriptor.handlesDryRun {
                status = .skipped
                if judged { toleranceOutcome = ToleranceOutcome(met: true, message: "dry run: not checked") }
            } else {
                let context = ActivityContext(
                    activityName: activity.name, kind: activity.kind, configuration: currentConfiguration(), secrets: configuration.secrets,
                    logger: Self.activityLogger(logger, activity: activity.name), isDryRun: dryCovers, resources: resources,
                    runDirectory: options.runDirectory, seed: options.seed, loadShard: options.loadShard,
                    scheduledStart: options.scheduledStart, run: state)
                let limit = prepared.enforcedTimeout
                do {
                    output = try await withTimeout(limit) { try await prepared.invocation(context) }
                } catch let error as ActivityTimeout {
                    status = .failed
                    failure = ("\(error) and was cancelled", [])
                } catch let error as ActivityFailure {
                    status = Task.isCancelled ? .interrupted : .failed
                    failure = (error.message, error.details)
                    output = error.output
                } catch is CancellationError {
                    status = .interrupted
                } catch {
                    status = Task.isCancelled ? .interrupted : .failed
                    failure = ("\(error)", [])
                }
                if Task.isCancelled, status == .succeeded { status = .interrupted }
                if case .custom(let check)? = prepared.tolerance, let produced = output { output = check.annotate(produced) }
                if status == .succeeded, judged, !dryCovers, let tolerance = prepared.tolerance {
                    toleranceOutcome = await judge(tolerance, output: output ?? .null, receivedTexts: context.receivedTexts, variables: variables)
                } else if status == .succeeded, judged, dryCovers {
                    toleranceOutcome = ToleranceOutcome(met: true, message: "dry run: not checked")
                }
            }
        }
        if status == .interrupted && failure == nil { failure = ("interrupted by \(interruption.signal ?? "cancellation")", []) }
        // A hypothesis probe that could not run is not within tolerance, as Chaos Toolkit journals it.
        if status == .failed, isHypothesis, toleranceOutcome == nil { toleranceOutcome = ToleranceOutcome(met: false) }

        record = makeRecord(
            activity, phase: phase, start: start, status: status, output: output, exception: failure.map { [$0.0] + $0.1 },
            tolerance: toleranceOutcome)
        return await finish(
            record, activity: activity, phase: phase, recordInPhaseList: recordInPhaseList, pauseAfter: skipPauses ? nil : prepared?.pauseAfter)
    }

    private func finish(
        _ record: RunRecord, activity: Activity, phase: RunEvent.Phase, recordInPhaseList: Bool, pauseAfter: Double?
    ) async -> RunRecord {
        if recordInPhaseList {
            recorder.update { journal in
                if phase == .rollbacks { journal.rollbacks.append(record) } else { journal.run.append(record) }
            }
        }
        observer.handle(
            .activityFinished(
                .init(
                    name: activity.name, kind: activity.kind, phase: phase, status: record.status, duration: record.duration,
                    toleranceMet: record.toleranceMet, message: record.exception?.first ?? record.toleranceMessage, background: activity.background,
                    providerType: record.providerType, output: record.output)))
        if let pauseAfter, pauseAfter > 0, !Task.isCancelled {
            // The record's end is taken before the pause, as Chaos Toolkit does.
            observer.handle(.pausing(activity: activity.name, seconds: pauseAfter, before: false))
            _ = await pause(seconds: pauseAfter)
        }
        return record
    }

    private func makeRecord(
        _ activity: Activity, phase: RunEvent.Phase, start: Date, status: RecordStatus, output: Value?, exception: [String]?,
        tolerance: ToleranceOutcome?
    ) -> RunRecord {
        let end = Date()
        return RunRecord(
            activity: redactor.redact(activity.document.value), output: output.map { redactor.redact($0) }, status: status, start: Timestamp(start),
            end: Timestamp(end), duration: (end.timeIntervalSince(start) * 1_000_000).rounded() / 1_000_000,
            exception: exception.map { $0.map { redactor.redact($0) } }, toleranceMet: tolerance?.met,
            toleranceMessage: tolerance?.message.map { redactor.redact($0) }, phase: phase.recordPhase, background: activity.background ? true : nil)
    }

    private func judge(_ tolerance: Tolerance, output: Value, receivedTexts: [String: String], variables: Substitution) async -> ToleranceOutcome {
        guard case .probe(let probe) = tolerance else { return tolerance.check(output, receivedTexts: receivedTexts) }
        // Chaos Toolkit calls a python function with the output added as its `value` argument: a
        // function without that parameter raises TypeError, and the tolerance is not met.
        if let python = probe.provider.python, let descriptor = try? PreparedActivity.descriptor(for: probe, registry: engine.registry),
            !descriptor.schema.fields.contains(where: { $0.name == "value" })
        {
            return ToleranceOutcome(
                met: false,
                message: "tolerance probe \"\(probe.name)\" failed: TypeError: \(python.function)() got an unexpected keyword argument 'value'")
        }
        var withValue = variables
        withValue.variables["value"] = output
        do {
            guard let prepared = try PreparedActivity.prepare(probe, substitution: withValue, registry: engine.registry, sink: nil) else {
                return ToleranceOutcome(met: false, message: "tolerance probe could not be prepared")
            }
            var probeConfiguration = currentConfiguration()
            probeConfiguration["value"] = output
            let context = ActivityContext(
                activityName: probe.name, kind: .probe, configuration: probeConfiguration, secrets: configuration.secrets,
                logger: Self.activityLogger(logger, activity: probe.name), isDryRun: false, resources: resources,
                runDirectory: options.runDirectory, seed: options.seed, loadShard: options.loadShard,
                scheduledStart: options.scheduledStart, run: state)
            let limit = prepared.enforcedTimeout
            let result = try await withTimeout(limit) { try await prepared.invocation(context) }
            let met = prepared.descriptor.isSuccess(result)
            return ToleranceOutcome(met: met, message: met ? nil : "tolerance probe \"\(probe.name)\" returned \(Tolerance.describe(result))")
        } catch {
            return ToleranceOutcome(met: false, message: "tolerance probe \"\(probe.name)\" failed: \(error)")
        }
    }

    /// Configuration (without secrets) with the values activities exported so far.
    private func currentConfiguration() -> [String: Value] {
        var values = configuration.configuration
        for (key, value) in state.exports { values[key] = value }
        return values
    }

    private func currentSubstitution() -> Substitution {
        var substitution = configuration.substitution
        for (key, value) in state.exports { substitution.variables[key] = value }
        return substitution
    }

    private static func activityLogger(_ base: Logger, activity: String) -> Logger {
        var logger = base
        logger[metadataKey: "activity"] = .string(activity)
        return logger
    }
}
