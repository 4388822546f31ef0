#if canImport(Glibc)
    import Glibc
#endif
import FaultlineKit
import FaultlineNetwork
@testable import FaultlineProcess
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

@Suite("A suite's services: up before the experiments, down after them on every path")
struct SuiteServicesTests {
    /// A suite with two services that carry `token` and an experiment using them.
    func suite(token: String, method: String, extraServices: String = "") -> String {
        """
        name: services
        services:
          - name: store
            command: [sh, -c, "echo ready; exec sleep 3000", "\(token)-store"]
            ready: {log: ready}
          - name: api
            command: [python3, -c, "import time; print('api up', flush=True); time.sleep(3000)", "\(token)-api"]
            ready: {log: "api up", timeout: 20}
        \(extraServices)
        experiments:
          - title: uses the services
            description: d
            steady-state-hypothesis:
              title: both run
              probes:
                - {type: probe, name: store runs, tolerance: true, provider: {type: process.running, pid: "${services.store.pid}"}}
                - {type: probe, name: api runs, tolerance: true, provider: {type: process.running, service: api}}
            method:
        \(method)
        """
    }

    func options(_ directory: ScratchDirectory) -> SuiteRunner.Options {
        var options = SuiteRunner.Options()
        options.journalPath = directory.path("journals")
        return options
    }

    @Test("after a normal run nothing is left, and logs sit beside the journals")
    func normalRun() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let token = uniqueToken()
        let method = """
                  - {type: action, name: kill api, provider: {type: process.kill, service: api}}
                  - {type: probe, name: api down, provider: {type: process.running, service: api}}
                  - {type: action, name: bring api back, provider: {type: process.start, service: api}}
            """
        let result = try await TestKit().run(yaml: suite(token: token, method: method), options: options(directory), plugins: [ProcessPlugin.self])
        let journal = try #require(result.journals.first)
        #expect(result.setupError == nil)
        #expect(journal.outcome == .completed)
        #expect(journal.run[1].output?["running"] == false)
        #expect(journal.run[2].output?["started"] == true)
        // The kill's undo found the service back up.
        #expect(journal.cleanup.map(\.description) == ["restart service api if it is down"])
        #expect(journal.faults.map(\.label) == ["service api killed (SIGTERM)"])
        #expect(journal.faults.first?.end != nil)
        #expect(result.teardownProblems == [])
        #expect(liveProcesses(containing: token).isEmpty)
        let log = try String(contentsOfFile: directory.path("journals/service-api.log"), encoding: .utf8)
        #expect(log.components(separatedBy: "api up\n").count == 3)  // started twice
        #expect(FileManager.default.fileExists(atPath: directory.path("journals/service-store.log")))
    }

    @Test("after a failed experiment the services are stopped too")
    func failedRun() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let token = uniqueToken()
        let method = """
                  - {type: action, name: start a worker, provider: {type: process.start, service: worker, command: [sh, -c, "echo ready; exec sleep 3000", "\(token)-worker"], ready: {log: ready}}}
                  - {type: action, name: breaks, provider: {type: test.action, label: boom, fail: "the injected failure"}}
            """
        let result = try await TestKit().run(yaml: suite(token: token, method: method), options: options(directory), plugins: [ProcessPlugin.self])
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .aborted)
        #expect(journal.cleanup.map(\.description) == ["stop service worker"])
        #expect(liveProcesses(containing: token).isEmpty)
    }

    @Test("a service that exits during startup fails the run with its last lines, and stops the ones before it")
    func serviceExitsDuringStartup() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let token = uniqueToken()
        let broken = """
              - name: broken
                command: [sh, -c, "echo 'error: port 5432 already in use' >&2; exit 2", "\(token)-broken"]
                ready: {tcp: "127.0.0.1:\(try FreePort.take())"}
            """
        let method = "      - {type: action, name: never runs, provider: {type: test.action, label: never}}"
        let kit = TestKit()
        let result = try await kit.run(
            yaml: suite(token: token, method: method, extraServices: broken), options: options(directory), plugins: [ProcessPlugin.self])
        let setupError = try #require(result.setupError)
        #expect(setupError.hasPrefix(#"services: service "broken" exited during startup (exited with status 2); last lines of "#))
        #expect(setupError.hasSuffix("\n  | error: port 5432 already in use"))
        #expect(result.exitCode == 1)
        #expect(result.journals.isEmpty)
        #expect(kit.log.isEmpty)
        #expect(liveProcesses(containing: token).isEmpty)
    }

    @Test("an interrupt during the experiments still stops every service")
    func interruptedRun() async throws {
        let directory = try ScratchDirectory(prefix: "faultline-process")
        let token = uniqueToken()
        let method = "      - {type: action, name: waits, provider: {type: test.action, label: waiting, delay: 300}}"
        let interruption = Interruption()
        let kit = TestKit()
        async let result = kit.run(
            yaml: suite(token: token, method: method), options: options(directory), plugins: [ProcessPlugin.self], interruption: interruption)
        #expect(await eventually(timeout: .seconds(90)) { kit.log == ["waiting"] })  // services start first; a full test run starves 2 cores
        interruption.interrupt("SIGINT")
        let finished = try await result
        #expect(finished.interrupted)
        #expect(finished.exitCode == 130)
        #expect(liveProcesses(containing: token).isEmpty)
    }

    @Test("services: errors point at file, line and column")
    func validation() async throws {
        let yaml = """
            name: bad
            services:
              - name: api
                command: [no-such-program-xyz]
                redy: {tcp: "127.0.0.1:1"}
              - name: api
                command: [sleep, "1"]
                ready: {tcp: "127.0.0.1:1", log: x}
            experiments:
              - {title: t, description: d, method: []}
            """
        let error = await #expect(throws: ValidationError.self) { try await TestKit().run(yaml: yaml, plugins: [ProcessPlugin.self]) }
        let messages = error?.errors.map { "\($0.location.map { "\($0.line):\($0.column)" } ?? "?") \($0.message)" } ?? []
        #expect(messages.contains(#"5:5 unknown key "redy""#))
        #expect(messages.contains("4:14 cannot run no-such-program-xyz: not found in PATH"))
        #expect(messages.contains(#"6:11 service "api" is defined twice"#))
        #expect(messages.contains("8:12 ready has tcp and log; give exactly one"))
        #expect(error?.errors.first { $0.message.hasPrefix("unknown key") }?.hint == #"did you mean "ready"?"#)
    }

    @Test("experiments may refer to ${services.NAME.pid} before the run starts")
    func placeholdersValidate() throws {
        let registry = TestKit().registry(plugins: [ProcessPlugin.self])
        let services = try #require(registry.runExtensions.first { $0.name == "services" })
        let node = SourceNode(.array([["name": "api", "command": ["sleep", "1"]]]), at: nil)
        #expect(services.placeholders(["services": node]) == ["services": ["api": ["pid": 1, "log": "", "running": true]]])
    }
}
