import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

/// An experiment around one scripted probe and two actions: inject (with an undo) and a rollback.
private func experiment(probe: String = "health", runtime: String = "", extraMethod: String = "") -> String {
    """
    title: ordered
    \(runtime)
    steady-state-hypothesis:
      title: up
      probes:
        - {type: probe, name: health, tolerance: 200, provider: {type: test.probe, key: \(probe), value: 200}}
    method:
      - {type: action, name: inject, provider: {type: test.action, label: inject, cleanup: true}}
    \(extraMethod)
    rollbacks:
      - {type: action, name: rollback, provider: {type: test.action, label: rollback}}
    """
}

/// Sends a SIGINT once the kit has recorded `label` (the activity it interrupts is running).
private func sendSIGINT(to interruption: Interruption, once kit: TestKit, recorded label: String) async {
    while !kit.log.contains(label) { await Task.yield() }
    interruption.interrupt("SIGINT")
}

@Suite("Engine phases and strategies")
struct EngineTests {
    @Test("a completed run plays hypothesis, method, hypothesis, rollbacks and cleanups in order")
    func completedRun() async throws {
        let kit = TestKit()
        let result = try await kit.run(yaml: experiment())
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .completed)
        #expect(journal.status == .completed)
        #expect(result.exitCode == 0)
        #expect(kit.log == ["inject", "rollback", "undo inject"])
        #expect(journal.steadyStates.before?.steadyStateMet == true)
        #expect(journal.steadyStates.after?.steadyStateMet == true)
        #expect(journal.cleanup.map(\.description) == ["undo inject"])
        #expect(journal.run.map(\.name) == ["inject"])
        #expect(journal.rollbacks.map(\.name) == ["rollback"])
    }

    // MARK: Status and exit codes

    @Test("after-hypothesis miss: deviated, rollbacks played, exit 1")
    func deviated() async throws {
        let kit = TestKit()
        kit.script("health", [200, 503])
        let result = try await kit.run(yaml: experiment())
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .deviated)
        #expect(journal.status == .completed)
        #expect(journal.deviated)
        #expect(result.exitCode == 1)
        #expect(kit.log == ["inject", "rollback", "undo inject"])
        #expect(journal.reason?.contains("expected 200, got 503") == true)
    }

    @Test("an after-hypothesis probe that cannot run: status failed and deviated, as Chaos Toolkit journals it; rollbacks still play")
    func afterProbeFails() async throws {
        let kit = TestKit()
        kit.script("health", [200, TestKit.failure("connection refused")])
        let result = try await kit.run(yaml: experiment())
        let journal = try #require(result.journals.first)
        #expect(journal.status == .failed)
        #expect(journal.deviated)
        #expect(journal.outcome == .deviated)
        #expect(result.exitCode == 1)
        let probe = try #require(journal.steadyStates.after?.probes.first)
        #expect(probe.status == .failed)
        #expect(probe.toleranceMet == false)
        #expect(journal.steadyStates.after?.steadyStateMet == false)
        // Chaos Toolkit would skip the rollbacks of a failed run; the method ran, so they play.
        #expect(kit.log == ["inject", "rollback", "undo inject"])
    }

    @Test("after the method, the first probe that does not pass decides: a tolerance miss before a failure is a deviation, completed")
    func afterMissThenFailure() async throws {
        let kit = TestKit()
        kit.script("health", [200, 503])
        kit.script("other", [1, TestKit.failure("timed out")])
        let result = try await kit.run(
            yaml: """
                title: t
                steady-state-hypothesis:
                  title: h
                  probes:
                    - {type: probe, name: health, tolerance: 200, provider: {type: test.probe, key: health}}
                    - {type: probe, name: other, tolerance: 1, provider: {type: test.probe, key: other}}
                method:
                  - {type: action, name: a, provider: {type: test.action, label: a}}
                """)
        let journal = try #require(result.journals.first)
        #expect(journal.status == .completed)
        #expect(journal.deviated)
        #expect(journal.steadyStates.after?.probes.map(\.toleranceMet) == [false, false])
    }

    @Test("gate tolerance miss: failed, no method, no rollbacks, exit 1 (Chaos Toolkit says completed, exit 0)")
    func gateMiss() async throws {
        let kit = TestKit()
        kit.script("health", [500])
        let result = try await kit.run(yaml: experiment())
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .failed)
        #expect(journal.status == .failed)
        #expect(result.exitCode == 1)
        #expect(kit.log.isEmpty)
        #expect(journal.steadyStates.after == nil)
    }

    @Test("gate probe that raises: failed, no rollbacks")
    func gateRaises() async throws {
        let kit = TestKit()
        let result = try await kit.run(
            yaml: """
                title: t
                steady-state-hypothesis:
                  title: h
                  probes:
                    - {type: probe, name: p, tolerance: 1, provider: {type: test.probe, fail: connection refused}}
                method:
                  - {type: action, name: a, provider: {type: test.action, label: a}}
                rollbacks:
                  - {type: action, name: r, provider: {type: test.action, label: r}}
                """)
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .failed)
        #expect(journal.steadyStates.before?.probes.first?.exception == ["connection refused"])
        #expect(kit.log.isEmpty)
    }

    @Test("a failed action aborts the method; rollbacks still play")
    func actionFails() async throws {
        let kit = TestKit()
        let result = try await kit.run(
            yaml: experiment(
                extraMethod: """
                      - {type: action, name: broken, provider: {type: test.action, label: broken, fail: no such proxy}}
                      - {type: action, name: never, provider: {type: test.action, label: never}}
                    """))
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .aborted)
        #expect(journal.status == .aborted)
        #expect(result.exitCode == 1)
        #expect(kit.log == ["inject", "broken", "rollback", "undo inject"])
        #expect(journal.steadyStates.after == nil)
        #expect(journal.reason == "action \"broken\" failed: no such proxy")
    }

    @Test("a failed probe in the method is recorded and the method goes on")
    func probeFailsInMethod() async throws {
        let kit = TestKit()
        let result = try await kit.run(
            yaml: experiment(
                extraMethod: """
                      - {type: probe, name: observe, provider: {type: test.probe, fail: timeout}}
                      - {type: action, name: after, provider: {type: test.action, label: after}}
                    """))
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .completed)
        #expect(journal.run.map(\.status) == [.succeeded, .failed, .succeeded])
        #expect(kit.log.contains("after"))
    }

    @Test(
        "a method probe with a tolerance is judged: a miss is a deviation, in the foreground or the background",
        arguments: [false, true])
    func methodProbeTolerance(_ background: Bool) async throws {
        let kit = TestKit()
        let result = try await kit.run(
            yaml: experiment(
                extraMethod: """
                      - {type: probe, name: load, background: \(background), tolerance: {type: range, range: [0, 0.01], target: error_rate}, provider: {type: test.probe, value: {error_rate: 0.2}}}
                    """))
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .deviated)
        #expect(journal.run.first { $0.name == "load" }?.toleranceMet == false)
        #expect(journal.reason == "probe \"load\" in the method was not within tolerance: 0.2 is outside [0, 0.01]")
        #expect(result.exitCode == 1)
    }

    @Test("a method probe within its tolerance keeps the run completed")
    func methodProbeWithinTolerance() async throws {
        let kit = TestKit()
        let result = try await kit.run(
            yaml: experiment(
                extraMethod: """
                      - {type: probe, name: load, tolerance: {type: range, range: [0, 0.01], target: error_rate}, provider: {type: test.probe, value: {error_rate: 0}}}
                    """))
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .completed)
        #expect(journal.run.first { $0.name == "load" }?.toleranceMet == true)
    }

    // MARK: Hypothesis strategies

    @Test(
        "hypothesis strategies decide when the hypothesis runs",
        arguments: [
            (HypothesisStrategy.default, true, 0, true),
            (.beforeMethodOnly, true, 0, false),
            (.afterMethodOnly, false, 0, true),
            (.duringMethodOnly, false, 1, false),
            (.continuously, true, 1, true),
        ])
    func hypothesisStrategies(_ strategy: HypothesisStrategy, _ before: Bool, _ minimumDuring: Int, _ after: Bool) async throws {
        let kit = TestKit()
        var options = SuiteRunner.Options()
        options.run.hypothesisStrategy = strategy
        options.run.hypothesisFrequency = 0.05
        let result = try await kit.run(
            yaml: experiment(extraMethod: "  - {type: action, name: slow, provider: {type: test.action, label: slow, delay: 0.3}}"), options: options)
        let journal = try #require(result.journals.first)
        #expect((journal.steadyStates.before != nil) == before)
        #expect((journal.steadyStates.after != nil) == after)
        #expect(journal.steadyStates.during.count >= minimumDuring)
        if minimumDuring == 0 { #expect(journal.steadyStates.during.isEmpty) }
        #expect(journal.outcome == .completed)
    }

    @Test("a deviation seen during the method counts (Chaos Toolkit exits 0)")
    func duringDeviation() async throws {
        let kit = TestKit()
        kit.script("health", [503, 200])
        var options = SuiteRunner.Options()
        options.run.hypothesisStrategy = .duringMethodOnly
        options.run.hypothesisFrequency = 0.05
        let result = try await kit.run(
            yaml: experiment(extraMethod: "  - {type: action, name: slow, provider: {type: test.action, label: slow, delay: 0.2}}"), options: options)
        let journal = try #require(result.journals.first)
        #expect(journal.deviated)
        #expect(journal.outcome == .deviated)
        #expect(result.exitCode == 1)
    }

    @Test("--fail-fast stops the method at the first deviation during it")
    func failFast() async throws {
        let kit = TestKit()
        kit.script("health", [200])
        var options = SuiteRunner.Options()
        options.run.hypothesisStrategy = .continuously
        options.run.hypothesisFrequency = 0.01
        options.run.failFast = true
        async let running = kit.run(
            yaml: experiment(extraMethod: "  - {type: action, name: long, provider: {type: test.action, label: long, delay: 30}}"), options: options)
        // The hypothesis deviates only once the long action runs, so it is that action the deviation cuts short.
        while !kit.log.contains("long") { await Task.yield() }
        kit.script("health", [503])
        let result = try await running
        let journal = try #require(result.journals.first)
        #expect(journal.deviated)
        #expect(journal.reason?.contains("--fail-fast") == true)
        #expect(kit.log.contains("long cancelled"))
        #expect(journal.run.last?.status == .interrupted)
        #expect(kit.log.contains("rollback"))
    }

    @Test("runtime: in the experiment sets the strategies, the command line wins")
    func runtimeBlock() async throws {
        let kit = TestKit()
        let yaml = experiment(runtime: "runtime: {hypothesis: {strategy: before-method-only}, rollbacks: {strategy: never}}")
        let result = try await kit.run(yaml: yaml)
        let journal = try #require(result.journals.first)
        #expect(journal.steadyStates.after == nil)
        #expect(!kit.log.contains("rollback"))

        let kit2 = TestKit()
        var options = SuiteRunner.Options()
        options.run.rollbackStrategy = .always
        _ = try await kit2.run(yaml: yaml, options: options)
        #expect(kit2.log.contains("rollback"))
    }

    // MARK: Rollback strategies

    @Test(
        "rollback strategies",
        arguments: [
            // strategy, gate passes, after passes → rollback played?
            (RollbackStrategy.default, true, true, true),
            (.default, false, true, false),
            (.always, false, true, true),
            (.never, true, true, false),
            (.deviated, true, true, false),
            (.deviated, true, false, true),
        ])
    func rollbackStrategies(_ strategy: RollbackStrategy, _ gatePasses: Bool, _ afterPasses: Bool, _ played: Bool) async throws {
        let kit = TestKit()
        kit.script("health", [.int(gatePasses ? 200 : 500), .int(afterPasses ? 200 : 500)])
        var options = SuiteRunner.Options()
        options.run.rollbackStrategy = strategy
        _ = try await kit.run(yaml: experiment(), options: options)
        #expect(kit.log.contains("rollback") == played)
    }

    // MARK: Activities

    @Test("background activities run concurrently and are joined at the end of the method")
    func background() async throws {
        let kit = TestKit()
        // Both wait at a barrier for two arrivals: the run only finishes if they overlap.
        let result = try await kit.run(
            yaml: """
                title: bg
                method:
                  - {type: action, name: one, background: true, provider: {type: test.action, label: one, barrier: meet}}
                  - {type: action, name: two, background: true, provider: {type: test.action, label: two, barrier: meet}}
                  - {type: action, name: three, provider: {type: test.action, label: three}}
                """)
        let journal = try #require(result.journals.first)
        #expect(journal.outcome == .completed)
        #expect(Set(journal.run.map(\.name)) == ["one", "two", "three"])
        #expect(journal.run.filter { $0.background == true }.count == 2)
    }

    @Test("ref re-runs a named activity from the hypothesis or method")
    func references() async throws {
        let kit = TestKit()
        let result = try await kit.run(
            yaml: """
                title: refs
                steady-state-hypothesis:
                  title: h
                  probes:
                    - {type: probe, name: health, tolerance: 1, provider: {type: test.probe, value: 1}}
                method:
                  - {type: action, name: poke, provider: {type: test.action, label: poke}}
                  - ref: poke
                  - ref: health
                """)
        let journal = try #require(result.journals.first)
        #expect(kit.log == ["poke", "poke"])
        #expect(journal.run.map(\.name) == ["poke", "poke", "health"])
    }

    @Test("refs as Chaos Toolkit reads them: type and name beside ref, method refs not judged, hypothesis refs by their own tolerance")
    func referenceForms() async throws {
        let kit = TestKit()
        kit.script("health", [1, 2, 2, 2, 1, 1])
        let result = try await kit.run(
            yaml: """
                title: refs
                steady-state-hypothesis:
                  title: h
                  probes:
                    - {type: probe, name: health, tolerance: 1, provider: {type: test.probe, key: health}}
                    - {ref: health, tolerance: [1, 2]}
                method:
                  - {type: probe, ref: health}
                  - {type: probe, name: health, ref: health, tolerance: 1}
                """)
        let journal = try #require(result.journals.first)
        // The method saw 2 twice, which the hypothesis tolerance (1) would reject: not judged.
        #expect(journal.run.map(\.toleranceMet) == [nil, nil])
        #expect(!journal.deviated)
        #expect(journal.outcome == .completed)
        // The hypothesis ref saw 2, within its own tolerance [1, 2].
        #expect(journal.steadyStates.before?.probes.map(\.toleranceMet) == [true, true])
    }

    @Test("a ref to a name several activities have runs the last (method first, then hypothesis), with a warning")
    func ambiguousReference() async throws {
        let kit = TestKit()
        let directory = try ScratchDirectory()
        let file = try directory.write(
            "e.yaml",
            """
            title: refs
            steady-state-hypothesis:
              title: h
              probes:
                - {type: probe, name: check, tolerance: hypothesis, provider: {type: test.probe, value: hypothesis}}
            method:
              - {type: probe, name: check, provider: {type: test.probe, value: method}}
              - ref: check
            """)
        let prepared = try SuiteRunner(registry: kit.registry()).load(path: file, options: .init())
        #expect(
            prepared.warnings.contains {
                $0.description.contains("ref \"check\": 2 activities have that name; the last (steady-state-hypothesis.probes[0]) is used")
            })
        let result = await SuiteRunner(registry: kit.registry()).run(prepared)
        #expect(result.journals.first?.run.last?.output == "hypothesis")
    }

    @Test("pauses wait before and after, and are skipped in dry mode")
    func pauses() async throws {
        let kit = TestKit()
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await kit.run(
            yaml: """
                title: p
                configuration: {wait: 0.15}
                method:
                  - {type: action, name: a, pauses: {before: 0.1, after: "${wait}"}, provider: {type: test.action, label: a}}
                """)
        #expect(clock.now - start >= .milliseconds(250))
        let record = try #require(result.journals.first?.run.first)
        // Pauses are not part of the activity's duration.
        #expect(record.duration < 0.1)

        // Minutes of pauses, skipped: the run ends long before them.
        let dryKit = TestKit()
        var options = SuiteRunner.Options()
        options.run.dry = .pause
        let dryStart = clock.now
        _ = try await dryKit.run(
            yaml: """
                title: p
                method:
                  - {type: action, name: a, pauses: {before: 120, after: 120}, provider: {type: test.action, label: a}}
                """, options: options)
        #expect(clock.now - dryStart < .seconds(60))
        #expect(dryKit.log == ["a"])
    }

    @Test(
        "dry modes skip what they name",
        arguments: [
            (DryMode.probes, ["inject", "rollback", "undo inject"], RecordStatus.skipped),
            (.actions, [], RecordStatus.succeeded),
            (.activities, [], RecordStatus.skipped),
        ])
    func dryModes(_ mode: DryMode, _ log: [String], _ probeStatus: RecordStatus) async throws {
        let kit = TestKit()
        kit.script("health", [500])  // would fail the gate if it ran
        var options = SuiteRunner.Options()
        options.run.dry = mode
        let result = try await kit.run(yaml: experiment(), options: options)
        let journal = try #require(result.journals.first)
        #expect(kit.log == log)
        #expect(journal.dry == mode.rawValue)
        let probe = try #require(journal.steadyStates.before?.probes.first)
        #expect(probe.status == probeStatus)
        if probeStatus == .skipped { #expect(journal.outcome == .completed) }
    }

    @Test("an activity timeout cancels the activity and fails it")
    func activityTimeout() async throws {
        let kit = TestKit()
        let result = try await kit.run(
            yaml: """
                title: t
                method:
                  - {type: action, name: slow, timeout: 0.1, provider: {type: test.action, label: slow, delay: 30}}
                """)
        let journal = try #require(result.journals.first)
        let record = try #require(journal.run.first)
        #expect(record.status == .failed)
        #expect(record.exception?.first == "timed out after 0.1 s and was cancelled")
        #expect(journal.reason == "action \"slow\" failed: timed out after 0.1 s and was cancelled")
        #expect(kit.log == ["slow", "slow cancelled"])
        #expect(journal.outcome == .aborted)
    }

    @Test("values an activity exports are visible to later activities")
    func exports() async throws {
        let kit = TestKit()
        _ = try await kit.run(
            yaml: """
                title: t
                method:
                  - {type: action, name: a, provider: {type: test.action, label: first, export: {bound_port: 4242}}}
                  - {type: action, name: b, provider: {type: test.action, label: "port ${bound_port}"}}
                """)
        #expect(kit.log == ["first", "port 4242"])
    }

    // MARK: Interrupts (in process; the CLI tests send real signals)

    @Test("an interrupt cancels the in-flight activity, skips the rest and still rolls back")
    func interrupt() async throws {
        let kit = TestKit()
        let interruption = Interruption()
        let yaml = experiment(
            extraMethod: """
                  - {type: action, name: long, provider: {type: test.action, label: long, delay: 30}}
                  - {type: action, name: never, provider: {type: test.action, label: never}}
                """)
        async let result = kit.run(yaml: yaml, interruption: interruption)
        await sendSIGINT(to: interruption, once: kit, recorded: "long")
        let journal = try #require(try await result.journals.first)
        #expect(journal.status == .interrupted)
        #expect(journal.outcome == .interrupted)
        #expect(kit.log == ["inject", "long", "long cancelled", "rollback", "undo inject"])
        #expect(journal.run.last?.status == .interrupted)
        #expect(try await result.exitCode == 130)
    }

    @Test("a second interrupt aborts the rollbacks, says what was left undone, and still undoes the injected faults")
    func secondInterrupt() async throws {
        let kit = TestKit()
        let interruption = Interruption()
        async let result = kit.run(
            yaml: """
                title: t
                method:
                  - {type: action, name: inject, provider: {type: test.action, label: inject, cleanup: true, fault: true}}
                  - {type: action, name: long, provider: {type: test.action, label: long, delay: 30}}
                rollbacks:
                  - {type: action, name: slow-rollback, provider: {type: test.action, label: slow-rollback, delay: 30}}
                  - {type: action, name: second-rollback, provider: {type: test.action, label: second-rollback}}
                """, interruption: interruption)
        await sendSIGINT(to: interruption, once: kit, recorded: "long")
        await sendSIGINT(to: interruption, once: kit, recorded: "slow-rollback")
        let journal = try #require(try await result.journals.first)
        #expect(journal.status == .interrupted)
        #expect(journal.leftUndone == ["rollback \"second-rollback\""])
        #expect(journal.reason?.contains("left undone: rollback \"second-rollback\"") == true)
        #expect(!kit.log.contains("second-rollback"))
        #expect(kit.log.suffix(2) == ["slow-rollback cancelled", "undo inject"])
        #expect(journal.cleanup.map(\.status) == [.succeeded])
    }

    @Test("a third interrupt stops the undos too: the one cut short and the ones never started are left undone")
    func thirdInterrupt() async throws {
        let kit = TestKit()
        let interruption = Interruption()
        async let result = kit.run(
            yaml: """
                title: t
                method:
                  - {type: action, name: first, provider: {type: test.action, label: first, cleanup: true}}
                  - {type: action, name: slow, provider: {type: test.action, label: slow, cleanup: true, cleanup_delay: 30}}
                  - {type: action, name: quick, provider: {type: test.action, label: quick, cleanup: true}}
                  - {type: action, name: long, provider: {type: test.action, label: long, delay: 30}}
                rollbacks:
                  - {type: action, name: slow-rollback, provider: {type: test.action, label: slow-rollback, delay: 30}}
                """, interruption: interruption)
        await sendSIGINT(to: interruption, once: kit, recorded: "long")
        await sendSIGINT(to: interruption, once: kit, recorded: "slow-rollback")
        await sendSIGINT(to: interruption, once: kit, recorded: "undo slow")
        let journal = try #require(try await result.journals.first)
        #expect(journal.status == .interrupted)
        #expect(kit.log.suffix(3) == ["undo quick", "undo slow", "undo slow cancelled"])
        #expect(journal.cleanup.map(\.status) == [.succeeded, .interrupted])
        #expect(journal.leftUndone == ["undo slow", "undo first"])
    }

    // MARK: Journal

    @Test("the journal on disk is valid while the run is in progress and final at the end")
    func journalAsItGoes() async throws {
        let kit = TestKit()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-j-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("journal.json").path
        var options = SuiteRunner.Options()
        options.journalPath = path
        let interruption = Interruption()
        async let result = kit.run(
            yaml: experiment(extraMethod: "  - {type: action, name: long, provider: {type: test.action, label: long, delay: 30}}"), options: options,
            interruption: interruption)
        while !kit.log.contains("long") { await Task.yield() }
        let midway = try Journal.load(path: path)
        #expect(midway.status == .running)
        #expect(midway.steadyStates.before?.steadyStateMet == true)
        #expect(midway.run.map(\.name) == ["inject"])
        interruption.interrupt("SIGTERM")
        _ = try await result
        let final = try Journal.load(path: path)
        #expect(final.status == .interrupted)
        #expect(final.reason?.hasPrefix("interrupted by SIGTERM") == true)
        #expect(final.end != nil)
    }

    @Test("secrets never reach the journal, even substituted into arguments and outputs")
    func redaction() async throws {
        let kit = TestKit()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-s-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("journal.json").path
        var options = SuiteRunner.Options()
        options.journalPath = path
        options.environment["T_SECRET_TOKEN"] = "env-secret-9876"
        let result = try await kit.run(
            yaml: """
                title: s
                secrets:
                  api:
                    token: inline-secret-1234
                    other: {type: env, key: T_SECRET_TOKEN}
                steady-state-hypothesis:
                  title: h
                  probes:
                    - {type: probe, name: p, tolerance: {type: regex, pattern: "^https"}, provider: {type: test.probe, value: "https://u:${token}@h/?k=${other}"}}
                method:
                  - {type: action, name: "a", provider: {type: test.action, label: "Bearer ${token}", cleanup: true, fault: true}}
                  - {type: action, name: "b", provider: {type: test.action, label: "b", fail: "rejected ${other}"}}
                """, options: options)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains("inline-secret-1234"))
        #expect(!text.contains("env-secret-9876"))
        #expect(text.contains("https://u:***@h/?k=***"))
        #expect(text.contains("Bearer ***"))
        #expect(text.contains("rejected ***"))
        // Fault labels and cleanup descriptions come from plugins: masked too.
        #expect(result.journals.first?.faults.first?.label == "Bearer ***")
        #expect(result.journals.first?.cleanup.first?.description == "undo Bearer ***")
        #expect(result.journals.first?.experiment["secrets"]?["api"]?["token"] == "***")
    }
}
