/// Which way a toxic acts on a proxied connection, in Toxiproxy's terms.
public enum ToxicStream: String, Sendable, Codable, CaseIterable {
    /// Client → server bytes.
    case upstream
    /// Server → client bytes (Toxiproxy's default).
    case downstream
}

/// A network fault applied to one direction of the byte stream of proxied connections.
///
/// A toxic has a type name (`latency`, `bandwidth`, …), typed ``Attributes`` with Toxiproxy's
/// names and units, a ``ToxicStream`` and a toxicity (the probability, 0...1, that it applies to a
/// given connection). The Toxiproxy driver only needs the type and attributes; the in-process
/// proxy also runs the toxic through ``makeStage(_:random:)``. Plugins register new toxic types
/// the same way the built-ins do.
///
/// ## Implementation requirements
/// - `Attributes` decodes every attribute with a default when absent (as Toxiproxy does) and
///   encodes all of them, so the API can echo the full attribute set.
/// - ``validate(_:)`` rejects values that would hang or crash the stream (a zero rate, a zero
///   slice size): throw ``ArgumentError`` naming the attribute.
/// - A stage never blocks its thread: it schedules timers through its link. It must pass every
///   byte it has accepted on when it is stopped, unless its semantics drop or cut them.
public protocol Toxic: Sendable {
    associatedtype Attributes: Codable & Sendable

    /// The toxic type name, e.g. `latency`.
    static var type: String { get }
    /// One line for `faultline plugins`.
    static var summary: String { get }
    /// Help for attributes, by name.
    static var attributeHelp: [String: String] { get }

    /// Rejects attribute values the toxic cannot honour.
    static func validate(_ attributes: Attributes) throws

    /// Creates the state machine that runs this toxic on one connection in one direction.
    /// - Parameters:
    ///   - attributes: the toxic's current attributes.
    ///   - random: a generator seeded for this connection and toxic (jitter, slice sizes).
    static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage
}

extension Toxic {
    public static var attributeHelp: [String: String] { [:] }
    public static func validate(_ attributes: Attributes) throws {}
}
