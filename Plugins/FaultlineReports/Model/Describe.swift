import FaultlineKit

/// Tolerances and judged values in words, for the hypothesis tables.
enum ToleranceText {
    /// A tolerance as written, in a short readable form: `0`, `one of 200, 204`, `0 … 500 (p95)`,
    /// `/ok/`, `p(95)<200, rate<0.01`.
    /// - Parameters:
    ///   - output: the output it judged, when known: a two-number list is a range for a number and
    ///     a membership test for an output with a status (the kernel's rule).
    static func describe(_ tolerance: Value, output: Value? = nil) -> String {
        switch tolerance {
        case .null: return "—"
        case .bool, .int, .double: return tolerance.description
        case .string(let text): return "\"\(text)\""
        case .array(let items):
            if items.allSatisfy({ $0.stringValue != nil }) {
                return items.compactMap(\.stringValue).joined(separator: ", ")
            }
            if items.count == 2, let low = items[0].doubleValue, let high = items[1].doubleValue, items.allSatisfy({ $0.boolValue == nil }),
                output?["status"] == nil
            {
                return "\(Format.number(low)) … \(Format.number(high))"
            }
            return "one of " + items.map(\.description).joined(separator: ", ")
        case .object(let object):
            let target = object["target"]?.stringValue.map { " (\($0))" } ?? ""
            switch object["type"]?.stringValue {
            case "range":
                let bounds = object["range"]?.arrayValue ?? []
                if bounds.count == 2, let low = bounds[0].doubleValue, let high = bounds[1].doubleValue {
                    return "\(Format.number(low)) … \(Format.number(high))" + target
                }
            case "regex":
                if let pattern = object["pattern"]?.stringValue { return "/\(pattern)/" + target }
            case "jsonpath":
                if let path = object["path"]?.stringValue {
                    var text = path
                    if let expect = object["expect"] { text += " = \(expect)" }
                    if let count = object["count"]?.intValue { text += " (\(count) match\(count == 1 ? "" : "es"))" }
                    return text + target
                }
            case "probe":
                if let name = object["name"]?.stringValue { return "probe \(name)" }
                return "probe"
            default:
                break
            }
            // Scoped thresholds: {overall: ["p(95)<200"], login: ["p(99)<10"]}.
            if object.allSatisfy({ $0.value.arrayValue?.allSatisfy { $0.stringValue != nil } ?? false }) {
                return object.map { "\($0.key): " + ($0.value.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ") }.joined(
                    separator: "; ")
            }
            return Format.compact(tolerance)
        }
    }

    /// A record's tolerance in words, if it has one.
    static func of(_ record: RunRecord) -> String? {
        record.activity["tolerance"].map { describe($0, output: record.output) }
    }

    /// The part of a probe's output its tolerance judged, in words: `status 0`, `182`, `p95 123 ms · 0.4% errors`.
    static func judgedValue(_ record: RunRecord) -> String? {
        guard let output = record.output else { return nil }
        if let load = LoadResult(output, providerType: record.providerType) {
            return
                "p95 \(Format.ms(load.overall.p95Ms)) · \(Format.percent(load.overall.errorRate)) errors · \(Format.integer(load.overall.count)) requests"
        }
        if let target = record.activity["tolerance"]?["target"]?.stringValue, let picked = pick(output, path: target) {
            return short(picked)
        }
        if let status = output["status"] { return "status \(short(status))" }
        return short(output)
    }

    private static func pick(_ value: Value, path: String) -> Value? {
        var current: Value? = value
        for key in path.split(separator: ".") { current = current?[String(key)] }
        return current
    }

    private static func short(_ value: Value) -> String {
        switch value {
        case .string(let text):
            return "\"\(Format.truncate(text.replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces), 60))\""
        default: return Format.compact(value, limit: 60)
        }
    }
}

/// Words and symbols for outcomes and statuses.
enum Label {
    /// An experiment's outcome as a reader should see it: with the outcome its suite documents
    /// (`deviated (as expected)`, `completed (expected deviated)`).
    static func outcome(_ journal: Journal) -> String {
        guard let expected = journal.expected else { return journal.outcome.rawValue }
        return journal.outcome.rawValue + (journal.isUnexpected ? " (expected \(expected.rawValue))" : " (as expected)")
    }

    /// Whether an experiment went as it should: by its verdict, which counts a documented outcome as a pass.
    static func tone(_ journal: Journal) -> Tone { tone(journal.verdict) }

    /// The emoji for an experiment, by its verdict.
    static func symbol(_ journal: Journal) -> String { symbol(journal.verdict) }

    /// An emoji for an outcome, for Markdown.
    static func symbol(_ outcome: Outcome) -> String {
        switch outcome {
        case .completed: "✅"
        case .deviated: "❌"
        case .failed: "❌"
        case .aborted: "🛑"
        case .interrupted: "⚠️"
        case .running: "⏳"
        }
    }

    /// What an activity record's result was, in one word.
    static func result(_ record: RunRecord) -> String {
        switch record.status {
        case .succeeded: record.toleranceMet == false ? "not met" : (record.toleranceMet == true ? "met" : "succeeded")
        case .failed: "failed"
        case .interrupted: "interrupted"
        case .skipped: "skipped"
        }
    }

    /// Whether a record went as intended: `ok`, `bad`, `warn` or `skip` (styles and symbols key on it).
    static func tone(_ record: RunRecord) -> Tone {
        switch record.status {
        case .succeeded: record.toleranceMet == false ? .bad : .ok
        case .failed: .bad
        case .interrupted: .warn
        case .skipped: .skip
        }
    }

    static func tone(_ outcome: Outcome) -> Tone {
        switch outcome {
        case .completed: .ok
        case .deviated, .failed, .aborted: .bad
        case .interrupted, .running: .warn
        }
    }

    static func tone(cleanupStatus: CleanupRecord.Status) -> Tone { cleanupStatus == .succeeded ? .ok : .bad }

    enum Tone: String {
        case ok, bad, warn, skip

        var symbol: String {
            switch self {
            case .ok: "✅"
            case .bad: "❌"
            case .warn: "⚠️"
            case .skip: "⏭️"
            }
        }
    }

    /// A load error class in words: `connection refused` for `refused`, `HTTP 5xx` for `http_5xx`.
    static func errorClass(_ label: String) -> String {
        switch label {
        case "refused": "connection refused"
        case "connect_timeout": "connect timeout"
        case "reset": "connection reset"
        case "read_timeout": "read timeout"
        case "tls": "TLS error"
        case "dns": "DNS error"
        case "http_4xx": "HTTP 4xx"
        case "http_5xx": "HTTP 5xx"
        case "other": "other error"
        default: label.replacingOccurrences(of: "_", with: " ")
        }
    }

    /// `yes`/`no`.
    static func yesNo(_ value: Bool) -> String { value ? "yes" : "no" }
}
