import FaultlineKit
import Foundation
import Logging

/// `process.start`: starts a service for the rest of the experiment (stopped when it ends), or
/// starts a known service again after a stop or a kill.
public struct ProcessStart: Action {
    public static let type = "process.start"
    public static let summary = "Start a service (stopped when the experiment ends), or start a stopped one again"
    public static let argumentHelp = [
        "service": "the service's name; alone, it starts a known service again",
        "command": "argv as a list (no shell), to define a new service",
        "env": "environment variables added to Faultline's",
        "cwd": "working directory",
        "ready": "{tcp: host:port} | {http: url, status} | {log: regex}, with timeout (s, default 30)",
        "stop_signal": "the signal that stops it (default TERM)",
        "stop_grace": "seconds between the stop signal and SIGKILL (default 5)",
        "host": RemoteHost.help,
    ]

    /// A service's name, and its settings when it is a new one.
    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges = ServiceSettings.numberRanges
        public var service: String
        /// Without a command: start the known service `service` again.
        public var settings: ServiceSettings

        enum CodingKeys: String, CodingKey { case service }

        public init(service: String, settings: ServiceSettings = ServiceSettings(command: nil)) {
            self.service = service
            self.settings = settings
        }

        public init(from decoder: any Decoder) throws {
            service = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .service)
            settings = try ServiceSettings(from: decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(service, forKey: .service)
            try settings.encode(to: encoder)
        }

        /// The definition of a new service, when a command is given.
        var definition: ServiceDefinition? {
            settings.command == nil ? nil : ServiceDefinition(name: service, settings: settings)
        }
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        if let definition = arguments.definition {
            if let first = definition.problems().first { throw first }
        } else if !arguments.settings.isDefault {
            throw ArgumentError(
                "command", "settings without a command", hint: "give a command to define a new service, or only service: to start a known one again")
        } else if !ServiceDefinition.isValidName(arguments.service) {
            throw ArgumentError("service", "service name \"\(arguments.service)\" may hold only letters, digits, - and _")
        }
    }

    public static func exports(_ arguments: Arguments) -> [String: Value] {
        ["services.\(arguments.service).pid": .int(1), "services.\(arguments.service).log": .string("")]
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let supervisor = try ServiceActions.supervisor(context)
        let start: ServiceStart
        do {
            if let definition = arguments.definition {
                start = try await supervisor.start(definition, owner: .experiment)
                let name = definition.name
                context.registerCleanup("stop service \(name)") { await supervisor.remove(name) }
            } else {
                start = try await supervisor.restart(arguments.service)
                context.endFault(FaultMarks.serviceFault(arguments.service))
            }
        } catch let error as ServiceError {
            throw error.activityFailure()
        }
        ServiceActions.export(arguments.service, start, context: context)
        return [
            "service": .string(arguments.service), "pid": .int(Int(start.pid)), "started": .bool(start.started),
            "ready_after_s": .double(start.readyAfter),
            "log": .string(start.logPath),
        ]
    }
}

/// `process.stop`: stops a service (its stop signal to its process group, SIGKILL after its
/// grace). A suite service is started again when the experiment ends.
public struct ProcessStop: Action {
    public static let type = "process.stop"
    public static let summary = "Stop a service of the run (a suite service comes back when the experiment ends)"
    public static let handlesDryRun = true
    public static let argumentHelp = ServiceActions.stopHelp

    public typealias Arguments = ServiceStopArguments

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        if let first = arguments.problems().first { throw first }
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let service = try await ServiceActions.service(arguments.service, context)
        guard let pid = await service.pid else {
            return ["service": .string(arguments.service), "running": false, "note": "was not running"]
        }
        if context.isDryRun { return ["service": .string(arguments.service), "pid": .int(Int(pid)), "dry_run": true, "would": "stop"] }
        context.beginFault("service \(arguments.service) stopped", id: FaultMarks.serviceFault(arguments.service))
        await FaultMarks.restartWhenExperimentEnds(service, context: context)
        let stop = await service.stop(signal: arguments.signal.flatMap(SignalName.number), grace: arguments.grace)
        return ServiceActions.describe(arguments.service, stop)
    }
}

