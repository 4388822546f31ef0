import FaultlineKit
import Foundation

/// `junit`: JUnit XML, so CI systems show a chaos run like a test run.
///
/// One `<testsuite>` per experiment; one `<testcase>` per hypothesis probe check (a missed
/// tolerance is a `<failure>`, a probe that could not run an `<error>`), one per method or rollback
/// activity that failed or was interrupted, and one per failed cleanup. An experiment that did not
/// complete but has no failing testcase gets an `outcome` testcase with the reason, so a red run is
/// never green in CI. The output validates against both the Apache Ant JUnit schema and Jenkins'
/// `junit-10.xsd` (kept in the tests' fixtures).
public struct JUnitReporter: Reporter {
    public let format = "junit"
    public let fileExtension = "xml"
    public let summary = "JUnit XML: one testsuite per experiment, one testcase per hypothesis probe and failing activity"

    public init() {}

    public func render(_ journals: [Journal], options: ReportOptions) throws -> String {
        let report = ReportView(journals, options: options)
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
        for experiment in report.experiments {
            out += testsuite(experiment, id: experiment.number - 1, suiteName: options.suiteName)
        }
        out += "</testsuites>\n"
        return out
    }

    struct TestCase {
        var name: String
        var classname: String
        var time: Double
        var result: Result

        enum Result {
            case passed
            case failure(type: String, message: String, text: String)
            case error(type: String, message: String, text: String)
            case skipped(message: String)
        }
    }

    /// The testcases of one experiment, in run order.
    static func testCases(_ experiment: ExperimentView, suiteName: String?) -> [TestCase] {
        let journal = experiment.journal
        let classname = [suiteName.map(slug), slug(journal.title)].compactMap { $0 }.joined(separator: ".")
        var cases: [TestCase] = []
        // A suite can document that an experiment deviates (`expect: deviated`): the misses that
        // make it deviate are then what was expected, not failures for CI to show.
        let deviationExpected = journal.expected == .deviated && journal.outcome == .deviated
        for (phase, record) in ExperimentView.phasedRecords(journal, checks: experiment.checks) {
            let isHypothesis = phase.hasPrefix("hypothesis")
            let failing = record.status == .failed || record.status == .interrupted
            // Hypothesis probes, method probes judged by a tolerance, and whatever failed.
            guard isHypothesis || failing || record.toleranceMet != nil else { continue }
            let name = "\(phase): \(record.name)"
            var details = ["\(record.kind) \(record.name) (\(phase)), \(Format.duration(record.duration))"]
            if let tolerance = ToleranceText.of(record) { details.append("tolerance: \(tolerance)") }
            if let value = ToleranceText.judgedValue(record) { details.append("value: \(value)") }
            if let load = LoadResult(record.output, providerType: record.providerType) {
                details += load.thresholds.map { threshold in
                    "threshold \(threshold.scope) \(threshold.expression): " + (threshold.measured.map { Format.metric(threshold.metric, $0) } ?? "—")
                        + (threshold.ok ? " passed" : " missed")
                }
            }
            details += record.exception ?? []
            let text = details.joined(separator: "\n")
            let result: TestCase.Result
            switch record.status {
            case .succeeded where record.toleranceMet == false && deviationExpected && !phase.contains("before"):
                result = .passed
            case .succeeded where record.toleranceMet == false:
                result = .failure(type: "tolerance", message: record.toleranceMessage ?? "tolerance not met", text: text)
            case .succeeded:
                result = .passed
            case .failed:
                result = .error(type: "activity", message: record.exception?.first ?? "failed", text: text)
            case .interrupted:
                result = .error(type: "interrupted", message: record.exception?.first ?? "interrupted", text: text)
            case .skipped:
                result = .skipped(message: journal.dry.map { "dry run (\($0))" } ?? "skipped")
            }
            cases.append(TestCase(name: name, classname: classname, time: record.duration, result: result))
        }
        for cleanup in journal.cleanup where cleanup.status != .succeeded {
            let duration = cleanup.end.date.flatMap { end in cleanup.start.date.map { end.timeIntervalSince($0) } } ?? 0
            cases.append(
                TestCase(
                    name: "cleanup: \(cleanup.description)", classname: classname, time: duration,
                    result: .error(type: "cleanup", message: cleanup.error ?? cleanup.status.rawValue, text: cleanup.error ?? cleanup.status.rawValue)
                ))
        }
        let hasProblem = cases.contains { if case .passed = $0.result { false } else if case .skipped = $0.result { false } else { true } }
        if journal.verdict != .completed && !hasProblem {
            var lines = ["outcome: \(Label.outcome(journal))"]
            if let reason = journal.reason { lines.append(reason) }
            lines += journal.leftUndone.map { "left undone: \($0)" }
            cases.append(
                TestCase(
                    name: "outcome", classname: classname, time: experiment.duration,
                    result: .error(
                        type: journal.outcome.rawValue, message: journal.reason ?? journal.outcome.rawValue, text: lines.joined(separator: "\n"))))
        }
        return cases
    }

