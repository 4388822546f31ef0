#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import FaultlineKit
import Foundation

/// The selection and the safety options `process.kill` and `process.signal` share.
public struct ProcessTargeting: Codable, Sendable, NumberRanges {
    public static let numberRanges = ProcessSelection.numberRanges.merging(["count": .count(100_000)]) { a, _ in a }

    /// Which processes match.
    public var selection: ProcessSelection
    /// Pick this many of several matches at random (with the run's seed).
    public var count: Int?
    /// Act on every match.
    public var all: Bool
    /// Allow processes of other users.
    public var allowForeign: Bool
    /// Another machine, reached over ssh; nil for this one.
    public var host: RemoteHost?

    enum CodingKeys: String, CodingKey {
        case count, all, host
        case allowForeign = "allow_foreign"
    }

    public init(selection: ProcessSelection, count: Int? = nil, all: Bool = false, allowForeign: Bool = false, host: RemoteHost? = nil) {
        self.selection = selection
        self.count = count
        self.all = all
        self.allowForeign = allowForeign
        self.host = host
    }

    public init(from decoder: any Decoder) throws {
        selection = try ProcessSelection(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        count = try c.decodeIfPresent(Int.self, forKey: .count)
        all = try c.decodeIfPresent(Bool.self, forKey: .all) ?? false
        allowForeign = try c.decodeIfPresent(Bool.self, forKey: .allowForeign) ?? false
        host = try c.decodeIfPresent(RemoteHost.self, forKey: .host)
    }

    public func encode(to encoder: any Encoder) throws {
        try selection.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(count, forKey: .count)
        try c.encode(all, forKey: .all)
        try c.encode(allowForeign, forKey: .allowForeign)
        try c.encodeIfPresent(host, forKey: .host)
    }

    static let help = ProcessSelection.help.merging([
        "count": "when several processes match, act on this many, picked at random with the run's seed",
        "all": "act on every matching process",
        "allow_foreign": "allow processes owned by other users",
        "host": RemoteHost.help,
    ]) { a, _ in a }

    func problems() -> [ArgumentError] {
        var problems = selection.problems()
        if let count, count < 1 { problems.append(ArgumentError("count", "count must be at least 1")) }
        if count != nil && all { problems.append(ArgumentError("all", "give count or all, not both")) }
        if let host {
            problems += host.problems()
            if selection.service != nil {
                problems.append(
                    ArgumentError(
                        "host", "a service already says where it runs", hint: "remove host, or select the processes by name, pattern, port or pidfile"
                    ))
            }
        }
        return problems
    }

    /// The service `service:` names when it runs on another host.
    func remoteService(_ context: ActivityContext) async -> ManagedService? {
        guard let name = selection.service, let services = context.resources[ServicesKey.self],
            let service = try? await services.service(named: name), service.definition.settings.host != nil
        else { return nil }
        return service
    }

    /// Whether the targets are on another host: `host:`, or a service that runs on one.
    func isRemote(_ context: ActivityContext) async -> Bool {
        if host != nil { return true }
        return await remoteService(context) != nil
    }

    /// Resolves, screens and picks the targets.
    /// - Throws: `ActivityFailure` saying what was searched when nothing may be acted on.
    func targets(context: ActivityContext, shells: RemoteShells? = nil) async throws -> (
        chosen: [ProcessSelection.Match], matched: Int, refused: [(ProcessSelection.Match, String)]
    ) {
        let remoteService = await self.remoteService(context)
        if let shells, let host = host ?? remoteService?.definition.settings.host {
            var selection = selection
            if let remoteService {
                guard let pid = await remoteService.pid else {
                    throw ActivityFailure(
                        "service \"\(remoteService.name)\" is not running",
                        details: ["process.start with service: \(remoteService.name) starts it again"])
                }
                selection.service = nil
                selection.pid = Int(pid)
            }
            let found = try await Remote.select(selection, on: host, shells: shells)
            var allowed: [ProcessSelection.Match] = []
            var refused: [(ProcessSelection.Match, String)] = []
            for process in found.matches {
                let match = ProcessSelection.Match(process: process, service: remoteService, host: host)
                if let reason = Remote.refusal(process, selection: found, allowForeign: allowForeign) {
                    refused.append((match, reason))
                } else {
                    allowed.append(match)
                }
            }
            guard !allowed.isEmpty else { throw TargetPolicy.nothingFound(selection, searched: found.searched, refused: refused) }
            var random = context.makeRandom()
            let chosen = try TargetPolicy.pick(allowed, count: count, all: all, random: &random) {
                "pid \($0.process.pid): \($0.process.commandLine)"
            }
            return (chosen, found.matches.count, refused)
        }
        let services = context.resources[ServicesKey.self]
        let (matches, searched) = try await selection.resolve(services: services)
        if matches.isEmpty, let name = selection.service, let service = try? await services?.service(named: name), await !service.isRunning {
            throw ActivityFailure("service \"\(name)\" is not running", details: ["process.start with service: \(name) starts it again"])
        }
        let (allowed, refused) = TargetPolicy.screen(matches, allowForeign: allowForeign)
        guard !allowed.isEmpty else { throw TargetPolicy.nothingFound(selection, searched: searched, refused: refused) }
        var random = context.makeRandom()
        let chosen = try TargetPolicy.pick(allowed, count: count, all: all, random: &random) { "pid \($0.process.pid): \($0.process.commandLine)" }
        return (chosen, matches.count, refused)
    }
}

/// `process.kill`: sends a signal (TERM by default) and waits for the processes to end; those
/// still running after `grace` seconds get SIGKILL.
public struct ProcessKill: Action {
    public static let type = "process.kill"
    public static let summary = "Kill processes by pid, pidfile, name, pattern, port or service; SIGKILL after a grace"
    public static let handlesDryRun = true
    public static let argumentHelp = ProcessTargeting.help.merging([
        "signal": "signal name or number (default TERM)",
        "grace": "seconds to wait for the processes to end before SIGKILL",
    ]) { a, _ in a }

