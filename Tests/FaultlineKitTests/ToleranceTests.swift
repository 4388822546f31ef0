import FaultlineKit
import FaultlineTesting
import Testing

@Suite("Tolerances")
struct ToleranceTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let tolerance: String
        let output: Value
        let met: Bool
        var testDescription: String { "\(tolerance) vs \(output) → \(met)" }
    }

    static let http200: Value = [
        "status": 200, "headers": ["content-type": "application/json"], "body": ["items": [["id": 1, "ok": true], ["id": 2, "ok": false]]],
    ]
    static let process0: Value = ["status": 0, "stdout": "ready: 3 workers\n", "stderr": ""]

    static let cases: [Case] = [
        // bool: Python's ==, so 1 is true (True == 1), an object is not
        Case(tolerance: "true", output: true, met: true),
        Case(tolerance: "true", output: false, met: false),
        Case(tolerance: "true", output: 1, met: true),
        Case(tolerance: "false", output: 0.0, met: true),
        Case(tolerance: "true", output: http200, met: false),
        // int: output.status when there is one
        Case(tolerance: "200", output: http200, met: true),
        Case(tolerance: "201", output: http200, met: false),
        Case(tolerance: "0", output: process0, met: true),
        Case(tolerance: "3", output: 3, met: true),
        Case(tolerance: "3", output: 3.0, met: true),
        Case(tolerance: "3", output: 4, met: false),
        Case(tolerance: "2.5", output: 2.5, met: true),
        // string: equality, no status unwrapping
        Case(tolerance: "ok", output: "ok", met: true),
        Case(tolerance: "\"200\"", output: http200, met: false),
        // list: status membership, numeric range of two, membership otherwise
        Case(tolerance: "[200, 201]", output: http200, met: true),
        Case(tolerance: "[500, 503]", output: http200, met: false),
        Case(tolerance: "[1, 10]", output: 5, met: true),
        Case(tolerance: "[1, 10]", output: 11, met: false),
        Case(tolerance: "[a, b]", output: "abc", met: false),
        Case(tolerance: "[a, b]", output: "b", met: true),
        Case(tolerance: "[1, 2, 3]", output: 2, met: true),
        // range
        Case(tolerance: "{type: range, range: [200, 299]}", output: http200, met: true),
        Case(tolerance: "{type: range, range: [0.5, 1.5], target: v}", output: ["v": 1.5], met: true),
        Case(tolerance: "{type: range, range: [0, 1]}", output: 2, met: false),
        Case(tolerance: "{type: range, range: [0, 1]}", output: "x", met: false),
        // range: text as Python's Decimal reads it
        Case(tolerance: "{type: range, range: [1, 10], target: stdout}", output: ["status": 0, "stdout": "5\n", "stderr": ""], met: true),
        Case(tolerance: "{type: range, range: [1, 10]}", output: " 7.5 ", met: true),
        Case(tolerance: "{type: range, range: [1000, 2000]}", output: "1_500", met: true),
        Case(tolerance: "{type: range, range: [1, 10]}", output: "5 workers", met: false),
        Case(tolerance: "{type: range, range: [0, 1]}", output: true, met: true),
        Case(tolerance: "{type: range, range: [1, 10], target: body}", output: ["status": 200, "headers": [:], "body": "3"], met: true),
        // regex: body/stdout by default, target picks
        Case(tolerance: "{type: regex, pattern: 'ready: \\d+ workers'}", output: process0, met: true),
        Case(tolerance: "{type: regex, pattern: '^down'}", output: process0, met: false),
        Case(tolerance: "{type: regex, pattern: '^application/', target: headers.content-type}", output: http200, met: true),
        // jsonpath: the whole output unless target picks a member, as Chaos Toolkit
        Case(tolerance: "{type: jsonpath, path: '$.items[*].id', expect: [1, 2], target: body}", output: http200, met: true),
        Case(tolerance: "{type: jsonpath, path: '$.items[*].id', expect: [1, 2]}", output: http200, met: false),
        Case(tolerance: "{type: jsonpath, path: '$.body.items[*].id', expect: [1, 2]}", output: http200, met: true),
        Case(tolerance: "{type: jsonpath, path: '$.status', expect: 200}", output: http200, met: true),
        Case(tolerance: "{type: jsonpath, path: '$.items[*][?(@.ok = true)].id', expect: 1, target: body}", output: http200, met: true),
        Case(tolerance: "{type: jsonpath, path: '$.items[?(@.ok)]', target: body}", output: http200, met: false),
        Case(tolerance: "{type: jsonpath, path: '$.items[*]', count: 2, target: body}", output: http200, met: true),
        Case(tolerance: "{type: jsonpath, path: '$.items[*]', count: 3, target: body}", output: http200, met: false),
        // expect decides alone, a count beside it is not checked (chaoslib)
        Case(tolerance: "{type: jsonpath, path: '$.items[*].id', count: 5, expect: [1, 2], target: body}", output: http200, met: true),
        Case(tolerance: "{type: jsonpath, path: '$.items[*].ok', expect: [1, 0], target: body}", output: http200, met: true),
        Case(tolerance: "{type: jsonpath, path: '$.missing'}", output: http200, met: false),
        Case(tolerance: "{type: jsonpath, path: '$..id', expect: [1, 2]}", output: http200, met: true),
        Case(tolerance: "{type: jsonpath, path: '$.a', expect: 1, target: stdout}", output: ["stdout": "{\"a\": 1}", "status": 0], met: true),
        // a target the output does not have leaves the whole output (value.get(target, value))
        Case(tolerance: "{type: jsonpath, path: '$.status', expect: 0, target: stdout}", output: ["status": 0], met: true),
    ]

    @Test(arguments: cases)
    func judges(_ testCase: Case) throws {
        let node = try DocumentLoader.parse(testCase.tolerance, format: .yaml, file: "t.yaml")
        let tolerance = try Tolerance.parse(node, path: .root)
        #expect(tolerance.check(testCase.output).met == testCase.met)
    }

    @Test("a missed tolerance says what was expected and what came")
    func messages() throws {
        let tolerance = try Tolerance.parse(try DocumentLoader.parse("201", format: .yaml, file: "t"), path: .root)
        let outcome = tolerance.check(Self.http200)
        #expect(outcome.message == "expected 201, got 200")
        let range = try Tolerance.parse(try DocumentLoader.parse("{type: range, range: [0, 100]}", format: .yaml, file: "t"), path: .root)
        #expect(range.check(150).message == "150 is outside [0, 100]")
    }

    @Test("a regex on a JSON body searches the text as it came, not a re-serialisation")
    func receivedText() throws {
        let node = try DocumentLoader.parse("{type: regex, pattern: '\"ok\": true', target: body}", format: .yaml, file: "t.yaml")
        let tolerance = try Tolerance.parse(node, path: .root)
        let output: Value = ["status": 200, "headers": [:], "body": ["ok": true]]
        #expect(tolerance.check(output, receivedTexts: ["body": "{\"ok\": true}"]).met)
        // The same body re-serialised reads {"ok":true}, without the space.
        #expect(!tolerance.check(output).met)
    }

    @Test("Python's regex syntax: named groups and \\Z")
    func pythonRegex() throws {
        let node = try DocumentLoader.parse(#"{type: regex, pattern: '^(?P<n>\d+) (?P=n)\Z'}"#, format: .yaml, file: "t.yaml")
        let tolerance = try Tolerance.parse(node, path: .root)
        #expect(tolerance.check("12 12").met)
        #expect(!tolerance.check("12 13").met)
    }

    /// Patterns whose braces and brackets Python's `re` and ICU read differently, each with a text
    /// and whether `re.search` finds it (checked against Python itself below).
    static let pythonPatterns: [(pattern: String, text: String, found: Bool)] = [
        (#"{"status": "UP"}"#, #"{"status": "UP", "db": 1}"#, false),
        (#"^{"status": "UP""#, #"{"status": "UP", "db": 1}"#, true),
        (#"\{"a": \[1\]\}"#, #"{"a": [1]}"#, true),
        ("x{}y", "x{}y", true),
        ("a{,2}b", "aab", true),
        ("^a{,2}b$", "aaab", false),
        ("a{2}", "a{2}", false),
        ("a{2,}", "aaa", true),
        ("a{,}b", "b", true),
        ("a{x}", "a{x}", true),
        ("id}", "{id}", true),
        ("[[]x", "[x", true),
        ("[]a]+", "]a]", true),
        ("[^]a]", "]a]b", true),
        ("[{}]", "}", true),
    ]

    @Test("braces and brackets read as Python's re reads them")
    func pythonBraces() throws {
        for (pattern, text, found) in Self.pythonPatterns {
            let tolerance = Tolerance.regex(pattern: pattern, target: nil)
            #expect(tolerance.check(.string(text)).met == found, "re.search(\(pattern), \(text))")
        }
    }

    @Test("Python agrees on those patterns", .enabled(if: ChaosToolkitOracle.isAvailable, "\(ChaosToolkitOracle.missing)"))
    func pythonAgreesOnBraces() throws {
        let input = JSONWriter.string(.array(Self.pythonPatterns.map { .array([.string($0.pattern), .string($0.text)]) }), pretty: false)
        let output = try ChaosToolkitOracle.runPython(
            "import json, re, sys, warnings; warnings.simplefilter('ignore'); print(json.dumps([re.search(p, t) is not None for p, t in json.load(sys.stdin)]))",
            input: input)
        let fromPython = try JSONReader.value(output).arrayValue ?? []
        #expect(fromPython.count == Self.pythonPatterns.count)
        for (index, entry) in Self.pythonPatterns.enumerated() where index < fromPython.count {
            #expect(fromPython[index] == .bool(entry.found), "python's re.search(\(entry.pattern), \(entry.text))")
        }
    }

    @Test(
        "malformed tolerances are located errors",
        arguments: [
            ("{type: rnage, range: [1, 2]}", "unknown tolerance type \"rnage\"", "did you mean \"range\"?"),
            ("{type: range, range: [1]}", "range needs exactly two numbers", nil),
            ("{type: range, range: [5, 1]}", "lower bound 5.0 is above the upper bound 1.0", nil),
            ("{type: regex, pattern: '(unclosed'}", "invalid regular expression", nil),
            ("{type: jsonpath, path: '$.a[?(@.x ~ 1)]'}", "invalid JSONPath", nil),
            ("{type: jsonpath, path: '$.a[*][?(@.x == 1)]'}", "invalid JSONPath", "jsonpath2 writes equality as a single ="),
            ("{type: regex, pattern: x, tragte: body}", "unknown key \"tragte\"", "did you mean \"target\"?"),
            ("{range: [1, 2]}", "a tolerance object needs a type", nil),
        ] as [(String, String, String?)])
    func malformed(_ text: String, _ message: String, _ hint: String?) throws {
        let node = try DocumentLoader.parse("tolerance: \(text)", format: .yaml, file: "t.yaml")
        let error = try #require(throws: (any Error).self) { try Tolerance.parse(node["tolerance"]!, path: DocumentPath([.key("tolerance")])) }
        let text = "\(error)"
        #expect(text.contains("t.yaml:1:"), "no location in: \(text)")
        #expect(text.contains(message), "\(text)")
        if let hint { #expect(text.contains(hint), "\(text)") }
    }
}
