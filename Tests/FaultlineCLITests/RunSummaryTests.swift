import FaultlineKit
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// A Python with `jsonschema`: the package's `.venv` (made by `.ci/run`), else `FAULTLINE_PYTHON`.
func pythonWithJSONSchema() async -> String? {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    var candidates = [root + "/.venv/bin/python3"]
    if let configured = ProcessInfo.processInfo.environment["FAULTLINE_PYTHON"] { candidates.insert(configured, at: 0) }
    for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
        let check = try? TestProcess(candidate, ["-c", "import jsonschema"], in: try ScratchDirectory())
        if await check?.wait() == 0 { return candidate }
    }
    return nil
}

@Suite("faultline run: the load summary in the terminal and --summary-json", .serialized)
struct RunSummaryTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// A load through a proxy that gets 100 ms of latency in the middle: a phase threshold that the
    /// fault misses (`during: p(95)<50`) makes the experiment deviate. The fault lasts 1.5 s: a
    /// machine busy with other tests once sent no request at all in a 0.5 s window.
    static func experiment(upstream: Int) -> String {
        """
        title: load across a fault
        method:
          - {type: action, name: proxy, provider: {type: proxy.create, name: api, upstream: "127.0.0.1:\(upstream)"}}
          - type: probe
            name: traffic
            background: true
            tolerance: {overall: ["rate<0.01"], during: ["p(95)<50"], after: ["rate<0.01"]}
            provider: {type: http.load, url: "http://127.0.0.1:${api_PORT}/ok", users: 2, duration: 3.5, think_time: 0.01}
          - type: action
            name: slow
            pauses: {before: 0.4, after: 1.5}
            provider: {type: toxic, proxy: api, toxic: latency, attributes: {latency: 100}}
          - {type: action, name: heal, provider: {type: toxic.remove, proxy: api, name: latency_downstream}}
        """
    }

    @Test("the summary JSON validates against its schema and says what the journal says")
    func summaryJSON() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let scratch = try ScratchDirectory()
            try scratch.write("exp.yaml", Self.experiment(upstream: server.port))
            let run = try TestProcess.faultline(["run", "exp.yaml", "--summary-json", "summary.json"], in: scratch, environment: ["NO_COLOR": "1"])
            #expect(await run.wait() == 1, "\(run.stdout)\n\(run.stderr)")

            let python = try #require(await pythonWithJSONSchema(), "run .ci/run once, or: python3 -m venv .venv && .venv/bin/pip install jsonschema")
            let validate = try TestProcess(
                python,
                [
                    "-c",
                    "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('valid')",
                    scratch.path("summary.json"), Self.packageRoot + "/docs/summary.schema.json",
                ], in: scratch)
            #expect(await validate.wait() == 0, "\(validate.stdout)\(validate.stderr)")

            let summary = try JSONReader.value(try String(contentsOfFile: scratch.path("summary.json"), encoding: .utf8))
            let journal = try Journal.load(path: scratch.path("journal.json"))
            #expect(summary["summary_version"] == 1)
            #expect(summary["outcome"] == .string(journal.outcome.rawValue) && summary["outcome"] == "deviated")
            #expect(summary["exit_code"] == 1)
            let experiment = try #require(summary["experiments"]?[0])
            #expect(experiment["title"] == "load across a fault" && experiment["run_id"] == .string(journal.runID))
            #expect(experiment["faults"]?.arrayValue?.count == journal.faults.count && journal.faults.count == 1)
            #expect(experiment["faults"]?[0]?["start"] == .string(journal.faults[0].start.text))
            let load = try #require(experiment["loads"]?[0])
            let record = try #require(journal.run.first { $0.providerType == "http.load" })
            #expect(load["result"] == record.output, "the load result is the journal's output, phases and thresholds included")
            #expect(load["tolerance_met"] == false)
            let result = try LoadResult(decoding: try #require(load["result"]))
            #expect(result.phases.map(\.kind) == [.before, .fault, .after])
            let during = try #require(result.thresholds.first { $0.scope == "during" })
            #expect(!during.ok && (during.measured ?? 0) >= 100, "the 100 ms toxic is in the fault's phase: \(during)")
            #expect(result.thresholds.first { $0.scope == "after" }?.ok == true)

            // The terminal: the load's summary with its phases, each threshold with ✓ or ✗.
            #expect(run.stdout.contains("traffic: "), "\(run.stdout)")
            #expect(run.stdout.contains("    fault latency latency=100"))
            #expect(run.stdout.contains("✗ p(95)<50 on during: "))
            #expect(run.stdout.contains("✓ rate<0.01 on after: 0.00%"))
            #expect(!run.stdout.contains("\u{1B}["), "plain when piped")
        }
    }

    @Test("--quiet keeps only the missed thresholds of a load")
    func quiet() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let scratch = try ScratchDirectory()
            try scratch.write("exp.yaml", Self.experiment(upstream: server.port))
            let run = try TestProcess.faultline(["run", "exp.yaml", "--quiet"], in: scratch, environment: ["NO_COLOR": "1"])
            #expect(await run.wait() == 1)
            #expect(run.stdout.contains("✗ p(95)<50 on during: "), "\(run.stdout)")
            #expect(!run.stdout.contains("✓ rate<0.01"), "\(run.stdout)")
            #expect(!run.stdout.contains("requests  rate/s"))
        }
    }
}
