/// Whether an activity observes (probe) or changes (action) the system.
public enum ActivityKind: String, Sendable, Codable, CaseIterable {
    case probe, action
}

/// A chaos experiment in Chaos Toolkit's model, as loaded (before substitution).
///
/// Parts whose meaning depends on configuration (provider arguments, tolerances, pauses,
/// timeouts) are kept as ``SourceNode``s and checked by ``ExperimentValidator`` once configuration
/// is known, so that their errors still point at the file.
public struct Experiment: Sendable {
    /// The document as written; the journal keeps this (with secrets masked).
    public var document: SourceNode
    /// The file it came from, or a description such as `experiments.yaml (experiments[2])`.
    public var origin: String
    public var version: String?
    public var title: String
    public var description: String?
    public var tags: [String]
    public var contributions: [String: String]
    public var configuration: ConfigurationLayer
    public var extensions: [Value]
    public var hypothesis: Hypothesis?
    public var method: [Activity]
    public var rollbacks: [Activity]
    public var runtime: Runtime

    /// The steady-state hypothesis: probes with tolerances.
    public struct Hypothesis: Sendable {
        public var title: String
        public var probes: [Activity]
        public var location: SourceLocation?
    }

    /// `runtime:` — strategies an experiment asks for (the command line wins).
    public struct Runtime: Sendable, Decodable {
        public struct Rollbacks: Sendable, Decodable {
            public var strategy: RollbackStrategy?
        }
        public struct HypothesisRuntime: Sendable, Decodable, NumberRanges {
            public static let numberRanges: [String: NumberRange] = ["frequency": .seconds]
            public var strategy: HypothesisStrategy?
            /// Seconds between iterations of a `continuously`/`during-method-only` hypothesis.
            public var frequency: Double?
            public var fail_fast: Bool?
        }
        /// Chaos Toolkit 1.21's `runtime.python`: the Python version and packages `chaos run`
        /// prepares with uv. Read so that its shape is checked as Chaos Toolkit checks it; ignored.
        public struct PythonRuntime: Sendable, Decodable {
            public var version: String?
            public var dependencies: [String]?
            public var isolated: Bool?
        }
        public var rollbacks: Rollbacks?
        public var hypothesis: HypothesisRuntime?
        public var python: PythonRuntime?

        public init() {}
    }
}

/// When rollbacks play (Chaos Toolkit's names).
public enum RollbackStrategy: String, Sendable, Codable, CaseIterable {
    /// When any method activity started, including after an interrupt or a failure.
    case `default`
    /// Always, even when the gate hypothesis failed before the method.
    case always
    case never
    /// Only when the experiment deviated.
    case deviated
}

/// When the steady-state hypothesis is checked.
public enum HypothesisStrategy: String, Sendable, Codable, CaseIterable {
    case `default`
    case beforeMethodOnly = "before-method-only"
    case afterMethodOnly = "after-method-only"
    case duringMethodOnly = "during-method-only"
    case continuously

    var before: Bool { self == .default || self == .beforeMethodOnly || self == .continuously }
    var during: Bool { self == .duringMethodOnly || self == .continuously }
    var after: Bool { self == .default || self == .afterMethodOnly || self == .continuously }
}

/// A probe or action in the hypothesis, method or rollbacks.
public struct Activity: Sendable {
    public var kind: ActivityKind
    public var name: String
    public var provider: ProviderReference
    /// As written; parsed after substitution.
    public var tolerance: SourceNode?
    public var pauseBefore: SourceNode?
    public var pauseAfter: SourceNode?
    public var background: Bool
    /// Seconds, as written (a number or a `${var}`).
    public var timeout: SourceNode?
    /// The activity as written, for the journal (a `ref` shows the referenced definition).
    public var document: SourceNode
    /// Where it was written (the `ref`, for a reference).
    public var location: SourceLocation?
    public var path: DocumentPath
    /// The name it referenced, when written as `{ref: name}`.
    public var referencedName: String?
}

/// The `provider:` of an activity: a registered type and its arguments.
public struct ProviderReference: Sendable {
    /// A registered provider type (`http`, `process`, `toxic`), or `python` with module and func.
    public var type: String
    /// `module` and `func` of a Chaos Toolkit python provider.
    public var python: (module: String, function: String)?
    /// The arguments: the provider object without `type` and `secrets` (for python providers, its
    /// `arguments` member).
    public var arguments: SourceNode
    public var location: SourceLocation?
    /// Where the `type` value was written.
    public var typeLocation: SourceLocation?
    public var path: DocumentPath

    /// The name a registry lookup uses: the type, or `python:module.func`.
    public var lookupName: String {
        if let python { return "python:\(python.module).\(python.function)" }
        return type
    }
}
