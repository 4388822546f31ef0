import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

/// Every load or validation error names file:line:column, the key path, and what to write instead.
@Suite("Validation errors")
struct ValidationTests {
    struct Malformed: CustomTestStringConvertible, Sendable {
        let name: String
        let document: String
        /// `line:column: message` expected somewhere in the diagnostics.
        let expected: String
        var testDescription: String { name }
    }

    static let malformed: [Malformed] = [
        Malformed(
            name: "misspelt top-level key",
            document: """
                title: t
                steady-state-hypotesis:
                  title: x
                """, expected: "2:1: unknown key \"steady-state-hypotesis\" (did you mean \"steady-state-hypothesis\"?) at steady-state-hypotesis"),
        Malformed(
            name: "YAML syntax error",
            document: """
                title: t
                method:
                  - type: action
                   name: x
                """, expected: "4:4: invalid YAML: did not find expected '-' indicator"),
        Malformed(
            name: "missing title",
            document: """
                method: []
                """, expected: "1:1: missing required key \"title\""),
        Malformed(
            name: "activity type typo",
            document: """
                title: t
                method:
                  - type: acton
                    name: a
                    provider: {type: test.action, label: x}
                """, expected: "3:11: invalid value \"acton\" (did you mean \"action\"?) at method[0].type"),
        Malformed(
            name: "unknown provider type",
            document: """
                title: t
                method:
                  - type: action
                    name: a
                    provider: {type: test.actoin, label: x}
                """, expected: "5:22: unknown provider type \"test.actoin\" (did you mean \"test.action\"?) at method[0].provider.type"),
        Malformed(
            name: "wrong argument type",
            document: """
                title: t
                method:
                  - type: action
                    name: a
                    provider:
                      type: test.action
                      label: x
                      delay: soon
                """, expected: "8:14: expected a number, found the string \"soon\" at method[0].provider.delay"),
        Malformed(
            name: "unknown argument",
            document: """
                title: t
                method:
                  - type: action
                    name: a
                    provider: {type: test.action, lable: x}
                """, expected: "5:35: unknown key \"lable\" (did you mean \"label\"?) at method[0].provider.lable"),
        Malformed(
            name: "missing required argument",
            document: """
                title: t
                method:
                  - type: action
                    name: a
                    provider: {type: test.action}
                """, expected: "5:15: missing required key \"label\" (add label: …) at method[0].provider"),
        Malformed(
            name: "unknown variable",
            document: """
                title: t
                configuration: {label: hello}
                method:
                  - type: action
                    name: a
                    provider: {type: test.action, label: "${lable}"}
                """, expected: "6:42: unknown variable \"${lable}\" (did you mean \"label\"?) at method[0].provider.label"),
        Malformed(
            name: "hypothesis probe without tolerance",
            document: """
                title: t
                steady-state-hypothesis:
                  title: h
                  probes:
                    - type: probe
                      name: p
                      provider: {type: test.probe, value: 1}
                """, expected: "5:7: hypothesis probe \"p\" has no tolerance"),
        Malformed(
            name: "action in the hypothesis",
            document: """
                title: t
                steady-state-hypothesis:
                  title: h
                  probes:
                    - type: action
                      name: p
                      tolerance: 1
                      provider: {type: test.action, label: x}
                """,
            expected:
                "5:7: the steady-state hypothesis holds probes only; \"p\" is an action (move it to method:, or write type: probe) at steady-state-hypothesis.probes[0].type"
        ),
        Malformed(
            name: "probe used as action",
            document: """
                title: t
                method:
                  - type: action
                    name: p
                    provider: {type: test.probe, value: 1}
                """, expected: "3:5: test.probe is a probe, but the activity says type: action (write type: probe) at method[0].type"),
        Malformed(
            name: "ref to nothing",
            document: """
                title: t
                method:
                  - type: action
                    name: inject
                    provider: {type: test.action, label: x}
                  - ref: injct
                """, expected: "6:5: ref \"injct\" names no activity (did you mean \"inject\"?) at method[1].ref"),
        Malformed(
            name: "negative pause",
            document: """
                title: t
                method:
                  - type: action
                    name: a
                    pauses: {after: -1}
                    provider: {type: test.action, label: x}
                """, expected: "5:21: a pause must be 0…31536000 seconds (365 days), found an integer -1 at method[0].pauses.after"),
        Malformed(
            name: "duplicate key",
            document: """
                title: t
                title: u
                """, expected: "2:1: duplicate key \"title\""),
        Malformed(
            name: "unsupported python module",
            document: """
                title: t
                method:
                  - type: action
                    name: a
                    provider: {type: python, module: chaosk8s.pod.actions, func: terminate_pods}
                """, expected: "5:38: python module \"chaosk8s.pod.actions\" is not supported"),
        Malformed(
            name: "bad tolerance",
            document: """
                title: t
                steady-state-hypothesis:
                  title: h
                  probes:
                    - type: probe
                      name: p
                      tolerance: {type: rnage, range: [1, 2]}
                      provider: {type: test.probe, value: 1}
                """, expected: "7:25: unknown tolerance type \"rnage\" (did you mean \"range\"?)"),
        // Far from every key: the known keys are listed, each once (`pauses` is read twice).
        Malformed(
            name: "unknown activity key far from every known one",
            document: """
                title: t
                method:
                  - type: action
                    name: a
                    provider: {type: test.action}
                    zzzzqqq: 1
                """,
            expected:
                "6:5: unknown key \"zzzzqqq\" (known keys: type, name, provider, tolerance, pauses, background, timeout, controls, configuration, secrets, dry) at method[0].zzzzqqq"
        ),
    ]

