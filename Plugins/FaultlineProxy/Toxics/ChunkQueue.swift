import FaultlineKit

/// A FIFO of chunks with a running byte count: what a delaying stage holds.
struct ChunkQueue<Element> {
    private var storage: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }
    var first: Element? { isEmpty ? nil : storage[head] }

    mutating func append(_ element: Element) { storage.append(element) }

    /// Replaces the first element (after splitting it).
    mutating func replaceFirst(_ element: Element) { storage[head] = element }

    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.count <= 1024)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }
}

/// What a delaying stage holds: chunks in arrival order (each with the time it is due, for stages
/// that need one), their byte count reported to the link, and an end of stream waiting behind them.
struct Backlog {
    struct Entry {
        var chunk: ToxicChunk
        var due: UInt64 = 0
    }

    private var queue = ChunkQueue<Entry>()
    private(set) var bytes = 0
    private var pendingEnd = false

    var isEmpty: Bool { queue.isEmpty }
    var first: Entry? { queue.first }

    mutating func append(_ chunk: ToxicChunk, due: UInt64 = 0, link: any ToxicLink) {
        queue.append(Entry(chunk: chunk, due: due))
        bytes += chunk.count
        link.setHeldBytes(bytes)
    }

    /// Forwards the first chunk.
    mutating func forwardFirst(_ link: any ToxicLink) {
        guard let entry = queue.popFirst() else { return }
        bytes -= entry.chunk.count
        link.setHeldBytes(bytes)
        link.forward(entry.chunk)
    }

    /// Forwards the first `count` bytes of the first chunk, keeping the rest first.
    mutating func forwardPrefix(_ count: Int, _ link: any ToxicLink) {
        guard var entry = queue.first else { return }
        if count >= entry.chunk.count { return forwardFirst(link) }
        let (head, tail) = entry.chunk.split(at: count)
        entry.chunk = tail
        queue.replaceFirst(entry)
        bytes -= count
        link.setHeldBytes(bytes)
        link.forward(head)
    }

    /// The end of stream arrived: passed on now if nothing is held, else after the last chunk.
    mutating func endOfStream(_ link: any ToxicLink) {
        if queue.isEmpty { link.forwardEndOfStream() } else { pendingEnd = true }
    }

    /// Keeps the end of stream until ``forwardAll(_:)`` (a reset is coming instead).
    mutating func holdEnd() { pendingEnd = true }

    /// Passes on a waiting end of stream once everything has been forwarded.
    mutating func forwardEndIfDrained(_ link: any ToxicLink) {
        guard queue.isEmpty, pendingEnd else { return }
        pendingEnd = false
        link.forwardEndOfStream()
    }

    /// Forwards everything at once (the toxic was removed), then a waiting end of stream.
    mutating func forwardAll(_ link: any ToxicLink) {
        while !queue.isEmpty { forwardFirst(link) }
        forwardEndIfDrained(link)
    }
}

/// Milliseconds and microseconds as monotonic nanoseconds, clamped at zero.
enum Nanoseconds {
    static func milliseconds(_ ms: Int) -> UInt64 { UInt64(max(0, ms)) &* 1_000_000 }
    static func microseconds(_ us: Int) -> UInt64 { UInt64(max(0, us)) &* 1_000 }
}

/// Rejects a negative attribute, naming its unit.
func requireNonNegative(_ value: Int, _ key: String, unit: String) throws {
    if value < 0 { throw ArgumentError(key, "\(key) must not be negative (\(unit))") }
}

extension KeyedDecodingContainer {
    /// A Toxiproxy attribute: absent means 0.
    func attribute(_ key: Key) throws -> Int { try decodeIfPresent(Int.self, forKey: key) ?? 0 }
}
