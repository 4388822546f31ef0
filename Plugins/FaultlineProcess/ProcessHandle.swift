#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CFaultlineSystem
import Dispatch
import Foundation
import Synchronization

/// One process, pinned: on Linux a pidfd names exactly the process that was selected, so a signal
/// never reaches another process that reused its pid, and its exit can be awaited without polling
/// even when it is not Faultline's child.
final class ProcessHandle: Sendable {
    let process: SystemProcess
    /// -1 where the kernel has no pidfds; then the start time guards against pid reuse.
    private let pidfd: Int32

    /// Opens a handle; nil when the process has exited or its pid now names another process.
    init?(_ process: SystemProcess) {
        let fd = faultline_pidfd_open(process.pid)
        if fd < 0 && errno == ESRCH { return nil }
        guard let now = SystemProcess.read(process.pid), now.startTime == process.startTime, !now.isZombie else {
            if fd >= 0 { close(fd) }
            return nil
        }
        self.process = now
        pidfd = fd
    }

    deinit {
        if pidfd >= 0 { close(pidfd) }
    }

    var pid: pid_t { process.pid }

    /// Sends `signal` to the process.
    /// - Returns: nil when sent, else why not.
    func send(_ signal: Int32) -> String? {
        let result: Int32
        if pidfd >= 0 {
            result = faultline_pidfd_send_signal(pidfd, signal)
        } else {
            guard !hasExited else { return "it had already exited" }
            result = kill(process.pid, signal)
        }
        guard result != 0 else { return nil }
        switch errno {
        case ESRCH: return "it had already exited"
        case EPERM: return "permission denied (it belongs to \(process.user))"
        default: return String(cString: strerror(errno))
        }
    }

    /// Whether the process has ended (a zombie counts as ended).
    var hasExited: Bool {
        if pidfd >= 0 {
            var descriptor = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            return poll(&descriptor, 1, 0) > 0
        }
        guard let now = SystemProcess.read(process.pid) else { return true }
        return now.startTime != process.startTime || now.isZombie
    }

    /// The process as it is now, or nil once it has ended.
    var current: SystemProcess? {
        guard !hasExited, let now = SystemProcess.read(process.pid), now.startTime == process.startTime else { return nil }
        return now
    }

    /// Waits until the process ends, at most `timeout` seconds.
    /// - Returns: whether it ended; false also when the task is cancelled.
    func waitForExit(timeout: Double) async -> Bool {
        if hasExited { return true }
        guard pidfd >= 0 else { return await pollForExit(timeout: timeout) }
        // The dispatch source gets a descriptor of its own, closed when the source is cancelled,
        // because the handle may be released before the source's cancellation completes.
        let watched = dup(pidfd)
        guard watched >= 0 else { return await pollForExit(timeout: timeout) }
        let waiter = OneShot<Bool>()
        let source = DispatchSource.makeReadSource(fileDescriptor: watched, queue: .global())
        source.setEventHandler { waiter.resume(true) }
        source.setCancelHandler { close(watched) }
        source.resume()
        DispatchQueue.global().asyncAfter(deadline: .now() + max(0, timeout)) { waiter.resume(false) }
        let ended = await withTaskCancellationHandler {
            await waiter.wait()
        } onCancel: {
            waiter.resume(false)
        }
        source.cancel()
        return ended || hasExited
    }

    /// Without pidfds, the only way to see another process end is to look again.
    private func pollForExit(timeout: Double) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while !hasExited {
            guard ContinuousClock.now < deadline, (try? await Task.sleep(for: .milliseconds(10))) != nil else { return hasExited }
        }
        return true
    }
}

/// A continuation resumed exactly once, by whichever of several events comes first.
final class OneShot<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, Never>?, early: T?)>((nil, nil))

    /// Suspends until ``resume(_:)`` (at once if it was already called).
    func wait() async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let early = state.withLock { s -> T? in
                if let early = s.early { return early }
                s.continuation = continuation
                return nil
            }
            if let early { continuation.resume(returning: early) }
        }
    }

    /// Resumes the waiter with `value`, unless something resumed it already.
    func resume(_ value: T) {
        let continuation = state.withLock { s -> CheckedContinuation<T, Never>? in
            guard s.early == nil else { return nil }
            s.early = value
            defer { s.continuation = nil }
            return s.continuation
        }
        continuation?.resume(returning: value)
    }
}

/// Runs blocking work (a connect, a read) on a thread of its own, never on the cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}
