import Logging
import Synchronization

/// A long-lived part of a run that a plugin brings up before the experiments and tears down after
/// them: the toxic backend and the suite's proxies, the services a suite starts.
///
/// A run extension owns top-level suite sections (``suiteKeys``, e.g. `services`) and profile
/// sections (``profileKeys``, e.g. `toxics`). When the plan is built it checks them and keeps what
/// it decoded (``plan(_:context:sink:)``); when the run starts, ``start(_:setup:)`` brings up what
/// that plan says. Extensions start stage by stage (``RunStage``), in registration order within a
/// stage, and stop in reverse.
///
/// ## Implementation requirements
/// - ``plan(_:context:sink:)`` reports every problem to the sink, with file:line:column, and
///   returns nil only when it reported an error.
/// - ``start(_:setup:)`` either succeeds with everything up, or fails having stopped what it
///   started (also when cancelled by an interrupt). An error that is a ``RunSetupFailure`` is
///   shown as it is; any other is prefixed with the extension's name.
/// - The returned handle's ``RunExtensionHandle/stop()`` is idempotent and runs on every path out
///   of a run: success, failure, SIGINT and SIGTERM.
public protocol RunExtension: Sendable {
    /// What ``plan(_:context:sink:)`` decodes from the sections, for ``start(_:setup:)``.
    associatedtype Plan: Sendable

    /// For messages.
    var name: String { get }
    /// When it starts relative to the other extensions.
    var stage: RunStage { get }
    /// Top-level suite keys this extension reads (e.g. `services`).
    var suiteKeys: [String] { get }
    /// Keys of a profile this extension reads (e.g. `toxics`).
    var profileKeys: [String] { get }

    /// Configuration values ``start(_:setup:)`` will export, with example values of the right
    /// type, so that experiments (and later extensions) referring to them validate before the run.
    /// Computed from the sections as written, even when they have errors.
    func placeholders(_ sections: RunSections) -> [String: Value]
    /// Checks the extension's sections when the plan is built and returns what ``start(_:setup:)``
    /// needs, or nil having reported errors to `sink` (which holds this extension's diagnostics
    /// only).
    func plan(_ sections: RunSections, context: RunPlanContext, sink: DiagnosticSink) -> Plan?
    /// Brings up what the run needs. Returns nil when there is nothing to stop later.
    func start(_ plan: Plan, setup: RunSetup) async throws -> (any RunExtensionHandle)?
}

extension RunExtension {
    public var profileKeys: [String] { [] }
    public func placeholders(_ sections: RunSections) -> [String: Value] { [:] }
}

/// When a run extension starts: every extension of a stage starts before any of a later stage,
/// and stops after them. The registry keeps its extensions in this order.
public enum RunStage: Int, Sendable, Comparable, CaseIterable {
    /// Toxic backends, the proxies on them, connections to fault servers. Nothing has started
    /// before them, so their sections may use only the shared configuration.
    case network
    /// What the suite starts for its experiments (processes); their sections may use what network
    /// extensions export, such as `${proxies.NAME.port}`.
    case services

    public static func < (a: RunStage, b: RunStage) -> Bool { a.rawValue < b.rawValue }
}

/// The sections of a suite and of its profile that one run extension owns.
public struct RunSections: Sendable {
    /// Top-level suite sections, by key.
    public var suite: [String: SourceNode]
    /// Sections of the run's profile, by key.
    public var profile: [String: SourceNode]
    /// The run's profile, for messages.
    public var profileName: String?

    public init(suite: [String: SourceNode] = [:], profile: [String: SourceNode] = [:], profileName: String? = nil) {
        self.suite = suite
        self.profile = profile
        self.profileName = profileName
    }

    /// A section by key, from the suite or else the profile.
    public subscript(key: String) -> SourceNode? { suite[key] ?? profile[key] }

    /// Where a section sits in its document, for messages: `proxies`, or `profiles.ci.toxics`.
    public func path(of key: String) -> DocumentPath {
        if suite[key] == nil, profile[key] != nil, let profileName {
            return DocumentPath([.key("profiles"), .key(profileName), .key(key)])
        }
        return DocumentPath([.key(key)])
    }

    /// The same sections with `${…}` substituted.
    func substituted(_ substitution: Substitution) throws -> RunSections {
        var copy = self
        for (key, node) in suite { copy.suite[key] = try substitution.substitute(node, path: path(of: key)) }
        for (key, node) in profile { copy.profile[key] = try substitution.substitute(node, path: path(of: key)) }
        return copy
    }
}

