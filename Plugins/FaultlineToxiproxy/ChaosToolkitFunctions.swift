import FaultlineKit
import Foundation

/// Chaos Toolkit's Toxiproxy extension (`chaostoolkit-toxiproxy`, modules `chaostoxi.*`) without
/// Python: the same function names, argument names, defaults, return values and configuration
/// keys, and `create_proxy`'s `<proxy_name>_PORT` configuration value.
///
/// Unlike chaostoolkit-toxiproxy:
/// - with no `toxiproxy_url`/`toxiproxy_host` in the configuration the functions act on the run's
///   backend (the in-process proxy by default), so the experiment needs no server;
/// - what they create, disable or change is undone when the experiment ends (cleanups), also on
///   SIGINT, and `reset` on a shared server undoes only this run's faults;
/// - failures say which proxy or toxic and why, instead of a bare `AssertionError`.
enum ChaosToolkitFunctions {
    static let proxyActions = "chaostoxi.proxy.actions"
    static let proxyProbes = "chaostoxi.proxy.probes"
    static let toxicActions = "chaostoxi.toxic.actions"

    static func register(into registry: inout PluginRegistry) {
        registry.register(action: CreateProxy(), asPythonFunction: "create_proxy", inModule: proxyActions)
        registry.register(action: ModifyProxy(), asPythonFunction: "modify_proxy", inModule: proxyActions)
        registry.register(action: DisableProxy(), asPythonFunction: "disable_proxy", inModule: proxyActions)
        registry.register(action: EnableProxy(), asPythonFunction: "enable_proxy", inModule: proxyActions)
        registry.register(action: DeleteProxy(), asPythonFunction: "delete_proxy", inModule: proxyActions)
        registry.register(action: Reset(), asPythonFunction: "reset", inModule: proxyActions)
        registry.register(probe: ProxyExist(), asPythonFunction: "proxy_exist", inModule: proxyProbes)
        registry.register(probe: GetProxyAttribute(), asPythonFunction: "get_proxy_attribute", inModule: proxyProbes)
        registry.register(action: CreateToxic(), asPythonFunction: "create_toxic", inModule: toxicActions)
        registry.register(action: CreateLatencyToxic(), asPythonFunction: "create_latency_toxic", inModule: toxicActions)
        registry.register(action: CreateBandwidthToxic(), asPythonFunction: "create_bandwith_degradation_toxic", inModule: toxicActions)
        registry.register(action: CreateSlowCloseToxic(), asPythonFunction: "create_slow_connection_close_toxic", inModule: toxicActions)
        registry.register(action: CreateTimeoutToxic(), asPythonFunction: "create_timeout_toxic", inModule: toxicActions)
        registry.register(action: CreateSlicerToxic(), asPythonFunction: "create_slicer_toxic", inModule: toxicActions)
        registry.register(action: CreateLimiterToxic(), asPythonFunction: "create_limiter_toxic", inModule: toxicActions)
        registry.register(action: DeleteToxic(), asPythonFunction: "delete_toxic", inModule: toxicActions)
    }

    /// chaostoxi's `env:NAME` values: read from the environment when the activity runs.
    static func resolveEnvironment(_ value: String, key: String) throws -> String {
        guard value.hasPrefix("env:") else { return value }
        let name = String(value.dropFirst(4))
        guard let resolved = ProcessInfo.processInfo.environment[name] else {
            throw ActivityFailure("\(key) is \"\(value)\", but the environment variable \(name) is not set")
        }
        return resolved
    }

    static let proxyNameHelp = "the proxy's name"
    static let forProxyHelp = "the proxy the toxic goes on"
    static let toxicNameHelp = "the toxic's name, for delete_toxic"

    // MARK: chaostoxi.proxy.actions

    /// `create_proxy`: creates a proxy until the experiment ends; sets `<proxy_name>_PORT`.
    struct CreateProxy: Action {
        static let type = "chaostoxi.proxy.actions.create_proxy"
        static let summary = "Create a proxy until the experiment ends; sets configuration <proxy_name>_PORT to the port it listens on"
        static let argumentHelp = [
            "proxy_name": proxyNameHelp,
            "upstream_host": "host connections are forwarded to (env:NAME reads an environment variable)",
            "upstream_port": "port connections are forwarded to (env:NAME reads an environment variable)",
            "listen_host": "address to listen on",
            "listen_port": "port to listen on; 0 picks a free one",
            "enabled": "false creates it down",
        ]

