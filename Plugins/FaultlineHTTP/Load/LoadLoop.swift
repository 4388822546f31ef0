import CFaultlineSystem
import FaultlineKit
import Foundation
import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The event loops a load runs its plain-HTTP users on (Linux): the load's own, not NIO's.
///
/// A NIO channel costs a load a few microseconds of CPU a request — its pipeline, a pooled buffer
/// per read, reference counting — where wrk spends one: on a machine whose cores the load shares
/// with the server it measures, that is the difference between wrk's rate and 0.9 of it. These
/// loops watch plain sockets with epoll, and ``PlainConnection`` reads and writes them with one
/// system call each. They are NIO `EventLoop`s all the same, so the workers' timers, tasks and
/// futures run on them unchanged; TLS endpoints keep NIO (``ExchangeHandler``).
public final class LoadLoops: Sendable {
    let loops: [LoadLoop]

    /// One loop per core, started on first use and kept for the life of the process (as NIO's
    /// singleton group); nil where there is no epoll.
    public static let shared = LoadLoops(count: System.coreCount)

    /// Starts `count` loops; nil where there is no epoll.
    public init?(count: Int) {
        var loops: [LoadLoop] = []
        for index in 0..<max(1, count) {
            guard let loop = LoadLoop(name: "faultline-load-\(index)") else { return nil }
            loops.append(loop)
        }
        self.loops = loops
    }
}

/// A socket a ``LoadLoop`` watches; told of its readiness on the loop's thread.
protocol LoadLoopSocket: AnyObject {
    /// epoll's flags for the socket (edge-triggered): readable, writable, hung up, failed.
    func ready(_ events: UInt32)
}

/// One thread with one epoll: edge-triggered sockets, a timerfd for scheduled tasks (to the
/// nanosecond: an open-model load counts latency from the intended send time, so a late timer
/// would show up as latency) and an eventfd that wakes it for tasks from other threads.
///
/// Each turn handles the ready sockets, then the due timers, then the queued tasks — as NIO's
/// loops do, so that a worker's ``LoadWorker/sendSoon(_:)`` sends the requests of one wake-up together.
final class LoadLoop: EventLoop, @unchecked Sendable {
    private let epoll: Int32
    private let wake: Int32
    private let timer: Int32
    /// Written by the thread before `init` returns, read-only after.
    private var threadID = pthread_t()

    /// Tasks from other threads.
    private let inbox = Mutex<[@Sendable () -> Void]>([])

    // Confined to the loop's thread:
    private var tasks: [() -> Void] = []
    private var running: [() -> Void] = []
    private var timers = TimerHeap()
    /// The deadline the timerfd is armed for (`.max`: none).
    private var armed = UInt64.max
    private var sockets: [(socket: (any LoadLoopSocket)?, generation: UInt32)] = []
    private var freeSlots: [Int] = []
    private var stopped = false

    private enum Tag {
        static let wake: UInt64 = 1 << 63
        static let timer: UInt64 = 1 << 62
        /// A socket's tag: its slot and the slot's generation, so that an event for a socket
        /// closed earlier in the same turn never reaches the one that took its slot.
        static func socket(slot: Int, generation: UInt32) -> UInt64 { UInt64(generation & 0x3fff_ffff) << 32 | UInt64(slot) }
    }

