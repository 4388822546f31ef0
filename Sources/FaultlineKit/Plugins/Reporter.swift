import Foundation

/// Turns journals into an artifact people read: Markdown, HTML, JUnit XML.
///
/// ## Implementation requirements
/// - **Deterministic**: the same journals give the same bytes (stable ordering, no current time),
///   so golden files can hold the output.
/// - **Secrets stay masked**: journals already hold `***`; never re-substitute configuration.
/// - Rendering is pure and synchronous: no network, no files other than the returned text.
public protocol Reporter: Sendable {
    /// The `--report`/`--format` name, e.g. `md`.
    var format: String { get }
    /// The file extension of the output, e.g. `md`, `html`, `xml`.
    var fileExtension: String { get }
    /// One line for `faultline plugins`.
    var summary: String { get }

    /// Renders one report from one or more journals (a suite gives one report with a summary first).
    func render(_ journals: [Journal], options: ReportOptions) throws -> String
}

/// Options common to every report.
public struct ReportOptions: Sendable {
    /// A title for the report; defaults to the suite's name or the experiment's title.
    public var title: String?
    /// The suite's name, when the journals come from a suite run.
    public var suiteName: String?

    public init(title: String? = nil, suiteName: String? = nil) {
        self.title = title
        self.suiteName = suiteName
    }
}

/// A reporter that can also compare a baseline run with a later one.
public protocol ComparisonReporter: Reporter {
    /// Renders the before/after table of metrics.
    func renderComparison(baseline: [Journal], after: [Journal], options: ReportOptions) throws -> String
}
