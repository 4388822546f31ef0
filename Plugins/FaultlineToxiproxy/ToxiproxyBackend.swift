import FaultlineKit
import Logging
import Synchronization

/// A ``ToxicBackend`` on a Toxiproxy server that others may share.
///
/// It keeps a ledger of what this run did on the server — proxies it created, toxics it added,
/// the prior state of proxies and toxics it changed that were there before — so that:
/// The ledger is also the run's ``RunLedger``: each thing is recorded there before it is done
/// (see ``ToxiproxyCreatedProxy`` and its siblings), so `faultline recover` undoes what a killed
/// run left.
/// - ``shutdown()`` removes the toxics and proxies this run created and restores what it changed,
///   even when an activity's own cleanup could not run; it never sends a global `POST /reset`.
/// - ``reset()`` means "undo this run's faults": every toxic on the proxies the run created and
///   every toxic it added elsewhere are removed, its proxies are enabled, and the proxies and
///   toxics it changed get their prior state back. Other users' proxies and toxics stay as they are.
///   A global reset of the server is ``ToxiproxyClient/reset()`` (`toxiproxy.reset {scope: server}`).
public final class ToxiproxyBackend: ToxicBackend {
    public let client: ToxiproxyClient
    private let logger: Logger
    private let ledger: Mutex<Ledger>
    /// The run's persistent ledger.
    private let runLedger: RunLedger
    /// What runs before the first call: the recovery of what dead runs left on the server.
    private let firstUse: Mutex<(step: (@Sendable () async -> Void)?, task: Task<Void, Never>?)>

    struct ToxicKey: Hashable {
        var proxy: String
        var name: String
    }

    /// What this run did on the server, in order.
    struct Ledger {
        /// The run's persistent ledger, and the entries there that record what is below.
        let run: RunLedger
        let server: String
        let access: ServerAccess?
        var tokens: [Entry: LedgerToken] = [:]
        var createdProxies: [String] = []
        var addedToxics: [ToxicKey] = []
        /// Proxies that were on the server before the run changed them, as they were.
        var proxySnapshots: [String: ProxyDefinition] = [:]
        var proxySnapshotOrder: [String] = []
        /// Toxics the run did not add but changed, as they were.
        var toxicSnapshots: [ToxicKey: ToxicDefinition] = [:]
        var shutDown = false

        /// A persistent ledger entry.
        enum Entry: Hashable {
            case proxy(String)
            case toxic(ToxicKey)
            case proxyChange(String)
            case toxicChange(ToxicKey)
        }

        func created(_ proxy: String) -> Bool { createdProxies.contains(proxy) }

        /// Removes a persistent entry: what it records is undone.
        mutating func untrack(_ entry: Entry) {
            if let token = tokens.removeValue(forKey: entry) { run.remove(token) }
        }

        /// A proxy the run created (its entry recorded before the call).
        mutating func created(_ proxy: String, token: LedgerToken) {
            if let old = tokens.updateValue(token, forKey: .proxy(proxy)) { run.remove(old) }
            if !created(proxy) { createdProxies.append(proxy) }
        }

        mutating func added(_ key: ToxicKey, token: LedgerToken) {
            if let old = tokens.updateValue(token, forKey: .toxic(key)) { run.remove(old) }
            if !addedToxics.contains(key) { addedToxics.append(key) }
        }

        mutating func snapshot(_ before: ProxyDefinition) {
            guard proxySnapshots[before.name] == nil else { return }
            proxySnapshots[before.name] = before
            proxySnapshotOrder.append(before.name)
            tokens[.proxyChange(before.name)] = run.record(ToxiproxyChangedProxy(server: server, access: access, before: before))
        }

        mutating func snapshot(_ before: ToxicDefinition, key: ToxicKey) {
            guard toxicSnapshots[key] == nil else { return }
            toxicSnapshots[key] = before
            tokens[.toxicChange(key)] = run.record(ToxiproxyChangedToxic(server: server, access: access, proxy: key.proxy, before: before))
        }

        mutating func forgetProxySnapshot(_ proxy: String) {
            proxySnapshots[proxy] = nil
            proxySnapshotOrder.removeAll { $0 == proxy }
            untrack(.proxyChange(proxy))
        }

        mutating func forgetToxicSnapshot(_ key: ToxicKey) {
            toxicSnapshots[key] = nil
            untrack(.toxicChange(key))
        }

        mutating func forgetToxics(on proxy: String) {
            for key in addedToxics where key.proxy == proxy { untrack(.toxic(key)) }
            addedToxics.removeAll { $0.proxy == proxy }
        }

        mutating func forgetProxy(_ proxy: String) {
            createdProxies.removeAll { $0 == proxy }
            untrack(.proxy(proxy))
            forgetToxics(on: proxy)
            forgetProxySnapshot(proxy)
            for key in toxicSnapshots.keys where key.proxy == proxy { forgetToxicSnapshot(key) }
        }

