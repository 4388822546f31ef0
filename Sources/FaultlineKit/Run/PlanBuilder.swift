import Foundation

/// Builds a ``RunPlan``, once: the document → the suite (a single experiment becomes a one-entry
/// suite) and its profile → the shared configuration → the experiments, after `--only` → the run
/// extensions' sections → each experiment validated against its configuration → journals,
/// reports and seed. Every problem goes to one sink, so a user sees them all at once.
struct PlanBuilder {
    let registry: PluginRegistry
    /// The suite or experiment file.
    let path: String
    let options: SuiteRunner.Options
    let sink: DiagnosticSink

    /// The plan, or nil when something stopped it early (the sink says what).
    func build() -> RunPlan? {
        guard let suite = loadSuite() else { return nil }
        let profile: Suite.Profile?
        do {
            profile = try suite.profile(named: options.profile)
        } catch {
            sink.report(error, fallbackLocation: nil, path: nil)
            return nil
        }
        let layers = ConfigurationLayers.shared(suite: suite, profile: profile, options: options, sink: sink)
        let (entries, skipped) = selectedExperiments(suite, profile: profile?.name)

        let sources = ConfigurationSources(providers: registry.configurationProviders)
        let shared = ResolvedConfiguration.resolve(layers, environment: options.environment, sources: sources, sink: sink)
        let extensions = PlanValidation.planExtensions(suite: suite, profile: profile, shared: shared, registry: registry, sink: sink)
        let placeholders = extensions.placeholders

        let journals = JournalLayout(suite: suite, journalPath: options.journalPath)
        var experiments: [PlannedExperiment] = []
        let budget = SubstitutionBudget(total: InputLimits.documents.substitutionTotal)
        // Each experiment resolves its configuration over the shared one: count that too.
        let sharedValues = shared.configuration.count + shared.secrets.values.reduce(0) { $0 + $1.count }
        var planValues = entries.reduce(0) { $0 + $1.values }
        for (index, (experiment, expectation, _)) in entries.enumerated() {
            planValues += sharedValues
            guard planValues <= InputLimits.documents.planValues else {
                sink.report(Self.tooLarge(at: experiment.document.location))
                break
            }
            let evaluated = ConfigurationLayers.evaluate(
                experiment.configuration, exports: placeholders, shared: shared, environment: options.environment, sources: sources, sink: sink)
            let configuration = ConfigurationLayers.experiment(evaluated, exports: placeholders, shared: shared, sink: sink)
            ExperimentValidator.validate(experiment, configuration: configuration, registry: registry, sink: sink, budget: budget)
            ToxicBackendExtension.checkToxics(experiment, suite: suite, profile: profile, registry: registry, sink: sink)
            experiments.append(
                PlannedExperiment(
                    experiment: experiment, expectation: expectation, configuration: configuration, evaluatedLayer: evaluated,
                    journalPath: journals.path(of: index, experiment)))
        }

        var reports = ReportPlan(
            formats: options.reportFormats ?? profile?.reports?.formats ?? suite.reports?.formats ?? [],
            directory: options.reportDirectory ?? profile?.reports?.dir ?? suite.reports?.dir ?? "reports")
        reports.comparisons = (profile?.reports?.compare ?? suite.reports?.compare ?? []).map { comparison in
            ComparisonReportPlan(
                name: comparison.name, title: comparison.title, baselineOrigin: resolve(comparison.baseline), afterOrigin: resolve(comparison.after))
        }
        PlanValidation.checkReportFormats(reports.formats, file: path, registry: registry, sink: sink)

        let seed = options.seed ?? profile?.seed ?? suite.seed ?? UInt64.random(in: 1..<UInt64(Int64.max))
        return RunPlan(
            suite: suite, profile: profile, shared: shared, extensions: extensions.planned, experiments: experiments, skipped: skipped, seed: seed,
            journals: journals, reports: reports, options: options)
    }

