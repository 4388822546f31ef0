#if canImport(Glibc)
    import Glibc
#endif
import FaultlineKit
@testable import FaultlineProcess
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

@Suite("process.start, process.stop, process.restart and kills of services")
struct ServiceActionTests {
    func sleeper(_ number: String) -> ServiceSettings {
        ServiceSettings(command: ["sh", "-c", "echo ready; exec sleep \(number)"], ready: Readiness(log: "ready"))
    }

    @Test("killing a suite service signals its group; the experiment's end starts it again")
    func killServiceRestartsAtEnd() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let number = uniqueSleep()
        // A shell with a child: both are in the service's group, and both must go.
        let settings = ServiceSettings(command: ["sh", "-c", "sleep \(number) & echo ready; wait"], ready: Readiness(log: "ready"))
        let first = try await supervisor.start(ServiceDefinition(name: "api", settings: settings), owner: .suite)
        #expect(await eventually { liveProcesses(containing: number).count == 2 })

        let context = makeContext(supervisor: supervisor)
        let output = try await ProcessKill().perform(try arguments(ProcessKill.Arguments.self, ["service": "api"]), context: context)
        #expect(output["targets"]?[0]?["service"] == "api")
        #expect(output["targets"]?[0]?["status"] == "killed by SIGTERM")
        #expect(await eventually { liveProcesses(containing: number).isEmpty })

