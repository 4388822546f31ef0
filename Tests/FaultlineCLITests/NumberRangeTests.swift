import FaultlineCLI
import FaultlineKit
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// Every number a user writes has a range checked at load time, so that what `validate` accepts
/// `run` computes with without trapping (a trap skips rollbacks and leaves faults behind).
@Suite("number ranges: every numeric field, hostile values, no trap at run time")
struct NumberRangeTests {
    static let registry = PluginRegistry(plugins: Faultline.builtins)

    /// One numeric field of a provider or toxic, with arguments that decode up to it.
    struct NumericField: CustomTestStringConvertible, Sendable {
        var owner: String
        /// The provider's type and kind, or the toxic's type.
        var provider: (type: String, kind: ActivityKind)?
        var toxic: String?
        /// Keys from the arguments (or attributes) down to the field; `[]` enters a list.
        var path: [String]
        var range: NumberRange
        var testDescription: String { "\(owner) \(path.joined(separator: "."))" }
    }

    /// Arguments (or attributes) that decode for each type whose fields the table sets; a field
    /// of a type missing here fails `everyNumericFieldIsCovered`.
    static let baselines: [String: Value] = [
        "http": ["url": "http://127.0.0.1:1/"],
        "http.load": ["url": "http://127.0.0.1:1/", "duration": 1, "requests": [["url": "http://127.0.0.1:1/"]]],
        "process": ["path": "true"],
        "process.kill": ["pid": 5],
        "process.signal": ["pid": 5, "signal": "CONT"],
        "process.running": ["pid": 5],
        "process.restart": ["service": "s"],
        "process.stop": ["service": "s"],
        "process.start": ["service": "s", "command": ["true"], "ready": ["log": "x"]],
        "tcp.connect": ["address": "127.0.0.1:1"],
        "toxic": ["proxy": "p", "toxic": "latency"],
        "toxic.update": ["proxy": "p", "name": "n"],
        "toxiproxy.toxic": ["proxy": "p", "toxic": "latency"],
        "toxiproxy.toxic.update": ["proxy": "p", "name": "n"],
        "python:chaostoxi.proxy.actions.create_proxy": ["proxy_name": "p", "upstream_host": "h", "upstream_port": "1"],
        "python:chaostoxi.toxic.actions.create_toxic": ["for_proxy": "p", "toxic_name": "t", "toxic_type": "latency"],
        "python:chaostoxi.toxic.actions.create_latency_toxic": ["for_proxy": "p", "toxic_name": "t", "latency": 1],
        "python:chaostoxi.toxic.actions.create_bandwith_degradation_toxic": ["for_proxy": "p", "toxic_name": "t", "rate": 1],
        "python:chaostoxi.toxic.actions.create_slow_connection_close_toxic": ["for_proxy": "p", "toxic_name": "t", "delay": 1],
        "python:chaostoxi.toxic.actions.create_timeout_toxic": ["for_proxy": "p", "toxic_name": "t", "timeout": 1],
        "python:chaostoxi.toxic.actions.create_slicer_toxic": [
            "for_proxy": "p", "toxic_name": "t", "average_size": 10, "size_variation": 1, "delay": 1,
        ],
        "python:chaostoxi.toxic.actions.create_limiter_toxic": ["for_proxy": "p", "toxic_name": "t", "bytes_limit": 1],
        "python:os.mkdir": ["path": "/nonexistent/x"],
        "python:os.makedirs": ["name": "/nonexistent/x"],
    ]

    /// Every field that reads a number, in every provider and toxic the shipped binary registers.
    static let fields: [NumericField] = {
        var fields: [NumericField] = []
        func walk(_ schema: [ArgumentSchema.Field], _ prefix: [String], _ make: ([String], NumberRange?) -> Void) {
            for field in schema {
                let path = prefix + [field.name] + (field.type.hasPrefix("list of object") ? [""] : [])
                if field.readsNumber { make(prefix + [field.name], field.range) }
                if let nested = field.fields { walk(nested, path, make) }
            }
        }
        for descriptor in registry.providers.values.sorted(by: { ($0.type, $0.kind.rawValue) < ($1.type, $1.kind.rawValue) }) {
            walk(descriptor.schema.fields, []) { path, range in
                fields.append(
                    NumericField(
                        owner: "\(descriptor.kind.rawValue) \(descriptor.type)", provider: (descriptor.type, descriptor.kind), path: path,
                        range: range ?? NumberRange(0...0, unit: "MISSING")))
            }
        }
        for descriptor in registry.toxics.values.sorted(by: { $0.type < $1.type }) {
            walk(descriptor.schema.fields, []) { path, range in
                fields.append(
                    NumericField(
                        owner: "toxic \(descriptor.type)", toxic: descriptor.type, path: path, range: range ?? NumberRange(0...0, unit: "MISSING")))
            }
        }
        return fields
    }()

