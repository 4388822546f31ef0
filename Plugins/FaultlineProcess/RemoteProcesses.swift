#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CFaultlineSystem
import FaultlineKit
import Foundation
import Synchronization

/// What `process.*` does on another host, through the ``RemoteScript`` over ``RemoteShells``.
enum Remote {
    /// Seconds a remote command may take beyond the waits it was asked for.
    static let slack = 30.0

    /// The shells of the run (one master per host), or fresh ones closed by `body`'s end when the
    /// activity runs outside a run.
    static func withShells<T: Sendable>(_ context: ActivityContext, _ body: (RemoteShells) async throws -> T) async throws -> T {
        if let supervisor = context.resources[ServicesKey.self] { return try await body(await supervisor.remoteShells()) }
        let shells = RemoteShells(localMarker: ServiceMarker.nextProgramPrefix())
        do {
            let result = try await body(shells)
            await shells.closeAll()
            return result
        } catch {
            await shells.closeAll()
            throw error
        }
    }

    /// Runs a script command and fails on anything but exit 0.
    static func script(_ shells: RemoteShells, _ host: RemoteHost, _ command: String, _ arguments: [String], timeout: Double) async throws
        -> [Substring]
    {
        let result: (status: Int32, stdout: String, stderr: String)
        do {
            result = try await shells.script(host, command, arguments, timeout: timeout)
        } catch let error as SSHError {
            throw ActivityFailure("\(error)")
        }
        guard result.status == 0 else {
            throw ActivityFailure(
                "the remote helper failed on \(host.display) (status \(result.status))",
                details: Array(result.stderr.split(separator: "\n").suffix(5).map(String.init)))
        }
        return result.stdout.split(separator: "\n", omittingEmptySubsequences: true)
    }

    /// What the host said about itself and the processes a selection found there.
    struct Selection {
        var matches: [SystemProcess]
        var searched: String
        var uid: uid_t
        var user: String
        /// The helper script and its ancestors (the ssh session): never signalled.
        var lineage: Set<pid_t>
    }