        let cleanups = await context.runCleanups()
        #expect(cleanups.map(\.description) == ["restart service api if it is down"])
        #expect(cleanups.map(\.status) == [.succeeded])
        let restarted = try #require(try await supervisor.service(named: "api").pid)
        #expect(restarted != first.pid)
        #expect(await supervisor.stopAll() == [])
        #expect(liveProcesses(containing: number).isEmpty)
    }

    @Test("a service's main pid found by another selector counts as the service")
    func killServiceByPort() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let token = uniqueToken()
        let script =
            "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\nprint('port', s.getsockname()[1], flush=True)\ntime.sleep(3000)"
        let start = try await supervisor.start(
            ServiceDefinition(name: "db", settings: ServiceSettings(command: ["python3", "-c", script, token], ready: Readiness(log: "port"))),
            owner: .suite)
        let log = try String(contentsOfFile: start.logPath, encoding: .utf8)
        let port = try #require(log.split(separator: "\n").first { $0.hasPrefix("port ") }.flatMap { Int($0.dropFirst(5)) })
        let context = makeContext(supervisor: supervisor)
        let output = try await ProcessKill().perform(
            try arguments(ProcessKill.Arguments.self, ["port": .int(port), "signal": "KILL"]), context: context)
        #expect(output["targets"]?[0]?["service"] == "db")
        #expect(await context.runCleanups().map(\.description) == ["restart service db if it is down"])
        #expect(try await supervisor.service(named: "db").isRunning)
        #expect(await supervisor.stopAll() == [])
        #expect(liveProcesses(containing: token).isEmpty)
    }

    @Test("process.start defines a service for the experiment; its end stops it")
    func startForExperiment() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let number = uniqueSleep()
        let context = makeContext(supervisor: supervisor)
        let args = ProcessStart.Arguments(service: "worker", settings: sleeper(number))
        try ProcessStart.validate(args)
        let output = try await ProcessStart().perform(args, context: context)
        let pid = try #require(output["pid"]?.intValue)
        #expect(output["started"] == true)
        #expect(context.exported["services.worker.pid"] == .int(pid))
        #expect(liveProcesses(containing: number).map { Int($0.pid) } == [pid])

        #expect(await context.runCleanups().map(\.description) == ["stop service worker"])
        #expect(liveProcesses(containing: number).isEmpty)
        #expect(await supervisor.names == [])

        // A later experiment may define it again; its log goes on in the same file.
        let later = makeContext(supervisor: supervisor)
        _ = try await ProcessStart().perform(args, context: later)
        _ = await later.runCleanups()
        let log = try String(contentsOfFile: directory.path("service-worker.log"), encoding: .utf8)
        #expect(log.components(separatedBy: "] started pid ").count == 3)
    }

    @Test("process.stop stops a suite service, process.start brings it back, the cleanup finds it up")
    func stopThenStart() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let number = uniqueSleep()
        let first = try await supervisor.start(ServiceDefinition(name: "api", settings: sleeper(number)), owner: .suite)
        let context = makeContext(supervisor: supervisor)

        let stopped = try await ProcessStop().perform(ServiceStopArguments(service: "api"), context: context)
        #expect(stopped["pid"] == .int(Int(first.pid)))
        #expect(stopped["ended"] == "killed by SIGTERM")
        #expect(liveProcesses(containing: number).isEmpty)
        let again = try await ProcessStop().perform(ServiceStopArguments(service: "api"), context: context)
        #expect(again["note"] == "was not running")
        let killStopped = await failure {
            try await ProcessKill().perform(try arguments(ProcessKill.Arguments.self, ["service": "api"]), context: context)
        }
        #expect(killStopped?.message == #"service "api" is not running"#)

        let started = try await ProcessStart().perform(ProcessStart.Arguments(service: "api"), context: context)
        #expect(started["started"] == true)
        let second = try #require(started["pid"]?.intValue)
        #expect(second != Int(first.pid))
        // The restart the stop registered finds the service running and leaves it alone.
        #expect(await context.runCleanups().map(\.status) == [.succeeded])
        #expect(try await supervisor.service(named: "api").pid == pid_t(second))
        #expect(await supervisor.stopAll() == [])
    }

    @Test("process.restart gives a new process that passed its readiness check")
    func restart() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        let number = uniqueSleep()
        let first = try await supervisor.start(ServiceDefinition(name: "api", settings: sleeper(number)), owner: .suite)
        let context = makeContext(supervisor: supervisor)
        let output = try await ProcessRestart().perform(ServiceStopArguments(service: "api", signal: "INT"), context: context)
        #expect(output["old_pid"] == .int(Int(first.pid)))
        #expect(output["ended"] == "killed by SIGINT")
        let pid = try #require(output["pid"]?.intValue)
        #expect(liveProcesses(containing: number).map { Int($0.pid) } == [pid])
        #expect(context.exported["services.api.pid"] == .int(pid))
        let log = try String(contentsOfFile: directory.path("service-api.log"), encoding: .utf8)
        #expect(log.components(separatedBy: "] started pid ").count == 3)
        _ = await context.runCleanups()
        #expect(await supervisor.stopAll() == [])
    }

    @Test("an unknown service is a failure that lists the known ones")
    func unknownService() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let supervisor = ServiceSupervisor(runDirectory: directory.url.path)
        _ = try await supervisor.start(ServiceDefinition(name: "api", settings: sleeper(uniqueSleep())), owner: .suite)
        let context = makeContext(supervisor: supervisor)
        let stop = await failure { try await ProcessStop().perform(ServiceStopArguments(service: "apj"), context: context) }
        #expect(stop?.message == #"service "apj" is not a service of this run (did you mean "api"?)"#)
        let kill = await failure { try await ProcessKill().perform(try arguments(ProcessKill.Arguments.self, ["service": "web"]), context: context) }
        #expect(kill?.message == #"service "web" is not a service of this run (services: api)"#)
        _ = await supervisor.stopAll()
    }

    @Test("process.start without a command only restarts a known service")
    func startValidation() throws {
        #expect(throws: ArgumentError.self) {
            try ProcessStart.validate(ProcessStart.Arguments(service: "x", settings: ServiceSettings(command: nil, cwd: "/tmp")))
        }
        #expect(throws: Never.self) { try ProcessStart.validate(ProcessStart.Arguments(service: "x")) }
        #expect(ProcessStart.exports(ProcessStart.Arguments(service: "x")).keys.sorted() == ["services.x.log", "services.x.pid"])
    }
}
