import FaultlineKit

/// `timeout`: drops every byte from the moment it applies, and closes the connection after
/// `timeout` ms (0: never — the connection stays open and silent).
public struct TimeoutToxic: Toxic {
    public static let type = "timeout"
    public static let summary = "Stop all data, and close the connection after timeout milliseconds (0 = never)"
    public static let attributeHelp = ["timeout": "milliseconds until the connection is closed; 0 holds it open forever"]

    public typealias Attributes = TimeoutAttributes

    public static func validate(_ attributes: Attributes) throws {
        try requireNonNegative(attributes.timeout, "timeout", unit: "milliseconds; 0 = forever")
    }

    public static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage {
        TimeoutStage(timeout: attributes.timeout)
    }
}

/// `{timeout}` in milliseconds, the attributes of `timeout` and `reset_peer`.
public struct TimeoutAttributes: Codable, Sendable, Equatable, NumberRanges {
    public static let numberRanges: [String: NumberRange] = ["timeout": .milliseconds]
    public var timeout: Int

    public init(timeout: Int = 0) { self.timeout = timeout }

    enum CodingKeys: String, CodingKey { case timeout }

    public init(from decoder: any Decoder) throws {
        timeout = try decoder.container(keyedBy: CodingKeys.self).attribute(.timeout)
    }
}

/// Unlike Toxiproxy, removing the toxic closes only connections where it dropped bytes (their
/// stream is corrupt); a connection it never touched, or one that sent nothing meanwhile, goes on.
final class TimeoutStage: ToxicStage {
    private var timeout: Int
    private var timer: (any ToxicTimer)?
    private var dropped = false

    init(timeout: Int) { self.timeout = timeout }

    func start(link: any ToxicLink) { arm(link) }

    private func arm(_ link: any ToxicLink) {
        timer?.cancel()
        timer = nil
        guard timeout > 0 else { return }
        timer = link.schedule(at: link.now + Nanoseconds.milliseconds(timeout)) { [weak self] in
            self?.timer = nil
            link.closeConnection()
        }
    }

    func receive(_ chunk: ToxicChunk, link: any ToxicLink) {
        if chunk.count > 0 { dropped = true }
    }

    func stop(link: any ToxicLink) {
        timer?.cancel()
        timer = nil
        if dropped { link.closeConnection() }
    }

    func update(_ attributes: any Sendable, link: any ToxicLink) {
        guard let attributes = attributes as? TimeoutToxic.Attributes else { return }
        timeout = attributes.timeout
        arm(link)
    }
}
