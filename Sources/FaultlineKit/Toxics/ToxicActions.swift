/// Network-fault activities that name a proxy, never a backend: the run's ``ToxicBackend`` (the
/// one a plugin registered as the default, or the one the profile names; see
/// ``ToxicBackendExtension``) does the work, so the same experiment runs against any of them.
///
/// What an activity adds is removed when the experiment ends (cleanups run after rollbacks, also
/// on SIGINT/SIGTERM, and the journal records each); toxics and downs are fault windows on the
/// report timeline.
public enum ToxicActionsPlugin: FaultlinePlugin {
    public static let name = "toxics"

    public static func register(into registry: inout PluginRegistry) {
        registry.register(action: AddToxicAction())
        registry.register(action: UpdateToxicAction())
        registry.register(action: RemoveToxicAction())
        registry.register(action: ResetToxicsAction())
        registry.register(action: DisableProxyAction())
        registry.register(action: EnableProxyAction())
        registry.register(action: CreateProxyAction())
        registry.register(action: DeleteProxyAction())
    }
}

extension ActivityContext {
    /// The run's toxic backend, or a failure saying how to get one.
    public func toxicBackend() throws -> any ToxicBackend {
        guard let backend = resources[ToxicBackendKey.self] else {
            throw ActivityFailure(
                "no toxic backend in this run",
                details: ["register a plugin that provides a default toxic backend, or name a backend in the profile's toxics: section"])
        }
        return backend
    }
}

/// Runs a backend call, turning its errors into an activity failure naming the backend.
func backendCall<T>(_ backend: any ToxicBackend, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ToxicBackendError {
        throw ActivityFailure(backend.message(for: error))
    }
}

/// Fault-window ids shared by the actions that open and close them.
enum ToxicFault {
    static func toxic(_ proxy: String, _ name: String) -> String { "toxic:\(proxy)/\(name)" }
    static func down(_ proxy: String) -> String { "down:\(proxy)" }
}

/// The output of a toxic action: the toxic as the backend reports it.
public func toxicOutput(_ toxic: ToxicDefinition, proxy: String) -> Value {
    [
        "proxy": .string(proxy), "name": .string(toxic.name), "type": .string(toxic.type), "stream": .string(toxic.stream.rawValue),
        "toxicity": .double(toxic.toxicity), "attributes": toxic.attributes,
    ]
}

/// What the toxic activities do, on a backend the caller chooses: the built-in activities use the
/// run's backend; the Toxiproxy plugin's activities and Chaos Toolkit functions may name a server.
///
/// Each registers the undo of what it leaves behind (idempotent: finding nothing to undo is
/// success) and opens or closes the fault windows reports show. Backend errors become
/// ``ActivityFailure``s naming the backend.
extension ActivityContext {
    /// Whether a toxic attribute's value is empty, so a fault label leaves it out.
    static func saysNothing(_ value: Value) -> Bool {
        switch value {
        case .null: true
        case .string(let text): text.isEmpty
        case .array(let items): items.isEmpty
        case .object(let members): members.isEmpty
        default: false
        }
    }

    /// Adds a toxic until the experiment ends.
    /// - Returns: the toxic as the backend reports it (every attribute filled in).
    public func addToxic(_ toxic: ToxicDefinition, to proxy: String, on backend: any ToxicBackend) async throws -> ToxicDefinition {
        // The window opens when the toxic may first act: the backend applies it during the call.
        let since = Timestamp.now()
        let added = try await backendCall(backend) { try await backend.addToxic(toxic, to: proxy) }
        let faultID = ToxicFault.toxic(proxy, added.name)
        // `latency latency=300 jitter=100 on store (downstream)`: what a timeline label can hold.
        // Attributes left empty (an HTTP toxic's `body: ""`, `headers: {}`) say nothing: left out.
        let attributes = (added.attributes.objectValue ?? ValueObject()).filter { !Self.saysNothing($0.value) }.map {
            "\($0.key)=\(Substitution.interpolated($0.value))"
        }
        let toxicity = added.toxicity < 1 ? ", toxicity \(Substitution.interpolated(.double(added.toxicity)))" : ""
        beginFault(
            ([added.type] + attributes).joined(separator: " ") + " on \(proxy) (\(added.stream.rawValue))\(toxicity)", id: faultID, since: since)
        registerCleanup("remove toxic \(added.name) from \(proxy)") {
            let note = await backend.toxicReport(named: added.name, on: proxy)
            defer { self.endFault(faultID, note: note) }
            do {
                try await backend.removeToxic(named: added.name, from: proxy)
            } catch ToxicBackendError.notFound {
                // Already removed (by a rollback, a reset, or the proxy's deletion): nothing to undo.
            }
        }
        return added
    }

