#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation
import Synchronization

/// Finds what a service left behind. Every service process gets `FAULTLINE_SERVICE=<id>` in its
/// environment, which its descendants inherit even when they leave its process group (a daemon
/// calls `setsid`), so scanning `/proc/*/environ` finds them all — the technique CI servers use to
/// kill a build's stray processes.
///
/// Ids are `<session>/<supervisor>/<service>/<start>`: a prefix selects one start of a service,
/// every start of it, everything one run started, or everything this Faultline process started.
enum ServiceMarker {
    static let variable = "FAULTLINE_SERVICE"

    /// This Faultline process: its pid and a random suffix, so that ids never repeat across runs.
    static let session = "\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"

    private static let programs = Mutex(0)

    /// A fresh prefix for the program of one `process` activity: `<session>/program/<n>/`, which
    /// no service's prefix (`<session>/<number>/`) selects.
    static func nextProgramPrefix() -> String {
        let number = programs.withLock { n -> Int in
            n += 1
            return n
        }
        return "\(session)/program/\(number)/"
    }

    /// Live processes whose marker starts with `prefix`.
    static func processes(withPrefix prefix: String) -> [SystemProcess] {
        SystemProcess.pids().compactMap { pid in
            guard let marker = SystemProcess.environmentValue(pid, variable), marker.hasPrefix(prefix), let process = SystemProcess.read(pid),
                !process.isZombie
            else { return nil }
            return process
        }
    }

    /// Kills (SIGKILL) every live process marked with `prefix`, except `excluding`, and reaps the
    /// ones that were re-parented to Faultline.
    /// - Returns: what it killed.
    static func sweep(prefix: String, excluding: Set<pid_t> = []) async -> [SystemProcess] {
        let strays = processes(withPrefix: prefix).filter { !excluding.contains($0.pid) }
        let handles = strays.compactMap(ProcessHandle.init)
        for handle in handles { _ = handle.send(SIGKILL) }
        let own = getpid()
        let children = ChildRegistry.shared.live
        for handle in handles {
            _ = await handle.waitForExit(timeout: 2)
            // An adopted orphan is Faultline's child now, and nobody else waits for it.
            if handle.process.parent == own, !children.contains(handle.pid) {
                var status: Int32 = 0
                _ = waitpid(handle.pid, &status, WNOHANG)
            }
        }
        return handles.map(\.process)
    }
}
