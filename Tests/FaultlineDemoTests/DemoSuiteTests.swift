import FaultlineKit
import FaultlineProcess
import FaultlineTesting
import Foundation
import Testing

/// The suite in experiments.yaml, run as a new user runs it: `faultline run` at the package root,
/// on the default profile, against the demo system.
@Suite("The demo suite (experiments.yaml)", .serialized)
struct DemoSuiteTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// What each experiment is documented to end as (see experiments.yaml).
    static let documented: [String: Outcome] = [
        "01-baseline": .completed, "02-store-latency": .completed, "03-store-bandwidth": .completed, "04-store-timeout": .deviated,
        "04b-store-timeout-resilient": .completed, "05-store-slow-close": .completed, "06-store-slicer": .completed,
        "07-store-limit-data": .completed, "08-load-with-a-fault": .completed, "09-notifier-killed": .completed,
        "10-notifier-503": .deviated, "11-notifier-503-resilient": .completed,
    ]

    @Test("every experiment ends as documented, reports are written, and no process or proxy is left")
    func defaultProfile() async throws {
        let faultline = try BuiltProduct.path("faultline")
        let demo = try BuiltProduct.path("faultline-demo")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-suite-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let journals = scratch.appendingPathComponent("journals").path
        let reports = scratch.appendingPathComponent("reports").path

        var environment = ProcessInfo.processInfo.environment
        environment["FAULTLINE_DEMO"] = demo
        environment["NO_COLOR"] = "1"
        let output = scratch.appendingPathComponent("output.txt").path
        let run = try ChildProcess(
            executable: faultline, arguments: ["run", "--journal-path", journals, "--report-dir", reports], environment: environment,
            workingDirectory: Self.packageRoot.path, stdout: .file(output), stderr: .file(output))
        let termination = await run.wait()
        let printed = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(termination == .exited(0), "\(printed)")

        // Each experiment, by its journal.
        let files = try FileManager.default.contentsOfDirectory(atPath: journals).filter { $0.hasSuffix(".json") }.sorted()
        #expect(files.count == Self.documented.count, "\(files)")
        for file in files {
            let journal = try Journal.load(path: (journals as NSString).appendingPathComponent(file))
            let origin = ((journal.origin as NSString).lastPathComponent as NSString).deletingPathExtension
            let expected = try #require(Self.documented[origin], "unexpected experiment \(origin)")
            #expect(journal.outcome == expected, "\(origin): \(journal.reason ?? "")")
            #expect(journal.verdict == .completed, "\(origin)")
            #expect(journal.cleanup.allSatisfy { $0.status == .succeeded }, "\(origin): \(journal.cleanup)")
            #expect(journal.faults.allSatisfy { $0.end != nil }, "\(origin)")
        }

        // The load experiment's output carries the load numbers and the judged thresholds.
        let loadFile = try #require(files.first { $0.contains("slow-store") || $0.contains("under-load") })
        let load = try Journal.load(path: (journals as NSString).appendingPathComponent(loadFile))
        let loadRecord = try #require(load.run.first { $0.providerType == "http.load" })
        #expect((loadRecord.output?["overall"]?["count"]?.intValue ?? 0) > 0)
        #expect(loadRecord.toleranceMet == true)
        let timeline = loadRecord.output?["timeline"]?.arrayValue ?? []
        #expect(timeline.count >= 3)
        // Split by the fault: the store's latency shows in the fault's phase, and the threshold on
        // that phase was judged on it.
        let result = try LoadResult(decoding: try #require(loadRecord.output))
        #expect(result.phases.map(\.kind) == [.before, .fault, .after], "\(result.phases.map(\.name))")
        let fault = try #require(result.phase(named: "during"))
        #expect(fault.stats.count > 0 && fault.stats.p95Ms > 300, "the store answered 300 ms late: \(fault.stats)")
        // (No ratio to the phase before: on a starved machine that phase's p95 is slow too.)
        let during = try #require(result.thresholds.first { $0.scope == "during" })
        #expect(during.ok && during.measured == fault.stats.p95Ms)
        // The terminal summary shows the phases and the thresholds with what was measured.
        #expect(printed.contains("orders-under-load: "), "\(printed)")
        #expect(printed.contains("    fault latency latency=300"))
        #expect(printed.contains("✓ p(95)<1000 on during: "))

        try Self.checkNotifierExperiments(journals: journals, files: files, reports: reports)
        #expect(printed.contains(/Under load, a notifier answering 503.*deviated \(as expected\) +[0-9.]+ m?s +orders-under-load/), "\(printed)")

        // Reports.
        for format in ["md", "html"] {
            #expect(FileManager.default.fileExists(atPath: (reports as NSString).appendingPathComponent("orders.\(format)")))
        }
        // Service logs beside the journals.
        #expect(FileManager.default.fileExists(atPath: (journals as NSString).appendingPathComponent("service-order-api.log")))

        // Nothing the run started is left. Its services said where they listened in their logs:
        // no process still runs with those ports, and nothing answers on them.
        var ports: Set<Int> = []
        for log in try FileManager.default.contentsOfDirectory(atPath: journals) where log.hasPrefix("service-") {
            let text = try String(contentsOfFile: (journals as NSString).appendingPathComponent(log), encoding: .utf8)
            for match in text.matches(of: /listening on [0-9.]+:(\d+)/) { if let port = Int(match.1) { ports.insert(port) } }
        }
        #expect(ports.count >= 4, "ports found in the service logs: \(ports)")
        let leftovers = SystemProcess.all().filter { (process: SystemProcess) in
            ports.contains { port in process.arguments.contains("--port") && process.arguments.contains(String(port)) }
        }
        #expect(leftovers.isEmpty, "left running: \(leftovers.map(\.commandLine))")
        for port in ports {
            #expect(!Self.accepts(port), "something still listens on port \(port)")
        }
    }
}

