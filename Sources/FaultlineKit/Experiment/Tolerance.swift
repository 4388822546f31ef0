import Foundation

/// A hypothesis probe's tolerance: what output means the system is in its steady state.
///
/// The forms and their verdicts are Chaos Toolkit's (`chaoslib.hypothesis.within_tolerance`),
/// values compared as Python compares them (`1 == 1.0`, `True == 1`); where Chaos Toolkit
/// crashes or surprises, the README's differences table says what happens instead:
/// - `true`/`false`, a string: the output equals it.
/// - a number: the output's `status` when it has one (http, process), else the output itself.
/// - a list: membership of the output's `status` when it has one; for a number, a two-element list
///   of numbers is an inclusive range; otherwise membership. (Chaos Toolkit reads every
///   two-element list as a range, so `["a", "b"]` accepted `"abc"`.)
/// - `{type: range, range: [lo, hi], target}`: inclusive numeric range; text is read as Python's
///   `Decimal` reads it (`"5\n"` is 5).
/// - `{type: regex, pattern, target}`: Python's `re.search` in the text, as received.
/// - `{type: jsonpath, path, expect, count, target}`: jsonpath2's matches (``JSONPath``), against
///   the whole output unless `target` picks a member; text is decoded as JSON first.
/// - `{type: probe, name, provider}`: another probe judges; `${value}` in it is the output (a python
///   function is given it as its `value` argument, as Chaos Toolkit does: one without it is not met).
/// - a form the probe defines itself (``ToleranceProviding``), e.g. k6 thresholds for `http.load`.
///
/// `target` picks a member of an object output (`status`, `body`, `stdout`, or a dotted path); a
/// member that is not there leaves the whole output, as Chaos Toolkit's `value.get(target, value)`.
/// Without a target, `range` reads `status` and `regex` reads `body` (http) or `stdout` (process)
/// when the output has them (Chaos Toolkit would crash on the object).
public enum Tolerance: Sendable {
    case equals(Value)
    case list([Value])
    case range(lower: Double, upper: Double, target: String?)
    case regex(pattern: String, target: String?)
    case jsonpath(path: JSONPath, expect: Value?, count: Int?, target: String?)
    case probe(Activity)
    case custom(any ToleranceCheck)

