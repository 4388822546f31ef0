import FaultlineKit
import Logging
import Synchronization

/// A ``ToxicBackend`` on a Toxiproxy server that others may share.
///
/// It keeps a ledger of what this run did on the server — proxies it created, toxics it added,
/// the prior state of proxies and toxics it changed that were there before — so that:
/// - ``shutdown()`` removes the toxics and proxies this run created and restores what it changed,
///   even when an activity's own cleanup could not run; it never sends a global `POST /reset`.
/// - ``reset()`` means "undo this run's faults": every toxic on the proxies the run created and
///   every toxic it added elsewhere are removed, its proxies are enabled, and the proxies and
///   toxics it changed get their prior state back. Other users' proxies and toxics stay as they are.
///   A global reset of the server is ``ToxiproxyClient/reset()`` (`toxiproxy.reset {scope: server}`).
public final class ToxiproxyBackend: ToxicBackend {
    public let client: ToxiproxyClient
    private let logger: Logger
    private let ledger = Mutex(Ledger())

    struct ToxicKey: Hashable {
        var proxy: String
        var name: String
    }

    /// What this run did on the server, in order.
    struct Ledger {
        var createdProxies: [String] = []
        var addedToxics: [ToxicKey] = []
        /// Proxies that were on the server before the run changed them, as they were.
        var proxySnapshots: [String: ProxyDefinition] = [:]
        var proxySnapshotOrder: [String] = []
        /// Toxics the run did not add but changed, as they were.
        var toxicSnapshots: [ToxicKey: ToxicDefinition] = [:]
        var shutDown = false

        func created(_ proxy: String) -> Bool { createdProxies.contains(proxy) }

        mutating func forgetProxy(_ proxy: String) {
            createdProxies.removeAll { $0 == proxy }
            addedToxics.removeAll { $0.proxy == proxy }
            proxySnapshots[proxy] = nil
            proxySnapshotOrder.removeAll { $0 == proxy }
            toxicSnapshots = toxicSnapshots.filter { $0.key.proxy != proxy }
        }

        mutating func forgetToxic(_ key: ToxicKey) {
            addedToxics.removeAll { $0 == key }
            toxicSnapshots[key] = nil
        }
    }

    /// - Parameters:
    ///   - client: the server's client; the backend shuts it down in ``shutdown()``.
    ///   - logger: for problems found while cleaning up at the end.
    public init(client: ToxiproxyClient, logger: Logger = Logger(label: "faultline.toxiproxy")) {
        self.client = client
        self.logger = logger
    }

    public var address: ToxiproxyAddress { client.address }

    public var description: String { "Toxiproxy at \(client.address.url)" }

    /// Runs a client call, turning its error into the kernel's backend error.
    private func call<T>(_ body: () async throws(ToxiproxyError) -> T) async throws(ToxicBackendError) -> T {
        do {
            return try await body()
        } catch {
            throw error.backendError
        }
    }

    // MARK: ToxicBackend

    public func proxies() async throws -> [ProxyDefinition] {
        try await call { () async throws(ToxiproxyError) in try await client.proxies() }
    }

    public func proxy(named name: String) async throws -> ProxyDefinition {
        try await call { () async throws(ToxiproxyError) in try await client.proxy(named: name) }
    }

    /// Creates the proxy, then its toxics; if a toxic fails, the proxy is deleted again.
    public func createProxy(_ proxy: ProxyDefinition) async throws -> ProxyDefinition {
        var created = try await call { () async throws(ToxiproxyError) in try await client.createProxy(proxy) }
        ledger.withLock { $0.createdProxies.append(proxy.name) }
        guard !proxy.toxics.isEmpty else { return created }
        do {
            for toxic in proxy.toxics { _ = try await addToxic(toxic, to: proxy.name) }
            created = try await call { () async throws(ToxiproxyError) in try await client.proxy(named: proxy.name) }
        } catch {
            try? await deleteProxy(named: proxy.name)
            throw error
        }
        return created
    }

    public func updateProxy(named name: String, listen: String?, upstream: String?, enabled: Bool?) async throws -> ProxyDefinition {
        try await snapshotProxyIfForeign(name)
        return try await call { () async throws(ToxiproxyError) in
            try await client.updateProxy(named: name, listen: listen, upstream: upstream, enabled: enabled)
        }
    }

