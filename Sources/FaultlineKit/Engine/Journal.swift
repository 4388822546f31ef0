import Foundation

/// The record of one experiment run, in Chaos Toolkit's journal layout plus Faultline's own keys.
///
/// Chaos Toolkit's keys keep their names and meaning (`experiment`, `start`, `end`, `duration`,
/// `status`, `deviated`, `steady_states`, `run`, `rollbacks`), so tools that read its journals
/// read ours. Ours are additions: `faultline_version`, `run_id`, `experiment_hash`, `profile`,
/// `seed`, `outcome`, `reason`, `cleanup`, `faults`, `left_undone`, `ledger` and `recovery`.
public struct Journal: Sendable, Codable {
    public var faultlineVersion: String
    public var platform: String
    public var node: String
    public var runID: String
    public var experimentHash: String
    public var profile: String?
    public var origin: String
    public var seed: UInt64
    public var dry: String?
    /// The experiment as written (unsubstituted), with secret values masked.
    public var experiment: Value
    public var start: Timestamp
    /// Chaos Toolkit's status: `completed`, `failed`, `aborted` or `interrupted`; `running` while
    /// the run is in progress (a journal left by a crash says so).
    public var status: JournalStatus
    /// True when the hypothesis did not hold after (or during) the method.
    public var deviated: Bool
    /// The verdict people read: the status, with `deviated` for a completed run that deviated.
    public var outcome: Outcome
    /// The outcome the suite documents for this experiment (`expect:`), if any.
    public var expected: Outcome?
    /// Why the run ended as it did, in one line.
    public var reason: String?
    public var steadyStates: SteadyStates
    public var run: [RunRecord]
    public var rollbacks: [RunRecord]
    /// Undo steps registered by actions (toxics removed, processes restarted), in the order run.
    public var cleanup: [CleanupRecord]
    /// When each fault was in force, for timelines.
    public var faults: [FaultWindow]
    /// What an aborted rollback phase left undone.
    public var leftUndone: [String]
    public var end: Timestamp?
    public var duration: Double?
    /// The run's ledger (``RunLedger``), so that `faultline recover` finds this journal's run.
    public var ledger: String? = nil
    /// What `faultline recover` undid after the run was killed, if it was.
    public var recovery: [RecoveryNote]? = nil

    enum CodingKeys: String, CodingKey {
        case faultlineVersion = "faultline_version", platform, node, runID = "run_id", experimentHash = "experiment_hash", profile, origin,
            seed, dry, experiment, start, status, deviated, outcome, expected, reason, steadyStates = "steady_states", run, rollbacks, cleanup,
            faults,
            leftUndone = "left_undone", end, duration, ledger, recovery
    }

    /// Reads a journal file.
    public static func load(path: String) throws -> Journal {
        let node = try DocumentLoader.load(path: path, limits: .journals)
        return try NodeDecoder(rejectsUnknownKeys: false).decode(Journal.self, from: node)
    }

    /// The journal as JSON text.
    public func json(pretty: Bool = true) throws -> Data {
        JSONWriter.data(try ValueEncoder().encode(self), pretty: pretty)
    }

    /// The outcome that decides the exit code: an experiment that ends as its suite documents
    /// (`expect: deviated`) passes; one that holds although documented to deviate does not.
    public var verdict: Outcome {
        guard let expected, outcome != .interrupted, outcome != .running else { return outcome }
        if outcome == expected { return .completed }
        return outcome == .completed ? .deviated : outcome
    }

    /// Whether the outcome differs from the documented one.
    public var isUnexpected: Bool { expected.map { $0 != outcome } ?? false }

    /// The experiment's title as run.
    public var title: String { experiment["title"]?.stringValue ?? origin }
}

/// Chaos Toolkit's run statuses, plus `running` for a journal still being written.
public enum JournalStatus: String, Sendable, Codable, CaseIterable {
    case running, completed, failed, aborted, interrupted
}

