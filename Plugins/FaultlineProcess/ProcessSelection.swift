#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import FaultlineKit
import Foundation

/// Which processes a `process.*` activity acts on. Several selectors narrow each other: `name:
/// python` with `port: 8080` is the python process listening on 8080.
public struct ProcessSelection: Codable, Sendable, Equatable, NumberRanges {
    /// Linux's largest pid (`/proc/sys/kernel/pid_max` can be at most 2^22).
    static let pidRange = NumberRange(1...4_194_304, unit: "(process id)", integer: true)
    public static let numberRanges: [String: NumberRange] = ["pid": pidRange, "port": .port]

    /// A process id.
    public var pid: Int?
    /// A file holding a pid (as daemons write to /run/NAME.pid).
    public var pidfile: String?
    /// The exact executable name: `comm`, or the last path component of the executable or argv[0].
    public var name: String?
    /// A regular expression searched in the whole command line.
    public var pattern: String?
    /// A TCP port the process listens on (IPv4 or IPv6).
    public var port: Int?
    /// A service the run started (the suite's, or an experiment's `process.start`).
    public var service: String?

    enum CodingKeys: String, CodingKey { case pid, pidfile, name, pattern, port, service }

    public init(pid: Int? = nil, pidfile: String? = nil, name: String? = nil, pattern: String? = nil, port: Int? = nil, service: String? = nil) {
        self.pid = pid
        self.pidfile = pidfile
        self.name = name
        self.pattern = pattern
        self.port = port
        self.service = service
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // A pid often arrives as text (`${pid}` from a file or the environment).
        switch try c.decodeIfPresent(Value.self, forKey: .pid) {
        case .int(let number)?: pid = number
        case .string(let text)?:
            guard let number = Int(text.trimmingCharacters(in: .whitespaces)) else {
                throw DecodingError.dataCorruptedError(forKey: .pid, in: c, debugDescription: "pid must be a number, found \"\(text)\"")
            }
            pid = number
        case nil, .null?: pid = nil
        case let other?:
            throw DecodingError.dataCorruptedError(forKey: .pid, in: c, debugDescription: "pid must be a number, found \(other.kindDescription)")
        }
        pidfile = try c.decodeIfPresent(String.self, forKey: .pidfile)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        pattern = try c.decodeIfPresent(String.self, forKey: .pattern)
        port = try c.decodeIfPresent(Int.self, forKey: .port)
        service = try c.decodeIfPresent(String.self, forKey: .service)
    }

    /// Help for the selector keys, for `argumentHelp`.
    static let help = [
        "pid": "a process id",
        "pidfile": "a file holding a pid",
        "name": "exact executable name (comm, or the last part of the executable path or argv[0])",
        "pattern": "regular expression searched in the command line",
        "port": "TCP port the process listens on",
        "service": "a service of the run (suite services:, or process.start)",
    ]

    var isEmpty: Bool { self == ProcessSelection() }

    /// The selectors as a phrase: `name "nginx" and port 8080`.
    public var summary: String {
        var parts: [String] = []
        if let pid { parts.append("pid \(pid)") }
        if let pidfile { parts.append("pidfile \(pidfile)") }
        if let service { parts.append("service \"\(service)\"") }
        if let name { parts.append("name \"\(name)\"") }
        if let pattern { parts.append("command line matching /\(pattern)/") }
        if let port { parts.append("listening on TCP port \(port)") }
        return parts.joined(separator: " and ")
    }

    func problems() -> [ArgumentError] {
        guard !isEmpty else {
            return [ArgumentError(nil, "no process selector", hint: "give pid, pidfile, name, pattern, port or service")]
        }
        var problems: [ArgumentError] = []
        if let pid, !Self.pidRange.contains(Double(pid)) {
            problems.append(ArgumentError("pid", Self.pidRange.message("pid", found: Double(pid))))
        }
        if let port, !NumberRange.port.contains(Double(port)) {
            problems.append(ArgumentError("port", NumberRange.port.message("port", found: Double(port))))
        }
        if let name, name.isEmpty || name.contains("/") {
            problems.append(
                ArgumentError("name", "name is an executable name without a path, found \"\(name)\"", hint: "to match a path, use pattern"))
        }
        if let pattern {
            do {
                _ = try NSRegularExpression(pattern: pattern)
            } catch {
                problems.append(ArgumentError("pattern", "invalid regular expression \"\(pattern)\""))
            }
        }
        return problems
    }

    /// A process the selection found, with the service it is the main process of.
    struct Match: Sendable {
        var process: SystemProcess
        var service: ManagedService? = nil
        /// The host it runs on, for a process on another host.
        var host: RemoteHost? = nil
    }