    /// Parses a substituted tolerance node.
    /// - Parameters:
    ///   - custom: the probe's own tolerance parser, tried first.
    public static func parse(
        _ node: SourceNode, path: DocumentPath, custom: (@Sendable (SourceNode, DocumentPath) throws -> (any ToleranceCheck)?)? = nil
    ) throws -> Tolerance {
        if let custom, let check = try custom(node, path) { return .custom(check) }
        switch node.content {
        case .scalar(.null, _):
            throw Diagnostic(
                "a tolerance cannot be null", at: node.location, path: path, hint: "write the value that means steady state, e.g. tolerance: 200")
        case .scalar(let value, _):
            return .equals(value)
        case .array(let elements):
            return .list(elements.map(\.value))
        case .object:
            var reader = ObjectReader(node, path: path, sink: DiagnosticSink())
            guard let type = node["type"]?.stringValue else {
                throw Diagnostic(
                    "a tolerance object needs a type", at: node.location, path: path,
                    hint: "write type: range, regex, jsonpath or probe")
            }
            let sink = DiagnosticSink()
            reader = ObjectReader(node, path: path, sink: sink)
            _ = reader.node("type")
            let tolerance: Tolerance?
            switch type {
            case "range":
                let bounds = reader.decode([Double].self, "range", required: true, hint: "write range: [lower, upper]")
                let target = reader.decode(String.self, "target")
                if let bounds, bounds.count != 2 {
                    sink.report(
                        Diagnostic(
                            "range needs exactly two numbers [lower, upper], found \(bounds.count)", at: node["range"]?.location,
                            path: path.appending("range")))
                }
                if let bounds, bounds.count == 2, bounds[0] > bounds[1] {
                    sink.report(
                        Diagnostic(
                            "range lower bound \(bounds[0]) is above the upper bound \(bounds[1])", at: node["range"]?.location,
                            path: path.appending("range")))
                }
                tolerance = bounds.flatMap { $0.count == 2 ? .range(lower: $0[0], upper: $0[1], target: target) : nil }
            case "regex":
                let pattern = reader.decode(String.self, "pattern", required: true)
                let target = reader.decode(String.self, "target")
                if let pattern {
                    do {
                        _ = try NSRegularExpression(pattern: Self.icuPattern(pattern))
                    } catch {
                        sink.report(
                            Diagnostic("invalid regular expression \"\(pattern)\"", at: node["pattern"]?.location, path: path.appending("pattern")))
                    }
                }
                tolerance = pattern.map { .regex(pattern: $0, target: target) }
            case "jsonpath":
                let pathText = reader.decode(String.self, "path", required: true)
                let expect = reader.node("expect")?.value
                let count = reader.decode(Int.self, "count")
                let target = reader.decode(String.self, "target")
                var jsonPath: JSONPath?
                if let pathText {
                    do {
                        jsonPath = try JSONPath(pathText)
                    } catch {
                        sink.report(
                            Diagnostic(
                                "invalid JSONPath \"\(pathText)\": \(error.message)", at: node["path"]?.location, path: path.appending("path"),
                                hint: error.hint ?? "Chaos Toolkit reads paths with jsonpath2; see the README's tolerance reference"))
                    }
                }
                tolerance = jsonPath.map { .jsonpath(path: $0, expect: expect, count: count, target: target) }
            case "probe":
                let probeSink = DiagnosticSink()
                var probeNode = node
                if case .object(let members) = node.content, !members.contains(where: { $0.key == "name" }) {
                    probeNode = SourceNode(
                        .object(
                            members + [.init(key: "name", keyLocation: node.location, value: SourceNode(.string("tolerance"), at: node.location))]),
                        at: node.location)
                }
                let activity = ExperimentParser.parseActivity(probeNode, path: path, sink: probeSink)
                probeSink.diagnostics.forEach(sink.report)
                reader.allow("name", "provider", "pauses", "timeout", "background", "tolerance")
                tolerance = activity.map { .probe($0) }
            default:
                throw Diagnostic(
                    "unknown tolerance type \"\(type)\"", at: node["type"]?.location, path: path.appending("type"),
                    hint: Suggestion.didYouMean(type, in: ["range", "regex", "jsonpath", "probe"]) ?? "write type: range, regex, jsonpath or probe")
            }
            if type != "probe" { reader.reportUnknownKeys() }
            try sink.throwIfErrors()
            guard let tolerance else { throw Diagnostic("invalid tolerance", at: node.location, path: path) }
            return tolerance
        }
    }

    /// The tolerance as the journal shows it.
    public var summary: Value {
        switch self {
        case .equals(let v): return v
        case .list(let l): return .array(l)
        case .range(let lo, let hi, let target):
            var o: ValueObject = ["type": "range", "range": [.double(lo), .double(hi)]]
            if let target { o["target"] = .string(target) }
            return .object(o)
        case .regex(let pattern, let target):
            var o: ValueObject = ["type": "regex", "pattern": .string(pattern)]
            if let target { o["target"] = .string(target) }
            return .object(o)
        case .jsonpath(let path, let expect, let count, let target):
            var o: ValueObject = ["type": "jsonpath", "path": .string(path.description)]
            if let expect { o["expect"] = expect }
            if let count { o["count"] = .int(count) }
            if let target { o["target"] = .string(target) }
            return .object(o)
        case .probe(let activity): return ["type": "probe", "name": .string(activity.name)]
        case .custom(let check): return check.summary
        }
    }

    /// Judges an output (every form but `probe`, which the engine runs).
    public func check(_ output: Value) -> ToleranceOutcome { check(output, receivedTexts: [:]) }