    init?(name: String) {
        let epoll = faultline_epoll_create()
        guard epoll >= 0 else { return nil }
        let wake = faultline_eventfd()
        let timer = faultline_timerfd()
        guard wake >= 0, timer >= 0, faultline_epoll_add(epoll, wake, FAULTLINE_EPOLL_IN, Tag.wake) == 0,
            faultline_epoll_add(epoll, timer, FAULTLINE_EPOLL_IN, Tag.timer) == 0
        else {
            for fd in [epoll, wake, timer] where fd >= 0 { Glibc.close(fd) }
            return nil
        }
        self.epoll = epoll
        self.wake = wake
        self.timer = timer
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            threadID = pthread_self()
            started.signal()
            run()
        }
        thread.name = name
        thread.start()
        started.wait()
    }

    // MARK: EventLoop

    var inEventLoop: Bool { pthread_equal(threadID, pthread_self()) != 0 }

    func execute(_ task: @escaping @Sendable () -> Void) {
        if inEventLoop {
            tasks.append(task)
            return
        }
        inbox.withLock { $0.append(task) }
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    func _executeIsolatedUnsafeUnchecked(_ task: @escaping () -> Void) {
        assertInEventLoop()
        tasks.append(task)
    }

    func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        schedule(deadline: deadline, task)
    }

    func scheduleTask<T>(in amount: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        schedule(deadline: .now() + amount, task)
    }

    func _scheduleTaskIsolatedUnsafeUnchecked<T>(deadline: NIODeadline, _ task: @escaping () throws -> T) -> Scheduled<T> {
        assertInEventLoop()
        return schedule(deadline: deadline, task)
    }

    func _scheduleTaskIsolatedUnsafeUnchecked<T>(in amount: TimeAmount, _ task: @escaping () throws -> T) -> Scheduled<T> {
        assertInEventLoop()
        return schedule(deadline: .now() + amount, task)
    }

    private func schedule<T>(deadline: NIODeadline, _ task: @escaping () throws -> T) -> Scheduled<T> {
        let promise: EventLoopPromise<T> = makePromise()
        let entry = TimerEntry(deadline: deadline.uptimeNanoseconds) {
            do {
                promise.assumeIsolated().succeed(try task())
            } catch {
                promise.fail(error)
            }
        }
        if inEventLoop {
            timers.insert(entry)
        } else {
            execute { [self] in timers.insert(entry) }
        }
        // `Scheduled.cancel()` fails the promise; the entry leaves the heap at once (a load that
        // connects for every request cancels a connect timer for each).
        return Scheduled(promise: promise) { [self] in
            if inEventLoop {
                cancel(entry)
            } else {
                execute { [self] in cancel(entry) }
            }
        }
    }

    private func cancel(_ entry: TimerEntry) {
        entry.task = nil
        timers.remove(entry)
    }

    /// Scheduled tasks not yet run or cancelled (for tests).
    var scheduledCount: Int { timers.count }

    func preconditionInEventLoop(file: StaticString, line: UInt) {
        precondition(inEventLoop, "not on the load loop", file: file, line: line)
    }

    func preconditionNotInEventLoop(file: StaticString, line: UInt) {
        precondition(!inEventLoop, "on the load loop", file: file, line: line)
    }

    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        execute { [self] in stopped = true }
        queue.async { callback(nil) }
    }

    // MARK: Sockets

    /// Watches `fd` for `socket` (edge-triggered: readable, writable, peer hung up) until
    /// ``unwatch(_:)``; returns the slot, or nil with errno set.
    func watch(_ fd: Int32, for socket: any LoadLoopSocket) -> Int? {
        assertInEventLoop()
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            slot = sockets.count
            sockets.append((nil, 0))
        }
        sockets[slot].socket = socket
        let events = FAULTLINE_EPOLL_IN | FAULTLINE_EPOLL_OUT | FAULTLINE_EPOLL_RDHUP | FAULTLINE_EPOLL_ET
        guard faultline_epoll_add(epoll, fd, events, Tag.socket(slot: slot, generation: sockets[slot].generation)) == 0 else {
            unwatch(slot)
            return nil
        }
        return slot
    }

    /// Forgets a socket's slot; closing its descriptor takes it out of the epoll.
    func unwatch(_ slot: Int) {
        sockets[slot].socket = nil
        sockets[slot].generation &+= 1
        freeSlots.append(slot)
    }

    // MARK: The loop

    private func run() {
        let capacity = 256
        var tags = [UInt64](repeating: 0, count: capacity)
        var events = [UInt32](repeating: 0, count: capacity)
        while !stopped {
            runTimers()
            runTasks()
            if stopped { break }
            if let first = timers.first?.deadline, first < armed {
                armed = first
                faultline_timerfd_set(timer, first)
            }
            let count = faultline_epoll_wait(epoll, &tags, &events, Int32(capacity), tasks.isEmpty ? -1 : 0)
            if count < 0 {
                if errno == EINTR { continue }
                fatalError("load loop: epoll_wait failed: \(String(cString: strerror(errno)))")
            }
            for index in 0..<Int(count) {
                switch tags[index] {
                case Tag.wake:
                    var value: UInt64 = 0
                    _ = read(wake, &value, 8)
                    let queued = inbox.withLock { queued in
                        defer { queued.removeAll() }
                        return queued
                    }
                    // One by one: an array of @Sendable closures does not cast to one of plain closures.
                    for task in queued { tasks.append(task) }
                case Tag.timer:
                    var value: UInt64 = 0
                    _ = read(timer, &value, 8)
                    armed = .max
                case let tag:
                    let slot = Int(tag & 0xffff_ffff)
                    guard slot < sockets.count, Tag.socket(slot: slot, generation: sockets[slot].generation) == tag,
                        let socket = sockets[slot].socket
                    else { continue }
                    socket.ready(events[index])
                }
            }
        }
        Glibc.close(timer)
        Glibc.close(wake)
        Glibc.close(epoll)
    }

    private func runTimers() {
        guard !timers.isEmpty else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        while let first = timers.first, first.deadline <= now {
            timers.removeFirst()
            first.task?()
        }
    }

    /// Runs the tasks queued so far; those they queue run on the next turn, after the sockets.
    private func runTasks() {
        guard !tasks.isEmpty else { return }
        swap(&tasks, &running)
        for task in running { task() }
        running.removeAll(keepingCapacity: true)
    }
}