    /// `process.kill`'s arguments: a selection, `signal` and `grace`.
    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges = ProcessTargeting.numberRanges.merging(["grace": .seconds]) { a, _ in a }
        public var targeting: ProcessTargeting
        /// A name (`TERM`, `SIGTERM`) or a number.
        public var signal: String
        /// Seconds the targets have to end after `signal` before SIGKILL.
        public var grace: Double

        enum CodingKeys: String, CodingKey { case signal, grace }

        public init(targeting: ProcessTargeting, signal: String = "TERM", grace: Double = 5) {
            self.targeting = targeting
            self.signal = signal
            self.grace = grace
        }

        public init(from decoder: any Decoder) throws {
            targeting = try ProcessTargeting(from: decoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            signal = try c.decodeIfPresent(SignalArgument.self, forKey: .signal)?.text ?? "TERM"
            grace = try c.decodeIfPresent(Double.self, forKey: .grace) ?? 5
        }

        public func encode(to encoder: any Encoder) throws {
            try targeting.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(signal, forKey: .signal)
            try c.encode(grace, forKey: .grace)
        }
    }

    /// How long a process has to vanish after SIGKILL before the kill counts as failed.
    static let killWait = 5.0

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        var problems = arguments.targeting.problems()
        if SignalName.number(arguments.signal) == nil {
            problems.append(ArgumentError("signal", "unknown signal \"\(arguments.signal)\"", hint: SignalName.hint(for: arguments.signal)))
        }
        if arguments.grace < 0 { problems.append(ArgumentError("grace", "grace cannot be negative")) }
        if let first = problems.first { throw first }
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        guard await arguments.targeting.isRemote(context) else { return try await perform(arguments, context: context, shells: nil) }
        return try await Remote.withShells(context) { try await perform(arguments, context: context, shells: $0) }
    }