    /// Judges an output.
    /// - Parameter receivedTexts: the text output members were decoded from, by key (an http
    ///   body read as JSON), for `regex` (``ActivityContext/recordReceivedText(_:forOutputKey:)``).
    public func check(_ output: Value, receivedTexts: [String: String]) -> ToleranceOutcome {
        switch self {
        case .equals(let expected):
            let actual: Value
            if expected.doubleValue != nil, expected.boolValue == nil, let status = output["status"] {
                actual = status
            } else {
                actual = output
            }
            let met = actual.pythonEquals(expected)
            return ToleranceOutcome(met: met, message: met ? nil : "expected \(expected), got \(Self.describe(actual))")
        case .list(let items):
            if let status = output["status"] {
                let met = items.contains { $0.pythonEquals(status) }
                return ToleranceOutcome(met: met, message: met ? nil : "status \(status) is not one of \(Value.array(items))")
            }
            if items.count == 2, let lo = items[0].pythonNumber, let hi = items[1].pythonNumber, let v = output.pythonNumber {
                let met = lo <= v && v <= hi
                return ToleranceOutcome(met: met, message: met ? nil : "\(output) is outside [\(items[0]), \(items[1])]")
            }
            let met = items.contains { $0.pythonEquals(output) }
            return ToleranceOutcome(met: met, message: met ? nil : "\(Self.describe(output)) is not one of \(Value.array(items))")
        case .range(let lo, let hi, let target):
            let (picked, _) = Self.pick(output, target: target, defaults: ["status"])
            guard let v = Self.decimal(picked), !v.isNaN else {
                return ToleranceOutcome(
                    met: false, message: "range needs a number, got \(Self.describe(picked))\(target == nil ? " (set target:)" : "")")
            }
            let met = lo <= v && v <= hi
            return ToleranceOutcome(met: met, message: met ? nil : "\(Self.describe(picked)) is outside [\(Self.number(lo)), \(Self.number(hi))]")
        case .regex(let pattern, let target):
            let (picked, key) = Self.pick(output, target: target, defaults: ["body", "stdout"])
            let text = key.flatMap { receivedTexts[$0] } ?? picked.stringValue ?? JSONWriter.string(picked, pretty: false)
            guard let regex = try? NSRegularExpression(pattern: Self.icuPattern(pattern)) else {
                return ToleranceOutcome(met: false, message: "invalid regular expression \(pattern)")
            }
            let met = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
            return ToleranceOutcome(met: met, message: met ? nil : "pattern /\(pattern)/ not found in \(Self.describe(.string(text)))")
        case .jsonpath(let path, let expect, let count, let target):
            var (picked, _) = Self.pick(output, target: target, defaults: [])
            if case .string(let text) = picked, let decoded = try? JSONReader.value(text) { picked = decoded }
            let matches = path.evaluate(picked)
            // Chaos Toolkit: `expect`, when given, decides alone (a `count` beside it is not checked).
            if let expect {
                let expected: [Value] = if case .array(let a) = expect { a } else { [expect] }
                let met = Value.array(matches).pythonEquals(.array(expected))
                return ToleranceOutcome(met: met, message: met ? nil : "\(path) matched \(Value.array(matches)), expected \(Value.array(expected))")
            }
            if let count {
                let met = matches.count == count
                return ToleranceOutcome(met: met, message: met ? nil : "\(path) matched \(matches.count) value(s), expected \(count)")
            }
            return ToleranceOutcome(met: !matches.isEmpty, message: matches.isEmpty ? "\(path) matched nothing" : nil)
        case .custom(let check):
            return check.check(output)
        case .probe:
            return ToleranceOutcome(met: false, message: "probe tolerances are run by the engine")
        }
    }

    /// The part of the output a tolerance reads, and the output member it came from.
    static func pick(_ output: Value, target: String?, defaults: [String]) -> (Value, String?) {
        if let target {
            if let member = output[target] { return (member, target) }
            var current = output
            for component in target.split(separator: ".").map(String.init) {
                if let i = Int(component), let element = current[i] {
                    current = element
                } else if let member = current[component] {
                    current = member
                } else {
                    // Chaos Toolkit's `value.get(target, value)`: the whole output.
                    return (output, nil)
                }
            }
            return (current, nil)
        }
        if case .object = output {
            for key in defaults { if let v = output[key] { return (v, key) } }
        }
        return (output, nil)
    }

