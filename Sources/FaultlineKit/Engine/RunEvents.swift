import Foundation

/// What happens during a run, as it happens: for live progress and for reporters that watch.
public enum RunEvent: Sendable {
    case suiteStarted(name: String, profile: String?, experiments: Int)
    case setupStep(String)
    case experimentStarted(title: String, origin: String, index: Int, total: Int)
    case phaseStarted(Phase)
    case activityStarted(name: String, kind: ActivityKind, phase: Phase, background: Bool)
    case activityFinished(ActivityResult)
    /// A pause before (`before: true`) or after an activity.
    case pausing(activity: String, seconds: Double, before: Bool)
    case cleanupFinished(CleanupRecord)
    /// A fault window began (a toxic, a kill): its label as it began, no end yet.
    case faultStarted(FaultWindow)
    /// A fault window ended, with its end; the run's end closes those still open.
    case faultEnded(FaultWindow)
    case interrupted(signal: String, count: Int)
    case experimentFinished(Journal)
    case warning(String)

    /// Where in the run an event belongs.
    public enum Phase: String, Sendable {
        case hypothesisBefore = "steady-state hypothesis (before)"
        case method
        case hypothesisDuring = "steady-state hypothesis (during)"
        case hypothesisAfter = "steady-state hypothesis (after)"
        case rollbacks
        case cleanup

        /// The phase the journal records an activity of this part under; nil for cleanups,
        /// which the journal keeps under `cleanup`.
        var recordPhase: RunRecord.Phase? {
            switch self {
            case .hypothesisBefore, .hypothesisDuring, .hypothesisAfter: .hypothesis
            case .method: .method
            case .rollbacks: .rollbacks
            case .cleanup: nil
            }
        }
    }

    /// How one activity ended, for progress lines.
    public struct ActivityResult: Sendable {
        public var name: String
        public var kind: ActivityKind
        public var phase: Phase
        public var status: RecordStatus
        public var duration: Double
        public var toleranceMet: Bool?
        /// The failure or tolerance message.
        public var message: String?
        public var background: Bool
        /// The provider's `type` (`http.load`, …) and the output as journalled (secrets masked),
        /// so the console can summarise a load when it ends.
        public var providerType: String? = nil
        public var output: Value? = nil
    }
}

/// Receives run events. Called from the engine's tasks; must not block.
public protocol RunObserver: Sendable {
    func handle(_ event: RunEvent)
}

/// An observer that ignores everything.
public struct SilentObserver: RunObserver {
    public init() {}
    public func handle(_ event: RunEvent) {}
}

/// Several observers as one: each event goes to each, in order.
public struct RunObservers: RunObserver {
    public let observers: [any RunObserver]

    public init(_ observers: [any RunObserver]) { self.observers = observers }

    public func handle(_ event: RunEvent) {
        for observer in observers { observer.handle(event) }
    }
}
