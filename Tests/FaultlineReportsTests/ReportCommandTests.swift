import FaultlineKit
import Foundation
import Testing

@testable import FaultlineCLI
@testable import FaultlineReports

/// `faultline report` without the process around it.
@Suite struct ReportCommandTests {
    static let registry = PluginRegistry(plugins: Faultline.builtins)

    @Test func theBuiltInsRegisterEveryFormat() {
        #expect(Set(Self.registry.reporters.keys) == ["md", "html", "junit"])
    }

    @Test func directoryOfJournalsGivesOneSuiteReport() throws {
        let request = ReportRequest(
            inputs: [Fixtures.path("journals/suite")], format: "md", outputPath: nil, compare: false, title: "checkout-resilience")
        let text = try request.render(registry: Self.registry)
        #expect(text == (try MarkdownReporter().render(try Fixtures.suiteJournals(), options: ReportOptions(title: "checkout-resilience"))))
    }

    @Test(arguments: [("report.html", "html"), ("out/junit.xml", "junit"), ("notes.markdown", "md"), ("report.txt", "md")])
    func formatFollowsTheOutputExtension(_ output: String, _ format: String) throws {
        let request = ReportRequest(inputs: [], format: nil, outputPath: output, compare: false, title: nil)
        #expect(try request.reporter(Self.registry).format == format)
    }

    @Test func unknownFormatSuggestsTheClosest() {
        let request = ReportRequest(
            inputs: [Fixtures.path("journals/interrupted.json")], format: "jnuit", outputPath: nil, compare: false, title: nil)
        #expect(throws: ReportRequest.Failure.self) { try request.render(registry: Self.registry) }
        do {
            _ = try request.render(registry: Self.registry)
        } catch {
            #expect("\(error)" == "unknown report format \"jnuit\" (did you mean \"junit\"?)")
        }
    }

    @Test func badInputsAreNamed() throws {
        let missing = ReportRequest(inputs: ["/nonexistent/journal.json"], format: "md", outputPath: nil, compare: false, title: nil)
        #expect(throws: ReportRequest.Failure(message: "/nonexistent/journal.json: no such file or directory")) {
            try missing.render(registry: Self.registry)
        }
        let notAJournal = ReportRequest(
            inputs: [Fixtures.path("experiments/compare.yaml")], format: "md", outputPath: nil, compare: false, title: nil)
        do {
            _ = try notAJournal.render(registry: Self.registry)
            Issue.record("an experiment file is not a journal")
        } catch {
            #expect("\(error)".contains("compare.yaml is not a readable Faultline journal"))
        }
        let junitCompare = ReportRequest(
            inputs: [Fixtures.path("journals/compare-baseline.json"), Fixtures.path("journals/compare-after.json")], format: "junit", outputPath: nil,
            compare: true, title: nil)
        do {
            _ = try junitCompare.render(registry: Self.registry)
            Issue.record("junit cannot compare")
        } catch {
            #expect("\(error)" == "the junit report cannot compare runs; use --format html or md")
        }
    }

    @Test func compareRendersTheComparison() throws {
        let request = ReportRequest(
            inputs: [Fixtures.path("journals/compare-baseline.json"), Fixtures.path("journals/compare-after.json")], format: "html", outputPath: nil,
            compare: true, title: nil)
        let text = try request.render(registry: Self.registry)
        #expect(text.contains("Before and after: Product search survives a slow inventory service"))
        let one = ReportRequest(inputs: [Fixtures.path("journals/compare-after.json")], format: "md", outputPath: nil, compare: true, title: nil)
        #expect(throws: ReportRequest.Failure.self) { try one.render(registry: Self.registry) }
    }

    @Test func writesIntoANewDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-report-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/nested/report.md"
        let request = ReportRequest(inputs: [Fixtures.path("journals/interrupted.json")], format: nil, outputPath: path, compare: false, title: nil)
        try request.write(try request.render(registry: Self.registry), to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8).hasPrefix("# Inventory sync survives a network partition"))
    }
}

/// Secrets stay masked in every format: the fixture journal holds `***` where the run saw the
/// secret, and no report puts the value back.
@Suite struct SecretTests {
    static let secret = "s3cr3t-fixture-token-9f2c"

    @Test func noFormatRevealsTheSecret() throws {
        let journals = try Fixtures.suiteJournals()
        let scratch = try #require(journals.first { $0.title == "The host can run and clean up a scratch file" })
        let token = try #require(scratch.run.first { $0.name == "token-is-sent" })
        #expect(token.output?["stdout"]?.stringValue == "Authorization: Bearer ***\n", "the journal holds the mask")
        let reports = [
            try MarkdownReporter().render(journals, options: ReportOptions()), try HTMLReporter().render(journals, options: ReportOptions()),
            try JUnitReporter().render(journals, options: ReportOptions()),
        ]
        for report in reports {
            #expect(!report.contains(Self.secret))
            #expect(!report.contains("s3cr3t"))
        }
        #expect(reports[1].contains("Authorization: Bearer ***"), "the HTML shows the masked output")
    }
}
