import FaultlineKit
import Foundation

/// One k6-style threshold: `p(95)<200`, `avg<150`, `rate<0.01`, `count>100`, `rps>50`.
struct Threshold: Sendable, Equatable {
    enum Metric: Sendable, Equatable {
        case percentile(Double)
        case avg, min, max, med, rate, count, rps

        /// The key of the load output's stats object that holds the measurement (the threshold's `metric`).
        var outputKey: String {
            switch self {
            case .percentile(let p): Self.percentileKeys[p]!
            case .avg: "avg_ms"
            case .min: "min_ms"
            case .max: "max_ms"
            case .med: "p50_ms"
            case .rate: "error_rate"
            case .count: "count"
            case .rps: "rps"
            }
        }

        /// The measurement in `stats`.
        func measure(_ stats: LoadStats) -> Double {
            switch self {
            case .percentile(let p): [50: stats.p50Ms, 90: stats.p90Ms, 95: stats.p95Ms, 99: stats.p99Ms, 99.9: stats.p999Ms][p] ?? .nan
            case .avg: stats.avgMs
            case .min: stats.minMs
            case .max: stats.maxMs
            case .med: stats.p50Ms
            case .rate: stats.errorRate
            case .count: Double(stats.count)
            case .rps: stats.rps
            }
        }

        /// The unit a message shows after a measurement.
        var unit: String {
            switch self {
            case .percentile, .avg, .min, .max, .med: " ms"
            case .rate, .count: ""
            case .rps: " req/s"
            }
        }

        /// The percentiles the output measures.
        static let percentileKeys: [Double: String] = [50: "p50_ms", 90: "p90_ms", 95: "p95_ms", 99: "p99_ms", 99.9: "p999_ms"]
    }

    enum Comparison: String, Sendable, CaseIterable {
        case lessOrEqual = "<=", greaterOrEqual = ">=", notEqual = "!=", strictEqual = "===", equal = "==", less = "<", greater = ">"

        func holds(_ measured: Double, _ limit: Double) -> Bool {
            switch self {
            case .less: measured < limit
            case .lessOrEqual: measured <= limit
            case .greater: measured > limit
            case .greaterOrEqual: measured >= limit
            case .equal, .strictEqual: measured == limit
            case .notEqual: measured != limit
            }
        }
    }

    var expression: String
    var metric: Metric
    var comparison: Comparison
    var limit: Double

    /// Parses k6's `<aggregation> <operator> <number>`.
    /// - Throws: a message explaining what is wrong and what to write.
    init(parsing text: String) throws(ThresholdSyntaxError) {
        expression = text.trimmingCharacters(in: .whitespaces)
        var rest = Substring(expression)
        func skipSpaces() { rest = rest.drop { $0 == " " || $0 == "\t" } }

        let name = String(rest.prefix { $0.isLetter })
        rest = rest.dropFirst(name.count)
        switch name {
        case "p":
            skipSpaces()
            guard rest.first == "(", let close = rest.firstIndex(of: ")") else {
                throw ThresholdSyntaxError("\"\(text)\": a percentile is written p(N), e.g. p(95)")
            }
            let number = rest[rest.index(after: rest.startIndex)..<close].trimmingCharacters(in: .whitespaces)
            guard let p = Double(number), Metric.percentileKeys[p] != nil else {
                throw ThresholdSyntaxError("\"\(text)\": p(\(number)) is not measured; use p(50), p(90), p(95), p(99) or p(99.9)")
            }
            metric = .percentile(p)
            rest = rest[rest.index(after: close)...]
        case "avg": metric = .avg
        case "min": metric = .min
        case "max": metric = .max
        case "med": metric = .med
        case "rate": metric = .rate
        case "count": metric = .count
        case "rps": metric = .rps
        case "":
            throw ThresholdSyntaxError("\"\(text)\" does not start with a metric; write e.g. \"p(95)<200\", \"avg<150\" or \"rate<0.01\"")
        default:
            let suggestion = Suggestion.didYouMean(name, in: ["avg", "min", "max", "med", "p", "rate", "count", "rps"]).map { " (\($0))" } ?? ""
            throw ThresholdSyntaxError(
                "\"\(text)\": unknown metric \"\(name)\"\(suggestion); use avg, min, max, med, p(N), rate, count or rps")
        }
        skipSpaces()
        guard let comparison = Comparison.allCases.first(where: { rest.hasPrefix($0.rawValue) }) else {
            throw ThresholdSyntaxError("\"\(text)\" needs a comparison after the metric: <, <=, >, >=, == or !=")
        }
        self.comparison = comparison
        rest = rest.dropFirst(comparison.rawValue.count)
        skipSpaces()
        let number = rest.trimmingCharacters(in: .whitespaces)
        guard let limit = Double(number), limit.isFinite else {
            let hint = number.hasSuffix("ms") || number.hasSuffix("s") ? " (limits are plain numbers; latencies are in milliseconds)" : ""
            throw ThresholdSyntaxError("\"\(text)\": \"\(number)\" is not a number\(hint)")
        }
        self.limit = limit
    }

    /// Judges the threshold against the stats of its scope (nil: the scope measured nothing).
    func evaluate(_ stats: LoadStats?, scope: String) -> LoadThreshold {
        let measured = stats.map(metric.measure).flatMap { $0.isNaN ? nil : $0 }
        return LoadThreshold(
            scope: scope, expression: expression, metric: metric.outputKey, limit: limit, measured: measured,
            ok: measured.map { comparison.holds($0, limit) } ?? false)
    }

