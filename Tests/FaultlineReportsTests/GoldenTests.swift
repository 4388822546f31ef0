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
        /// The demo suite in experiments.yaml, as `faultline run` wrote it: real services, toxics and http.load.
        case demo

        var journals: [Journal] {
            get throws {
                switch self {
                case .suite: try Fixtures.suiteJournals()
                case .latency: [try Fixtures.journal("suite/01-checkout-survives-300-ms-of-database-latency.json")]
                case .interrupted: [try Fixtures.journal("interrupted.json")]
                case .demo: try Fixtures.suiteJournals("demo")
                }
            }
        }

        /// What `faultline run` passes for a suite run, nothing for single experiments.
        var options: ReportOptions {
            switch self {
            case .suite: ReportOptions(title: "checkout-resilience", suiteName: "checkout-resilience")
            case .demo: ReportOptions(title: "orders", suiteName: "orders")
            default: ReportOptions()
            }
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
            try NodeDecoder(rejectsUnknownKeys: false).decode(
                Journal.self, from: JSONReader.parse(String(decoding: try journal.json(), as: UTF8.self), file: "x"))
        }
        for reporter in Self.reporters {
            let first = try reporter.render(journals, options: fixture.options)
            #expect(first == (try reporter.render(journals, options: fixture.options)), "\(reporter.format) differs between two renders")
            #expect(first == (try reporter.render(reread, options: fixture.options)), "\(reporter.format) differs after a journal round trip")
        }
    }
}

/// Journals that are not the happy path still render in every format.
@Suite struct UnusualJournalTests {
    @Test func aJournalLeftByACrash() throws {
        var journal = try Fixtures.journal("suite/01-checkout-survives-300-ms-of-database-latency.json")
        journal.status = .running
        journal.outcome = .running
        journal.end = nil
        journal.duration = nil
        journal.steadyStates.after = nil
        journal.rollbacks = []
        journal.cleanup = []
        for index in journal.faults.indices { journal.faults[index].end = nil }
        let view = ExperimentView(journal, number: 1)
        #expect(view.duration > 3, "the last activity's end stands in for the missing end")
        #expect(view.faults.allSatisfy { $0.isOpen })
        for reporter in GoldenTests.reporters {
            let text = try reporter.render([journal], options: ReportOptions())
            #expect(text.contains("Checkout survives 300 ms of database latency"))
        }
        let markdown = try MarkdownReporter().render([journal], options: ReportOptions())
        #expect(markdown.contains("still active"))
        let junit = try JUnitReporter().render([journal], options: ReportOptions())
        #expect(junit.contains("<testcase name=\"outcome\""), "a run that never finished is not green in CI")
    }

    @Test func anEmptyExperimentAndADryRun() throws {
        var empty = try Fixtures.journal("interrupted.json")
        empty.steadyStates = SteadyStates()
        empty.run = []
        empty.rollbacks = []
        empty.cleanup = []
        empty.faults = []
        var dry = try Fixtures.journal("suite/05-the-host-can-run-and-clean-up-a-scratch-file.json")
        dry.dry = "actions"
        for index in dry.run.indices where dry.run[index].kind == "action" { dry.run[index].status = .skipped }
        for reporter in GoldenTests.reporters {
            _ = try reporter.render([empty, dry], options: ReportOptions())
        }
        let markdown = try MarkdownReporter().render([dry], options: ReportOptions())
        #expect(markdown.contains("| Dry run | actions |"))
        #expect(markdown.contains("⏭️ skipped"))
    }
}
