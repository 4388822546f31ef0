import Logging
import Synchronization

/// Everything an activity may use while it runs.
public struct ActivityContext: Sendable {
    /// The activity's name.
    public let activityName: String
    public let kind: ActivityKind
    /// Configuration after substitution, as it stands when the activity starts.
    public let configuration: [String: Value]
    /// Secrets by scope. Never log or return them: the journal masks them, but only by value.
    public let secrets: [String: [String: Value]]
    /// A logger labelled with the activity; its output is redacted.
    public let logger: Logger
    /// Set in dry mode for providers with ``Provider/handlesDryRun``: report, don't act.
    public let isDryRun: Bool
    /// Shared services of the run (the toxic backend, the services a suite started, …).
    public let resources: Resources
    /// A directory for files the activity writes (service logs), beside the journal.
    public let runDirectory: String
    /// The run's seed; ``makeRandom()`` derives this activity's generator from it.
    public let seed: UInt64
    /// The shard of the load this run sends (`faultline run --shard I/N`): a load generator sends
    /// only this shard's share (see ``LoadShard``) and records what merging needs. Nil: the whole load.
    public let loadShard: LoadShard?
    /// The instant every shard's run started at (`--start-at`), when one was given.
    public let scheduledStart: Timestamp?
    let run: RunState
    let received = ReceivedTexts()

    /// A random generator seeded from the run's seed and this activity, so that `--seed` replays
    /// the same choices.
    public func makeRandom() -> SeededRandom {
        SeededRandom(seed: seed, stream: activityName + "#" + String(run.nextRandomStream()))
    }

    /// Registers an idempotent undo, run when the experiment ends (after rollbacks, also on
    /// interrupt). The journal records each under `cleanup`.
    /// - Parameters:
    ///   - description: what it undoes, e.g. `remove toxic latency_downstream from db`.
    ///   - body: the undo; finding nothing to undo is success.
    public func registerCleanup(_ description: String, _ body: @escaping @Sendable () async throws -> Void) {
        run.registerCleanup(Cleanup(description: description, body: body))
    }

    /// Records the text an output member was decoded from (an http body read as JSON), so that a
    /// `regex` tolerance on that member searches the text as it came — its spacing and key order —
    /// as Chaos Toolkit's would, not a re-serialisation of the decoded value.
    /// - Parameters:
    ///   - key: the member of the output, e.g. `body`.
    public func recordReceivedText(_ text: String, forOutputKey key: String) {
        received.record(text, for: key)
    }

    /// The texts recorded with ``recordReceivedText(_:forOutputKey:)``, by output key.
    public var receivedTexts: [String: String] { received.all }

    /// Sets a configuration value that later activities see, e.g. a port bound at run time.
    public func export(_ key: String, _ value: Value) {
        run.export(key, value)
    }

    /// Marks the start of a fault window (a toxic, a kill) for reports' timelines.
    /// - Parameters:
    ///   - since: when the fault could first take effect, for a fault opened once the call that
    ///     injects it has returned: the moment that call began (default: now). A window that
    ///     opens late counts requests the fault already met in the phase before it.
    /// - Returns: an identifier for ``endFault(_:)``.
    @discardableResult
    public func beginFault(_ label: String, id: String? = nil, since: Timestamp? = nil) -> String {
        run.beginFault(label: label, id: id ?? "\(activityName)#\(run.nextRandomStream())", start: since ?? Timestamp.now())
    }

    /// Marks the end of a fault window; ending an unknown or ended window does nothing.
    public func endFault(_ id: String) {
        run.endFault(id: id)
    }

    /// Marks the end of a fault window and tells what the fault did; the journal adds it to the
    /// label (`… — affected 12 of 40 matching requests`), while ``faultWindows`` keeps the label the
    /// window began with (load phases are named by it).
    public func endFault(_ id: String, note: String?) {
        run.endFault(id: id, note: note)
    }

    /// The run's fault windows so far, in the order they began; a window still in force has no
    /// end. A load probe splits its measurements by them.
    public var faultWindows: [FaultWindow] { run.faults }

    /// A number that changes whenever a fault window begins or ends: cheap to read (no lock), so a
    /// load generator can check it per request and re-read ``faultWindows`` only when it moved. It
    /// is odd while a window is changing (it moves before the change takes its timestamp): re-read
    /// then too, which waits for the change.
    public var faultGeneration: Int { run.faultGeneration }

    /// Creates a context for tests and for providers used outside an experiment.
    public static func standalone(
        name: String = "activity", kind: ActivityKind = .probe, configuration: [String: Value] = [:],
        resources: Resources = Resources(), runDirectory: String = ".", seed: UInt64 = 0, isDryRun: Bool = false,
        logger: Logger = Logger(label: "faultline"), loadShard: LoadShard? = nil
    ) -> ActivityContext {
        ActivityContext(
            activityName: name, kind: kind, configuration: configuration, secrets: [:], logger: logger, isDryRun: isDryRun,
            resources: resources, runDirectory: runDirectory, seed: seed, loadShard: loadShard, scheduledStart: nil, run: RunState())
    }

    /// Registered cleanups, for tests driving providers with ``standalone(name:kind:configuration:resources:runDirectory:seed:isDryRun:logger:loadShard:)``.
    public func runCleanups() async -> [CleanupRecord] {
        await run.runCleanups()
    }

    /// Values exported so far.
    public var exported: [String: Value] { run.exports }
}

/// The texts one activity's output members were decoded from.
final class ReceivedTexts: Sendable {
    private let texts = Mutex<[String: String]>([:])

    func record(_ text: String, for key: String) { texts.withLock { $0[key] = text } }

    var all: [String: String] { texts.withLock { $0 } }
}