    /// Finds the processes `selection` names on `host`: the host narrows by pid, pidfile, name
    /// and port; the exact name and the pattern are then matched here, as locally.
    static func select(_ selection: ProcessSelection, on host: RemoteHost, shells: RemoteShells) async throws -> Selection {
        let lines = try await script(
            shells, host, "select",
            [selection.pid.map(String.init) ?? "", selection.pidfile ?? "", selection.name ?? "", selection.port.map(String.init) ?? ""],
            timeout: host.connectTimeout + slack)
        var result = Selection(matches: [], searched: "", uid: 0, user: "", lineage: [])
        var note: String?
        var helperPID: pid_t?
        var current: (pid: pid_t, uid: uid_t, stat: [UInt8], cmdline: [UInt8], exe: [UInt8])?
        var section: Character = " "
        var records: [(pid: pid_t, uid: uid_t, stat: [UInt8], cmdline: [UInt8], exe: [UInt8])] = []
        for line in lines {
            if line.hasPrefix(" ") {
                let bytes = line.split(separator: " ").compactMap { UInt8($0, radix: 16) }
                switch section {
                case "S": current?.stat += bytes
                case "C": current?.cmdline += bytes
                case "X": current?.exe += bytes
                default: break
                }
                continue
            }
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            switch fields.first {
            case "I":
                guard fields.count >= 3 else { continue }
                result.uid = uid_t(fields[1]) ?? 0
                result.user = String(decoding: hexBytes(fields[2]), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                result.lineage = Set(fields.dropFirst(3).compactMap { pid_t($0) })
                helperPID = fields.count > 3 ? pid_t(fields[3]) : nil
            case "E":
                throw ActivityFailure(String(line.dropFirst(2)) + " on \(host.display)")
            case "N":
                note = String(line.dropFirst(2))
            case "P":
                if let current { records.append(current) }
                guard fields.count >= 3, let pid = pid_t(fields[1]), let uid = uid_t(fields[2]) else {
                    current = nil
                    continue
                }
                current = (pid, uid, [], [], [])
                section = " "
            case "S", "C", "X":
                section = fields[0].first ?? " "
            default: continue
            }
        }
        if let current { records.append(current) }
        // The helper's own short-lived children (od, ls) are not candidates.
        let helper = helperPID
        var candidates: [SystemProcess] = []
        for record in records {
            let statText = String(decoding: record.stat, as: UTF8.self)
            guard let parsed = SystemProcess.parseStat(statText), parsed.parent != helper else { continue }
            var arguments = record.cmdline.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            if arguments.last == "" { arguments.removeLast() }
            let exe = String(decoding: record.exe, as: UTF8.self).trimmingCharacters(in: .newlines)
            candidates.append(
                SystemProcess(
                    pid: record.pid, parent: parsed.parent, processGroup: parsed.group, state: parsed.state, comm: parsed.comm,
                    arguments: arguments, uid: record.uid, startTime: parsed.startTime, host: host.display,
                    executableOnHost: exe.isEmpty ? nil : exe,
                    userOnHost: record.uid == result.uid ? result.user : nil))
        }
        candidates = selection.narrow(candidates)
        var searched = "\(selection.summary) on \(host.display)"
        if let note { searched += "; \(note)" }
        result.searched = searched
        result.matches = candidates
        return result
    }

    static func hexBytes(_ text: Substring) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex, let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex) {
            if let byte = UInt8(text[index..<next], radix: 16) { bytes.append(byte) }
            index = next
        }
        return bytes
    }

    /// Why a process on another host may not be signalled, or nil: the same rules as locally, with
    /// the ssh session's processes in place of Faultline's lineage and the login's uid in place
    /// of Faultline's.
    static func refusal(_ process: SystemProcess, selection: Selection, allowForeign: Bool) -> String? {
        if process.pid == 1 { return "pid 1 (init) is never signalled" }
        if selection.lineage.contains(process.pid) { return "it is part of Faultline's ssh session" }
        if process.isKernelThread { return "it is a kernel thread" }
        if !allowForeign && process.uid != selection.uid {
            return "it belongs to \(process.user), not to \(selection.user) (allow_foreign: true allows it)"
        }
        return nil
    }

    /// The name the remote `kill -s` takes: `TERM` for SIGTERM.
    static func signalName(_ signal: Int32) -> String {
        let name = SignalName.name(of: signal)
        return name.hasPrefix("SIG") ? String(name.dropFirst(3)) : String(signal)
    }

    static func tenths(_ seconds: Double) -> String { String(Int((seconds * 10).rounded(.up))) }

    /// `process.kill` of one process on another host: the signal, SIGCONT for a frozen one, the
    /// grace, SIGKILL — all in one round trip.
    /// - Returns: `(outcome, seconds)`: gone, ended, killed, survived, or `failed <why>`.
    static func kill(_ process: SystemProcess, host: RemoteHost, signal: Int32, grace: Double, shells: RemoteShells) async throws -> (
        String, Double
    ) {
        let cont = signal != SIGKILL && !Signalling.harmless.contains(signal)
        let lines = try await script(
            shells, host, "kill",
            [
                String(process.pid), String(process.startTime), signalName(signal), tenths(grace), tenths(ProcessKill.killWait),
                cont ? "1" : "0",
            ],
            timeout: host.connectTimeout + grace + ProcessKill.killWait + slack)
        guard let line = lines.last(where: { $0.hasPrefix("R ") }) else {
            throw ActivityFailure("no answer from the remote helper on \(host.display)")
        }
        let fields = line.split(separator: " ", maxSplits: 3)
        let outcome = fields.count > 1 ? String(fields[1]) : "failed"
        let seconds = fields.count > 2 ? Double(fields[2]).map { $0 / 10 } ?? 0 : 0
        if outcome == "failed" { return ("failed " + (fields.count > 3 ? String(fields[3]) : ""), seconds) }
        return (outcome, seconds)
    }

    /// `process.signal` of one process on another host.
    /// - Returns: its state then (`stopped`, `running`, `exited`), or `failed <why>`.
    static func signal(_ process: SystemProcess, host: RemoteHost, signal: Int32, shells: RemoteShells) async throws -> String {
        let lines = try await script(
            shells, host, "signal", [String(process.pid), String(process.startTime), signalName(signal), String(Int(ProcessSignal.settleTime * 20))],
            timeout: host.connectTimeout + ProcessSignal.settleTime + slack)
        guard let line = lines.last(where: { $0.hasPrefix("R ") }) else {
            throw ActivityFailure("no answer from the remote helper on \(host.display)")
        }
        return String(line.dropFirst(2))
    }

    /// Kills what carries `prefix` on `host`: TERM, then KILL after `grace`.
    /// - Returns: the pids it found.
    static func sweep(prefix: String, host: RemoteHost, grace: Double, shells: RemoteShells) async throws -> [String] {
        let lines = try await script(shells, host, "sweep", [prefix, tenths(grace)], timeout: host.connectTimeout + grace + slack)
        return lines.filter { $0.hasPrefix("K ") }.map { String($0.dropFirst(2)) }
    }

    /// A marker prefix for remote processes: `<session>/ssh/<kind>/<n>/`, which no local sweep
    /// selects (on a host that shares this machine's processes, as in tests, they stay apart).
    static func markerPrefix(_ kind: String) -> String {
        "\(ServiceMarker.session)/ssh/\(kind)/\(counter.next())/"
    }

    private static let counter = Counter()

    /// Whether `prefix` is one Faultline made (and so safe to sweep).
    static func isValidMarker(_ prefix: String) -> Bool {
        prefix.hasSuffix("/") && prefix.count > 8
            && prefix.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "/-_".unicodeScalars.contains($0) }
    }
}

/// A thread-safe counter.
final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int {
        value.withLock { n in
            n += 1
            return n
        }
    }
}

