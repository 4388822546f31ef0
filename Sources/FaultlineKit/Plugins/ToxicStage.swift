/// A toxic running on one link: the bytes of one proxied connection flowing one way.
///
/// The in-process proxy drives a chain of stages per link. A stage is confined to the link's
/// event loop: all calls arrive on one thread, one at a time, so it needs no locking.
///
/// Events, in order: ``start(_:)`` once (when the connection opens, or when the toxic is added
/// to a live connection), then any number of ``receive(_:link:)``, then at most one
/// ``endOfStream(link:)``; ``stop(link:)`` when the toxic is removed from a live connection.
public protocol ToxicStage: AnyObject {
    /// The toxic starts on this link.
    func start(_ link: any ToxicLink)
    /// Bytes arrive from the previous stage (or the socket).
    func receive(_ chunk: ToxicChunk, link: any ToxicLink)
    /// The source of this direction finished (EOF). Forward it with ``ToxicLink/forwardEndOfStream()``
    /// when the toxic's semantics allow (slow_close delays it).
    func endOfStream(link: any ToxicLink)
    /// The toxic is removed: forward everything held at once, cancel timers, forward a pending
    /// end of stream. After this call the stage receives nothing more.
    func stop(link: any ToxicLink)
    /// The toxic's attributes changed on a live connection; keep per-connection state
    /// (e.g. bytes counted so far). The value is the toxic's `Attributes` type.
    func update(_ attributes: any Sendable, link: any ToxicLink)
}

/// What a stage can do with its link. Implemented by the in-process proxy.
public protocol ToxicLink: AnyObject {
    /// Monotonic time in nanoseconds.
    var now: UInt64 { get }
    /// Passes bytes to the next stage (or the destination socket).
    func forward(_ chunk: ToxicChunk)
    /// Passes the end of stream on (half-closes the destination's write side at the end).
    func forwardEndOfStream()
    /// Runs `body` on the link's thread at monotonic time `deadline` (ns); the handle cancels it.
    @discardableResult
    func schedule(at deadline: UInt64, _ body: @escaping () -> Void) -> ToxicTimer
    /// Closes the whole connection (both directions) with FIN.
    func closeConnection()
    /// Closes the whole connection with RST (SO_LINGER 0), discarding unsent data.
    func resetConnection()
    /// How many bytes the stage holds; the proxy stops reading when stages hold too much.
    func setHeldBytes(_ count: Int)
}

/// A scheduled timer's handle.
public protocol ToxicTimer: AnyObject {
    func cancel()
}

/// An opaque run of bytes flowing through toxics. Toxics measure and split chunks; they do not
/// need to copy the bytes. The proxy provides the storage.
public struct ToxicChunk: @unchecked Sendable {
    /// The proxy's storage, opaque to toxics.
    public var storage: AnyObject?
    /// Raw bytes, when the chunk was made from an array (tests and custom toxics).
    public var bytes: [UInt8]
    public var count: Int
    /// Monotonic time (ns) at which the proxy read the chunk from its socket.
    public var receivedAt: UInt64
    /// The proxy's splitter for its own storage.
    public var splitter: (@Sendable (ToxicChunk, Int) -> (ToxicChunk, ToxicChunk))?

    public init(bytes: [UInt8], receivedAt: UInt64) {
        self.bytes = bytes
        self.count = bytes.count
        self.receivedAt = receivedAt
    }

    public init(storage: AnyObject, count: Int, receivedAt: UInt64, splitter: @escaping @Sendable (ToxicChunk, Int) -> (ToxicChunk, ToxicChunk)) {
        self.storage = storage
        self.bytes = []
        self.count = count
        self.receivedAt = receivedAt
        self.splitter = splitter
    }

    /// Splits the chunk into its first `count` bytes and the rest.
    public func split(at count: Int) -> (ToxicChunk, ToxicChunk) {
        precondition(count >= 0 && count <= self.count, "split point out of range")
        if let splitter { return splitter(self, count) }
        var head = ToxicChunk(bytes: Array(bytes[..<count]), receivedAt: receivedAt)
        var tail = ToxicChunk(bytes: Array(bytes[count...]), receivedAt: receivedAt)
        head.receivedAt = receivedAt
        tail.receivedAt = receivedAt
        return (head, tail)
    }
}
