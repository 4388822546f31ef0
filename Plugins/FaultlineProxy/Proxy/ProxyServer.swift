import CFaultlineSystem
import FaultlineKit
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The in-process proxy: any number of named TCP proxies with Toxiproxy's toxics, managed the way
/// Toxiproxy's API manages them. The admin API and the `inprocess` toxic backend both drive it.
///
/// Control operations (create, update, toxics) run one at a time, in order; none waits on
/// anything but event loops that never block, so none hangs, whatever the traffic.
public final class ProxyServer: Sendable {
    /// The run's seed: toxicity rolls and toxic randomness derive from it.
    public let seed: UInt64
    /// The event loops proxies (and an admin server, if wanted) run on.
    public let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let toxicTypes: [String: ToxicDescriptor]
    private let log: Logger
    private let queue = SerialQueue()
    private let table = Mutex<[String: ManagedProxy]>([:])

    /// A proxy with its listener.
    private struct ManagedProxy: Sendable {
        var name: String
        /// As bound (`127.0.0.1:35135`), or as given while disabled.
        var listen: String
        var upstream: String
        var enabled: Bool
        var runtime: ProxyRuntime
        var listener: Listener?
    }

    /// A proxy's listening socket: in the relay, or a NIO server channel where there is no relay.
    private enum Listener {
        case relay(Int32)
        case nio(any Channel)
    }

    /// The fast path for connections without toxics (see ``Relay``), one per core; empty where
    /// there is no epoll or when `FAULTLINE_PROXY_RELAY=off` (every connection then runs on NIO).
    private let relays: [Relay]
    /// Returns freed connection memory to the system (see ``MemoryReturn``).
    private let memoryReturn: RepeatedTask
    /// Where a proxy given no listen address listens: `127.0.0.1:0` unless the server was told
    /// otherwise (`faultline proxy` with its API beyond loopback: every address, as Toxiproxy).
    public let defaultListen: String

    /// - Parameters:
    ///   - toxicTypes: the toxic types proxies accept, by name (the registry's `toxics`).
    ///   - seed: the run's seed (`--seed`), so a run's toxicity rolls and jitter replay.
    ///   - group: event loops to run on; by default the server makes one loop per core.
    ///   - relay: whether connections without toxics take the fast path (``Relay``); by default
    ///     they do, unless the environment says `FAULTLINE_PROXY_RELAY=off`.
    ///   - defaultListen: where a proxy given no listen address listens.
    public init(
        toxicTypes: [String: ToxicDescriptor], seed: UInt64, group: (any EventLoopGroup)? = nil, relay: Bool? = nil,
        defaultListen: String = "127.0.0.1:0", logger: Logger = Logger(label: "faultline.proxy")
    ) {
        self.defaultListen = defaultListen
        self.toxicTypes = toxicTypes
        self.seed = seed
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        ownsGroup = group == nil
        log = logger
        let relayWanted = relay ?? ProcessInfo.processInfo.environment["FAULTLINE_PROXY_RELAY"].map { $0 != "off" && $0 != "0" } ?? true
        let loops = self.group
        self.relays = relayWanted ? (0..<max(1, System.coreCount)).compactMap { _ in Relay(group: loops, log: logger) } : []
        memoryReturn = MemoryReturn.start(on: loops.next())
    }

    // MARK: Reading

    /// Every proxy, by name.
    public func proxies() -> [ProxyDefinition] {
        table.withLock { $0.values.sorted { $0.name < $1.name } }.map(Self.definition)
    }

    public func proxy(named name: String) throws(ProxyError) -> ProxyDefinition {
        Self.definition(try managed(name))
    }

    public func toxics(of proxy: String) throws(ProxyError) -> [ToxicDefinition] {
        try managed(proxy).runtime.toxics
    }

    public func toxic(named name: String, on proxy: String) throws(ProxyError) -> ToxicDefinition {
        guard let toxic = try managed(proxy).runtime.toxic(named: name) else { throw .toxicNotFound }
        return toxic.definition
    }

