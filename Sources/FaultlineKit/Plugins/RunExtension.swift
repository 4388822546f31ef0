import Logging
import Synchronization

/// A long-lived part of a run that a plugin brings up before the experiments and tears down after
/// them: the services a suite starts, for instance.
///
/// ## Implementation requirements
/// - ``start(_:)`` either succeeds with everything up, or fails having stopped what it started.
/// - The returned handle's ``RunExtensionHandle/stop()`` is idempotent and runs on every path out
///   of a run: success, failure, SIGINT and SIGTERM.
public protocol RunExtension: Sendable {
    /// For messages.
    var name: String { get }
    /// Top-level suite keys this extension reads (e.g. `services`).
    var suiteKeys: [String] { get }
    /// Start order among extensions; lower starts first and stops last. Proxies are 0.
    var order: Int { get }

    /// Checks the extension's suite sections at load time, reporting to `sink`.
    func validate(_ sections: [String: SourceNode], substitution: Substitution, sink: DiagnosticSink)
    /// Configuration values ``start(_:)`` will export, with example values of the right type, so
    /// that experiments referring to them validate before the run.
    func placeholders(_ sections: [String: SourceNode]) -> [String: Value]
    /// Brings up what the run needs. Returns nil when there is nothing to stop later.
    func start(_ setup: RunSetup) async throws -> (any RunExtensionHandle)?
}

extension RunExtension {
    public func placeholders(_ sections: [String: SourceNode]) -> [String: Value] { [:] }
}

/// A started run extension.
public protocol RunExtensionHandle: Sendable {
    /// Stops everything the extension started; returns problems worth reporting.
    func stop() async -> [String]
}

/// What a run extension gets when it starts, and where it publishes what it brought up.
public final class RunSetup: Sendable {
    /// The extension's suite sections, substituted.
    public let sections: [String: SourceNode]
    public let logger: Logger
    public let seed: UInt64
    /// Where service logs and other run files go (beside the journals).
    public let runDirectory: String
    private let state: Mutex<(configuration: [String: Value], resources: Resources)>
    private let progress: @Sendable (String) -> Void

    /// - Parameter progress: shows a setup step to the user (`service api ready (pid 123)`).
    public init(
        sections: [String: SourceNode], configuration: [String: Value], resources: Resources, logger: Logger, seed: UInt64, runDirectory: String,
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.sections = sections
        self.logger = logger
        self.seed = seed
        self.runDirectory = runDirectory
        self.progress = progress
        state = Mutex((configuration, resources))
    }

    /// Tells the user about a step of setup, as the run's progress shows proxies.
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
