#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CFaultlineSystem
import Foundation
import Logging
import Synchronization

/// Stops a run's services when Faultline itself cannot: after a `kill -9` or a crash, nothing of
/// Faultline runs any more, so a small shell process started beside the services does it.
///
/// The guardian holds the read end of a pipe whose write end only Faultline has (close-on-exec,
/// so no service inherits it). When the supervisor has stopped its services it writes a line and
/// the guardian exits. When Faultline dies instead, the kernel closes the write end, the guardian
/// reads end-of-file without a line, and it stops every process carrying the run's
/// ``ServiceMarker`` (daemons that left their process group included): TERM, then KILL after
/// `grace` seconds. It ignores the terminal's signals, and sits in a process group of its own, so
/// a Ctrl-C meant for Faultline does not end it early.
final class ServiceGuardian: Sendable {
    /// Nil once released.
    private let writeEnd: Mutex<Int32?>
    private let process: ChildProcess

    /// The guardian's program: `$1` is the marker prefix, `$2` the grace in tenths of a second.
    /// `grep -z` reads each `/proc/PID/environ` as NUL-separated entries, so `^` anchors at the
    /// start of every variable.
    static let script = #"""
        trap '' INT TERM HUP QUIT
        if IFS= read -r line; then exit 0; fi
        marked() { grep -lsz "^FAULTLINE_SERVICE=$1" /proc/[0-9]*/environ | sed -e 's|^/proc/||' -e 's|/environ$||'; }
        pids=$(marked "$1")
        [ -n "$pids" ] || exit 0
        kill -TERM $pids 2>/dev/null
        waited=0
        while [ "$waited" -lt "$2" ] && [ -n "$(marked "$1")" ]; do sleep 0.1; waited=$((waited + 1)); done
        pids=$(marked "$1")
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
        exit 0
        """#

    /// Starts a guardian for the services whose marker starts with `markerPrefix`.
    /// - Returns: nil where there is no `/proc` to find them by, or when the guardian cannot start
    ///   (the run goes on, as it did before guardians; the reason is logged).
    init?(markerPrefix: String, grace: Double = 2, logger: Logger = Logger(label: "faultline.services")) {
        guard FileManager.default.fileExists(atPath: "/proc/self/environ") else { return nil }
        var fds: [Int32] = [0, 0]
        guard faultline_pipe_cloexec(&fds) == 0 else {
            logger.warning(
                "services will not be stopped if faultline is killed outright: no pipe for a guardian: \(String(cString: strerror(errno)))")
            return nil
        }
        let environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "LC_ALL": "C"]
        do {
            process = try ChildProcess(
                executable: "/bin/sh", arguments: ["-c", Self.script, "faultline-guardian", markerPrefix, String(Int((grace * 10).rounded()))],
                environment: environment, stdout: .discard, stderr: .discard, standardInput: fds[0])
        } catch {
            close(fds[0])
            close(fds[1])
            logger.warning("services will not be stopped if faultline is killed outright: \(error)")
            return nil
        }
        close(fds[0])
        writeEnd = Mutex(fds[1])
    }

    /// The services are stopped: the guardian exits without looking for any.
    /// Idempotent.
    func release() {
        guard let fd = takeWriteEnd() else { return }
        var line = UInt8(ascii: "\n")
        _ = write(fd, &line, 1)
        close(fd)
    }

    /// Closes the pipe without the line, as Faultline's death does (for tests).
    func abandon() {
        if let fd = takeWriteEnd() { close(fd) }
    }

    /// The write end, once: whoever takes it closes it.
    private func takeWriteEnd() -> Int32? {
        writeEnd.withLock { fd in
            defer { fd = nil }
            return fd
        }
    }

    deinit { release() }

    /// The guardian's pid (for tests).
    var pid: pid_t { process.pid }

    /// Waits for the guardian to exit.
    func wait() async -> ChildProcess.Termination { await process.wait() }
}
