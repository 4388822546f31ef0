/// Network-fault activities that name a proxy, never a backend: the run's ``ToxicBackend`` (the
/// in-process proxy by default, or a Toxiproxy server chosen by the profile) does the work, so the
/// same experiment runs against either.
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
    func toxicBackend() throws -> any ToxicBackend {
        guard let backend = resources[ToxicBackendKey.self] else {
            throw ActivityFailure(
                "no toxic backend in this run",
                details: ["register the proxy plugin (the inprocess backend), or name a backend in the profile's toxics: section"])
        }
        return backend
    }
}

/// Runs a backend call, turning its errors into an activity failure naming the backend.
func backendCall<T>(_ backend: any ToxicBackend, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ToxicBackendError {
        throw ActivityFailure("\(backend.description): \(error)")
    }
}

/// Fault-window ids shared by the actions that open and close them.
enum ToxicFault {
    static func toxic(_ proxy: String, _ name: String) -> String { "toxic:\(proxy)/\(name)" }
    static func down(_ proxy: String) -> String { "down:\(proxy)" }
}

/// The output of a toxic action: the toxic as the backend reports it.
func toxicOutput(_ toxic: ToxicDefinition, proxy: String) -> Value {
    [
        "proxy": .string(proxy), "name": .string(toxic.name), "type": .string(toxic.type), "stream": .string(toxic.stream.rawValue),
        "toxicity": .double(toxic.toxicity), "attributes": toxic.attributes,
    ]
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
        "toxic": "toxic type: latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, or a plugin's",
        "attributes": "the toxic's attributes, in Toxiproxy's names and units (see faultline plugins)",
        "stream": "downstream (server → client) or upstream (client → server)",
        "toxicity": "probability 0…1 that the toxic applies to a connection, rolled once per connection",
        "name": "the toxic's name (default <toxic>_<stream>), for toxic.update and toxic.remove",
    ]

    public struct Arguments: Codable, Sendable {
        public var proxy: String
        public var toxic: String
        public var attributes: Value
        public var stream: ToxicStream
        public var toxicity: Double
        public var name: String?

        enum CodingKeys: String, CodingKey { case proxy, toxic, attributes, stream, toxicity, name }

        public init(proxy: String, toxic: String, attributes: Value = .object([:]), stream: ToxicStream = .downstream, toxicity: Double = 1, name: String? = nil) {
            self.proxy = proxy
            self.toxic = toxic
            self.attributes = attributes
            self.stream = stream
            self.toxicity = toxicity
            self.name = name
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            proxy = try c.decode(String.self, forKey: .proxy)
            toxic = try c.decode(String.self, forKey: .toxic)
            attributes = try c.decodeIfPresent(Value.self, forKey: .attributes) ?? .object([:])
            stream = try c.decodeIfPresent(ToxicStream.self, forKey: .stream) ?? .downstream
            toxicity = try c.decodeIfPresent(Double.self, forKey: .toxicity) ?? 1
            name = try c.decodeIfPresent(String.self, forKey: .name)
        }

        /// The toxic's name on the proxy.
        public var toxicName: String { name ?? "\(toxic)_\(stream.rawValue)" }
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        try validateToxicity(arguments.toxicity)
        if arguments.name?.isEmpty == true { throw ArgumentError("name", "name must not be empty") }
    }

    public static func validate(_ arguments: Arguments, registry: PluginRegistry) throws {
        _ = try normalizedAttributes(arguments, registry: registry)
    }

    /// The attributes checked against the toxic type, with defaults filled in.
    static func normalizedAttributes(_ arguments: Arguments, registry: PluginRegistry) throws -> Value {
        guard let descriptor = registry.toxics[arguments.toxic] else {
            let known = registry.toxics.keys.sorted()
            throw ArgumentError(
                "toxic", "unknown toxic type \"\(arguments.toxic)\"",
                hint: Suggestion.didYouMean(arguments.toxic, in: known) ?? "known types: \(known.joined(separator: ", "))")
        }
        return try normalize(arguments.attributes, with: descriptor)
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let backend = try context.toxicBackend()
        let definition = ToxicDefinition(
            name: arguments.toxicName, type: arguments.toxic, stream: arguments.stream, toxicity: arguments.toxicity, attributes: arguments.attributes)
        let added = try await backendCall(backend) { try await backend.addToxic(definition, to: arguments.proxy) }
        let faultID = ToxicFault.toxic(arguments.proxy, added.name)
        context.beginFault("\(added.type) \(JSONWriter.string(added.attributes, pretty: false)) on \(arguments.proxy) (\(added.stream.rawValue))", id: faultID)
        let proxy = arguments.proxy
        context.registerCleanup("remove toxic \(added.name) from \(proxy)") {
            defer { context.endFault(faultID) }
            do {
                try await backend.removeToxic(named: added.name, from: proxy)
            } catch ToxicBackendError.notFound {
                // Already removed (by a rollback, a reset, or the proxy's deletion): nothing to undo.
            }
        }
        return toxicOutput(added, proxy: proxy)
    }
}