    private func testsuite(_ experiment: ExperimentView, id: Int, suiteName: String?) -> String {
        let journal = experiment.journal
        let cases = Self.testCases(experiment, suiteName: suiteName)
        var failures = 0
        var errors = 0
        var skipped = 0
        for testCase in cases {
            switch testCase.result {
            case .passed: break
            case .failure: failures += 1
            case .error: errors += 1
            case .skipped: skipped += 1
            }
        }
        let timestamp = experiment.start.map(Format.junitTimestamp) ?? "1970-01-01T00:00:00"
        var out = "  <testsuite"
        out += attribute("name", journal.title)
        out += attribute("package", "faultline")
        out += attribute("id", "\(id)")
        out += attribute("tests", "\(cases.count)")
        out += attribute("failures", "\(failures)")
        out += attribute("errors", "\(errors)")
        out += attribute("skipped", "\(skipped)")
        out += attribute("time", Self.seconds(experiment.duration))
        out += attribute("timestamp", timestamp)
        out += attribute("hostname", journal.node.isEmpty ? "localhost" : journal.node)
        out += ">\n"

        var properties: [(String, String)] = [
            ("outcome", journal.outcome.rawValue), ("status", journal.status.rawValue), ("deviated", journal.deviated ? "true" : "false"),
        ]
        if let reason = journal.reason { properties.append(("reason", reason)) }
        if let profile = journal.profile { properties.append(("profile", profile)) }
        properties += [
            ("origin", journal.origin), ("run_id", journal.runID), ("experiment_hash", journal.experimentHash), ("seed", "\(journal.seed)"),
            ("faultline_version", journal.faultlineVersion),
        ]
        out += "    <properties>\n"
        for (name, value) in properties { out += "      <property\(attribute("name", name))\(attribute("value", value))/>\n" }
        out += "    </properties>\n"

        for testCase in cases {
            out +=
                "    <testcase\(attribute("name", testCase.name))\(attribute("classname", testCase.classname))\(attribute("time", Self.seconds(testCase.time)))"
            switch testCase.result {
            case .passed:
                out += "/>\n"
            case .failure(let type, let message, let text):
                out += ">\n      <failure\(attribute("type", type))\(attribute("message", message))>\(Self.escape(text))</failure>\n    </testcase>\n"
            case .error(let type, let message, let text):
                out += ">\n      <error\(attribute("type", type))\(attribute("message", message))>\(Self.escape(text))</error>\n    </testcase>\n"
            case .skipped(let message):
                out += ">\n      <skipped\(attribute("message", message))/>\n    </testcase>\n"
            }
        }
        out += "    <system-out>\(Self.escape(systemOut(experiment)))</system-out>\n"
        out +=
            "    <system-err>\(Self.escape(experiment.failures.map { "\($0.phase): \($0.name): \($0.message)" }.joined(separator: "\n")))</system-err>\n"
        out += "  </testsuite>\n"
        return out
    }

    /// What a CI page shows under the suite: the verdict, the faults and the load in a few lines.
    private func systemOut(_ experiment: ExperimentView) -> String {
        let journal = experiment.journal
        var lines = ["\(journal.title): \(journal.outcome.rawValue)" + (journal.reason.map { " — \($0)" } ?? "")]
        for fault in experiment.faults {
            let from = experiment.start.map { fault.start.timeIntervalSince($0) } ?? 0
            lines.append("fault \(fault.window.label): \(Format.offset(from)) for \(Format.duration(fault.end.timeIntervalSince(fault.start)))")
        }
        for load in experiment.loads {
            let overall = load.result.overall
            lines.append(
                "load \(load.record.name) (\(load.phase)): \(Format.integer(overall.count)) requests, \(Format.percent(overall.errorRate)) errors, "
                    + "avg \(Format.ms(overall.avgMs)), p95 \(Format.ms(overall.p95Ms)), p99 \(Format.ms(overall.p99Ms)), \(Format.rate(overall.rps))"
            )
        }
        return lines.joined(separator: "\n")
    }

    /// Seconds with millisecond precision, in the form both schemas accept.
    static func seconds(_ value: Double) -> String { String(format: "%.3f", max(0, value)) }

    private func attribute(_ name: String, _ value: String) -> String { " \(name)=\"\(Self.escape(value, attribute: true))\"" }

    /// XML text: markup characters escaped; characters XML 1.0 forbids are replaced.
    static func escape(_ text: String, attribute: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"" where attribute: out += "&quot;"
            case "\n" where attribute: out += "&#10;"
            case "\t" where attribute: out += "&#9;"
            case "\r": out += "&#13;"
            case "\n", "\t": out.unicodeScalars.append(scalar)
            case let c where c.value < 0x20 || (0xFFFE...0xFFFF).contains(c.value) || (0xD800...0xDFFF).contains(c.value): out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