    /// Removes a toxic now.
    /// - Returns: false when it was already gone (not a failure).
    public func removeToxic(named name: String, from proxy: String, on backend: any ToxicBackend) async throws -> Bool {
        var removed = true
        let note = await backend.toxicReport(named: name, on: proxy)
        do {
            try await backend.removeToxic(named: name, from: proxy)
        } catch ToxicBackendError.notFound {
            removed = false
        } catch let error as ToxicBackendError {
            throw ActivityFailure(backend.message(for: error))
        }
        endFault(ToxicFault.toxic(proxy, name), note: note)
        return removed
    }

    /// Changes a toxic's attributes (merged) or toxicity.
    public func updateToxic(named name: String, on proxy: String, attributes: Value?, toxicity: Double?, backend: any ToxicBackend) async throws
        -> ToxicDefinition
    {
        try await backendCall(backend) { try await backend.updateToxic(named: name, on: proxy, attributes: attributes, toxicity: toxicity) }
    }

    /// Takes a proxy down until ``enableProxy(named:on:)`` or the end of the experiment.
    public func disableProxy(named proxy: String, on backend: any ToxicBackend) async throws -> ProxyDefinition {
        let since = Timestamp.now()
        let disabled = try await backendCall(backend) { try await backend.updateProxy(named: proxy, listen: nil, upstream: nil, enabled: false) }
        let faultID = ToxicFault.down(proxy)
        beginFault("proxy \(proxy) down", id: faultID, since: since)
        registerCleanup("enable proxy \(proxy)") {
            defer { self.endFault(faultID) }
            do {
                _ = try await backend.updateProxy(named: proxy, listen: nil, upstream: nil, enabled: true)
            } catch ToxicBackendError.notFound {
                // The proxy is gone: nothing to bring back.
            }
        }
        return disabled
    }

    /// Brings a proxy back up.
    public func enableProxy(named proxy: String, on backend: any ToxicBackend) async throws -> ProxyDefinition {
        let enabled = try await backendCall(backend) { try await backend.updateProxy(named: proxy, listen: nil, upstream: nil, enabled: true) }
        endFault(ToxicFault.down(proxy))
        return enabled
    }

    /// Changes a proxy's listen address, upstream or state until the experiment ends, when what
    /// changed gets its previous value back; exports `<name>_PORT`, the port it listens on now.
    /// Changing listen or upstream drops the proxy's connections.
    public func changeProxy(named name: String, listen: String?, upstream: String?, enabled: Bool?, on backend: any ToxicBackend) async throws
        -> ProxyDefinition
    {
        let before = try await backendCall(backend) { try await backend.proxy(named: name) }
        let since = Timestamp.now()
        let after = try await backendCall(backend) {
            try await backend.updateProxy(named: name, listen: listen, upstream: upstream, enabled: enabled)
        }
        let faultID = ToxicFault.down(name)
        if enabled == false, before.enabled { beginFault("proxy \(name) down", id: faultID, since: since) }
        if enabled == true { endFault(faultID) }
        registerCleanup("restore proxy \(name)") {
            defer { if enabled == false { self.endFault(faultID) } }
            do {
                let now = try await backend.proxy(named: name)
                let restoreListen = listen != nil && now.listen != before.listen ? before.listen : nil
                let restoreUpstream = upstream != nil && now.upstream != before.upstream ? before.upstream : nil
                let restoreEnabled = enabled != nil && now.enabled != before.enabled ? before.enabled : nil
                if restoreListen != nil || restoreUpstream != nil || restoreEnabled != nil {
                    _ = try await backend.updateProxy(named: name, listen: restoreListen, upstream: restoreUpstream, enabled: restoreEnabled)
                }
            } catch ToxicBackendError.notFound {
                // The proxy is gone: nothing to restore.
            }
        }
        export("\(name)_PORT", .int(after.listenPort ?? 0))
        return after
    }