/// Rejects a toxicity outside 0…1.
func validateToxicity(_ toxicity: Double) throws {
    guard (0...1).contains(toxicity) else {
        throw ArgumentError("toxicity", "toxicity must be between 0 and 1 (found \(toxicity))", hint: "1 applies the toxic to every connection, 0.5 to about half")
    }
}

/// Checks attributes against a toxic type, pointing at the attribute at fault.
func normalize(_ attributes: Value, with descriptor: ToxicDescriptor) throws -> Value {
    do {
        return try descriptor.normalize(attributes)
    } catch let error as ArgumentError {
        throw ArgumentError("attributes" + (error.key.map { ".\($0)" } ?? ""), error.message, hint: error.hint)
    } catch let error as Diagnostic {
        throw argumentError(error, descriptor: descriptor)
    } catch let error as ValidationError {
        throw argumentError(error.errors.first ?? Diagnostic(error.description), descriptor: descriptor)
    }
}

private func argumentError(_ diagnostic: Diagnostic, descriptor: ToxicDescriptor) -> ArgumentError {
    let inner = diagnostic.path.flatMap { $0.isEmpty ? nil : $0.description }
    return ArgumentError(
        "attributes" + (inner.map { ".\($0)" } ?? ""), "\(descriptor.type): \(diagnostic.message)",
        hint: diagnostic.hint ?? "\(descriptor.type) takes \(descriptor.attributeNames.joined(separator: ", "))")
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

    public struct Arguments: Codable, Sendable {
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
        let backend = try context.toxicBackend()
        let updated = try await backendCall(backend) {
            try await backend.updateToxic(named: arguments.name, on: arguments.proxy, attributes: arguments.attributes, toxicity: arguments.toxicity)
        }
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
        let backend = try context.toxicBackend()
        var removed = true
        do {
            try await backend.removeToxic(named: arguments.name, from: arguments.proxy)
        } catch ToxicBackendError.notFound {
            removed = false
        } catch let error as ToxicBackendError {
            throw ActivityFailure("\(backend.description): \(error)")
        }
        context.endFault(ToxicFault.toxic(arguments.proxy, arguments.name))
        return ["proxy": .string(arguments.proxy), "name": .string(arguments.name), "removed": .bool(removed)]
    }
}

/// `toxic.reset`: Toxiproxy's reset — every toxic of every proxy removed, every proxy enabled.
public struct ResetToxicsAction: Action {
    public static let type = "toxic.reset"
    public static let summary = "Remove every toxic and enable every proxy on the backend (Toxiproxy's reset)"

    public struct Arguments: Codable, Sendable {}

