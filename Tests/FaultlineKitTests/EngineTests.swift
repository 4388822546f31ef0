import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

@Suite("Engine phases and strategies")
struct EngineTests {
    @Test("a completed run plays hypothesis, method, hypothesis, rollbacks and cleanups in order")
    func completedRun() async throws {
        let kit = TestKit()
        let result = try await kit.run(yaml: """
            title: ordered
            steady-state-hypothesis:
              title: up
              probes:
                - {type: probe, name: health, tolerance: 200, provider: {type: test.probe, value: {status: 200}}}
            method:
              - {type: action, name: inject, provider: {type: test.action, label: inject, cleanup: true}}
            rollbacks:
              - {type: action, name: rollback, provider: {type: test.action, label: rollback}}
            """)
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .completed)
        #expect(journal.status == .completed)
        #expect(result.exitCode == 0)
        #expect(kit.log == ["inject", "rollback", "undo inject"])
        #expect(journal.steadyStates.before?.steadyStateMet == true)
        #expect(journal.steadyStates.after?.steadyStateMet == true)
        #expect(journal.cleanup.map(\.description) == ["undo inject"])
    }
}