    /// Creates a proxy until the experiment ends and exports `<name>_PORT`, the bound port.
    public func createProxy(_ proxy: ProxyDefinition, on backend: any ToxicBackend) async throws -> ProxyDefinition {
        let created = try await backendCall(backend) { try await backend.createProxy(proxy) }
        let name = proxy.name
        registerCleanup("delete proxy \(name)") {
            do {
                try await backend.deleteProxy(named: name)
            } catch ToxicBackendError.notFound {}
        }
        export("\(name)_PORT", .int(created.listenPort ?? 0))
        if let ca = created.tls?.ca { export("\(name)_CA", .string(ca)) }
        return created
    }

    /// Deletes a proxy now.
    /// - Returns: false when it was already gone (not a failure).
    public func deleteProxy(named name: String, on backend: any ToxicBackend) async throws -> Bool {
        do {
            try await backend.deleteProxy(named: name)
        } catch ToxicBackendError.notFound {
            return false
        } catch let error as ToxicBackendError {
            throw ActivityFailure(backend.message(for: error))
        }
        endFault(ToxicFault.down(name))
        return true
    }

    /// The backend's reset (see ``ToxicBackend/reset()`` for what it covers), closing the fault
    /// windows of what it removed.
    /// - Returns: how many toxics it removed and how many proxies it enabled.
    public func resetToxics(on backend: any ToxicBackend) async throws -> (removed: Int, enabled: Int) {
        let before = (try? await backend.proxies()) ?? []
        try await backendCall(backend) { try await backend.reset() }
        let after = Dictionary(((try? await backend.proxies()) ?? []).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var removed = 0
        var enabled = 0
        for proxy in before {
            let now = after[proxy.name]
            if !proxy.enabled, now?.enabled != false {
                enabled += 1
                endFault(ToxicFault.down(proxy.name))
            }
            let remaining = Set(now?.toxics.map(\.name) ?? [])
            for toxic in proxy.toxics where !remaining.contains(toxic.name) {
                removed += 1
                endFault(ToxicFault.toxic(proxy.name, toxic.name))
            }
        }
        return (removed, enabled)
    }
}

/// `type: toxic`: adds a toxic to a proxy until the experiment ends.
///
/// ```yaml
/// provider: {type: toxic, proxy: db, toxic: latency, attributes: {latency: 200, jitter: 20}, stream: downstream}
/// ```
public struct AddToxicAction: Action, RegistryValidating {
    public static let type = "toxic"
    public static let summary = "Add a network fault (latency, bandwidth, timeout, …) to a proxy until the experiment ends"
    public static let argumentHelp = [
        "proxy": "the proxy's name (from the suite's proxies: or a proxy.create action)",
        "toxic":
            "toxic type: latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, http_abort, http_latency, http_reset, http_headers, http_body, http_rewrite, http_bandwidth, or a plugin's",
        "attributes": "the toxic's attributes, in Toxiproxy's names and units (see faultline plugins)",
        "stream": "downstream (server → client) or upstream (client → server)",
        "toxicity": "probability 0…1 that the toxic applies to a connection, rolled once per connection (HTTP toxics: per request)",
        "name": "the toxic's name (default <toxic>_<stream>), for toxic.update and toxic.remove",
        "clients": "only connections from these addresses or CIDR blocks (e.g. [127.0.0.1, 10.0.0.0/8, ::1]); default every client",
    ]

    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["toxicity": .probability]
        public var proxy: String
        public var toxic: String
        public var attributes: Value
        /// The attributes as the document writes them, with their positions, so that an error
        /// inside them points at its own line and column; nil when they came as a plain value.
        var writtenAttributes: SourceNode?
        public var stream: ToxicStream
        public var toxicity: Double
        public var name: String?
        /// Addresses or CIDR blocks of the clients the toxic applies to; nil: every client.
        public var clients: [String]?
        /// The attributes decoded and validated against the toxic type when the activity was
        /// prepared; the toxic carries them to the backend, which need not decode them again.
        public var prepared: PreparedToxic?

        enum CodingKeys: String, CodingKey { case proxy, toxic, attributes, stream, toxicity, name, clients }

        public init(
            proxy: String, toxic: String, attributes: Value = .object([:]), stream: ToxicStream = .downstream, toxicity: Double = 1,
            name: String? = nil, clients: [String]? = nil
        ) {
            self.proxy = proxy
            self.toxic = toxic
            self.attributes = attributes
            self.stream = stream
            self.toxicity = toxicity
            self.name = name
            self.clients = clients
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            proxy = try c.decode(String.self, forKey: .proxy)
            toxic = try c.decode(String.self, forKey: .toxic)
            attributes = try c.decodeIfPresent(Value.self, forKey: .attributes) ?? .object([:])
            writtenAttributes = try c.decodeIfPresent(SourceNode.self, forKey: .attributes)
            stream = try c.decodeIfPresent(ToxicStream.self, forKey: .stream) ?? .downstream
            toxicity = try c.decodeIfPresent(Double.self, forKey: .toxicity) ?? 1
            name = try c.decodeIfPresent(String.self, forKey: .name)
            clients = try c.decodeIfPresent([String].self, forKey: .clients)
        }

