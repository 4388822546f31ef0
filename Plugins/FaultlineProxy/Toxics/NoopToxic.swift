import FaultlineKit

/// `noop`: passes everything through (Toxiproxy has it too, undocumented).
public struct NoopToxic: Toxic {
    public static let type = "noop"
    public static let summary = "Pass everything through (for testing)"

    public struct Attributes: Codable, Sendable, Equatable {
        public init() {}
        public init(from decoder: any Decoder) throws {}
    }

    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage { NoopStage() }
}

final class NoopStage: ToxicStage {
    func receive(_ chunk: ToxicChunk, link: any ToxicLink) { link.forward(chunk) }
    func stop(link: any ToxicLink) {}
    func update(_ attributes: any Sendable, link: any ToxicLink) {}
}
