import Foundation

/// Every latency a load measured, losslessly: how many responses took each whole number of
/// microseconds. A shard's load output carries one per request and per phase (`histogram` in
/// their stats), so `faultline report --merge` adds the shards' counts and computes the merged
/// percentiles from exactly the latencies one runner would have recorded.
///
/// In the journal it is `{"version": 1, "unit": "us", "counts": "<base64>"}`: the counts in
/// ascending latency order as unsigned LEB128 varints, two per latency seen — the difference from
/// the previous latency (from 0 for the first), then its count — base64-encoded. A sparse counts
/// list: its size grows with the number of distinct latencies (a few thousand in practice), not
/// with the number of requests. It is exact to the microsecond, which is finer than any
/// HdrHistogram bucket, so merging loses nothing.
public struct LatencyHistogram: Sendable, Equatable, Codable {
    /// The encoding this Faultline writes; a reader refuses a version it does not know.
    public static let currentVersion = 1

    /// (latency in microseconds, count), ascending by latency, counts above 0.
    public var counts: [(micros: UInt32, count: Int)]

    /// - Parameter counts: latencies with their counts, in any order; zero counts are left out.
    public init(_ counts: [(micros: UInt32, count: Int)]) {
        var merged: [(micros: UInt32, count: Int)] = []
        for entry in counts.filter({ $0.count > 0 }).sorted(by: { $0.micros < $1.micros }) {
            if let last = merged.last, last.micros == entry.micros {
                merged[merged.count - 1].count += entry.count
            } else {
                merged.append(entry)
            }
        }
        self.counts = merged
    }

    /// How many latencies it holds.
    public var total: Int { counts.reduce(0) { $0 + $1.count } }

    /// The sum of every latency, in microseconds.
    public var sumMicros: UInt64 { counts.reduce(0) { $0 + UInt64($1.micros) * UInt64($1.count) } }

    public static func == (a: LatencyHistogram, b: LatencyHistogram) -> Bool {
        a.counts.count == b.counts.count && zip(a.counts, b.counts).allSatisfy { $0.micros == $1.micros && $0.count == $1.count }
    }

    /// A histogram that cannot be read.
    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The `counts` text.
    public var encoded: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(counts.count * 3)
        func varint(_ value: UInt64) {
            var rest = value
            while rest >= 0x80 {
                bytes.append(UInt8(rest & 0x7f) | 0x80)
                rest >>= 7
            }
            bytes.append(UInt8(rest))
        }
        var previous: UInt32 = 0
        for (micros, count) in counts {
            varint(UInt64(micros - previous))
            varint(UInt64(count))
            previous = micros
        }
        return Data(bytes).base64EncodedString()
    }

    /// Reads the `counts` text.
    /// - Throws: ``Unreadable`` when it is not base64, a varint is cut short, or a value is out of range.
    public init(encoded text: String) throws(Unreadable) {
        guard let data = Data(base64Encoded: text) else { throw Unreadable(description: "the histogram's counts are not base64") }
        var counts: [(micros: UInt32, count: Int)] = []
        var position = data.startIndex
        func varint() throws(Unreadable) -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard position < data.endIndex else { throw Unreadable(description: "the histogram's counts end in the middle of a number") }
                let byte = data[position]
                position += 1
                guard shift < 64 else { throw Unreadable(description: "a number in the histogram's counts is too long") }
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }
        var micros: UInt64 = 0
        while position < data.endIndex {
            micros += try varint()
            let count = try varint()
            guard micros <= UInt64(UInt32.max), count <= UInt64(Int.max), counts.isEmpty || micros > UInt64(counts[counts.count - 1].micros)
            else {
                throw Unreadable(description: "the histogram's counts are out of range or out of order")
            }
            counts.append((UInt32(micros), Int(count)))
        }
        self.counts = counts
    }

    enum CodingKeys: String, CodingKey { case version, unit, counts }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let version = try c.decodeIfPresent(Int.self, forKey: .version) ?? 1
        guard version == Self.currentVersion else {
            throw DecodingError.dataCorruptedError(
                forKey: .version, in: c, debugDescription: "histogram version \(version) is newer than this Faultline reads (\(Self.currentVersion))")
        }
        let unit = try c.decodeIfPresent(String.self, forKey: .unit) ?? "us"
        guard unit == "us" else {
            throw DecodingError.dataCorruptedError(forKey: .unit, in: c, debugDescription: "histogram unit \"\(unit)\" is not \"us\"")
        }
        do {
            self = try LatencyHistogram(encoded: try c.decode(String.self, forKey: .counts))
        } catch let error as Unreadable {
            throw DecodingError.dataCorruptedError(forKey: .counts, in: c, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.currentVersion, forKey: .version)
        try c.encode("us", forKey: .unit)
        try c.encode(encoded, forKey: .counts)
    }
}