        /// The toxic's name on the proxy.
        public var toxicName: String { name ?? "\(toxic)_\(stream.rawValue)" }

        /// The toxic to add.
        public var definition: ToxicDefinition {
            ToxicDefinition(
                name: toxicName, type: toxic, stream: stream, toxicity: toxicity, attributes: attributes, prepared: prepared, clients: clients)
        }
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        try validateToxicity(arguments.toxicity)
        if arguments.name?.isEmpty == true { throw ArgumentError("name", "name must not be empty") }
        if let clients = arguments.clients { _ = try [ClientNetwork](parsing: clients) }
    }

    public static func validate(_ arguments: Arguments, registry: PluginRegistry) throws {
        _ = try preparedToxic(arguments, registry: registry)
    }

    public static func prepare(_ arguments: Arguments, registry: PluginRegistry) throws -> Arguments {
        var arguments = arguments
        arguments.prepared = try preparedToxic(arguments, registry: registry)
        return arguments
    }

    /// The attributes checked against the toxic type, with defaults filled in.
    public static func normalizedAttributes(_ arguments: Arguments, registry: PluginRegistry) throws -> Value {
        try preparedToxic(arguments, registry: registry).attributes
    }

    /// The attributes decoded and checked against the toxic type, once.
    static func preparedToxic(_ arguments: Arguments, registry: PluginRegistry) throws -> PreparedToxic {
        guard let descriptor = registry.toxics[arguments.toxic] else {
            let known = registry.toxics.keys.sorted()
            throw ArgumentError(
                "toxic", "unknown toxic type \"\(arguments.toxic)\"",
                hint: Suggestion.didYouMean(arguments.toxic, in: known) ?? "known types: \(known.joined(separator: ", "))")
        }
        if let problem = descriptor.streamProblem(arguments.stream) {
            let other = descriptor.streams.first.map(\.rawValue) ?? "downstream"
            throw ArgumentError(
                "stream", problem, hint: other == "downstream" ? "leave stream out (downstream is the default)" : "write stream: \(other)")
        }
        let prepared = try prepareAttributes(arguments.writtenAttributes ?? SourceNode(arguments.attributes, at: nil), with: descriptor)
        if let problem = prepared.http?.streamProblem(arguments.stream) {
            // The problem says which stream to use.
            throw ArgumentError("stream", problem)
        }
        return prepared
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let added = try await context.addToxic(arguments.definition, to: arguments.proxy, on: try context.toxicBackend())
        return toxicOutput(added, proxy: arguments.proxy)
    }
}

/// Rejects a toxicity outside 0…1.
public func validateToxicity(_ toxicity: Double) throws {
    guard NumberRange.probability.contains(toxicity) else {
        throw ArgumentError(
            "toxicity", NumberRange.probability.message("toxicity", found: toxicity),
            hint: "1 applies the toxic to every connection, 0.5 to about half")
    }
}

/// Checks attributes against a toxic type, pointing at the attribute at fault (at its line and
/// column when the attributes carry their positions).
func prepareAttributes(_ attributes: SourceNode, with descriptor: ToxicDescriptor) throws -> PreparedToxic {
    do {
        return try descriptor.prepare(attributes, path: .root)
    } catch let error as ArgumentError {
        throw ArgumentError("attributes" + (error.key.map { ".\($0)" } ?? ""), error.message, hint: error.hint, at: error.location)
    } catch let error as Diagnostic {
        throw argumentError(error, descriptor: descriptor)
    } catch let error as ValidationError {
        throw argumentError(error.errors.first ?? Diagnostic(error.description), descriptor: descriptor)
    }
}

private func argumentError(_ diagnostic: Diagnostic, descriptor: ToxicDescriptor) -> ArgumentError {
    // The key in the dotted form ``ArgumentError/located(in:path:)`` walks: a number steps into a list.
    let inner = (diagnostic.path?.components ?? []).map { component in
        switch component {
        case .key(let key): key
        case .index(let index): String(index)
        }
    }
    return ArgumentError(
        (["attributes"] + inner).joined(separator: "."), "\(descriptor.type): \(diagnostic.message)",
        hint: diagnostic.hint ?? "\(descriptor.type) takes \(descriptor.attributeNames.joined(separator: ", "))", at: diagnostic.location)
}

