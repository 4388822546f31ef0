import FaultlineKit

/// `limit_data`: passes the first `bytes` bytes of a direction, then closes the connection.
public struct LimitDataToxic: Toxic {
    public static let type = "limit_data"
    public static let summary = "Close the connection after bytes bytes have passed"
    public static let attributeHelp = ["bytes": "bytes to pass before closing; the count survives updates"]

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["bytes": .bytes]
        public var bytes: Int

        public init(bytes: Int = 0) { self.bytes = bytes }

        enum CodingKeys: String, CodingKey { case bytes }

        public init(from decoder: any Decoder) throws {
            bytes = try decoder.container(keyedBy: CodingKeys.self).attribute(.bytes)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        try requireNonNegative(attributes.bytes, "bytes", unit: "bytes")
    }

    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage {
        LimitDataStage(limit: attributes.bytes)
    }
}

final class LimitDataStage: ToxicStage {
    private var limit: Int
    private var passed = 0
    private var closed = false

    init(limit: Int) { self.limit = limit }

    func receive(_ chunk: ToxicChunk, link: any ToxicLink) {
        guard !closed else { return }
        let remaining = limit - passed
        if chunk.count < remaining {
            passed += chunk.count
            link.forward(chunk)
            return
        }
        if remaining > 0 {
            link.forward(chunk.count == remaining ? chunk : chunk.split(at: remaining).0)
            passed = limit
        }
        closed = true
        link.closeConnection()
    }

    func stop(link: any ToxicLink) {}

    func update(_ attributes: any Sendable, link: any ToxicLink) {
        if let attributes = attributes as? LimitDataToxic.Attributes { limit = attributes.bytes }
    }
}
