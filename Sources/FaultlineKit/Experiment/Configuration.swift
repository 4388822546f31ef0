import Foundation

/// One configuration value as written: a literal, or read from the environment.
public enum ConfigurationEntry: Sendable {
    case literal(SourceNode)
    /// `{type: env, key, default, env_var_type}`.
    case environment(key: String, defaultValue: SourceNode?, type: EnvironmentValueType?, location: SourceLocation?)
    /// A value read already (from the environment, from a plugin): taken as it is, its `${…}`
    /// references still resolved against the other values.
    case evaluated(Value, location: SourceLocation?)
    /// A value resolved already (the shared configuration under an experiment's own, what run
    /// extensions export): taken as it is, neither evaluated nor substituted again.
    case resolved(Value)

    /// Reads an entry, reporting malformed ones to `sink`.
    public static func parse(_ node: SourceNode, path: DocumentPath, sink: DiagnosticSink) -> ConfigurationEntry? {
        guard let members = node.members, let type = node["type"]?.stringValue else { return .literal(node) }
        switch type {
        case "env":
            struct Env: Decodable {
                var type: String
                var key: String
                var `default`: SourceNode?
                var env_var_type: EnvironmentValueType?
            }
            do {
                let env = try NodeDecoder().decode(Env.self, from: node, path: path, sink: sink)
                return .environment(key: env.key, defaultValue: env.default, type: env.env_var_type, location: node.location)
            } catch {
                sink.report(error, fallbackLocation: node.location, path: path)
                return nil
            }
        case "probe":
            sink.report(
                Diagnostic(
                    "dynamic configuration ({type: probe}) is not supported", at: node.location, path: path,
                    hint: "compute the value before the run and pass it with --var, or read it with {type: env}"))
            return nil
        default:
            _ = members
            return .literal(node)
        }
    }
}

/// Where a configuration value or a secret was read: the name or the place, never the value.
/// A plugin records this in a value's place where the value must not be written (a ledger), so
/// that what reads the record later finds the value again where the run did.
public struct ValueSource: Sendable, Equatable, CustomStringConvertible {
    /// The value's name: `agent_token`.
    public var name: String
    /// Whether it is a secret (under `secrets:`).
    public var isSecret: Bool
    /// The environment variable it was read from (`{type: env, key}`); nil for a value written in
    /// its layer (or an environment entry's default).
    public var environment: String?
    /// The layer that gives it: `suite`, `profile staging`, a var file, `--var`.
    public var layer: String

    public init(name: String, isSecret: Bool, environment: String? = nil, layer: String) {
        self.name = name
        self.isSecret = isSecret
        self.environment = environment
        self.layer = layer
    }

    /// The source of a value resolved from `entry`; nil for one resolved before (no layer of its own).
    init?(name: String, entry: ConfigurationEntry, layer: String, isSecret: Bool, environment: [String: String]) {
        switch entry {
        case .environment(let key, _, _, _):
            // A default stands in for an unset variable: then the value is the layer's.
            self.init(name: name, isSecret: isSecret, environment: environment[key] != nil ? key : nil, layer: layer)
        case .literal:
            self.init(name: name, isSecret: isSecret, layer: layer)
        case .evaluated, .resolved:
            return nil
        }
    }

    /// `secret agent_token (in the suite)`, for messages.
    public var description: String {
        (isSecret ? "secret " : "configuration value ") + name + (environment.map { " (from $\($0))" } ?? " (written in \(layer))")
    }
}

/// The types `env_var_type` and `--var key:type=value` accept, as in Chaos Toolkit.
public enum EnvironmentValueType: String, Sendable, Decodable, CaseIterable {
    case str, string, int, integer, float, number, bytes, bool, json