    private func perform(_ arguments: Arguments, context: ActivityContext, shells: RemoteShells?) async throws -> Value {
        let signal = SignalName.number(arguments.signal) ?? SIGTERM
        let (chosen, matched, refused) = try await arguments.targeting.targets(context: context, shells: shells)
        var output: ValueObject = [
            "signal": .string(SignalName.name(of: signal)), "grace": .double(arguments.grace),
            "selector": .string(arguments.targeting.selection.summary),
            "matched": .int(matched),
        ]
        if !refused.isEmpty { output["refused"] = .array(refused.map { TargetPolicy.describe($0.0.process, ["reason": .string($0.1)]) }) }
        if context.isDryRun {
            output["dry_run"] = true
            let plan =
                signal == SIGKILL ? "SIGKILL" : "\(SignalName.name(of: signal)), then SIGKILL after \(ManagedService.format(arguments.grace)) s"
            output["targets"] = .array(
                chosen.map { TargetPolicy.describe($0.process, ["would": .string(plan), "service": $0.service.map { .string($0.name) } ?? .null]) })
            return .object(output)
        }
        let results = await withTaskGroup(of: (Int, Value, Bool).self) { group in
            for (index, match) in chosen.enumerated() {
                group.addTask {
                    if let host = match.host, let shells {
                        let (value, ok) = await Self.killRemote(
                            match, host: host, signal: signal, grace: arguments.grace, shells: shells, context: context)
                        return (index, value, ok)
                    }
                    let (value, ok) = await Self.kill(match, signal: signal, grace: arguments.grace, context: context)
                    return (index, value, ok)
                }
            }
            var results: [(Int, Value, Bool)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }
        }
        output["targets"] = .array(results.map(\.1))
        let survivors = results.filter { !$0.2 }
        if !survivors.isEmpty {
            throw ActivityFailure(
                "\(survivors.count) of \(results.count) process\(results.count == 1 ? "" : "es") did not end",
                details: survivors.map { "pid \($0.1["pid"]?.intValue ?? 0): \($0.1["ended"]?.stringValue ?? "")" }, output: .object(output))
        }
        return .object(output)
    }

    /// Kills one process on another host.
    /// - Returns: its description with `ended`, and whether it ended.
    static func killRemote(
        _ match: ProcessSelection.Match, host: RemoteHost, signal: Int32, grace: Double, shells: RemoteShells, context: ActivityContext
    ) async -> (Value, Bool) {
        let name = SignalName.name(of: signal)
        let fault = await FaultMarks.beginKill(match, signal: signal, context: context)
        let outcome: String
        let seconds: Double
        do {
            (outcome, seconds) = try await Remote.kill(match.process, host: host, signal: signal, grace: grace, shells: shells)
        } catch {
            context.endFault(fault)
            return (TargetPolicy.describe(match.process, ["signal": .string(name), "ended": .string("not signalled: \(error)")]), false)
        }
        let ended: String
        var ok = true
        switch outcome {
        case "gone": ended = "had already exited"
        case "ended": ended = "ended \(ManagedService.format(seconds)) s after \(name)"
        case "killed": ended = "ignored \(name) for \(ManagedService.format(grace)) s; killed with SIGKILL"
        case "survived":
            ok = false
            ended =
                signal == SIGKILL
                ? "still running \(ManagedService.format(killWait)) s after SIGKILL"
                : "ignored \(name) and was still running \(ManagedService.format(killWait)) s after SIGKILL"
        default:
            ok = false
            ended = "not signalled: " + outcome.dropFirst("failed ".count)
        }
        var extra: ValueObject = [
            "signal": .string(name), "ended": .string(ended), "escalated": .bool(outcome == "killed"), "seconds": .double(seconds),
        ]
        // A service's window stays open until it is started again.
        if let service = match.service {
            extra["service"] = .string(service.name)
            // Its session ends with it; until then it would count as running.
            if outcome == "ended" || outcome == "killed" { await service.awaitSessionEnd(timeout: 10) }
        } else if ok {
            context.endFault(fault)
        }
        return (TargetPolicy.describe(match.process, extra), ok)
    }