    /// Deletes a proxy. One that was on the server before the run is gone for good: deleting is
    /// what the experiment asked for.
    public func deleteProxy(named name: String) async throws {
        do {
            try await call { () async throws(ToxiproxyError) in try await client.deleteProxy(named: name) }
        } catch {
            // Gone before (someone else deleted it): gone for the ledger too.
            if case .notFound = error { ledger.withLock { $0.forgetProxy(name) } }
            throw error
        }
        ledger.withLock { $0.forgetProxy(name) }
    }

    public func addToxic(_ toxic: ToxicDefinition, to proxy: String) async throws -> ToxicDefinition {
        let added = try await call { () async throws(ToxiproxyError) in try await client.addToxic(toxic, to: proxy) }
        ledger.withLock { $0.addedToxics.append(ToxicKey(proxy: proxy, name: added.name)) }
        return added
    }

    public func updateToxic(named name: String, on proxy: String, attributes: Value?, toxicity: Double?) async throws -> ToxicDefinition {
        let key = ToxicKey(proxy: proxy, name: name)
        let needsSnapshot = ledger.withLock { !$0.addedToxics.contains(key) && !$0.created(proxy) && $0.toxicSnapshots[key] == nil }
        if needsSnapshot {
            let before = try await call { () async throws(ToxiproxyError) in try await client.toxic(named: name, on: proxy) }
            ledger.withLock { if $0.toxicSnapshots[key] == nil { $0.toxicSnapshots[key] = before } }
        }
        return try await call { () async throws(ToxiproxyError) in
            try await client.updateToxic(named: name, on: proxy, attributes: attributes, toxicity: toxicity)
        }
    }

    public func removeToxic(named name: String, from proxy: String) async throws {
        let key = ToxicKey(proxy: proxy, name: name)
        do {
            try await call { () async throws(ToxiproxyError) in try await client.removeToxic(named: name, from: proxy) }
        } catch {
            // A toxic that is not there is gone for the ledger too.
            if case .notFound = error { ledger.withLock { $0.forgetToxic(key) } }
            throw error
        }
        ledger.withLock { $0.forgetToxic(key) }
    }

