import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

/// Values as Chaos Toolkit's Python reads and writes them: numbers written as text, and `str()`.
@Suite("Python's reading and writing of values")
struct PythonCompatibilityTests {
    struct Typed: Decodable {
        var port: Int
        var ratio: Double
    }

    @Test(
        "a declared number takes a string that is exactly a number",
        arguments: [
            (#"{port: "8080", ratio: "0.25"}"#, 8080, 0.25),
            (#"{port: "-1", ratio: "1e3"}"#, -1, 1000),
            (#"{port: "+7", ratio: "5"}"#, 7, 5),
            ("{port: 8080, ratio: 0.5}", 8080, 0.5),
        ])
    func numbersAsText(_ yaml: String, _ port: Int, _ ratio: Double) throws {
        let node = try DocumentLoader.parse(yaml, format: .yaml, file: "t.yaml")
        let typed = try NodeDecoder().decode(Typed.self, from: node)
        #expect(typed.port == port)
        #expect(typed.ratio == ratio)
    }

    @Test(
        "text that is not exactly a number is still an error at its position",
        arguments: [
            #"{port: "80 80", ratio: 1}"#, #"{port: "8080.5", ratio: 1}"#, #"{port: "0x50", ratio: 1}"#, #"{port: 1, ratio: "inf"}"#,
            #"{port: " 8080", ratio: 1}"#, #"{port: 1, ratio: "1,5"}"#,
        ])
    func notNumbers(_ yaml: String) throws {
        let node = try DocumentLoader.parse(yaml, format: .yaml, file: "t.yaml")
        #expect {
            try NodeDecoder().decode(Typed.self, from: node)
        } throws: { error in
            "\(error)".contains("t.yaml:1:") && "\(error)".contains("expected")
        }
    }

    /// Values and the text Python's `str()` gives them (checked against Python itself below).
    static let rendered: [(String, String)] = [
        ("true", "True"), ("false", "False"), ("null", "None"), ("1", "1"), ("-3", "-3"), ("1.0", "1.0"), ("1.5", "1.5"),
        ("0.1", "0.1"), ("100.0", "100.0"), ("1e16", "1e+16"), ("1e15", "1000000000000000.0"), ("0.0001", "0.0001"), ("0.00001", "1e-05"),
        ("-2.5e-7", "-2.5e-07"), ("123456789.125", "123456789.125"), ("\"text\"", "text"), ("[1, \"a\", null, true]", "[1, 'a', None, True]"),
        (#"{"a": {"b": [1.0]}, "c": "it's"}"#, #"{'a': {'b': [1.0]}, 'c': "it's"}"#),
        (#"["say \"hi\"", "both ' and \""]"#, #"['say "hi"', 'both \' and "']"#),
        (#"["tab\there", "back\\slash", "nl\n"]"#, #"['tab\there', 'back\\slash', 'nl\n']"#), ("[]", "[]"), ("{}", "{}"),
    ]

    @Test("str() of a value, as Chaos Toolkit writes it into process arguments and substitutions")
    func pythonText() throws {
        for (json, expected) in Self.rendered {
            #expect(try JSONReader.value(json).pythonText == expected, "\(json)")
        }
    }

    @Test("Python agrees", .enabled(if: ChaosToolkitOracle.isAvailable, "\(ChaosToolkitOracle.missing)"))
    func pythonAgrees() throws {
        let input = "[" + Self.rendered.map(\.0).joined(separator: ", ") + "]"
        let output = try ChaosToolkitOracle.runPython("import json, sys; print(json.dumps([str(v) for v in json.load(sys.stdin)]))", input: input)
        let fromPython = try JSONReader.value(output).arrayValue ?? []
        #expect(fromPython.count == Self.rendered.count)
        for (index, (json, expected)) in Self.rendered.enumerated() where index < fromPython.count {
            #expect(fromPython[index] == .string(expected), "python's str(\(json))")
        }
    }
}
