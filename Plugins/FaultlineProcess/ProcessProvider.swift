import FaultlineKit
import Foundation

/// Chaos Toolkit's `process` provider: runs a program and returns `{status, stdout, stderr}`.
///
/// Unlike Chaos Toolkit, a list of `arguments` is argv and never goes through a shell; a string
/// runs through `/bin/sh -c` (as Chaos Toolkit always does) with a warning unless `shell: true`
/// says that is intended. A non-zero exit is not a failure — the tolerance judges the status — but
/// a timeout is: the whole process group is stopped and the activity fails.
public struct ProcessProvider: Probe, Action {
    public static let type = "process"
    public static let summary = "Run a program; output {status, stdout, stderr}"
    public static let argumentHelp = [
        "path": "program to run: a path, or a name looked up in PATH",
        "arguments": "argv as a list (no shell); a string runs through /bin/sh -c",
        "timeout": "seconds before the process group is stopped and the activity fails",
        "env": "environment variables added to Faultline's",
        "cwd": "working directory",
        "shell": "run path and a string of arguments through /bin/sh -c, on purpose",
        "host": RemoteHost.help,
    ]

    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["timeout": .seconds]
        public var path: String
        public var arguments: CommandArguments
        public var timeout: Double?
        public var env: [String: String]
        public var cwd: String?
        public var shell: Bool
        /// Another machine to run it on, over ssh; nil for this one.
        public var host: RemoteHost?

        enum CodingKeys: String, CodingKey { case path, arguments, timeout, env, cwd, shell, host }

