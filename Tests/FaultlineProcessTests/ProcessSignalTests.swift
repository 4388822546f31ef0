#if canImport(Glibc)
    import Glibc
#endif
import FaultlineKit
@testable import FaultlineProcess
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

@Suite("process.signal freezes and thaws; process.running observes")
struct ProcessSignalTests {
    @Test("STOP freezes a process; the experiment's end sends CONT and closes the fault window")
    func freezeUndoneByCleanup() async throws {
        let number = uniqueSleep()
        let child = try spawn(["sleep", number])
        defer { child.signal(SIGKILL) }
        let pattern = number.replacingOccurrences(of: ".", with: "\\\\.")
        let result = try await TestKit().run(
            yaml: """
                title: freeze
                description: a frozen process is thawed when the experiment ends
                method:
                  - {type: action, name: freeze, provider: {type: process.signal, pattern: "\(pattern)", signal: STOP}}
                  - {type: probe, name: frozen, provider: {type: process.running, pattern: "\(pattern)"}}
                """, plugins: [ProcessPlugin.self])
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .completed)
        #expect(journal.run[0].output?["targets"]?[0]?["state"] == "stopped")
        #expect(journal.run[1].output?["processes"]?[0]?["state"] == "T")
        #expect(journal.cleanup.map(\.description) == ["resume pid \(child.pid) (\(child.executable) \(number)) with SIGCONT"])
        #expect(journal.cleanup.first?.status == .succeeded)
        let window = try #require(journal.faults.first)
        #expect(window.label == "pid \(child.pid) frozen (\(child.executable) \(number))")
        #expect(window.end != nil)
        #expect(await eventually { SystemProcess.read(child.pid)?.isStopped == false })
    }

    @Test("CONT thaws a frozen process and ends its fault window at once")
    func freezeThenThaw() async throws {
        let number = uniqueSleep()
        let child = try spawn(["sleep", number])
        defer { child.signal(SIGKILL) }
        let result = try await TestKit().run(
            yaml: """
                title: freeze and thaw
                description: d
                method:
                  - {type: action, name: freeze, provider: {type: process.signal, pid: \(child.pid), signal: SIGSTOP}}
                  - {type: action, name: thaw, provider: {type: process.signal, pid: \(child.pid), signal: 18}}
                """, plugins: [ProcessPlugin.self])
        let journal = try #require(result.journals.first)
        #expect(journal.run.map { $0.output?["targets"]?[0]?["state"] } == ["stopped", "running"])
        let window = try #require(journal.faults.first)
        let cleanupStart = try #require(journal.cleanup.first?.start)
        #expect(try #require(window.end) <= cleanupStart)
    }

    @Test("other signals reach the process and show as instants on the timeline")
    func otherSignals() async throws {
        let child = try spawn(["sleep", uniqueSleep()])
        defer { child.signal(SIGKILL) }
        let context = makeContext()
        let args = try arguments(ProcessSignal.Arguments.self, ["pid": .int(Int(child.pid)), "signal": "USR1"])
        let output = try await ProcessSignal().perform(args, context: context)
        #expect(await ended(child) == .signalled(SIGUSR1))
        #expect(output["signal"] == "SIGUSR1")
        #expect(await context.runCleanups().isEmpty)
    }

    @Test("signal is required and must be known")
    func signalValidation() throws {
        #expect(throws: (any Error).self) { try arguments(ProcessSignal.Arguments.self, ["pid": 5]) }
        let args = try arguments(ProcessSignal.Arguments.self, ["pid": 5, "signal": "FREEZE"])
        #expect(throws: ArgumentError.self) { try ProcessSignal.validate(args) }
    }

    @Test("process.running reports whether and which processes run; nothing running is false, not a failure")
    func running() async throws {
        let number = uniqueSleep()
        let children = try (0..<2).map { _ in try spawn(["sleep", number]) }
        defer { children.forEach { $0.signal(SIGKILL) } }
        let probe = ProcessRunning()
        let found = try await probe.probe(
            ProcessRunning.Arguments(selection: ProcessSelection(pattern: number.replacingOccurrences(of: ".", with: "\\."))),
            context: makeContext(kind: .probe))
        #expect(found["running"] == true)
        #expect(found["count"] == 2)
        #expect(Set(found["pids"]?.arrayValue?.compactMap(\.intValue) ?? []) == Set(children.map { Int($0.pid) }))
        let none = try await probe.probe(
            ProcessRunning.Arguments(selection: ProcessSelection(pattern: uniqueToken())), context: makeContext(kind: .probe))
        #expect(none["running"] == false)
        #expect(none["pids"] == [])
    }

    @Test("tolerance true/false judges running, and a number judges the count")
    func runningTolerances() async throws {
        let number = uniqueSleep()
        let children = try (0..<2).map { _ in try spawn(["sleep", number]) }
        defer { children.forEach { $0.signal(SIGKILL) } }
        let pattern = number.replacingOccurrences(of: ".", with: "\\\\.")
        let result = try await TestKit().run(
            yaml: """
                title: running
                description: d
                steady-state-hypothesis:
                  title: two sleepers, no ghost
                  probes:
                    - {type: probe, name: sleepers, tolerance: true, provider: {type: process.running, pattern: "\(pattern)"}}
                    - {type: probe, name: two, tolerance: 2, provider: {type: process.running, pattern: "\(pattern)"}}
                    - {type: probe, name: ghost, tolerance: false, provider: {type: process.running, pattern: "\(uniqueToken())"}}
                method: []
                """, plugins: [ProcessPlugin.self])
        #expect(result.journals.first?.outcome == .completed)

        let deviated = try await TestKit().run(
            yaml: """
                title: running
                description: d
                steady-state-hypothesis:
                  title: three
                  probes:
                    - {type: probe, name: three, tolerance: 3, provider: {type: process.running, pattern: "\(pattern)"}}
                method: []
                """, plugins: [ProcessPlugin.self])
        #expect(deviated.journals.first?.outcome == .failed)
        #expect(deviated.journals.first?.steadyStates.before?.probes.first?.toleranceMessage == "2 matching process(es) run, expected 3")
    }
}
