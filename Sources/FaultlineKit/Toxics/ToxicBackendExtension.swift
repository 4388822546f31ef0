import Foundation
import Synchronization

/// The run's toxic backend and the suite's `proxies:`, as a run extension of the network stage.
///
/// ```yaml
/// agents:                                    # fault agents: Toxiproxy APIs on other hosts
///   db-host: {url: "http://198.18.0.2:8474", token: {type: env, key: DB_AGENT_TOKEN}}
/// proxies:                                   # created on the backend for the whole run
///   - {name: store, listen: "127.0.0.1:0", upstream: "127.0.0.1:6379"}
///   - {name: db, listen: "0.0.0.0:15432", upstream: "127.0.0.1:5432", agent: db-host}
///   - {name: cache, agent: db-host}          # already on the agent (a sidecar's): used, never made
/// profiles:
///   staging: {toxics: {backend: toxiproxy, url: "http://toxiproxy:8474"}}   # else the default backend
/// ```
///
/// The backend is the one the profile's `toxics: {backend: …}` names, or the registry's default
/// (``PluginRegistry/defaultToxicBackend``). A proxy with `agent:` is on that agent instead: the
/// suite's and the profile's `agents:` (the profile's win, name by name) are each made by the
/// factory that ``ToxicBackendFactory/servesAgents`` and reached at run start, before any
/// experiment; an ``AgentRouter`` then sends each call to the backend holding its proxy.
/// The backend is provided to activities as ``ToxicBackendKey``;
/// the proxies are exported as `${proxies.NAME.port}`, `.host`, `.listen`, `.upstream` and `.name`,
/// and a proxy that terminates TLS as `.ca` too (the CA file a client trusts).
///
/// Every plugin that registers a toxic backend registers this extension beside it; registering it
/// again changes nothing. The kernel itself never starts it.
public struct ToxicBackendExtension: RunExtension {
    public let name = "toxic backend"
    public let stage = RunStage.network
    public let suiteKeys = ["proxies", "agents"]
    public let profileKeys = ["toxics", "agents"]

    public init() {}

    /// The backend and proxies of a run, decoded once when the plan is built.
    public struct Plan: Sendable {
        /// The backend's registered name; nil when the run has no backend.
        public var backend: String?
        /// The profile's `toxics:` without `backend`, substituted.
        public var options: SourceNode?
        /// The suite's proxies, substituted and checked; nil when the suite has no `proxies:`.
        public var proxies: [ProxyDefinition]?
        /// The declared agents, by name: each one's object, substituted.
        public var agents: [String: SourceNode] = [:]
        /// Where the options given as one `${name}` were read (``BackendContext/sources``): the
        /// profile backend's, and each agent's by name.
        public var optionSources: [String: ValueSource] = [:]
        public var agentSources: [String: [String: ValueSource]] = [:]
        /// Which agent holds each suite proxy placed on one.
        public var placement: [String: String] = [:]
        /// Suite proxies an agent already holds (no `upstream:`): the run neither creates nor
        /// deletes them, only exports them (and undoes what it does to them).
        public var held: [String] = []
    }

    /// A suite proxy as written.
    struct SuiteProxy: Decodable {
        var name: String
        var listen: String?
        /// Nil for a proxy an agent already holds.
        var upstream: String?
        var enabled: Bool?
        var tls: ListenTLS?
        var upstreamTLS: UpstreamTLS?
        /// The agent that holds it; nil for the run's default backend.
        var agent: String?

        enum CodingKeys: String, CodingKey {
            case name, listen, upstream, enabled, tls, agent
            case upstreamTLS = "upstream_tls"
        }
    }

    // MARK: Planning

