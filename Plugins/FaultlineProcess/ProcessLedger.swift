#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import FaultlineKit

// What the process plugin leaves on this machine while a run goes on, as ledger entries (see
// ``RunLedger``), and how `faultline recover` undoes each after the run was killed.

/// A process (or a service's process group) the run froze with SIGSTOP: recovery sends SIGCONT,
/// if the pid still names the same process (its start time in `/proc` says so).
struct StoppedProcess: LedgerEntry {
    static let kind = "process.stopped"
    var pid: Int32
    /// Clock ticks after boot when it started (`/proc/PID/stat` field 22).
    var startTime: UInt64
    /// A service's whole group was stopped.
    var group: Bool
    var command: String

    var server: String? { nil }
    var summary: String { "pid \(pid) (\(command)) stopped with SIGSTOP" }

    struct Recovery: LedgerRecovery {
        func recover(_ entry: StoppedProcess, context: RecoveryContext) async throws -> String {
            guard let now = SystemProcess.read(entry.pid), now.startTime == entry.startTime, !now.isZombie else { return "already gone" }
            guard kill(entry.group ? -entry.pid : entry.pid, SIGCONT) == 0 else {
                throw ActivityFailure("cannot send SIGCONT to pid \(entry.pid): \(String(cString: strerror(errno)))")
            }
            return "resumed with SIGCONT"
        }
    }
}

/// The processes a run started that carry its ``ServiceMarker`` prefix (services, their
/// daemonised children, `process` activities' programs): the guardian stops them when the run is
/// killed, unless the guardian was killed too; recovery kills what is left.
struct MarkedProcesses: LedgerEntry {
    static let kind = "process.marked"
    /// The marker prefix (`FAULTLINE_SERVICE=<prefix>…` in their environment).
    var prefix: String
    /// What they are, for messages: `services`, `the program of activity "x"`.
    var what: String

    var server: String? { nil }
    var summary: String { "\(what) (processes marked \(ServiceMarker.variable)=\(prefix)…)" }

    struct Recovery: LedgerRecovery {
        func recover(_ entry: MarkedProcesses, context: RecoveryContext) async throws -> String {
            // A prefix always ends with "/", so one run's prefix never selects another's.
            guard entry.prefix.hasSuffix("/") else { throw ActivityFailure("marker prefix \"\(entry.prefix)\" does not end with /; not swept") }
            let killed = await ServiceMarker.sweep(prefix: entry.prefix)
            guard !killed.isEmpty else { return "none left running" }
            return "killed " + killed.map { "\($0.pid) (\($0.commandLine))" }.joined(separator: ", ")
        }
    }
}