extension DemoSuiteTests {
    /// The second study: the same load under the same HTTP fault (half of the notifier's calls
    /// answered 503) fails orders of the API as written and none of the resilient API's, whose
    /// notifier breaker opened; the suite's comparison report sets the two side by side.
    static func checkNotifierExperiments(journals: String, files: [String], reports: String) throws {
        func load(_ origin: String) throws -> (Journal, LoadResult) {
            let file = try #require(
                try files.first { file in
                    let journal = try Journal.load(path: (journals as NSString).appendingPathComponent(file))
                    return ((journal.origin as NSString).lastPathComponent as NSString).deletingPathExtension == origin
                }, "no journal of \(origin)")
            let journal = try Journal.load(path: (journals as NSString).appendingPathComponent(file))
            let record = try #require(journal.run.first { $0.providerType == "http.load" })
            return (journal, try LoadResult(decoding: try #require(record.output)))
        }
        let (plainJournal, plain) = try load("10-notifier-503")
        let (resilientJournal, resilient) = try load("11-notifier-503-resilient")
        // One fault window each, the HTTP toxic's, and it says what it did.
        for journal in [plainJournal, resilientJournal] {
            #expect(journal.faults.count == 1 && journal.faults[0].label.hasPrefix("http_abort status=503 "), "\(journal.faults.map(\.label))")
            // The toxic's empty body is left out of its label.
            #expect(journal.faults.first?.label.contains("body=") == false, "\(journal.faults.map(\.label))")
        }
        #expect(plainJournal.faults.first?.label.contains("affected") == true, "\(plainJournal.faults.map(\.label))")

        // The API as written: orders sent before the fault succeeded; during it, orders failed
        // with 502 (the notifier's 503 passed on).
        #expect(plain.phases.map(\.kind) == [.before, .fault, .after], "\(plain.phases.map(\.name))")
        let plainBefore = try #require(plain.phase(named: "before")).stats
        let plainDuring = try #require(plain.phase(named: "during")).stats
        // Requests count in the phase they were sent in: one of the five users' orders sent just
        // before the toxic came in may meet it, no more.
        #expect(plainBefore.failed <= 5, "\(plainBefore)")
        let badGateway = plainDuring.statusCodes.first { $0.label == "502" }?.count ?? 0
        #expect(badGateway > 0 && plainDuring.failed == badGateway, "\(plainDuring.statusCodes)")
        // About half (the toxicity), well away from none and from all.
        #expect(plainDuring.errorRate > 0.2 && plainDuring.errorRate < 0.8, "\(plainDuring.errorRate)")
        #expect(plainJournal.run.first { $0.providerType == "http.load" }?.toleranceMet == false, "its thresholds were missed")

        // The resilient API: every order answered 201, during the fault too, and its notifier
        // breaker opened (the probe after the load read notifications_skipped from /stats).
        let resilientDuring = try #require(resilient.phase(named: "during")).stats
        #expect(resilient.overall.count > 0 && resilient.overall.failed == 0, "\(resilient.overall.statusCodes)")
        #expect(resilientDuring.count > 0 && resilientDuring.failed == 0)
        let breaker = try #require(resilientJournal.run.first { $0.name == "the-notifier-breaker-opened" })
        // On failure, what the toxic did (its fault window's "affected N of M") and the load's
        // phase, to tell too few 503s from too few notifications.
        let seen = "fault windows \(resilientJournal.faults.map(\.label)); during the fault \(resilientDuring)"
        #expect(breaker.toleranceMet == true, "\(breaker.output ?? .null); \(seen)")
        #expect((breaker.output?["body"]?["notifications_skipped"]?.intValue ?? 0) >= 1, "\(seen)")

        // The comparison report: both APIs' experiments, the error rate that fell, and the fault's phase.
        for format in ["md", "html"] {
            let path = (reports as NSString).appendingPathComponent("notifier-503.\(format)")
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.contains("the API as written vs. the resilient API"))
            for journal in [plainJournal, resilientJournal] {
                let title = format == "html" ? journal.title.replacingOccurrences(of: "'", with: "&#39;") : journal.title
                #expect(text.contains(title), "\(format) comparison names \(journal.title)")
            }
            #expect(text.contains("Error rate"))
            #expect(text.contains("http_abort"), "the fault's phase row")
        }
        let markdown = try String(contentsOfFile: (reports as NSString).appendingPathComponent("notifier-503.md"), encoding: .utf8)
        #expect(markdown.contains("**Error rate fell from "), "\(markdown)")
        // The plain API's load missed its thresholds: that probe is what deviated, in the report and the terminal.
        #expect(markdown.contains("| Deviated probes | `orders-under-load` | none |"), "\(markdown)")
    }

    /// Whether a TCP connection to 127.0.0.1:port succeeds.
    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
