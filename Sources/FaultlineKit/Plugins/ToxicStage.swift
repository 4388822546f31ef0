/// A toxic running on one link: the bytes of one proxied connection flowing one way.
///
/// The in-process proxy drives a chain of stages per link, in the order the toxics were added.
/// A stage is confined to its connection's thread: every call arrives on one thread, one at a
/// time, so it needs no locking, and it must never block that thread (no sleeps, no waits) —
/// delays are timers scheduled through ``ToxicLink/schedule(at:_:)``.
///
/// Events, in order: ``start(link:)`` once (when the connection opens, or when the toxic is added
/// to a live connection), then any number of ``receive(_:link:)`` and ``update(_:link:)``, then at
/// most one ``endOfStream(link:)``; ``stop(link:)`` when the toxic is removed from a live
/// connection (or stops applying to it). When the connection closes, the proxy drops the stage
/// and cancels its timers without calling it.
///
/// ## Implementation requirements
/// - **Order.** Forward bytes in the order received; a stage that delays must delay FIFO.
/// - **Nothing lost on removal.** ``stop(link:)`` forwards everything held at once (without its
///   remaining delay), cancels its timers and forwards a pending end of stream — unless the
///   toxic's semantics dropped bytes, in which case it closes the connection rather than deliver
///   a corrupted stream.
/// - **Bounded holding.** Report what is held with ``ToxicLink/setHeldBytes(_:)``; the proxy stops
///   reading the source while a link holds too much. A stage that paces (bandwidth) pauses input
///   with ``ToxicLink/setWantsInput(_:)`` once it holds enough to stay busy.
public protocol ToxicStage: AnyObject {
    /// The toxic starts on this link.
    func start(link: any ToxicLink)
    /// Bytes arrive from the previous stage (or the socket).
    func receive(_ chunk: ToxicChunk, link: any ToxicLink)
    /// The source of this direction finished (EOF). Forward it with ``ToxicLink/forwardEndOfStream()``
    /// when the toxic's semantics allow (slow_close delays it).
    func endOfStream(link: any ToxicLink)
    /// The toxic is removed: forward everything held at once, cancel timers, forward a pending
    /// end of stream. After this call the stage receives nothing more.
    func stop(link: any ToxicLink)
    /// The toxic's attributes changed on a live connection; keep per-connection state (e.g. bytes
    /// counted so far). The value is the toxic's `Attributes` type, validated.
    func update(_ attributes: any Sendable, link: any ToxicLink)
}

extension ToxicStage {
    public func start(link: any ToxicLink) {}
    public func endOfStream(link: any ToxicLink) { link.forwardEndOfStream() }
}

/// What a stage can do with its link. Implemented by the in-process proxy; every call must be
/// made on the link's thread (from inside a stage callback or a timer body).
public protocol ToxicLink: AnyObject {
    /// Monotonic time in nanoseconds.
    var now: UInt64 { get }
    /// Passes bytes to the next stage (or the destination socket).
    func forward(_ chunk: ToxicChunk)
    /// Passes the end of stream on; at the end of the chain it half-closes the destination
    /// (shutdown of its write side), so the other direction keeps flowing.
    func forwardEndOfStream()
    /// Runs `body` on the link's thread at monotonic time `deadline` (ns), with the OS timer's
    /// resolution (microseconds on Linux). The handle cancels it; the proxy cancels every timer of
    /// a stage that is dropped.
    @discardableResult
    func schedule(at deadline: UInt64, _ body: @escaping () -> Void) -> any ToxicTimer
    /// Closes the whole connection (both directions) with FIN, after what was already forwarded.
    func closeConnection()
    /// Closes the whole connection with RST (SO_LINGER 0) on both sockets, discarding unsent data.
    func resetConnection()
    /// How many bytes this stage holds now.
    func setHeldBytes(_ count: Int)
    /// Whether this stage wants more input now; the proxy stops reading the source while any
    /// stage of the link says no (default yes).
    func setWantsInput(_ wants: Bool)
}

/// A scheduled timer's handle.
public protocol ToxicTimer: AnyObject {
    /// Cancels the timer if it has not fired; does nothing otherwise.
    func cancel()
}

/// The storage of a run of bytes. The proxy uses its socket buffers without copying; tests and
/// custom toxics that rewrite bytes use `[UInt8]`.
public protocol ToxicPayload: Sendable {
    /// The number of bytes.
    var count: Int { get }
    /// The first `index` bytes and the rest, sharing storage where the type can.
    func split(at index: Int) -> (any ToxicPayload, any ToxicPayload)
    /// A copy of the bytes.
    var bytes: [UInt8] { get }
}

extension Array: ToxicPayload where Element == UInt8 {
    public func split(at index: Int) -> (any ToxicPayload, any ToxicPayload) {
        (Array(self[..<index]), Array(self[index...]))
    }

    public var bytes: [UInt8] { self }
}

/// A run of bytes flowing through toxics, stamped with when the proxy read it. Toxics measure and
/// split chunks; they do not need to look at or copy the bytes.
public struct ToxicChunk: Sendable {
    public var payload: any ToxicPayload
    /// Monotonic time (ns) at which the proxy read the chunk from its socket; a stage that delays
    /// chunks (latency) sets it to when it releases them, so delays later in the chain add up.
    public var receivedAt: UInt64

    public init(payload: any ToxicPayload, receivedAt: UInt64) {
        self.payload = payload
        self.receivedAt = receivedAt
    }

    public init(bytes: [UInt8], receivedAt: UInt64) {
        self.init(payload: bytes, receivedAt: receivedAt)
    }

    public var count: Int { payload.count }

    /// Splits the chunk into its first `index` bytes and the rest; both keep the read time.
    public func split(at index: Int) -> (ToxicChunk, ToxicChunk) {
        precondition(index >= 0 && index <= count, "split point out of range")
        let (head, tail) = payload.split(at: index)
        return (ToxicChunk(payload: head, receivedAt: receivedAt), ToxicChunk(payload: tail, receivedAt: receivedAt))
    }
}