    /// Finds the processes. Zombies and kernel threads never match.
    /// - Returns: the matches in pid order (possibly none) and what was searched, for messages.
    /// - Throws: `ActivityFailure` for a pidfile that cannot be read or an unknown service.
    func resolve(services: ServiceSupervisor?) async throws -> (matches: [Match], searched: String) {
        var candidates: [SystemProcess]
        var searched: String
        var serviceOfCandidates: ManagedService?
        if let service {
            guard let services else { throw ActivityFailure("service \"\(service)\" is not a service of this run (the run has no services)") }
            let managed: ManagedService
            do {
                managed = try await services.service(named: service)
            } catch {
                throw ActivityFailure("\(error)")
            }
            if let host = managed.definition.settings.host {
                // Activities reach it there (ProcessTargeting); this machine has no such process.
                throw ActivityFailure("service \"\(service)\" runs on \(host.display), not on this machine")
            }
            serviceOfCandidates = managed
            candidates = await managed.pid.flatMap(SystemProcess.read).map { [$0] } ?? []
            searched = "service \"\(service)\" (\(candidates.isEmpty ? "not running" : "pid \(candidates[0].pid)"))"
        } else if let pidfile {
            let pid = try Self.readPidfile(pidfile)
            candidates = SystemProcess.read(pid).map { [$0] } ?? []
            searched = "pidfile \(pidfile) (pid \(pid)\(candidates.isEmpty ? ", not running" : ""))"
        } else if let pid {
            candidates = pid_t(exactly: pid).flatMap(SystemProcess.read).map { [$0] } ?? []
            searched = "pid \(pid)\(candidates.isEmpty ? " (no such process)" : "")"
        } else {
            candidates = SystemProcess.all()
            searched = "\(candidates.count) processes"
        }
        // Both given: the pidfile must name the pid.
        if pidfile != nil, let pid { candidates = candidates.filter { $0.pid == pid } }
        if service != nil, let pid { candidates = candidates.filter { $0.pid == pid } }
        candidates = narrow(candidates)
        if let port {
            let inodes = ListeningSockets.inodes(port: port)
            if inodes.isEmpty {
                candidates = []
                searched += "; nothing listens on TCP port \(port) (/proc/net/tcp, /proc/net/tcp6)"
            } else {
                let (holders, unreadable) = ListeningSockets.holders(of: inodes, among: candidates.map(\.pid))
                let holding = Set(holders)
                candidates = candidates.filter { holding.contains($0.pid) }
                if candidates.isEmpty && unreadable > 0 {
                    searched +=
                        "; port \(port) is listened on, but \(unreadable) processes' descriptors could not be read (they belong to other users)"
                }
            }
        }

        var matches: [Match] = []
        for process in candidates.sorted(by: { $0.pid < $1.pid }) {
            let owner: ManagedService? = if let serviceOfCandidates { serviceOfCandidates } else { await services?.service(forPID: process.pid) }
            matches.append(Match(process: process, service: owner))
        }
        return (matches, searched)
    }

    static func readPidfile(_ path: String) throws -> pid_t {
        guard FileManager.default.fileExists(atPath: path) else { throw ActivityFailure("pidfile \(path) does not exist") }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ActivityFailure("cannot read pidfile \(path)") }
        let first = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard let pid = pid_t(first), pid > 0 else {
            throw ActivityFailure("pidfile \(path) does not hold a pid (found \"\(first.prefix(40))\")")
        }
        return pid
    }
}

/// What Faultline never signals, and which of several matches it picks.
enum TargetPolicy {
    /// Why `process` may not be signalled, or nil.
    static func refusal(_ process: SystemProcess, allowForeign: Bool, lineage: Set<pid_t>) -> String? {
        if process.pid == 1 { return "pid 1 (init) is never signalled" }
        if process.pid == getpid() { return "it is faultline itself" }
        if process.pid == getppid() { return "it is faultline's parent" }
        if lineage.contains(process.pid) { return "it is an ancestor of faultline" }
        if process.isKernelThread { return "it is a kernel thread" }
        if !allowForeign && process.uid != getuid() {
            return "it belongs to \(process.user), not to \(SystemProcess.userName(getuid())) (allow_foreign: true allows it)"
        }
        return nil
    }

    /// Splits matches into those that may be signalled and refusals.
    static func screen(_ matches: [ProcessSelection.Match], allowForeign: Bool) -> (
        allowed: [ProcessSelection.Match], refused: [(ProcessSelection.Match, String)]
    ) {
        let lineage = SystemProcess.ownLineage()
        var allowed: [ProcessSelection.Match] = []
        var refused: [(ProcessSelection.Match, String)] = []
        for match in matches {
            if let reason = refusal(match.process, allowForeign: allowForeign, lineage: lineage) {
                refused.append((match, reason))
            } else {
                allowed.append(match)
            }
        }
        return (allowed, refused)
    }

    /// Picks `count` of the matches at random (with the run's seed, so `--seed` replays the
    /// choice), or all of them. Several matches with neither is an error: killing one of several
    /// by accident is worse than saying so.
    static func pick<T>(_ matches: [T], count: Int?, all: Bool, random: inout SeededRandom, describe: (T) -> String) throws -> [T] {
        if all || matches.count <= 1 { return matches }
        guard let count else {
            throw ActivityFailure(
                "\(matches.count) processes match; set count: N to pick N of them at random, or all: true",
                details: matches.map(describe))
        }
        if count >= matches.count { return matches }
        var indices = Array(matches.indices)
        indices.shuffle(using: &random)
        return indices.prefix(count).sorted().map { matches[$0] }
    }

    /// The message for a selection that found nothing to act on.
    static func nothingFound(_ selection: ProcessSelection, searched: String, refused: [(ProcessSelection.Match, String)]) -> ActivityFailure {
        if refused.isEmpty {
            return ActivityFailure("no process matches \(selection.summary) (searched \(searched))")
        }
        return ActivityFailure(
            "refusing to signal what matches \(selection.summary)",
            details: refused.map { "pid \($0.0.process.pid) (\($0.0.process.commandLine)): \($0.1)" },
            output: ["refused": .array(refused.map { describe($0.0.process, ["reason": .string($0.1)]) })])
    }

    /// A process for outputs: `{pid, command, user}` and extra members.
    static func describe(_ process: SystemProcess, _ extra: ValueObject = [:]) -> Value {
        var object: ValueObject = ["pid": .int(Int(process.pid)), "command": .string(process.commandLine), "user": .string(process.user)]
        if let host = process.host { object["host"] = .string(host) }
        for (key, value) in extra { object[key] = value }
        return .object(object)
    }
}