    /// Kills one process (a service's whole process group).
    /// - Returns: its description with `ended`, and whether it ended.
    static func kill(_ match: ProcessSelection.Match, signal: Int32, grace: Double, context: ActivityContext) async -> (Value, Bool) {
        let name = SignalName.name(of: signal)
        guard let handle = ProcessHandle(match.process) else {
            return (TargetPolicy.describe(match.process, ["signal": .string(name), "ended": "had already exited"]), true)
        }
        let fault = await FaultMarks.beginKill(match, signal: signal, context: context)
        let began = ContinuousClock.now
        if let failure = Signalling.send(signal, to: handle, service: match.service) {
            context.endFault(fault)
            return (TargetPolicy.describe(match.process, ["signal": .string(name), "ended": .string("not signalled: \(failure)")]), false)
        }
        // A frozen process acts on the signal only once it runs again (as systemd does).
        if signal != SIGKILL && !Signalling.harmless.contains(signal) { _ = Signalling.send(SIGCONT, to: handle, service: match.service) }
        var ended: String
        var escalated = false
        var exited = await handle.waitForExit(timeout: signal == SIGKILL ? killWait : grace)
        let interrupted = !exited && Task.isCancelled
        if exited {
            ended = "ended \(ManagedService.format((ContinuousClock.now - began).seconds)) s after \(name)"
        } else if interrupted {
            ended = "still running when the activity was interrupted"
        } else if signal == SIGKILL {
            ended = "still running \(ManagedService.format(killWait)) s after SIGKILL"
        } else {
            escalated = true
            _ = Signalling.send(SIGKILL, to: handle, service: match.service)
            exited = await handle.waitForExit(timeout: killWait)
            ended =
                exited
                ? "ignored \(name) for \(ManagedService.format(grace)) s; killed with SIGKILL"
                : "ignored \(name) and was still running \(ManagedService.format(killWait)) s after SIGKILL"
        }
        var extra: ValueObject = [
            "signal": .string(name), "ended": .string(ended), "escalated": .bool(escalated),
            "seconds": .double((ContinuousClock.now - began).seconds),
        ]
        if let service = match.service {
            extra["service"] = .string(service.name)
            if exited, let status = await service.lastTermination() { extra["status"] = .string(status.description) }
        } else if exited {
            context.endFault(fault)
        }
        return (TargetPolicy.describe(match.process, extra), exited || interrupted)
    }
}

/// `process.signal`: sends any signal. STOP (or TSTP, TTIN, TTOU) freezes a process until CONT,
/// and the experiment's end sends CONT to anything still frozen.
public struct ProcessSignal: Action {
    public static let type = "process.signal"
    public static let summary = "Send a signal (STOP/CONT to freeze and thaw) to processes by pid, pidfile, name, pattern, port or service"
    public static let handlesDryRun = true
    public static let argumentHelp = ProcessTargeting.help.merging(["signal": "signal name or number, e.g. STOP, CONT, HUP, USR1"]) { a, _ in a }

    /// `process.signal`'s arguments: a selection and the signal.
    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges = ProcessTargeting.numberRanges
        public var targeting: ProcessTargeting
        /// A name (`STOP`, `SIGCONT`) or a number.
        public var signal: String

        enum CodingKeys: String, CodingKey { case signal }

        public init(targeting: ProcessTargeting, signal: String) {
            self.targeting = targeting
            self.signal = signal
        }

        public init(from decoder: any Decoder) throws {
            targeting = try ProcessTargeting(from: decoder)
            signal = try decoder.container(keyedBy: CodingKeys.self).decode(SignalArgument.self, forKey: .signal).text
        }

