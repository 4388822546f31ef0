import FaultlineKit
import Foundation
import Testing

@testable import FaultlineReports

/// Every format against golden files, from the fixture journals. Update them deliberately:
/// `FAULTLINE_UPDATE_GOLDEN=1 swift test --filter FaultlineReportsTests`, then read the diff.
@Suite struct GoldenTests {
    /// Named sets of journals with the options a run would pass.
    enum Case: String, CaseIterable, CustomTestStringConvertible {
        case suite, latency, interrupted

        var journals: [Journal] {
            get throws {
                switch self {
                case .suite: try Fixtures.suiteJournals()
                case .latency: [try Fixtures.journal("suite/01-checkout-survives-300-ms-of-database-latency.json")]
                case .interrupted: [try Fixtures.journal("interrupted.json")]
                }
            }
        }

        /// What `faultline run` passes for a suite run, nothing for single experiments.
        var options: ReportOptions {
            self == .suite ? ReportOptions(title: "checkout-resilience", suiteName: "checkout-resilience") : ReportOptions()
        }

        var testDescription: String { rawValue }
    }

    static let reporters: [any Reporter] = [MarkdownReporter(), HTMLReporter(), JUnitReporter()]

    @Test(arguments: Case.allCases)
    func markdown(_ fixture: Case) throws {
        try Fixtures.expectGolden(try MarkdownReporter().render(try fixture.journals, options: fixture.options), "\(fixture.rawValue).md")
    }

    @Test(arguments: Case.allCases)
    func html(_ fixture: Case) throws {
        try Fixtures.expectGolden(try HTMLReporter().render(try fixture.journals, options: fixture.options), "\(fixture.rawValue).html")
    }

    @Test(arguments: Case.allCases)
    func junit(_ fixture: Case) throws {
        try Fixtures.expectGolden(try JUnitReporter().render(try fixture.journals, options: fixture.options), "\(fixture.rawValue).xml")
    }

    @Test func comparisonMarkdown() throws {
        let text = try MarkdownReporter().renderComparison(
            baseline: [try Fixtures.journal("compare-baseline.json")], after: [try Fixtures.journal("compare-after.json")], options: ReportOptions())
        try Fixtures.expectGolden(text, "compare.md")
    }

    @Test func comparisonHTML() throws {
        let text = try HTMLReporter().renderComparison(
            baseline: [try Fixtures.journal("compare-baseline.json")], after: [try Fixtures.journal("compare-after.json")], options: ReportOptions())
        try Fixtures.expectGolden(text, "compare.html")
    }

    /// The same journals give the same bytes, also after a journal is written and read back.
    @Test(arguments: Case.allCases)
    func deterministic(_ fixture: Case) throws {
        let journals = try fixture.journals
        let reread = try journals.map { journal in
            try NodeDecoder(rejectsUnknownKeys: false).decode(Journal.self, from: JSONReader.parse(String(decoding: try journal.json(), as: UTF8.self), file: "x"))
        }
        for reporter in Self.reporters {
            let first = try reporter.render(journals, options: fixture.options)
            #expect(first == (try reporter.render(journals, options: fixture.options)), "\(reporter.format) differs between two renders")
            #expect(first == (try reporter.render(reread, options: fixture.options)), "\(reporter.format) differs after a journal round trip")
        }
    }
}