    @Test("every numeric argument and attribute declares a range, and the table has arguments for its type")
    func everyNumericFieldIsCovered() {
        #expect(Self.fields.count > 40)
        for field in Self.fields {
            #expect(field.range.unit != "MISSING", "\(field.testDescription) reads a number but declares no range (NumberRanges)")
            if let provider = field.provider {
                #expect(Self.baselines[provider.type] != nil, "add baseline arguments for \(provider.type)")
            }
        }
    }

    /// Numbers no field accepts, as YAML writes them, with what the document reads them as.
    static let hostile: [(text: String, value: Double)] = [
        ("1e300", 1e300), ("-1e300", -1e300), ("9999999999999999999", 1e19), ("-9999999999999999999", -1e19), (".nan", .nan), (".inf", .infinity),
        ("-.inf", -.infinity), ("\"1e300\"", 1e300),
    ]

    @Test("hostile numbers are load errors at the value's file:line:column, for every numeric field", arguments: fields)
    func hostileNumbers(_ field: NumericField) throws {
        let scratch = try ScratchDirectory()
        // Just outside the range on each side, and the absurd.
        var cases = Self.hostile
        let above = field.range.upperBound + max(1, field.range.upperBound * 1e-6)
        cases.append(("\(above)", above))
        cases.append(("\(field.range.lowerBound - 1)", field.range.lowerBound - 1))
        for (text, value) in cases where !field.range.contains(value) {
            let placeholder = "HOSTILE-NUMBER"
            var arguments: Value
            let experimentProvider: Value
            if let toxic = field.toxic {
                arguments = ["proxy": "p", "toxic": .string(toxic), "attributes": Self.set(.object([:]), field.path, .string(placeholder))]
                experimentProvider = Self.merge(["type": "toxic"], arguments)
            } else {
                let (type, _) = field.provider!
                arguments = Self.set(Self.baselines[type] ?? .object([:]), field.path, .string(placeholder))
                if type.hasPrefix("python:") {
                    let name = String(type.dropFirst("python:".count))
                    let dot = name.lastIndex(of: ".")!
                    experimentProvider = [
                        "type": "python", "module": .string(String(name[..<dot])), "func": .string(String(name[name.index(after: dot)...])),
                        "arguments": arguments,
                    ]
                } else {
                    experimentProvider = Self.merge(["type": .string(type)], arguments)
                }
            }
            let kind = field.provider?.kind.rawValue ?? "action"
            let document = """
                title: hostile
                method:
                  - type: \(kind)
                    name: a
                    provider: \(JSONWriter.string(experimentProvider, pretty: false).replacingOccurrences(of: "\"\(placeholder)\"", with: text))
                """
            let file = try scratch.write("experiment.yaml", document)
            let error: ValidationError
            do {
                _ = try SuiteRunner(registry: Self.registry).load(path: file, options: SuiteRunner.Options())
                Issue.record("\(field.testDescription) = \(text) was accepted")
                continue
            } catch let caught as ValidationError {
                error = caught
            }
            // Where the value is written: the diagnostic points there.
            let parsed = try DocumentLoader.load(path: file)
            var node = try #require(parsed["method"]?.elements?.first?["provider"])
            if field.provider?.type.hasPrefix("python:") == true { node = try #require(node["arguments"]) }
            if field.toxic != nil { node = try #require(node["attributes"]) }
            for key in field.path { node = try #require(key.isEmpty ? node.elements?.first : node[key]) }
            let location = try #require(node.location)
            #expect(
                error.errors.contains { $0.location == location && $0.message.contains(field.range.description) },
                "\(field.testDescription) = \(text): expected an error at \(location) naming \(field.range); got \(error)")
        }
    }

    static func set(_ value: Value, _ path: [String], _ leaf: Value) -> Value {
        guard let key = path.first else { return leaf }
        if key.isEmpty {
            var list = value.arrayValue ?? []
            if list.isEmpty { list = [.object([:])] }
            list[0] = set(list[0], Array(path.dropFirst()), leaf)
            return .array(list)
        }
        var object = value.objectValue ?? ValueObject()
        object[key] = set(object[key] ?? .object([:]), Array(path.dropFirst()), leaf)
        return .object(object)
    }

    static func merge(_ a: ValueObject, _ b: Value) -> Value {
        var object = a
        for (key, value) in b.objectValue ?? ValueObject() { object[key] = value }
        return .object(object)
    }
}

/// The numbers of experiments and suites themselves, outside any provider.
@Suite("number ranges: experiment and suite settings")
struct DocumentNumberTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        /// The document, with `HOSTILE` where the number goes.
        var document: String
        var file = "experiment.yaml"
        /// What the error names (the range, or the type the value must fit).
        var expected: String
        var testDescription: String { name }
    }