    @Test(arguments: malformed)
    func located(_ input: Malformed) throws {
        let kit = TestKit()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-v-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("bad.yaml").path
        try input.document.write(toFile: file, atomically: true, encoding: .utf8)
        let runner = SuiteRunner(registry: kit.registry())
        let error = try #require(throws: ValidationError.self) { try runner.load(path: file, options: SuiteRunner.Options()) }
        let lines = error.diagnostics.map(\.description)
        #expect(lines.contains { $0.contains("\(file):\(input.expected)") }, "got:\n\(lines.joined(separator: "\n"))")
    }

    @Test("validation reports every error in the file, not only the first")
    func allErrors() throws {
        let kit = TestKit()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-v-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("bad.yaml").path
        try """
        title: t
        rolbacks: []
        method:
          - {type: action, name: a, provider: {type: test.action, lable: x}}
          - {type: probe, name: b, provider: {type: test.prob}}
          - {type: action, name: c, provider: {type: test.action, label: "${nope}"}}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let error = try #require(throws: ValidationError.self) { try SuiteRunner(registry: kit.registry()).load(path: file, options: .init()) }
        #expect(error.errors.count == 4, "\(error)")
        // In file order.
        let lines = error.errors.compactMap(\.location?.line)
        #expect(lines == lines.sorted())
    }

    @Test("JSON experiments get the same precise errors")
    func json() throws {
        let kit = TestKit()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-v-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("bad.json").path
        try """
        {
          "title": "t",
          "method": [
            {"type": "action", "name": "a", "provider": {"type": "test.action", "label": 3, "delay": "x"}}
          ]
        }
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let error = try #require(throws: ValidationError.self) { try SuiteRunner(registry: kit.registry()).load(path: file, options: .init()) }
        #expect(error.description.contains("\(file):4:94: expected a number, found the string \"x\" at method[0].provider.delay"), "\(error)")

        try "{\"title\": \"t\",, }".write(toFile: file, atomically: true, encoding: .utf8)
        let syntax = try #require(throws: ValidationError.self) { try SuiteRunner(registry: kit.registry()).load(path: file, options: .init()) }
        #expect(syntax.description.contains("\(file):1:15: invalid JSON"), "\(syntax)")

        // Python's json.load would keep the second "method" silently; here it is an error at the repeat.
        try """
        {
          "title": "t",
          "method": "experiment",
          "tags": [],
          "method": []
        }
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let duplicate = try #require(throws: ValidationError.self) { try SuiteRunner(registry: kit.registry()).load(path: file, options: .init()) }
        #expect(
            duplicate.description.contains("\(file):5:3: duplicate key \"method\" (a key may appear only once in an object; the first is at line 3"),
            "\(duplicate)")
        // A response body repeating a key keeps the last value, as Python does.
        #expect(try JSONReader.value(#"{"a": 1, "a": 2}"#) == ["a": 2])
    }

    @Test("an unknown profile lists the known ones")
    func unknownProfile() throws {
        let kit = TestKit()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-v-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("experiments.yaml").path
        try """
        name: s
        experiments:
          - {title: t, method: []}
        profiles:
          local: {default: true}
          ci: {}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        var options = SuiteRunner.Options()
        options.profile = "cii"
        let error = try #require(throws: ValidationError.self) { try SuiteRunner(registry: kit.registry()).load(path: file, options: options) }
        #expect(error.description.contains("unknown profile \"cii\" (did you mean \"ci\"? known profiles: local, ci)"), "\(error)")
    }
}
