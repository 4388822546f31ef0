import Foundation
import Logging

/// Runs a ``RunPlan``: the run extensions start stage by stage (the toxic backend and its proxies,
/// then services) → the experiments run one after another, each on the ``Engine`` → the
/// extensions stop in reverse order, on every path out (success, a failed start, SIGINT, SIGTERM)
/// → the reports are written.
///
/// The first interrupt during start-up cancels it; the experiments do not run, and what started
/// is stopped.
struct RunLifecycle {
    let registry: PluginRegistry
    let observer: any RunObserver
    let logger: Logger

    func run(_ plan: RunPlan, interruption: Interruption) async -> SuiteRunner.Result {
        observer.handle(.suiteStarted(name: plan.suite.name, profile: plan.profile?.name, experiments: plan.experiments.count))
        for skipped in plan.skipped {
            observer.handle(.setupStep("skipped on profile \(skipped.profile) (skip_profiles): \(skipped.title) (\(skipped.origin))"))
        }
        var result = SuiteRunner.Result(journals: [], journalPaths: [], reportPaths: [], setupError: nil, teardownProblems: [], interrupted: false)
        try? FileManager.default.createDirectory(atPath: plan.journals.runDirectory, withIntermediateDirectories: true)

        let ledger = await openLedger(plan)
        var resources = plan.options.resources
        resources[RunLedgerKey.self] = ledger
        let setup = RunSetup(
            configuration: plan.shared.configuration, resources: resources, logger: logger.redacting(plan.shared.redactor), seed: plan.seed,
            runDirectory: plan.journals.runDirectory, environment: plan.options.environment, registry: registry)
        let teardown = Teardown()

        // Start-up runs in a task the first interrupt cancels.
        let startTask = Task { try await self.startExtensions(plan, setup: setup, teardown: teardown) }
        let startToken = interruption.on(count: 1) { startTask.cancel() }
        var setupError: String?
        do {
            setupError = try await startTask.value
        } catch {
            setupError = "\(error)"
        }
        interruption.remove(startToken)
        if interruption.count > 0 {
            result.interrupted = true
        } else if let setupError {
            result.setupError = setupError
        }

        if result.setupError == nil && !result.interrupted, let startAt = plan.options.startAt {
            if let late = await waitUntil(startAt, lateness: plan.options.startLateness, interruption: interruption) {
                result.setupError = late
            }
            if interruption.count > 0 { result.interrupted = true }
        }

        if result.setupError == nil && !result.interrupted {
            let exports = setup.configuration.filter { plan.shared.configuration[$0.key] == nil || plan.shared.configuration[$0.key] != $0.value }
            for (index, planned) in plan.experiments.enumerated() {
                if interruption.count > 0 { break }
                ledger.noteJournal(planned.journalPath)
                let journal = await runExperiment(
                    planned, index: index, of: plan, exports: exports, resources: setup.resources, ledgerID: ledger.id, interruption: interruption)
                result.journals.append(journal)
                result.journalPaths.append(planned.journalPath)
            }
            if interruption.count > 0 { result.interrupted = true }
        }

        if await teardown.hasSteps { observer.handle(.setupStep("tearing down")) }
        result.teardownProblems = await teardown.run()
        let left = ledger.finish()
        if !left.isEmpty, let path = ledger.path {
            let what = left.map(\.summary).joined(separator: "; ")
            result.teardownProblems.append("what the run could not undo stays in its ledger \(path) (\(what)); faultline recover retries")
        }

        // Reports, also after an interrupt.
        if !plan.reports.formats.isEmpty, !result.journals.isEmpty {
            result.reportPaths = ReportWriter(registry: registry, observer: observer).write(plan, journals: result.journals)
        }
        return result
    }

    /// Runs one experiment of the plan with the configuration the extensions' exports complete.
    private func runExperiment(
        _ planned: PlannedExperiment, index: Int, of plan: RunPlan, exports: [String: Value], resources: Resources, ledgerID: String?,
        interruption: Interruption
    ) async -> Journal {
        var options = plan.options.run
        options.seed = plan.seed
        options.profile = plan.profile?.name
        options.runDirectory = plan.journals.runDirectory
        options.journalPath = planned.journalPath
        options.expectedOutcome = planned.expectation
        options.ledgerID = ledgerID
        let engine = Engine(registry: registry, observer: observer, logger: logger)
        return await engine.run(
            planned.experiment, configuration: plan.configuration(of: planned, exports: exports), resources: resources, options: options,
            interruption: interruption, index: index + 1, total: plan.experiments.count)
    }

