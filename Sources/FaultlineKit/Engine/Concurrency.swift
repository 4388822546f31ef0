import Synchronization

/// Counts SIGINT/SIGTERM deliveries and runs what the engine registered for each.
///
/// The first interrupt cancels the in-flight activity and skips the rest of the method; the
/// second aborts the rollbacks; the third stops the removal of injected faults (the CLI exits at
/// once instead). The CLI calls ``interrupt(_:)`` from its signal handlers.
public final class Interruption: Sendable {
    private struct Handler {
        var id: Int
        var threshold: Int
        var action: @Sendable () -> Void
    }
    private struct State {
        var count = 0
        var signal: String?
        var nextID = 0
        var handlers: [Handler] = []
    }
    private let state = Mutex(State())

    public init() {}

    /// How many interrupts arrived.
    public var count: Int { state.withLock { $0.count } }
    /// The first signal's name (`SIGINT`, `SIGTERM`).
    public var signal: String? { state.withLock { $0.signal } }

    /// Records an interrupt and runs the handlers whose threshold it reaches.
    public func interrupt(_ signal: String) {
        let due = state.withLock { s -> [Handler] in
            s.count += 1
            if s.signal == nil { s.signal = signal }
            let count = s.count
            let due = s.handlers.filter { $0.threshold == count }
            return due
        }
        for handler in due { handler.action() }
    }

    /// Runs `action` when the `count`-th interrupt arrives (at once if it already has).
    /// - Returns: a token for ``remove(_:)``.
    @discardableResult
    func on(count threshold: Int, _ action: @escaping @Sendable () -> Void) -> Int {
        let (id, runNow) = state.withLock { s -> (Int, Bool) in
            s.nextID += 1
            s.handlers.append(Handler(id: s.nextID, threshold: threshold, action: action))
            return (s.nextID, s.count >= threshold)
        }
        if runNow { action() }
        return id
    }

    func remove(_ id: Int) { state.withLock { $0.handlers.removeAll { $0.id == id } } }
}

/// A one-shot signal that tasks can wait for, with a timeout.
final class Latch: Sendable {
    private struct State {
        var isSet = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    func set() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.isSet = true
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    var isSet: Bool { state.withLock { $0.isSet } }

    /// Waits until set or cancelled.
    func wait() async {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.isSet || Task.isCancelled { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { $0.waiters.removeValue(forKey: id) }
            continuation?.resume()
        }
    }

    /// Waits until set, at most `seconds`. Returns whether it was set.
    func wait(seconds: Double) async -> Bool {
        if isSet { return true }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.wait()
                return self.isSet
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(saturating: seconds))
                return self.isSet
            }
            let result = await group.next() ?? false
            group.cancelAll()
            return result || isSet
        }
    }
}

/// The engine gave up waiting for an activity.
public struct ActivityTimeout: Error, CustomStringConvertible {
    public var seconds: Double
    public var description: String { "timed out after \(Tolerance.number(seconds)) s" }
}

/// Runs `operation`, cancelling it after `seconds` (nil: no limit).
func withTimeout<T: Sendable>(_ seconds: Double?, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    guard let seconds else { return try await operation() }
    return try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: .seconds(saturating: seconds))
            throw ActivityTimeout(seconds: seconds)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Sleeps, returning false if the task was cancelled.
func pause(seconds: Double) async -> Bool {
    guard seconds > 0 else { return !Task.isCancelled }
    do {
        try await Task.sleep(for: .seconds(saturating: seconds))
        return true
    } catch {
        return false
    }
}
