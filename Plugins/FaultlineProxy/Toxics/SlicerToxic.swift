import FaultlineKit

/// `slicer`: cuts data into pieces of about `average_size` ± `size_variation` bytes, sent
/// `delay` µs apart.
public struct SlicerToxic: Toxic {
    public static let type = "slicer"
    public static let summary = "Slice data into average_size ± size_variation byte pieces, delay µs apart"
    public static let attributeHelp = [
        "average_size": "average piece size in bytes; 0 with no variation cuts 1-byte pieces",
        "size_variation": "random variation of piece sizes in bytes",
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
        // Toxiproxy takes an `average_size` of 0 (its default) and a variation at or above the
        // average (its clients' own tests send `average_size: 1000, size_variation: 1000`), and
        // crashes on both once data flows; `nextPiece` cuts every piece at least a byte long and
        // keeps every cut inside the range it halves.
        try requireNonNegative(attributes.average_size, "average_size", unit: "bytes")
        try requireNonNegative(attributes.size_variation, "size_variation", unit: "bytes")
        try requireNonNegative(attributes.delay, "delay", unit: "microseconds")
    }

    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage {
        SlicerStage(attributes, random: random)
    }
}

/// Holds chunks whole and cuts the next piece only when it is sent: a piece costs nothing while
/// it waits. (Cutting a 256 KiB chunk into 1-byte pieces up front held a queue entry per byte:
/// ~60 bytes of memory per byte held.)
final class SlicerStage: ToxicStage {
    private var attributes: SlicerToxic.Attributes
    private var random: SeededRandom
    /// Chunks waiting, the first one partly sent.
    private var backlog = Backlog()
    /// What is left to cut of the first chunk: ranges of its bytes, the next piece's on top.
    private var ranges: [(start: Int, end: Int)] = []
    private var lastSent: UInt64?
    private var timer: (any ToxicTimer)?

    /// Pieces sent in one go before the loop gets a turn (and flushes them): a chunk cut into
    /// 1-byte pieces would otherwise queue a write per byte at once.
    static let piecesPerTurn = 1024

    init(_ attributes: SlicerToxic.Attributes, random: SeededRandom) {
        self.attributes = attributes
        self.random = random
    }

    /// The size of the next piece of a chunk being cut by Toxiproxy's rule: halve around the
    /// midpoint ± variation until every piece is within `average_size + size_variation`; pieces
    /// come out in order. A range only splits when it is longer than `average + variation`, so
    /// with a variation below the average the cut always falls strictly inside it; a larger
    /// variation could throw it outside (Toxiproxy then slices out of bounds and panics), so the
    /// cut is kept inside; and a single byte is never split (with an average of 0 and no
    /// variation Toxiproxy splits it forever): every piece is at least a byte and every split
    /// makes progress.
    private func nextPiece() -> Int? {
        let average = attributes.average_size
        let variation = attributes.size_variation
        while let (start, end) = ranges.popLast() {
            if (end - start) - average <= variation || end - start <= 1 { return end - start }
            var middle = start + (end - start) / 2
            if variation > 0 {
                middle += Int(random.next() % UInt64(variation * 2)) - variation
                middle = min(max(middle, start + 1), end - 1)
            }
            ranges.append((middle, end))
            ranges.append((start, middle))
        }
        return nil
    }

    func receive(_ chunk: ToxicChunk, link: any ToxicLink) {
        backlog.append(chunk, link: link)
        pump(link)
    }

    private func pump(_ link: any ToxicLink) {
        guard timer == nil else { return }
        let spacing = Nanoseconds.microseconds(attributes.delay)
        var sent = 0
        while let first = backlog.first {
            if ranges.isEmpty { ranges = [(0, first.chunk.count)] }
            let now = link.now
            if let lastSent, spacing > 0, lastSent + spacing > now {
                wake(at: lastSent + spacing, link)
                return
            }
            if sent == Self.piecesPerTurn {
                wake(at: now, link)
                return
            }
            guard let size = nextPiece() else { continue }
            lastSent = now
            sent += 1
            // The last range of a chunk takes what is left of it, so `ranges` empties with it.
            backlog.forwardPrefix(size, link)
        }
        backlog.forwardEndIfDrained(link)
    }

    private func wake(at deadline: UInt64, _ link: any ToxicLink) {
        timer = link.schedule(at: deadline) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.pump(link)
        }
    }

    func endOfStream(link: any ToxicLink) { backlog.endOfStream(link) }

    func stop(link: any ToxicLink) {
        timer?.cancel()
        timer = nil
        ranges = []
        backlog.forwardAll(link)
    }

    func update(_ attributes: any Sendable, link: any ToxicLink) {
        if let attributes = attributes as? SlicerToxic.Attributes { self.attributes = attributes }
    }
}
