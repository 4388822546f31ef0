import Foundation
import Synchronization

/// The run's toxic backend and the suite's `proxies:`, as a run extension of the network stage.
///
/// ```yaml
/// proxies:                                   # created on the backend for the whole run
///   - {name: store, listen: "127.0.0.1:0", upstream: "127.0.0.1:6379"}
/// profiles:
///   staging: {toxics: {backend: toxiproxy, url: "http://toxiproxy:8474"}}   # else the default backend
/// ```
///
/// The backend is the one the profile's `toxics: {backend: …}` names, or the registry's default
/// (``PluginRegistry/defaultToxicBackend``). It is provided to activities as ``ToxicBackendKey``;
/// the proxies are exported as `${proxies.NAME.port}`, `.host`, `.listen`, `.upstream` and `.name`,
/// and a proxy that terminates TLS as `.ca` too (the CA file a client trusts).
///
/// Every plugin that registers a toxic backend registers this extension beside it; registering it
/// again changes nothing. The kernel itself never starts it.
public struct ToxicBackendExtension: RunExtension {
    public let name = "toxic backend"
    public let stage = RunStage.network
    public let suiteKeys = ["proxies"]
    public let profileKeys = ["toxics"]

    public init() {}

    /// The backend and proxies of a run, decoded once when the plan is built.
    public struct Plan: Sendable {
        /// The backend's registered name; nil when the run has no backend.
        public var backend: String?
        /// The profile's `toxics:` without `backend`, substituted.
        public var options: SourceNode?
        /// The suite's proxies, substituted and checked; nil when the suite has no `proxies:`.
        public var proxies: [ProxyDefinition]?
    }

    /// A suite proxy as written.
    struct SuiteProxy: Decodable {
        var name: String
        var listen: String?
        var upstream: String
        var enabled: Bool?
        var tls: ListenTLS?
        var upstreamTLS: UpstreamTLS?

        enum CodingKeys: String, CodingKey {
            case name, listen, upstream, enabled, tls
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
        let backend = planBackend(sections, substitution: context.shared, registry: context.registry, sink: sink)
        let proxies = planProxies(
            sections, substitution: context.shared, registry: context.registry, backend: backend.name, profile: sections.profileName, sink: sink)
        guard !sink.hasErrors else { return nil }
        return Plan(backend: backend.name, options: backend.options, proxies: proxies)
    }

    private func planProxies(
        _ sections: RunSections, substitution: Substitution, registry: PluginRegistry, backend: String?, profile: String?, sink: DiagnosticSink
    )
        -> [ProxyDefinition]?
    {
        guard let node = sections["proxies"] else { return nil }
        let path = DocumentPath([.key("proxies")])
        guard let elements = node.elements else {
            sink.report(
                Diagnostic("expected a list of proxies ({name, listen, upstream}), found \(describeFound(node))", at: node.location, path: path))
            return nil
        }
        var proxies: [ProxyDefinition] = []
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
            for (key, address, role) in [("upstream", proxy.upstream, HostPort.Role.connect), ("listen", proxy.listen ?? "127.0.0.1:0", .listen)] {
                do {
                    _ = try HostPort(parsing: address, role: role)
                } catch {
                    sink.report(
                        Diagnostic(error.message(key: key), at: element[key]?.location, path: path.appending(index).appending(key), hint: error.hint))
                }
            }
            var definition = ProxyDefinition(
                name: proxy.name, listen: proxy.listen ?? "127.0.0.1:0", upstream: proxy.upstream, enabled: proxy.enabled ?? true)
            if proxy.tls != nil || proxy.upstreamTLS != nil {
                let directory = element.location.map { ($0.file as NSString).deletingLastPathComponent } ?? ""
                definition.tls = proxy.tls?.resolvingFiles(against: directory)
                definition.upstreamTLS = proxy.upstreamTLS?.resolvingFiles(against: directory)
                checkTLS(
                    definition, node: substituted, path: path.appending(index), factory: backend.flatMap { registry.toxicBackends[$0] },
                    backend: backend, profile: profile, sink: sink)
            }
            proxies.append(definition)
        }
        if registry.toxicBackends.isEmpty {
            sink.report(Diagnostic("the suite declares proxies, but no toxic backend plugin is registered", at: node.location, path: path))
        }
        return proxies
    }

