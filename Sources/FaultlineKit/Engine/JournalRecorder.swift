import Foundation

/// Holds the journal of a run in progress and keeps its file up to date, off the engine's path.
///
/// A change is made in memory under a lock: no encoding and no file I/O on the caller's task,
/// which runs on the cooperative pool that providers must not block. One thread of the
/// recorder's own writes the newest state as a whole journal: to a temporary file, renamed over
/// the journal. So:
/// - the file is always a complete journal, in Chaos Toolkit's layout: a crash or `kill -9` at
///   any instant leaves the last one renamed, never a torn one;
/// - after a quiet spell a change is written at once; while changes keep coming, writes are at
///   least ``minimumInterval`` apart and at least twice as far apart as the last write took, so
///   the file is at most that interval plus one write behind, and writing takes at most a third
///   of one core however long the run (a run of n records costs O(n) per write, not per record);
/// - ``flush()`` waits, without blocking a thread, until the file holds every change made
///   before it: the engine flushes when the run starts, before the method (so the gate's verdict
///   is on disk before any fault is injected) and when the run ends.
///
/// Call ``close()`` once at the end: it writes what is left and ends the thread.
final class JournalRecorder: @unchecked Sendable {
    // Unchecked: every stored property below is read and written under `condition` only.
    private let condition = NSCondition()
    private var journal: Journal
    /// Counts changes; `written` is the change the file holds.
    private var version = 0
    private var written = 0
    private var waiters: [(version: Int, continuation: CheckedContinuation<Void, Never>)] = []
    private var flushRequested = false
    private var closing = false
    /// The writer thread has ended (or never started): nothing more is written.
    private var ended = false
    private var nextWrite = ContinuousClock.now
    let path: String?

    /// The shortest time between two writes while changes keep coming.
    static let minimumInterval = Duration.milliseconds(100)

    init(_ journal: Journal, path: String?) {
        self.journal = journal
        self.path = path
        guard path != nil else {
            ended = true
            return
        }
        let thread = Thread { [self] in writeUntilClosed() }
        thread.name = "faultline journal"
        // Encoding recurses once per level of nesting in outputs; give it a main thread's stack.
        thread.stackSize = 8 << 20
        thread.start()
    }

    var current: Journal {
        condition.lock()
        defer { condition.unlock() }
        return journal
    }

    /// Changes the journal; the writer thread writes it out.
    func update(_ change: (inout Journal) -> Void) {
        condition.lock()
        change(&journal)
        version += 1
        condition.signal()
        condition.unlock()
    }

    /// Waits until the file holds every change made before the call (at once without a file).
    func flush() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            guard !ended, written < version else {
                condition.unlock()
                continuation.resume()
                return
            }
            waiters.append((version, continuation))
            flushRequested = true
            condition.signal()
            condition.unlock()
        }
    }

    /// Writes what is left, waits until it is written, and ends the writer thread.
    func close() async {
        await flush()
        endWriter()
    }

    private func endWriter() {
        condition.lock()
        closing = true
        condition.signal()
        condition.unlock()
    }

    // MARK: The writer thread

    private func writeUntilClosed() {
        guard let path else { return }
        let clock = ContinuousClock()
        condition.lock()
        while true {
            while written == version && !closing { condition.wait() }
            if written == version { break }
            // Throttle while changes keep coming, unless someone waits for the file.
            while !flushRequested && !closing && clock.now < nextWrite {
                _ = condition.wait(until: Date(timeIntervalSinceNow: Self.seconds(nextWrite - clock.now)))
            }
            let snapshot = journal
            let snapshotVersion = version
            flushRequested = false
            condition.unlock()

            let started = clock.now
            Self.write(snapshot, to: path)
            let took = clock.now - started

            condition.lock()
            written = snapshotVersion
            nextWrite = clock.now + max(Self.minimumInterval, took * 2)
            let due = waiters.filter { $0.version <= written }
            waiters.removeAll { $0.version <= written }
            if !waiters.isEmpty { flushRequested = true }
            condition.unlock()
            for waiter in due { waiter.continuation.resume() }
            condition.lock()
        }
        ended = true
        let left = waiters
        waiters = []
        condition.unlock()
        for waiter in left { waiter.continuation.resume() }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Writes the journal to a temporary file beside it and renames it over the journal, so a
    /// reader (or a crash) never sees half a journal. A failed write leaves the previous file.
    /// - Returns: whether it was written.
    @discardableResult
    static func write(_ journal: Journal, to path: String) -> Bool {
        guard let data = try? journal.json() else { return false }
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        do {
            try data.write(to: temporary)
            if rename(temporary.path, url.path) == 0 { return true }
            try? FileManager.default.removeItem(at: temporary)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
        }
        return false
    }
}
