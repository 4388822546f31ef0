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
        #expect(fault.stats.p95Ms > 5 * (result.phase(named: "before")?.stats.p95Ms ?? .infinity))
        let during = try #require(result.thresholds.first { $0.scope == "during" })
        #expect(during.ok && during.measured == fault.stats.p95Ms)
        // The terminal summary shows the phases and the thresholds with what was measured.
        #expect(printed.contains("orders-under-load: "), "\(printed)")
        #expect(printed.contains("    fault latency latency=300"))
        #expect(printed.contains("✓ p(95)<1000 on during: "))

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