    /// Converts text to a value of this type.
    public func convert(_ text: String) throws(ConversionError) -> Value {
        switch self {
        case .str, .string, .bytes:
            return .string(text)
        case .int, .integer:
            guard let i = Int(text.trimmingCharacters(in: .whitespaces)) else { throw ConversionError(text: text, type: rawValue) }
            return .int(i)
        case .float, .number:
            guard let d = Double(text.trimmingCharacters(in: .whitespaces)) else { throw ConversionError(text: text, type: rawValue) }
            return .double(d)
        case .bool:
            // chaoslib's convert_to_type: exactly these are false; anything else ("off", "") is true.
            switch text.lowercased() {
            case "false", "0", "no": return .bool(false)
            default: return .bool(true)
            }
        case .json:
            do { return try JSONReader.value(text) } catch { throw ConversionError(text: text, type: rawValue) }
        }
    }
}

extension EnvironmentValueType {
    /// Converts an `env` entry's `default` as Chaos Toolkit does when the variable is unset: text
    /// as a variable's text; a number to `int` or `float` as Python's `int()`/`float()` would;
    /// anything else as written.
    public func convertDefault(_ value: Value) throws(ConversionError) -> Value {
        switch (self, value) {
        case (_, .string(let text)): return try convert(text)
        case (.float, .int(let i)), (.number, .int(let i)): return .double(Double(i))
        case (.int, .double(let d)), (.integer, .double(let d)):
            guard d.isFinite, abs(d) < 9e18 else { throw ConversionError(text: "\(d)", type: rawValue) }
            return .int(Int(d.rounded(.towardZero)))
        default: return value
        }
    }
}

/// Text that does not convert to the requested type.
public struct ConversionError: Error, Sendable, CustomStringConvertible {
    public var text: String
    public var type: String
    public var description: String { "\"\(text)\" is not a valid \(type)" }
}

/// One layer of configuration: the experiment's own, the suite's, a profile's, a var file's, `--var`s.
/// Later layers override earlier ones key by key.
public struct ConfigurationLayer: Sendable {
    public var name: String
    public var entries: [(key: String, entry: ConfigurationEntry)]
    public var secrets: [(scope: String, key: String, entry: ConfigurationEntry)]
    /// Names this layer defines whose value could not be read when it was evaluated (reported
    /// then): see ``ResolvedConfiguration/unavailable``.
    public var unavailable: Set<String> = []

    public init(
        name: String, entries: [(key: String, entry: ConfigurationEntry)] = [],
        secrets: [(scope: String, key: String, entry: ConfigurationEntry)] = []
    ) {
        self.name = name
        self.entries = entries
        self.secrets = secrets
    }

    /// Reads a `configuration:` object.
    public static func parse(name: String, configuration: SourceNode?, secrets: SourceNode?, path: DocumentPath, sink: DiagnosticSink)
        -> ConfigurationLayer
    {
        var layer = ConfigurationLayer(name: name)
        if let configuration {
            if let members = configuration.members {
                for member in members {
                    if let entry = ConfigurationEntry.parse(member.value, path: path.appending("configuration").appending(member.key), sink: sink) {
                        layer.entries.append((member.key, entry))
                    }
                }
            } else if !configuration.isNull {
                sink.report(
                    Diagnostic(
                        "expected an object of name: value, found \(describeFound(configuration))", at: configuration.location,
                        path: path.appending("configuration")))
            }
        }
        if let secrets {
            if let scopes = secrets.members {
                for scope in scopes {
                    guard let keys = scope.value.members else {
                        sink.report(
                            Diagnostic(
                                "expected a scope object of name: value, found \(describeFound(scope.value))", at: scope.value.location,
                                path: path.appending("secrets").appending(scope.key),
                                hint: "secrets are grouped by scope: secrets: {scope: {name: value}}"))
                        continue
                    }
                    for key in keys {
                        let keyPath = path.appending("secrets").appending(scope.key).appending(key.key)
                        if case .environment(_, let defaultValue?, _, _)? = ConfigurationEntry.parse(key.value, path: keyPath, sink: DiagnosticSink())
                        {
                            sink.report(
                                Diagnostic(
                                    "secrets read from the environment take no default", at: defaultValue.location,
                                    path: keyPath.appending("default"),
                                    hint: "remove default:, so that a missing secret is an error rather than a silent fallback"))
                        }
                        if let entry = ConfigurationEntry.parse(key.value, path: keyPath, sink: sink) {
                            layer.secrets.append((scope.key, key.key, entry))
                        }
                    }
                }
            } else if !secrets.isNull {
                sink.report(
                    Diagnostic("expected an object of scopes, found \(describeFound(secrets))", at: secrets.location, path: path.appending("secrets"))
                )
            }
        }
        return layer
    }
}

