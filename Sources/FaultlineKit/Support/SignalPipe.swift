#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Signals turned from process-ending into events a thread reads: for a program that acts on
/// SIGINT or SIGTERM (the CLI interrupts its run, a demo service stops).
///
/// The handlers are in place when ``install(_:)`` returns, so a signal sent as soon as the
/// program says it is ready is caught. (A dispatch signal source is registered later,
/// asynchronously, after the signal was set to be ignored: a signal in between was lost on a
/// busy machine.) A handler only writes the signal's number to a pipe (close-on-exec, made before
/// any handler is installed), which ``next()`` reads.
public enum SignalPipe {
    private static let descriptors: [Int32] = {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { fatalError("no pipe for signals: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fds
    }()

    /// Catches these signals: from the return on, each delivery of one is a result of ``next()``.
    /// - Parameter numbers: the signals, e.g. `[SIGINT, SIGTERM]`.
    public static func install(_ numbers: [Int32]) {
        _ = descriptors
        for number in numbers {
            signal(number) { caught in
                var byte = UInt8(truncatingIfNeeded: caught)
                _ = write(SignalPipe.descriptors[1], &byte, 1)
            }
        }
    }

    /// A caught signal's name as the CLI reports it: `SIGINT`, `SIGTERM`.
    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(number)"
        }
    }

    /// Blocks until a caught signal arrives and returns its number, or nil when the pipe fails.
    /// Call it on a thread of its own, never on a task of the cooperative pool.
    public static func next() -> Int32? {
        var byte: UInt8 = 0
        // Only an interrupted read is tried again.
        while read(descriptors[0], &byte, 1) != 1 {
            guard errno == EINTR else { return nil }
        }
        return Int32(byte)
    }
}