        struct Arguments: Codable, Sendable, NumberRanges {
            static let numberRanges: [String: NumberRange] = ["listen_port": .listenPort]
            var proxyName: String
            var upstreamHost: String
            var upstreamPort: String
            var listenHost: String
            var listenPort: Int
            var enabled: Bool

            enum CodingKeys: String, CodingKey {
                case proxyName = "proxy_name", upstreamHost = "upstream_host", upstreamPort = "upstream_port", listenHost = "listen_host"
                case listenPort = "listen_port", enabled
            }

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                proxyName = try c.decode(String.self, forKey: .proxyName)
                upstreamHost = try c.decode(String.self, forKey: .upstreamHost)
                upstreamPort = try c.decode(String.self, forKey: .upstreamPort)
                listenHost = try c.decodeIfPresent(String.self, forKey: .listenHost) ?? "0.0.0.0"
                listenPort = try c.decodeIfPresent(Int.self, forKey: .listenPort) ?? 0
                enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
            }

            /// Where the proxy listens, an IPv6 host in brackets.
            var listen: HostPort { HostPort(host: listenHost, port: listenPort) }
        }

        static func validate(_ arguments: Arguments) throws {
            if arguments.proxyName.isEmpty { throw ArgumentError("proxy_name", "proxy_name must not be empty") }
            guard HostPort.Role.listen.ports.contains(arguments.listenPort) else { throw ArgumentError("listen_port", "listen_port must be 0…65535") }
            if !arguments.upstreamPort.hasPrefix("env:"), Int(arguments.upstreamPort).map(HostPort.Role.connect.ports.contains) != true {
                throw ArgumentError("upstream_port", "upstream_port must be a port number or env:NAME, found \"\(arguments.upstreamPort)\"")
            }
        }