        mutating func forgetToxic(_ key: ToxicKey) {
            addedToxics.removeAll { $0 == key }
            untrack(.toxic(key))
            forgetToxicSnapshot(key)
        }
    }

    /// - Parameters:
    ///   - client: the server's client; the backend shuts it down in ``shutdown()``.
    ///   - logger: for problems found while cleaning up at the end.
    ///   - ledger: the run's ledger, where what the backend does on the server is recorded.
    ///   - firstUse: runs once, before the first call reaches the server (the recovery of what
    ///     dead runs left there, for a server an activity names).
    ///   - access: the agent's name and where its token and CA are read from, recorded with each
    ///     ledger entry so that `faultline recover` reaches the server as the run did.
    public init(
        client: ToxiproxyClient, logger: Logger = Logger(label: "faultline.toxiproxy"), ledger: RunLedger = .disabled,
        firstUse: (@Sendable () async -> Void)? = nil, access: ServerAccess = ServerAccess()
    ) {
        self.access = access
        self.client = client
        self.logger = logger
        runLedger = ledger
        self.firstUse = Mutex((firstUse, nil))
        self.ledger = Mutex(Ledger(run: ledger, server: client.address.url, access: access == ServerAccess() ? nil : access))
    }

    public var address: ToxiproxyAddress { client.address }

    /// The agent's name and token and CA sources (all nil for a server the profile or an activity names).
    public let access: ServerAccess

    /// `Toxiproxy at URL`, or `agent NAME (URL)` for a suite's agent.
    public var description: String { access.agent.map { "agent \($0) (\(client.address.url))" } ?? "Toxiproxy at \(client.address.url)" }

    /// What ledger entries record of ``access``: nothing when there is nothing to record.
    private var ledgerAccess: ServerAccess? { access == ServerAccess() ? nil : access }

    /// Runs a client call, turning its error into the kernel's backend error.
    private func call<T>(_ body: () async throws(ToxiproxyError) -> T) async throws(ToxicBackendError) -> T {
        await prepared()
        do {
            return try await body()
        } catch {
            throw error.backendError
        }
    }

    /// Waits for the ``init(client:logger:ledger:firstUse:)`` step, started by the first caller.
    private func prepared() async {
        let task = firstUse.withLock { state -> Task<Void, Never>? in
            if state.task == nil, let step = state.step { state.task = Task { await step() } }
            return state.task
        }
        await task?.value
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
        // Checked at load for suite proxies; this catches any other caller before the server is asked.
        if proxy.tls != nil || proxy.upstreamTLS != nil {
            throw ToxicBackendError.invalid(
                "proxy \(proxy.name): \(description) cannot terminate or originate TLS (a Toxiproxy server proxies plain TCP only)")
        }
        // Recorded before it exists, so a kill between the call and its answer loses nothing.
        let token = runLedger.record(ToxiproxyCreatedProxy(server: client.address.url, access: ledgerAccess, proxy: proxy.name))
        var created: ProxyDefinition
        do {
            created = try await call { () async throws(ToxiproxyError) in try await client.createProxy(proxy) }
        } catch {
            runLedger.remove(token)
            throw error
        }
        ledger.withLock { $0.created(proxy.name, token: token) }
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
        // Toxiproxy names an unnamed toxic `<type>_<stream>`.
        let name = toxic.name.isEmpty ? "\(toxic.type)_\(toxic.stream.rawValue)" : toxic.name
        let token = runLedger.record(ToxiproxyAddedToxic(server: client.address.url, access: ledgerAccess, proxy: proxy, toxic: name))
        let added: ToxicDefinition
        do {
            added = try await call { () async throws(ToxiproxyError) in try await client.addToxic(toxic, to: proxy) }
        } catch {
            runLedger.remove(token)
            throw error
        }
        if added.name != name {
            runLedger.update(token, ToxiproxyAddedToxic(server: client.address.url, access: ledgerAccess, proxy: proxy, toxic: added.name))
        }
        ledger.withLock { $0.added(ToxicKey(proxy: proxy, name: added.name), token: token) }
        return added
    }

