import FaultlineKit

/// `slow_close`: passes data through and delays the end of stream (the FIN) by `delay` ms.
public struct SlowCloseToxic: Toxic {
    public static let type = "slow_close"
    public static let summary = "Delay the close of a direction by delay milliseconds"
    public static let attributeHelp = ["delay": "milliseconds between the source's close and passing it on"]

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["delay": .milliseconds]
        public var delay: Int

        public init(delay: Int = 0) { self.delay = delay }

        enum CodingKeys: String, CodingKey { case delay }

        public init(from decoder: any Decoder) throws {
            delay = try decoder.container(keyedBy: CodingKeys.self).attribute(.delay)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        try requireNonNegative(attributes.delay, "delay", unit: "milliseconds")
    }

    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage {
        SlowCloseStage(delay: attributes.delay)
    }
}

final class SlowCloseStage: ToxicStage {
    private var delay: Int
    private var timer: (any ToxicTimer)?

    init(delay: Int) { self.delay = delay }

    func receive(_ chunk: ToxicChunk, link: any ToxicLink) { link.forward(chunk) }

    func endOfStream(link: any ToxicLink) {
        timer = link.schedule(at: link.now + Nanoseconds.milliseconds(delay)) { [weak self] in
            self?.timer = nil
            link.forwardEndOfStream()
        }
    }

    func stop(link: any ToxicLink) {
        guard let timer else { return }
        timer.cancel()
        self.timer = nil
        link.forwardEndOfStream()
    }

    func update(_ attributes: any Sendable, link: any ToxicLink) {
        if let attributes = attributes as? SlowCloseToxic.Attributes { delay = attributes.delay }
    }
}
