import FaultlineKit

// What a run injects on a Toxiproxy server, as ledger entries (see ``RunLedger``), and how
// `faultline recover` undoes each when the run died. The token is never recorded: a recovery
// reads it from `TOXIPROXY_AUTH_TOKEN` (or the next run's profile).

/// A proxy the run created: recovery deletes it.
struct ToxiproxyCreatedProxy: LedgerEntry {
    static let kind = "toxiproxy.proxy"
    var server: String?
    var proxy: String

    var summary: String { "proxy \(proxy) on \(server ?? "?")" }
}

/// A toxic the run added to a proxy: recovery removes it.
struct ToxiproxyAddedToxic: LedgerEntry {
    static let kind = "toxiproxy.toxic"
    var server: String?
    var proxy: String
    var toxic: String

    var summary: String { "toxic \(toxic) on proxy \(proxy) on \(server ?? "?")" }
}

/// A proxy that was on the server before the run changed it (disabled it, moved it): recovery
/// gives it back the fields that differ.
struct ToxiproxyChangedProxy: LedgerEntry {
    static let kind = "toxiproxy.proxy-change"
    var server: String?
    var before: ProxyDefinition

    var summary: String { "changes to proxy \(before.name) on \(server ?? "?")" }
}

/// A toxic the run did not add but changed: recovery sets its attributes and toxicity back.
struct ToxiproxyChangedToxic: LedgerEntry {
    static let kind = "toxiproxy.toxic-change"
    var server: String?
    var proxy: String
    var before: ToxicDefinition

    var summary: String { "changes to toxic \(before.name) on proxy \(proxy) on \(server ?? "?")" }
}

/// The recoveries of the entries above; each talks to the entry's server with the token from
/// the recovery's environment.
enum ToxiproxyRecoveries {
    static func register(into registry: inout PluginRegistry) {
        registry.register(recovery: DeleteProxy())
        registry.register(recovery: RemoveToxic())
        registry.register(recovery: RestoreProxy())
        registry.register(recovery: RestoreToxic())
    }

    /// Runs `body` with a client of `server`; a `notFound` means already undone.
    static func withClient(
        _ server: String?, context: RecoveryContext, _ body: (ToxiproxyClient) async throws(ToxiproxyError) -> String
    ) async throws -> String {
        let address = try ToxiproxyAddress(parsing: server ?? "")
        let token = context.environment[ToxiproxyBackendFactory.tokenEnvironmentKey].flatMap { $0.isEmpty ? nil : $0 }
        let client = ToxiproxyClient(address: address, token: token)
        do {
            let done = try await body(client)
            await client.shutdown()
            return done
        } catch  where error.code == .notFound {
            await client.shutdown()
            return "already gone"
        } catch {
            await client.shutdown()
            throw error
        }
    }

    struct DeleteProxy: LedgerRecovery {
        func recover(_ entry: ToxiproxyCreatedProxy, context: RecoveryContext) async throws -> String {
            try await withClient(entry.server, context: context) { (client) async throws(ToxiproxyError) in
                try await client.deleteProxy(named: entry.proxy)
                return "deleted"
            }
        }
    }

    struct RemoveToxic: LedgerRecovery {
        func recover(_ entry: ToxiproxyAddedToxic, context: RecoveryContext) async throws -> String {
            try await withClient(entry.server, context: context) { (client) async throws(ToxiproxyError) in
                try await client.removeToxic(named: entry.toxic, from: entry.proxy)
                return "removed"
            }
        }
    }

    struct RestoreProxy: LedgerRecovery {
        func recover(_ entry: ToxiproxyChangedProxy, context: RecoveryContext) async throws -> String {
            try await withClient(entry.server, context: context) { (client) async throws(ToxiproxyError) in
                try await ToxiproxyBackend.restore(entry.before, on: client) ? "restored" : "unchanged"
            }
        }
    }

    struct RestoreToxic: LedgerRecovery {
        func recover(_ entry: ToxiproxyChangedToxic, context: RecoveryContext) async throws -> String {
            try await withClient(entry.server, context: context) { (client) async throws(ToxiproxyError) in
                _ = try await client.updateToxic(
                    named: entry.before.name, on: entry.proxy, attributes: entry.before.attributes, toxicity: entry.before.toxicity)
                return "restored"
            }
        }
    }
}
