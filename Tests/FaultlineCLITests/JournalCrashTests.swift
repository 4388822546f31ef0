import FaultlineKit
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// The journal file of a long run with many records: always a whole journal while it is written,
/// and still one after `kill -9` at an arbitrary instant.
@Suite("The journal of a long run", .serialized)
struct JournalCrashTests {
    /// A continuous hypothesis of cheap native probes, checked every 20 ms, during a method that
    /// sleeps: hundreds of records a second.
    static func longRun(_ scratch: ScratchDirectory) -> String {
        let probes = (0..<10).map { index in
            #"    - {type: probe, name: p\#(index), tolerance: true, provider: {type: python, module: os.path, func: exists, arguments: {path: "\#(scratch.url.path)"}}}"#
        }
        return """
            title: long continuous hypothesis
            steady-state-hypothesis:
              title: scratch exists
              probes:
            \(probes.joined(separator: "\n"))
            method:
              - type: action
                name: long-action
                provider:
                  type: process
                  path: sh
                  arguments: ["-c", "echo $$$$ > \(scratch.path("long.pid")); exec sleep 120"]
            """
    }

    /// The probes recorded so far in the journal file, or nil when it is not a whole JSON document.
    /// (Parsed as JSON only, not decoded, to keep the test light beside the others running.)
    static func recordedProbes(_ path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let journal = try? JSONReader.value(text) else { return nil }
        let states = journal["steady_states"]
        let during = states?["during"]?.arrayValue ?? []
        return during.reduce(0) { $0 + ($1["probes"]?.arrayValue?.count ?? 0) } + (states?["before"]?["probes"]?.arrayValue?.count ?? 0)
    }

    @Test("kill -9 during a continuous hypothesis of thousands of records leaves a whole journal of what happened", arguments: [1000, 2500])
    func killNineDuringALongRun(records: Int) async throws {
        let scratch = try ScratchDirectory()
        try scratch.write("exp.yaml", Self.longRun(scratch))
        let journalPath = scratch.path("journal.json")
        let run = try TestProcess.faultline(
            [
                "run", "exp.yaml", "--journal-path", "journal.json", "--hypothesis-strategy", "continuously", "--hypothesis-frequency", "0.02",
                "--quiet",
            ],
            in: scratch)
        var child: pid_t?
        defer { if let child { kill(child, SIGKILL) } }
        // Read the file as the run writes it: every read is a whole journal, and it only grows.
        var reads = 0
        var last = 0
        var torn = 0
        // Polled four times a second: parsing a journal of megabytes is work, and other suites run beside this one.
        var grew = false
        let deadline = ContinuousClock.now + .seconds(120)
        while !grew, ContinuousClock.now < deadline {
            if FileManager.default.fileExists(atPath: journalPath) {
                if let count = Self.recordedProbes(journalPath) {
                    #expect(count >= last, "the journal went back from \(last) to \(count) probes")
                    last = count
                    reads += 1
                    grew = count >= records
                } else {
                    torn += 1
                }
            }
            if !grew { try? await Task.sleep(for: .milliseconds(250)) }
        }
        #expect(grew, "the run recorded \(last) probes; stderr: \(run.stderr)")
        #expect(torn == 0, "\(torn) of \(torn + reads) reads found a file that is not a whole journal")
        #expect(await eventually { scratch.exists("long.pid") }, "stderr: \(run.stderr)")
        child = (try? String(contentsOfFile: scratch.path("long.pid"), encoding: .utf8)).flatMap {
            pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }

        run.signal(SIGKILL)
        _ = await run.wait()
        let journal = try Journal.load(path: journalPath)
        #expect(journal.status == .running && journal.end == nil)
        #expect(journal.steadyStates.before?.steadyStateMet == true)
        let after = try #require(Self.recordedProbes(journalPath))
        #expect(after >= last, "the journal after the kill holds \(after) probes, fewer than the \(last) read before it")
        #expect(journal.steadyStates.during.allSatisfy { $0.probes.allSatisfy { $0.phase == .hypothesis && $0.toleranceMet == true } })
    }

    /// Found by killing runs at random instants: a run killed while it only probed had recorded
    /// nothing to undo, so `faultline recover` deleted its empty ledger and left its journal
    /// `running` for ever; and a recovered journal said `interrupted` with no `end`.
    @Test("kill -9 of a run with nothing to undo: faultline recover, from another directory, still ends its journal as interrupted")
    func killNineWithNothingToUndo() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "exp.yaml",
            """
            title: only probes
            method:
              - {type: probe, name: looks, provider: {type: python, module: os.path, func: exists, arguments: {path: "\(scratch.url.path)"}}, pauses: {after: 120}}
            """)
        let elsewhere = try ScratchDirectory()
        let run = try TestProcess.faultline(["run", "exp.yaml", "--journal-path", "journal.json", "--quiet"], in: scratch)
        // The probe's record is in the journal once it has run; the run then pauses.
        let probed = await eventually(timeout: .seconds(60)) {
            !run.isRunning || (try? Journal.load(path: scratch.path("journal.json")))?.run.count == 1
        }
        run.signal(SIGKILL)
        #expect(await run.wait() == 128 + SIGKILL)
        try #require(probed, "\(run.stdout)\n\(run.stderr)")
        let killed = try Journal.load(path: scratch.path("journal.json"))
        #expect(killed.status == .running && killed.end == nil)

        // The same ledger directory as the run's, another working directory.
        let recover = try TestProcess.faultline(["recover"], in: scratch, workingDirectory: elsewhere.url.path)
        #expect(await recover.wait() == 0, "\(recover.stdout)\n\(recover.stderr)")
        #expect(recover.stdout.contains("journal: \(scratch.path("journal.json"))"), "\(recover.stdout)")
        #expect(!recover.stdout.contains("nothing to recover"), "\(recover.stdout)")
        let journal = try Journal.load(path: scratch.path("journal.json"))
        #expect(journal.status == .interrupted && journal.outcome == .interrupted)
        #expect(journal.reason?.contains("was killed") == true)
        #expect(journal.recovery?.count == 1)
        let end = try #require(journal.end)
        #expect(end >= journal.start && end >= journal.run[0].end)
        #expect(journal.duration.map { $0 >= 0 } == true)

        // Nothing left: a second recovery finds nothing, and leaves the journal as it is.
        let again = try TestProcess.faultline(["recover"], in: scratch)
        #expect(await again.wait() == 0)
        #expect(again.stdout.contains("nothing to recover"), "\(again.stdout)")
        #expect(try Journal.load(path: scratch.path("journal.json")).recovery?.count == 1)
    }
}