extension ProcessSelection {
    /// Keeps the processes that match `name` and `pattern` exactly, and are no zombie or kernel
    /// thread — the same narrowing for this machine and for a remote host.
    func narrow(_ candidates: [SystemProcess]) -> [SystemProcess] {
        var candidates = candidates.filter { !$0.isZombie && !$0.isKernelThread }
        if let name { candidates = candidates.filter { $0.hasExecutableName(name) } }
        if let pattern, let regex = try? NSRegularExpression(pattern: pattern) {
            candidates = candidates.filter {
                regex.firstMatch(in: $0.commandLine, range: NSRange($0.commandLine.startIndex..., in: $0.commandLine)) != nil
            }
        }
        return candidates.sorted { $0.pid < $1.pid }
    }
}

extension RemoteHost {
    /// The same host with its files made absolute, for a ledger that a recovery reads from
    /// another working directory.
    var absolute: RemoteHost {
        var copy = self
        func absolute(_ path: String?) -> String? {
            guard let path, !path.hasPrefix("/"), !path.hasPrefix("~") else { return path }
            return URL(fileURLWithPath: path).standardizedFileURL.path
        }
        copy.identityFile = absolute(identityFile)
        copy.knownHosts = absolute(knownHosts)
        return copy
    }
}

/// Processes a run started on another host (a service, a `process` activity's program), marked
/// there with `FAULTLINE_SERVICE=<prefix>…`. Faultline's guardian cannot reach them: if the run
/// dies, `faultline recover` connects again and ends them.
struct RemoteProcesses: LedgerEntry {
    static let kind = "process.remote"
    var host: RemoteHost
    var prefix: String
    /// What they are, for messages: `service api`.
    var what: String
    /// The main process, once known (for messages; the marker selects).
    var pid: Int32?
    var startTime: UInt64?

    var server: String? { host.display }
    var summary: String { "\(what) on \(host.display)" + (pid.map { " (pid \($0))" } ?? "") }

    /// Also at the start of the next run of the suite: the entry holds the host's key and
    /// known-hosts files, all it takes to reach it.
    struct Recovery: LedgerRecovery {
        static let recoversBeforeRun = true

        func recover(_ entry: RemoteProcesses, context: RecoveryContext) async throws -> String {
            guard Remote.isValidMarker(entry.prefix) else { throw ActivityFailure("marker prefix \"\(entry.prefix)\" is not Faultline's; not swept") }
            let killed = try await UnreachableHost.recovering(entry.host) { shells in
                try await Remote.sweep(prefix: entry.prefix, host: entry.host, grace: 2, shells: shells)
            }
            return killed.isEmpty ? "none left running" : "stopped pid " + killed.joined(separator: ", ")
        }
    }
}

/// A process on another host frozen with SIGSTOP: recovery sends SIGCONT over ssh, if the pid
/// still names the same process there.
struct RemoteStoppedProcess: LedgerEntry {
    static let kind = "process.remote-stopped"
    var host: RemoteHost
    var pid: Int32
    var startTime: UInt64
    var command: String

    var server: String? { host.display }
    var summary: String { "pid \(pid) (\(command)) on \(host.display) stopped with SIGSTOP" }

    struct Recovery: LedgerRecovery {
        static let recoversBeforeRun = true

        func recover(_ entry: RemoteStoppedProcess, context: RecoveryContext) async throws -> String {
            let process = SystemProcess(
                pid: entry.pid, parent: 0, processGroup: 0, state: "T", comm: "", arguments: [], uid: 0, startTime: entry.startTime)
            let state = try await UnreachableHost.recovering(entry.host) { shells in
                try await Remote.signal(process, host: entry.host, signal: SIGCONT, shells: shells)
            }
            if state == "exited" { return "already gone" }
            if state.hasPrefix("failed") { throw ActivityFailure("cannot send SIGCONT to pid \(entry.pid) on \(entry.host.display): \(state)") }
            return "resumed with SIGCONT"
        }
    }
}

/// An ssh host a recovery could not reach or log in to: every ``SSHError`` but ssh's own
/// unclassified failure. The recovery then tries no other entry on that host (each would wait
/// its `connect_timeout` again), and they all stay in their ledgers.
struct UnreachableHost: ServerUnreachable, CustomStringConvertible {
    let error: SSHError
    var description: String { error.description }

    /// Runs a recovery's work on `host` over connections of its own, closed after it; a
    /// connection that cannot be made is an ``UnreachableHost``.
    static func recovering<T: Sendable>(_ host: RemoteHost, _ body: (RemoteShells) async throws -> T) async throws -> T {
        let shells = RemoteShells(localMarker: ServiceMarker.nextProgramPrefix())
        do {
            _ = try await shells.connect(host)
            let result = try await body(shells)
            await shells.closeAll()
            return result
        } catch let error as SSHError where error.kind != .failed {
            await shells.closeAll()
            throw UnreachableHost(error: error)
        } catch {
            await shells.closeAll()
            throw error
        }
    }
}
