import FaultlineKit
import Logging
import NIOCore
import Synchronization

/// A toxic as a proxy runs it: its definition and its attributes decoded once.
struct ActiveToxic: Sendable {
    var definition: ToxicDefinition
    var prepared: PreparedToxic
    /// For an HTTP toxic: what it did across the proxy's connections (kept across updates).
    let httpCounters: HTTPToxicCounters?

    /// The `clients` condition, parsed; nil applies the toxic to every client.
    let clients: [ClientNetwork]?
    /// The proxy's failed TLS handshakes (client, upstream) when the toxic was added, so its
    /// fault window reports those that happened while it was in force.
    var handshakeFailuresBefore: (client: UInt64, upstream: UInt64) = (0, 0)

    init(definition: ToxicDefinition, prepared: PreparedToxic, keeping previous: ActiveToxic? = nil) throws(ProxyError) {
        self.definition = definition
        self.prepared = prepared
        httpCounters = prepared.http == nil ? nil : previous?.httpCounters ?? HTTPToxicCounters()
        handshakeFailuresBefore = previous?.handshakeFailuresBefore ?? (0, 0)
        do {
            clients = try definition.clients.map { try [ClientNetwork](parsing: $0) }
        } catch let error as ArgumentError {
            throw ProxyError(.badRequest, "invalid clients: \(error.message)")
        } catch {
            throw ProxyError(.badRequest, "invalid clients: \(error)")
        }
    }

    /// Whether the toxic applies to a client at `peer` (its address bytes; nil when unknown, as
    /// for a Unix socket: only an unconditional toxic applies).
    func applies(toClient peer: [UInt8]?) -> Bool {
        guard let clients else { return true }
        guard let peer else { return false }
        return clients.contains { $0.contains(peer) }
    }

    var isHTTP: Bool { prepared.http != nil }
}

/// A change to a proxy's toxics, applied to every live connection on its loop.
enum ToxicChange: Sendable {
    case add(ActiveToxic)
    case update(ActiveToxic)
    case remove(name: String, stream: ToxicStream)
    case removeAll
}

/// Where a proxy's connections go: an address parsed once, or a host name resolved per connection
/// (as Toxiproxy dials per connection).
enum UpstreamTarget: Sendable {
    case address(SocketAddress)
    case host(String, Int)
    /// Not `host:port` (`one.com`, `localhost`): Toxiproxy stores such an upstream and each
    /// connection's dial fails (`missing port in address`), and so it goes here: the proxy is
    /// created, and every client is closed at once. Its clients' tests create proxies to upstreams
    /// that are never dialled, such as `"upstream": "google.com"`.
    case unusable(String)

    /// Parses `host:port` (`[v6]:port` for IPv6 literals).
    init(_ text: String) {
        guard let address = Self.hostPort(text) else {
            self = .unusable("upstream \"\(text)\" is not host:port")
            return
        }
        if let socketAddress = try? SocketAddress(ipAddress: address.host, port: address.port) {
            self = .address(socketAddress)
        } else {
            self = .host(address.host, address.port)
        }
    }
}

extension UpstreamTarget {
    /// `text` as a host and port, or nil when it is not `host:port`. Toxiproxy stores any upstream
    /// and dials it per connection, so port 0 is taken here too (and fails when dialled).
    static func hostPort(_ text: String) -> HostPort? {
        guard let address = try? HostPort(parsing: text, role: .listen), !address.host.isEmpty else { return nil }
        return address
    }
}

extension ProxyServer {
    /// Whether `text` is an upstream a connection can be made to (`host:port`). The API takes
    /// one that is not, as Toxiproxy does; a config file may check with this first.
    public static func isUpstreamAddress(_ text: String) -> Bool { UpstreamTarget.hostPort(text) != nil }
}

extension HostPort {
    /// A bound address as Toxiproxy shows it: `127.0.0.1:8080`, `[::]:41547`.
    init(_ address: SocketAddress) {
        self.init(host: address.ipAddress ?? "?", port: address.port ?? 0)
    }
}

/// Byte counters of one direction, updated as bytes move.
final class DirectionCounters: Sendable {
    /// Bytes read from the source socket.
    let received = Atomic<UInt64>(0)
    /// Bytes written to the destination socket.
    let sent = Atomic<UInt64>(0)
}