/// What a run amounts to, and the exit code it gives.
public enum Outcome: String, Sendable, Codable, CaseIterable, Comparable {
    /// The hypothesis held before and after (or during) the method.
    case completed
    /// The hypothesis did not hold after or during the method: the system is not resilient to the fault.
    case deviated
    /// The gate hypothesis failed (the system was not in steady state), or a probe could not run.
    case failed
    /// An action of the method failed, so the fault was not injected as written.
    case aborted
    /// SIGINT or SIGTERM stopped the run.
    case interrupted
    /// Still running (only in a journal left by a crash).
    case running

    /// The process exit code for this outcome (see the README's table).
    public var exitCode: Int32 {
        switch self {
        case .completed: 0
        case .deviated, .failed, .aborted, .running: 1
        case .interrupted: 130
        }
    }

    private var severity: Int {
        switch self {
        case .completed: 0
        case .deviated: 1
        case .failed: 2
        case .aborted: 3
        case .running: 4
        case .interrupted: 5
        }
    }

    public static func < (a: Outcome, b: Outcome) -> Bool { a.severity < b.severity }
}

/// The hypothesis checks of a run.
public struct SteadyStates: Sendable, Codable {
    public var before: HypothesisRecord?
    public var after: HypothesisRecord?
    public var during: [HypothesisRecord]

    public init(before: HypothesisRecord? = nil, after: HypothesisRecord? = nil, during: [HypothesisRecord] = []) {
        self.before = before
        self.after = after
        self.during = during
    }
}

/// One check of the steady-state hypothesis.
public struct HypothesisRecord: Sendable, Codable {
    /// Nil when the check could not conclude (interrupted).
    public var steadyStateMet: Bool?
    public var probes: [RunRecord]
    public var start: Timestamp?
    public var end: Timestamp?

    enum CodingKeys: String, CodingKey {
        case steadyStateMet = "steady_state_met", probes, start, end
    }

    public init(steadyStateMet: Bool?, probes: [RunRecord], start: Timestamp? = nil, end: Timestamp? = nil) {
        self.steadyStateMet = steadyStateMet
        self.probes = probes
        self.start = start
        self.end = end
    }
}

/// The record of one activity execution.
public struct RunRecord: Sendable, Codable {
    /// The activity as written (a `ref` shows the definition it names), secrets masked.
    public var activity: Value
    public var output: Value?
    public var status: RecordStatus
    public var start: Timestamp
    public var end: Timestamp
    /// Seconds, pauses excluded.
    public var duration: Double
    /// Why it failed: the message first, then details.
    public var exception: [String]?
    /// For hypothesis probes: whether the output was within tolerance.
    public var toleranceMet: Bool?
    /// Why the tolerance was not met.
    public var toleranceMessage: String?
    /// Where the record belongs.
    public var phase: Phase?
    public var background: Bool?

    enum CodingKeys: String, CodingKey {
        case activity, output, status, start, end, duration, exception, toleranceMet = "tolerance_met", toleranceMessage = "tolerance_message",
            phase, background
    }

    public init(
        activity: Value, output: Value? = nil, status: RecordStatus, start: Timestamp, end: Timestamp, duration: Double, exception: [String]? = nil,
        toleranceMet: Bool? = nil, toleranceMessage: String? = nil, phase: Phase? = nil, background: Bool? = nil
    ) {
        self.activity = activity
        self.output = output
        self.status = status
        self.start = start
        self.end = end
        self.duration = duration
        self.exception = exception
        self.toleranceMet = toleranceMet
        self.toleranceMessage = toleranceMessage
        self.phase = phase
        self.background = background
    }

    /// The activity's name.
    public var name: String { activity["name"]?.stringValue ?? "(unnamed)" }
    /// `probe` or `action`.
    public var kind: String { activity["type"]?.stringValue ?? "probe" }
    /// The provider type.
    public var providerType: String { activity["provider"]?["type"]?.stringValue ?? "" }

    /// The part of the experiment a record belongs to (the journal's `phase`).
    public enum Phase: String, Sendable, Codable, CaseIterable {
        /// A probe of the steady-state hypothesis, before, during or after the method.
        case hypothesis
        case method
        case rollbacks
    }
}

/// How one activity ended.
public enum RecordStatus: String, Sendable, Codable, CaseIterable {
    case succeeded, failed
    /// Cut by an interrupt or by fail-fast.
    case interrupted
    /// Not run: dry mode.
    case skipped
}
