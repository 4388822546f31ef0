import FaultlineKit
import Foundation

/// Which backend a Toxiproxy activity acts on.
extension ActivityContext {
    /// For Chaos Toolkit's `chaostoxi` functions: the server the experiment's configuration names
    /// (`toxiproxy_url`, or `toxiproxy_host` + `toxiproxy_port`), as chaostoolkit-toxiproxy reads
    /// it; otherwise the run's backend (the in-process proxy by default), so that a Chaos Toolkit
    /// experiment needs no server at all.
    func chaosToolkitBackend() throws -> any ToxicBackend {
        if let address = try configuredAddress() { return try toxiproxyBackend(at: address) }
        return try toxicBackend()
    }

    /// For `toxiproxy.*` activities: the server named by `url`, else by the configuration, else by
    /// `TOXIPROXY_URL`, else the run's backend when the profile chose a Toxiproxy server.
    func toxiproxyBackend(url: String?) throws -> ToxiproxyBackend {
        if let url {
            do {
                return try toxiproxyBackend(at: try ToxiproxyAddress(parsing: url))
            } catch let error as ArgumentError {
                throw ActivityFailure("url: \(error.message)" + (error.hint.map { " (\($0))" } ?? ""))
            }
        }
        if let address = try configuredAddress() { return try toxiproxyBackend(at: address) }
        if let text = ProcessInfo.processInfo.environment[ToxiproxyBackendFactory.environmentKey], !text.isEmpty {
            do {
                return try toxiproxyBackend(at: try ToxiproxyAddress(parsing: text))
            } catch let error as ArgumentError {
                throw ActivityFailure("\(ToxiproxyBackendFactory.environmentKey): \(error.message)")
            }
        }
        if let backend = runToxiproxyBackends.first(where: { $0.access.agent == nil }) { return backend }
        throw ActivityFailure(
            "no Toxiproxy server named",
            details: [
                "give the activity url: http://host:8474, set configuration toxiproxy_url (or toxiproxy_host/toxiproxy_port) or TOXIPROXY_URL,",
                "or run with a profile whose toxics: {backend: toxiproxy, url: …}; the toxic and proxy.* activities work on any backend",
            ])
    }

    private func configuredAddress() throws -> ToxiproxyAddress? {
        do {
            return try ToxiproxyAddress.configured(in: configuration)
        } catch let error as ArgumentError {
            throw ActivityFailure(error.message + (error.hint.map { " (\($0))" } ?? ""))
        }
    }

    /// The run's Toxiproxy backends: the profile's server and the suite's agents.
    private var runToxiproxyBackends: [ToxiproxyBackend] {
        let backend = resources[ToxicBackendKey.self]
        if let router = backend as? AgentRouter { return router.backends.compactMap { $0 as? ToxiproxyBackend } }
        return (backend as? ToxiproxyBackend).map { [$0] } ?? []
    }

    /// The run's backend (the profile's or an agent's) when it is this server, so that both share
    /// one ledger and its token; otherwise the run's connection to it.
    private func toxiproxyBackend(at address: ToxiproxyAddress) throws -> ToxiproxyBackend {
        if let backend = runToxiproxyBackends.first(where: { $0.address == address }) { return backend }
        guard let connections = resources[ToxiproxyConnectionsKey.self] else {
            throw ActivityFailure(
                "no Toxiproxy connections in this run",
                details: ["register ToxiproxyPlugin: its run extension connects to the servers activities name"])
        }
        return try connections.backend(for: address)
    }
}

/// Runs a backend call in an activity, turning a backend error into a failure naming the backend.
func activityCall<T>(_ backend: any ToxicBackend, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ToxicBackendError {
        throw ActivityFailure(backend.message(for: error))
    }
}

/// The arguments of a `toxiproxy.*` activity: those of the backend-neutral activity it mirrors,
/// plus the server's `url`.
public struct AtServer<Inner: Codable & Sendable>: Codable, Sendable, NumberRanges {
    /// The inner arguments' ranges: they decode from the same object.
    public static var numberRanges: [String: NumberRange] { (Inner.self as? any NumberRanges.Type)?.numberRanges ?? [:] }

    /// The server (default: configuration `toxiproxy_url`, then `TOXIPROXY_URL`, then the run's
    /// Toxiproxy backend).
    public var url: String?
    public var inner: Inner

    private enum CodingKeys: String, CodingKey { case url }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        url = try container.decodeIfPresent(String.self, forKey: .url)
        inner = try Inner(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        try inner.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(url, forKey: .url)
    }

    /// Checks `url` when given.
    func validateURL() throws {
        guard let url else { return }
        do {
            _ = try ToxiproxyAddress(parsing: url)
        } catch let error as ArgumentError {
            throw ArgumentError("url", error.message, hint: error.hint)
        }
    }

    static var urlHelp: String {
        "the Toxiproxy server, e.g. http://127.0.0.1:8474 (default: configuration toxiproxy_url, TOXIPROXY_URL, or the profile's)"
    }
}

/// Rejects an address that is not `host:port` for its role, naming the argument.
func checkHostPort(_ key: String, _ address: String?, role: HostPort.Role) throws {
    if let address { _ = try HostPort.argument(address, key: key, role: role) }
}