        public func encode(to encoder: any Encoder) throws {
            try targeting.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(signal, forKey: .signal)
        }
    }

    /// How long to watch for a stop or a continue to take effect.
    static let settleTime = 1.0

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        var problems = arguments.targeting.problems()
        if SignalName.number(arguments.signal) == nil {
            problems.append(ArgumentError("signal", "unknown signal \"\(arguments.signal)\"", hint: SignalName.hint(for: arguments.signal)))
        }
        if let first = problems.first { throw first }
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        guard await arguments.targeting.isRemote(context) else { return try await perform(arguments, context: context, shells: nil) }
        return try await Remote.withShells(context) { try await perform(arguments, context: context, shells: $0) }
    }

    private func perform(_ arguments: Arguments, context: ActivityContext, shells: RemoteShells?) async throws -> Value {
        let signal = SignalName.number(arguments.signal) ?? SIGTERM
        let name = SignalName.name(of: signal)
        let (chosen, matched, refused) = try await arguments.targeting.targets(context: context, shells: shells)
        var output: ValueObject = ["signal": .string(name), "selector": .string(arguments.targeting.selection.summary), "matched": .int(matched)]
        if !refused.isEmpty { output["refused"] = .array(refused.map { TargetPolicy.describe($0.0.process, ["reason": .string($0.1)]) }) }
        if context.isDryRun {
            output["dry_run"] = true
            output["targets"] = .array(chosen.map { TargetPolicy.describe($0.process, ["would": .string("receive \(name)")]) })
            return .object(output)
        }
        var targets: [Value] = []
        var failures: [String] = []
        for match in chosen {
            if let host = match.host, let shells {
                let state = try await Self.signalRemote(match, host: host, signal: signal, shells: shells, context: context)
                if state.hasPrefix("failed") { failures.append("pid \(match.process.pid): \(state.dropFirst(7))") }
                targets.append(TargetPolicy.describe(match.process, ["state": .string(state)]))
                continue
            }
            guard let handle = ProcessHandle(match.process) else {
                targets.append(TargetPolicy.describe(match.process, ["state": "exited", "note": "had already exited"]))
                continue
            }
            await FaultMarks.beforeSignal(signal, match: match, handle: handle, context: context)
            if let failure = Signalling.send(signal, to: handle, service: match.service) {
                failures.append("pid \(match.process.pid): \(failure)")
                targets.append(TargetPolicy.describe(match.process, ["state": "unchanged", "note": .string("not signalled: \(failure)")]))
                continue
            }
            FaultMarks.afterSignal(signal, match: match, context: context)
            // A stop or a continue takes effect asynchronously; watch /proc until it shows.
            let state: String
            if Signalling.stops.contains(signal) {
                state = await Signalling.settle(handle, timeout: Self.settleTime) { $0.isStopped }
            } else if signal == SIGCONT {
                state = await Signalling.settle(handle, timeout: Self.settleTime) { !$0.isStopped }
            } else {
                state = Signalling.describeState(handle)
            }
            targets.append(
                TargetPolicy.describe(match.process, ["state": .string(state), "service": match.service.map { .string($0.name) } ?? .null]))
        }
        output["targets"] = .array(targets)
        if !failures.isEmpty { throw ActivityFailure("could not signal \(failures.count) process(es)", details: failures, output: .object(output)) }
        return .object(output)
    }
}

extension ProcessSignal {
    /// Signals one process on another host; a stop is in the ledger and undone (CONT) when the
    /// experiment ends, as locally.
    /// - Returns: its state then, or `failed <why>`.
    static func signalRemote(
        _ match: ProcessSelection.Match, host: RemoteHost, signal: Int32, shells: RemoteShells, context: ActivityContext
    ) async throws -> String {
        let process = match.process
        guard Signalling.stops.contains(signal) else {
            if !Signalling.harmless.contains(signal), let service = match.service {
                await service.expectExit()
                await FaultMarks.restartWhenExperimentEnds(service, context: context)
            }
            let state = try await Remote.signal(process, host: host, signal: signal, shells: shells)
            if !state.hasPrefix("failed") { FaultMarks.afterSignal(signal, match: match, context: context) }
            return state
        }
        let id = FaultMarks.freezeFault(process)
        let command = FaultMarks.shortCommand(process)
        let ledger = context.resources.ledger
        let token = ledger.record(RemoteStoppedProcess(host: host.absolute, pid: process.pid, startTime: process.startTime, command: command))
        let since = Timestamp.now()
        let state = try await Remote.signal(process, host: host, signal: signal, shells: shells)
        guard state == "stopped" || state == "running" else {
            ledger.remove(token)
            return state
        }
        context.beginFault("pid \(process.pid) on \(host.display) frozen (\(command))", id: id, since: since)
        context.registerCleanup("resume pid \(process.pid) (\(command)) on \(host.display) with SIGCONT") {
            let state = try await Remote.signal(process, host: host, signal: SIGCONT, shells: shells)
            if state.hasPrefix("failed") { throw ActivityFailure("cannot resume pid \(process.pid) on \(host.display): \(state)") }
            ledger.remove(token)
            context.endFault(id)
        }
        return state
    }
}