/// Configuration and secrets with every layer merged, environment read and `${}` references
/// between configuration values resolved.
public struct ResolvedConfiguration: Sendable {
    public var configuration: [String: Value]
    public var secrets: [String: [String: Value]]
    public var redactor: Redactor
    /// Names whose value could not be read (an environment variable not set), already reported:
    /// their uses are not reported again as unknown names.
    public var unavailable: Set<String> = []
    /// Where each value ``substitution`` gives by name was read (an environment variable, or a
    /// layer that writes it), for the values read or written in a layer.
    public var sources: [String: ValueSource] = [:]

    public init(configuration: [String: Value] = [:], secrets: [String: [String: Value]] = [:]) {
        self.configuration = configuration
        self.secrets = secrets
        self.redactor = Redactor(secrets: secrets)
    }

    /// Substitution over configuration first, then every secret scope flattened (as Chaos Toolkit).
    public var substitution: Substitution {
        var variables: [String: Value] = [:]
        for scope in secrets.keys.sorted() {
            for (key, value) in secrets[scope]! { variables[key] = value }
        }
        for (key, value) in configuration { variables[key] = value }
        var substitution = Substitution(variables: variables)
        substitution.secrets = redactor
        substitution.unavailable = unavailable.subtracting(variables.keys)
        substitution.sources = sources
        return substitution
    }

