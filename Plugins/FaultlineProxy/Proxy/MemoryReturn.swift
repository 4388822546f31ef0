import CFaultlineSystem
import NIOCore

/// Gives the memory that proxied connections used back to the system once they are gone.
///
/// Connections under toxics hold socket buffers (up to 256 KiB a read) in latency, bandwidth and
/// slicer queues. glibc served such blocks from their own mappings at first, but raises its mmap
/// threshold each time one is freed, so later ones came from the heaps of the event-loop threads,
/// where freed memory stayed resident: after a churn of 100 connections the proxy kept hundreds of
/// MiB it no longer used. So:
/// - the threshold is fixed at glibc's default (128 KiB): large blocks stay mappings of their own
///   and go back to the system the moment they are freed;
/// - every few seconds, when the heaps hold more than ``worthTrimming`` bytes free (small blocks
///   freed by connections that closed), `malloc_trim` returns their whole free pages.
enum MemoryReturn {
    /// glibc's default threshold, fixed.
    static let mmapThreshold = 128 << 10
    /// Free heap bytes above which a trim is worth its few milliseconds.
    static let worthTrimming = 4 << 20
    static let interval = TimeAmount.seconds(2)

    /// Fixes the threshold, once per process.
    private static let configured: Bool = faultline_malloc_set_mmap_threshold(mmapThreshold) == 1

    /// Starts the periodic trim on `loop`; cancel the task to stop it.
    static func start(on loop: any EventLoop) -> RepeatedTask {
        _ = configured
        return loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in trimIfWorthIt() }
    }

    /// Trims when the heaps hold enough free memory; whether it did.
    @discardableResult
    static func trimIfWorthIt() -> Bool {
        guard faultline_malloc_free_bytes() > worthTrimming else { return false }
        return faultline_malloc_trim() == 1
    }
}
