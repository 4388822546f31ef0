import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

/// Hostile documents — the bombs of issue 15 — are refused by `validate` (and so by `run`, which
/// loads the same plan) with the limit they exceed and its position, not expanded.
@Suite("Input limits")
struct InputLimitsTests {
    /// Loads `text` as a file named `name` through the suite runner, as `faultline validate` does;
    /// the error's diagnostics, with the file's path.
    static func loadErrors(_ text: String, name: String = "bomb.yaml") throws -> (errors: [Diagnostic], file: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent(name).path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let error = try #require(throws: ValidationError.self) {
            try SuiteRunner(registry: TestKit().registry()).load(path: file, options: .init())
        }
        return (error.diagnostics, file)
    }

    @Test("a 351-byte billion laughs is refused at the alias that crosses the value limit")
    func billionLaughs() throws {
        let text = """
            a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
            b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
            c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
            d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
            e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
            f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
            g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
            h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
            i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
            title: x

            """
        #expect(text.utf8.count == 351)
        let (errors, file) = try Self.loadErrors(text)
        // e stands for 66,430 values: the first *e of f crosses 100,000.
        #expect(
            errors.map(\.description) == [
                "\(file):6:8: the document holds more than 100000 values (each use of a YAML alias counts as a copy) (split it into several files, or use fewer aliases of large anchors)"
            ])
    }

    @Test("aliases used as keys and merged are counted as copies too")
    func aliasKeysAndMerges() throws {
        var text = "title: x\nl0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}\n"
        for level in 1...8 {
            let members = (0..<9).map { "m\($0): *l\(level - 1)" }.joined(separator: ", ")
            text += "l\(level): &l\(level) {\(members)}\n"
        }
        text += "m: {<<: [*l8, *l7]}\n"
        let (errors, file) = try Self.loadErrors(text)
        #expect(errors.count == 1)
        #expect(errors.first?.description.hasPrefix("\(file):6:59: ") == true, "\(errors)")
        #expect(errors.first?.message.contains("more than 100000 values") == true)
    }

    @Test("2,000 chained merge keys are refused where the merged copies cross the limit")
    func chainedMergeKeys() throws {
        var text = "title: merge\nm0: &m0 {k0: 0}\n"
        for index in 1..<2000 { text += "m\(index): &m\(index) {<<: *m\(index - 1), k\(index): \(index)}\n" }
        let (errors, file) = try Self.loadErrors(text)
        #expect(errors.count == 1)
        let error = try #require(errors.first)
        #expect(error.message.hasPrefix("the document holds more than 100000 values"))
        // Mapping m_k stands for about 2k+1 values: the sum passes 100,000 near k = 223.
        #expect(error.location?.file == file)
        #expect(error.location?.line == 225)
        #expect(error.location?.column == 18)
    }

    @Test("a merge chain under the limit still merges as PyYAML does")
    func shortMergeChain() throws {
        let node = try DocumentLoader.parse(
            """
            base: &base {a: 1, b: 2}
            more: &more {<<: *base, b: 3, c: 4}
            x: {<<: [*more, *base], a: 0}
            """, format: .yaml, file: "m.yaml")
        #expect(node.value["x"] == ["b": 3, "c": 4, "a": 0])
    }

    @Test("100,000 unknown keys reach the value limit; 45,000 stop after 500 reported problems")
    func unknownKeyFlood() throws {
        var text = "title: unknown\nmethod: []\n"
        for index in 0..<100_000 { text += "unknown\(index): 1\n" }
        let (errors, file) = try Self.loadErrors(text)
        #expect(
            errors.map(\.description).first?.hasPrefix("\(file):50000:15: the document holds more than 100000 values") == true, "\(errors.prefix(2))")

        var under = "title: unknown\nmethod: []\n"
        for index in 0..<45_000 { under += "unknown\(index): 1\n" }
        let flood = try Self.loadErrors(under)
        #expect(flood.errors.count == 501)
        #expect(flood.errors.first?.description.hasPrefix("\(flood.file):3:1: unknown key \"unknown0\"") == true, "\(flood.errors.prefix(2))")
        // Where it stopped: at the last problem kept (every error line names a position).
        #expect(
            flood.errors.last?.description.hasPrefix("\(flood.file):502:1: validation stopped after 500 problems") == true,
            "\(flood.errors.suffix(2))")
    }

    @Test("a ${} nesting bomb of 570 bytes is refused at the value whose substitution passes 1 MiB")
    func substitutionBomb() throws {
        var text = "title: bomb\nconfiguration:\n  a: \"lollollollollol\"\n"
        text += "  v1: \"" + String(repeating: "${a}", count: 10) + "\"\n"
        for level in 2...9 { text += "  v\(level): \"" + String(repeating: "${v\(level - 1)}", count: 10) + "\"\n" }
        let (errors, file) = try Self.loadErrors(text)
        // v5 would be 15 × 10⁵ bytes.
        #expect(
            errors.map(\.description) == [
                "\(file):8:7: this ${…} substitution produces more than 1 MiB (a configuration value that refers to others several times grows with each level; refer to it once) at configuration.v5"
            ])
    }

    @Test("a ${} bomb of lists is refused by its size in values")
    func listSubstitutionBomb() throws {
        var text = "title: bomb\nconfiguration:\n  a: [1,2,3,4,5,6,7,8,9,10]\n"
        text += "  s1: [" + Array(repeating: "\"${a}\"", count: 10).joined(separator: ",") + "]\n"
        for level in 2...9 { text += "  s\(level): [" + Array(repeating: "\"${s\(level - 1)}\"", count: 10).joined(separator: ",") + "]\n" }
        let (errors, file) = try Self.loadErrors(text)
        #expect(errors.count == 1)
        #expect(errors.first?.description.hasPrefix("\(file):9:7: ${s5} produces more than 1 MiB") == true, "\(errors)")
        #expect(errors.first?.path?.description == "configuration.s6")
    }

    @Test("a chain of 60,000 configuration references stops at a depth of 64")
    func referenceChain() throws {
        var text = "title: chain\nconfiguration:\n"
        for index in stride(from: 600, to: 0, by: -1) { text += "  c\(index): \"${c\(index - 1)}\"\n" }
        text += "  c0: end\n"
        let (errors, file) = try Self.loadErrors(text)
        let first = try #require(errors.first)
        #expect(
            first.description.hasPrefix("\(file):67:9: configuration \"c536\" is at the end of a chain of more than 64 ${…} references"), "\(first)")
    }

    @Test("nesting deeper than 64 is refused where it crosses, in YAML and JSON")
    func depth() throws {
        // Past 1,000 levels libyaml itself stops scanning, before any event: the error points where the nesting starts.
        let yaml = try Self.loadErrors("title: deep\nx: " + String(repeating: "[", count: 100_000) + "\n")
        #expect(yaml.errors.map(\.description) == ["\(yaml.file):2:5: lists and objects nest more than 64 deep (flatten the structure)"])
        let json = try Self.loadErrors("{\"title\": \"deep\", \"x\": " + String(repeating: "[", count: 100_000) + "}", name: "deep.json")
        #expect(
            json.errors.first?.description.hasPrefix("\(json.file):1:88: invalid JSON: lists and objects nest more than 64 deep") == true,
            "\(json.errors)")
    }

    @Test("a document over 4 MiB is refused before it is parsed")
    func size() throws {
        let (errors, file) = try Self.loadErrors("title: big\nx: \"" + String(repeating: "x", count: 5 << 20) + "\"\n")
        #expect(
            errors.map(\.description) == [
                "\(file):1:1: \(file) is larger than 4 MiB (an experiment or suite is a few kilobytes; split a generated one into several files)"
            ])
    }

    @Test("a suite naming a large experiment many times is refused at the entry that crosses the plan's limit")
    func suiteRepeat() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var experiment = "title: one\nmethod:\n"
        for index in 0..<2000 { experiment += "  - {type: action, name: a\(index), provider: {type: test.action, label: x}}\n" }
        try experiment.write(toFile: directory.appendingPathComponent("one.yaml").path, atomically: true, encoding: .utf8)
        let suite = directory.appendingPathComponent("experiments.yaml").path
        try ("experiments:\n" + String(repeating: "  - one.yaml\n", count: 1000)).write(toFile: suite, atomically: true, encoding: .utf8)
        let error = try #require(throws: ValidationError.self) { try SuiteRunner(registry: TestKit().registry()).load(path: suite, options: .init()) }
        let first = try #require(error.diagnostics.first)
        #expect(first.message.hasPrefix("the run's experiments and the configuration each sees hold more than 150000 values in all"), "\(first)")
        // one.yaml holds 24,003 values: the 7th entry, on line 8, crosses 150,000.
        #expect(first.location?.file == suite)
        #expect(first.location?.line == 8)
    }

    @Test("a string whose ${} substitution passes the limit is refused at the string")
    func longSubstitutedString() throws {
        let big = String(repeating: "x", count: 300_000)
        let text = """
            title: t
            configuration:
              big: "\(big)"
            method:
              - type: action
                name: a
                provider: {type: test.action, label: "${big}${big}${big}${big}"}

            """
        let (errors, file) = try Self.loadErrors(text)
        #expect(errors.count == 1)
        #expect(errors.first?.description.hasPrefix("\(file):7:42: this ${…} substitution produces more than 1 MiB") == true, "\(errors)")
    }

    @Test("a FIFO, a device or a directory named like a document is refused at once, not read")
    func specialFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("fifo.yaml").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let folder = directory.appendingPathComponent("folder.yaml").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let device = directory.appendingPathComponent("zero.yaml").path
        try FileManager.default.createSymbolicLink(atPath: device, withDestinationPath: "/dev/zero")
        for path in [fifo, folder, device] {
            let error = try #require(throws: Diagnostic.self) { try DocumentLoader.load(path: path) }
            #expect(error.description == "cannot read \(path): it is not a regular file (name an experiment or suite file)")
        }
    }

    @Test("bytes that are not UTF-8 and a configuration cycle are errors at their position (found by scripts/fuzz)")
    func locatedFuzzFindings() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("latin1.yaml").path
        try Data("title: t\ndescription: caf".utf8 + [0xE9] + Data("\n".utf8)).write(to: URL(fileURLWithPath: file))
        let error = try #require(throws: Diagnostic.self) { try DocumentLoader.load(path: file) }
        #expect(error.description == "\(file):2:17: \(file) is not UTF-8 text (save it as UTF-8)")

        let (errors, cycle) = try Self.loadErrors("title: t\nconfiguration:\n  a: \"${b}\"\n  b: \"x${a}\"\n")
        #expect(errors.map(\.description).contains { $0.hasPrefix("\(cycle):3:6: configuration \"a\" refers to itself through ${…}") }, "\(errors)")
    }

    @Test("a cycle through an env entry's default is an error at the entry (found by the end-to-end bad-input corpus)")
    func environmentEntryCycle() throws {
        let (errors, file) = try Self.loadErrors(
            "title: t\nconfiguration:\n  deep: {type: env, key: FAULTLINE_TEST_UNSET_VARIABLE, default: \"${deep}\"}\nmethod: []\n")
        #expect(errors.map(\.description).contains { $0.hasPrefix("\(file):3:9: configuration \"deep\" refers to itself through ${…}") }, "\(errors)")
        #expect(errors.allSatisfy { $0.location != nil }, "\(errors.map(\.description))")
    }
}