    /// A missed threshold for a person: `p(95) of prediction is 312.4 ms, limit < 200 ms`.
    static func describeMiss(_ entry: LoadThreshold) -> String {
        let metricText = entry.expression.prefix { !"<>=!".contains($0) }.trimmingCharacters(in: .whitespaces)
        let parsed = try? Threshold(parsing: entry.expression)
        let unit = parsed?.metric.unit ?? ""
        let op = parsed?.comparison.rawValue ?? ""
        let measured = entry.measured.map { Self.format($0) + unit } ?? "not measured"
        return "\(metricText) of \(entry.scope) is \(measured), limit \(op) \(entry.limitText ?? "")\(unit)"
    }

    static func format(_ value: Double) -> String {
        if value.rounded() == value, abs(value) < 1e15 { return String(Int(value)) }
        return String(format: "%.3f", value).replacingOccurrences(of: #"\.?0+$"#, with: "", options: .regularExpression)
    }
}

/// A threshold that cannot be parsed.
struct ThresholdSyntaxError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The `http.load` tolerance: k6 thresholds for the whole load (a list) or per scope (an
/// object keyed by `overall`, request names and phases: `before`, `during`, `between`, `after`
/// or a fault's label).
struct ThresholdTolerance: ToleranceCheck {
    /// Thresholds by scope, in the order written.
    var scopes: [(scope: String, thresholds: [Threshold])]
    /// The tolerance as written, for the journal.
    let written: Value

    /// Parses the forms `http.load` accepts, or returns nil for the standard ones (an object with
    /// `type:`, numbers, booleans) so that they keep working.
    static func parse(_ node: SourceNode, path: DocumentPath) throws -> ThresholdTolerance? {
        switch node.content {
        case .scalar(.string, _):
            return ThresholdTolerance(scopes: [("overall", try thresholds(node, path: path))], written: node.value)
        case .array(let elements):
            guard elements.allSatisfy({ $0.stringValue != nil }) else { return nil }
            return ThresholdTolerance(scopes: [("overall", try thresholds(node, path: path))], written: node.value)
        case .object(let members):
            guard !members.contains(where: { $0.key == "type" }) else { return nil }
            guard !members.isEmpty else {
                throw Diagnostic(
                    "the thresholds object is empty", at: node.location, path: path,
                    hint: "write e.g. {overall: [\"p(95)<200\"], login: [\"rate<0.01\"]}")
            }
            let scopes = try members.map { member in
                (member.key, try thresholds(member.value, path: path.appending(member.key)))
            }
            return ThresholdTolerance(scopes: scopes, written: node.value)
        default:
            return nil
        }
    }

    private static func thresholds(_ node: SourceNode, path: DocumentPath) throws -> [Threshold] {
        let items: [(SourceNode, DocumentPath)] =
            if let elements = node.elements { elements.enumerated().map { ($1, path.appending($0)) } } else { [(node, path)] }
        guard !items.isEmpty else {
            throw Diagnostic("the list of thresholds is empty", at: node.location, path: path, hint: "write e.g. [\"p(95)<200\"]")
        }
        return try items.map { item, itemPath in
            guard let text = item.stringValue else {
                throw Diagnostic(
                    "a threshold is a string such as \"p(95)<200\", found \(item.kindDescription)", at: item.location, path: itemPath)
            }
            do {
                return try Threshold(parsing: text)
            } catch {
                throw Diagnostic("\(error)", at: item.location, path: itemPath)
            }
        }
    }

    var summary: Value { written }

    /// Every threshold judged against the result, in the order written.
    func evaluate(_ result: LoadResult) -> [LoadThreshold] {
        scopes.flatMap { scope, thresholds in
            thresholds.map { $0.evaluate(result.stats(scope: scope), scope: scope) }
        }
    }

    /// The output as a load result, or nil when it is not one.
    private static func loadResult(_ output: Value) -> LoadResult? {
        guard output["overall"] != nil else { return nil }
        return try? LoadResult(decoding: output)
    }

    func check(_ output: Value) -> ToleranceOutcome {
        guard let result = Self.loadResult(output) else {
            return ToleranceOutcome(met: false, message: "thresholds judge an http.load output, got \(output.kindDescription)")
        }
        let known = result.requests.map(\.name)
        let phases = result.phases.map(\.name)
        func isKnown(_ scope: String) -> Bool {
            scope == "overall" || known.contains(scope) || LoadResult.isPhaseScope(scope) || phases.contains(scope)
        }
        var problems: [String] = []
        for (scope, _) in scopes where !isKnown(scope) {
            let phaseList = phases.isEmpty ? "" : "; phases \(phases.map { "\"\($0)\"" }.joined(separator: ", "))"
            problems.append(
                "no request or phase named \"\(scope)\" (the load has \(known.map { "\"\($0)\"" }.joined(separator: ", "))\(phaseList))")
        }
        let missed = evaluate(result).filter { !$0.ok }
        problems += missed.filter { isKnown($0.scope) }.map { miss in
            let noFault = miss.measured == nil && LoadResult.isPhaseScope(miss.scope)
            return Threshold.describeMiss(miss) + (noFault ? " (the load had no \"\(miss.scope)\" phase: no fault window fell there)" : "")
        }
        // A shard's share (a third of the users, of the rate) is not what the thresholds are
        // written for: they are judged once the shards are merged, on all of their requests.
        if let shard = result.shard {
            let alone = problems.isEmpty ? "every threshold held" : problems.joined(separator: "; ")
            return ToleranceOutcome(
                met: true, message: "judged on the merged shards by faultline report --merge; shard \(shard.index)/\(shard.count) alone: \(alone)")
        }
        return ToleranceOutcome(met: problems.isEmpty, message: problems.isEmpty ? nil : problems.joined(separator: "; "))
    }

    func annotate(_ output: Value) -> Value {
        guard var result = Self.loadResult(output) else { return output }
        result.thresholds = evaluate(result)
        return result.value
    }
}