    /// Merges layers in order and resolves them.
    /// - Parameters:
    ///   - environment: the variables `{type: env}` reads (normally the process environment).
    ///   - sink: receives every missing variable and bad conversion.
    public static func resolve(
        _ layers: [ConfigurationLayer], environment: [String: String], sources: ConfigurationSources = .none, sink: DiagnosticSink
    ) -> ResolvedConfiguration {
        var entries: [String: ConfigurationEntry] = [:]
        var order: [String] = []
        var secretEntries: [String: [String: ConfigurationEntry]] = [:]
        // The layer that wins each value, for ``sources``.
        var entryLayers: [String: String] = [:]
        var secretLayers: [String: [String: String]] = [:]
        for layer in layers {
            for (key, entry) in layer.entries {
                if entries.updateValue(entry, forKey: key) == nil { order.append(key) }
                entryLayers[key] = layer.name
            }
            for (scope, key, entry) in layer.secrets {
                secretEntries[scope, default: [:]][key] = entry
                secretLayers[scope, default: [:]][key] = layer.name
            }
        }

        var raw: [String: Value] = [:]
        var unavailable = layers.reduce(into: Set<String>()) { $0.formUnion($1.unavailable) }
        for key in order {
            if let value = evaluate(entries[key]!, name: key, isSecret: false, environment: environment, sources: sources, sink: sink) {
                raw[key] = value
            } else {
                unavailable.insert(key)
            }
        }
        var secrets: [String: [String: Value]] = [:]
        // Every secret is masked in every string a run writes: thousands would make that slow.
        let secretCount = secretEntries.values.reduce(0) { $0 + $1.count }
        if secretCount > Self.mostSecrets {
            let first = secretEntries.values.flatMap { $0.values.compactMap(\.location) }
                .min { ($0.file, $0.line, $0.column) < ($1.file, $1.line, $1.column) }
            sink.report(
                Diagnostic(
                    "\(secretCount) secrets: more than \(Self.mostSecrets)", at: first,
                    hint: "a run needs a few secrets; keep other values under configuration:"))
            secretEntries = [:]
        }
        for (scope, keys) in secretEntries {
            for (key, entry) in keys {
                if let value = evaluate(entry, name: "\(scope).\(key)", isSecret: true, environment: environment, sources: sources, sink: sink) {
                    secrets[scope, default: [:]][key] = value
                } else {
                    unavailable.insert(key)
                }
            }
        }
        sink.addSecrets(secrets)

        // Configuration values may refer to each other: `url: http://${host}:${port}`. Each value
        // is resolved after the ones it names, and then joins `known`, which later ones look up
        // (configuration over secrets, as ``substitution`` orders them).
        var resolved = ResolvedConfiguration(configuration: [:], secrets: secrets)
        resolved.unavailable = unavailable
        // Flattened as ``substitution`` flattens the values: secrets by scope, configuration over them.
        for scope in secretEntries.keys.sorted() {
            for (key, entry) in secretEntries[scope]! where secrets[scope]?[key] != nil {
                resolved.sources[key] = ValueSource(
                    name: key, entry: entry, layer: secretLayers[scope]?[key] ?? "?", isSecret: true, environment: environment)
            }
        }
        for key in order where raw[key] != nil {
            if let entry = entries[key] {
                resolved.sources[key] = ValueSource(
                    name: key, entry: entry, layer: entryLayers[key] ?? "?", isSecret: false, environment: environment)
            }
        }
        var known = resolved.substitution
        known.budget = SubstitutionBudget(total: InputLimits.documents.substitutionTotal)
        var state: [String: Bool] = [:]  // false = in progress, true = done
        func location(_ key: String) -> SourceLocation? {
            switch entries[key]! {
            case .literal(let node): node.location
            case .evaluated(_, let location), .environment(_, _, _, let location): location
            case .resolved: nil
            }
        }
        func resolveKey(_ key: String, depth: Int) -> Value? {
            if state[key] == true { return resolved.configuration[key] }
            if state[key] == false {
                sink.report(
                    Diagnostic(
                        "configuration \"\(key)\" refers to itself through ${…}", at: location(key),
                        path: DocumentPath([.key("configuration"), .key(key)]), hint: "break the cycle"))
                return nil
            }
            guard let value = raw[key] else { return nil }
            state[key] = false
            var result = value
            if case .resolved = entries[key]! {
            } else if depth >= Self.referenceDepth {
                sink.report(
                    Diagnostic(
                        "configuration \"\(key)\" is at the end of a chain of more than \(Self.referenceDepth) ${…} references", at: location(key),
                        path: DocumentPath([.key("configuration"), .key(key)]), hint: "refer to the values directly"))
            } else {
                let names = references(in: value)
                for name in names {
                    if raw[name] != nil {
                        _ = resolveKey(name, depth: depth + 1)
                    } else if let head = name.split(separator: ".").first.map(String.init), raw[head] != nil {
                        // A dotted lookup into a configuration object.
                        _ = resolveKey(head, depth: depth + 1)
                    }
                }
                let path = DocumentPath([.key("configuration"), .key(key)])
                do {
                    result = try known.substitute(value)
                } catch var diagnostic as Diagnostic {
                    // A value keeps no positions: point at the entry.
                    if diagnostic.location == nil { (diagnostic.location, diagnostic.path) = (location(key), path) }
                    sink.report(diagnostic)
                } catch {
                    sink.report(error, fallbackLocation: location(key), path: path)
                }
            }
            state[key] = true
            resolved.configuration[key] = result
            known.variables[key] = result
            return result
        }
        for key in order { _ = resolveKey(key, depth: 0) }
        return resolved
    }

    /// The longest chain of configuration values referring to each other that is resolved (each
    /// link is a level of recursion).
    static let referenceDepth = 64

    /// The most secret values a run may have.
    static let mostSecrets = 1000

