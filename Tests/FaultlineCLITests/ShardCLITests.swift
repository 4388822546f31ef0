import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

import FaultlineTestSupport

/// `faultline run --shard` on several processes, then `faultline report --merge`.
@Suite("Load shards from the command line: run --shard, --start-at, report --merge")
struct ShardCLITests {
    /// An experiment whose hypothesis is a closed load of 4 users × 30 iterations (120 requests in
    /// all) judged by `threshold`.
    static func experiment(title: String, url: String, threshold: String) -> String {
        """
        title: \(title)
        steady-state-hypothesis:
          title: the service holds the load
          probes:
            - type: probe
              name: orders
              tolerance: {overall: ["\(threshold)", "rate<0.01"]}
              provider: {type: http.load, url: "\(url)", users: 4, iterations: 30}
        method: []
        """
    }

    /// The load output of a journal's first hypothesis probe.
    static func load(_ path: String) throws -> LoadResult {
        let journal = try Journal.load(path: path)
        return try LoadResult(decoding: try #require(journal.steadyStates.before?.probes.first?.output))
    }

    @Test("two shards on one schedule merge into the whole load; its thresholds are judged merged, and the exit code says so")
    func shardsMerge() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let scratch = try ScratchDirectory()
            // 60 requests a shard: each shard alone misses count>=120, which the merge meets.
            try scratch.write("holds.yaml", Self.experiment(title: "holds", url: server.url + "/ok", threshold: "count>=120"))
            try scratch.write("misses.yaml", Self.experiment(title: "misses", url: server.url + "/ok", threshold: "count>120"))
            let instant = Timestamp(Date().addingTimeInterval(8)).text
            let zero = try TestProcess.faultline(
                ["run", "holds.yaml", "--shard", "0/2", "--start-at", instant, "--start-lateness", "120", "--journal-path", "holds-0.json"],
                in: scratch)
            // The second the way an Indexed Job's pod runs it.
            let one = try TestProcess.faultline(
                ["run", "holds.yaml", "--shard-count", "2", "--start-at", instant, "--start-lateness", "120", "--journal-path", "holds-1.json"],
                in: scratch, environment: ["JOB_COMPLETION_INDEX": "1"])
            #expect(await zero.wait() == 0, "\(zero.lines)")
            #expect(await one.wait() == 0, "\(one.lines)")
            let shards = try ["holds-0.json", "holds-1.json"].map { try Self.load(scratch.path($0)) }
            #expect(shards.map { $0.shard?.index } == [0, 1])
            #expect(shards.map(\.overall.count) == [60, 60])
            for shard in shards {
                let startAt = try #require(shard.shard?.startAt?.microsecondsSinceEpoch)
                #expect(shard.shard?.startAt?.date == Timestamp(text: instant).date)
                // Neither shard's load began before the instant.
                #expect(try #require(shard.started?.microsecondsSinceEpoch) >= startAt)
                #expect(shard.requests[0].stats.histogram?.total == 60)
            }

            let merge = try TestProcess.faultline(
                ["report", "--merge", "holds-0.json", "holds-1.json", "--format", "md", "--output", "merged.md"], in: scratch)
            #expect(await merge.wait() == 0, "\(merge.lines)")
            let report = try String(contentsOfFile: scratch.path("merged.md"), encoding: .utf8)
            #expect(report.contains("holds — 2 shards merged"))
            #expect(report.contains("holds — shard 0/2"))
            #expect(report.contains("holds — shard 1/2"))
            #expect(report.contains("shard 1/2: 2 users"))
            #expect(report.contains("2 shards merged"))
            #expect(merge.stderr.contains("orders: 120 requests"), "\(merge.stderr)")
            #expect(merge.stderr.contains("✓ count>=120 on overall: 120"))

            // A threshold the merged load misses: the report is written, and the exit code is 1.
            for index in 0..<2 {
                let run = try TestProcess.faultline(
                    ["run", "misses.yaml", "--shard", "\(index)/2", "--journal-path", "misses-\(index).json"], in: scratch)
                #expect(await run.wait() == 0, "\(run.lines)")
            }
            let missed = try TestProcess.faultline(
                ["report", "--merge", "misses-0.json", "misses-1.json", "--format", "html", "--output", "misses.html"], in: scratch)
            #expect(await missed.wait() == 1, "\(missed.lines)")
            #expect(FileManager.default.fileExists(atPath: scratch.path("misses.html")))
            #expect(missed.stderr.contains("✗ count>120 on overall: 120"))
            #expect(missed.stderr.contains("merged · misses — 2 shards merged: failed"))

            // Shards that do not make one run are refused: exit 2, naming the journals.
            let twice = try TestProcess.faultline(["report", "--merge", "holds-0.json", "holds-0.json"], in: scratch)
            #expect(await twice.wait() == 2)
            #expect(twice.stderr.contains("are both shard 0/2"))
            let alone = try TestProcess.faultline(["report", "--merge", "holds-1.json"], in: scratch)
            #expect(await alone.wait() == 2)
            #expect(alone.stderr.contains("shard 0 of 2 missing"))

            // A journal without a sharded load (a suite's other experiment) is left out, saying so;
            // with nothing sharded at all, there is nothing to merge.
            let plain = try TestProcess.faultline(["run", "holds.yaml", "--journal-path", "plain.json"], in: scratch)
            #expect(await plain.wait() == 0, "\(plain.lines)")
            let mixed = try TestProcess.faultline(["report", "--merge", "holds-0.json", "holds-1.json", "plain.json"], in: scratch)
            #expect(await mixed.wait() == 0, "\(mixed.lines)")
            #expect(mixed.stderr.contains("plain.json: no sharded load in this journal"))
            let none = try TestProcess.faultline(["report", "--merge", "plain.json"], in: scratch)
            #expect(await none.wait() == 2)
            #expect(none.stderr.contains("no load shard's journal in plain.json"), "\(none.stderr)")
        }
    }

    @Test("a run whose services are ready only after --start-at (and its lateness) fails before any experiment, saying how late")
    func lateStart() async throws {
        let scratch = try ScratchDirectory()
        let go = scratch.path("go")
        // The service is ready when the test says so, which it does only once the instant and
        // the lateness allowed have passed: however fast or slow the machine, the run is late.
        try scratch.write(
            "suite.yaml",
            """
            name: late
            services:
              - name: slow
                command: [sh, -c, "while [ ! -e '\(go)' ]; do sleep 0.05; done; echo ready; exec sleep 60"]
                ready: {log: ready, timeout: 60}
            experiments: [exp.yaml]
            """)
        try scratch.write("exp.yaml", "title: t\nmethod: []\n")
        // The instant is far enough ahead that a starved machine still starts faultline before it
        // (an instant already passed at start is exit 2, not the late readiness tested here).
        let instant = Date().addingTimeInterval(15)
        let run = try TestProcess.faultline(
            ["run", "suite.yaml", "--start-at", Timestamp(instant).text, "--start-lateness", "0.5"], in: scratch)
        // A real delay, not synchronisation: the subject is wall-clock lateness, so the service is
        // let become ready only once the instant and more than its lateness have passed.
        let late = instant.addingTimeInterval(1).timeIntervalSinceNow
        if late > 0 { try await Task.sleep(for: .seconds(late)) }
        try scratch.write("go", "")
        #expect(await run.wait() == 1, "\(run.lines)")
        #expect(run.stderr.contains("the run was ready"), "\(run.stderr)")
        #expect(run.stderr.contains("after --start-at"))
        #expect(!FileManager.default.fileExists(atPath: scratch.path("journals/exp.json")))
    }

    @Test(
        "bad --shard, --shard-count and --start-at are exit 2 with what to write",
        arguments: [
            (["--shard", "2/2"], [:], "numbered from 0 to 1"),
            (["--shard", "one"], [:], "write I/N"),
            (["--shard-count", "2"], [:], "JOB_COMPLETION_INDEX"),
            (["--shard-count", "2"], ["JOB_COMPLETION_INDEX": "2"], "is the Job's completions 2?"),
            (["--shard", "0/2", "--shard-count", "2"], [:], "not both"),
            (["--start-at", "2001-01-01T00:00:00Z"], [:], "passed"),
            (["--start-at", "tomorrow"], [:], "not an RFC 3339 instant"),
        ] as [([String], [String: String], String)])
    func badFlags(flags: [String], environment: [String: String], message: String) async throws {
        let scratch = try ScratchDirectory()
        try scratch.write("exp.yaml", "title: t\nmethod: []\n")
        let run = try TestProcess.faultline(["run", "exp.yaml"] + flags, in: scratch, environment: environment)
        #expect(await run.wait() == 2)
        #expect(run.stderr.contains(message), "\(run.stderr)")
    }
}
