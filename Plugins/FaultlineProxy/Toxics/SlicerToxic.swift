import FaultlineKit

/// `slicer`: cuts data into pieces of about `average_size` ± `size_variation` bytes, sent
/// `delay` µs apart.
public struct SlicerToxic: Toxic {
    public static let type = "slicer"
    public static let summary = "Slice data into average_size ± size_variation byte pieces, delay µs apart"
    public static let attributeHelp = [
        "average_size": "average piece size in bytes, at least 1",
        "size_variation": "random variation of piece sizes in bytes, less than average_size",
        "delay": "microseconds between pieces",
    ]

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["average_size": .bytes, "size_variation": .bytes, "delay": .microseconds]
        public var average_size: Int
        public var size_variation: Int
        public var delay: Int

        public init(average_size: Int = 0, size_variation: Int = 0, delay: Int = 0) {
            self.average_size = average_size
            self.size_variation = size_variation
            self.delay = delay
        }

        enum CodingKeys: String, CodingKey { case average_size, size_variation, delay }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            average_size = try c.attribute(.average_size)
            size_variation = try c.attribute(.size_variation)
            delay = try c.attribute(.delay)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        guard attributes.average_size > 0 else {
            throw ArgumentError("average_size", "average_size must be at least 1 byte (found \(attributes.average_size))")
        }
        try requireNonNegative(attributes.size_variation, "size_variation", unit: "bytes")
        guard attributes.size_variation < attributes.average_size else {
            throw ArgumentError(
                "size_variation", "size_variation (\(attributes.size_variation)) must be less than average_size (\(attributes.average_size))")
        }
        try requireNonNegative(attributes.delay, "delay", unit: "microseconds")
    }

    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage {
        SlicerStage(attributes, random: random)
    }
}

final class SlicerStage: ToxicStage {
    private var attributes: SlicerToxic.Attributes
    private var random: SeededRandom
    /// Pieces waiting for their turn, already cut.
    private var backlog = Backlog()
    private var lastSent: UInt64?
    private var timer: (any ToxicTimer)?

    init(_ attributes: SlicerToxic.Attributes, random: SeededRandom) {
        self.attributes = attributes
        self.random = random
    }

    /// Piece sizes for `count` bytes, by Toxiproxy's rule: halve around the midpoint ±
    /// variation until every piece is within `average_size + size_variation`.
    func sizes(for count: Int) -> [Int] {
        let average = attributes.average_size
        let variation = attributes.size_variation
        var result: [Int] = []
        var pending = [(0, count)]
        while let (start, end) = pending.popLast() {
            if (end - start) - average <= variation {
                result.append(end - start)
                continue
            }
            var middle = start + (end - start) / 2
            if variation > 0 { middle += Int(random.next() % UInt64(variation * 2)) - variation }
            pending.append((middle, end))
            pending.append((start, middle))
        }
        return result
    }

    func receive(_ chunk: ToxicChunk, link: any ToxicLink) {
        var rest = chunk
        for size in sizes(for: chunk.count) {
            let piece: ToxicChunk
            if size == rest.count {
                piece = rest
            } else {
                (piece, rest) = rest.split(at: size)
            }
            if attributes.delay == 0 && backlog.isEmpty {
                link.forward(piece)
            } else {
                backlog.append(piece, link: link)
            }
        }
        pump(link)
    }

    private func pump(_ link: any ToxicLink) {
        guard timer == nil else { return }
        let spacing = Nanoseconds.microseconds(attributes.delay)
        while !backlog.isEmpty {
            let now = link.now
            if let lastSent, spacing > 0, lastSent + spacing > now {
                timer = link.schedule(at: lastSent + spacing) { [weak self] in
                    guard let self else { return }
                    self.timer = nil
                    self.pump(link)
                }
                break
            }
            lastSent = now
            backlog.forwardFirst(link)
        }
        backlog.forwardEndIfDrained(link)
    }

    func endOfStream(link: any ToxicLink) { backlog.endOfStream(link) }

    func stop(link: any ToxicLink) {
        timer?.cancel()
        timer = nil
        backlog.forwardAll(link)
    }

    func update(_ attributes: any Sendable, link: any ToxicLink) {
        if let attributes = attributes as? SlicerToxic.Attributes { self.attributes = attributes }
    }
}