    /// The number Python's `Decimal(value)` reads: numbers and booleans as they are; text with
    /// surrounding whitespace stripped, `_` between digits, `Infinity` and `NaN` allowed.
    static func decimal(_ value: Value) -> Double? {
        if let number = value.pythonNumber { return number }
        guard case .string(let raw) = value else { return nil }
        var text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        var sign = 1.0
        if let first = text.first, first == "+" || first == "-" {
            if first == "-" { sign = -1 }
            text.removeFirst()
        }
        switch text.lowercased() {
        case "inf", "infinity": return sign * .infinity
        case "nan", "snan": return .nan
        default: break
        }
        // Underscores only between digits, as in Python's numeric literals.
        let characters = Array(text)
        for (i, c) in characters.enumerated() where c == "_" {
            guard i > 0, i < characters.count - 1, characters[i - 1].isASCII, characters[i - 1].isNumber, characters[i + 1].isASCII,
                characters[i + 1].isNumber
            else { return nil }
        }
        text.removeAll { $0 == "_" }
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isNumber || ".eE+-".contains($0)) }) else { return nil }
        let withZero = text.hasPrefix(".") ? "0" + text : text
        guard let value = Value(exactNumber: withZero.hasSuffix(".") ? withZero + "0" : withZero)?.doubleValue else { return nil }
        return sign * value
    }

    /// A Python `re` pattern as ICU (NSRegularExpression) spells it: named groups
    /// `(?P<name>…)` and `(?P=name)`, `\Z` (end of text), and braces: Python reads a `{` that does
    /// not open a repeat (`{2}`, `{2,}`, `{,3}`, `{2,3}`) and every `}` as themselves — a body's
    /// `{"status": "UP"}` — where ICU refuses them; `{,3}` is ICU's `{0,3}`. Inside `[…]` Python
    /// reads `[` as itself, ICU as a nested set.
    static func icuPattern(_ python: String) -> String {
        let chars = Array(python)
        var out = ""
        var i = 0
        var inClass = false
        func digits(from start: Int) -> (String, Int) {
            var j = start
            while j < chars.count, chars[j].isASCII, chars[j].isNumber { j += 1 }
            return (String(chars[start..<j]), j)
        }
        while i < chars.count {
            let c = chars[i]
            if c == "\\" {
                let escape = String(chars[i..<min(i + 2, chars.count)])
                out += escape == "\\Z" ? "\\z" : escape
                i += 2
            } else if inClass {
                if c == "]" {
                    inClass = false
                    out.append("]")
                } else if c == "[" {
                    out += "\\["
                } else {
                    out.append(c)
                }
                i += 1
            } else if c == "[" {
                inClass = true
                out.append("[")
                i += 1
                if i < chars.count, chars[i] == "^" {
                    out.append("^")
                    i += 1
                }
                // A `]` first in the set is a member in both; ICU wants it escaped.
                if i < chars.count, chars[i] == "]" {
                    out += "\\]"
                    i += 1
                }
            } else if c == "(", String(chars[i..<min(i + 4, chars.count)]) == "(?P<" {
                out += "(?<"
                i += 4
            } else if c == "(", String(chars[i..<min(i + 4, chars.count)]) == "(?P=", let close = chars[i...].firstIndex(of: ")") {
                out += "\\k<" + String(chars[(i + 4)..<close]) + ">"
                i = close + 1
            } else if c == "{" {
                let (low, afterLow) = digits(from: i + 1)
                var j = afterLow
                var high: String?
                if j < chars.count, chars[j] == "," {
                    let (h, afterHigh) = digits(from: j + 1)
                    high = h
                    j = afterHigh
                }
                if j < chars.count, chars[j] == "}", !(low.isEmpty && high == nil) {
                    out += "{" + (low.isEmpty ? "0" : low) + (high.map { "," + $0 } ?? "") + "}"
                    i = j + 1
                } else {
                    out += "\\{"
                    i += 1
                }
            } else if c == "}" {
                out += "\\}"
                i += 1
            } else {
                out.append(c)
                i += 1
            }
        }
        return out
    }

    static func number(_ d: Double) -> String { d.rounded() == d && abs(d) < 1e15 ? String(Int(d)) : "\(d)" }

    static func describe(_ value: Value) -> String {
        let text = value.description
        return text.count > 120 ? String(text.prefix(120)) + "…" : text
    }
}

/// Wraps a parsed tolerance for the journal.
extension Tolerance: ToleranceCheck {}