/// `process.running`: whether processes matching a selection run. Output `{running, count, pids,
/// processes}`; the tolerance `true`/`false` judges `running` and a number judges `count`.
public struct ProcessRunning: Probe, ToleranceProviding {
    public static let type = "process.running"
    public static let summary = "Whether processes matching pid, pidfile, name, pattern, port or service run: {running, count, pids}"
    public static let argumentHelp = ProcessSelection.help.merging(["host": RemoteHost.help]) { a, _ in a }

    /// A selection, and the host to look on.
    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges = ProcessSelection.numberRanges
        public var selection: ProcessSelection
        /// Another machine, reached over ssh; nil for this one.
        public var host: RemoteHost?

        enum CodingKeys: String, CodingKey { case host }

        public init(selection: ProcessSelection, host: RemoteHost? = nil) {
            self.selection = selection
            self.host = host
        }

        public init(from decoder: any Decoder) throws {
            selection = try ProcessSelection(from: decoder)
            host = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(RemoteHost.self, forKey: .host)
        }

        public func encode(to encoder: any Encoder) throws {
            try selection.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(host, forKey: .host)
        }
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        // The same checks as process.kill's, without its count and all.
        if let first = ProcessTargeting(selection: arguments.selection, host: arguments.host).problems().first { throw first }
    }

    public func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let targeting = ProcessTargeting(selection: arguments.selection, host: arguments.host)
        let matches: [ProcessSelection.Match]
        if await targeting.isRemote(context) {
            let remoteService = await targeting.remoteService(context)
            var selection = arguments.selection
            if let remoteService {
                guard let pid = await remoteService.pid else { return ["running": false, "count": 0, "pids": [], "processes": []] }
                selection.service = nil
                selection.pid = Int(pid)
            }
            guard let host = arguments.host ?? remoteService?.definition.settings.host else { return [:] }
            matches = try await Remote.withShells(context) { shells in
                try await Remote.select(selection, on: host, shells: shells).matches.map { ProcessSelection.Match(process: $0, host: host) }
            }
        } else {
            matches = try await arguments.selection.resolve(services: context.resources[ServicesKey.self]).matches
        }
        return [
            "running": .bool(!matches.isEmpty), "count": .int(matches.count), "pids": .array(matches.map { .int(Int($0.process.pid)) }),
            "processes": .array(matches.map { TargetPolicy.describe($0.process, ["state": .string(String($0.process.state))]) }),
        ]
    }

    public static func tolerance(from node: SourceNode, path: DocumentPath) throws -> (any ToleranceCheck)? {
        switch node.scalar {
        case .bool(let expected)?: RunningTolerance(expected: .bool(expected))
        case .int(let expected)?: RunningTolerance(expected: .int(expected))
        default: nil
        }
    }
}

/// `tolerance: true` (something runs), `false` (nothing does) or a count, for `process.running`.
struct RunningTolerance: ToleranceCheck {
    var expected: Value

    func check(_ output: Value) -> ToleranceOutcome {
        switch expected {
        case .bool(let running):
            let actual = output["running"]?.boolValue ?? false
            return actual == running
                ? ToleranceOutcome(met: true)
                : ToleranceOutcome(
                    met: false,
                    message: running
                        ? "no matching process runs"
                        : "\(output["count"]?.intValue ?? 0) matching process(es) run: pids \(output["pids"]?.description ?? "[]")")
        default:
            let count = output["count"]?.intValue ?? 0
            return count == expected.intValue
                ? ToleranceOutcome(met: true) : ToleranceOutcome(met: false, message: "\(count) matching process(es) run, expected \(expected)")
        }
    }

    var summary: Value { expected }
}

/// Sending signals, and watching them take effect.
enum Signalling {
    static let stops: Set<Int32> = [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU]
    /// Signals whose default action does not end a process.
    static let harmless: Set<Int32> = [SIGCONT, SIGCHLD, SIGURG, SIGWINCH, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU]

    /// Sends `signal` to the process, or to a service's whole process group.
    /// - Returns: nil when sent, else why not.
    static func send(_ signal: Int32, to handle: ProcessHandle, service: ManagedService?) -> String? {
        guard service != nil else { return handle.send(signal) }
        // The service's main process leads its group; the handle proves it still runs, so the
        // group id cannot have been reused.
        guard !handle.hasExited else { return "it had already exited" }
        return kill(-handle.pid, signal) == 0 ? nil : String(cString: strerror(errno))
    }

