import FaultlineKit
import Foundation

/// A service as a suite's `services:` list (or an experiment's `process.start`) declares it.
///
/// ```yaml
/// services:
///   - name: api
///     command: [python3, -m, http.server, "8080"]
///     env: {PYTHONUNBUFFERED: "1"}
///     cwd: demo
///     ready: {http: "http://127.0.0.1:8080/", status: 200, timeout: 10}
///     stop_signal: TERM
///     stop_grace: 5
/// ```
public struct ServiceDefinition: Codable, Sendable, Equatable, NumberRanges {
    public static let numberRanges = ServiceSettings.numberRanges

    /// Names the service in `${services.NAME.pid}`, in `service:` selectors and in its log file.
    public var name: String
    /// How to run it.
    public var settings: ServiceSettings

    public init(name: String, settings: ServiceSettings) {
        self.name = name
        self.settings = settings
    }

    enum CodingKeys: String, CodingKey { case name }

    public init(from decoder: any Decoder) throws {
        name = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .name)
        settings = try ServiceSettings(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try settings.encode(to: encoder)
    }

    /// What is wrong with the definition, each naming its key.
    public func problems() -> [ArgumentError] {
        var problems: [ArgumentError] = []
        if !Self.isValidName(name) {
            problems.append(
                ArgumentError(
                    "name", "service name \"\(name)\" may hold only letters, digits, - and _",
                    hint: "it names the log file and ${services.\(name).pid}"))
        }
        if settings.command == nil {
            problems.append(
                ArgumentError(
                    "command", "a service needs a command", hint: "write the argv as a list, e.g. command: [python3, -m, http.server, \"8080\"]"))
        }
        return problems + settings.problems()
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }
}

/// How to run a service: everything but its name.
public struct ServiceSettings: Codable, Sendable, Equatable, NumberRanges {
    public static let numberRanges: [String: NumberRange] = ["stop_grace": .seconds]

    /// argv; never run through a shell (write `[sh, -c, "…"]` for one).
    public var command: [String]?
    /// Added to Faultline's environment.
    public var env: [String: String]
    /// The working directory (relative to Faultline's); nil keeps Faultline's.
    public var cwd: String?
    /// When it counts as started; nil: as soon as it runs.
    public var ready: Readiness?
    /// The signal that asks the service to stop (default TERM).
    public var stopSignal: String
    /// Seconds between the stop signal and SIGKILL.
    public var stopGrace: Double
    /// Another machine to run it on, over ssh; nil for this one. There, `command` and `cwd` are
    /// the other host's and `env` is added to the ssh session's environment.
    public var host: RemoteHost?

    enum CodingKeys: String, CodingKey {
        case command, env, cwd, ready, host
        case stopSignal = "stop_signal"
        case stopGrace = "stop_grace"
    }

    public init(
        command: [String]?, env: [String: String] = [:], cwd: String? = nil, ready: Readiness? = nil, stopSignal: String = "TERM",
        stopGrace: Double = 5, host: RemoteHost? = nil
    ) {
        self.command = command
        self.env = env
        self.cwd = cwd
        self.ready = ready
        self.stopSignal = stopSignal
        self.stopGrace = stopGrace
        self.host = host
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        command = try c.decodeIfPresent([Value].self, forKey: .command).map { $0.map { $0.stringValue ?? Substitution.interpolated($0) } }
        env = (try c.decodeIfPresent([String: Value].self, forKey: .env) ?? [:]).mapValues { $0.stringValue ?? Substitution.interpolated($0) }
        cwd = try c.decodeIfPresent(String.self, forKey: .cwd)
        ready = try c.decodeIfPresent(Readiness.self, forKey: .ready)
        stopSignal = try c.decodeIfPresent(SignalArgument.self, forKey: .stopSignal)?.text ?? "TERM"
        stopGrace = try c.decodeIfPresent(Double.self, forKey: .stopGrace) ?? 5
        host = try c.decodeIfPresent(RemoteHost.self, forKey: .host)
    }

