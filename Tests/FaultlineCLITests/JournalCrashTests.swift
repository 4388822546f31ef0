import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

/// The journal file of a long run with many records: always a whole journal while it is written,
/// and still one after `kill -9` at an arbitrary instant.
@Suite("The journal of a long run", .serialized)
struct JournalCrashTests {
    /// A continuous hypothesis of cheap native probes, checked every 10 ms, during a method that
    /// sleeps: thousands of records a minute.
    static func longRun(_ scratch: Scratch) -> String {
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

    /// The probes recorded so far in the journal file, or nil when it is not a whole journal.
    static func recordedProbes(_ path: String) -> Int? {
        guard let journal = try? Journal.load(path: path) else { return nil }
        return journal.steadyStates.during.reduce(0) { $0 + $1.probes.count } + (journal.steadyStates.before?.probes.count ?? 0)
    }

    @Test("kill -9 during a continuous hypothesis of thousands of records leaves a whole journal of what happened", arguments: [3000, 6000])
    func killNineDuringALongRun(records: Int) async throws {
        let scratch = try Scratch()
        try scratch.write("exp.yaml", Self.longRun(scratch))
        let journalPath = scratch.path("journal.json")
        let run = try FaultlineRun(
            ["run", "exp.yaml", "--journal-path", "journal.json", "--hypothesis-strategy", "continuously", "--hypothesis-frequency", "0.01", "--quiet"],
            in: scratch)
        var child: pid_t?
        defer { if let child { kill(child, SIGKILL) } }
        // Read the file as the run writes it: every read is a whole journal, and it only grows.
        var reads = 0
        var last = 0
        var torn = 0
        let grew = await eventually(timeout: .seconds(120)) {
            guard FileManager.default.fileExists(atPath: journalPath) else { return false }
            guard let count = Self.recordedProbes(journalPath) else {
                torn += 1
                return false
            }
            #expect(count >= last, "the journal went back from \(last) to \(count) probes")
            last = count
            reads += 1
            return count >= records
        }
        #expect(grew, "the run recorded \(last) probes; stderr: \(run.stderr)")
        #expect(torn == 0, "\(torn) of \(torn + reads) reads found a file that is not a whole journal")
        #expect(await eventually { scratch.exists("long.pid") }, "stderr: \(run.stderr)")
        child = (try? String(contentsOfFile: scratch.path("long.pid"), encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }

        run.signal(SIGKILL)
        _ = await run.wait()
        let journal = try Journal.load(path: journalPath)
        #expect(journal.status == .running && journal.end == nil)
        #expect(journal.steadyStates.before?.steadyStateMet == true)
        let after = try #require(Self.recordedProbes(journalPath))
        #expect(after >= last, "the journal after the kill holds \(after) probes, fewer than the \(last) read before it")
        #expect(journal.steadyStates.during.allSatisfy { $0.probes.allSatisfy { $0.phase == .hypothesis && $0.toleranceMet == true } })
    }
}
