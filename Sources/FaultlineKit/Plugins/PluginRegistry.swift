/// A plugin module: registers its providers, toxics, reporters and run extensions at startup.
///
/// Registration is explicit and value-typed: `main` lists the plugins, the registry is built once
/// from the list and passed down. There is no global registry and no dynamic loading.
public protocol FaultlinePlugin: Sendable {
    /// The plugin's name, for `faultline plugins`.
    static var name: String { get }
    /// Adds the plugin's parts to the registry.
    static func register(into registry: inout PluginRegistry)
}

/// Everything the plugins registered: providers by type and kind, toxics, reporters, run
/// extensions and toxic backends.
///
/// Registering a name twice replaces the earlier entry, so a custom binary can override a built-in.
/// The registry names no plugin: which toxic backend is the default, for instance, is whichever a
/// plugin registered with `isDefault: true`.
public struct PluginRegistry: Sendable {
    public struct ProviderKey: Hashable, Sendable {
        public var type: String
        public var kind: ActivityKind
    }

    public private(set) var providers: [ProviderKey: ProviderDescriptor] = [:]
    public private(set) var toxics: [String: ToxicDescriptor] = [:]
    public private(set) var reporters: [String: any Reporter] = [:]
    /// In start order: by ``RunStage``, then in registration order.
    public private(set) var runExtensions: [any RunExtension] = []
    public private(set) var toxicBackends: [String: any ToxicBackendFactory] = [:]
    /// The backend a run uses when its profile names none: the last one registered as the default.
    public private(set) var defaultToxicBackend: String?
    /// Configuration value types plugins define (`{type: free_port}`).
    public private(set) var configurationProviders: [String: any ConfigurationProvider] = [:]
    /// Plugin names, in registration order.
    public private(set) var pluginNames: [String] = []
    /// How to undo each kind of ledger entry a dead run left, by kind.
    public private(set) var recoveries: [String: LedgerRecoveryDescriptor] = [:]
    /// The plugin that registered each provider type or toxic, for listings.
    public private(set) var owners: [String: String] = [:]
    private var currentPlugin = "(direct)"

    public init() {}

    /// Builds a registry from a list of plugins, in order.
    public init(plugins: [any FaultlinePlugin.Type]) {
        for plugin in plugins { add(plugin) }
    }

    /// Registers one plugin.
    public mutating func add(_ plugin: any FaultlinePlugin.Type) {
        currentPlugin = plugin.name
        pluginNames.append(plugin.name)
        plugin.register(into: &self)
        currentPlugin = "(direct)"
    }

    // MARK: Registration

    /// Registers a probe under its ``Provider/type``.
    public mutating func register<P: Probe>(probe: P) {
        register(ProviderDescriptor(probe: probe, lookupName: P.type, pythonName: nil))
    }

    /// Registers an action under its ``Provider/type``.
    public mutating func register<A: Action>(action: A) {
        register(ProviderDescriptor(action: action, lookupName: A.type, pythonName: nil))
    }

    /// Registers a probe as the implementation of a Chaos Toolkit python function, so that
    /// `provider: {type: python, module: M, func: F, arguments: {...}}` runs it; `arguments`
    /// decode into the probe's arguments.
    public mutating func register<P: Probe>(probe: P, asPythonFunction function: String, inModule module: String) {
        register(ProviderDescriptor(probe: probe, lookupName: "python:\(module).\(function)", pythonName: "\(module).\(function)"))
    }

    /// Registers an action as the implementation of a Chaos Toolkit python function.
    public mutating func register<A: Action>(action: A, asPythonFunction function: String, inModule module: String) {
        register(ProviderDescriptor(action: action, lookupName: "python:\(module).\(function)", pythonName: "\(module).\(function)"))
    }

    private mutating func register(_ descriptor: ProviderDescriptor) {
        providers[ProviderKey(type: descriptor.type, kind: descriptor.kind)] = descriptor
        owners[descriptor.type] = currentPlugin
    }

    /// Registers a toxic type.
    public mutating func register<T: Toxic>(toxic: T.Type) {
        toxics[T.type] = ToxicDescriptor(toxic)
        owners["toxic:\(T.type)"] = currentPlugin
    }

    public mutating func register(reporter: some Reporter) {
        reporters[reporter.format] = reporter
    }