    /// Whether anything beyond the defaults was given (an experiment's `process.start` of a known
    /// service must not redefine it).
    var isDefault: Bool { self == ServiceSettings(command: nil) }

    public func problems() -> [ArgumentError] {
        var problems: [ArgumentError] = []
        if let host {
            problems += host.problems()
            if let key = env.keys.sorted().first(where: { !RemoteCommand.isVariableName($0) }) {
                problems.append(
                    ArgumentError(
                        "env", "\"\(key)\" is not an environment variable name", hint: "use letters, digits and _, not starting with a digit"))
            }
        }
        if let command {
            if command.isEmpty || command[0].isEmpty {
                problems.append(ArgumentError("command", "the command is empty", hint: "write the argv as a list, e.g. [python3, -m, http.server]"))
            } else if host == nil {
                do {
                    _ = try resolvedExecutable()
                } catch {
                    problems.append(ArgumentError("command", "\(error)"))
                }
            }
        }
        if let cwd, host == nil {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: cwd, isDirectory: &isDirectory) || !isDirectory.boolValue {
                problems.append(ArgumentError("cwd", "working directory \(cwd) does not exist"))
            }
        }
        if SignalName.number(stopSignal) == nil {
            problems.append(ArgumentError("stop_signal", "unknown signal \"\(stopSignal)\"", hint: SignalName.hint(for: stopSignal)))
        }
        if stopGrace < 0 { problems.append(ArgumentError("stop_grace", "stop_grace cannot be negative")) }
        if let ready { problems += ready.problems().map { ArgumentError("ready" + ($0.key.map { ".\($0)" } ?? ""), $0.message, hint: $0.hint) } }
        return problems
    }

    /// The command's executable: a name is looked up in PATH, a relative path is taken from `cwd`.
    func resolvedExecutable(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        guard let first = command?.first else { throw SpawnError(executable: "", reason: "the command is empty") }
        if first.contains("/"), !first.hasPrefix("/"), !first.hasPrefix("~"), let cwd {
            return try ChildProcess.resolveExecutable((cwd as NSString).appendingPathComponent(first), environment: environment)
        }
        return try ChildProcess.resolveExecutable(first, environment: environment)
    }
}

/// When a service counts as started: a TCP connect, an HTTP status, or a line of its output.
public struct Readiness: Codable, Sendable, Equatable, NumberRanges {
    public static let numberRanges: [String: NumberRange] = [
        "timeout": .seconds, "status": NumberRange(100...599, unit: "(HTTP status)", integer: true),
    ]

    /// `host:port` that accepts a connection.
    public var tcp: String?
    /// An `http://` URL answering with an accepted status.
    public var http: String?
    /// Accepted statuses for `http` (default 200–399).
    public var status: [Int]?
    /// A regular expression that some line of the service's stdout or stderr matches.
    public var log: String?
    /// Seconds before a service that is not ready fails the run.
    public var timeout: Double

    enum CodingKeys: String, CodingKey { case tcp, http, status, log, timeout }

