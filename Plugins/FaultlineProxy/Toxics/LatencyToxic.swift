import FaultlineKit

/// `latency`: delays every chunk by `latency ± jitter` milliseconds, measured from when the proxy
/// read it (or from when an earlier latency toxic released it), in order (a chunk never overtakes
/// an earlier one).
public struct LatencyToxic: Toxic {
    public static let type = "latency"
    public static let summary = "Delay data by latency ± jitter milliseconds"
    public static let attributeHelp = [
        "latency": "delay in milliseconds, counted from when the proxy read the bytes",
        "jitter": "uniform random variation in milliseconds, ± around latency",
    ]

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["latency": .milliseconds, "jitter": .milliseconds]
        public var latency: Int
        public var jitter: Int

        public init(latency: Int = 0, jitter: Int = 0) {
            self.latency = latency
            self.jitter = jitter
        }

        enum CodingKeys: String, CodingKey { case latency, jitter }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            latency = try c.attribute(.latency)
            jitter = try c.attribute(.jitter)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        try requireNonNegative(attributes.latency, "latency", unit: "milliseconds")
        try requireNonNegative(attributes.jitter, "jitter", unit: "milliseconds")
    }

    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage {
        LatencyStage(attributes, random: random)
    }
}

final class LatencyStage: ToxicStage {
    private var attributes: LatencyToxic.Attributes
    private var random: SeededRandom
    private var backlog = Backlog()
    private var lastDue: UInt64 = 0
    private var timer: (any ToxicTimer)?

    init(_ attributes: LatencyToxic.Attributes, random: SeededRandom) {
        self.attributes = attributes
        self.random = random
    }

    private func delay() -> UInt64 {
        var delay = Int64(attributes.latency) * 1_000_000
        if attributes.jitter > 0 {
            let span = Int64(attributes.jitter) * 2_000_000
            delay += Int64(random.next() % UInt64(span)) - Int64(attributes.jitter) * 1_000_000
        }
        return UInt64(max(0, delay))
    }

    func receive(_ chunk: ToxicChunk, link: any ToxicLink) {
        let due = max(chunk.receivedAt &+ delay(), lastDue)
        lastDue = due
        // A later latency toxic counts from when this one releases the chunk, so latencies in a
        // chain add up (Toxiproxy moves the chunk's timestamp the same way).
        var chunk = chunk
        chunk.receivedAt = due
        if backlog.isEmpty && due <= link.now {
            link.forward(chunk)
            return
        }
        backlog.append(chunk, due: due, link: link)
        arm(link)
    }

    private func arm(_ link: any ToxicLink) {
        guard timer == nil, let head = backlog.first else { return }
        timer = link.schedule(at: head.due) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.release(link)
        }
    }

    private func release(_ link: any ToxicLink) {
        let now = link.now
        while let head = backlog.first, head.due <= now { backlog.forwardFirst(link) }
        backlog.forwardEndIfDrained(link)
        arm(link)
    }

    func endOfStream(link: any ToxicLink) { backlog.endOfStream(link) }

    func stop(link: any ToxicLink) {
        timer?.cancel()
        timer = nil
        backlog.forwardAll(link)
    }

    func update(_ attributes: any Sendable, link: any ToxicLink) {
        if let attributes = attributes as? LatencyToxic.Attributes { self.attributes = attributes }
    }
}