    /// `POST /populate`: creates the proxies that are not on the server, replaces those whose
    /// listen or upstream differ and keeps the rest. Proxies it creates are this run's; replaced
    /// ones get their listen and upstream back at the end (their former toxics are lost, as
    /// Toxiproxy drops them on replacement).
    /// - Returns: the proxies as the server holds them, and the names of those created.
    public func populate(_ proxies: [ProxyDefinition]) async throws -> (proxies: [ProxyDefinition], created: [String]) {
        let before = Dictionary(try await self.proxies().map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        ledger.withLock { ledger in
            for proxy in proxies {
                guard let existing = before[proxy.name], !ledger.created(proxy.name), ledger.proxySnapshots[proxy.name] == nil,
                    existing.listen != proxy.listen || existing.upstream != proxy.upstream
                else { continue }
                ledger.proxySnapshots[proxy.name] = existing
                ledger.proxySnapshotOrder.append(proxy.name)
            }
        }
        let requested = proxies.map(\.name).filter { before[$0] == nil }
        let record = { (names: [String]) in
            self.ledger.withLock { ledger in
                for name in names where !ledger.created(name) { ledger.createdProxies.append(name) }
            }
        }
        do {
            let result = try await call { () async throws(ToxiproxyError) in try await client.populate(proxies) }
            record(requested)
            return (result, requested)
        } catch {
            // Toxiproxy stops at the first failure, keeping the proxies it made before it.
            if let now = try? await self.proxies() { record(requested.filter { name in now.contains { $0.name == name } }) }
            throw error
        }
    }

    /// Undoes this run's faults on the server, and only this run's (see the type's documentation).
    public func reset() async throws {
        let problems = await undo(deletingCreatedProxies: false)
        if let first = problems.first {
            throw ToxicBackendError.unavailable("reset: \(first)" + (problems.count > 1 ? " (and \(problems.count - 1) more)" : ""))
        }
    }

    /// Removes what the run left on the server (toxics, proxies, changes), then closes the client.
    /// Idempotent.
    public func shutdown() async {
        guard ledger.withLock({ state in
            defer { state.shutDown = true }
            return !state.shutDown
        }) else { return }
        for problem in await undo(deletingCreatedProxies: true) {
            logger.warning("\(description): could not clean up: \(problem)")
        }
        await client.shutdown()
    }

    /// What the ledger holds, for tests and messages: created proxies and added toxics (`proxy/toxic`).
    public var leftovers: (proxies: [String], toxics: [String]) {
        ledger.withLock { ($0.createdProxies, $0.addedToxics.map { "\($0.proxy)/\($0.name)" }) }
    }

    // MARK: Undo

    /// Records how a proxy that was on the server before the run looked, before its first change.
    private func snapshotProxyIfForeign(_ name: String) async throws {
        let needed = ledger.withLock { !$0.created(name) && $0.proxySnapshots[name] == nil }
        guard needed else { return }
        let before = try await call { () async throws(ToxiproxyError) in try await client.proxy(named: name) }
        ledger.withLock {
            guard $0.proxySnapshots[name] == nil else { return }
            $0.proxySnapshots[name] = before
            $0.proxySnapshotOrder.append(name)
        }
    }

    /// Undoes the ledger, newest first; returns what could not be undone. Something already gone
    /// counts as undone.
    private func undo(deletingCreatedProxies: Bool) async -> [String] {
        let state = ledger.withLock { $0 }
        var problems: [String] = []
        func attempt(_ body: () async throws(ToxiproxyError) -> Void) async {
            do {
                try await body()
            } catch where error.code == .notFound {
            } catch {
                problems.append(error.message)
            }
        }

        // Toxics added to proxies the run did not create (the run's own proxies go as a whole).
        for key in state.addedToxics.reversed() where !state.created(key.proxy) {
            await attempt { () async throws(ToxiproxyError) in try await client.removeToxic(named: key.name, from: key.proxy) }
            ledger.withLock { $0.forgetToxic(key) }
        }
        // Other users' toxics the run changed, as they were.
        for (key, before) in state.toxicSnapshots {
            await attempt { () async throws(ToxiproxyError) in
                _ = try await client.updateToxic(named: key.name, on: key.proxy, attributes: before.attributes, toxicity: before.toxicity)
            }
            ledger.withLock { $0.toxicSnapshots[key] = nil }
        }
        // Other users' proxies the run changed, as they were: only the fields that differ, so an
        // unchanged listen address does not restart the proxy.
        for name in state.proxySnapshotOrder.reversed() {
            guard let before = state.proxySnapshots[name] else { continue }
            await attempt { () async throws(ToxiproxyError) in
                let now = try await client.proxy(named: name)
                let listen = now.listen == before.listen || !before.enabled ? nil : before.listen
                let upstream = now.upstream == before.upstream ? nil : before.upstream
                let enabled = now.enabled == before.enabled ? nil : before.enabled
                if listen != nil || upstream != nil || enabled != nil {
                    _ = try await client.updateProxy(named: name, listen: listen, upstream: upstream, enabled: enabled)
                }
            }
            ledger.withLock {
                $0.proxySnapshots[name] = nil
                $0.proxySnapshotOrder.removeAll { $0 == name }
            }
        }
        // The run's own proxies: deleted at the end; on reset, cleared of toxics and enabled.
        for name in state.createdProxies.reversed() {
            if deletingCreatedProxies {
                await attempt { () async throws(ToxiproxyError) in try await client.deleteProxy(named: name) }
                ledger.withLock { $0.forgetProxy(name) }
            } else {
                var current: ProxyDefinition?
                await attempt { () async throws(ToxiproxyError) in current = try await client.proxy(named: name) }
                for toxic in current?.toxics ?? [] {
                    await attempt { () async throws(ToxiproxyError) in try await client.removeToxic(named: toxic.name, from: name) }
                }
                if current?.enabled == false {
                    await attempt { () async throws(ToxiproxyError) in _ = try await client.updateProxy(named: name, enabled: true) }
                }
                ledger.withLock { ledger in ledger.addedToxics.removeAll { $0.proxy == name } }
            }
        }
        return problems
    }
}
