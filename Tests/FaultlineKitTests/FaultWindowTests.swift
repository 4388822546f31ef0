@testable import FaultlineKit
import Testing

@Suite("Fault windows")
struct FaultWindowTests {
    @Test("what a fault did goes into the journal's label; the live window keeps the label a load phase is named by")
    func noteStaysOutOfTheLiveLabel() throws {
        let context = ActivityContext.standalone(name: "flaky")
        let id = context.beginFault("http_abort 503 on web (upstream)", id: "abort")
        context.endFault(id, note: "affected 3 of 10 matching requests")
        let live = try #require(context.faultWindows.first)
        #expect(live.label == "http_abort 503 on web (upstream)")
        #expect(live.end != nil)
        #expect(context.run.recordedFaults.map(\.label) == ["http_abort 503 on web (upstream) — affected 3 of 10 matching requests"])

        // A window ended without a note, or with an empty one, is recorded as it began.
        let plain = context.beginFault("latency 100 ms on db (downstream)", id: "slow")
        context.endFault(plain, note: "")
        #expect(context.run.recordedFaults.map(\.label).last == "latency 100 ms on db (downstream)")
    }
}