    static let method = """
        method:
          - {type: action, name: a, provider: {type: process, path: "true"}}
        """

    static let cases: [Case] = [
        Case(
            name: "pauses.before",
            document: "title: t\nmethod:\n  - {type: action, name: a, pauses: {before: HOSTILE}, provider: {type: process, path: \"true\"}}",
            expected: "0…31536000 seconds"),
        Case(
            name: "pauses.after",
            document: "title: t\nmethod:\n  - {type: action, name: a, pauses: {after: HOSTILE}, provider: {type: process, path: \"true\"}}",
            expected: "0…31536000 seconds"),
        Case(
            name: "activity timeout",
            document: "title: t\nmethod:\n  - {type: action, name: a, timeout: HOSTILE, provider: {type: process, path: \"true\"}}",
            expected: "0…31536000 seconds"),
        Case(
            name: "runtime.hypothesis.frequency", document: "title: t\nruntime: {hypothesis: {frequency: HOSTILE}}\n\(method)",
            expected: "0…31536000 seconds"),
        // Any whole number is a seed; what is not one is refused (as out of range, or as not an integer).
        Case(name: "suite seed", document: "seed: HOSTILE\nexperiments: [{title: t, method: []}]", file: "experiments.yaml", expected: ""),
        Case(
            name: "service stop_grace",
            document: "services: [{name: s, command: [\"true\"], stop_grace: HOSTILE}]\nexperiments: [{title: t, method: []}]",
            file: "experiments.yaml", expected: "0…31536000 seconds"),
        Case(
            name: "service ready.timeout",
            document: "services: [{name: s, command: [\"true\"], ready: {log: x, timeout: HOSTILE}}]\nexperiments: [{title: t, method: []}]",
            file: "experiments.yaml",
            expected: "0…31536000 seconds"),
        Case(
            name: "toxiproxy backend timeout",
            document:
                "profiles: {p: {default: true, toxics: {backend: toxiproxy, url: \"http://127.0.0.1:1\", timeout: HOSTILE}}}\nexperiments: [{title: t, method: []}]",
            file: "experiments.yaml", expected: "0…31536000 seconds"),
        Case(
            name: "toxiproxy backend connect_timeout",
            document:
                "profiles: {p: {default: true, toxics: {backend: toxiproxy, url: \"http://127.0.0.1:1\", connect_timeout: HOSTILE}}}\nexperiments: [{title: t, method: []}]",
            file: "experiments.yaml", expected: "0…31536000 seconds"),
    ]

    @Test("hostile numbers are load errors at the value's file:line:column", arguments: cases)
    func hostile(_ input: Case) throws {
        let scratch = try ScratchDirectory()
        for text in ["1e300", "-1e300", "9999999999999999999", ".nan", "-.inf", "-1"] {
            let document = input.document.replacingOccurrences(of: "HOSTILE", with: text)
            let file = try scratch.write(input.file, document)
            let line = document.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(text) }! + 1
            let column =
                document.split(separator: "\n", omittingEmptySubsequences: false)[line - 1].distance(
                    from: document.split(separator: "\n", omittingEmptySubsequences: false)[line - 1].startIndex,
                    to: document.split(separator: "\n", omittingEmptySubsequences: false)[line - 1].range(of: text)!.lowerBound) + 1
            do {
                _ = try SuiteRunner(registry: NumberRangeTests.registry).load(path: file, options: SuiteRunner.Options())
                Issue.record("\(input.name) = \(text) was accepted")
            } catch let error as ValidationError {
                #expect(
                    error.errors.contains {
                        $0.location == SourceLocation(file: file, line: line, column: column)
                            && (input.expected.isEmpty || $0.message.contains(input.expected))
                    },
                    "\(input.name) = \(text): expected an error at \(line):\(column) naming \(input.expected); got \(error)")
            }
        }
    }
}