    public func placeholders(_ sections: RunSections) -> [String: Value] {
        var proxies = ValueObject()
        for element in sections["proxies"]?.elements ?? [] {
            if let name = element["name"]?.stringValue {
                // Port 0 is bound at run time; validation sees a plausible port in its place.
                var listen = element["listen"]?.stringValue ?? "127.0.0.1:0"
                if listen.hasSuffix(":0") { listen = String(listen.dropLast()) + "1" }
                var proxy = ProxyDefinition(name: name, listen: listen, upstream: element["upstream"]?.stringValue ?? "")
                if let tls = element["tls"] {
                    // The file a client trusts is known once the proxy is made; a plausible path in its place.
                    let ca = tls["ca"]?.stringValue ?? tls["cert"]?.stringValue ?? "/tmp/faultline-tls/\(name)/ca.pem"
                    proxy.tls = ListenTLS(selfSigned: true, ca: ca)
                }
                proxies[name] = Self.proxyExport(proxy)
            }
        }
        return proxies.isEmpty ? [:] : ["proxies": .object(proxies)]
    }

    /// Decodes the backend choice and the proxies once. They come up before anything else, so
    /// they may use the shared configuration only.
    public func plan(_ sections: RunSections, context: RunPlanContext, sink: DiagnosticSink) -> Plan? {
        let agents = planAgents(sections, substitution: context.shared, registry: context.registry, sink: sink)
        let backend = planBackend(sections, substitution: context.shared, registry: context.registry, sink: sink)
        let proxies = planProxies(
            sections, agents: agents.options, substitution: context.shared, registry: context.registry, backend: backend.name,
            profile: sections.profileName, sink: sink)
        guard !sink.hasErrors else { return nil }
        var plan = Plan(
            backend: backend.name, options: backend.options, proxies: proxies?.proxies, agents: agents.options, placement: proxies?.placement ?? [:],
            held: proxies?.held ?? [])
        plan.agentSources = agents.sources
        plan.optionSources = Self.sources(of: Self.backendOptions(sections.profile["toxics"]), in: context.shared)
        return plan
    }

    /// Where each option that is exactly one `${name}` was read.
    static func sources(of options: SourceNode?, in substitution: Substitution) -> [String: ValueSource] {
        var sources: [String: ValueSource] = [:]
        for member in options?.members ?? [] {
            if let text = member.value.stringValue, let source = substitution.source(of: text) { sources[member.key] = source }
        }
        return sources
    }