    /// What a toxic did so far, for its fault window: an HTTP toxic's requests affected and
    /// connections it could not parse, and on a TLS proxy the connections closed meanwhile because
    /// a handshake failed; nil when there is nothing to say or the toxic is gone.
    public func toxicReport(named name: String, on proxy: String) -> String? {
        guard let runtime = runtime(of: proxy), let toxic = runtime.toxic(named: name) else { return nil }
        var parts = toxic.httpCounters.map { [$0.summary] } ?? []
        if runtime.tls != nil {
            let now = runtime.metrics.handshakeFailures
            let before = toxic.handshakeFailuresBefore
            for (count, peer) in [(now.client &- before.client, "client"), (now.upstream &- before.upstream, "upstream")] where count > 0 {
                parts.append("\(count) connection\(count == 1 ? "" : "s") closed: the TLS handshake with the \(peer) failed")
            }
        }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    /// Open connections of a proxy (for tests and metrics).
    public func openConnections(of proxy: String) throws(ProxyError) -> Int {
        try managed(proxy).runtime.openConnections
    }

    /// A proxy's data-plane state (for tests).
    func runtime(of name: String) -> ProxyRuntime? {
        table.withLock { $0[name]?.runtime }
    }

    private func managed(_ name: String) throws(ProxyError) -> ManagedProxy {
        guard let proxy = table.withLock({ $0[name] }) else { throw .proxyNotFound }
        return proxy
    }

    private static func definition(_ proxy: ManagedProxy) -> ProxyDefinition {
        ProxyDefinition(
            name: proxy.name, listen: proxy.listen, upstream: proxy.upstream, enabled: proxy.enabled, toxics: proxy.runtime.toxics,
            tls: proxy.runtime.tls?.listenSettings, upstreamTLS: proxy.runtime.tls?.upstreamSettings)
    }

    // MARK: Proxies

    /// Creates a proxy and, when enabled, binds its listener.
    /// - Parameters:
    ///   - listen: `host:port`; port 0 picks a free port; an empty string means ``defaultListen``.
    ///     The returned definition carries the bound address.
    ///   - tls: TLS to terminate on `listen` (a `self_signed` proxy makes its CA now; the returned
    ///     definition names its file in `tls.ca`).
    ///   - upstreamTLS: TLS to originate to the upstream.
    public func createProxy(
        name: String, listen: String, upstream: String, enabled: Bool = true, tls: ListenTLS? = nil, upstreamTLS: UpstreamTLS? = nil
    ) async throws(ProxyError) -> ProxyDefinition {
        try await serially { () throws(ProxyError) in
            try Self.checkRequired(name: name, upstream: upstream)
            if self.table.withLock({ $0[name] != nil }) { throw ProxyError(.conflict, "proxy already exists") }
            let proxy = try await self.makeProxy(
                name: name, listen: listen, upstream: upstream, enabled: enabled, tls: tls, upstreamTLS: upstreamTLS)
            self.table.withLock { $0[name] = proxy }
            return Self.definition(proxy)
        }
    }

    private static func checkRequired(name: String, upstream: String, suffix: String = "") throws(ProxyError) {
        if name.isEmpty { throw ProxyError(.badRequest, "missing required field: name" + suffix) }
        if upstream.isEmpty { throw ProxyError(.badRequest, "missing required field: upstream" + suffix) }
    }

    /// - Parameter toxics: in force before the listener opens, so every connection meets them.
    private func makeProxy(
        name: String, listen: String, upstream: String, enabled: Bool, toxics: [ActiveToxic] = [], tls: ListenTLS? = nil,
        upstreamTLS: UpstreamTLS? = nil
    ) async throws(ProxyError)
        -> ManagedProxy
    {
        let target = UpstreamTarget(upstream)
        let listenHost = (try? HostPort(parsing: listen.isEmpty ? defaultListen : listen, role: .listen))?.host ?? ""
        let proxyTLS = try ProxyTLS.make(proxy: name, listenHost: listenHost, listen: tls, upstream: upstreamTLS)
        let runtime = ProxyRuntime(name: name, seed: seed, log: log, tls: proxyTLS)
        runtime.setTarget(target, text: upstream)
        if !toxics.isEmpty {
            _ = try runtime.change { (chain: inout [ActiveToxic]) throws(ProxyError) in
                chain = toxics
                return .removeAll
            }
        }
        var proxy = ManagedProxy(
            name: name, listen: listen.isEmpty ? defaultListen : listen, upstream: upstream, enabled: enabled, runtime: runtime, listener: nil)
        if enabled {
            do throws(ProxyError) { try await start(&proxy) } catch {
                proxyTLS?.removeGeneratedFiles()
                throw error
            }
        }
        return proxy
    }

    /// Binds the listener and admits connections.
    private func start(_ proxy: inout ManagedProxy) async throws(ProxyError) {
        guard proxy.listener == nil else { return }
        let (host, port): (String, Int)
        do throws(ProxyError) {
            (host, port) = try ToxiproxyWording.splitListen(proxy.listen)
        } catch {
            throw ToxiproxyWording.listenFailure(at: nil, error.message)
        }
        // Every address (no host, `0.0.0.0` or `::`) is one dual-stack socket on `::`, as Go's
        // net.Listen makes it for Toxiproxy: IPv4 and IPv6 clients both connect, and the proxy
        // shows `[::]:port`. Where there is no IPv6, it is `0.0.0.0`.
        let everyAddress = HostPort(host: host, port: port).isEveryAddress
        let bindHost = everyAddress ? (Self.hasIPv6 ? "::" : "0.0.0.0") : (host == "localhost" ? "127.0.0.1" : host)
        let resolved: SocketAddress
        do {
            resolved = try SocketAddress.makeAddressResolvingHost(bindHost, port: port)
        } catch {
            throw ToxiproxyWording.listenFailure(at: nil, "lookup \(host): no such host")
        }
        // Go names the address it tried to bind: as written for every address (`:port` when no
        // host was given), else resolved.
        let tried = host.isEmpty ? ":\(port)" : everyAddress ? HostPort(host: host, port: port).description : HostPort(resolved).description
        let runtime = proxy.runtime
        // The relay moves bytes as they are; TLS needs NIO's pipeline on both sides.
        if !relays.isEmpty, runtime.tls == nil {
            let fd: Int32
            let address: SocketAddress
            do throws(ProxyError) {
                (fd, address) = try RelayListener.bind(resolved)
            } catch {
                throw ToxiproxyWording.listenFailure(at: tried, error.message)
            }
            runtime.setAccepting(true)
            for relay in relays { await relay.add(RelayListener(fd: fd, runtime: runtime), exclusive: relays.count > 1) }
            proxy.listener = .relay(fd)
            proxy.listen = HostPort(address).description
            return
        }
        runtime.setAccepting(true)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.maxMessagesPerRead, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.recvAllocator, value: ProxyChannelOptions.receiveAllocator)
            .childChannelOption(.writeBufferWaterMark, value: ProxyChannelOptions.waterMark)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try ProxyConnection(runtime: runtime, eventLoop: channel.eventLoop).attachClient(to: channel)
                }
            }
        if resolved.protocol == .inet6 {
            // As the relay's listener: `::` is dual-stack, any other IPv6 address only its own.
            _ = bootstrap.serverChannelOption(
                ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: resolved.ipAddress == "::" ? 0 : 1)
        }
        do {
            let channel = try await bootstrap.bind(to: resolved).get()
            proxy.listener = .nio(channel)
            if let address = channel.localAddress { proxy.listen = HostPort(address).description }
        } catch {
            runtime.setAccepting(false)
            throw ToxiproxyWording.listenFailure(at: tried, Self.describe(error))
        }
    }

    /// Closes the listener and every connection (Toxiproxy's "down").
    private func stop(_ proxy: inout ManagedProxy) async {
        let connections = proxy.runtime.setAccepting(false)
        switch proxy.listener {
        case .relay(let fd)?:
            for relay in relays { await relay.removeListener(fd) }
            close(fd)
        case .nio(let channel)?: try? await channel.close()
        case nil: break
        }
        proxy.listener = nil
        await ProxyRuntime.perform(.abort, on: connections)
    }

    /// Changes listen, upstream or enabled; nil keeps the current value. A new listen or upstream
    /// drops the proxy's connections, as Toxiproxy's restart does; toxics are kept. A new upstream
    /// alone keeps the listening socket: Toxiproxy closes and binds it again, and in between
    /// another socket may take the port (a listen on port 0 got one from the range outgoing
    /// connections take theirs from), which fails the update.
    public func updateProxy(named name: String, listen: String? = nil, upstream: String? = nil, enabled: Bool? = nil) async throws(ProxyError)
        -> ProxyDefinition
    {
        try await serially { () throws(ProxyError) in
            var proxy = try self.managed(name)
            let newListen = listen.map { $0.isEmpty ? self.defaultListen : $0 }
            // Checked before anything changes, as Toxiproxy 2.12 does (2.8 stored it and disabled the proxy).
            if let newListen { _ = try ToxiproxyWording.splitListen(newListen) }
            let newTarget = upstream.map(UpstreamTarget.init)
            let relisten = newListen.map { !Self.sameAddress($0, proxy.listen) } ?? false
            let retarget = upstream.map { $0 != proxy.upstream } ?? false
            let wantEnabled = enabled ?? proxy.enabled
            if relisten || !wantEnabled { await self.stop(&proxy) }
            // `localhost:8080` for a proxy bound at `127.0.0.1:8080` keeps the bound address.
            if relisten, let newListen { proxy.listen = newListen }
            if let upstream, let newTarget {
                proxy.upstream = upstream
                let old = proxy.runtime.setTarget(newTarget, text: upstream)
                // Still listening: new connections go to the new upstream, the old ones end.
                if retarget && proxy.listener != nil { await ProxyRuntime.perform(.abort, on: old) }
            }
            proxy.enabled = wantEnabled
            var failure: ProxyError?
            if wantEnabled {
                do throws(ProxyError) { try await self.start(&proxy) } catch {
                    proxy.enabled = false
                    failure = error
                }
            }
            let stored = proxy
            self.table.withLock { $0[name] = stored }
            if let failure { throw failure }
            return Self.definition(proxy)
        }
    }

    /// Whether two listen addresses name the same place (`localhost:x` is `127.0.0.1:x`; `:x`,
    /// `0.0.0.0:x` and `[::]:x` are all one socket on every address).
    static func sameAddress(_ a: String, _ b: String) -> Bool {
        guard let a = try? HostPort(parsing: a, role: .listen), let b = try? HostPort(parsing: b, role: .listen), a.port != 0 else { return false }
        func canonical(_ address: HostPort) -> String { address.isEveryAddress ? "::" : address.host == "localhost" ? "127.0.0.1" : address.host }
        return a.port == b.port && canonical(a) == canonical(b)
    }

    /// Whether this machine has IPv6 sockets (a kernel booted without IPv6 has none).
    static let hasIPv6: Bool = {
        let fd = faultline_tcp_socket(Int32(AF_INET6))
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }()

    public func deleteProxy(named name: String) async throws(ProxyError) {
        try await serially { () throws(ProxyError) in
            var proxy = try self.managed(name)
            self.table.withLock { _ = $0.removeValue(forKey: name) }
            await self.stop(&proxy)
            proxy.runtime.tls?.removeGeneratedFiles()
        }
    }

    /// A proxy as `/populate` and `--config` give it.
    public struct ProxyRequest: Sendable {
        public var name: String
        public var listen: String
        public var upstream: String
        public var enabled: Bool
        /// Our extension: toxics created with the proxy. nil (no `toxics` key) leaves a kept
        /// proxy's toxics alone, as Toxiproxy does.
        public var toxics: [ToxicRequest]?
        /// Our extension: TLS terminated on listen and originated to the upstream.
        public var tls: ListenTLS?
        public var upstreamTLS: UpstreamTLS?

        public init(
            name: String, listen: String, upstream: String, enabled: Bool = true, toxics: [ToxicRequest]? = nil, tls: ListenTLS? = nil,
            upstreamTLS: UpstreamTLS? = nil
        ) {
            self.name = name
            self.listen = listen
            self.upstream = upstream
            self.enabled = enabled
            self.toxics = toxics
            self.tls = tls
            self.upstreamTLS = upstreamTLS
        }
    }

    /// Toxiproxy's populate: validates every entry, then creates each proxy, keeping an existing one
    /// with the same listen and upstream (toxics included) and replacing one that differs.
    ///
    /// Each entry's `toxics` (our extension) are checked like `POST /proxies/{name}/toxics` before
    /// anything changes, so a bad toxic fails the whole request with 400 and nothing applied. A
    /// created proxy has them before it accepts a connection; a kept proxy's toxics become the
    /// listed ones (left as they are when they already match).
    /// - Returns: the proxies applied, and the error that stopped the run, if any. A 400's
    ///   ``ProxyError/entry`` names the entry (and toxic) at fault.
    public func populate(_ requests: [ProxyRequest]) async -> (proxies: [ProxyDefinition], error: ProxyError?) {
        var toxicsByEntry: [[ActiveToxic]?] = []
        for (index, request) in requests.enumerated() {
            do throws(ProxyError) {
                try Self.checkRequired(name: request.name, upstream: request.upstream, suffix: " at proxy \(index + 1)")
                if let problem = ProxyTLS.problems(listen: request.tls, upstream: request.upstreamTLS).first {
                    throw ProxyError(.badRequest, "invalid tls: \(problem) at proxy \(index + 1)")
                }
            } catch {
                return ([], error.at(entry: index + 1))
            }
        }
        for (index, request) in requests.enumerated() {
            guard let toxics = request.toxics else {
                toxicsByEntry.append(nil)
                continue
            }
            var made: [ActiveToxic] = []
            for (toxicIndex, toxic) in toxics.enumerated() {
                do throws(ProxyError) {
                    made.append(try makeToxic(toxic, besides: made.map(\.definition.name)))
                } catch {
                    let at = " at proxy \(index + 1), toxic \(toxicIndex + 1)"
                    return ([], ProxyError(.badRequest, error.message + at).at(entry: index + 1, toxic: toxicIndex + 1))
                }
            }
            toxicsByEntry.append(made)
        }
        let entries = Array(zip(requests, toxicsByEntry))
        do {
            return try await serially { () throws(ProxyError) in
                var applied: [ProxyDefinition] = []
                for (index, (request, toxics)) in entries.enumerated() {
                    if var existing = self.table.withLock({ $0[request.name] }) {
                        let listen = request.listen.isEmpty ? self.defaultListen : request.listen
                        if Self.sameAddress(listen, existing.listen) && request.upstream == existing.upstream
                            && Self.sameTLS(request, existing.runtime.tls)
                        {
                            if let toxics { await Self.replaceToxics(of: existing.runtime, with: toxics) }
                            applied.append(Self.definition(existing))
                            continue
                        }
                        self.table.withLock { _ = $0.removeValue(forKey: request.name) }
                        await self.stop(&existing)
                        existing.runtime.tls?.removeGeneratedFiles()
                    }
                    do throws(ProxyError) {
                        let proxy = try await self.makeProxy(
                            name: request.name, listen: request.listen, upstream: request.upstream, enabled: request.enabled, toxics: toxics ?? [],
                            tls: request.tls, upstreamTLS: request.upstreamTLS)
                        self.table.withLock { $0[request.name] = proxy }
                        applied.append(Self.definition(proxy))
                    } catch {
                        return (applied, error.at(entry: index + 1))
                    }
                }
                return (applied, nil)
            }
        } catch {
            return ([], error)
        }
    }

    /// Whether a populate entry asks for the TLS a live proxy has (a generated CA is kept).
    private static func sameTLS(_ request: ProxyRequest, _ tls: ProxyTLS?) -> Bool {
        var listen = tls?.listenSettings
        if listen?.selfSigned == true { listen?.ca = nil } else if listen?.ca == listen?.cert, request.tls?.ca == nil { listen?.ca = nil }
        return request.tls == listen && request.upstreamTLS == tls?.upstreamSettings
    }

    /// Makes a live proxy's toxics exactly `toxics`: nothing changes when they already are.
    private static func replaceToxics(of runtime: ProxyRuntime, with toxics: [ActiveToxic]) async {
        // In the order the runtime lists them: upstream first, then downstream.
        let wanted = toxics.filter { $0.definition.stream == .upstream } + toxics.filter { $0.definition.stream == .downstream }
        guard runtime.toxics != wanted.map(\.definition) else { return }
        guard
            let (cleared, connections) = try? runtime.change({ (chain: inout [ActiveToxic]) throws(ProxyError) in
                chain.removeAll()
                return .removeAll
            })
        else { return }
        await ProxyRuntime.broadcast(cleared, to: connections)
        for toxic in toxics {
            guard
                let (added, connections) = try? runtime.change({ (chain: inout [ActiveToxic]) throws(ProxyError) in
                    chain.append(toxic)
                    return .add(toxic)
                })
            else { continue }
            await ProxyRuntime.broadcast(added, to: connections)
        }
    }

    /// Enables every proxy and removes every toxic (Toxiproxy's `POST /reset`). Stops at the first
    /// proxy that cannot be started, as Toxiproxy does.
    public func reset() async throws(ProxyError) {
        try await serially { () throws(ProxyError) in
            for name in self.table.withLock({ $0.keys.sorted() }) {
                guard var proxy = self.table.withLock({ $0[name] }) else { continue }
                if !proxy.enabled || proxy.listener == nil {
                    try await self.start(&proxy)
                    proxy.enabled = true
                    let started = proxy
                    self.table.withLock { $0[name] = started }
                }
                let (change, connections) = try proxy.runtime.change { (toxics: inout [ActiveToxic]) throws(ProxyError) in
                    toxics.removeAll()
                    return .removeAll
                }
                await ProxyRuntime.broadcast(change, to: connections)
            }
        }
    }

    // MARK: Toxics

    /// A toxic as the API receives it: everything but the type may be absent.
    public struct ToxicRequest: Sendable {
        public var name: String?
        public var type: String
        /// As sent; parsed case-insensitively; nil means downstream.
        public var stream: String?
        /// nil means 1.
        public var toxicity: Double?
        public var attributes: Value?
        /// Faultline's condition: addresses or CIDR blocks of the clients it applies to.
        public var clients: [String]?

        public init(
            name: String? = nil, type: String, stream: String? = nil, toxicity: Double? = nil, attributes: Value? = nil, clients: [String]? = nil
        ) {
            self.name = name
            self.clients = clients
            self.type = type
            self.stream = stream
            self.toxicity = toxicity
            self.attributes = attributes
        }
    }

    /// Adds a toxic at the end of its stream's chain and applies it to live connections.
    public func addToxic(_ request: ToxicRequest, to proxyName: String) async throws(ProxyError) -> ToxicDefinition {
        try await serially { () throws(ProxyError) in
            let proxy = try self.managed(proxyName)
            let toxic = try self.makeToxic(request, besides: proxy.runtime.toxics.map(\.name))
            return try await self.append(toxic, to: proxy)
        }
    }

    /// A toxic as Toxiproxy's API builds one, with its checks in Toxiproxy's order: the stream, the
    /// default name `<type>_<stream as sent>`, the type, a name already taken, then the attributes
    /// (absent or null ones are 0).
    private func makeToxic(_ request: ToxicRequest, besides names: [String]) throws(ProxyError) -> ActiveToxic {
        let streamText = request.stream ?? "downstream"
        guard let stream = ToxicStream(parsing: streamText) else {
            throw ProxyError(.badRequest, "stream was invalid, can be either upstream or downstream")
        }
        let name = request.name.flatMap { $0.isEmpty ? nil : $0 } ?? "\(request.type)_\(streamText)"
        guard let descriptor = toxicTypes[request.type] else { throw ProxyError(.badRequest, "invalid toxic type") }
        if names.contains(name) { throw ProxyError(.conflict, "toxic already exists") }
        if let problem = descriptor.streamProblem(stream) { throw ProxyError(.badRequest, "stream was invalid: \(problem)") }
        // Null attributes are absent ones, wherever the request came from (API, populate, --config).
        var attributes = request.attributes ?? .object([:])
        if attributes.isNull { attributes = .object([:]) }
        let prepared = try Self.prepare(descriptor, attributes)
        if let problem = prepared.http?.streamProblem(stream) { throw ProxyError(.badRequest, "stream was invalid: \(problem)") }
        try Self.checkToxicity(request.toxicity)
        return try ActiveToxic(
            definition: ToxicDefinition(
                name: name, type: request.type, stream: stream, toxicity: request.toxicity ?? 1, attributes: prepared.attributes,
                clients: request.clients, streamSpelling: streamText),
            prepared: prepared)
    }

    /// Adds a toxic given as typed values (the in-process backend's): nothing is parsed, and
    /// attributes the toxic action already decoded and validated (``ToxicDefinition/prepared``)
    /// are used as they are.
    public func addToxic(_ toxic: ToxicDefinition, to proxyName: String) async throws(ProxyError) -> ToxicDefinition {
        try await serially { () throws(ProxyError) in
            let proxy = try self.managed(proxyName)
            guard let descriptor = self.toxicTypes[toxic.type] else { throw ProxyError(.badRequest, "invalid toxic type") }
            if let problem = descriptor.streamProblem(toxic.stream) { throw ProxyError(.badRequest, "stream was invalid: \(problem)") }
            let prepared: PreparedToxic
            if let given = toxic.prepared, given.type == toxic.type {
                prepared = given
            } else {
                prepared = try Self.prepare(descriptor, toxic.attributes)
            }
            if let problem = prepared.http?.streamProblem(toxic.stream) { throw ProxyError(.badRequest, "stream was invalid: \(problem)") }
            let name = toxic.name.isEmpty ? "\(toxic.type)_\(toxic.stream.rawValue)" : toxic.name
            let definition = ToxicDefinition(
                name: name, type: toxic.type, stream: toxic.stream, toxicity: toxic.toxicity, attributes: prepared.attributes, clients: toxic.clients,
                streamSpelling: toxic.streamSpelling)
            return try await self.append(try ActiveToxic(definition: definition, prepared: prepared), to: proxy)
        }
    }

    /// Puts a toxic at the end of its stream's chain and applies it to live connections.
    private func append(_ toxic: ActiveToxic, to proxy: ManagedProxy) async throws(ProxyError) -> ToxicDefinition {
        var toxic = toxic
        toxic.handshakeFailuresBefore = proxy.runtime.metrics.handshakeFailures
        let name = toxic.definition.name
        let (change, connections) = try proxy.runtime.change { (toxics: inout [ActiveToxic]) throws(ProxyError) in
            if toxics.contains(where: { $0.definition.name == name }) { throw ProxyError(.conflict, "toxic already exists") }
            toxics.append(toxic)
            return .add(toxic)
        }
        await ProxyRuntime.broadcast(change, to: connections)
        return toxic.definition
    }

    /// Merges `attributes` into the toxic's and sets its toxicity when given; live connections keep
    /// their per-connection state (bytes counted, toxicity roll). A null attribute keeps its value.
    public func updateToxic(named name: String, on proxyName: String, attributes: Value?, toxicity: Double?) async throws(ProxyError)
        -> ToxicDefinition
    {
        try await serially { () throws(ProxyError) in
            let proxy = try self.managed(proxyName)
            guard let current = proxy.runtime.toxic(named: name), let descriptor = self.toxicTypes[current.definition.type] else {
                throw .toxicNotFound
            }
            var merged = current.definition.attributes.objectValue ?? ValueObject()
            if let attributes, !attributes.isNull {
                guard case .object(let changes) = attributes else {
                    throw ProxyError(.badRequest, "bad request body: attributes must be an object")
                }
                for (key, value) in changes where !value.isNull { merged[key] = value }
            }
            let prepared = try Self.prepare(descriptor, .object(merged))
            if let problem = prepared.http?.streamProblem(current.definition.stream) {
                throw ProxyError(.badRequest, "stream was invalid: \(problem)")
            }
            try Self.checkToxicity(toxicity)
            var definition = current.definition
            definition.attributes = prepared.attributes
            if let toxicity { definition.toxicity = toxicity }
            let toxic = try ActiveToxic(definition: definition, prepared: prepared, keeping: current)
            let (change, connections) = try proxy.runtime.change { (toxics: inout [ActiveToxic]) throws(ProxyError) in
                guard let index = toxics.firstIndex(where: { $0.definition.name == name }) else { throw .toxicNotFound }
                toxics[index] = toxic
                return .update(toxic)
            }
            await ProxyRuntime.broadcast(change, to: connections)
            return definition
        }
    }

    /// Removes a toxic; live connections get what it held at once.
    public func removeToxic(named name: String, from proxyName: String) async throws(ProxyError) {
        try await serially { () throws(ProxyError) in
            let proxy = try self.managed(proxyName)
            let (change, connections) = try proxy.runtime.change { (toxics: inout [ActiveToxic]) throws(ProxyError) in
                guard let index = toxics.firstIndex(where: { $0.definition.name == name }) else { throw .toxicNotFound }
                let removed = toxics.remove(at: index)
                return .remove(name: name, stream: removed.definition.stream)
            }
            await ProxyRuntime.broadcast(change, to: connections)
        }
    }

    /// Any finite toxicity is taken, as Toxiproxy takes any float: at or above 1 the toxic always
    /// applies, at or below 0 never (a roll is a draw in 0..<1 below the toxicity), and the value
    /// is echoed as sent (Toxiproxy.Net's tests send `80` and read it back). Experiments keep their
    /// 0…1 range, checked at load.
    private static func checkToxicity(_ toxicity: Double?) throws(ProxyError) {
        guard let toxicity, !toxicity.isFinite else { return }
        throw ProxyError(.badRequest, "bad request body: toxicity must be a number, found \(toxicity)")
    }

    /// Decodes attributes as Toxiproxy does (unknown keys ignored, null ones absent, wrong JSON
    /// types in Go's words) and validates them.
    private static func prepare(_ descriptor: ToxicDescriptor, _ attributes: Value) throws(ProxyError) -> PreparedToxic {
        guard case .object(let object) = attributes else {
            throw ToxiproxyWording.attributesNotObject(
                attributes, owner: "ToxicWrapper", target: ToxiproxyWording.attributesTarget(type: descriptor.type))
        }
        try ToxiproxyWording.checkAttributes(object, type: descriptor.type)
        let known = Set(descriptor.attributeNames)
        var filtered = ValueObject()
        for (key, value) in object where known.contains(key) && !value.isNull { filtered[key] = value }
        do {
            return try descriptor.prepare(.object(filtered))
        } catch let error as ArgumentError {
            throw ProxyError(.badRequest, "invalid \(descriptor.type) attributes: \(error.message)")
        } catch let error as Diagnostic {
            throw ProxyError(.badRequest, "bad request body: \(error.message)" + (error.path.map { $0.isEmpty ? "" : " at attributes.\($0)" } ?? ""))
        } catch {
            throw ProxyError(.badRequest, "bad request body: \(error)")
        }
    }

    // MARK: Metrics

    /// The counters of every proxy in Prometheus text format 0.0.4.
    public func metricsText() -> String {
        let all = table.withLock { $0.values.sorted { $0.name < $1.name } }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += "\(name){\(labels)} \(value)\n" }
        }
        func labels(_ pairs: [(String, String)]) -> String {
            pairs.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",")
        }
        var received: [(String, String)] = []
        var sent: [(String, String)] = []
        var open: [(String, String)] = []
        var accepted: [(String, String)] = []
        var enabled: [(String, String)] = []
        var toxics: [(String, String)] = []
        for proxy in all {
            let metrics = proxy.runtime.metrics
            for (direction, counters) in [("downstream", metrics.downstream), ("upstream", metrics.upstream)] {
                let set = labels([("direction", direction), ("listener", proxy.listen), ("proxy", proxy.name), ("upstream", proxy.upstream)])
                received.append((set, String(counters.received.load(ordering: .relaxed))))
                sent.append((set, String(counters.sent.load(ordering: .relaxed))))
            }
            open.append((labels([("proxy", proxy.name)]), String(proxy.runtime.openConnections)))
            accepted.append((labels([("proxy", proxy.name)]), String(metrics.accepted.load(ordering: .relaxed))))
            enabled.append((labels([("proxy", proxy.name)]), proxy.enabled ? "1" : "0"))
            for toxic in proxy.runtime.toxics {
                toxics.append(
                    (
                        labels([("proxy", proxy.name), ("stream", toxic.stream.rawValue), ("toxic", toxic.name), ("type", toxic.type)]),
                        JSONWriter.string(.double(toxic.toxicity), pretty: false)
                    ))
            }
        }
        family("toxiproxy_proxy_received_bytes_total", "counter", "Bytes read from the source of each direction of the proxy.", received)
        family("toxiproxy_proxy_sent_bytes_total", "counter", "Bytes written to the destination of each direction of the proxy.", sent)
        family("toxiproxy_proxy_connections_open", "gauge", "Proxied connections open now.", open)
        family("toxiproxy_proxy_connections_total", "counter", "Client connections accepted.", accepted)
        family("toxiproxy_proxy_enabled", "gauge", "1 if the proxy accepts connections, 0 if it is down.", enabled)
        family("toxiproxy_proxy_toxic_toxicity", "gauge", "Toxics in force, by proxy, stream, name and type; the value is the toxicity.", toxics)
        return out
    }

    static func escapeLabel(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    // MARK: Lifecycle

    /// Closes every proxy and its connections, then the event loops if the server made them.
    public func shutdown() async {
        try? await serially { () throws(ProxyError) in
            for name in self.table.withLock({ $0.keys.sorted() }) {
                guard var proxy = self.table.withLock({ $0.removeValue(forKey: name) }) else { continue }
                await self.stop(&proxy)
                proxy.runtime.tls?.removeGeneratedFiles()
            }
        }
        for relay in relays { relay.shutdown() }
        memoryReturn.cancel()
        if ownsGroup { try? await group.shutdownGracefully() }
    }

    private func serially<T: Sendable>(_ body: @escaping @Sendable () async throws(ProxyError) -> T) async throws(ProxyError) -> T {
        try await queue.run(body)
    }

    /// A failed bind in Go's words (`bind: address already in use`).
    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError { return "bind: " + String(cString: strerror(error.errnoCode)).lowercased() }
        return "\(error)"
    }
}

/// Runs async operations one at a time, in the order submitted.
final class SerialQueue: Sendable {
    private let tail = Mutex<Task<Void, Never>?>(nil)

    func run<T: Sendable>(_ body: @escaping @Sendable () async throws(ProxyError) -> T) async throws(ProxyError) -> T {
        let task = tail.withLock { tail -> Task<T, any Error> in
            let previous = tail
            let task = Task<T, any Error> {
                await previous?.value
                return try await body()
            }
            tail = Task { _ = try? await task.value }
            return task
        }
        do {
            return try await task.value
        } catch let error as ProxyError {
            throw error
        } catch {
            throw ProxyError(.serverError, "\(error)")
        }
    }
}
