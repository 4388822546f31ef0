import FaultlineKit
import Foundation
import Testing

/// Journals written before the journal's fields were typed (timestamps, phases, cleanup statuses,
/// load outputs) load, and write out again byte for byte.
@Suite struct JournalFormatTests {
    static func fixtureFiles() throws -> [String] {
        let root = Fixtures.path("journals")
        let files = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted().map { (root as NSString).appendingPathComponent($0) }
    }

    @Test func fixtureJournalsReadAndWriteBackUnchanged() throws {
        let files = try Self.fixtureFiles()
        #expect(files.count >= 18)
        for file in files {
            let written = try String(contentsOfFile: file, encoding: .utf8)
            let journal = try Journal.load(path: file)
            let again = String(decoding: try journal.json(), as: UTF8.self)
            #expect(again.trimmingCharacters(in: .newlines) == written.trimmingCharacters(in: .newlines), "\(file)")
        }
    }

    @Test func typedFieldsReadWhatTheJournalSays() throws {
        let journal = try Fixtures.journal("interrupted.json")
        #expect(journal.start.date != nil && journal.start.text.hasSuffix("+00:00"))
        let records = journal.run + journal.rollbacks + (journal.steadyStates.before?.probes ?? [])
        #expect(!records.isEmpty)
        #expect(records.allSatisfy { $0.phase != nil && $0.start <= $0.end })
        #expect(Set(records.compactMap(\.phase)).isSubset(of: Set(RunRecord.Phase.allCases)))
        #expect(!journal.cleanup.isEmpty && journal.cleanup.allSatisfy { CleanupRecord.Status.allCases.contains($0.status) })
    }
}
