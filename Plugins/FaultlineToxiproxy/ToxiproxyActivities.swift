import FaultlineKit

/// `toxiproxy.*`: activities on a named Toxiproxy server, whatever the profile's backend — e.g. a
/// shared staging server while the suite's own proxies run in-process. Each mirrors a
/// backend-neutral activity (`toxic`, `proxy.disable`, …) and adds `url`; what they add or change
/// is undone when the experiment ends, and only what this run did.
enum ToxiproxyActivities {
    static func register(into registry: inout PluginRegistry) {
        registry.register(action: AddToxic())
        registry.register(action: UpdateToxic())
        registry.register(action: RemoveToxic())
        registry.register(action: CreateProxy())
        registry.register(action: UpdateProxy())
        registry.register(action: DeleteProxy())
        registry.register(action: DisableProxy())
        registry.register(action: EnableProxy())
        registry.register(action: Populate())
        registry.register(action: Reset())
        registry.register(probe: Version())
        registry.register(probe: Proxies())
        registry.register(probe: ReadProxy())
        registry.register(probe: Toxics())
    }

    static func help(_ inner: [String: String]) -> [String: String] {
        inner.merging(["url": AtServer<ProxyArguments>.urlHelp]) { first, _ in first }
    }

    /// A proxy as Toxiproxy's API shows it.
    static func output(_ proxy: ProxyDefinition) -> Value {
        (try? ValueEncoder().encode(proxy)) ?? .null
    }

    // MARK: Toxics

    /// `toxiproxy.toxic`: `toxic` on a named server.
    struct AddToxic: Action, RegistryValidating {
        static let type = "toxiproxy.toxic"
        static let summary = "Add a toxic to a proxy on a Toxiproxy server until the experiment ends"
        static let argumentHelp = help(AddToxicAction.argumentHelp)
        typealias Arguments = AtServer<AddToxicAction.Arguments>

        static func validate(_ arguments: Arguments) throws {
            try arguments.validateURL()
            try AddToxicAction.validate(arguments.inner)
        }

