import Foundation

/// Writes the reports a plan asks for when the run ends (also after an interrupt): one file per
/// format, named after the suite (or the experiment run alone), and one per comparison
/// (`reports.compare`) and format that can compare, when both of its experiments ran.
struct ReportWriter {
    let registry: PluginRegistry
    let observer: any RunObserver

    /// - Returns: the paths written; a report that cannot be written is a warning, not a failure.
    func write(_ plan: RunPlan, journals: [Journal]) -> [String] {
        let directory = plan.reports.directory
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let suite = plan.suite
        let base = suite.isSuiteFile ? slug(suite.name) : slug(journals.first?.title ?? "experiment")
        var paths: [String] = []
        for format in plan.reports.formats {
            guard let reporter = registry.reporters[format] else { continue }
            let path = (directory as NSString).appendingPathComponent("\(base).\(reporter.fileExtension)")
            do {
                let text = try reporter.render(
                    journals, options: ReportOptions(title: suite.isSuiteFile ? suite.name : nil, suiteName: suite.isSuiteFile ? suite.name : nil))
                try text.write(toFile: path, atomically: true, encoding: .utf8)
                paths.append(path)
            } catch {
                observer.handle(.warning("could not write the \(format) report: \(error)"))
            }
        }
        for comparison in plan.reports.comparisons {
            // An experiment the profile skipped, --only left out or an interrupt stopped before: nothing to compare.
            guard let baseline = journals.last(where: { $0.origin == comparison.baselineOrigin }),
                let after = journals.last(where: { $0.origin == comparison.afterOrigin })
            else { continue }
            for format in plan.reports.formats {
                guard let reporter = registry.reporters[format] as? any ComparisonReporter else { continue }
                let path = (directory as NSString).appendingPathComponent("\(comparison.name).\(reporter.fileExtension)")
                do {
                    let text = try reporter.renderComparison(baseline: [baseline], after: [after], options: ReportOptions(title: comparison.title))
                    try text.write(toFile: path, atomically: true, encoding: .utf8)
                    paths.append(path)
                } catch {
                    observer.handle(.warning("could not write the \(format) comparison \(comparison.name): \(error)"))
                }
            }
        }
        return paths
    }
}