    /// Registers a run extension. It starts after every extension of an earlier ``RunStage`` and
    /// of its own stage registered before it; registering a name again replaces the extension in
    /// its place (so plugins that share one, like ``ToxicBackendExtension``, may each register it).
    public mutating func register(extension runExtension: some RunExtension) {
        if let index = runExtensions.firstIndex(where: { $0.name == runExtension.name && $0.stage == runExtension.stage }) {
            runExtensions[index] = runExtension
            return
        }
        runExtensions.removeAll { $0.name == runExtension.name }
        let position = runExtensions.firstIndex { $0.stage > runExtension.stage } ?? runExtensions.endIndex
        runExtensions.insert(runExtension, at: position)
    }

    /// Registers a toxic backend under its ``ToxicBackendFactory/name``.
    /// - Parameter isDefault: whether runs use it when their profile names no backend.
    public mutating func register(toxicBackend factory: some ToxicBackendFactory, isDefault: Bool = false) {
        toxicBackends[factory.name] = factory
        if isDefault { defaultToxicBackend = factory.name }
    }

    /// Registers how to undo a kind of ledger entry (``LedgerEntry``) a dead run left.
    public mutating func register(recovery: some LedgerRecovery) {
        let descriptor = LedgerRecoveryDescriptor(recovery)
        recoveries[descriptor.kind] = descriptor
    }

    public mutating func register(configurationProvider provider: some ConfigurationProvider) {
        configurationProviders[provider.type] = provider
    }

    // MARK: Lookup

    /// The provider for a type and kind.
    public func provider(_ type: String, kind: ActivityKind) -> ProviderDescriptor? {
        providers[ProviderKey(type: type, kind: kind)]
    }

    /// Every provider type name (python functions excluded), sorted.
    public var providerTypes: [String] {
        Set(providers.values.filter { $0.pythonName == nil }.map(\.type)).sorted()
    }

    /// The python modules with registered functions, sorted.
    public var pythonModules: [String] {
        Set(providers.values.compactMap { $0.pythonName.map { String($0[..<$0.lastIndex(of: ".")!]) } }).sorted()
    }

    /// Every suite key some run extension reads.
    public var extensionSuiteKeys: [String] { runExtensions.flatMap(\.suiteKeys) }

    /// Every profile key some run extension reads.
    public var extensionProfileKeys: [String] { runExtensions.flatMap(\.profileKeys) }
}

/// A provider with its arguments type erased: how the engine prepares and calls it.
public struct ProviderDescriptor: Sendable {
    public let type: String
    public let kind: ActivityKind
    public let summary: String
    public let handlesDryRun: Bool
    /// `module.func` for Chaos Toolkit python functions.
    public let pythonName: String?
    public let argumentHelp: [String: String]
    /// The provider's ``Provider/visibleArgumentKeys``.
    public let visibleArgumentKeys: [String]
    /// The provider's ``Provider/isSuccess(_:)``.
    let successJudge: @Sendable (Value) -> Bool?
    let schemaMaker: @Sendable () -> ArgumentSchema
    let preparer: @Sendable (SourceNode, DocumentPath, DiagnosticSink?, PluginRegistry) throws -> PreparedInvocation
    let toleranceParser: (@Sendable (SourceNode, DocumentPath) throws -> (any ToleranceCheck)?)?

    /// The provider's arguments, for listings.
    public var schema: ArgumentSchema { schemaMaker() }

    init<P: Probe>(probe: P, lookupName: String, pythonName: String?) {
        type = lookupName
        kind = .probe
        summary = P.summary
        handlesDryRun = P.handlesDryRun
        self.pythonName = pythonName
        argumentHelp = P.argumentHelp
        visibleArgumentKeys = P.visibleArgumentKeys
        successJudge = { P.isSuccess($0) }
        schemaMaker = { ArgumentSchema.of(P.Arguments.self, help: P.argumentHelp) }
        preparer = { node, path, sink, registry in
            let arguments = try Self.decode(P.self, node, path, sink, registry)
            return PreparedInvocation(exports: P.exports(arguments), timeLimit: P.timeLimit(arguments)) { context in
                try await probe.probe(arguments, context: context)
            }
        }
        if let custom = P.self as? any ToleranceProviding.Type {
            toleranceParser = { node, path in try custom.tolerance(from: node, path: path) }
        } else {
            toleranceParser = nil
        }
    }

    init<A: Action>(action: A, lookupName: String, pythonName: String?) {
        type = lookupName
        kind = .action
        summary = A.summary
        handlesDryRun = A.handlesDryRun
        self.pythonName = pythonName
        argumentHelp = A.argumentHelp
        visibleArgumentKeys = A.visibleArgumentKeys
        successJudge = { A.isSuccess($0) }
        schemaMaker = { ArgumentSchema.of(A.Arguments.self, help: A.argumentHelp) }
        preparer = { node, path, sink, registry in
            let arguments = try Self.decode(A.self, node, path, sink, registry)
            return PreparedInvocation(exports: A.exports(arguments), timeLimit: A.timeLimit(arguments)) { context in
                try await action.perform(arguments, context: context)
            }
        }
        toleranceParser = nil
    }