/// `process.restart`: stops a service and starts it again, waiting for its readiness check.
public struct ProcessRestart: Action {
    public static let type = "process.restart"
    public static let summary = "Stop a service and start it again, waiting until it is ready"
    public static let handlesDryRun = true
    public static let argumentHelp = ServiceActions.stopHelp

    public typealias Arguments = ServiceStopArguments

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        if let first = arguments.problems().first { throw first }
    }

    public static func exports(_ arguments: Arguments) -> [String: Value] {
        ["services.\(arguments.service).pid": .int(1), "services.\(arguments.service).log": .string("")]
    }

    public func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let service = try await ServiceActions.service(arguments.service, context)
        if context.isDryRun {
            return ["service": .string(arguments.service), "pid": .int(Int(await service.pid ?? 0)), "dry_run": true, "would": "restart"]
        }
        let fault = context.beginFault("service \(arguments.service) restarting", id: FaultMarks.serviceFault(arguments.service))
        // Should the start fail, the experiment's end tries again.
        await FaultMarks.restartWhenExperimentEnds(service, context: context)
        let stop = await service.stop(signal: arguments.signal.flatMap(SignalName.number), grace: arguments.grace)
        let start: ServiceStart
        do {
            start = try await service.start()
        } catch let error as ServiceError {
            throw error.activityFailure(output: ServiceActions.describe(arguments.service, stop))
        }
        context.endFault(fault)
        ServiceActions.export(arguments.service, start, context: context)
        var output = ServiceActions.describe(arguments.service, stop).objectValue ?? [:]
        output["old_pid"] = output["pid"] ?? .null
        output["pid"] = .int(Int(start.pid))
        output["ready_after_s"] = .double(start.readyAfter)
        return .object(output)
    }
}

/// `process.stop` and `process.restart`: a service, and optionally how to stop it.
public struct ServiceStopArguments: Codable, Sendable, NumberRanges {
    public static let numberRanges: [String: NumberRange] = ["grace": .seconds]

    /// The service's name.
    public var service: String
    /// Overrides the service's `stop_signal`.
    public var signal: String?
    /// Overrides the service's `stop_grace`.
    public var grace: Double?

    public init(service: String, signal: String? = nil, grace: Double? = nil) {
        self.service = service
        self.signal = signal
        self.grace = grace
    }

    enum CodingKeys: String, CodingKey { case service, signal, grace }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        service = try c.decode(String.self, forKey: .service)
        signal = try c.decodeIfPresent(SignalArgument.self, forKey: .signal)?.text
        grace = try c.decodeIfPresent(Double.self, forKey: .grace)
    }

    func problems() -> [ArgumentError] {
        var problems: [ArgumentError] = []
        if let signal, SignalName.number(signal) == nil {
            problems.append(ArgumentError("signal", "unknown signal \"\(signal)\"", hint: SignalName.hint(for: signal)))
        }
        if let grace, grace < 0 { problems.append(ArgumentError("grace", "grace cannot be negative")) }
        return problems
    }
}

enum ServiceActions {
    static let stopHelp = [
        "service": "a service of the run (suite services:, or process.start)",
        "signal": "overrides the service's stop_signal",
        "grace": "overrides the service's stop_grace (seconds before SIGKILL)",
    ]

    static func supervisor(_ context: ActivityContext) throws -> ServiceSupervisor {
        guard let supervisor = context.resources[ServicesKey.self] else {
            throw ActivityFailure("this run has no service supervisor", details: ["register ProcessPlugin, whose services run extension provides it"])
        }
        return supervisor
    }

    static func service(_ name: String, _ context: ActivityContext) async throws -> ManagedService {
        do {
            return try await supervisor(context).service(named: name)
        } catch let error as ServiceError {
            throw error.activityFailure()
        }
    }

    /// `${services.NAME.pid}` and `.log` for later activities, after a (re)start.
    static func export(_ name: String, _ start: ServiceStart, context: ActivityContext) {
        context.export("services.\(name).pid", .int(Int(start.pid)))
        context.export("services.\(name).log", .string(start.logPath))
    }

    static func describe(_ name: String, _ stop: ServiceStop?) -> Value {
        guard let stop else { return ["service": .string(name), "running": false, "note": "was not running"] }
        return [
            "service": .string(name), "pid": .int(Int(stop.pid)), "ended": .string(stop.termination.description), "killed": .bool(stop.killed),
            "seconds": .double(stop.seconds),
        ]
    }
}