    /// Evaluates one entry: reads the environment, or asks a plugin for a value of its type.
    /// - Returns: the value, or nil having reported why to `sink`.
    static func evaluate(
        _ entry: ConfigurationEntry, name: String, isSecret: Bool, environment: [String: String], sources: ConfigurationSources, sink: DiagnosticSink
    ) -> Value? {
        switch entry {
        case .literal(let node):
            if let type = node["type"]?.stringValue, sources.handles(type) {
                do {
                    return try sources.value(type: type, node: node, key: name)
                } catch {
                    sink.report(error, fallbackLocation: node.location, path: DocumentPath([.key("configuration"), .key(name)]))
                    return nil
                }
            }
            return node.value
        case .environment(let key, let defaultValue, let type, let location):
            guard let text = environment[key] else {
                if let defaultValue {
                    // chaoslib passes the default through env_var_type as it does the variable.
                    guard let type else { return defaultValue.value }
                    do {
                        return try type.convertDefault(defaultValue.value)
                    } catch {
                        sink.report(Diagnostic("default of environment variable \(key): \(error)", at: defaultValue.location))
                        return nil
                    }
                }
                sink.report(
                    Diagnostic(
                        "environment variable \(key) is not set (needed by \(isSecret ? "secret" : "configuration") \"\(name)\")", at: location,
                        hint: isSecret ? "export \(key)=…" : "export \(key)=…, add default: to the entry, or pass --var \(name)=…"))
                return nil
            }
            guard let type else { return .string(text) }
            do {
                return try type.convert(text)
            } catch {
                sink.report(Diagnostic("environment variable \(key): \(error)", at: location))
                return nil
            }
        case .evaluated(let value, _), .resolved(let value):
            return value
        }
    }

    private static func references(in value: Value) -> [String] {
        var names: [String] = []
        _ = value.mapStrings { s in
            names += Substitution.references(in: s)
            return .string(s)
        }
        return names
    }
}

/// A configuration value type a plugin defines: `port: {type: free_port}`.
///
/// ## Implementation requirements
/// The value may differ from call to call (a free port): a run's plan computes it once per entry,
/// so validation and the run see the same value.
public protocol ConfigurationProvider: Sendable {
    /// The `type:` that selects it.
    var type: String { get }
    /// Computes the value of one configuration entry.
    /// - Parameters:
    ///   - node: the entry as written (`{type: free_port, host: 127.0.0.1}`).
    ///   - key: the configuration key, for messages.
    func value(for node: SourceNode, key: String) throws -> Value
}

/// The plugin-defined configuration types of a run.
public final class ConfigurationSources: Sendable {
    private let providers: [String: any ConfigurationProvider]

    public init(providers: [String: any ConfigurationProvider]) { self.providers = providers }

    /// No plugin-defined types.
    public static let none = ConfigurationSources(providers: [:])

    func handles(_ type: String) -> Bool { providers[type] != nil }

    /// Computes the value of one entry of a plugin-defined type.
    func value(type: String, node: SourceNode, key: String) throws -> Value {
        try providers[type]!.value(for: node, key: key)
    }
}

extension ConfigurationLayer {
    /// This layer with every entry the `later` layers do not override evaluated (the environment
    /// read, a plugin's value computed), so that resolving it again reads and computes nothing.
    /// The values keep their `${…}` references, which resolve against the other layers.
    func evaluated(
        under later: [ConfigurationLayer], environment: [String: String], sources: ConfigurationSources, sink: DiagnosticSink
    ) -> ConfigurationLayer {
        let overridden = Set(later.flatMap { $0.entries.map(\.key) })
        let overriddenSecrets = Set(later.flatMap { $0.secrets.map { [$0.scope, $0.key] } })
        var layer = ConfigurationLayer(name: name)
        for (key, entry) in entries where !overridden.contains(key) {
            if let value = ResolvedConfiguration.evaluate(entry, name: key, isSecret: false, environment: environment, sources: sources, sink: sink) {
                layer.entries.append((key, .evaluated(value, location: entry.location)))
            } else {
                layer.unavailable.insert(key)
            }
        }
        for (scope, key, entry) in secrets where !overriddenSecrets.contains([scope, key]) {
            if let value = ResolvedConfiguration.evaluate(
                entry, name: "\(scope).\(key)", isSecret: true, environment: environment, sources: sources, sink: sink)
            {
                layer.secrets.append((scope, key, .evaluated(value, location: entry.location)))
            } else {
                layer.unavailable.insert(key)
            }
        }
        return layer
    }
}

extension ConfigurationEntry {
    /// Where the entry is written, if it is.
    var location: SourceLocation? {
        switch self {
        case .literal(let node): node.location
        case .environment(_, _, _, let location), .evaluated(_, let location): location
        case .resolved: nil
        }
    }
}
