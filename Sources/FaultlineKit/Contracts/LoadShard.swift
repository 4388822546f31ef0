import Foundation

/// The part of every load a run sends when several runners share it (`faultline run --shard I/N`):
/// shard `index` (from 0, as Kubernetes numbers an Indexed Job's pods) of `count`.
///
/// The share is dealt by number, so it is deterministic and the shards together are exactly the
/// unsharded load: user *n* (closed model) and arrival *k* (open model, stages included) belong
/// to the shard `n mod count` (`k mod count`), at the time the unsharded schedule gives them. A
/// shard therefore runs ``share(of:)`` of the users: `total / count`, one more for the first
/// `total mod count` shards.
public struct LoadShard: Sendable, Hashable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    /// The most shards a load may be split into.
    public static let maxCount = 10_000

    /// A problem with a shard as given, in one line with the fix.
    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Shard `index` of `count`.
    /// - Throws: ``Invalid`` when `count` is not 1…10000 or `index` is not 0…count − 1.
    public init(index: Int, count: Int) throws(Invalid) {
        guard (1...Self.maxCount).contains(count) else {
            throw Invalid(description: "the number of shards is 1 to \(Self.maxCount), found \(count)")
        }
        guard (0..<count).contains(index) else {
            throw Invalid(
                description: "shard \(index) of \(count) does not exist: shards are numbered from 0 to \(count - 1)"
                    + (index == count ? " (the first shard is 0, as Kubernetes' JOB_COMPLETION_INDEX)" : ""))
        }
        self.index = index
        self.count = count
    }

    /// Reads `I/N`, e.g. `0/3`.
    /// - Throws: ``Invalid`` naming what to write.
    public init(parsing text: String) throws(Invalid) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0].trimmingCharacters(in: .whitespaces)),
            let count = Int(parts[1].trimmingCharacters(in: .whitespaces))
        else {
            throw Invalid(description: "\"\(text)\" is not a shard: write I/N, shard I (from 0) of N, e.g. 0/3")
        }
        try self.init(index: index, count: count)
    }

    /// `I/N`.
    public var description: String { "\(index)/\(count)" }

    /// How many of `total` numbered items (users, arrivals, connections) are this shard's.
    public func share(of total: Int) -> Int {
        guard total > 0 else { return 0 }
        return total / count + (index < total % count ? 1 : 0)
    }

    /// Whether item `number` (from 0) is this shard's.
    public func owns(_ number: Int) -> Bool { number % count == index }
}
