import FaultlineKit

/// `reset_peer`: when the first data (or the end of stream) arrives, waits `timeout` ms and
/// resets the connection: both sockets close with RST (SO_LINGER 0), and what was held is dropped.
/// Only connections where the toxic fires are touched; toxicity 0 resets nothing.
public struct ResetPeerToxic: Toxic {
    public static let type = "reset_peer"
    public static let summary = "Reset the connection (TCP RST) timeout milliseconds after data arrives"
    public static let attributeHelp = ["timeout": "milliseconds between the first data and the reset; 0 resets at once"]

    public typealias Attributes = TimeoutAttributes

    public static func validate(_ attributes: Attributes) throws {
        try requireNonNegative(attributes.timeout, "timeout", unit: "milliseconds")
    }

    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage {
        ResetPeerStage(timeout: attributes.timeout)
    }
}

final class ResetPeerStage: ToxicStage {
    private var timeout: Int
    private var triggeredAt: UInt64?
    private var timer: (any ToxicTimer)?
    /// What arrived while the reset was pending, delivered if the toxic is removed first.
    private var backlog = Backlog()

    init(timeout: Int) { self.timeout = timeout }

    private func trigger(_ link: any ToxicLink) {
        guard triggeredAt == nil else { return }
        let now = link.now
        triggeredAt = now
        arm(at: now + Nanoseconds.milliseconds(timeout), link)
    }

    private func arm(at deadline: UInt64, _ link: any ToxicLink) {
        timer?.cancel()
        timer = nil
        if deadline <= link.now {
            link.resetConnection()
            return
        }
        timer = link.schedule(at: deadline) { [weak self] in
            self?.timer = nil
            link.resetConnection()
        }
    }

    func receive(_ chunk: ToxicChunk, link: any ToxicLink) {
        backlog.append(chunk, link: link)
        trigger(link)
    }

    func endOfStream(link: any ToxicLink) {
        backlog.holdEnd()
        trigger(link)
    }

    func stop(link: any ToxicLink) {
        timer?.cancel()
        timer = nil
        backlog.forwardAll(link)
    }

    func update(_ attributes: any Sendable, link: any ToxicLink) {
        guard let attributes = attributes as? ResetPeerToxic.Attributes else { return }
        timeout = attributes.timeout
        if let triggeredAt, timer != nil { arm(at: triggeredAt + Nanoseconds.milliseconds(timeout), link) }
    }
}