/// What `validate` accepts, `run` executes without a numeric trap: the reported values are
/// validation errors (exit 2, before anything runs), and the largest values the ranges allow run.
@Suite("run: hostile numbers end in a validation error, never a signal")
struct HostileRunTests {
    static let reported: [(String, String)] = [
        ("pauses: {before: 1e300}", "{type: action, name: a, pauses: {before: 1e300}, provider: {type: process, path: \"true\"}}"),
        ("timeout: 1e300", "{type: action, name: a, timeout: 1e300, provider: {type: process, path: \"true\"}}"),
        ("process timeout: 9999999999999999999", "{type: action, name: a, provider: {type: process, path: \"true\", timeout: 9999999999999999999}}"),
        (
            "latency: 9223372036854775807",
            "{type: action, name: a, provider: {type: toxic, proxy: p, toxic: latency, attributes: {latency: 9223372036854775807}}}"
        ),
    ]

    @Test("the reported values: validation error, exit 2, journal never started", arguments: 0..<reported.count)
    func reportedValues(_ index: Int) async throws {
        let (name, activity) = Self.reported[index]
        let scratch = try ScratchDirectory()
        try scratch.write("experiment.yaml", "title: t\nmethod:\n  - \(activity)\n")
        let run = try TestProcess.faultline(["run", "experiment.yaml", "--journal-path", "journal.json"], in: scratch)
        let status = await run.wait()
        #expect(status == 2, "\(name): exit \(status)\n\(run.stderr)")
        #expect(run.stderr.contains("experiment.yaml:3:"), "\(name): \(run.stderr)")
        #expect(run.stderr.contains("nothing was run"), "\(name): \(run.stderr)")
        #expect(!scratch.exists("journal.json"))
    }

    @Test("the largest values the ranges allow run to the end")
    func largestValues() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "experiment.yaml",
            """
            title: t
            runtime: {hypothesis: {strategy: continuously, frequency: 31536000}}
            steady-state-hypothesis:
              title: h
              probes:
                - {type: probe, name: p, tolerance: 0, timeout: 31536000, provider: {type: process, path: "true", timeout: 31536000}}
            method:
              - {type: action, name: a, timeout: 31536000, pauses: {before: 0, after: 0}, provider: {type: process, path: "true", timeout: 31536000}}
              - {type: probe, name: c, provider: {type: tcp.connect, address: "127.0.0.1:1", timeout: 31536000}}
            """)
        let run = try TestProcess.faultline(
            ["run", "experiment.yaml", "--journal-path", "journal.json", "--hypothesis-frequency", "31536000"], in: scratch)
        let status = await run.wait()
        #expect(status == 0, "exit \(status)\n\(run.stdout)\n\(run.stderr)")
        let journal = try Journal.load(path: scratch.path("journal.json"))
        #expect(journal.status == .completed)
    }

    @Test("command-line numbers are checked too")
    func flags() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write("experiment.yaml", "title: t\nmethod: []\n")
        for value in ["1e300", "nan", "-1"] {
            let run = try TestProcess.faultline(["run", "experiment.yaml", "--hypothesis-frequency=\(value)"], in: scratch)
            let status = await run.wait()
            #expect(status == 2, "--hypothesis-frequency \(value): exit \(status)\n\(run.stderr)")
            #expect(run.stderr.contains("--hypothesis-frequency must be 0…31536000 seconds"), "\(run.stderr)")
        }
        let proxy = try TestProcess.faultline(["proxy", "--port", "99999"], in: scratch)
        #expect(await proxy.wait() == 2, "\(proxy.stderr)")
        #expect(proxy.stderr.contains("--port must be 0…65535"), "\(proxy.stderr)")
        // Any malformed command line is invalid input (exit 2), not ArgumentParser's EX_USAGE (64).
        let unknown = try TestProcess.faultline(["run", "experiment.yaml", "--no-such-flag"], in: scratch)
        #expect(await unknown.wait() == 2, "\(unknown.stderr)")
        #expect(unknown.stderr.contains("--no-such-flag"), "\(unknown.stderr)")
    }
}

extension NumberRangeTests {
    @Test("the README's range table lists every numeric argument and attribute with its range")
    func readmeTable() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOfFile: root.appendingPathComponent("README.md").path, encoding: .utf8)
        let rows = readme.split(separator: "\n").filter { $0.hasPrefix("| `") || $0.hasPrefix("| toxic `") }
        for field in Self.fields {
            let owner: String
            if let toxic = field.toxic {
                owner = "| toxic `\(toxic)` |"
            } else {
                let type = field.provider!.type
                owner = "| `\(type.hasPrefix("python:") ? String(type.dropFirst("python:".count)) : type)` |"
            }
            let entry = "`\(field.path.filter { !$0.isEmpty }.joined(separator: "."))` \(field.range)"
            #expect(rows.contains { $0.hasPrefix(owner) && $0.contains(entry) }, "README: no row \(owner) with \(entry)")
        }
    }
}