    /// The suite's `agents:` with the profile's over them (an agent the profile declares replaces
    /// the suite's of that name), each checked by the factory that makes agents.
    private func planAgents(_ sections: RunSections, substitution: Substitution, registry: PluginRegistry, sink: DiagnosticSink)
        -> (options: [String: SourceNode], sources: [String: [String: ValueSource]])
    {
        var agents: [String: SourceNode] = [:]
        var sources: [String: [String: ValueSource]] = [:]
        let declared =
            [(sections.suite["agents"], DocumentPath([.key("agents")]))]
            + [(sections.profile["agents"], DocumentPath([.key("profiles"), .key(sections.profileName ?? "?"), .key("agents")]))]
        for case (let node?, let path) in declared {
            guard let members = node.members else {
                sink.report(
                    Diagnostic(
                        "expected agents as an object of name: {url, token}, found \(describeFound(node))", at: node.location, path: path,
                        hint: "agents: {db-host: {url: \"http://198.18.0.2:8474\", token: {type: env, key: DB_AGENT_TOKEN}}}"))
                continue
            }
            guard let factory = registry.toxicBackends.values.first(where: \.servesAgents) else {
                sink.report(
                    Diagnostic(
                        "the suite declares agents, but no registered toxic backend serves agents", at: node.location,
                        path: path))
                continue
            }
            for member in members {
                let agentPath = path.appending(member.key)
                guard member.key.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]*$"#, options: .regularExpression) != nil else {
                    sink.report(
                        Diagnostic(
                            "agent name \"\(member.key)\" must be letters, digits, '.', '_' or '-'", at: member.keyLocation ?? member.value.location,
                            path: agentPath))
                    continue
                }
                guard member.value.members != nil, member.value["url"] != nil else {
                    sink.report(
                        Diagnostic(
                            "agent \(member.key) needs url: (its Toxiproxy API: faultline proxy or toxiproxy-server)", at: member.value.location,
                            path: agentPath, hint: "\(member.key): {url: \"http://198.18.0.2:8474\", token: {type: env, key: AGENT_TOKEN}}"))
                    continue
                }
                factory.validate(options: member.value, sink: sink)
                guard let substituted = try? substitution.substitute(member.value, path: agentPath, sink: sink) else { continue }
                agents[member.key] = substituted
                sources[member.key] = Self.sources(of: member.value, in: substitution)
            }
        }
        return (agents, sources)
    }

    private func planProxies(
        _ sections: RunSections, agents: [String: SourceNode], substitution: Substitution, registry: PluginRegistry, backend: String?,
        profile: String?, sink: DiagnosticSink
    ) -> (proxies: [ProxyDefinition], placement: [String: String], held: [String])? {
        guard let node = sections["proxies"] else { return nil }
        var placement: [String: String] = [:]
        let written = Set([sections.suite["agents"], sections.profile["agents"]].flatMap { $0?.members?.map(\.key) ?? [] })
        let path = DocumentPath([.key("proxies")])
        guard let elements = node.elements else {
            sink.report(
                Diagnostic("expected a list of proxies ({name, listen, upstream}), found \(describeFound(node))", at: node.location, path: path))
            return nil
        }
        var proxies: [ProxyDefinition] = []
        var held: [String] = []
        var names: Set<String> = []
        for (index, element) in elements.enumerated() {
            guard let substituted = try? substitution.substitute(element, path: path.appending(index), sink: sink),
                let proxy = try? NodeDecoder().decode(SuiteProxy.self, from: substituted, path: path.appending(index), sink: sink)
            else {
                if let element = try? substitution.substitute(element, path: path.appending(index)) {
                    do { _ = try NodeDecoder().decode(SuiteProxy.self, from: element, path: path.appending(index), sink: sink) } catch {
                        sink.report(error, fallbackLocation: element.location, path: path.appending(index))
                    }
                }
                continue
            }
            if !names.insert(proxy.name).inserted {
                sink.report(
                    Diagnostic("duplicate proxy name \"\(proxy.name)\"", at: element["name"]?.location, path: path.appending(index).appending("name"))
                )
            }
            guard let upstream = proxy.upstream else {
                if let agent = proxy.agent, agents[agent] != nil, proxy.listen == nil, proxy.enabled == nil {
                    placement[proxy.name] = agent
                    held.append(proxy.name)
                } else if proxy.agent == nil || proxy.listen != nil || proxy.enabled != nil {
                    sink.report(
                        Diagnostic(
                            "proxy \(proxy.name) needs upstream: (the run creates it), unless it is one an agent already holds ({name, agent} alone)",
                            at: element.location, path: path.appending(index), hint: "{name: \(proxy.name), upstream: \"HOST:PORT\"}"))
                }
                if let agent = proxy.agent, agents[agent] == nil { reportUnknownAgent(agent, proxy: proxy.name, at: element, index: index) }
                continue
            }
            // On an agent a proxy listens on every address by default: what connects to it is on
            // other hosts. `${proxies.NAME.host}` is then the agent's host.
            let listen = proxy.listen ?? (proxy.agent == nil ? "127.0.0.1:0" : "0.0.0.0:0")
            for (key, address, role) in [("upstream", upstream, HostPort.Role.connect), ("listen", listen, .listen)] {
                do {
                    _ = try HostPort(parsing: address, role: role)
                } catch {
                    sink.report(
                        Diagnostic(error.message(key: key), at: element[key]?.location, path: path.appending(index).appending(key), hint: error.hint))
                }
            }
            if let agent = proxy.agent {
                if agents[agent] != nil {
                    placement[proxy.name] = agent
                } else {
                    reportUnknownAgent(agent, proxy: proxy.name, at: element, index: index)
                }
            }
            var definition = ProxyDefinition(name: proxy.name, listen: listen, upstream: upstream, enabled: proxy.enabled ?? true)
            if proxy.tls != nil || proxy.upstreamTLS != nil {
                let directory = element.location.map { ($0.file as NSString).deletingLastPathComponent } ?? ""
                definition.tls = proxy.tls?.resolvingFiles(against: directory)
                definition.upstreamTLS = proxy.upstreamTLS?.resolvingFiles(against: directory)
                if let agent = proxy.agent {
                    // An agent is reached through the Toxiproxy API, which has no TLS settings.
                    let section = proxy.tls != nil ? "tls" : "upstream_tls"
                    sink.report(
                        Diagnostic(
                            "proxy \(proxy.name) is on agent \(agent), made through the Toxiproxy API, which cannot set up TLS",
                            at: substituted[section]?.location, path: path.appending(index).appending(section),
                            hint: "remove \(section), or let the run hold the proxy (no agent:)"))
                } else {
                    checkTLS(
                        definition, node: substituted, path: path.appending(index), factory: backend.flatMap { registry.toxicBackends[$0] },
                        backend: backend, defaultBackend: registry.defaultToxicBackend, profile: profile, sink: sink)
                }
            }
            proxies.append(definition)
        }
        if registry.toxicBackends.isEmpty {
            sink.report(Diagnostic("the suite declares proxies, but no toxic backend plugin is registered", at: node.location, path: path))
        }
        return (proxies, placement, held)

        /// A proxy's `agent:` that names no declared agent (one declared but wrong has its own error).
        func reportUnknownAgent(_ agent: String, proxy: String, at element: SourceNode, index: Int) {
            guard !written.contains(agent) else { return }
            let known = agents.keys.sorted()
            let declared =
                known.isEmpty
                ? "no agents are declared: add agents: {\(agent): {url: \"http://HOST:8474\"}} to the suite or the profile"
                : "declared agents: \(known.joined(separator: ", "))"
            sink.report(
                Diagnostic(
                    "unknown agent \"\(agent)\" for proxy \(proxy)" + (Suggestion.didYouMean(agent, in: known).map { " (\($0))" } ?? ""),
                    at: element["agent"]?.location ?? element.location, path: path.appending(index).appending("agent"), hint: declared))
        }
    }

    /// Checks a proxy's TLS settings: whole, files readable, and a backend that can run them
    /// (which then checks the files' contents).
    private func checkTLS(
        _ proxy: ProxyDefinition, node: SourceNode, path: DocumentPath, factory: (any ToxicBackendFactory)?, backend: String?,
        defaultBackend: String?, profile: String?, sink: DiagnosticSink
    ) {
        let before = sink.diagnostics.count
        var files: [(section: String, key: String, file: String)] = []
        for (section, problem) in [("tls", proxy.tls?.problem), ("upstream_tls", proxy.upstreamTLS?.problem)] {
            guard let problem else { continue }
            let located = node[section]?[problem.key] ?? node[section]
            sink.report(Diagnostic(problem.message, at: located?.location, path: path.appending(section).appending(problem.key), hint: problem.hint))
        }
        if let tls = proxy.tls, tls.problem == nil {
            files += [("tls", "cert", tls.cert), ("tls", "key", tls.key), ("tls", "ca", tls.ca)].compactMap { s, k, f in f.map { (s, k, $0) } }
        }
        if let ca = proxy.upstreamTLS?.ca, proxy.upstreamTLS?.problem == nil { files.append(("upstream_tls", "ca", ca)) }
        for (section, key, file) in files {
            guard let reason = ProxyTLSFiles.unreadable(file) else { continue }
            sink.report(
                Diagnostic(
                    "cannot read \(section).\(key) \"\(file)\": \(reason)", at: node[section]?[key]?.location,
                    path: path.appending(section).appending(key),
                    hint: "give the path of a PEM file, absolute or relative to the file that names it"))
        }
        guard let factory, let backend else { return }
        guard factory.supportsTLS else {
            let section = proxy.tls != nil ? "tls" : "upstream_tls"
            let owner = profile.map { "profile \"\($0)\" uses" } ?? "this run uses"
            sink.report(
                Diagnostic(
                    "\(owner) the \(backend) toxic backend, which cannot run a TLS proxy: \(factory.tlsRefusal)",
                    at: node[section]?.location, path: path.appending(section),
                    hint: "remove \(section), or run with a profile whose toxics backend \(Self.defaultHint(defaultBackend))"))
            return
        }
        if sink.diagnostics.count == before { factory.validateTLS(proxy, node: node, path: path, sink: sink) }
    }

    /// The backend the profile names, or the default one.
    private func planBackend(
        _ sections: RunSections, substitution: Substitution, registry: PluginRegistry, sink: DiagnosticSink
    ) -> (name: String?, options: SourceNode?) {
        guard let toxics = sections.profile["toxics"] else { return (registry.defaultToxicBackend, nil) }
        let path = sections.path(of: "toxics")
        guard let backend = toxics["backend"]?.stringValue else {
            sink.report(
                Diagnostic(
                    "toxics needs backend: (one of \(registry.toxicBackends.keys.sorted().joined(separator: ", ")))", at: toxics.location, path: path)
            )
            return (nil, nil)
        }
        guard let factory = registry.toxicBackends[backend] else {
            let known = registry.toxicBackends.keys.sorted()
            sink.report(
                Diagnostic(
                    "unknown toxic backend \"\(backend)\"", at: toxics["backend"]?.location, path: path.appending("backend"),
                    hint: Suggestion.didYouMean(backend, in: known) ?? "known backends: \(known.joined(separator: ", "))"))
            return (nil, nil)
        }
        let options = Self.backendOptions(toxics)
        factory.validate(options: options, sink: sink)
        // A `${variable}` in an option is the shared configuration's; the factory checks the result when it starts.
        return (backend, options.flatMap { try? substitution.substitute($0, path: path, sink: sink) })
    }

    /// The end of a hint naming the registered default backend: `is inprocess (the default)`.
    static func defaultHint(_ name: String?) -> String {
        name.map { "is \($0) (the default)" } ?? "can run it"
    }

    /// Reports every `type: toxic` activity of `experiment` whose toxic the profile's backend
    /// cannot run (an HTTP toxic on a Toxiproxy server), at the activity's `toxic:`. A toxic on a
    /// suite proxy an agent holds is the agent's to judge (`faultline proxy` runs HTTP toxics, a
    /// Toxiproxy server refuses them with an error naming the agent).
    static func checkToxics(_ experiment: Experiment, suite: Suite? = nil, profile: Suite.Profile?, registry: PluginRegistry, sink: DiagnosticSink) {
        let backend = profile?.extensionSections["toxics"]?["backend"]?.stringValue ?? registry.defaultToxicBackend
        guard let backend, let factory = registry.toxicBackends[backend] else { return }
        let onAgents = Set(
            (suite?.extensionSections["proxies"]?.elements ?? []).compactMap { $0["agent"] == nil ? nil : $0["name"]?.stringValue })
        let activities = (experiment.hypothesis?.probes ?? []) + experiment.method + experiment.rollbacks
        if !factory.supportsTLS {
            for activity in activities where activity.provider.type == CreateProxyAction.type {
                let arguments = activity.provider.arguments
                guard let key = ["tls", "upstream_tls"].first(where: { arguments[$0] != nil }) else { continue }
                let owner = profile.map { "profile \"\($0.name)\" uses" } ?? "this run uses"
                sink.report(
                    Diagnostic(
                        "\(owner) the \(backend) toxic backend, which cannot run a TLS proxy: \(factory.tlsRefusal)",
                        at: arguments[key]?.location ?? activity.location, path: activity.provider.path.appending(key),
                        hint: "remove \(key), or run with a profile whose toxics backend \(defaultHint(registry.defaultToxicBackend))"))
            }
        }
        for activity in activities where activity.provider.type == AddToxicAction.type {
            let arguments = activity.provider.arguments
            if let proxy = arguments["proxy"]?.stringValue, onAgents.contains(proxy) { continue }
            guard let type = arguments["toxic"]?.stringValue, let descriptor = registry.toxics[type] else { continue }
            let owner = profile.map { "profile \"\($0.name)\" uses" } ?? "this run uses"
            if let reason = factory.cannotRun(descriptor, limitedToClients: arguments["clients"] != nil) {
                sink.report(
                    Diagnostic(
                        "\(owner) the \(backend) toxic backend, which cannot run this toxic: \(reason)",
                        at: arguments["toxic"]?.location ?? activity.location, path: activity.provider.path.appending("toxic"),
                        hint: "run it with a profile whose toxics backend \(defaultHint(registry.defaultToxicBackend))"))
            } else if let refusal = factory.refuses(descriptor, attributes: arguments["attributes"]?.value) {
                // A key left out is judged at its default: point at the attributes, or the toxic without them.
                let node = arguments["attributes"]?[refusal.key] ?? arguments["attributes"] ?? arguments["toxic"]
                sink.report(
                    Diagnostic(
                        "\(owner) the \(backend) toxic backend, which must not be sent these attributes: \(refusal.reason)",
                        at: node?.location ?? activity.location, path: activity.provider.path.appending("attributes").appending(refusal.key),
                        hint: refusal.hint))
            }
        }
    }

    static func backendOptions(_ toxics: SourceNode?) -> SourceNode? {
        guard let toxics, let members = toxics.members else { return nil }
        return SourceNode(.object(members.filter { $0.key != "backend" }), at: toxics.location)
    }

    /// What a suite proxy exports: `${proxies.NAME.port}`, `.host`, `.listen`, `.upstream`, and `.ca`
    /// for one that terminates TLS.
    /// - Parameter agentURL: the URL of the agent holding it: a proxy there listening on every
    ///   address (`0.0.0.0`, `::`) is reached at the agent's host; one here, at 127.0.0.1.
    static func proxyExport(_ proxy: ProxyDefinition, agentURL: String? = nil) -> Value {
        let address = proxy.listenAddress ?? HostPort(host: "", port: 0)
        let host = address.isEveryAddress ? agentURL.flatMap(Self.host(ofURL:)) ?? "127.0.0.1" : address.urlHost
        var export: ValueObject = [
            "name": .string(proxy.name), "listen": .string(proxy.listen), "host": .string(host),
            "port": .int(proxy.listenPort ?? 0), "upstream": .string(proxy.upstream),
        ]
        if let ca = proxy.tls?.ca { export["ca"] = .string(ca) }
        return .object(export)
    }

    /// The host of an agent's URL (`http://h:8474`, or `h:8474` as toxiproxy-cli takes it), bracketed if IPv6.
    static func host(ofURL text: String) -> String? {
        guard let host = URLComponents(string: text.contains("://") ? text : "http://" + text)?.host, !host.isEmpty else { return nil }
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return bare.contains(":") ? "[\(bare)]" : bare
    }

    // MARK: Running

    public func start(_ plan: Plan, setup: RunSetup) async throws -> (any RunExtensionHandle)? {
        guard let backendName = plan.backend, let factory = setup.registry.toxicBackends[backendName] else { return nil }
        var backend: any ToxicBackend
        do {
            backend = try await factory.makeBackend(
                options: plan.options,
                context: BackendContext(
                    seed: setup.seed, environment: setup.environment, registry: setup.registry, ledger: setup.resources.ledger,
                    progress: { setup.step($0) }, sources: plan.optionSources))
        } catch {
            throw RunSetupFailure("toxic backend \(backendName): \(error)")
        }
        if !plan.agents.isEmpty {
            backend = AgentRouter(fallback: backend, agents: try await startAgents(plan, fallback: backend, setup: setup), placement: plan.placement)
        }
        setup.provide(ToxicBackendKey.self, backend)
        let handle = Handle(backend: backend)
        guard let proxies = plan.proxies else { return handle }
        do {
            var exported = ValueObject()
            for name in plan.held {
                try Task.checkCancellation()
                setup.step("proxy \(name) on agent \(plan.placement[name] ?? "?") (already there)")
                do {
                    exported[name] = Self.proxyExport(
                        try await backend.proxy(named: name), agentURL: plan.placement[name].flatMap { plan.agents[$0]?["url"]?.stringValue })
                } catch {
                    throw RunSetupFailure("proxy \(name): \(error)")
                }
            }
            for proxy in proxies {
                try Task.checkCancellation()
                setup.step("proxy \(proxy.name) → \(proxy.upstream)" + (plan.placement[proxy.name].map { " on agent \($0)" } ?? ""))
                let created: ProxyDefinition
                do {
                    created = try await backend.createProxy(proxy)
                } catch {
                    throw RunSetupFailure("proxy \(proxy.name): \(error)")
                }
                handle.created(proxy.name)
                exported[proxy.name] = Self.proxyExport(
                    created, agentURL: plan.placement[proxy.name].flatMap { plan.agents[$0]?["url"]?.stringValue })
            }
            setup.export("proxies", .object(exported))
        } catch {
            // Start brings everything up or leaves nothing behind; an interrupt must not cut that short.
            for problem in await Task(operation: { await handle.stop() }).value { setup.logger.warning("\(problem)") }
            throw error
        }
        return handle
    }

    /// Reaches every agent (each checks its server and token, then recovers what dead runs left
    /// there), so that an unreachable one fails the run before any experiment, naming it, within
    /// its connect timeout. One after another: two recoveries at once would each find the other
    /// holding a dead run's ledger and skip it. On a failure every backend made so far is shut down.
    private func startAgents(_ plan: Plan, fallback: any ToxicBackend, setup: RunSetup) async throws -> [String: any ToxicBackend] {
        var agents: [String: any ToxicBackend] = [:]
        @Sendable func abandon(_ made: [any ToxicBackend]) async {
            for backend in made { await backend.shutdown() }
            await fallback.shutdown()
        }
        guard let factory = setup.registry.toxicBackends.values.first(where: \.servesAgents) else {
            await abandon([])
            throw RunSetupFailure("the suite declares agents, but no plugin that reaches agents is registered")
        }
        for name in plan.agents.keys.sorted() {
            guard let options = plan.agents[name] else { continue }
            setup.step("agent \(name)")
            let context = BackendContext(
                seed: setup.seed, environment: setup.environment, registry: setup.registry, ledger: setup.resources.ledger,
                progress: { setup.step($0) }, agent: name, sources: plan.agentSources[name] ?? [:])
            do {
                try Task.checkCancellation()
                agents[name] = try await factory.makeBackend(options: options, context: context)
            } catch {
                // Start brings everything up or leaves nothing behind; an interrupt must not cut that short.
                let made = Array(agents.values)
                await Task { await abandon(made) }.value
                throw RunSetupFailure("agent \(name): \(error)")
            }
        }
        return agents
    }

    /// Deletes the run's proxies, newest first, then shuts the backend down.
    final class Handle: RunExtensionHandle {
        let backend: any ToxicBackend
        private let proxies = Mutex<(names: [String], stopped: Bool)>(([], false))

        init(backend: any ToxicBackend) { self.backend = backend }

        func created(_ name: String) { proxies.withLock { $0.names.append(name) } }

        func stop() async -> [String] {
            let names = proxies.withLock { state -> [String]? in
                if state.stopped { return nil }
                state.stopped = true
                return state.names
            }
            guard let names else { return [] }
            var problems: [String] = []
            for name in names.reversed() {
                do {
                    try await backend.deleteProxy(named: name)
                } catch ToxicBackendError.notFound {
                } catch {
                    problems.append("could not delete proxy \(name): \(error)")
                }
            }
            await backend.shutdown()
            return problems
        }
    }
}
