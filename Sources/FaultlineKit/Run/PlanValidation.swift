/// The checks of a plan that concern the run as a whole: the run extensions' sections and the
/// report formats. (Each experiment is checked by ``ExperimentValidator``.)
enum PlanValidation {
    /// The run extensions with their sections checked and planned, and the example values of
    /// everything they will export.
    struct Extensions {
        var planned: [PlannedExtension]
        var placeholders: [String: Value]
    }

    /// Plans every registered run extension, in start order. Each sees the shared configuration
    /// and example values of what the extensions before it will export (what its sections are
    /// substituted with when it starts); the experiments see every extension's.
    static func planExtensions(
        suite: Suite, profile: Suite.Profile?, shared: ResolvedConfiguration, registry: PluginRegistry, sink: DiagnosticSink
    ) -> Extensions {
        var result = Extensions(planned: [], placeholders: [:])
        for runExtension in registry.runExtensions {
            let sections = RunSections(
                suite: suite.extensionSections.filter { runExtension.suiteKeys.contains($0.key) },
                profile: profile?.extensionSections.filter { runExtension.profileKeys.contains($0.key) } ?? [:], profileName: profile?.name)
            var substitution = shared.substitution
            for (key, value) in result.placeholders { substitution.variables[key] = value }
            let context = RunPlanContext(substitution: substitution, shared: shared.substitution, registry: registry)
            let placeholders = runExtension.placeholders(sections)
            if let planned = PlannedExtension.plan(runExtension, sections: sections, placeholders: placeholders, context: context, sink: sink) {
                result.planned.append(planned)
            }
            result.placeholders.merge(placeholders) { $1 }
        }
        return result
    }

    /// Every report format must be a registered reporter's.
    static func checkReportFormats(_ formats: [String], file: String, registry: PluginRegistry, sink: DiagnosticSink) {
        for format in formats where registry.reporters[format] == nil {
            let known = registry.reporters.keys.sorted()
            sink.report(
                Diagnostic(
                    "unknown report format \"\(format)\"", at: SourceLocation(file: file, line: 1, column: 1),
                    hint: Suggestion.didYouMean(format, in: known)
                        ?? (known.isEmpty ? "no reporters are registered" : "known formats: \(known.joined(separator: ", "))")))
        }
    }
}