    private static func decode<P: Provider>(
        _ provider: P.Type, _ node: SourceNode, _ path: DocumentPath, _ sink: DiagnosticSink?, _ registry: PluginRegistry
    ) throws -> P.Arguments {
        var arguments = try NodeDecoder().decode(P.Arguments.self, from: node, path: path, sink: sink)
        if let sink {
            for warning in P.warnings(arguments) {
                var diagnostic = warning.located(in: node, path: path)
                diagnostic.severity = .warning
                sink.report(diagnostic)
            }
        }
        do {
            try P.validate(arguments)
            if let checker = P.self as? any RegistryValidating.Type {
                arguments = try checker.prepare(any: arguments, registry: registry) as! P.Arguments
            }
        } catch let error as ArgumentError {
            throw error.located(in: node, path: path)
        }
        return arguments
    }

    /// Whether an output of the provider means success (``Provider/isSuccess(_:)``), else its truthiness.
    public func isSuccess(_ output: Value) -> Bool { successJudge(output) ?? output.isTruthy }

    /// Decodes and checks arguments without running anything.
    /// - Returns: configuration keys the activity will export.
    public func prepare(_ arguments: SourceNode, path: DocumentPath, sink: DiagnosticSink?, registry: PluginRegistry) throws -> PreparedInvocation {
        try preparer(arguments, path, sink, registry)
    }
}

/// A provider whose validation needs the registry (e.g. the `toxic` action checks attributes
/// against the registered toxic type).
public protocol RegistryValidating: Provider {
    static func validate(_ arguments: Arguments, registry: PluginRegistry) throws
    /// The arguments checked against the registry and completed with what the check produced
    /// (the `toxic` action keeps its decoded attributes, so they are not decoded again when the
    /// toxic is added). The default validates and returns the arguments unchanged.
    static func prepare(_ arguments: Arguments, registry: PluginRegistry) throws -> Arguments
}

extension RegistryValidating {
    public static func prepare(_ arguments: Arguments, registry: PluginRegistry) throws -> Arguments {
        try validate(arguments, registry: registry)
        return arguments
    }

    static func prepare(any arguments: Any, registry: PluginRegistry) throws -> Any {
        try prepare(arguments as! Arguments, registry: registry)
    }
}

/// A prepared call of a provider with decoded arguments.
public struct PreparedInvocation: Sendable {
    public let exports: [String: Value]
    /// The provider's own hard limit, seconds (``Provider/timeLimit(_:)``).
    public let timeLimit: Double?
    let invoke: @Sendable (ActivityContext) async throws -> Value

    /// Runs the provider.
    public func callAsFunction(_ context: ActivityContext) async throws -> Value { try await invoke(context) }
}

/// A toxic type with its attributes type erased.
public struct ToxicDescriptor: Sendable {
    public let type: String
    public let summary: String
    public let attributeHelp: [String: String]
    /// Whether the type acts on HTTP requests (an ``HTTPToxic``) rather than bytes.
    public let isHTTP: Bool
    /// The directions the type acts on (``Toxic/streams``).
    public let streams: [ToxicStream]
    let schemaMaker: @Sendable () -> ArgumentSchema
    /// The one place attributes are decoded, validated and encoded back with their defaults.
    let preparer: @Sendable (SourceNode, DocumentPath, DiagnosticSink?, _ locate: Bool) throws -> PreparedToxic

    init<T: Toxic>(_ toxic: T.Type) {
        type = T.type
        summary = T.summary
        attributeHelp = T.attributeHelp
        isHTTP = T.self is any HTTPToxic.Type
        streams = T.streams
        schemaMaker = { ArgumentSchema.of(T.Attributes.self, help: T.attributeHelp) }
        preparer = { node, path, sink, locate in
            let attributes = try NodeDecoder().decode(T.Attributes.self, from: node, path: path, sink: sink)
            do {
                try T.validate(attributes)
            } catch let error as ArgumentError where locate {
                throw error.located(in: node, path: path)
            }
            return PreparedToxic(
                type: T.type, attributes: try ValueEncoder().encode(attributes), typed: attributes,
                stageMaker: { random in T.makeStage(attributes, random: random) },
                http: (T.self as? any HTTPToxic.Type).map { HTTPToxicRule($0, attributes) })
        }
    }

