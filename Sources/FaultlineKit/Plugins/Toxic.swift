/// Which way a toxic acts on a proxied connection, in Toxiproxy's terms.
public enum ToxicStream: String, Sendable, Codable, CaseIterable {
    /// Client → server bytes.
    case upstream
    /// Server → client bytes (Toxiproxy's default).
    case downstream

    /// Parses a stream name as Toxiproxy does: case-insensitively.
    public init?(parsing text: String) {
        self.init(rawValue: text.lowercased())
    }
}

/// A network fault applied to one direction of the byte stream of proxied connections.
///
/// A toxic has a type name (`latency`, `bandwidth`, …), typed ``Attributes`` with Toxiproxy's
/// names and units, a ``ToxicStream`` and a toxicity (the probability, 0...1, that it applies to a
/// given connection). The Toxiproxy driver only needs the type and attributes; the in-process
/// proxy also runs the toxic through ``makeStage(_:random:)``. The built-in toxics register
/// through this same protocol (`registry.register(toxic:)`), so a plugin's toxic is a peer of them.
///
/// ## Implementation requirements
/// - `Attributes` decodes every attribute with a default when absent (as Toxiproxy does: a
///   missing number is 0) and encodes all of them, so the API can echo the full attribute set.
/// - `Attributes` conforms to ``NumberRanges``, giving every attribute its range (`.milliseconds`,
///   `.bytes`): the registry rejects values outside it in experiments and in the admin API (400).
/// - ``validate(_:)`` rejects values that would hang or crash the stream (a zero rate, a zero
///   slice size): throw ``ArgumentError`` naming the attribute. The registry validates when an
///   experiment loads and when the admin API receives a toxic, so a stage may trust its attributes.
/// - The stage ``makeStage(_:random:)`` returns follows ``ToxicStage``'s requirements: it never
///   blocks, it schedules timers through its link, and it bounds or reports what it holds.
public protocol Toxic: Sendable {
    associatedtype Attributes: Codable & Sendable

    /// The toxic type name, e.g. `latency`.
    static var type: String { get }
    /// One line for `faultline plugins`.
    static var summary: String { get }
    /// Help for attributes, by name (with units).
    static var attributeHelp: [String: String] { get }

    /// The directions the toxic can act on (both by default). An HTTP toxic that changes only
    /// responses (`http_bandwidth`) lists `downstream`: on the other stream it would do nothing, so
    /// adding it there is refused at load time and by the admin API.
    static var streams: [ToxicStream] { get }

    /// Rejects attribute values the toxic cannot honour.
    static func validate(_ attributes: Attributes) throws

    /// Creates the state machine that runs this toxic on one connection in one direction.
    /// Called on the connection's thread, once per connection where the toxicity roll fires.
    /// - Parameters:
    ///   - attributes: the toxic's current attributes, validated.
    ///   - random: a generator seeded for this run, proxy, toxic and connection (jitter, slice
    ///     sizes), so `--seed` replays the same choices.
    static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage
}

extension Toxic {
    public static var attributeHelp: [String: String] { [:] }
    public static var streams: [ToxicStream] { [.upstream, .downstream] }
    public static func validate(_ attributes: Attributes) throws {}
}
