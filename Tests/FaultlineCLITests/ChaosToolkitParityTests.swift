import FaultlineKit
import FaultlineNetwork
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The same experiment under `chaos run` (Chaos Toolkit itself, from the venv `.ci/run` creates)
/// and `faultline run`, in fresh copies of the same directory, against the same local HTTP
/// server: the journals' `status`, `deviated` and each hypothesis probe's `tolerance_met` agree.
/// Faultline runs every hypothesis probe where Chaos Toolkit stops at the first that fails, so
/// the probes compared are the ones Chaos Toolkit ran.
@Suite(
    "Chaos Toolkit parity: chaos run and faultline run agree", .serialized,
    .enabled(if: ChaosToolkitOracle.isAvailable, "\(ChaosToolkitOracle.missing)"))
struct ChaosToolkitParityTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        /// The experiment; `BASE` is replaced by the test server's URL.
        let experiment: String
        /// Files each run starts with (a name ending in / is a directory).
        var files: [String: String] = [:]
        /// What both journals say: status, deviated, and the tolerance_met of the hypothesis
        /// probes Chaos Toolkit ran, before and after the method.
        let status: String
        let deviated: Bool
        let before: [Bool]
        var after: [Bool]? = nil
        /// Rollbacks each runs (a documented difference when they differ).
        var chaosRollbacks = 0
        var faultlineRollbacks = 0
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "a range tolerance reads text as Python's Decimal does",
            experiment: """
                title: range on text
                description: stdout and an http text body are numbers once stripped
                steady-state-hypothesis:
                  title: numbers
                  probes:
                    - {type: probe, name: five, tolerance: {type: range, range: [4, 6], target: stdout}, provider: {type: process, path: echo, arguments: ["5"]}}
                    - {type: probe, name: padded, tolerance: {type: range, range: [1, 2], target: stdout}, provider: {type: process, path: printf, arguments: ["  1.5\\n"]}}
                    - {type: probe, name: text-body, tolerance: {type: range, range: [4, 6], target: body}, provider: {type: http, url: "BASE/count.txt"}}
                method: []
                """,
            status: "completed", deviated: false, before: [true, true, true], after: [true, true, true]),
        Case(
            name: "process arguments and substitutions are written as Python writes them",
            experiment: """
                title: python text
                description: booleans, floats, null and objects as str() writes them
                configuration: {flag: true, ratio: 1.0, nothing: null}
                steady-state-hypothesis:
                  title: rendered
                  probes:
                    - type: probe
                      name: list-elements
                      tolerance: {type: regex, pattern: "^True 1.5 \\\\{'a': \\\\[1, None\\\\]\\\\} 0 False$", target: stdout}
                      provider: {type: process, path: echo, arguments: [true, 1.5, {a: [1, null]}, null, "", 0, false]}
                    - type: probe
                      name: interpolated
                      tolerance: {type: regex, pattern: "^flag=True ratio=1.0 nothing=None$", target: stdout}
                      provider: {type: process, path: echo, arguments: ["flag=${flag} ratio=${ratio} nothing=${nothing}"]}
                method: []
                """,
            status: "completed", deviated: false, before: [true, true], after: [true, true]),
        Case(
            name: "JSONPath is jsonpath2's: filters after wildcards, counts, Python equality",
            experiment: """
                title: jsonpath2
                description: paths as jsonpath2 reads them
                runtime: {hypothesis: {strategy: after-method-only}}
                steady-state-hypothesis:
                  title: paths
                  probes:
                    - {type: probe, name: filter-after-wildcard, tolerance: {type: jsonpath, path: "$.foo.*[?(@.baz)].baz", count: 2, target: stdout}, provider: {type: process, path: cat, arguments: [doc.json]}}
                    - {type: probe, name: filter-of-elements, tolerance: {type: jsonpath, path: "$.items[*][?(@.ok = true)]", count: 1, target: stdout}, provider: {type: process, path: cat, arguments: [doc.json]}}
                    - {type: probe, name: python-equality, tolerance: {type: jsonpath, path: "$.items[*].ok", expect: [1, 0], target: stdout}, provider: {type: process, path: cat, arguments: [doc.json]}}
                    - {type: probe, name: whole-output, tolerance: {type: jsonpath, path: "$.status", expect: 0}, provider: {type: process, path: cat, arguments: [doc.json]}}
                    - {type: probe, name: filter-on-the-list-itself, tolerance: {type: jsonpath, path: "$.items[?(@.ok)]", target: stdout}, provider: {type: process, path: cat, arguments: [doc.json]}}
                method: []
                """,
            files: ["doc.json": #"{"foo": {"a": {"baz": 1}, "b": {"bar": 2}, "d": {"baz": null}}, "items": [{"ok": true}, {"ok": false}]}"#],
            status: "completed", deviated: true, before: [], after: [true, true, true, true, false]),
        Case(
            name: "http bodies: JSON decoded, text kept, Content-Length from the body sent",
            experiment: """
                title: http
                description: a JSON body, a text body, and a Content-Length that lies
                steady-state-hypothesis:
                  title: answers
                  probes:
                    - {type: probe, name: up, tolerance: 200, provider: {type: http, url: "BASE/health.json", timeout: 3}}
                    - {type: probe, name: db-check, tolerance: {type: jsonpath, path: "$.checks[*][?(@.up = true)].name", expect: [db], target: body}, provider: {type: http, url: "BASE/health.json"}}
                    - {type: probe, name: regex-on-text, tolerance: {type: regex, pattern: "^5$", target: body}, provider: {type: http, url: "BASE/count.txt"}}
                    - type: probe
                      name: content-length-recomputed
                      tolerance: 501
                      provider:
                        type: http
                        method: POST
                        url: "BASE/users"
                        timeout: 3
                        headers: {Content-Type: application/json, Content-Length: "999"}
                        arguments: {username: ada}
                method: []
                """,
            status: "completed", deviated: false, before: [true, true, true, true], after: [true, true, true, true]),
        Case(
            name: "a hypothesis probe that cannot run after the method: failed and deviated",
            experiment: """
                title: after probe fails
                description: the probe times out once the method broke things
                steady-state-hypothesis:
                  title: answers quickly
                  probes:
                    - {type: probe, name: quick, tolerance: 0, provider: {type: process, path: sh, arguments: ["-c", "if [ -f broken ]; then exec sleep 30; fi"], timeout: 3}}
                method:
                  - {type: action, name: break, provider: {type: process, path: touch, arguments: [broken]}}
                rollbacks:
                  - {type: action, name: repair, provider: {type: process, path: rm, arguments: ["-f", broken]}}
                """,
            // Chaos Toolkit skips the rollbacks of a failed run; Faultline plays them (README).
            status: "failed", deviated: true, before: [true], after: [false], chaosRollbacks: 0, faultlineRollbacks: 1),
        Case(
            name: "a gate probe that cannot run: failed, not deviated, no rollbacks",
            experiment: """
                title: gate fails
                description: nothing listens
                steady-state-hypothesis:
                  title: up
                  probes:
                    - {type: probe, name: closed-port, tolerance: 200, provider: {type: http, url: "CLOSED/", timeout: 2}}
                method:
                  - {type: action, name: never, provider: {type: process, path: touch, arguments: [never]}}
                rollbacks:
                  - {type: action, name: undo, provider: {type: process, path: "true"}}
                """,
            status: "failed", deviated: false, before: [false]),
        Case(
            name: "refs: a method ref is not judged, a hypothesis ref is judged by its own tolerance",
            experiment: """
                title: refs
                description: refs in the method and the hypothesis
                steady-state-hypothesis:
                  title: no marker
                  probes:
                    - {type: probe, name: marker-absent, tolerance: 1, provider: {type: process, path: test, arguments: ["-f", marker]}}
                    - {ref: marker-absent, tolerance: [1]}
                method:
                  - {type: action, name: mark, provider: {type: process, path: touch, arguments: [marker]}}
                  - {type: probe, ref: marker-absent}
                  - {type: probe, tolerance: 1, ref: marker-absent}
                  - {type: action, name: unmark, provider: {type: process, path: rm, arguments: [marker]}}
                rollbacks: []
                """,
            status: "completed", deviated: false, before: [true, true], after: [true, true]),
        Case(
            name: "os and os.path functions run natively, as Python runs them",
            experiment: """
                {
                  "title": "data file moved away",
                  "description": "os.path.exists, os.path.isdir and os.rename without Python",
                  "steady-state-hypothesis": {
                    "title": "the data is there",
                    "probes": [
                      {"type": "probe", "name": "data-file-exists", "tolerance": true,
                       "provider": {"type": "python", "module": "os.path", "func": "exists", "arguments": {"path": "data.txt"}}},
                      {"type": "probe", "name": "data-dir", "tolerance": true,
                       "provider": {"type": "python", "module": "os.path", "func": "isdir", "arguments": {"s": "data"}}}
                    ]
                  },
                  "method": [
                    {"type": "action", "name": "move-away",
                     "provider": {"type": "python", "module": "os", "func": "rename", "arguments": {"src": "data.txt", "dst": "data.bak"}}}
                  ],
                  "rollbacks": [
                    {"type": "action", "name": "move-back",
                     "provider": {"type": "python", "module": "os", "func": "rename", "arguments": {"src": "data.bak", "dst": "data.txt"}}},
                    {"type": "action", "name": "remove-missing",
                     "provider": {"type": "python", "module": "os", "func": "remove", "arguments": {"path": "missing.txt"}}}
                  ]
                }
                """,
            files: ["data.txt": "x\n", "data/": ""],
            status: "completed", deviated: true, before: [true, true], after: [false], chaosRollbacks: 2, faultlineRollbacks: 2),
        Case(
            name: "a timeout inside a python provider loads and goes unused, as chaoslib's own experiments have it",
            experiment: """
                {
                  "title": "python provider timeout",
                  "description": "chaoslib's python provider never reads its timeout",
                  "steady-state-hypothesis": {
                    "title": "the file is there",
                    "probes": [
                      {"type": "probe", "name": "here", "tolerance": true,
                       "provider": {"type": "python", "module": "os.path", "func": "exists", "arguments": {"path": "data.txt"}, "timeout": 30}}
                    ]
                  },
                  "method": [
                    {"type": "action", "name": "gone",
                     "provider": {"type": "python", "module": "os", "func": "remove", "arguments": {"path": "data.txt"}, "timeout": 1}}
                  ]
                }
                """,
            files: ["data.txt": "x\n"],
            status: "completed", deviated: true, before: [true], after: [false]),
        Case(
            name: "a probe tolerance calls a python function with the output as value: os.path.exists has no such argument",
            experiment: """
                title: python tolerance
                description: chaoslib adds value= to the function's arguments
                runtime: {hypothesis: {strategy: after-method-only}}
                steady-state-hypothesis:
                  title: judged by a function
                  probes:
                    - type: probe
                      name: judged-by-exists
                      tolerance: {type: probe, name: exists, provider: {type: python, module: os.path, func: exists, arguments: {path: data.txt}}}
                      provider: {type: process, path: echo, arguments: [data.txt]}
                method: []
                """,
            files: ["data.txt": "x\n"],
            status: "completed", deviated: true, before: [], after: [false]),
        Case(
            name: "env defaults go through env_var_type, and a regex's braces are Python's",
            experiment: """
                title: typed defaults
                description: the variables are unset, so their defaults are converted
                configuration:
                  flag: {type: env, key: FAULTLINE_PARITY_UNSET_1, default: "no", env_var_type: bool}
                  count: {type: env, key: FAULTLINE_PARITY_UNSET_2, default: "7", env_var_type: int}
                  ratio: {type: env, key: FAULTLINE_PARITY_UNSET_3, default: "2", env_var_type: float}
                  doc: {type: env, key: FAULTLINE_PARITY_UNSET_4, default: '{"a": [1, 2]}', env_var_type: json}
                steady-state-hypothesis:
                  title: rendered
                  probes:
                    - type: probe
                      name: typed
                      tolerance: {type: regex, pattern: "^False 7 2.0 {'a': \\\\[1, 2\\\\]}$", target: stdout}
                      provider: {type: process, path: echo, arguments: ["${flag}", "${count}", "${ratio}", "${doc}"]}
                    - type: probe
                      name: json-braces
                      tolerance: {type: regex, pattern: '^{"status": "UP"', target: stdout}
                      provider: {type: process, path: echo, arguments: ['{"status": "UP"}']}
                method: []
                """,
            status: "completed", deviated: false, before: [true, true], after: [true, true]),
    ]

    /// A Python `http.server` on a free port serving `directory`; the test stops it by pid.
    static func startServer(directory: String) async throws -> (TestProcess, port: Int) {
        let port = try FreePort.take()
        let server = try TestProcess("python3", ["-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, String(port)])
        let listening = await eventually(timeout: .seconds(15)) {
            guard let socket = try? TestSocket(port: port, timeout: 1) else { return false }
            socket.close()
            return true
        }
        if !listening { await server.stop() }
        try #require(listening, "python3 -m http.server did not listen on \(port)")
        return (server, port)
    }

    @Test(arguments: cases)
    func agrees(_ testCase: Case) async throws {
        try ChaosToolkitOracle.require()
        let scratch = try ScratchDirectory(prefix: "faultline-parity")
        try scratch.write("www/health.json", #"{"status": "UP", "checks": [{"name": "db", "up": true}, {"name": "cache", "up": false}]}"#)
        try scratch.write("www/count.txt", "5\n")
        let (server, port) = try await Self.startServer(directory: scratch.path("www"))
        try await closing(server) { _ in
            let closed = try FreePort.take()
            let isJSON = testCase.experiment.hasPrefix("{")
            let experiment = testCase.experiment
                .replacingOccurrences(of: "BASE", with: "http://127.0.0.1:\(port)")
                .replacingOccurrences(of: "CLOSED", with: "http://127.0.0.1:\(closed)")

            func prepare(_ directory: String) throws -> String {
                for (name, content) in testCase.files {
                    if name.hasSuffix("/") {
                        try FileManager.default.createDirectory(atPath: scratch.path("\(directory)/\(name)"), withIntermediateDirectories: true)
                    } else {
                        try scratch.write("\(directory)/\(name)", content)
                    }
                }
                return try scratch.write("\(directory)/experiment.\(isJSON ? "json" : "yaml")", experiment)
            }

            let chaosFile = try prepare("chaos")
            let chaos = try ChaosToolkitOracle.chaosRun(chaosFile, in: scratch.path("chaos"))
            let chaosJournal = try #require(chaos.journal, "chaos run wrote no journal:\n\(chaos.output.suffix(3000))")

            let faultlineFile = try prepare("faultline")
            let run = try TestProcess.faultline(
                ["run", faultlineFile, "--journal-path", scratch.path("faultline/journal.json")], in: scratch,
                workingDirectory: scratch.path("faultline"))
            _ = await run.wait()
            let faultlineText = try String(contentsOfFile: scratch.path("faultline/journal.json"), encoding: .utf8)
            let faultlineJournal = try JSONReader.value(faultlineText)

            let context = "chaos:\n\(chaos.output.suffix(1500))\nfaultline:\n\(run.stdout.suffix(1500))\(run.stderr.suffix(1500))"
            // What Chaos Toolkit says, as the case documents it.
            #expect(chaosJournal["status"] == .string(testCase.status), "\(context)")
            #expect(chaosJournal["deviated"] == .bool(testCase.deviated), "\(context)")
            #expect(Self.verdicts(chaosJournal, "before") == testCase.before, "\(context)")
            if let after = testCase.after { #expect(Self.verdicts(chaosJournal, "after") == after, "\(context)") }
            #expect(chaosJournal["rollbacks"]?.arrayValue?.count ?? 0 == testCase.chaosRollbacks, "\(context)")

            // Faultline agrees.
            #expect(faultlineJournal["status"] == chaosJournal["status"], "\(context)")
            #expect(faultlineJournal["deviated"] == chaosJournal["deviated"], "\(context)")
            for phase in ["before", "after"] {
                let expected = Self.verdicts(chaosJournal, phase)
                #expect(Array(Self.verdicts(faultlineJournal, phase).prefix(expected.count)) == expected, "\(phase): \(context)")
            }
            #expect(faultlineJournal["rollbacks"]?.arrayValue?.count ?? 0 == testCase.faultlineRollbacks, "\(context)")
        }
    }

    /// `tolerance_met` of each hypothesis probe in a phase (a missing one reads false).
    static func verdicts(_ journal: Value, _ phase: String) -> [Bool] {
        (journal["steady_states"]?[phase]?["probes"]?.arrayValue ?? []).map { $0["tolerance_met"]?.boolValue ?? false }
    }
}
