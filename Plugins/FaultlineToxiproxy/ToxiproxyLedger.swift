import FaultlineKit

// What a run injects on a Toxiproxy server, as ledger entries (see ``RunLedger``), and how
// `faultline recover` undoes each when the run died. The token is never recorded, only where it
// is read from (``ServerAccess``): a recovery takes the one given to it (`--token`), else reads
// it there, else from `TOXIPROXY_AUTH_TOKEN` (the next run: from its profile or agent).

/// A proxy the run created: recovery deletes it.
struct ToxiproxyCreatedProxy: LedgerEntry {
    static let kind = "toxiproxy.proxy"
    var server: String?
    /// The agent, token source and CA of the server; nil for entries of older runs.
    var access: ServerAccess? = nil
    var proxy: String

    var summary: String { "proxy \(proxy) on \(access?.describe(server ?? "?") ?? server ?? "?")" }
}

/// A toxic the run added to a proxy: recovery removes it.
struct ToxiproxyAddedToxic: LedgerEntry {
    static let kind = "toxiproxy.toxic"
    var server: String?
    /// The agent, token source and CA of the server; nil for entries of older runs.
    var access: ServerAccess? = nil
    var proxy: String
    var toxic: String

    var summary: String { "toxic \(toxic) on proxy \(proxy) on \(access?.describe(server ?? "?") ?? server ?? "?")" }
}

/// A proxy that was on the server before the run changed it (disabled it, moved it): recovery
/// gives it back the fields that differ.
struct ToxiproxyChangedProxy: LedgerEntry {
    static let kind = "toxiproxy.proxy-change"
    var server: String?
    /// The agent, token source and CA of the server; nil for entries of older runs.
    var access: ServerAccess? = nil
    var before: ProxyDefinition

    var summary: String { "changes to proxy \(before.name) on \(access?.describe(server ?? "?") ?? server ?? "?")" }
}

/// A toxic the run did not add but changed: recovery sets its attributes and toxicity back.
struct ToxiproxyChangedToxic: LedgerEntry {
    static let kind = "toxiproxy.toxic-change"
    var server: String?
    /// The agent, token source and CA of the server; nil for entries of older runs.
    var access: ServerAccess? = nil
    var proxy: String
    var before: ToxicDefinition

    var summary: String { "changes to toxic \(before.name) on proxy \(proxy) on \(access?.describe(server ?? "?") ?? server ?? "?")" }
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

    /// Runs `body` with a client of `server` (with the token and CA `access` records); a
    /// `notFound` means already undone.
    static func withClient(
        _ server: String?, access: ServerAccess?, context: RecoveryContext, _ body: (ToxiproxyClient) async throws(ToxiproxyError) -> String
    ) async throws -> String {
        let address = try ToxiproxyAddress(parsing: server ?? "")
        let access = access ?? ServerAccess()
        let token = access.token(server: address.url, context: context)
        if token == nil, let given = access.tokenGiven {
            // The server wants the token the run had, which the ledger could not hold: say which, and how to give it.
            throw ToxiproxyBackendError(
                "\(access.describe(address.url)) needs the run's token, \(given), whose value is not recorded; \(access.howToGiveToken(address.url))")
        }
        let client = ToxiproxyClient(address: address, token: token, caFile: access.caFile)
        do {
            let done = try await body(client)
            await client.shutdown()
            return done
        } catch  where error.code == .notFound {
            await client.shutdown()
            return "already gone"
        } catch  where error.code == .unauthorized {
            await client.shutdown()
            // Say where the token was looked for: the variable the run read it from, most often.
            let hint = access.tokenGiven.map { "; the run's token was \($0), not recorded: \(access.howToGiveToken(address.url))" } ?? ""
            throw ToxiproxyBackendError(
                "\(access.describe(address.url)): \(error.message); the token is read from \(access.lookedFor(server: address.url, context: context))\(hint)"
            )
        } catch {
            await client.shutdown()
            throw error
        }
    }

    struct DeleteProxy: LedgerRecovery {
        func recover(_ entry: ToxiproxyCreatedProxy, context: RecoveryContext) async throws -> String {
            try await withClient(entry.server, access: entry.access, context: context) { (client) async throws(ToxiproxyError) in
                try await client.deleteProxy(named: entry.proxy)
                return "deleted"
            }
        }
    }

    struct RemoveToxic: LedgerRecovery {
        func recover(_ entry: ToxiproxyAddedToxic, context: RecoveryContext) async throws -> String {
            try await withClient(entry.server, access: entry.access, context: context) { (client) async throws(ToxiproxyError) in
                try await client.removeToxic(named: entry.toxic, from: entry.proxy)
                return "removed"
            }
        }
    }

    struct RestoreProxy: LedgerRecovery {
        func recover(_ entry: ToxiproxyChangedProxy, context: RecoveryContext) async throws -> String {
            try await withClient(entry.server, access: entry.access, context: context) { (client) async throws(ToxiproxyError) in
                try await ToxiproxyBackend.restore(entry.before, on: client) ? "restored" : "unchanged"
            }
        }
    }

    struct RestoreToxic: LedgerRecovery {
        func recover(_ entry: ToxiproxyChangedToxic, context: RecoveryContext) async throws -> String {
            try await withClient(entry.server, access: entry.access, context: context) { (client) async throws(ToxiproxyError) in
                _ = try await client.updateToxic(
                    named: entry.before.name, on: entry.proxy, attributes: entry.before.attributes, toxicity: entry.before.toxicity)
                return "restored"
            }
        }
    }
}
