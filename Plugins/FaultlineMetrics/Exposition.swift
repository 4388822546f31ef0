import Foundation

/// Prometheus's text exposition format, version 0.0.4: families of samples, each with its
/// `# HELP` and `# TYPE` lines, label values escaped.
struct Exposition {
    /// The content type a scrape gets.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// What a metric family is.
    enum Kind: String {
        case counter, gauge, histogram
    }

    private(set) var text = ""

    /// Starts a family: its help and type lines.
    mutating func family(_ name: String, _ kind: Kind, help: String) {
        text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
    }

    /// One sample: `name{label="value",…} value`.
    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: String) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + value + "\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Int) { sample(name, labels, String(value)) }

    /// A histogram's samples: cumulative `_bucket`s up to `+Inf`, `_sum` and `_count`.
    /// - Parameters:
    ///   - bounds: the buckets' upper bounds, in microseconds (written as seconds).
    ///   - counts: observations per bucket, not cumulative; one more than `bounds` (the overflow).
    ///   - sumMicros: the observations added up, in microseconds.
    mutating func histogram(_ name: String, _ labels: [(String, String)], bounds: [UInt32], counts: [Int], sumMicros: UInt64) {
        var cumulative = 0
        for (index, bound) in bounds.enumerated() {
            cumulative += index < counts.count ? counts[index] : 0
            sample(name + "_bucket", labels + [("le", Self.seconds(micros: UInt64(bound)))], cumulative)
        }
        let total = counts.reduce(0, +)
        sample(name + "_bucket", labels + [("le", "+Inf")], total)
        sample(name + "_sum", labels, Self.seconds(micros: sumMicros))
        sample(name + "_count", labels, total)
    }

    /// Microseconds as seconds, exactly: `0.0005`, `1`, `2.5`.
    static func seconds(micros: UInt64) -> String {
        let whole = micros / 1_000_000
        let fraction = micros % 1_000_000
        guard fraction > 0 else { return String(whole) }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 6 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }

    /// Signed microseconds (a timestamp) as seconds, exactly.
    static func seconds(micros: Int64) -> String {
        micros < 0 ? "-" + seconds(micros: UInt64(-micros)) : seconds(micros: UInt64(micros))
    }

    /// A label value: backslash, double quote and line feed escaped.
    static func escapeLabel(_ value: String) -> String {
        var escaped = String.UnicodeScalarView()
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": escaped.append(contentsOf: "\\\\".unicodeScalars)
            case "\"": escaped.append(contentsOf: "\\\"".unicodeScalars)
            case "\n": escaped.append(contentsOf: "\\n".unicodeScalars)
            default: escaped.append(scalar)
            }
        }
        return String(escaped)
    }

    /// Help text: backslash and line feed escaped.
    static func escapeHelp(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}