/// The suite's `services:`: started in order before the experiments, stopped in reverse order
/// after them on every path out. Also provides the ``ServiceSupervisor`` that `process.start`
/// uses when a run has no `services:`.
public struct ServicesExtension: RunExtension {
    /// For messages.
    public let name = "services"
    /// The suite section it owns.
    public let suiteKeys = ["services"]
    /// After the proxies, so services can point at `${proxies.NAME.port}`.
    public let stage = RunStage.services

    public init() {}

    /// Checks `services:`; the run decodes them again when they start, once earlier extensions
    /// exported what they may refer to (`${proxies.NAME.port}`).
    public func plan(_ sections: RunSections, context: RunPlanContext, sink: DiagnosticSink) -> RunSections? {
        validate(sections, substitution: context.substitution, sink: sink)
        return sink.hasErrors ? nil : sections
    }

    private func validate(_ sections: RunSections, substitution: Substitution, sink: DiagnosticSink) {
        guard let node = sections["services"] else { return }
        let path = DocumentPath([.key("services")])
        guard let elements = node.elements else {
            sink.report(
                Diagnostic(
                    "expected a list of services ({name, command, ready, …}), found \(node.kindDescription)", at: node.location, path: path,
                    hint: "write services: [{name: api, command: [./api, --port, \"8080\"]}]"))
            return
        }
        var seen: [String: SourceLocation?] = [:]
        for (index, element) in elements.enumerated() {
            let elementPath = path.appending(index)
            let definition: ServiceDefinition
            do {
                let substituted = try substitution.substitute(element, path: elementPath, sink: sink)
                definition = try NodeDecoder().decode(ServiceDefinition.self, from: substituted, path: elementPath, sink: sink)
                if let command = substituted["command"],
                    let exposed = substitution.exposedSecret(in: command, key: "command", path: elementPath.appending("command"))
                {
                    sink.report(exposed)
                }
            } catch {
                sink.report(error, fallbackLocation: element.location, path: elementPath)
                continue
            }
            for problem in definition.problems() { sink.report(problem.located(in: element, path: elementPath)) }
            if let earlier = seen[definition.name] {
                sink.report(
                    Diagnostic(
                        "service \"\(definition.name)\" is defined twice", at: element["name"]?.location, path: elementPath.appending("name"),
                        hint: earlier.map { "first defined at \($0)" }))
            }
            seen[definition.name] = element["name"]?.location
        }
    }

    public func placeholders(_ sections: RunSections) -> [String: Value] {
        // Examples of the right types that pass validation (a pid must be positive).
        var services = ValueObject()
        for element in sections["services"]?.elements ?? [] {
            if let name = element["name"]?.stringValue { services[name] = ["pid": .int(1), "log": .string(""), "running": .bool(true)] }
        }
        return services.isEmpty ? [:] : ["services": .object(services)]
    }

    public func start(_ plan: RunSections, setup: RunSetup) async throws -> (any RunExtensionHandle)? {
        let supervisor = ServiceSupervisor(runDirectory: setup.runDirectory, logger: setup.logger, ledger: setup.resources.ledger)
        setup.provide(ServicesKey.self, supervisor)
        let handle = Handle(supervisor: supervisor)
        guard let node = setup.sections["services"] else { return handle }
        do {
            let definitions = try NodeDecoder().decode([ServiceDefinition].self, from: node, path: DocumentPath([.key("services")]))
            for definition in definitions {
                try Task.checkCancellation()
                let start = try await supervisor.start(definition, owner: .suite)
                let readiness = definition.settings.ready.map { " in \(Int((start.readyAfter * 1000).rounded())) ms (\($0.summary))" } ?? ""
                setup.step("service \(definition.name) ready\(readiness), pid \(start.pid), log \(start.logPath)")
            }
        } catch {
            // Start either brings everything up or leaves nothing behind.
            for problem in await supervisor.stopAll() { setup.logger.warning("\(problem)") }
            throw error
        }
        setup.export("services", await supervisor.exports())
        return handle
    }

    struct Handle: RunExtensionHandle {
        let supervisor: ServiceSupervisor

        func stop() async -> [String] {
            // Not cancellable: a run's teardown always finishes.
            await Task { await supervisor.stopAll() }.value
        }
    }
}
