import Foundation

/// A hypothesis probe's tolerance: what output means the system is in its steady state.
///
/// The forms are Chaos Toolkit's, with its surprises removed (each is in the README's format
/// reference):
/// - `true`/`false`: the output equals it (a boolean; `1` is not `true`).
/// - a number: the output's `status` when it has one (http, process), else the output itself.
/// - a string: the output equals it.
/// - a list: membership of the output's `status` when it has one; for a number, a two-element list
///   of numbers is an inclusive range; otherwise membership. (Chaos Toolkit reads every
///   two-element list as a range, so `["a", "b"]` accepted `"abc"`.)
/// - `{type: range, range: [lo, hi], target}`: inclusive numeric range.
/// - `{type: regex, pattern, target}`: a search in the text.
/// - `{type: jsonpath, path, expect, count, target}`: JSONPath matches.
/// - `{type: probe, name, provider}`: another probe judges; `${value}` in it is the output.
/// - a form the probe defines itself (``ToleranceProviding``), e.g. k6 thresholds for `http.load`.
///
/// `target` picks a member of an object output (`status`, `body`, `stdout`, or a dotted path).
/// Without it, `range` reads `status`, and `regex` and `jsonpath` read `body` (http) or `stdout`
/// (process) when the output has them.
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
            throw Diagnostic("a tolerance cannot be null", at: node.location, path: path, hint: "write the value that means steady state, e.g. tolerance: 200")
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
                    sink.report(Diagnostic("range needs exactly two numbers [lower, upper], found \(bounds.count)", at: node["range"]?.location, path: path.appending("range")))
                }
                if let bounds, bounds.count == 2, bounds[0] > bounds[1] {
                    sink.report(Diagnostic("range lower bound \(bounds[0]) is above the upper bound \(bounds[1])", at: node["range"]?.location, path: path.appending("range")))
                }
                tolerance = bounds.flatMap { $0.count == 2 ? .range(lower: $0[0], upper: $0[1], target: target) : nil }
            case "regex":
                let pattern = reader.decode(String.self, "pattern", required: true)
                let target = reader.decode(String.self, "target")
                if let pattern {
                    do {
                        _ = try NSRegularExpression(pattern: pattern)
                    } catch {
                        sink.report(Diagnostic("invalid regular expression \"\(pattern)\"", at: node["pattern"]?.location, path: path.appending("pattern")))
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
                        sink.report(Diagnostic(error.description, at: node["path"]?.location, path: path.appending("path")))
                    }
                }
                tolerance = jsonPath.map { .jsonpath(path: $0, expect: expect, count: count, target: target) }
            case "probe":
                let probeSink = DiagnosticSink()
                var probeNode = node
                if case .object(let members) = node.content, !members.contains(where: { $0.key == "name" }) {
                    probeNode = SourceNode(.object(members + [.init(key: "name", keyLocation: node.location, value: SourceNode(.string("tolerance"), at: node.location))]), at: node.location)
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
    public func check(_ output: Value) -> ToleranceOutcome {
        switch self {
        case .equals(let expected):
            let actual: Value
            if expected.doubleValue != nil, expected.boolValue == nil, let status = output["status"] {
                actual = status
            } else {
                actual = output
            }
            let met: Bool
            if case .bool = expected {
                met = actual == expected
            } else {
                met = actual.looselyEquals(expected)
            }
            return ToleranceOutcome(met: met, message: met ? nil : "expected \(expected), got \(Self.describe(actual))")
        case .list(let items):
            if let status = output["status"] {
                let met = items.contains { $0.looselyEquals(status) }
                return ToleranceOutcome(met: met, message: met ? nil : "status \(status) is not one of \(Value.array(items))")
            }
            if items.count == 2, let lo = items[0].doubleValue, let hi = items[1].doubleValue, let v = output.doubleValue,
                items[0].boolValue == nil, items[1].boolValue == nil
            {
                let met = lo <= v && v <= hi
                return ToleranceOutcome(met: met, message: met ? nil : "\(output) is outside [\(items[0]), \(items[1])]")
            }
            let met = items.contains { $0.looselyEquals(output) }
            return ToleranceOutcome(met: met, message: met ? nil : "\(Self.describe(output)) is not one of \(Value.array(items))")
        case .range(let lo, let hi, let target):
            let picked = Self.pick(output, target: target, defaults: ["status"])
            guard let v = picked.doubleValue else {
                return ToleranceOutcome(met: false, message: "range needs a number, got \(Self.describe(picked))\(target == nil ? " (set target:)" : "")")
            }
            let met = lo <= v && v <= hi
            return ToleranceOutcome(met: met, message: met ? nil : "\(Self.describe(picked)) is outside [\(Self.number(lo)), \(Self.number(hi))]")
        case .regex(let pattern, let target):
            let picked = Self.pick(output, target: target, defaults: ["body", "stdout"])
            let text = picked.stringValue ?? JSONWriter.string(picked, pretty: false)
            guard let regex = try? NSRegularExpression(pattern: pattern) else {
                return ToleranceOutcome(met: false, message: "invalid regular expression \(pattern)")
            }
            let met = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
            return ToleranceOutcome(met: met, message: met ? nil : "pattern /\(pattern)/ not found in \(Self.describe(.string(text)))")
        case .jsonpath(let path, let expect, let count, let target):
            var picked = Self.pick(output, target: target, defaults: ["body", "stdout"])
            if case .string(let text) = picked, let decoded = try? JSONReader.value(text) { picked = decoded }
            let matches = path.evaluate(picked)
            if let count, matches.count != count {
                return ToleranceOutcome(met: false, message: "\(path) matched \(matches.count) value(s), expected \(count)")
            }
            if let expect {
                let expected: [Value] = if case .array(let a) = expect { a } else { [expect] }
                let met = Value.array(matches).looselyEquals(.array(expected)) || (matches.count == 1 && matches[0].looselyEquals(expect))
                return ToleranceOutcome(met: met, message: met ? nil : "\(path) matched \(Value.array(matches)), expected \(expect)")
            }
            if count == nil, matches.isEmpty {
                return ToleranceOutcome(met: false, message: "\(path) matched nothing")
            }
            return ToleranceOutcome(met: true)
        case .custom(let check):
            return check.check(output)
        case .probe:
            return ToleranceOutcome(met: false, message: "probe tolerances are run by the engine")
        }
    }

    /// The part of the output a tolerance reads.
    static func pick(_ output: Value, target: String?, defaults: [String]) -> Value {
        if let target {
            var current = output
            for component in target.split(separator: ".").map(String.init) {
                if let i = Int(component), let element = current[i] {
                    current = element
                } else {
                    current = current[component] ?? .null
                }
            }
            return current
        }
        if case .object = output {
            for key in defaults { if let v = output[key] { return v } }
        }
        return output
    }

    static func number(_ d: Double) -> String { d.rounded() == d && abs(d) < 1e15 ? String(Int(d)) : "\(d)" }

    static func describe(_ value: Value) -> String {
        let text = value.description
        return text.count > 120 ? String(text.prefix(120)) + "…" : text
    }
}

/// Wraps a parsed tolerance for the journal.
extension Tolerance: ToleranceCheck {}
