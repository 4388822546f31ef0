import FaultlineKit
import FaultlineProcess
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

@Suite("process provider")
struct ProcessProviderTests {
    func run(_ yaml: String) async throws -> Value {
        let node = try DocumentLoader.parse(yaml, format: .yaml, file: "p.yaml")
        let arguments = try NodeDecoder().decode(ProcessProvider.Arguments.self, from: node)
        try ProcessProvider.validate(arguments)
        return try await ProcessProvider.run(arguments, context: .standalone())
    }

    @Test("a list of arguments is argv: no shell, no word splitting")
    func argv() async throws {
        let output = try await run("{path: printf, arguments: ['%s|', 'a b', '$HOME', '', null, 3]}")
        #expect(output == ["status": 0, "stdout": "a b|$HOME|3|", "stderr": ""])
    }

    @Test("values that are not strings are written as Python's str() writes them, as chaoslib does")
    func pythonArguments() async throws {
        let output = try await run("{path: printf, arguments: ['%s|', true, 1.5, 2.0, {a: [1, null]}, [x], false, 0]}")
        #expect(output["stdout"] == "True|1.5|2.0|{'a': [1, None]}|['x']|False|0|")
        // Chaos Toolkit's deprecated mapping form: key value pairs, null and "" dropped.
        let mapping = try await run("{path: printf, arguments: {'%s|': true, '-n': null, '-v': ''}}")
        #expect(mapping["stdout"] == "True|-n|-v|")
    }

    @Test("a string runs through /bin/sh -c, with a warning unless shell: true")
    func shellString() async throws {
        let output = try await run("{path: echo, arguments: 'one two | tr a-z A-Z'}")
        #expect(output["stdout"] == "ONE TWO\n")
        let arguments = try NodeDecoder().decode(ProcessProvider.Arguments.self, from: .object(["path": "echo", "arguments": "x"]))
        #expect(ProcessProvider.warnings(arguments).first?.message == "a string of arguments runs through /bin/sh -c")
        let intended = try NodeDecoder().decode(ProcessProvider.Arguments.self, from: .object(["path": "echo", "arguments": "x", "shell": true]))
        #expect(ProcessProvider.warnings(intended).isEmpty)
    }

    @Test("a non-zero exit is an output, not a failure")
    func nonZero() async throws {
        let output = try await run("{path: sh, arguments: ['-c', 'echo oops >&2; exit 7']}")
        #expect(output == ["status": 7, "stdout": "", "stderr": "oops\n"])
    }