/// `toxic.update`: changes a toxic's attributes (merged) or toxicity on a live proxy.
public struct UpdateToxicAction: Action {
    public static let type = "toxic.update"
    public static let summary = "Change a toxic's attributes or toxicity; live connections keep their state"
    public static let argumentHelp = [
        "proxy": "the proxy's name",
        "name": "the toxic's name (default of a toxic action: <toxic>_<stream>)",
        "attributes": "attributes to change; the others keep their values",
        "toxicity": "new probability 0…1; each connection keeps its roll",
    ]

    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["toxicity": .probability]
        public var proxy: String
        public var name: String
        public var attributes: Value?
        public var toxicity: Double?
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        if let toxicity = arguments.toxicity { try validateToxicity(toxicity) }
        if arguments.attributes == nil && arguments.toxicity == nil {
            throw ArgumentError("attributes", "nothing to change", hint: "give attributes, toxicity, or both")
        }
        if let attributes = arguments.attributes, attributes.objectValue == nil {
            throw ArgumentError("attributes", "attributes must be an object, found \(attributes.kindDescription)")
        }
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let updated = try await context.updateToxic(
            named: arguments.name, on: arguments.proxy, attributes: arguments.attributes, toxicity: arguments.toxicity,
            backend: try context.toxicBackend())
        return toxicOutput(updated, proxy: arguments.proxy)
    }
}

/// `toxic.remove`: removes a toxic now; one already gone is success.
public struct RemoveToxicAction: Action {
    public static let type = "toxic.remove"
    public static let summary = "Remove a toxic from a proxy (one already removed is success)"
    public static let argumentHelp = ["proxy": "the proxy's name", "name": "the toxic's name (default of a toxic action: <toxic>_<stream>)"]

    public struct Arguments: Codable, Sendable {
        public var proxy: String
        public var name: String
    }

    public init() {}

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let removed = try await context.removeToxic(named: arguments.name, from: arguments.proxy, on: try context.toxicBackend())
        return ["proxy": .string(arguments.proxy), "name": .string(arguments.name), "removed": .bool(removed)]
    }
}

/// `toxic.reset`: Toxiproxy's reset — toxics removed, proxies enabled. On the in-process proxy
/// that is everything; on a shared Toxiproxy server, only what this run created or changed (see
/// the backend's ``ToxicBackend/reset()``).
public struct ResetToxicsAction: Action {
    public static let type = "toxic.reset"
    public static let summary = "Remove the toxics and enable the proxies (on a shared Toxiproxy server: only this run's)"

    public struct Arguments: Codable, Sendable {}

    public init() {}

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let (removed, enabled) = try await context.resetToxics(on: try context.toxicBackend())
        return ["removed": .int(removed), "enabled": .int(enabled)]
    }
}

/// The arguments of actions that act on one proxy.
public struct ProxyArguments: Codable, Sendable {
    public var proxy: String

    static let help = ["proxy": "the proxy's name"]
}

/// `proxy.disable`: Toxiproxy's "down" — the proxy closes its connections and refuses new ones
/// until `proxy.enable` or the end of the experiment.
public struct DisableProxyAction: Action {
    public static let type = "proxy.disable"
    public static let summary = "Take a proxy down: close its connections and refuse new ones until the experiment ends"
    public static let argumentHelp = ProxyArguments.help
    public typealias Arguments = ProxyArguments

    public init() {}

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        _ = try await context.disableProxy(named: arguments.proxy, on: try context.toxicBackend())
        return ["proxy": .string(arguments.proxy), "enabled": false]
    }
}

/// `proxy.enable`: brings a proxy back up.
public struct EnableProxyAction: Action {
    public static let type = "proxy.enable"
    public static let summary = "Bring a disabled proxy back up"
    public static let argumentHelp = ProxyArguments.help
    public typealias Arguments = ProxyArguments

    public init() {}

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let proxy = try await context.enableProxy(named: arguments.proxy, on: try context.toxicBackend())
        return ["proxy": .string(arguments.proxy), "enabled": true, "listen": .string(proxy.listen)]
    }
}