    public init(tcp: String? = nil, http: String? = nil, status: [Int]? = nil, log: String? = nil, timeout: Double = 30) {
        self.tcp = tcp
        self.http = http
        self.status = status
        self.log = log
        self.timeout = timeout
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tcp = try c.decodeIfPresent(String.self, forKey: .tcp)
        http = try c.decodeIfPresent(String.self, forKey: .http)
        switch try c.decodeIfPresent(Value.self, forKey: .status) {
        case .int(let code)?: status = [code]
        case .array(let codes)?:
            status = try codes.map { code in
                guard case .int(let number) = code else {
                    throw DecodingError.dataCorruptedError(forKey: .status, in: c, debugDescription: "status must be a number or a list of numbers")
                }
                return number
            }
        case nil, .null?: status = nil
        default: throw DecodingError.dataCorruptedError(forKey: .status, in: c, debugDescription: "status must be a number or a list of numbers")
        }
        log = try c.decodeIfPresent(String.self, forKey: .log)
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout) ?? 30
    }

    /// The check, once validated.
    enum Check: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case http(host: String, port: Int, target: String, statuses: [Int]?)
        case log(String)

        /// The address a tcp or http check connects to.
        var address: (host: String, port: Int)? {
            switch self {
            case .tcp(let host, let port), .http(let host, let port, _, _): (host, port)
            case .log: nil
            }
        }
    }

    var check: Check? {
        if let tcp, let address = try? HostPort(parsing: tcp, role: .connect) { return .tcp(host: address.host, port: address.port) }
        if let http, let url = URL(string: http), url.scheme == "http", let host = url.host {
            var target = url.path.isEmpty ? "/" : url.path
            if let query = url.query { target += "?" + query }
            return .http(host: host, port: url.port ?? 80, target: target, statuses: status)
        }
        if let log { return .log(log) }
        return nil
    }

    /// How the check reads in messages: `tcp 127.0.0.1:8080`.
    var summary: String {
        if let tcp { return "tcp \(tcp)" }
        if let http { return "http \(http)" }
        return "log /\(log ?? "")/"
    }

    func problems() -> [ArgumentError] {
        let given = [tcp.map { _ in "tcp" }, http.map { _ in "http" }, log.map { _ in "log" }].compactMap { $0 }
        guard given.count == 1 else {
            return [
                ArgumentError(
                    nil, given.isEmpty ? "ready needs a check" : "ready has \(given.joined(separator: " and ")); give exactly one",
                    hint: "write {tcp: \"127.0.0.1:8080\"}, {http: \"http://127.0.0.1:8080/health\", status: 200} or {log: \"listening on\"}")
            ]
        }
        var problems: [ArgumentError] = []
        if let tcp {
            do {
                _ = try HostPort.argument(tcp, key: "tcp", role: .connect)
            } catch {
                problems.append(error)
            }
        }
        if let http {
            if let url = URL(string: http), url.scheme == "https" {
                problems.append(
                    ArgumentError("http", "the readiness check speaks plain HTTP only", hint: "check the port with tcp: host:port, or a log line"))
            } else if URL(string: http)?.scheme != "http" || URL(string: http)?.host == nil {
                problems.append(ArgumentError("http", "http must be a URL like http://127.0.0.1:8080/health, found \"\(http)\""))
            }
        }
        if status != nil && http == nil { problems.append(ArgumentError("status", "status applies to an http check only")) }
        if let status, status.contains(where: { !(100...599).contains($0) }) {
            problems.append(ArgumentError("status", "HTTP statuses are between 100 and 599"))
        }
        if let log {
            do {
                _ = try NSRegularExpression(pattern: log)
            } catch {
                problems.append(ArgumentError("log", "invalid regular expression \"\(log)\""))
            }
        }
        if timeout <= 0 { problems.append(ArgumentError("timeout", "timeout must be more than 0 seconds")) }
        return problems
    }
}

/// A signal given by name (`TERM`, `SIGTERM`) or number (`15`), kept as written for validation.
struct SignalArgument: Codable, Sendable, SchemaTypeNamed {
    static let schemaTypeName = "signal (name or number)"

    var text: String

    init(_ text: String) { self.text = text }

    init(from decoder: any Decoder) throws {
        let value = try Value(from: decoder)
        text = value.stringValue ?? Substitution.interpolated(value)
    }

    func encode(to encoder: any Encoder) throws { try text.encode(to: encoder) }
}

extension SignalName {
    /// A hint for an unknown signal: the closest name, or the list.
    static func hint(for text: String) -> String {
        Suggestion.didYouMean(text.uppercased().replacingOccurrences(of: "SIG", with: ""), in: names)
            ?? "use a name such as TERM, KILL, STOP, CONT, HUP or a number"
    }
}