extension RunSections: ExpressibleByDictionaryLiteral {
    /// Suite sections by key: `["services": node]`.
    public init(dictionaryLiteral elements: (String, SourceNode)...) {
        var suite: [String: SourceNode] = [:]
        for (key, node) in elements { suite[key] = node }
        self.init(suite: suite, profile: [:], profileName: nil)
    }
}

/// What a run extension gets when the plan is built.
public struct RunPlanContext: Sendable {
    /// The shared configuration, and example values of what the extensions that start earlier
    /// will export: what the sections will be substituted with when the extension starts.
    public let substitution: Substitution
    /// The shared configuration only, for sections decoded once, here, by an extension that
    /// nothing starts before.
    public let shared: Substitution
    /// Every plugin's registrations (toxic backends, toxic types, …).
    public let registry: PluginRegistry

    public init(substitution: Substitution, shared: Substitution, registry: PluginRegistry) {
        self.substitution = substitution
        self.shared = shared
        self.registry = registry
    }
}

/// A started run extension.
public protocol RunExtensionHandle: Sendable {
    /// Stops everything the extension started; returns problems worth reporting.
    func stop() async -> [String]
}

/// A failure to start whose message already names what failed (`toxic backend toxiproxy: …`),
/// shown as it is rather than after the extension's name.
public struct RunSetupFailure: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

/// What a run extension gets when it starts, and where it publishes what it brought up.
public final class RunSetup: Sendable {
    /// The extension's sections, substituted with the shared configuration and what earlier
    /// extensions exported.
    public let sections: RunSections
    /// The run's logger (secrets masked).
    public let logger: Logger
    public let seed: UInt64
    /// Where service logs and other run files go (beside the journals).
    public let runDirectory: String
    /// The environment `{type: env}` reads (normally the process environment).
    public let environment: [String: String]
    /// Every plugin's registrations (toxic backends, toxic types, …).
    public let registry: PluginRegistry
    private let state: Mutex<(configuration: [String: Value], resources: Resources)>
    private let progress: @Sendable (String) -> Void

    /// - Parameter progress: shows a setup step to the user (`service api ready (pid 123)`).
    public init(
        sections: RunSections = [:], configuration: [String: Value], resources: Resources, logger: Logger, seed: UInt64, runDirectory: String,
        environment: [String: String] = [:], registry: PluginRegistry = PluginRegistry(), progress: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.sections = sections
        self.logger = logger
        self.seed = seed
        self.runDirectory = runDirectory
        self.environment = environment
        self.registry = registry
        self.progress = progress
        state = Mutex((configuration, resources))
    }

    /// Tells the user about a step of setup (`proxy store → 127.0.0.1:6379`).
    public func step(_ text: String) { progress(text) }

    /// The configuration as it stands (with exports of earlier extensions).
    public var configuration: [String: Value] { state.withLock { $0.configuration } }
    public var resources: Resources { state.withLock { $0.resources } }

    /// Publishes a configuration value to the experiments, e.g. a bound port.
    public func export(_ key: String, _ value: Value) { state.withLock { $0.configuration[key] = value } }

    func replaceResources(_ resources: Resources) { state.withLock { $0.resources = resources } }

    /// Publishes a shared service to the experiments' activities.
    public func provide<K: ResourceKey>(_ key: K.Type, _ value: K.Value) { state.withLock { $0.resources[key] = value } }
}

/// A run extension with its sections planned: what the lifecycle starts.
public struct PlannedExtension: Sendable {
    public let name: String
    public let stage: RunStage
    /// Its sections as written; the lifecycle substitutes them when the extension starts.
    public let sections: RunSections
    /// Example values of what it will export, which the plan validated experiments against.
    public let placeholders: [String: Value]
    private let starter: @Sendable (RunSetup) async throws -> (any RunExtensionHandle)?

    /// Plans one extension (opening its `Plan` type); nil when its sections have errors, which
    /// are reported to `sink`.
    static func plan<E: RunExtension>(
        _ runExtension: E, sections: RunSections, placeholders: [String: Value], context: RunPlanContext, sink: DiagnosticSink
    ) -> PlannedExtension? {
        let own = DiagnosticSink()
        let plan = runExtension.plan(sections, context: context, sink: own)
        own.diagnostics.forEach(sink.report)
        guard let plan, !own.hasErrors else {
            if !own.hasErrors { sink.report(Diagnostic("\(runExtension.name): its sections could not be planned")) }
            return nil
        }
        return PlannedExtension(
            name: runExtension.name, stage: runExtension.stage, sections: sections, placeholders: placeholders,
            starter: { setup in try await runExtension.start(plan, setup: setup) })
    }

    /// Starts the extension.
    func start(_ setup: RunSetup) async throws -> (any RunExtensionHandle)? { try await starter(setup) }
}
