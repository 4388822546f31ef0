import FaultlineKit

/// `bandwidth`: limits a direction of each connection to `rate` KB/s (1 KB = 1000 bytes), paced
/// against the monotonic clock so that the delivered rate stays on target at any speed.
///
/// A rate of 0 is taken, as Toxiproxy takes it (its default when no rate is given): nothing
/// passes while the toxic is in force, and what it held goes on when it is removed or given a
/// rate. (Toxiproxy spins on it, sending empty pieces every 100 ms.)
public struct BandwidthToxic: Toxic {
    public static let type = "bandwidth"
    public static let summary = "Limit throughput to rate KB/s per connection and direction"
    public static let attributeHelp = ["rate": "kilobytes per second (1 KB = 1000 bytes); 0 lets nothing through until removed"]

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        /// Up to 1 TB/s: the rate in bytes per second, times the nanoseconds in a second, stays in UInt64.
        public static let numberRanges: [String: NumberRange] = ["rate": NumberRange(0...1_000_000_000, unit: "KB/s", integer: true)]
        public var rate: Int

        public init(rate: Int = 0) { self.rate = rate }

        enum CodingKeys: String, CodingKey { case rate }

        public init(from decoder: any Decoder) throws {
            rate = try decoder.container(keyedBy: CodingKeys.self).attribute(.rate)
        }
    }

    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage {
        BandwidthStage(rate: attributes.rate)
    }
}

/// Releases each piece of data when the link has "earned" it at the configured rate. The pacing
/// clock carries over from piece to piece (it does not restart after each sleep), so timer
/// lateness and proxy overhead do not accumulate into a lower rate.
final class BandwidthStage: ToxicStage {
    /// Credit allowed after an idle period: a stream that paused may not burst more than this.
    static let idleCredit: UInt64 = 10_000_000
    private var bytesPerSecond: UInt64
    private var backlog = Backlog()
    /// The virtual time at which the bytes released so far were fully "transmitted".
    private var paidUntil: UInt64 = 0
    private var timer: (any ToxicTimer)?
    /// When the head piece is due, once computed (so a timer firing does not recompute it).
    private var pendingDue: UInt64?
    private var wantsInput = true

    /// 0: hold everything (see ``BandwidthToxic``).
    init(rate: Int) { bytesPerSecond = UInt64(max(0, rate)) * 1000 }

    /// At most 10 ms of data per release, so slow rates trickle smoothly.
    private var pieceLimit: Int { Int(max(1, bytesPerSecond / 100)) }
    /// Hold about 100 ms of data (at least 64 KiB) before asking the source to pause.
    private var backlogLimit: Int { Int(max(65_536, bytesPerSecond / 10)) }

    func receive(_ chunk: ToxicChunk, link: any ToxicLink) {
        if backlog.isEmpty {
            // The first bytes start the clock. After an idle spell it restarts from now, less a
            // little credit (so a sender that briefly fell behind catches up); while data is queued
            // it never restarts, so late timers do not lower the rate.
            let now = link.now
            paidUntil = paidUntil == 0 ? now : max(paidUntil, now > Self.idleCredit ? now - Self.idleCredit : 0)
        }
        backlog.append(chunk, link: link)
        pump(link)
    }

    private func pump(_ link: any ToxicLink) {
        guard timer == nil else { return }
        var now = link.now
        while bytesPerSecond > 0, let head = backlog.first {
            let size = min(head.chunk.count, pieceLimit)
            let due = pendingDue ?? paidUntil + UInt64(size) * 1_000_000_000 / bytesPerSecond
            if due > now {
                pendingDue = due
                timer = link.schedule(at: due) { [weak self] in
                    guard let self else { return }
                    self.timer = nil
                    self.pump(link)
                }
                break
            }
            pendingDue = nil
            paidUntil = due
            backlog.forwardPrefix(size, link)
            now = link.now
        }
        let wants = backlog.bytes < backlogLimit
        if wants != wantsInput {
            wantsInput = wants
            link.setWantsInput(wants)
        }
        backlog.forwardEndIfDrained(link)
    }

    func endOfStream(link: any ToxicLink) { backlog.endOfStream(link) }

    func stop(link: any ToxicLink) {
        timer?.cancel()
        timer = nil
        backlog.forwardAll(link)
        if !wantsInput {
            wantsInput = true
            link.setWantsInput(true)
        }
    }

    func update(_ attributes: any Sendable, link: any ToxicLink) {
        guard let attributes = attributes as? BandwidthToxic.Attributes else { return }
        // Data held at rate 0 is paced from now, not from when it came.
        if bytesPerSecond == 0 { paidUntil = max(paidUntil, link.now) }
        bytesPerSecond = UInt64(max(0, attributes.rate)) * 1000
        timer?.cancel()
        timer = nil
        pendingDue = nil
        pump(link)
    }
}