/// Live counters of one proxy, for `/metrics`.
final class ProxyMetrics: Sendable {
    let upstream = DirectionCounters()
    let downstream = DirectionCounters()
    let accepted = Atomic<UInt64>(0)
    /// Connections closed because a TLS handshake failed, with the client or with the upstream.
    let clientHandshakeFailures = Atomic<UInt64>(0)
    let upstreamHandshakeFailures = Atomic<UInt64>(0)

    /// Both handshake failure counts now.
    var handshakeFailures: (client: UInt64, upstream: UInt64) {
        (clientHandshakeFailures.load(ordering: .relaxed), upstreamHandshakeFailures.load(ordering: .relaxed))
    }
}

/// The data-plane state of one proxy that accepting threads and the control plane share: the
/// toxic chain, the live connections and where to connect.
final class ProxyRuntime: Sendable {
    let name: String
    let seed: UInt64
    let metrics = ProxyMetrics()
    let log: Logger
    /// The TLS its connections terminate or originate; nil: plain TCP on both sides.
    let tls: ProxyTLS?

    private struct State {
        var toxics: [ActiveToxic] = []
        var connections: [UInt64: ConnectionRef] = [:]
        var nextNumber: UInt64 = 1
        var target: UpstreamTarget?
        var targetText = ""
        var accepting = false
    }
    private let state = Mutex(State())

    init(name: String, seed: UInt64, log: Logger, tls: ProxyTLS? = nil) {
        self.name = name
        self.seed = seed
        self.log = log
        self.tls = tls
    }

    struct Registration {
        var number: UInt64
        var toxics: [ActiveToxic]
        var target: UpstreamTarget
    }

    /// Registers a new connection and gives it the current toxics; nil when the proxy is not
    /// accepting (disabled or deleted while the connection was being accepted).
    func register(_ connection: ConnectionRef) -> Registration? {
        let registration = state.withLock { s -> Registration? in
            guard s.accepting, let target = s.target else { return nil }
            let number = s.nextNumber
            s.nextNumber += 1
            s.connections[number] = connection
            return Registration(number: number, toxics: s.toxics, target: target)
        }
        if registration != nil { metrics.accepted.add(1, ordering: .relaxed) }
        return registration
    }

    /// How the relay takes a connection it accepted.
    enum Admission {
        /// The proxy is down or gone: close the socket.
        case refused
        /// The proxy has toxics (or an upstream to resolve): NIO runs the connection, and
        /// registers it itself.
        case toxic
        /// Relay it to `address`; registered as `number`.
        case relay(number: UInt64, address: SocketAddress)
        /// The proxy's toxics are all HTTP toxics: relay it to `address` through an
        /// ``HTTPScreen`` of them; registered as `number`.
        case screen(number: UInt64, address: SocketAddress, toxics: [ActiveToxic])
    }

    /// Registers a connection the relay accepted when the proxy has a resolved upstream and no
    /// toxics, or only HTTP toxics; under the same lock as toxic changes, so a toxic added later
    /// reaches it.
    func admit(_ connection: ConnectionRef) -> Admission {
        let admission = state.withLock { s -> Admission in
            guard s.accepting, let target = s.target else { return .refused }
            guard case .address(let address) = target, s.toxics.isEmpty || Self.screenable(s.toxics) else { return .toxic }
            let number = s.nextNumber
            s.nextNumber += 1
            s.connections[number] = connection
            return s.toxics.isEmpty ? .relay(number: number, address: address) : .screen(number: number, address: address, toxics: s.toxics)
        }
        switch admission {
        case .relay, .screen: metrics.accepted.add(1, ordering: .relaxed)
        case .refused, .toxic: break
        }
        return admission
    }

    /// Whether the relay can screen connections for these toxics: all are HTTP toxics.
    private static func screenable(_ toxics: [ActiveToxic]) -> Bool { toxics.allSatisfy(\.isHTTP) }

    /// The toxics now, when a screened connection can stay in the relay with them; nil when it
    /// must move to NIO (a byte toxic was added).
    func screenableToxics() -> [ActiveToxic]? {
        state.withLock { s in Self.screenable(s.toxics) ? s.toxics : nil }
    }