        static func validate(_ arguments: Arguments, registry: PluginRegistry) throws {
            try AddToxicAction.validate(arguments.inner, registry: registry)
            if let descriptor = registry.toxics[arguments.inner.toxic],
                let reason = ToxiproxyBackendFactory().cannotRun(descriptor, limitedToClients: arguments.inner.clients != nil)
            {
                let key = arguments.inner.clients != nil && !descriptor.isHTTP ? "clients" : "toxic"
                throw ArgumentError(key, "a Toxiproxy server cannot run this toxic: \(reason)")
            }
            if let refusal = ToxiproxyClient.crashingAttributes(type: arguments.inner.toxic, attributes: arguments.inner.attributes) {
                throw ArgumentError("attributes.\(refusal.key)", refusal.reason, hint: refusal.hint)
            }
        }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let backend = try context.toxiproxyBackend(url: arguments.url)
            let added = try await context.addToxic(arguments.inner.definition, to: arguments.inner.proxy, on: backend)
            return toxicOutput(added, proxy: arguments.inner.proxy)
        }
    }

    /// `toxiproxy.toxic.update`: `toxic.update` on a named server.
    struct UpdateToxic: Action {
        static let type = "toxiproxy.toxic.update"
        static let summary = "Change a toxic's attributes or toxicity on a Toxiproxy server (another user's gets its values back at the end)"
        static let argumentHelp = help(UpdateToxicAction.argumentHelp)
        typealias Arguments = AtServer<UpdateToxicAction.Arguments>

        static func validate(_ arguments: Arguments) throws {
            try arguments.validateURL()
            try UpdateToxicAction.validate(arguments.inner)
        }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let inner = arguments.inner
            let updated = try await context.updateToxic(
                named: inner.name, on: inner.proxy, attributes: inner.attributes, toxicity: inner.toxicity,
                backend: try context.toxiproxyBackend(url: arguments.url))
            return toxicOutput(updated, proxy: inner.proxy)
        }
    }

    /// `toxiproxy.toxic.remove`: `toxic.remove` on a named server.
    struct RemoveToxic: Action {
        static let type = "toxiproxy.toxic.remove"
        static let summary = "Remove a toxic from a proxy on a Toxiproxy server (one already removed is success)"
        static let argumentHelp = help(RemoveToxicAction.argumentHelp)
        typealias Arguments = AtServer<RemoveToxicAction.Arguments>

        static func validate(_ arguments: Arguments) throws { try arguments.validateURL() }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let inner = arguments.inner
            let removed = try await context.removeToxic(named: inner.name, from: inner.proxy, on: try context.toxiproxyBackend(url: arguments.url))
            return ["proxy": .string(inner.proxy), "name": .string(inner.name), "removed": .bool(removed)]
        }
    }

    // MARK: Proxies

    /// `toxiproxy.proxy.create`: `proxy.create` on a named server.
    struct CreateProxy: Action {
        static let type = "toxiproxy.proxy.create"
        static let summary = "Create a proxy on a Toxiproxy server until the experiment ends; exports <name>_PORT"
        static let argumentHelp = help(CreateProxyAction.argumentHelp)
        typealias Arguments = AtServer<CreateProxyAction.Arguments>

        static func validate(_ arguments: Arguments) throws {
            try arguments.validateURL()
            try CreateProxyAction.validate(arguments.inner)
        }

        static func exports(_ arguments: Arguments) -> [String: Value] { CreateProxyAction.exports(arguments.inner) }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let inner = arguments.inner
            let created = try await context.createProxy(
                ProxyDefinition(name: inner.name, listen: inner.listen, upstream: inner.upstream, enabled: inner.enabled),
                on: try context.toxiproxyBackend(url: arguments.url))
            return output(created)
        }
    }

    /// `toxiproxy.proxy.update`: changes listen, upstream or enabled until the experiment ends.
    struct UpdateProxy: Action {
        static let type = "toxiproxy.proxy.update"
        static let summary = "Change a proxy's listen address, upstream or state until the experiment ends (drops its connections)"
        static let argumentHelp = help([
            "proxy": "the proxy's name", "listen": "new host:port to listen on", "upstream": "new host:port to forward to",
            "enabled": "false takes it down, true brings it up",
        ])

        struct Fields: Codable, Sendable {
            var proxy: String
            var listen: String?
            var upstream: String?
            var enabled: Bool?
        }
        typealias Arguments = AtServer<Fields>

        static func validate(_ arguments: Arguments) throws {
            try arguments.validateURL()
            let fields = arguments.inner
            if fields.listen == nil, fields.upstream == nil, fields.enabled == nil {
                throw ArgumentError("listen", "nothing to change", hint: "give listen, upstream or enabled")
            }
            try checkHostPort("listen", fields.listen, role: .listen)
            try checkHostPort("upstream", fields.upstream, role: .connect)
        }

        static func exports(_ arguments: Arguments) -> [String: Value] {
            ["\(arguments.inner.proxy)_PORT": CreateProxyAction.exportedPort(listen: arguments.inner.listen)]
        }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let fields = arguments.inner
            let updated = try await context.changeProxy(
                named: fields.proxy, listen: fields.listen, upstream: fields.upstream, enabled: fields.enabled,
                on: try context.toxiproxyBackend(url: arguments.url))
            return output(updated)
        }
    }

    /// `toxiproxy.proxy.delete`: `proxy.delete` on a named server.
    struct DeleteProxy: Action {
        static let type = "toxiproxy.proxy.delete"
        static let summary = "Delete a proxy on a Toxiproxy server (one already gone is success)"
        static let argumentHelp = help(DeleteProxyAction.argumentHelp)
        typealias Arguments = AtServer<DeleteProxyAction.Arguments>

        static func validate(_ arguments: Arguments) throws { try arguments.validateURL() }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let deleted = try await context.deleteProxy(named: arguments.inner.name, on: try context.toxiproxyBackend(url: arguments.url))
            return ["name": .string(arguments.inner.name), "deleted": .bool(deleted)]
        }
    }

    /// `toxiproxy.proxy.disable`: `proxy.disable` on a named server.
    struct DisableProxy: Action {
        static let type = "toxiproxy.proxy.disable"
        static let summary = "Take a proxy on a Toxiproxy server down until toxiproxy.proxy.enable or the end of the experiment"
        static let argumentHelp = help(DisableProxyAction.argumentHelp)
        typealias Arguments = AtServer<ProxyArguments>

        static func validate(_ arguments: Arguments) throws { try arguments.validateURL() }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            output(try await context.disableProxy(named: arguments.inner.proxy, on: try context.toxiproxyBackend(url: arguments.url)))
        }
    }

    /// `toxiproxy.proxy.enable`: `proxy.enable` on a named server.
    struct EnableProxy: Action {
        static let type = "toxiproxy.proxy.enable"
        static let summary = "Bring a proxy on a Toxiproxy server back up"
        static let argumentHelp = help(EnableProxyAction.argumentHelp)
        typealias Arguments = AtServer<ProxyArguments>

        static func validate(_ arguments: Arguments) throws { try arguments.validateURL() }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            output(try await context.enableProxy(named: arguments.inner.proxy, on: try context.toxiproxyBackend(url: arguments.url)))
        }
    }

    /// `toxiproxy.populate`: Toxiproxy's `POST /populate`; proxies it creates are deleted when the
    /// experiment ends.
    struct Populate: Action {
        static let type = "toxiproxy.populate"
        static let summary = "Create proxies that do not exist and replace those that differ (POST /populate); new ones go when the experiment ends"
        static let argumentHelp = help(["proxies": "a list of {name, listen, upstream, enabled}, as Toxiproxy's -config file"])

        struct Entry: Codable, Sendable {
            var name: String
            var listen: String
            var upstream: String
            var enabled: Bool

            enum CodingKeys: String, CodingKey { case name, listen, upstream, enabled }

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                name = try c.decode(String.self, forKey: .name)
                listen = try c.decodeIfPresent(String.self, forKey: .listen) ?? "127.0.0.1:0"
                upstream = try c.decode(String.self, forKey: .upstream)
                enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
            }
        }

        struct Fields: Codable, Sendable {
            var proxies: [Entry]
        }
        typealias Arguments = AtServer<Fields>

        static func validate(_ arguments: Arguments) throws {
            try arguments.validateURL()
            var names: Set<String> = []
            for (index, entry) in arguments.inner.proxies.enumerated() {
                if entry.name.isEmpty { throw ArgumentError("proxies.\(index).name", "name must not be empty") }
                if !names.insert(entry.name).inserted { throw ArgumentError("proxies.\(index).name", "duplicate proxy name \"\(entry.name)\"") }
                try checkHostPort("proxies.\(index).listen", entry.listen, role: .listen)
                try checkHostPort("proxies.\(index).upstream", entry.upstream, role: .connect)
            }
        }

        static func exports(_ arguments: Arguments) -> [String: Value] {
            Dictionary(
                arguments.inner.proxies.map { ("\($0.name)_PORT", CreateProxyAction.exportedPort(listen: $0.listen)) },
                uniquingKeysWith: { first, _ in first })
        }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let backend = try context.toxiproxyBackend(url: arguments.url)
            let requested = arguments.inner.proxies.map {
                ProxyDefinition(name: $0.name, listen: $0.listen, upstream: $0.upstream, enabled: $0.enabled)
            }
            let (proxies, created) = try await activityCall(backend) { try await backend.populate(requested) }
            for name in created {
                context.registerCleanup("delete proxy \(name)") {
                    do {
                        try await backend.deleteProxy(named: name)
                    } catch ToxicBackendError.notFound {}
                }
            }
            for proxy in proxies { context.export("\(proxy.name)_PORT", .int(proxy.listenPort ?? 0)) }
            return ["proxies": .array(proxies.map(output)), "created": .array(created.map { .string($0) })]
        }
    }

    /// `toxiproxy.reset`: this run's faults on the server (`scope: run`), or Toxiproxy's global
    /// `POST /reset` of every user's toxics and proxies (`scope: server`, for a server of your own).
    struct Reset: Action {
        static let type = "toxiproxy.reset"
        static let summary = "Undo this run's toxics and downs on a Toxiproxy server; scope: server resets everyone's (POST /reset)"
        static let argumentHelp = help(["scope": "run: only what this run added or changed; server: Toxiproxy's global reset"])

        enum Scope: String, Codable, Sendable, CaseIterable {
            case run, server
        }

        struct Fields: Codable, Sendable {
            var scope: Scope

            enum CodingKeys: String, CodingKey { case scope }

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                scope = try c.decodeIfPresent(Scope.self, forKey: .scope) ?? .run
            }
        }
        typealias Arguments = AtServer<Fields>

        static func validate(_ arguments: Arguments) throws { try arguments.validateURL() }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let backend = try context.toxiproxyBackend(url: arguments.url)
            switch arguments.inner.scope {
            case .run:
                let (removed, enabled) = try await context.resetToxics(on: backend)
                return ["scope": "run", "removed": .int(removed), "enabled": .int(enabled)]
            case .server:
                do {
                    try await backend.client.reset()
                } catch {
                    throw ActivityFailure("\(error)")
                }
                return ["scope": "server"]
            }
        }
    }

    // MARK: Probes

    /// The arguments of probes that need only the server.
    struct ServerFields: Codable, Sendable {}

    /// `toxiproxy.version`: the server's version.
    struct Version: Probe {
        static let type = "toxiproxy.version"
        static let summary = "The Toxiproxy server's version, e.g. 2.12.0"
        static let argumentHelp = help([:])
        typealias Arguments = AtServer<ServerFields>

        static func validate(_ arguments: Arguments) throws { try arguments.validateURL() }

        func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            do {
                return .string(try await context.toxiproxyBackend(url: arguments.url).client.version())
            } catch let error as ToxiproxyError {
                throw ActivityFailure(error.description)
            }
        }
    }

    /// `toxiproxy.proxies`: every proxy on the server, by name.
    struct Proxies: Probe {
        static let type = "toxiproxy.proxies"
        static let summary = "Every proxy on a Toxiproxy server with its toxics, by name (as GET /proxies)"
        static let argumentHelp = help([:])
        typealias Arguments = AtServer<ServerFields>

        static func validate(_ arguments: Arguments) throws { try arguments.validateURL() }

        func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let backend = try context.toxiproxyBackend(url: arguments.url)
            let proxies = try await activityCall(backend) { try await backend.proxies() }
            return .object(ValueObject(proxies.map { ($0.name, output($0)) }))
        }
    }

    /// `toxiproxy.proxy`: one proxy, with its toxics.
    struct ReadProxy: Probe {
        static let type = "toxiproxy.proxy"
        static let summary = "One proxy on a Toxiproxy server: name, listen, upstream, enabled, toxics"
        static let argumentHelp = help(["proxy": "the proxy's name"])
        typealias Arguments = AtServer<ProxyArguments>

        static func validate(_ arguments: Arguments) throws { try arguments.validateURL() }

        func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let backend = try context.toxiproxyBackend(url: arguments.url)
            return output(try await activityCall(backend) { try await backend.proxy(named: arguments.inner.proxy) })
        }
    }

    /// `toxiproxy.toxics`: a proxy's toxics.
    struct Toxics: Probe {
        static let type = "toxiproxy.toxics"
        static let summary = "The toxics of a proxy on a Toxiproxy server, upstream first, each in order added"
        static let argumentHelp = help(["proxy": "the proxy's name"])
        typealias Arguments = AtServer<ProxyArguments>

        static func validate(_ arguments: Arguments) throws { try arguments.validateURL() }

        func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let backend = try context.toxiproxyBackend(url: arguments.url)
            do {
                return .array(try await backend.client.toxics(of: arguments.inner.proxy).map { toxicOutput($0, proxy: arguments.inner.proxy) })
            } catch {
                throw ActivityFailure(error.description)
            }
        }
    }
}

/// The Toxiproxy driver: the `toxiproxy` toxic backend, Chaos Toolkit's `chaostoxi` functions
/// (on a configured server, or on the run's backend), and `toxiproxy.*` activities on a named
/// server.
public enum ToxiproxyPlugin: FaultlinePlugin {
    public static let name = "toxiproxy"

    public static func register(into registry: inout PluginRegistry) {
        registry.register(toxicBackend: ToxiproxyBackendFactory())
        // The run's backend and the suite's proxies; the proxy plugin registers it too.
        registry.register(extension: ToxicBackendExtension())
        registry.register(extension: ToxiproxyConnectionsExtension())
        ToxiproxyActivities.register(into: &registry)
        ChaosToolkitFunctions.register(into: &registry)
        ToxiproxyRecoveries.register(into: &registry)
    }
}