        public init(
            path: String, arguments: CommandArguments = .list([]), timeout: Double? = nil, env: [String: String] = [:], cwd: String? = nil,
            shell: Bool = false, host: RemoteHost? = nil
        ) {
            self.path = path
            self.arguments = arguments
            self.timeout = timeout
            self.env = env
            self.cwd = cwd
            self.shell = shell
            self.host = host
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            path = try c.decode(String.self, forKey: .path)
            arguments = try c.decodeIfPresent(CommandArguments.self, forKey: .arguments) ?? .list([])
            timeout = try c.decodeIfPresent(Double.self, forKey: .timeout)
            env = (try c.decodeIfPresent([String: Value].self, forKey: .env) ?? [:]).mapValues { $0.stringValue ?? $0.description }
            cwd = try c.decodeIfPresent(String.self, forKey: .cwd)
            shell = try c.decodeIfPresent(Bool.self, forKey: .shell) ?? false
            host = try c.decodeIfPresent(RemoteHost.self, forKey: .host)
        }
    }

    /// `arguments` as Chaos Toolkit accepts them.
    public enum CommandArguments: Codable, Sendable, Equatable {
        /// argv; `null` and empty strings are dropped, anything else written as Python's `str()`
        /// writes it (`True`, `1.0`, `{'a': 1}`), as chaoslib's `process` provider does.
        case list([String])
        /// One string for `/bin/sh -c`.
        case string(String)

        public init(from decoder: any Decoder) throws {
            let value = try Value(from: decoder)
            switch value {
            case .string(let s): self = .string(s)
            case .array(let elements):
                self = .list(Self.argv(elements))
            case .object(let object):
                // Chaos Toolkit's deprecated mapping form: flattened to `key value` pairs.
                self = .list(Self.argv(object.flatMap { [Value.string($0.key), $0.value] }))
            case .null: self = .list([])
            default: self = .string(value.description)
            }
        }

        /// chaoslib: `[str(p) for p in arguments if p not in (None, "")]`.
        static func argv(_ elements: [Value]) -> [String] {
            elements.compactMap { element in
                switch element {
                case .null: nil
                case .string(let s): s.isEmpty ? nil : s
                default: element.pythonText
                }
            }
        }

        public func encode(to encoder: any Encoder) throws {
            switch self {
            case .list(let l): try l.encode(to: encoder)
            case .string(let s): try s.encode(to: encoder)
            }
        }
    }

    public init() {}

    /// argv is readable by every user in /proc/<pid>/cmdline: no secret there.
    public static let visibleArgumentKeys = ["path", "arguments"]

    public static func validate(_ arguments: Arguments) throws {
        if let timeout = arguments.timeout, timeout <= 0 {
            throw ArgumentError("timeout", "timeout must be more than 0 seconds")
        }
        if let host = arguments.host {
            // The path and the working directory are the other host's.
            if let first = host.problems().first { throw first }
            if let key = arguments.env.keys.sorted().first(where: { !RemoteCommand.isVariableName($0) }) {
                throw ArgumentError(
                    "env", "\"\(key)\" is not an environment variable name", hint: "use letters, digits and _, not starting with a digit")
            }
            if arguments.path.isEmpty { throw ArgumentError("path", "path is empty") }
            return
        }
        if let cwd = arguments.cwd {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: cwd, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ArgumentError("cwd", "working directory \(cwd) does not exist")
            }
        }
        guard !arguments.shell else { return }
        do {
            _ = try ChildProcess.resolveExecutable(arguments.path)
        } catch let error as SpawnError {
            throw ArgumentError("path", error.description)
        }
    }

    public static func timeLimit(_ arguments: Arguments) -> Double? { arguments.timeout }

    public static func warnings(_ arguments: Arguments) -> [ArgumentError] {
        if case .string = arguments.arguments, !arguments.shell {
            return [
                ArgumentError(
                    "arguments", "a string of arguments runs through /bin/sh -c",
                    hint: "write arguments as a list to run without a shell, or add shell: true if the shell is intended")
            ]
        }
        return []
    }

    /// A process succeeded when it exited 0.
    public static func isSuccess(_ output: Value) -> Bool? { output["status"]?.intValue.map { $0 == 0 } }

    public func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        try await Self.run(arguments, context: context)
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        try await Self.run(arguments, context: context)
    }

    /// Runs the program and collects its output.
    public static func run(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        if let host = arguments.host { return try await runRemote(arguments, host: host, context: context) }
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in arguments.env { environment[key] = value }
        let executable: String
        let argv: [String]
        switch arguments.arguments {
        case .string(let text):
            if !arguments.shell {
                context.logger.warning("running \"\(arguments.path) \(text)\" through /bin/sh -c; write arguments as a list to avoid the shell")
            }
            executable = "/bin/sh"
            argv = ["-c", "\(arguments.path) \(text)"]
        case .list(let list) where arguments.shell:
            executable = "/bin/sh"
            argv = ["-c", ([arguments.path] + list).joined(separator: " ")]
        case .list(let list):
            do {
                executable = try ChildProcess.resolveExecutable(arguments.path, environment: environment)
            } catch {
                throw ActivityFailure("\(error)")
            }
            argv = list
        }

        // Marked and in the ledger, so that if the run is killed while the program runs,
        // `faultline recover` ends it and whatever it left running.
        let prefix = ServiceMarker.nextProgramPrefix()
        environment[ServiceMarker.variable] = prefix
        let ledger = context.resources.ledger
        let token = ledger.record(MarkedProcesses(prefix: prefix, what: "the program of activity \"\(context.activityName)\""))
        defer { ledger.remove(token) }
        let child: ChildProcess
        do {
            child = try ChildProcess(executable: executable, arguments: argv, environment: environment, workingDirectory: arguments.cwd)
        } catch {
            throw ActivityFailure("\(error)")
        }
        context.logger.debug("started \(executable) (pid \(child.pid))")

        let termination = await withTaskCancellationHandler {
            await child.wait(timeout: arguments.timeout)
        } onCancel: {
            child.signal(SIGKILL)
        }
        guard let termination, !Task.isCancelled else {
            let ended = await child.terminate(grace: 1)
            let (stdout, stderr) = await child.collectedOutput()
            if Task.isCancelled { throw CancellationError() }
            throw ActivityFailure(
                "\(arguments.path) timed out after \(Substitution.interpolated(.double(arguments.timeout ?? 0))) s; its process group was stopped (\(ended))",
                details: Array(stderr.split(separator: "\n").suffix(5).map(String.init)),
                output: ["status": .null, "stdout": .string(stdout), "stderr": .string(stderr)])
        }
        let (stdout, stderr) = await child.collectedOutput()
        // Anything the program left running in its group goes with it.
        kill(-child.pid, SIGKILL)
        return ["status": .int(Int(termination.status)), "stdout": .string(stdout), "stderr": .string(stderr)]
    }

    /// argv as the program sees it: a string of arguments runs through `/bin/sh -c`.
    static func commandLine(_ arguments: Arguments) -> [String] {
        switch arguments.arguments {
        case .string(let text): ["/bin/sh", "-c", "\(arguments.path) \(text)"]
        case .list(let list) where arguments.shell: ["/bin/sh", "-c", ([arguments.path] + list).joined(separator: " ")]
        case .list(let list): [arguments.path] + list
        }
    }

    /// Runs the program on another host, over the run's ssh connection to it. It is marked there
    /// and in the ledger, and it ends with its ssh session: a timeout or a killed run ends it.
    static func runRemote(_ arguments: Arguments, host: RemoteHost, context: ActivityContext) async throws -> Value {
        if case .string = arguments.arguments, !arguments.shell {
            context.logger.warning(
                "running \"\(arguments.path) ...\" through /bin/sh -c on \(host.display); write arguments as a list to avoid the shell")
        }
        return try await Remote.withShells(context) { shells in
            let prefix = Remote.markerPrefix("program")
            let ledger = context.resources.ledger
            let token = ledger.record(
                RemoteProcesses(host: host.absolute, prefix: prefix, what: "the program of activity \"\(context.activityName)\""))
            let run: RemoteCommand.Result
            do {
                run = try await RemoteCommand.run(
                    commandLine(arguments), environment: arguments.env, workingDirectory: arguments.cwd, marker: prefix + "1", host: host,
                    shells: shells, timeout: arguments.timeout)
            } catch let error as SSHError {
                ledger.remove(token)
                throw ActivityFailure("\(error)")
            }
            // What the program left running there goes with it, as locally.
            if (try? await Remote.sweep(prefix: prefix, host: host, grace: 0, shells: shells)) != nil { ledger.remove(token) }
            if Task.isCancelled { throw CancellationError() }
            guard let status = run.status else {
                throw ActivityFailure(
                    "\(arguments.path) on \(host.display) timed out after \(Substitution.interpolated(.double(arguments.timeout ?? 0))) s; it was stopped",
                    details: Array(run.stderr.split(separator: "\n").suffix(5).map(String.init)),
                    output: ["status": .null, "stdout": .string(run.stdout), "stderr": .string(run.stderr), "host": .string(host.display)])
            }
            return ["status": .int(Int(status)), "stdout": .string(run.stdout), "stderr": .string(run.stderr), "host": .string(host.display)]
        }
    }
}