    /// Why the type cannot act on `stream`; nil when it can.
    public func streamProblem(_ stream: ToxicStream) -> String? {
        guard !streams.contains(stream) else { return nil }
        let allowed = streams.map(\.rawValue).joined(separator: " or ")
        return "\(type) acts on the \(allowed) stream only, not \(stream.rawValue)"
            + (isHTTP && streams == [.downstream] ? " (it changes responses, which flow downstream)" : "")
    }

    /// The attributes, for listings.
    public var schema: ArgumentSchema { schemaMaker() }

    /// The attribute names the type reads.
    public var attributeNames: [String] { schema.fields.map(\.name) }

    /// Decodes and validates attributes, returning them with every default filled in (as
    /// Toxiproxy echoes them).
    public func normalize(_ attributes: SourceNode, path: DocumentPath, sink: DiagnosticSink? = nil) throws -> Value {
        try preparer(attributes, path, sink, true).attributes
    }

    /// Decodes and validates attributes given as a plain value.
    public func normalize(_ attributes: Value) throws -> Value {
        try preparer(SourceNode(attributes, at: nil), .root, nil, true).attributes
    }

    /// Decodes and validates attributes once, for a proxy that makes a stage per connection.
    /// - Throws: the toxic's own ``ArgumentError`` as it is, or a ``Diagnostic`` for a decoding error.
    public func prepare(_ attributes: Value) throws -> PreparedToxic {
        try preparer(SourceNode(attributes, at: nil), .root, nil, false)
    }

    /// Decodes and validates attributes written in a document, pointing at the attribute at fault.
    public func prepare(_ attributes: SourceNode, path: DocumentPath) throws -> PreparedToxic {
        try preparer(attributes, path, nil, true)
    }
}

/// A toxic's attributes decoded and validated once, ready to make stages for many connections.
public struct PreparedToxic: Sendable {
    /// The toxic type the attributes belong to.
    public let type: String
    /// The attributes with every default filled in, as the API echoes them.
    public let attributes: Value
    /// The toxic's typed `Attributes`, for ``ToxicStage/update(_:link:)``.
    public let typed: any Sendable
    let stageMaker: @Sendable (SeededRandom) -> any ToxicStage
    /// For an ``HTTPToxic``: what it matches and does per request; nil for a byte-stream toxic.
    public let http: HTTPToxicRule?

    /// Makes a stage for one link (on the link's thread).
    public func makeStage(random: SeededRandom) -> any ToxicStage { stageMaker(random) }
}

/// An ``HTTPToxic`` with its attributes bound: what a proxy asks per request.
public struct HTTPToxicRule: Sendable {
    /// The requests the toxic may act on.
    public let match: HTTPRequestMatch
    private let faultMaker: @Sendable (HTTPToxicRequest, inout SeededRandom) -> HTTPFault
    private let toxicityMaker: @Sendable (HTTPToxicRequest, Double) -> Double?
    private let streamChecker: @Sendable (ToxicStream) -> String?

    init<H: HTTPToxic>(_ type: H.Type, _ attributes: Any) {
        let attributes = attributes as! H.Attributes
        match = H.match(attributes)
        faultMaker = { request, random in H.fault(attributes, request: request, random: &random) }
        toxicityMaker = { request, configured in H.toxicity(attributes, request: request, configured: configured) }
        streamChecker = { stream in H.streamProblem(attributes, stream: stream) }
    }

    /// The toxic's fault for one request it applies to.
    public func fault(for request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault { faultMaker(request, &random) }

    /// The probability of acting on this matching request; nil when the toxic does not apply to it.
    public func toxicity(for request: HTTPToxicRequest, configured: Double) -> Double? { toxicityMaker(request, configured) }

    /// Why the attributes cannot act on `stream`, or nil.
    public func streamProblem(_ stream: ToxicStream) -> String? { streamChecker(stream) }
}

extension ArgumentError {
    /// The diagnostic pointing at the argument's node (or at `node` when the key is not in it), or
    /// at ``location`` when the error knows it.
    public func located(in node: SourceNode, path: DocumentPath) -> Diagnostic {
        var target = node
        var targetPath = path
        for component in (key ?? "").split(separator: ".").map(String.init) where !component.isEmpty {
            // A number steps into a list (`requests.1.url`), a name into an object.
            if let index = Int(component), let elements = target.elements {
                guard elements.indices.contains(index) else { break }
                target = elements[index]
                targetPath = targetPath.appending(index)
                continue
            }
            guard let child = target[component] else { break }
            target = child
            targetPath = targetPath.appending(component)
        }
        return Diagnostic(message, at: location ?? target.location ?? node.location, path: targetPath, hint: hint)
    }
}
