import Foundation
import Testing

@testable import FaultlineKit

/// The journal writer: changes in memory, the file written by its own thread.
@Suite struct JournalRecorderTests {
    static func journal() -> Journal {
        Journal(
            faultlineVersion: "test", platform: "test", node: "test", runID: "run", experimentHash: "0", profile: nil, origin: "test.yaml", seed: 0,
            dry: nil, experiment: ["title": "recorder"], start: Timestamp(Date()), status: .running, deviated: false, outcome: .running,
            expected: nil,
            reason: nil, steadyStates: SteadyStates(), run: [], rollbacks: [], cleanup: [], faults: [], leftUndone: [], end: nil, duration: nil)
    }

    static func record(_ index: Int) -> RunRecord {
        let now = Timestamp(Date())
        return RunRecord(
            activity: ["name": .string("probe-\(index)"), "type": "probe"], output: .int(index), status: .succeeded, start: now, end: now,
            duration: 0, phase: .method)
    }

    static func withJournalPath(_ body: (String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-recorder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        do {
            try await body(directory.appendingPathComponent("journal.json").path)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        try? FileManager.default.removeItem(at: directory)
    }

    @Test func flushWaitsUntilTheFileHoldsEveryChangeMadeBeforeIt() async throws {
        try await Self.withJournalPath { path in
            let recorder = JournalRecorder(Self.journal(), path: path)
            for index in 0..<300 {
                recorder.update { $0.run.append(Self.record(index)) }
                if index % 100 == 99 {
                    await recorder.flush()
                    #expect(try Journal.load(path: path).run.count == index + 1)
                }
            }
            recorder.update { $0.status = .completed }
            await recorder.close()
            let written = try Journal.load(path: path)
            #expect(written.run.map(\.name) == (0..<300).map { "probe-\($0)" } && written.status == .completed)
        }
    }

    @Test func changesFromConcurrentTasksAllReachTheFile() async throws {
        try await Self.withJournalPath { path in
            let recorder = JournalRecorder(Self.journal(), path: path)
            await withTaskGroup(of: Void.self) { group in
                for task in 0..<8 {
                    group.addTask {
                        for index in 0..<200 { recorder.update { $0.run.append(Self.record(task * 1000 + index)) } }
                    }
                }
            }
            await recorder.close()
            let written = try Journal.load(path: path)
            #expect(written.run.count == 1600)
            #expect(Set(written.run.map(\.name)) == Set(recorder.current.run.map(\.name)))
        }
    }

    @Test func withoutAFileChangesStayInMemory() async {
        let recorder = JournalRecorder(Self.journal(), path: nil)
        recorder.update { $0.run.append(Self.record(1)) }
        await recorder.flush()
        await recorder.close()
        #expect(recorder.current.run.count == 1)
    }
}