/// A scheduled task; its `task` is cleared when cancelled.
private final class TimerEntry: @unchecked Sendable {
    let deadline: UInt64
    var task: (() -> Void)?
    /// Breaks ties in the order of scheduling.
    var sequence: UInt64 = 0
    /// Where the entry is in the heap; -1 when it is not there.
    var index = -1

    init(deadline: UInt64, _ task: @escaping () -> Void) {
        self.deadline = deadline
        self.task = task
    }

    func precedes(_ other: TimerEntry) -> Bool { (deadline, sequence) < (other.deadline, other.sequence) }
}

/// A binary min-heap of timers by deadline; each entry knows its place, so a cancelled one is
/// taken out at once.
private struct TimerHeap {
    private var entries: [TimerEntry] = []
    private var inserted: UInt64 = 0

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }
    var first: TimerEntry? { entries.first }

    mutating func insert(_ entry: TimerEntry) {
        // Cancelled before it got here (scheduled from another thread, cancelled on the loop).
        guard entry.task != nil, entry.index < 0 else { return }
        inserted += 1
        entry.sequence = inserted
        entry.index = entries.count
        entries.append(entry)
        siftUp(entries.count - 1)
    }

    mutating func removeFirst() {
        remove(at: 0)
    }

    mutating func remove(_ entry: TimerEntry) {
        guard entry.index >= 0, entry.index < entries.count, entries[entry.index] === entry else { return }
        remove(at: entry.index)
    }

    private mutating func remove(at index: Int) {
        let removed = entries[index]
        let last = entries.removeLast()
        removed.index = -1
        guard index < entries.count else { return }
        entries[index] = last
        last.index = index
        siftDown(siftUp(index))
    }

    /// Moves the entry at `index` up while it precedes its parent; returns where it ends.
    @discardableResult
    private mutating func siftUp(_ index: Int) -> Int {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].precedes(entries[parent]) else { break }
            swapAt(child, parent)
            child = parent
        }
        return child
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var least = parent
            if left < entries.count, entries[left].precedes(entries[least]) { least = left }
            if right < entries.count, entries[right].precedes(entries[least]) { least = right }
            if least == parent { return }
            swapAt(parent, least)
            parent = least
        }
    }

    private mutating func swapAt(_ i: Int, _ j: Int) {
        entries.swapAt(i, j)
        entries[i].index = i
        entries[j].index = j
    }
}