/// An undo registered by an action.
public struct Cleanup: Sendable {
    public var description: String
    public var body: @Sendable () async throws -> Void
}

/// What happened to one cleanup.
public struct CleanupRecord: Sendable, Codable, Equatable {
    public var description: String
    public var status: Status
    public var error: String?
    public var start: Timestamp
    public var end: Timestamp

    /// How a cleanup ended.
    public enum Status: String, Sendable, Codable, CaseIterable {
        /// It undid what it undoes, or found it already undone.
        case succeeded
        case failed
        /// An interrupt cut it short.
        case interrupted
    }
}

/// A fault window for reports: when a toxic, a kill or a stop was in force.
public struct FaultWindow: Sendable, Codable, Equatable {
    public var id: String
    public var label: String
    public var start: Timestamp
    public var end: Timestamp?

    /// A window from `start` to `end` (nil: still in force).
    public init(id: String, label: String, start: Timestamp, end: Timestamp?) {
        self.id = id
        self.label = label
        self.start = start
        self.end = end
    }
}

/// Mutable state of one experiment run that activities touch through their context.
final class RunState: Sendable {
    private struct State {
        var cleanups: [Cleanup] = []
        var exports: [String: Value] = [:]
        var exportOrder: [String] = []
        var faults: [FaultWindow] = []
        /// What a fault did, told when it ended (`affected 12 of 40 matching requests`), by window;
        /// kept beside the label so the label a load phase is named by stays the one it began with.
        var faultNotes: [String: String] = [:]
        var randomCounter = 0
    }
    private let state = Mutex(State())
    /// Odd while a window is being changed, even otherwise (a sequence lock): it moves before the
    /// change takes its timestamp, so a reader that saw it unchanged knows no window began or ended
    /// before that moment, and one that sees it odd re-reads the windows under the lock.
    private let generation = Atomic<Int>(0)
    /// Told of each window that began (`true`) or ended, after the change, outside the lock.
    private let onFault: @Sendable (FaultWindow, _ began: Bool) -> Void

    init(onFault: @escaping @Sendable (FaultWindow, _ began: Bool) -> Void = { _, _ in }) {
        self.onFault = onFault
    }

    var faultGeneration: Int { generation.load(ordering: .acquiring) }

    /// Changes the fault windows between the two steps of ``generation``.
    private func changingFaults<T>(_ change: (inout State) -> T) -> T {
        state.withLock { s in
            generation.add(1, ordering: .sequentiallyConsistent)
            defer { generation.add(1, ordering: .releasing) }
            return change(&s)
        }
    }

    func nextRandomStream() -> Int {
        state.withLock {
            $0.randomCounter += 1
            return $0.randomCounter
        }
    }

    func registerCleanup(_ cleanup: Cleanup) { state.withLock { $0.cleanups.append(cleanup) } }

    func export(_ key: String, _ value: Value) {
        state.withLock {
            if $0.exports.updateValue(value, forKey: key) == nil { $0.exportOrder.append(key) }
        }
    }

    var exports: [String: Value] { state.withLock { $0.exports } }

    func beginFault(label: String, id: String, start: Timestamp) -> String {
        let window = changingFaults { s in
            s.faults.removeAll { $0.id == id && $0.end == nil }
            s.faults.append(FaultWindow(id: id, label: label, start: start, end: nil))
            return s.faults[s.faults.count - 1]
        }
        onFault(window, true)
        return id
    }

    func endFault(id: String, note: String? = nil) {
        let ended = changingFaults { s -> FaultWindow? in
            guard let index = s.faults.lastIndex(where: { $0.id == id && $0.end == nil }) else { return nil }
            s.faults[index].end = Timestamp.now()
            if let note, !note.isEmpty { s.faultNotes[Self.noteKey(s.faults[index])] = note }
            return s.faults[index]
        }
        if let ended { onFault(ended, false) }
    }

    /// Closes every open fault window (at the end of the run).
    func closeFaults() {
        let closed = changingFaults { s -> [FaultWindow] in
            let now = Timestamp.now()
            var closed: [FaultWindow] = []
            for i in s.faults.indices where s.faults[i].end == nil {
                s.faults[i].end = now
                closed.append(s.faults[i])
            }
            return closed
        }
        for window in closed { onFault(window, false) }
    }

    var faults: [FaultWindow] { state.withLock { $0.faults } }

    /// The fault windows as the journal records them: each label followed by what the fault did.
    var recordedFaults: [FaultWindow] {
        state.withLock { s in
            s.faults.map { fault in
                guard let note = s.faultNotes[Self.noteKey(fault)] else { return fault }
                var noted = fault
                noted.label += " — \(note)"
                return noted
            }
        }
    }

    private static func noteKey(_ fault: FaultWindow) -> String { fault.id + "@" + fault.start.text }

    var pendingCleanups: [Cleanup] { state.withLock { $0.cleanups } }

    /// Runs and removes every registered cleanup, newest first.
    func runCleanups(onRecord: (CleanupRecord) -> Void = { _ in }) async -> [CleanupRecord] {
        var records: [CleanupRecord] = []
        // Cancellation stops before the next cleanup; the rest stay pending.
        while !Task.isCancelled, let cleanup = state.withLock({ $0.cleanups.popLast() }) {
            let start = Timestamp.now()
            var record = CleanupRecord(description: cleanup.description, status: .succeeded, error: nil, start: start, end: start)
            do {
                try await cleanup.body()
            } catch  where Task.isCancelled {
                record.status = .interrupted
                record.error = "cancelled before it finished"
            } catch {
                record.status = .failed
                record.error = "\(error)"
            }
            record.end = Timestamp.now()
            onRecord(record)
            records.append(record)
        }
        return records
    }
}
