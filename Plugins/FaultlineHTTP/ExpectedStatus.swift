import FaultlineKit
import Foundation

/// The statuses a response may have: `200`, `"200-299"`, `"2xx"`, or a list of those.
public struct ExpectedStatus: Codable, Sendable, Equatable, CustomStringConvertible {
    /// Inclusive ranges; a single code is a range of one.
    public var ranges: [ClosedRange<Int>]

    public init(_ ranges: [ClosedRange<Int>]) { self.ranges = ranges }

    /// What a load counts as a success unless told otherwise: 2xx and 3xx, as JMeter and k6.
    public static let success = ExpectedStatus([200...399])

    /// The range of a status code, for the arguments' ``NumberRanges`` (the decoder above checks it
    /// itself, in its own words).
    public static let range = NumberRange(100...599, unit: "(HTTP status)", integer: true)

    public func contains(_ status: Int) -> Bool { ranges.contains { $0.contains(status) } }

    public var description: String {
        ranges.map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ", ")
    }

    public init(from decoder: any Decoder) throws {
        let value = try Value(from: decoder)
        func fail(_ message: String) -> DecodingError {
            DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: message))
        }
        let items: [Value] = if case .array(let list) = value { list } else { [value] }
        guard !items.isEmpty else { throw fail("expected_status needs at least one status, e.g. 200 or \"200-299\"") }
        ranges = try items.map { item in
            if let code = item.intValue {
                guard (100...599).contains(code) else { throw fail("\(code) is not an HTTP status (100…599)") }
                return code...code
            }
            guard let text = item.stringValue, let range = Self.parse(text) else {
                throw fail("expected_status \(item) is not a status, a range like \"200-299\" or a class like \"2xx\"")
            }
            return range
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if ranges.count == 1, ranges[0].count == 1 {
            try container.encode(ranges[0].lowerBound)
        } else {
            try container.encode(description)
        }
    }

    static func parse(_ text: String) -> ClosedRange<Int>? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed.count == 3, trimmed.hasSuffix("xx"), let first = Int(trimmed.prefix(1)), (1...5).contains(first) {
            return first * 100...first * 100 + 99
        }
        let parts = trimmed.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let codes = parts.compactMap { Int($0) }
        guard codes.count == parts.count, codes.allSatisfy({ (100...599).contains($0) }) else { return nil }
        switch codes.count {
        case 1: return codes[0]...codes[0]
        case 2 where codes[0] <= codes[1]: return codes[0]...codes[1]
        default: return nil
        }
    }
}