    /// Checks a proxy's TLS settings: whole, files readable, and a backend that can run them
    /// (which then checks the files' contents).
    private func checkTLS(
        _ proxy: ProxyDefinition, node: SourceNode, path: DocumentPath, factory: (any ToxicBackendFactory)?, backend: String?, profile: String?,
        sink: DiagnosticSink
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
                    "\(owner) the \(backend) toxic backend, which cannot run a TLS proxy: a Toxiproxy server proxies plain TCP only",
                    at: node[section]?.location, path: path.appending(section),
                    hint: "remove \(section), or run with a profile whose toxics backend is inprocess (the default)"))
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

    /// Reports every `type: toxic` activity of `experiment` whose toxic the profile's backend
    /// cannot run (an HTTP toxic on a Toxiproxy server), at the activity's `toxic:`.
    static func checkToxics(_ experiment: Experiment, profile: Suite.Profile?, registry: PluginRegistry, sink: DiagnosticSink) {
        let backend = profile?.extensionSections["toxics"]?["backend"]?.stringValue ?? registry.defaultToxicBackend
        guard let backend, let factory = registry.toxicBackends[backend] else { return }
        let activities = (experiment.hypothesis?.probes ?? []) + experiment.method + experiment.rollbacks
        if !factory.supportsTLS {
            for activity in activities where activity.provider.type == CreateProxyAction.type {
                let arguments = activity.provider.arguments
                guard let key = ["tls", "upstream_tls"].first(where: { arguments[$0] != nil }) else { continue }
                let owner = profile.map { "profile \"\($0.name)\" uses" } ?? "this run uses"
                sink.report(
                    Diagnostic(
                        "\(owner) the \(backend) toxic backend, which cannot run a TLS proxy: a Toxiproxy server proxies plain TCP only",
                        at: arguments[key]?.location ?? activity.location, path: activity.provider.path.appending(key),
                        hint: "remove \(key), or run with a profile whose toxics backend is inprocess (the default)"))
            }
        }
        for activity in activities where activity.provider.type == AddToxicAction.type {
            let arguments = activity.provider.arguments
            guard let type = arguments["toxic"]?.stringValue, let descriptor = registry.toxics[type],
                let reason = factory.cannotRun(descriptor, limitedToClients: arguments["clients"] != nil)
            else { continue }
            let owner = profile.map { "profile \"\($0.name)\" uses" } ?? "this run uses"
            let diagnostic = Diagnostic(
                "\(owner) the \(backend) toxic backend, which cannot run this toxic: \(reason)",
                at: arguments["toxic"]?.location ?? activity.location, path: activity.provider.path.appending("toxic"),
                hint: "run it with a profile whose toxics backend is inprocess (the default)")
            sink.report(diagnostic)
        }
    }

    static func backendOptions(_ toxics: SourceNode?) -> SourceNode? {
        guard let toxics, let members = toxics.members else { return nil }
        return SourceNode(.object(members.filter { $0.key != "backend" }), at: toxics.location)
    }

    /// What a suite proxy exports: `${proxies.NAME.port}`, `.host`, `.listen`, `.upstream`, and `.ca`
    /// for one that terminates TLS.
    static func proxyExport(_ proxy: ProxyDefinition) -> Value {
        let host = proxy.listenAddress?.urlHost ?? ""
        var export: ValueObject = [
            "name": .string(proxy.name), "listen": .string(proxy.listen), "host": .string(host.isEmpty ? "127.0.0.1" : host),
            "port": .int(proxy.listenPort ?? 0), "upstream": .string(proxy.upstream),
        ]
        if let ca = proxy.tls?.ca { export["ca"] = .string(ca) }
        return .object(export)
    }

    // MARK: Running

    public func start(_ plan: Plan, setup: RunSetup) async throws -> (any RunExtensionHandle)? {
        guard let backendName = plan.backend, let factory = setup.registry.toxicBackends[backendName] else { return nil }
        let backend: any ToxicBackend
        do {
            backend = try await factory.makeBackend(
                options: plan.options,
                context: BackendContext(
                    seed: setup.seed, environment: setup.environment, registry: setup.registry, ledger: setup.resources.ledger,
                    progress: { setup.step($0) }))
        } catch {
            throw RunSetupFailure("toxic backend \(backendName): \(error)")
        }
        setup.provide(ToxicBackendKey.self, backend)
        let handle = Handle(backend: backend)
        guard let proxies = plan.proxies else { return handle }
        do {
            var exported = ValueObject()
            for proxy in proxies {
                try Task.checkCancellation()
                setup.step("proxy \(proxy.name) → \(proxy.upstream)")
                let created: ProxyDefinition
                do {
                    created = try await backend.createProxy(proxy)
                } catch {
                    throw RunSetupFailure("proxy \(proxy.name): \(error)")
                }
                handle.created(proxy.name)
                exported[proxy.name] = Self.proxyExport(created)
            }
            setup.export("proxies", .object(exported))
        } catch {
            // Start brings everything up or leaves nothing behind; an interrupt must not cut that short.
            for problem in await Task(operation: { await handle.stop() }).value { setup.logger.warning("\(problem)") }
            throw error
        }
        return handle
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
