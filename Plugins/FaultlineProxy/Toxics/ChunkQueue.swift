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

    mutating func removeAll() -> [Element] {
        let rest = Array(storage[head...])
        storage.removeAll()
        head = 0
        return rest
    }
}

/// Milliseconds and microseconds as monotonic nanoseconds, clamped at zero.
enum Nanoseconds {
    static func milliseconds(_ ms: Int) -> UInt64 { UInt64(max(0, ms)) &* 1_000_000 }
    static func microseconds(_ us: Int) -> UInt64 { UInt64(max(0, us)) &* 1_000 }
}

extension KeyedDecodingContainer {
    /// A Toxiproxy attribute: absent means 0.
    func attribute(_ key: Key) throws -> Int { try decodeIfPresent(Int.self, forKey: key) ?? 0 }
}