    /// Creates the run's ledger, after undoing what dead runs of the same file left on this
    /// machine (a process they froze, services that outlived them) and on the other hosts whose
    /// recovery needs nothing the run brings (services on ssh hosts). What dead runs left on a
    /// Toxiproxy server is for the backend that connects to it, with its token. A ledger that cannot be made is a warning:
    /// the run goes on, unprotected against a kill, as it says.
    private func openLedger(_ plan: RunPlan) async -> RunLedger {
        let directory = LedgerDirectory.path(environment: plan.options.environment)
        let context = RecoveryContext(environment: plan.options.environment, logger: logger)
        let recovery = Recovery(registry: registry, directory: directory, context: context)
        let report = await recovery.run(.beforeRun(of: plan.suite.file), automatic: true)
        for line in report.lines { observer.handle(.setupStep(line)) }
        if report.failedCount > 0 {
            // The run goes on: what stays is in the dead run's ledger, for faultline recover.
            logger.warning(
                "\(report.failedCount) thing\(report.failedCount == 1 ? "" : "s") a dead run left could not be undone (above) and stay\(report.failedCount == 1 ? "s" : "") in its ledger; faultline recover retries"
            )
        }
        do {
            return try RunLedger.create(in: directory, header: LedgerHeader(file: plan.suite.file, profile: plan.profile?.name))
        } catch {
            logger.warning("\(error); what this run injects cannot be recovered if it is killed")
            return .disabled
        }
    }

    /// Waits for `--start-at`, or until the first interrupt.
    /// - Returns: why the run cannot start: it was ready more than `lateness` seconds after the instant.
    private func waitUntil(_ instant: Date, lateness: Double, interruption: Interruption) async -> String? {
        let wait = instant.timeIntervalSinceNow
        let text = Timestamp(instant).text
        if wait < -lateness {
            return "the run was ready \(DurationFormat.seconds(-wait)) after --start-at \(text) (at most \(DurationFormat.seconds(lateness)) "
                + "late may start): a late start would not line up with the other shards; give every shard a later instant"
        }
        guard wait > 0 else { return nil }
        observer.handle(.setupStep("waiting \(DurationFormat.seconds(wait)) for --start-at \(text)"))
        let sleeper = Task { try? await Task.sleep(for: .seconds(wait)) }
        let token = interruption.on(count: 1) { sleeper.cancel() }
        await sleeper.value
        interruption.remove(token)
        return nil
    }

    /// Starts the plan's run extensions in order; each one started is added to `teardown`.
    /// - Returns: why start-up failed, or nil.
    private func startExtensions(_ plan: RunPlan, setup: RunSetup, teardown: Teardown) async throws -> String? {
        for planned in plan.extensions {
            try Task.checkCancellation()
            // The sections see the shared configuration and what the extensions before exported.
            var substitution = plan.shared.substitution
            for (key, value) in setup.configuration { substitution.variables[key] = value }
            let extensionSetup = RunSetup(
                sections: try planned.sections.substituted(substitution), configuration: setup.configuration, resources: setup.resources,
                logger: setup.logger, seed: setup.seed, runDirectory: setup.runDirectory, environment: setup.environment, registry: registry,
                progress: { [observer] in observer.handle(.setupStep($0)) })
            do {
                if let handle = try await planned.start(extensionSetup) {
                    await teardown.add(planned.name) { await handle.stop() }
                }
            } catch is CancellationError {
                throw CancellationError()
            } catch let failure as RunSetupFailure {
                return failure.description
            } catch {
                return "\(planned.name): \(error)"
            }
            for (key, value) in extensionSetup.configuration where setup.configuration[key] != value { setup.export(key, value) }
            setup.replaceResources(extensionSetup.resources)
        }
        return nil
    }

    /// Stops what start-up started, in reverse order; idempotent.
    actor Teardown {
        private var steps: [(String, @Sendable () async -> [String])] = []
        private var done = false

        func add(_ name: String, _ step: @escaping @Sendable () async -> [String]) { steps.append((name, step)) }

        var hasSteps: Bool { !steps.isEmpty }

        func run() async -> [String] {
            guard !done else { return [] }
            done = true
            var problems: [String] = []
            for (_, step) in steps.reversed() { problems += await step() }
            steps.removeAll()
            return problems
        }
    }
}