/// `proxy.create`: creates a proxy for the rest of the experiment and exports `<name>_PORT`.
public struct CreateProxyAction: Action {
    public static let type = "proxy.create"
    public static let summary = "Create a proxy until the experiment ends; exports <name>_PORT (and <name>_CA for a TLS one)"
    public static let argumentHelp = [
        "name": "the proxy's name",
        "listen": "host:port to listen on; port 0 picks a free one (exported as <name>_PORT)",
        "upstream": "host:port each connection is forwarded to",
        "enabled": "false creates it down",
        "tls": "terminate TLS on listen: {cert, key} (PEM files) or {self_signed: true}; exports <name>_CA, the file clients trust",
        "upstream_tls": "originate TLS to the upstream: {ca, server_name, insecure}",
    ]

    public struct Arguments: Codable, Sendable {
        public var name: String
        public var listen: String
        public var upstream: String
        public var enabled: Bool
        /// TLS to terminate and to originate; files relative to the working directory.
        public var tls: ListenTLS?
        public var upstreamTLS: UpstreamTLS?

        enum CodingKeys: String, CodingKey {
            case name, listen, upstream, enabled, tls
            case upstreamTLS = "upstream_tls"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            listen = try c.decodeIfPresent(String.self, forKey: .listen) ?? "127.0.0.1:0"
            upstream = try c.decode(String.self, forKey: .upstream)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
            tls = try c.decodeIfPresent(ListenTLS.self, forKey: .tls)?.resolvingFiles(against: "")
            upstreamTLS = try c.decodeIfPresent(UpstreamTLS.self, forKey: .upstreamTLS)?.resolvingFiles(against: "")
        }
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        if arguments.name.isEmpty { throw ArgumentError("name", "name must not be empty") }
        _ = try HostPort.argument(arguments.listen, key: "listen", role: .listen)
        _ = try HostPort.argument(arguments.upstream, key: "upstream", role: .connect)
        for (key, problem) in [("tls", arguments.tls?.problem), ("upstream_tls", arguments.upstreamTLS?.problem)] {
            if let problem { throw ArgumentError(key, "\(key).\(problem.key): \(problem.message)", hint: problem.hint) }
        }
        let files = [("tls", "cert", arguments.tls?.cert), ("tls", "key", arguments.tls?.key), ("upstream_tls", "ca", arguments.upstreamTLS?.ca)]
        for case (let section, let key, let file?) in files {
            if let reason = ProxyTLSFiles.unreadable(file) {
                throw ArgumentError(section, "cannot read \(section).\(key) \"\(file)\": \(reason)", hint: "give the path of a PEM file")
            }
        }
    }

    public static func exports(_ arguments: Arguments) -> [String: Value] {
        var exports = ["\(arguments.name)_PORT": exportedPort(listen: arguments.listen)]
        if let tls = arguments.tls { exports["\(arguments.name)_CA"] = .string(tls.ca ?? tls.cert ?? "/tmp/faultline-tls/\(arguments.name)/ca.pem") }
        return exports
    }

    /// What `<name>_PORT` holds when an experiment is validated: the port `listen` names, or, for
    /// a port bound when the proxy is created (`:0`, or one not known until then), a plausible
    /// port, so that a later `http://127.0.0.1:${db_PORT}/` validates; the run sets the real one.
    /// - Parameter listen: `host:port`, or nil when the port is not known before the run.
    public static func exportedPort(listen: String?) -> Value {
        guard let listen, let address = try? HostPort(parsing: listen, role: .listen), address.port != 0 else { return .int(1) }
        return .int(address.port)
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let created = try await context.createProxy(
            ProxyDefinition(
                name: arguments.name, listen: arguments.listen, upstream: arguments.upstream, enabled: arguments.enabled, tls: arguments.tls,
                upstreamTLS: arguments.upstreamTLS),
            on: try context.toxicBackend())
        return [
            "name": .string(arguments.name), "listen": .string(created.listen), "upstream": .string(created.upstream),
            "enabled": .bool(created.enabled),
        ]
    }
}

/// `proxy.delete`: deletes a proxy; one already gone is success.
public struct DeleteProxyAction: Action {
    public static let type = "proxy.delete"
    public static let summary = "Delete a proxy and close its connections (one already gone is success)"
    public static let argumentHelp = ["name": "the proxy's name"]

    public struct Arguments: Codable, Sendable {
        public var name: String
    }

    public init() {}

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let deleted = try await context.deleteProxy(named: arguments.name, on: try context.toxicBackend())
        return ["name": .string(arguments.name), "deleted": .bool(deleted)]
    }
}