    @Test("env and cwd")
    func environmentAndDirectory() async throws {
        let directory = FileManager.default.temporaryDirectory.path
        let output = try await run("{path: sh, arguments: ['-c', 'echo $GREETING; pwd'], env: {GREETING: hi, N: 5}, cwd: '\(directory)'}")
        let lines = output["stdout"]?.stringValue?.split(separator: "\n").map(String.init) ?? []
        #expect(lines.first == "hi")
        #expect(
            URL(fileURLWithPath: lines.last ?? "").resolvingSymlinksInPath().path == URL(fileURLWithPath: directory).resolvingSymlinksInPath().path)
    }

    @Test("a timeout stops the whole process group and fails the activity")
    func timeout() async throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("grandchild-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: marker) }
        // The shell starts a grandchild that would outlive a kill of the shell alone.
        let error = try await #require(throws: ActivityFailure.self) {
            _ = try await run("{path: sh, arguments: ['-c', 'sleep 30 & echo $! > \(marker); wait'], timeout: 0.3}")
        }
        #expect(error.message.hasPrefix("sh timed out after 0.3 s; its process group was stopped"))
        let grandchild = try #require(pid_t(String(contentsOfFile: marker, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        func alive() -> Bool {
            guard kill(grandchild, 0) == 0 else { return false }
            // A zombie waiting for its new parent to reap it is dead too.
            return !((try? String(contentsOfFile: "/proc/\(grandchild)/status", encoding: .utf8)) ?? "").contains("State:\tZ")
        }
        #expect(await eventually { !alive() }, "grandchild \(grandchild) survived")
    }

    @Test("a timeout stops a process group that ignores SIGTERM too")
    func timeoutIgnoringTerm() async throws {
        let number = uniqueSleep()
        let error = try await #require(throws: ActivityFailure.self) {
            _ = try await run("{path: sh, arguments: ['-c', \"trap '' TERM; sleep \(number) & wait\"], timeout: 0.3}")
        }
        #expect(error.message.hasPrefix("sh timed out after 0.3 s; its process group was stopped (killed by SIGKILL)"))
        #expect(await eventually { liveProcesses(containing: number).isEmpty })
    }

    @Test("cancellation (an interrupt) kills the child promptly")
    func cancellation() async throws {
        // A 300 s sleep: ending well before it shows the kill (loose bound: CI machines are busy).
        let task = Task { try await run("{path: sleep, arguments: ['300']}") }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        let clock = ContinuousClock()
        let start = clock.now
        _ = await task.result
        #expect(clock.now - start < .seconds(60))
        if case .success = await task.result { Issue.record("a cancelled process run should not succeed") }
    }

    @Test(
        "a path that is missing or not executable is a clear validation error",
        arguments: [
            ("/nonexistent/tool", "cannot run /nonexistent/tool: no such file"),
            ("no-such-tool-xyz", "cannot run no-such-tool-xyz: not found in PATH"),
            ("NOT-EXECUTABLE", "cannot run NOT-EXECUTABLE: it is not executable (chmod +x NOT-EXECUTABLE)"),
        ])
    func badPath(_ template: String, _ messageTemplate: String) throws {
        let plain = FileManager.default.temporaryDirectory.appendingPathComponent("plain-\(UUID().uuidString).txt").path
        _ = FileManager.default.createFile(atPath: plain, contents: Data("x".utf8), attributes: [.posixPermissions: 0o644])
        defer { try? FileManager.default.removeItem(atPath: plain) }
        let path = template.replacingOccurrences(of: "NOT-EXECUTABLE", with: plain)
        let message = messageTemplate.replacingOccurrences(of: "NOT-EXECUTABLE", with: plain)
        let arguments = try NodeDecoder().decode(ProcessProvider.Arguments.self, from: .object(["path": .string(path)]))
        let error = try #require(throws: ArgumentError.self) { try ProcessProvider.validate(arguments) }
        #expect(error.key == "path")
        #expect(error.message == message)
    }

    @Test("children get no file descriptor of ours beyond stdin, stdout and stderr")
    func descriptors() async throws {
        let output = try await run("{path: sh, arguments: ['-c', 'ls /proc/self/fd']}")
        // 0, 1, 2, and the directory ls itself opened.
        let fds = (output["stdout"]?.stringValue ?? "").split(separator: "\n").compactMap { Int($0) }
        #expect(fds.filter { $0 > 2 }.count <= 1, "inherited: \(fds)")
    }

    @Test("a tolerance probe that runs a process is met when it exits 0: the provider says so, not the output's keys")
    func toleranceProbe() async throws {
        let kit = TestKit()
        func verdict(_ exit: Int) async throws -> Outcome {
            let journal = try await kit.run(
                yaml: """
                    title: t
                    steady-state-hypothesis:
                      title: h
                      probes:
                        - type: probe
                          name: p
                          provider: {type: test.probe, value: {status: \(exit), stdout: ""}}
                          tolerance: {type: probe, name: judge, provider: {type: process, path: sh, arguments: ["-c", "exit \(exit)"]}}
                    method: []
                    """, plugins: [ProcessPlugin.self]
            ).journals[0]
            return journal.outcome
        }
        #expect(try await verdict(0) == .completed)
        #expect(try await verdict(3) == .failed)
    }
}