    /// Puts NIO's side of a connection the relay handed over in the relay's place, and gives it the
    /// toxics as they are now; nil when the proxy went down meanwhile.
    func takeOver(_ number: UInt64, by connection: ConnectionRef) -> Registration? {
        state.withLock { s -> Registration? in
            guard s.accepting, s.connections[number] != nil, let target = s.target else { return nil }
            s.connections[number] = connection
            return Registration(number: number, toxics: s.toxics, target: target)
        }
    }

    func unregister(_ number: UInt64) {
        _ = state.withLock { $0.connections.removeValue(forKey: number) }
    }

    var openConnections: Int { state.withLock { $0.connections.count } }

    /// Open connections the relay runs (the rest run on NIO).
    var relayedConnections: Int {
        state.withLock { s in
            s.connections.values.count { if case .relayed = $0 { true } else { false } }
        }
    }

    var targetDescription: String { state.withLock { $0.targetText } }

    /// Points new connections at `target` and returns the live ones (still on the old target),
    /// in one step: a connection is on one side of the change or the other.
    @discardableResult
    func setTarget(_ target: UpstreamTarget, text: String) -> [ConnectionRef] {
        state.withLock {
            $0.target = target
            $0.targetText = text
            return Array($0.connections.values)
        }
    }

    /// Starts or stops admitting new connections; returns the live ones.
    @discardableResult
    func setAccepting(_ accepting: Bool) -> [ConnectionRef] {
        state.withLock {
            $0.accepting = accepting
            return Array($0.connections.values)
        }
    }

    // MARK: Toxics

    /// Upstream toxics first, then downstream, each in insertion order (as Toxiproxy lists them).
    var toxics: [ToxicDefinition] {
        state.withLock { s in
            s.toxics.filter { $0.definition.stream == .upstream }.map(\.definition)
                + s.toxics.filter { $0.definition.stream == .downstream }.map(\.definition)
        }
    }

    func toxic(named name: String) -> ActiveToxic? { state.withLock { s in s.toxics.first { $0.definition.name == name } } }

    /// Changes the toxic list and returns the change with the connections it must reach, both
    /// taken under one lock so that every connection sees every change exactly once.
    func change(_ body: (inout [ActiveToxic]) throws(ProxyError) -> ToxicChange) throws(ProxyError) -> (ToxicChange, [ConnectionRef]) {
        try state.withLock { (s: inout State) throws(ProxyError) -> (ToxicChange, [ConnectionRef]) in
            let change = try body(&s.toxics)
            return (change, Array(s.connections.values))
        }
    }

    /// Applies a change to live connections and waits until each has applied it (a relayed one
    /// moves to NIO and takes the toxics). Loops never block, so this returns promptly even under
    /// heavy traffic.
    static func broadcast(_ change: ToxicChange, to connections: [ConnectionRef]) async {
        await perform(.apply(change), on: connections)
    }

    /// Runs an operation on each connection and waits for all.
    static func perform(_ operation: ConnectionOperation, on connections: [ConnectionRef]) async {
        guard let first = connections.first else { return }
        let futures = connections.map { $0.perform(operation) }
        try? await EventLoopFuture.andAllComplete(futures, on: first.eventLoop).get()
    }
}

/// A failure of a proxy operation, with Toxiproxy's status and message.
public struct ProxyError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        case badRequest, notFound, conflict, serverError
    }

    public var kind: Kind
    /// Toxiproxy's message, e.g. `proxy not found`.
    public var message: String
    /// For a populate request that failed its checks: the entry at fault (1-based) and, when a
    /// toxic of that entry is, the toxic (1-based), so a config file's error can point at it.
    public var entry: Int?
    public var entryToxic: Int?

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The same error, naming the populate entry (and toxic) at fault.
    func at(entry: Int, toxic: Int? = nil) -> ProxyError {
        var error = self
        error.entry = entry
        error.entryToxic = toxic
        return error
    }

    /// The HTTP status the admin API answers with.
    public var status: Int {
        switch kind {
        case .badRequest: 400
        case .notFound: 404
        case .conflict: 409
        case .serverError: 500
        }
    }

    public var description: String { message }

    static let proxyNotFound = ProxyError(.notFound, "proxy not found")
    static let toxicNotFound = ProxyError(.notFound, "toxic not found")
}