        static func exports(_ arguments: Arguments) -> [String: Value] {
            ["\(arguments.proxyName)_PORT": CreateProxyAction.exportedPort(listen: arguments.listen.description)]
        }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let host = try resolveEnvironment(arguments.upstreamHost, key: "upstream_host")
            let port = try resolveEnvironment(arguments.upstreamPort, key: "upstream_port")
            let upstream = Int(port).map { HostPort(host: host, port: $0).description } ?? "\(host):\(port)"
            let proxy = ProxyDefinition(
                name: arguments.proxyName, listen: arguments.listen.description, upstream: upstream, enabled: arguments.enabled)
            _ = try await context.createProxy(proxy, on: try context.chaosToolkitBackend())
            return true
        }
    }

    /// `modify_proxy`: changes listen, upstream or enabled until the experiment ends.
    struct ModifyProxy: Action {
        static let type = "chaostoxi.proxy.actions.modify_proxy"
        static let summary = "Change a proxy's listen address, upstream or state until the experiment ends; refreshes <proxy_name>_PORT"
        static let argumentHelp = [
            "proxy_name": proxyNameHelp, "listen_address": "new host:port to listen on", "upstream_address": "new host:port to forward to",
            "enabled": "false takes it down, true brings it up",
        ]

        struct Arguments: Codable, Sendable {
            var proxyName: String
            var listenAddress: String?
            var upstreamAddress: String?
            var enabled: Bool?

            enum CodingKeys: String, CodingKey {
                case proxyName = "proxy_name", listenAddress = "listen_address", upstreamAddress = "upstream_address", enabled
            }
        }

        static func validate(_ arguments: Arguments) throws {
            try checkHostPort("listen_address", arguments.listenAddress, role: .listen)
            try checkHostPort("upstream_address", arguments.upstreamAddress, role: .connect)
        }

        static func exports(_ arguments: Arguments) -> [String: Value] {
            ["\(arguments.proxyName)_PORT": CreateProxyAction.exportedPort(listen: arguments.listenAddress)]
        }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            _ = try await context.changeProxy(
                named: arguments.proxyName, listen: arguments.listenAddress, upstream: arguments.upstreamAddress, enabled: arguments.enabled,
                on: try context.chaosToolkitBackend())
            return true
        }
    }

    /// The arguments of functions that take only a proxy name.
    struct ProxyNameArguments: Codable, Sendable {
        var proxyName: String

        enum CodingKeys: String, CodingKey { case proxyName = "proxy_name" }
    }

    /// `disable_proxy`: Toxiproxy's "down" until `enable_proxy` or the end of the experiment.
    struct DisableProxy: Action {
        static let type = "chaostoxi.proxy.actions.disable_proxy"
        static let summary = "Take a proxy down (connections closed, new ones refused) until enable_proxy or the end of the experiment"
        static let argumentHelp = ["proxy_name": proxyNameHelp]
        typealias Arguments = ProxyNameArguments

        static func exports(_ arguments: Arguments) -> [String: Value] {
            ["\(arguments.proxyName)_PORT": CreateProxyAction.exportedPort(listen: nil)]
        }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let proxy = try await context.disableProxy(named: arguments.proxyName, on: try context.chaosToolkitBackend())
            context.export("\(arguments.proxyName)_PORT", .int(proxy.listenPort ?? 0))
            return true
        }
    }

    /// `enable_proxy`.
    struct EnableProxy: Action {
        static let type = "chaostoxi.proxy.actions.enable_proxy"
        static let summary = "Bring a disabled proxy back up"
        static let argumentHelp = ["proxy_name": proxyNameHelp]
        typealias Arguments = ProxyNameArguments

        static func exports(_ arguments: Arguments) -> [String: Value] {
            ["\(arguments.proxyName)_PORT": CreateProxyAction.exportedPort(listen: nil)]
        }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let proxy = try await context.enableProxy(named: arguments.proxyName, on: try context.chaosToolkitBackend())
            context.export("\(arguments.proxyName)_PORT", .int(proxy.listenPort ?? 0))
            return true
        }
    }

    /// `delete_proxy`: returns null, as chaostoxi does; a proxy already gone is not a failure.
    struct DeleteProxy: Action {
        static let type = "chaostoxi.proxy.actions.delete_proxy"
        static let summary = "Delete a proxy (one already gone is not a failure)"
        static let argumentHelp = ["proxy_name": proxyNameHelp]
        typealias Arguments = ProxyNameArguments

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            _ = try await context.deleteProxy(named: arguments.proxyName, on: try context.chaosToolkitBackend())
            return .null
        }
    }

    /// `reset`: on the in-process proxy, every toxic removed and every proxy enabled; on a
    /// Toxiproxy server, only what this run added or changed (chaostoxi resets the whole server).
    struct Reset: Action {
        static let type = "chaostoxi.proxy.actions.reset"
        static let summary = "Remove the toxics and enable the proxies; on a Toxiproxy server only this run's (never other users')"

        struct Arguments: Codable, Sendable {}

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            _ = try await context.resetToxics(on: try context.chaosToolkitBackend())
            return true
        }
    }

    // MARK: chaostoxi.proxy.probes

    /// `proxy_exist`.
    struct ProxyExist: Probe {
        static let type = "chaostoxi.proxy.probes.proxy_exist"
        static let summary = "Whether a proxy exists (true or false)"
        static let argumentHelp = ["proxy_name": proxyNameHelp]
        typealias Arguments = ProxyNameArguments

        func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let backend = try context.chaosToolkitBackend()
            do {
                _ = try await backend.proxy(named: arguments.proxyName)
                return true
            } catch ToxicBackendError.notFound {
                return false
            } catch let error as ToxicBackendError {
                // An unreachable server is a failure, not a "no".
                throw ActivityFailure(backend.message(for: error))
            }
        }
    }

    /// `get_proxy_attribute`: one field of the proxy as Toxiproxy's API shows it, or null when
    /// the proxy does not exist.
    struct GetProxyAttribute: Probe {
        static let type = "chaostoxi.proxy.probes.get_proxy_attribute"
        static let summary = "One attribute of a proxy (name, listen, upstream, enabled, toxics), or null when there is no such proxy"
        static let argumentHelp = ["proxy_name": proxyNameHelp, "attribute": "name, listen, upstream, enabled or toxics"]
        static let attributes = ["name", "listen", "upstream", "enabled", "toxics"]

        struct Arguments: Codable, Sendable {
            var proxyName: String
            var attribute: String

            enum CodingKeys: String, CodingKey { case proxyName = "proxy_name", attribute }
        }

        static func validate(_ arguments: Arguments) throws {
            guard attributes.contains(arguments.attribute) else {
                throw ArgumentError(
                    "attribute", "a proxy has no attribute \"\(arguments.attribute)\"",
                    hint: Suggestion.didYouMean(arguments.attribute, in: attributes) ?? "attributes: \(attributes.joined(separator: ", "))")
            }
        }

        func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            let backend = try context.chaosToolkitBackend()
            let proxy: ProxyDefinition
            do {
                proxy = try await backend.proxy(named: arguments.proxyName)
            } catch ToxicBackendError.notFound {
                return .null
            } catch let error as ToxicBackendError {
                throw ActivityFailure(backend.message(for: error))
            }
            return try ValueEncoder().encode(proxy)[arguments.attribute] ?? .null
        }
    }

    // MARK: chaostoxi.toxic.actions

    /// `delete_toxic`: true when removed, false when there was no such toxic.
    struct DeleteToxic: Action {
        static let type = "chaostoxi.toxic.actions.delete_toxic"
        static let summary = "Remove a toxic (true), or find it already gone (false)"
        static let argumentHelp = ["for_proxy": forProxyHelp, "toxic_name": "the toxic's name"]

        struct Arguments: Codable, Sendable {
            var forProxy: String
            var toxicName: String

            enum CodingKeys: String, CodingKey { case forProxy = "for_proxy", toxicName = "toxic_name" }
        }

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            .bool(try await context.removeToxic(named: arguments.toxicName, from: arguments.forProxy, on: try context.chaosToolkitBackend()))
        }
    }

    /// `create_toxic`: any toxic type, stream and toxicity.
    struct CreateToxic: ToxicCreator {
        static let type = "chaostoxi.toxic.actions.create_toxic"
        static let summary = "Add a toxic of any type, stream and toxicity until the experiment ends"
        static let argumentHelp = [
            "for_proxy": forProxyHelp, "toxic_name": toxicNameHelp,
            "toxic_type": "latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data",
            "stream": "downstream (server → client) or upstream", "toxicity": "probability 0…1 that the toxic applies to a connection",
            "attributes": "the toxic's attributes, in Toxiproxy's names and units",
        ]

        struct Arguments: ToxicCreation, NumberRanges {
            static let numberRanges: [String: NumberRange] = ["toxicity": .probability]
            var forProxy: String
            var toxicName: String
            var toxicType: String
            var stream: String
            var toxicity: Double
            var attributes: Value?

            enum CodingKeys: String, CodingKey {
                case forProxy = "for_proxy", toxicName = "toxic_name", toxicType = "toxic_type", stream, toxicity, attributes
            }

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                forProxy = try c.decode(String.self, forKey: .forProxy)
                toxicName = try c.decode(String.self, forKey: .toxicName)
                toxicType = try c.decode(String.self, forKey: .toxicType)
                stream = try c.decodeIfPresent(String.self, forKey: .stream) ?? "downstream"
                toxicity = try c.decodeIfPresent(Double.self, forKey: .toxicity) ?? 1
                attributes = try c.decodeIfPresent(Value.self, forKey: .attributes)
            }

            var toxic: ToxicDefinition {
                ToxicDefinition(
                    name: toxicName, type: toxicType, stream: ToxicStream(parsing: stream) ?? .downstream, toxicity: toxicity,
                    attributes: attributes ?? .object([:]))
            }

            static let attributeKeys: [String: String]? = nil
        }

        static func validate(_ arguments: Arguments) throws {
            guard ToxicStream(parsing: arguments.stream) != nil else {
                throw ArgumentError("stream", "stream must be upstream or downstream, found \"\(arguments.stream)\"")
            }
            try validateToxicity(arguments.toxicity)
            if let attributes = arguments.attributes, attributes.objectValue == nil {
                throw ArgumentError("attributes", "attributes must be an object, found \(attributes.kindDescription)")
            }
        }
    }

    /// `create_latency_toxic`.
    struct CreateLatencyToxic: ToxicCreator {
        static let type = "chaostoxi.toxic.actions.create_latency_toxic"
        static let summary = "Delay data from the server (downstream) by latency ± jitter ms, until the experiment ends"
        static let argumentHelp = [
            "for_proxy": forProxyHelp, "toxic_name": toxicNameHelp, "latency": "ms added to each chunk", "jitter": "± ms, uniform",
        ]

        struct Arguments: ToxicCreation, NumberRanges {
            static let numberRanges: [String: NumberRange] = ["latency": .milliseconds, "jitter": .milliseconds]
            var forProxy: String
            var toxicName: String
            var latency: Int
            var jitter: Int

            enum CodingKeys: String, CodingKey { case forProxy = "for_proxy", toxicName = "toxic_name", latency, jitter }

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                forProxy = try c.decode(String.self, forKey: .forProxy)
                toxicName = try c.decode(String.self, forKey: .toxicName)
                latency = try c.decode(Int.self, forKey: .latency)
                jitter = try c.decodeIfPresent(Int.self, forKey: .jitter) ?? 0
            }

            var toxic: ToxicDefinition {
                ToxicDefinition(name: toxicName, type: "latency", attributes: ["latency": .int(latency), "jitter": .int(jitter)])
            }

            static let attributeKeys: [String: String]? = [:]
        }
    }

    /// `create_bandwith_degradation_toxic` (chaostoxi's spelling).
    struct CreateBandwidthToxic: ToxicCreator {
        static let type = "chaostoxi.toxic.actions.create_bandwith_degradation_toxic"
        static let summary = "Limit data from the server (downstream) to rate KB/s per connection, until the experiment ends"
        static let argumentHelp = ["for_proxy": forProxyHelp, "toxic_name": toxicNameHelp, "rate": "KB/s (1 KB = 1000 bytes)"]

        struct Arguments: ToxicCreation, NumberRanges {
            static let numberRanges: [String: NumberRange] = ["rate": NumberRange(0...1_000_000_000, unit: "KB/s", integer: true)]
            var forProxy: String
            var toxicName: String
            var rate: Int

            enum CodingKeys: String, CodingKey { case forProxy = "for_proxy", toxicName = "toxic_name", rate }

            var toxic: ToxicDefinition { ToxicDefinition(name: toxicName, type: "bandwidth", attributes: ["rate": .int(rate)]) }

            static let attributeKeys: [String: String]? = [:]
        }
    }

    /// `create_slow_connection_close_toxic`.
    struct CreateSlowCloseToxic: ToxicCreator {
        static let type = "chaostoxi.toxic.actions.create_slow_connection_close_toxic"
        static let summary = "Delay the close of connections by delay ms, until the experiment ends"
        static let argumentHelp = ["for_proxy": forProxyHelp, "toxic_name": toxicNameHelp, "delay": "ms before a close is passed on"]

        struct Arguments: ToxicCreation, NumberRanges {
            static let numberRanges: [String: NumberRange] = ["delay": .milliseconds]
            var forProxy: String
            var toxicName: String
            var delay: Int

            enum CodingKeys: String, CodingKey { case forProxy = "for_proxy", toxicName = "toxic_name", delay }

            var toxic: ToxicDefinition { ToxicDefinition(name: toxicName, type: "slow_close", attributes: ["delay": .int(delay)]) }

            static let attributeKeys: [String: String]? = [:]
        }
    }

    /// `create_timeout_toxic`.
    struct CreateTimeoutToxic: ToxicCreator {
        static let type = "chaostoxi.toxic.actions.create_timeout_toxic"
        static let summary = "Drop data from the server and close connections after timeout ms (0: hold them open), until the experiment ends"
        static let argumentHelp = [
            "for_proxy": forProxyHelp, "toxic_name": toxicNameHelp, "timeout": "ms before the connection is closed; 0 never closes",
        ]

        struct Arguments: ToxicCreation, NumberRanges {
            static let numberRanges: [String: NumberRange] = ["timeout": .milliseconds]
            var forProxy: String
            var toxicName: String
            var timeout: Int

            enum CodingKeys: String, CodingKey { case forProxy = "for_proxy", toxicName = "toxic_name", timeout }

            var toxic: ToxicDefinition { ToxicDefinition(name: toxicName, type: "timeout", attributes: ["timeout": .int(timeout)]) }

            static let attributeKeys: [String: String]? = [:]
        }
    }

    /// `create_slicer_toxic`.
    struct CreateSlicerToxic: ToxicCreator {
        static let type = "chaostoxi.toxic.actions.create_slicer_toxic"
        static let summary = "Slice data from the server into small pieces with a delay between them, until the experiment ends"
        static let argumentHelp = [
            "for_proxy": forProxyHelp, "toxic_name": toxicNameHelp, "average_size": "bytes per slice",
            "size_variation": "± bytes",
            "delay": "µs between slices",
        ]

        struct Arguments: ToxicCreation, NumberRanges {
            static let numberRanges: [String: NumberRange] = ["average_size": .bytes, "size_variation": .bytes, "delay": .microseconds]
            var forProxy: String
            var toxicName: String
            var averageSize: Int
            var sizeVariation: Int
            var delay: Int

            enum CodingKeys: String, CodingKey {
                case forProxy = "for_proxy", toxicName = "toxic_name", averageSize = "average_size", sizeVariation = "size_variation", delay
            }

            var toxic: ToxicDefinition {
                ToxicDefinition(
                    name: toxicName, type: "slicer",
                    attributes: ["average_size": .int(averageSize), "size_variation": .int(sizeVariation), "delay": .int(delay)])
            }

            static let attributeKeys: [String: String]? = [:]
        }
    }

    /// `create_limiter_toxic`: `bytes_limit` is Toxiproxy's `bytes`.
    struct CreateLimiterToxic: ToxicCreator {
        static let type = "chaostoxi.toxic.actions.create_limiter_toxic"
        static let summary = "Close connections once bytes_limit bytes came from the server, until the experiment ends"
        static let argumentHelp = [
            "for_proxy": forProxyHelp, "toxic_name": toxicNameHelp, "bytes_limit": "bytes passed before the connection is closed",
        ]

        struct Arguments: ToxicCreation, NumberRanges {
            static let numberRanges: [String: NumberRange] = ["bytes_limit": .bytes]
            var forProxy: String
            var toxicName: String
            var bytesLimit: Int

            enum CodingKeys: String, CodingKey { case forProxy = "for_proxy", toxicName = "toxic_name", bytesLimit = "bytes_limit" }

            var toxic: ToxicDefinition { ToxicDefinition(name: toxicName, type: "limit_data", attributes: ["bytes": .int(bytesLimit)]) }

            static let attributeKeys: [String: String]? = ["bytes": "bytes_limit"]
        }
    }
}

