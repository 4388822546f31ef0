/// The run's toxic backend when the suite declares fault agents: one ``ToxicBackend`` per agent
/// beside the run's default one (the in-process proxy, or the profile's Toxiproxy server), and
/// every call on a proxy sent to the backend that holds it.
///
/// Activities name a proxy, never an agent, so the same experiment runs whether the proxy is
/// in-process or on another host. A proxy the suite does not place on an agent (one a
/// `proxy.create` activity makes, say) is the default backend's.
///
/// Errors are ``ToxicBackendError``s whose message starts with the description of the backend
/// that failed (`agent db-host (http://198.18.0.2:8474): …`), so a failure names the agent.
public final class AgentRouter: ToxicBackend {
    /// The run's default backend.
    public let fallback: any ToxicBackend
    /// Each agent's backend, by agent name.
    public let agents: [String: any ToxicBackend]
    /// Which agent holds each suite proxy placed on one.
    public let placement: [String: String]

    /// - Parameters:
    ///   - fallback: the backend of every proxy not placed on an agent.
    ///   - agents: the agents' backends, by name.
    ///   - placement: proxy name → agent name.
    public init(fallback: any ToxicBackend, agents: [String: any ToxicBackend], placement: [String: String]) {
        self.fallback = fallback
        self.agents = agents
        self.placement = placement
    }

    public var description: String {
        ([fallback.description] + agents.keys.sorted().compactMap { agents[$0]?.description }).joined(separator: ", ")
    }

    /// Every backend: the default one first, then the agents by name.
    public var backends: [any ToxicBackend] { [fallback] + agents.keys.sorted().compactMap { agents[$0] } }

    /// The backend that holds `proxy`.
    public func backend(holding proxy: String) -> any ToxicBackend {
        placement[proxy].flatMap { agents[$0] } ?? fallback
    }

    /// Runs `body` on the backend holding `proxy`, naming that backend in its errors.
    private func routed<T>(_ proxy: String, _ body: (any ToxicBackend) async throws -> T) async throws -> T {
        let backend = backend(holding: proxy)
        return try await Self.named(backend) { try await body(backend) }
    }

    /// Prefixes a ``ToxicBackendError`` with the description of the backend that threw it.
    static func named<T>(_ backend: any ToxicBackend, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as ToxicBackendError {
            let message = "\(backend.description): \(error)"
            switch error {
            case .notFound: throw ToxicBackendError.notFound(message)
            case .conflict: throw ToxicBackendError.conflict(message)
            case .invalid: throw ToxicBackendError.invalid(message)
            case .unavailable: throw ToxicBackendError.unavailable(message)
            }
        }
    }

    // MARK: ToxicBackend

    /// The proxies of every backend; a name on two backends is listed as its holder has it.
    public func proxies() async throws -> [ProxyDefinition] {
        var byName: [String: ProxyDefinition] = [:]
        for (agent, backend) in [(String?.none, fallback)] + agents.sorted(by: { $0.key < $1.key }).map({ ($0.key, $0.value) }) {
            for proxy in try await Self.named(backend, { try await backend.proxies() })
            where byName[proxy.name] == nil || (agent != nil && placement[proxy.name] == agent) {
                byName[proxy.name] = proxy
            }
        }
        return byName.keys.sorted().compactMap { byName[$0] }
    }

    public func proxy(named name: String) async throws -> ProxyDefinition {
        try await routed(name) { try await $0.proxy(named: name) }
    }

    public func createProxy(_ proxy: ProxyDefinition) async throws -> ProxyDefinition {
        try await routed(proxy.name) { try await $0.createProxy(proxy) }
    }

    public func updateProxy(named name: String, listen: String?, upstream: String?, enabled: Bool?) async throws -> ProxyDefinition {
        try await routed(name) { try await $0.updateProxy(named: name, listen: listen, upstream: upstream, enabled: enabled) }
    }

    public func deleteProxy(named name: String) async throws {
        try await routed(name) { try await $0.deleteProxy(named: name) }
    }

    public func addToxic(_ toxic: ToxicDefinition, to proxy: String) async throws -> ToxicDefinition {
        try await routed(proxy) { try await $0.addToxic(toxic, to: proxy) }
    }

    public func updateToxic(named name: String, on proxy: String, attributes: Value?, toxicity: Double?) async throws -> ToxicDefinition {
        try await routed(proxy) { try await $0.updateToxic(named: name, on: proxy, attributes: attributes, toxicity: toxicity) }
    }

    public func removeToxic(named name: String, from proxy: String) async throws {
        try await routed(proxy) { try await $0.removeToxic(named: name, from: proxy) }
    }

    /// Resets every backend (each only what this run did, on a shared server); the first failure
    /// is thrown once all were tried.
    public func reset() async throws {
        var failure: (any Error)?
        for backend in backends {
            do {
                try await Self.named(backend) { try await backend.reset() }
            } catch {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
    }

    /// Shuts every backend down, agents first.
    public func shutdown() async {
        for backend in backends.reversed() { await backend.shutdown() }
    }

    public func toxicReport(named name: String, on proxy: String) async -> String? {
        await backend(holding: proxy).toxicReport(named: name, on: proxy)
    }
}

extension ToxicBackend {
    /// A failure of this backend for a message: `Toxiproxy at URL: …`. An ``AgentRouter``'s
    /// errors already name the backend that failed (`agent db-host (URL): …`), so they are kept as
    /// they are.
    public func message(for error: ToxicBackendError) -> String {
        self is AgentRouter ? error.description : "\(description): \(error)"
    }
}