    public init() {}

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let backend = try context.toxicBackend()
        let before = (try? await backend.proxies()) ?? []
        try await backendCall(backend) { try await backend.reset() }
        for proxy in before {
            context.endFault(ToxicFault.down(proxy.name))
            for toxic in proxy.toxics { context.endFault(ToxicFault.toxic(proxy.name, toxic.name)) }
        }
        return ["removed": .int(before.reduce(0) { $0 + $1.toxics.count }), "enabled": .int(before.filter { !$0.enabled }.count)]
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
        let backend = try context.toxicBackend()
        let proxy = arguments.proxy
        _ = try await backendCall(backend) { try await backend.updateProxy(named: proxy, listen: nil, upstream: nil, enabled: false) }
        let faultID = ToxicFault.down(proxy)
        context.beginFault("proxy \(proxy) down", id: faultID)
        context.registerCleanup("enable proxy \(proxy)") {
            defer { context.endFault(faultID) }
            do {
                _ = try await backend.updateProxy(named: proxy, listen: nil, upstream: nil, enabled: true)
            } catch ToxicBackendError.notFound {
                // The proxy is gone: nothing to bring back.
            }
        }
        return ["proxy": .string(proxy), "enabled": false]
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
        let backend = try context.toxicBackend()
        let proxy = try await backendCall(backend) { try await backend.updateProxy(named: arguments.proxy, listen: nil, upstream: nil, enabled: true) }
        context.endFault(ToxicFault.down(arguments.proxy))
        return ["proxy": .string(arguments.proxy), "enabled": true, "listen": .string(proxy.listen)]
    }
}

/// `proxy.create`: creates a proxy for the rest of the experiment and exports `<name>_PORT`.
public struct CreateProxyAction: Action {
    public static let type = "proxy.create"
    public static let summary = "Create a proxy until the experiment ends; exports <name>_PORT"
    public static let argumentHelp = [
        "name": "the proxy's name",
        "listen": "host:port to listen on; port 0 picks a free one (exported as <name>_PORT)",
        "upstream": "host:port each connection is forwarded to",
        "enabled": "false creates it down",
    ]

    public struct Arguments: Codable, Sendable {
        public var name: String
        public var listen: String
        public var upstream: String
        public var enabled: Bool

        enum CodingKeys: String, CodingKey { case name, listen, upstream, enabled }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            listen = try c.decodeIfPresent(String.self, forKey: .listen) ?? "127.0.0.1:0"
            upstream = try c.decode(String.self, forKey: .upstream)
            enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        }
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        if arguments.name.isEmpty { throw ArgumentError("name", "name must not be empty") }
        for (key, address) in [("listen", arguments.listen), ("upstream", arguments.upstream)] where !SuiteRunner.isHostPort(address) {
            throw ArgumentError(key, "\(key) must be host:port, found \"\(address)\"", hint: "write e.g. 127.0.0.1:6379 (no scheme, no path)")
        }
    }

    public static func exports(_ arguments: Arguments) -> [String: Value] { ["\(arguments.name)_PORT": .int(0)] }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let backend = try context.toxicBackend()
        let created = try await backendCall(backend) {
            try await backend.createProxy(ProxyDefinition(name: arguments.name, listen: arguments.listen, upstream: arguments.upstream, enabled: arguments.enabled))
        }
        let name = arguments.name
        context.registerCleanup("delete proxy \(name)") {
            do {
                try await backend.deleteProxy(named: name)
            } catch ToxicBackendError.notFound {}
        }
        context.export("\(name)_PORT", .int(created.listenPort ?? 0))
        return ["name": .string(name), "listen": .string(created.listen), "upstream": .string(created.upstream), "enabled": .bool(created.enabled)]
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
        let backend = try context.toxicBackend()
        do {
            try await backend.deleteProxy(named: arguments.name)
        } catch ToxicBackendError.notFound {
            return ["name": .string(arguments.name), "deleted": false]
        } catch let error as ToxicBackendError {
            throw ActivityFailure("\(backend.description): \(error)")
        }
        context.endFault(ToxicFault.down(arguments.name))
        return ["name": .string(arguments.name), "deleted": true]
    }
}