/// The arguments of a chaostoxi function that creates a toxic.
protocol ToxicCreation: Codable, Sendable {
    var forProxy: String { get }
    var toxicName: String { get }
    /// The toxic to add (downstream, toxicity 1 unless the function takes them).
    var toxic: ToxicDefinition { get }
    /// How the toxic's attribute names map to the function's argument names (`bytes` →
    /// `bytes_limit`), for errors; nil when the function takes an `attributes` object.
    static var attributeKeys: [String: String]? { get }
}

/// A chaostoxi function that creates a toxic: checks it against the registered toxic type when
/// the experiment loads, adds it until the experiment ends, returns whether the server kept the
/// name (chaostoxi's `toxic["name"] == toxic_name`).
protocol ToxicCreator: Action, RegistryValidating where Arguments: ToxicCreation {}

extension ToxicCreator {
    static func validate(_ arguments: Arguments, registry: PluginRegistry) throws {
        let toxic = arguments.toxic
        if toxic.name.isEmpty { throw ArgumentError("toxic_name", "toxic_name must not be empty") }
        do {
            _ = try AddToxicAction.normalizedAttributes(
                AddToxicAction.Arguments(
                    proxy: arguments.forProxy, toxic: toxic.type, attributes: toxic.attributes, stream: toxic.stream, toxicity: toxic.toxicity),
                registry: registry)
        } catch var error as ArgumentError {
            if error.key == "toxic" { error.key = "toxic_type" }
            if let keys = Arguments.attributeKeys, let key = error.key, key.hasPrefix("attributes") {
                // The function's own argument, not an `attributes` object it does not have.
                let attribute = key.split(separator: ".", maxSplits: 1).dropFirst().first.map(String.init)
                error.key = attribute.map { keys[$0] ?? $0 }
            }
            throw error
        }
    }

    func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let added = try await context.addToxic(arguments.toxic, to: arguments.forProxy, on: try context.chaosToolkitBackend())
        return .bool(added.name == arguments.toxicName)
    }
}