    /// Watches `/proc` until `condition` holds, at most `timeout` seconds.
    /// - Returns: the state then: `stopped`, `running` or `exited`.
    static func settle(_ handle: ProcessHandle, timeout: Double, until condition: (SystemProcess) -> Bool) async -> String {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while let now = handle.current, !condition(now), ContinuousClock.now < deadline {
            guard (try? await Task.sleep(for: .milliseconds(5))) != nil else { break }
        }
        return describeState(handle)
    }

    static func describeState(_ handle: ProcessHandle) -> String {
        guard let now = handle.current else { return "exited" }
        return now.isStopped ? "stopped" : "running"
    }
}

/// Fault windows for reports' timelines, and the cleanups that undo what an experiment did to
/// processes.
enum FaultMarks {
    static func serviceFault(_ name: String) -> String { "service:\(name)" }
    static func freezeFault(_ process: SystemProcess) -> String { "freeze:\(process.pid):\(process.startTime)" }

    static func shortCommand(_ process: SystemProcess) -> String {
        let text = process.commandLine
        return text.count > 60 ? String(text.prefix(57)) + "…" : text
    }

    /// Opens the window of a kill; for a service, registers its restart.
    static func beginKill(_ match: ProcessSelection.Match, signal: Int32, context: ActivityContext) async -> String {
        let name = SignalName.name(of: signal)
        if let service = match.service {
            await service.expectExit()
            let id = context.beginFault("service \(service.name) killed (\(name))", id: serviceFault(service.name))
            await restartWhenExperimentEnds(service, context: context)
            return id
        }
        return context.beginFault(
            "\(name) pid \(match.process.pid) (\(shortCommand(match.process)))", id: "kill:\(match.process.pid):\(match.process.startTime)")
    }

    /// Before a `process.signal`: a stop opens a freeze window and registers the CONT that ends
    /// it; a signal that may end a service registers its restart.
    static func beforeSignal(_ signal: Int32, match: ProcessSelection.Match, handle: ProcessHandle, context: ActivityContext) async {
        let process = match.process
        if Signalling.stops.contains(signal) {
            let id = freezeFault(process)
            let label =
                match.service.map { "service \($0.name) frozen (\(SignalName.name(of: signal)))" }
                ?? "pid \(process.pid) frozen (\(shortCommand(process)))"
            context.beginFault(label, id: id)
            let service = match.service
            // In the ledger before the stop, so a run killed while it holds the process frozen
            // leaves `faultline recover` the CONT to send.
            let ledger = context.resources.ledger
            let entry = StoppedProcess(pid: process.pid, startTime: process.startTime, group: service != nil, command: shortCommand(process))
            let token = ledger.record(entry)
            context.registerCleanup("resume pid \(process.pid) (\(shortCommand(process))) with SIGCONT") {
                // Whatever runs it now is the same process: the handle pins it.
                if !handle.hasExited { _ = Signalling.send(SIGCONT, to: handle, service: service) }
                ledger.remove(token)
                context.endFault(id)
            }
        } else if !Signalling.harmless.contains(signal), let service = match.service {
            await service.expectExit()
            await restartWhenExperimentEnds(service, context: context)
        }
    }

    /// After a `process.signal`: CONT closes a freeze window; other signals are instants.
    static func afterSignal(_ signal: Int32, match: ProcessSelection.Match, context: ActivityContext) {
        if signal == SIGCONT {
            context.endFault(freezeFault(match.process))
        } else if !Signalling.stops.contains(signal) {
            let id = context.beginFault("\(SignalName.name(of: signal)) to pid \(match.process.pid) (\(shortCommand(match.process)))")
            context.endFault(id)
        }
    }

    /// A suite service an experiment takes down comes back when the experiment ends.
    static func restartWhenExperimentEnds(_ service: ManagedService, context: ActivityContext) async {
        guard service.owner == .suite else { return }
        let name = service.name
        context.registerCleanup("restart service \(name) if it is down") {
            _ = try await service.start()
            context.endFault(serviceFault(name))
        }
    }
}
