@testable import FaultlineKit
import FaultlineTesting
import Synchronization
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

/// A backend whose toxic and proxy changes take a while to come back, as a remote one's do; it
/// notes when each call reached it (by then the fault may act).
private final class SlowBackend: ToxicBackend, Sendable {
    let inner = InMemoryToxicBackend()
    let reached = Mutex<[Timestamp]>([])
    var description: String { "slow test backend" }

    private func arrive() async throws {
        reached.withLock { $0.append(Timestamp.now()) }
        try await Task.sleep(for: .milliseconds(20))
    }

    func proxies() async throws -> [ProxyDefinition] { try await inner.proxies() }
    func proxy(named name: String) async throws -> ProxyDefinition { try await inner.proxy(named: name) }
    func createProxy(_ proxy: ProxyDefinition) async throws -> ProxyDefinition { try await inner.createProxy(proxy) }
    func updateProxy(named name: String, listen: String?, upstream: String?, enabled: Bool?) async throws -> ProxyDefinition {
        let updated = try await inner.updateProxy(named: name, listen: listen, upstream: upstream, enabled: enabled)
        try await arrive()
        return updated
    }
    func deleteProxy(named name: String) async throws { try await inner.deleteProxy(named: name) }
    func addToxic(_ toxic: ToxicDefinition, to proxy: String) async throws -> ToxicDefinition {
        let added = try await inner.addToxic(toxic, to: proxy)
        try await arrive()
        return added
    }
    func updateToxic(named name: String, on proxy: String, attributes: Value?, toxicity: Double?) async throws -> ToxicDefinition {
        try await inner.updateToxic(named: name, on: proxy, attributes: attributes, toxicity: toxicity)
    }
    func removeToxic(named name: String, from proxy: String) async throws { try await inner.removeToxic(named: name, from: proxy) }
    func reset() async throws { try await inner.reset() }
    func shutdown() async {}
}

@Suite("Fault windows open when the fault may first act")
struct FaultWindowStartTests {
    @Test("a toxic's or a downed proxy's window begins before the backend call that applies it, not when the call returns")
    func windowCoversTheCall() async throws {
        let backend = SlowBackend()
        let context = ActivityContext.standalone(name: "inject")
        _ = try await backend.createProxy(ProxyDefinition(name: "web", listen: "127.0.0.1:0", upstream: "127.0.0.1:1"))
        _ = try await context.addToxic(ToxicDefinition(name: "slow", type: "latency"), to: "web", on: backend)
        _ = try await context.disableProxy(named: "web", on: backend)
        let reached = backend.reached.withLock { $0 }
        let windows = context.faultWindows
        try #require(windows.count == 2 && reached.count == 2)
        for (window, applied) in zip(windows, reached) {
            let start = try #require(window.start.microsecondsSinceEpoch)
            // Requests sent once the backend applied the fault are in its window.
            #expect(start <= (applied.microsecondsSinceEpoch ?? 0), "\(window.label) began at \(window.start.text), applied at \(applied.text)")
        }
        _ = await context.runCleanups()
        #expect(context.faultWindows.allSatisfy { $0.end != nil })
    }
}
