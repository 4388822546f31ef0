import FaultlineKit
import FaultlineTestSupport
import Foundation
import Testing

@testable import FaultlineReports

/// JUnit XML validates against the schemas CI systems follow and says what a CI page should show.
@Suite struct JUnitTests {
    static let schemas = ["junit-10.xsd", "JUnit.xsd"]

    /// Runs `xmllint --schema` on the XML; returns xmllint's complaints, empty when valid.
    static func validate(_ xml: String, schema: String) async throws -> String? {
        let xmllint = try #require(installed("xmllint"), "xmllint not found: \(Tools.setupHint)")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-junit-\(UUID().uuidString).xml").path
        try xml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try await run(xmllint, ["--noout", "--schema", Fixtures.path("schemas/" + schema), file])
        return result.status == 0 ? nil : result.stderr
    }

    static func allJournals() throws -> [Journal] {
        try Fixtures.suiteJournals() + Fixtures.suiteJournals("demo") + [
            try Fixtures.journal("interrupted.json"), try Fixtures.journal("compare-baseline.json"),
        ]
    }

    @Test(arguments: schemas)
    func validatesAgainstTheSchema(_ schema: String) async throws {
        let journals = try Self.allJournals()
        for batch in [journals, [journals[0]], [try Fixtures.journal("interrupted.json")]] {
            let xml = try JUnitReporter().render(batch, options: ReportOptions(suiteName: "checkout-resilience"))
            let problems = try await Self.validate(xml, schema: schema)
            #expect(problems == nil, "\(schema): \(problems ?? "")")
        }
    }

    /// The schema check can fail: a testcase without a name and a suite without counts are rejected.
    @Test(arguments: schemas)
    func schemaRejectsInvalidXML(_ schema: String) async throws {
        let invalid = """
            <?xml version="1.0" encoding="UTF-8"?>
            <testsuites><testsuite name="x" package="p" id="0" timestamp="2026-01-01T00:00:00" hostname="h" time="1">
            <properties/><testcase classname="c" time="0.1"/><system-out/><system-err/></testsuite></testsuites>
            """
        #expect(try await Self.validate(invalid, schema: schema) != nil)
    }

    @Test func oneSuitePerExperimentAndACasePerProbeCheckAndFailingActivity() throws {
        let journals = try Self.allJournals()
        let xml = try JUnitReporter().render(journals, options: ReportOptions())
        #expect(xml.components(separatedBy: "<testsuite ").count - 1 == journals.count)
        for (index, journal) in journals.enumerated() {
            let view = ExperimentView(journal, number: index + 1)
            let cases = JUnitReporter.testCases(view, suiteName: nil)
            let probeChecks = view.checks.reduce(0) { $0 + $1.record.probes.count }
            let failingActivities = (journal.run + journal.rollbacks).filter { $0.status == .failed || $0.status == .interrupted }.count
            let failedCleanups = journal.cleanup.filter { $0.status != .succeeded }.count
            // Method probes judged by a tolerance are testcases too.
            let judgedMethodProbes = journal.run.filter { $0.toleranceMet != nil && $0.status != .failed && $0.status != .interrupted }.count
            let extra = cases.count - probeChecks - failingActivities - failedCleanups - judgedMethodProbes
            // An experiment that did not end as it should always carries a failure or error, so CI shows it red;
            // one that deviates as its suite documents does not.
            let red = cases.contains { if case .failure = $0.result { true } else if case .error = $0.result { true } else { false } }
            #expect(red == (journal.verdict != .completed), "\(journal.title): \(journal.outcome)")
            #expect(extra == 0 || (extra == 1 && cases.last?.name == "outcome"), "\(journal.title): \(cases.map(\.name))")
        }
    }

    @Test func failuresCarryTheMessages() throws {
        let suite = try Fixtures.suiteJournals()
        let xml = try JUnitReporter().render(suite, options: ReportOptions())
        // The deviated load probe: a failure with the threshold that was missed.
        #expect(xml.contains("<failure type=\"tolerance\" message=\"p(95)&lt;200"))
        // The aborted method: an error with the activity's message.
        #expect(xml.contains("<error type=\"activity\" message=\"action &quot;drain-retry-queue&quot; timed out"))
        // The failed gate: a failure naming the value.
        #expect(xml.contains("expected 0, got 3"))
        let interrupted = try JUnitReporter().render([try Fixtures.journal("interrupted.json")], options: ReportOptions())
        #expect(interrupted.contains("<error type=\"interrupted\""))
    }

    @Test func escapesMarkupAndControlCharacters() {
        #expect(JUnitReporter.escape("a<b>&\"c\"", attribute: true) == "a&lt;b&gt;&amp;&quot;c&quot;")
        #expect(JUnitReporter.escape("line\nnext", attribute: true) == "line&#10;next")
        #expect(JUnitReporter.escape("bell\u{07}") == "bell\u{FFFD}")
    }
}

/// A suite can document that an experiment deviates (`expect: deviated`); every format then shows it as expected.
@Suite struct ExpectedOutcomeTests {
    static func deviatedAsDocumented() throws -> Journal {
        var journal = try #require(try Fixtures.suiteJournals().first { $0.outcome == .deviated })
        journal.expected = .deviated
        return journal
    }

    @Test func markdownAndHTMLSayAsExpected() throws {
        let journal = try Self.deviatedAsDocumented()
        let markdown = try MarkdownReporter().render([journal], options: ReportOptions())
        #expect(markdown.contains("✅ **deviated (as expected)**"))
        let html = try HTMLReporter().render([journal], options: ReportOptions())
        #expect(html.contains("deviated (as expected)"))
    }

    @Test func junitShowsNoFailureForTheDocumentedDeviation() throws {
        let journal = try Self.deviatedAsDocumented()
        let xml = try JUnitReporter().render([journal], options: ReportOptions())
        #expect(!xml.contains("<failure"), "\(xml)")
        // Holding although documented to deviate is the surprise CI must show.
        var held = journal
        held.outcome = .completed
        held.deviated = false
        let surprising = try JUnitReporter().render([held], options: ReportOptions())
        #expect(surprising.contains("<error") || surprising.contains("<failure"))
    }
}
