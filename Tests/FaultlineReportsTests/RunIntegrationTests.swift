import FaultlineKit
import FaultlineProcess
import FaultlineTesting
import Foundation
import Testing

@testable import FaultlineReports

/// `faultline run --report md,html,junit --report-dir DIR` writes reports through the registered
/// reporters when a run ends, also after an interrupt.
@Suite struct RunIntegrationTests {
    /// Interrupts the run as soon as a named activity starts: no sleeps, the event is the signal.
    final class InterruptOnStart: RunObserver, Sendable {
        let activity: String
        let interruption: Interruption

        init(activity: String, interruption: Interruption) {
            self.activity = activity
            self.interruption = interruption
        }

        func handle(_ event: RunEvent) {
            if case .activityStarted(let name, _, _, _) = event, name == activity { interruption.interrupt("SIGINT") }
        }
    }

    static let experiment = """
        title: Reports are written when a run ends
        steady-state-hypothesis:
          title: healthy
          probes:
            - {type: probe, name: healthy, tolerance: 0, provider: {type: process, path: sh, arguments: ["-c", "exit 0"]}}
        method:
          - {type: action, name: inject, provider: {type: test.action, label: a fault, fault: true, cleanup: true}}
          - {type: action, name: wait, provider: {type: test.action, label: wait, delay: 30}}
        rollbacks:
          - {type: action, name: undo, provider: {type: process, path: sh, arguments: ["-c", "exit 0"]}}
        """

    private func run(interruptAt activity: String?, yaml: String = experiment) async throws -> (SuiteRunner.Result, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-run-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = directory + "/experiment.yaml"
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        let kit = TestKit()
        let interruption = Interruption()
        let observer: any RunObserver = activity.map { InterruptOnStart(activity: $0, interruption: interruption) } ?? kit.observer
        let runner = SuiteRunner(registry: kit.registry(plugins: [ProcessPlugin.self, ReportsPlugin.self]), observer: observer)
        var options = SuiteRunner.Options()
        options.journalPath = directory + "/journal.json"
        options.reportFormats = ["md", "html", "junit"]
        options.reportDirectory = directory + "/reports"
        let prepared = try runner.load(path: file, options: options)
        return (await runner.run(prepared, interruption: interruption), directory)
    }

    @Test func writesEveryFormatAfterARun() async throws {
        let yaml = Self.experiment.replacingOccurrences(of: ", delay: 30", with: "")
        let (result, directory) = try await run(interruptAt: nil, yaml: yaml)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(result.outcome == .completed)
        let names = result.reportPaths.map { ($0 as NSString).lastPathComponent }.sorted()
        #expect(
            names == [
                "reports-are-written-when-a-run-ends.html", "reports-are-written-when-a-run-ends.md", "reports-are-written-when-a-run-ends.xml",
            ])
        for path in result.reportPaths {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.contains("Reports are written when a run ends"))
        }
        // What was written is what the reporters make of the journal.
        let journal = try Journal.load(path: directory + "/journal.json")
        let markdown = try String(contentsOfFile: directory + "/reports/reports-are-written-when-a-run-ends.md", encoding: .utf8)
        #expect(markdown == (try MarkdownReporter().render([journal], options: ReportOptions())))
    }

    @Test func writesReportsAfterAnInterrupt() async throws {
        let (result, directory) = try await run(interruptAt: "wait")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(result.interrupted)
        #expect(result.reportPaths.count == 3)
        let markdown = try String(contentsOfFile: directory + "/reports/reports-are-written-when-a-run-ends.md", encoding: .utf8)
        #expect(markdown.contains("⚠️ **interrupted** — interrupted by SIGINT"))
        #expect(markdown.contains("| `undo` | action | ✅ succeeded |"), "the rollback ran and is reported")
        let html = try String(contentsOfFile: directory + "/reports/reports-are-written-when-a-run-ends.html", encoding: .utf8)
        #expect(html.contains("data-fault=\"a fault\""), "the fault window is on the timeline")
        let xml = try String(contentsOfFile: directory + "/reports/reports-are-written-when-a-run-ends.xml", encoding: .utf8)
        #expect(xml.contains("<error type=\"interrupted\""))
    }
}