    public func updateToxic(named name: String, on proxy: String, attributes: Value?, toxicity: Double?) async throws -> ToxicDefinition {
        let key = ToxicKey(proxy: proxy, name: name)
        let needsSnapshot = ledger.withLock { !$0.addedToxics.contains(key) && !$0.created(proxy) && $0.toxicSnapshots[key] == nil }
        if needsSnapshot {
            let before = try await call { () async throws(ToxiproxyError) in try await client.toxic(named: name, on: proxy) }
            ledger.withLock { $0.snapshot(before, key: key) }
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
                guard let existing = before[proxy.name], !ledger.created(proxy.name),
                    existing.listen != proxy.listen || existing.upstream != proxy.upstream
                else { continue }
                ledger.snapshot(existing)
            }
        }
        let requested = proxies.map(\.name).filter { before[$0] == nil }
        let intents = requested.map { ($0, runLedger.record(ToxiproxyCreatedProxy(server: client.address.url, access: ledgerAccess, proxy: $0))) }
        let record = { (names: [String]) in
            self.ledger.withLock { ledger in
                for (name, token) in intents {
                    if names.contains(name) { ledger.created(name, token: token) } else { self.runLedger.remove(token) }
                }
            }
        }
        do {
            let result = try await call { () async throws(ToxiproxyError) in try await client.populate(proxies) }
            record(requested)
            return (result, requested)
        } catch {
            // Toxiproxy stops at the first failure, keeping the proxies it made before it.
            let now = try? await self.proxies()
            // Unknown: keep every intent, which recovery finds gone if it never was.
            record(now.map { now in requested.filter { name in now.contains { $0.name == name } } } ?? requested)
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
        guard
            ledger.withLock({ state in
                defer { state.shutDown = true }
                return !state.shutDown
            })
        else { return }
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
        ledger.withLock { $0.snapshot(before) }
    }

    /// Undoes the ledger, newest first; returns what could not be undone. Something already gone
    /// counts as undone. What could not be undone stays in the ledger (and in the run's, for
    /// `faultline recover`).
    private func undo(deletingCreatedProxies: Bool) async -> [String] {
        let state = ledger.withLock { $0 }
        var problems: [String] = []
        func attempt(_ body: () async throws(ToxiproxyError) -> Void) async -> Bool {
            do {
                try await body()
            } catch  where error.code == .notFound {
            } catch {
                problems.append(error.message)
                return false
            }
            return true
        }

        // Toxics added to proxies the run did not create (the run's own proxies go as a whole).
        for key in state.addedToxics.reversed() where !state.created(key.proxy) {
            if await attempt({ () async throws(ToxiproxyError) in try await client.removeToxic(named: key.name, from: key.proxy) }) {
                ledger.withLock { $0.forgetToxic(key) }
            }
        }
        // Other users' toxics the run changed, as they were.
        for (key, before) in state.toxicSnapshots {
            let restored = await attempt { () async throws(ToxiproxyError) in
                _ = try await client.updateToxic(named: key.name, on: key.proxy, attributes: before.attributes, toxicity: before.toxicity)
            }
            if restored { ledger.withLock { $0.forgetToxicSnapshot(key) } }
        }
        // Other users' proxies the run changed, as they were.
        for name in state.proxySnapshotOrder.reversed() {
            guard let before = state.proxySnapshots[name] else { continue }
            if await attempt({ () async throws(ToxiproxyError) in _ = try await Self.restore(before, on: client) }) {
                ledger.withLock { $0.forgetProxySnapshot(name) }
            }
        }
        // The run's own proxies: deleted at the end; on reset, cleared of toxics and enabled.
        for name in state.createdProxies.reversed() {
            if deletingCreatedProxies {
                if await attempt({ () async throws(ToxiproxyError) in try await client.deleteProxy(named: name) }) {
                    ledger.withLock { $0.forgetProxy(name) }
                }
            } else {
                var current: ProxyDefinition?
                var cleared = await attempt { () async throws(ToxiproxyError) in current = try await client.proxy(named: name) }
                for toxic in current?.toxics ?? [] {
                    let removed = await attempt { () async throws(ToxiproxyError) in try await client.removeToxic(named: toxic.name, from: name) }
                    cleared = cleared && removed
                }
                if current?.enabled == false {
                    let enabled = await attempt { () async throws(ToxiproxyError) in _ = try await client.updateProxy(named: name, enabled: true) }
                    cleared = cleared && enabled
                }
                if cleared { ledger.withLock { $0.forgetToxics(on: name) } }
            }
        }
        return problems
    }

    /// Gives a proxy that was on the server before the run the fields it had, only those that
    /// differ, so an unchanged listen address does not restart it.
    /// - Returns: whether anything changed.
    static func restore(_ before: ProxyDefinition, on client: ToxiproxyClient) async throws(ToxiproxyError) -> Bool {
        let now = try await client.proxy(named: before.name)
        let listen = now.listen == before.listen || !before.enabled ? nil : before.listen
        let upstream = now.upstream == before.upstream ? nil : before.upstream
        let enabled = now.enabled == before.enabled ? nil : before.enabled
        guard listen != nil || upstream != nil || enabled != nil else { return false }
        _ = try await client.updateProxy(named: before.name, listen: listen, upstream: upstream, enabled: enabled)
        return true
    }
}