    /// The suite the file holds, or a one-entry suite around the experiment it holds.
    private func loadSuite() -> Suite? {
        let document: SourceNode
        do {
            document = try DocumentLoader.load(path: path)
        } catch {
            sink.report(error, fallbackLocation: nil, path: nil)
            return nil
        }
        if Suite.isSuite(document) {
            return Suite.parse(
                document, file: path, extensionKeys: registry.extensionSuiteKeys, profileKeys: registry.extensionProfileKeys, sink: sink)
        }
        return Suite(
            file: path, name: ((path as NSString).lastPathComponent as NSString).deletingPathExtension, description: nil, seed: nil,
            configuration: ConfigurationLayer(name: "suite"),
            entries: [Suite.Entry(path: nil, inline: document, location: document.location, documentPath: .root)],
            profiles: [], reports: nil, extensionSections: [:], isSuiteFile: false)
    }

    static func tooLarge(at location: SourceLocation?) -> Diagnostic {
        Diagnostic(
            "the run's experiments and the configuration each sees hold more than \(InputLimits.documents.planValues) values in all", at: location,
            hint: "run the suite in parts (--only), or share less configuration")
    }

    /// A file the suite names, as an experiment's `origin` names it: relative to the suite's directory.
    private func resolve(_ file: String) -> String {
        let baseDirectory = (path as NSString).deletingLastPathComponent
        return file.hasPrefix("/") || baseDirectory.isEmpty ? file : (baseDirectory as NSString).appendingPathComponent(file)
    }

    /// The suite's experiments, parsed, with their documented outcomes and the number of values
    /// each holds; only those `--only` names; those whose entry skips the profile are left out
    /// (still parsed, so a mistake in one shows on every profile) and returned beside them.
    private func selectedExperiments(_ suite: Suite, profile: String?) -> ([(Experiment, Outcome?, values: Int)], skipped: [SkippedExperiment]) {
        var experiments: [(Experiment, Outcome?, values: Int)] = []
        var skipped: [SkippedExperiment] = []
        // A file the suite names several times is read once.
        var loaded: [String: (node: SourceNode, values: Int)] = [:]
        var planValues = 0
        for entry in suite.entries {
            if let file = entry.path {
                let resolved = resolve(file)
                let document: (node: SourceNode, values: Int)
                do {
                    if let known = loaded[resolved] {
                        document = known
                    } else {
                        document = try DocumentLoader.loadCounted(path: resolved, limits: .documents)
                        loaded[resolved] = document
                    }
                } catch let diagnostic as Diagnostic where diagnostic.location == nil {
                    sink.report(Diagnostic(diagnostic.message, at: entry.location, path: entry.documentPath, hint: diagnostic.hint))
                    continue
                } catch {
                    sink.report(error, fallbackLocation: entry.location, path: entry.documentPath)
                    continue
                }
                planValues += document.values
                guard planValues <= InputLimits.documents.planValues else {
                    sink.report(Self.tooLarge(at: entry.location))
                    break
                }
                if let experiment = ExperimentParser.parse(document.node, origin: resolved, sink: sink) {
                    if let profile, entry.skipProfiles.contains(profile) {
                        skipped.append(SkippedExperiment(title: experiment.title, origin: resolved, profile: profile))
                    } else {
                        experiments.append((experiment, entry.expect, document.values))
                    }
                }
            } else if let inline = entry.inline {
                let origin = suite.isSuiteFile ? "\(path) (\(entry.documentPath))" : path
                if let experiment = ExperimentParser.parse(inline, origin: origin, path: entry.documentPath, sink: sink) {
                    // Counted with the suite's own document.
                    experiments.append((experiment, entry.expect, 0))
                }
            }
        }
        guard !options.only.isEmpty else { return (experiments, skipped) }
        func selected(_ title: String, _ origin: String) -> Bool {
            options.only.contains { title.localizedCaseInsensitiveContains($0) || origin.localizedCaseInsensitiveContains($0) }
        }
        let kept = experiments.filter { experiment, _, _ in selected(experiment.title, experiment.origin) }
        skipped = skipped.filter { selected($0.title, $0.origin) }
        if kept.isEmpty {
            let skippedNote = skipped.isEmpty ? "" : " that runs on profile \(profile ?? "")"
            sink.report(
                Diagnostic(
                    "no experiment\(skippedNote) matches --only \(options.only.joined(separator: ", "))",
                    at: SourceLocation(file: path, line: 1, column: 1),
                    hint: skipped.isEmpty ? nil : "skip_profiles leaves out \(skipped.map(\.origin).joined(separator: ", ")) on this profile"))
        }
        return (kept, skipped)
    }
}
