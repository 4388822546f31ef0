import Foundation

/// A proxy as Toxiproxy describes it.
public struct ProxyDefinition: Sendable, Codable, Equatable {
    public var name: String
    /// `host:port` to listen on; port 0 picks a free one, and the backend reports the bound address.
    public var listen: String
    /// `host:port` to connect each accepted connection to.
    public var upstream: String
    public var enabled: Bool
    public var toxics: [ToxicDefinition]
    /// TLS terminated on the listen address (Faultline's extension); nil: the proxy passes what
    /// clients send as it is. A backend that creates the proxy reports the CA file in `ca`.
    public var tls: ListenTLS?
    /// TLS originated to the upstream (Faultline's extension); nil: plain TCP to the upstream.
    public var upstreamTLS: UpstreamTLS?

    enum CodingKeys: String, CodingKey {
        case name, listen, upstream, enabled, toxics, tls
        case upstreamTLS = "upstream_tls"
    }

    public init(
        name: String, listen: String, upstream: String, enabled: Bool = true, toxics: [ToxicDefinition] = [], tls: ListenTLS? = nil,
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

    /// The listen address, parsed; nil when `listen` is not `host:port`.
    public var listenAddress: HostPort? { try? HostPort(parsing: listen, role: .listen) }

    /// The port of the bound listen address.
    public var listenPort: Int? { listenAddress?.port }
}

/// A toxic as Toxiproxy's API describes it: backend-neutral, attributes as JSON.
public struct ToxicDefinition: Sendable, Codable, Equatable {
    /// Unique per proxy across both streams; Toxiproxy's default is `<type>_<stream>`.
    public var name: String
    public var type: String
    public var stream: ToxicStream
    /// Probability 0...1 that the toxic applies to a connection, rolled once per connection.
    public var toxicity: Double
    /// Every attribute of the type, defaults filled in (as Toxiproxy echoes them).
    public var attributes: Value
    /// The attributes already decoded and validated against the type, when whoever made the
    /// definition did so (the `toxic` action): a backend that runs toxics itself uses them instead
    /// of decoding again. Not part of the definition's identity, and never encoded.
    public var prepared: PreparedToxic?
    /// Faultline's condition (Toxiproxy has none): the toxic applies only to connections from
    /// these addresses or CIDR blocks; nil applies it to every client. Only the in-process proxy
    /// can honour it.
    public var clients: [String]?
    /// The stream as a Toxiproxy client wrote it when that differs from its name (`UpStream`, as
    /// .NET clients send it): Toxiproxy parses it ignoring case and echoes it as sent, and so do the
    /// admin API and the Toxiproxy driver. Not part of the definition's identity, and not encoded.
    public var streamSpelling: String?

    enum CodingKeys: String, CodingKey { case name, type, stream, toxicity, attributes, clients }

    public init(
        name: String, type: String, stream: ToxicStream = .downstream, toxicity: Double = 1, attributes: Value = .object([:]),
        prepared: PreparedToxic? = nil, clients: [String]? = nil, streamSpelling: String? = nil
    ) {
        self.name = name
        self.type = type
        self.stream = stream
        self.toxicity = toxicity
        self.attributes = attributes
        self.prepared = prepared
        self.clients = clients
        self.streamSpelling = streamSpelling == stream.rawValue ? nil : streamSpelling
    }

    /// The stream as Toxiproxy shows it: as it was written.
    public var streamAsWritten: String { streamSpelling ?? stream.rawValue }

    public static func == (a: ToxicDefinition, b: ToxicDefinition) -> Bool {
        a.name == b.name && a.type == b.type && a.stream == b.stream && a.toxicity == b.toxicity && a.attributes == b.attributes
            && a.clients == b.clients
    }
}

/// Where proxies and toxics live: the in-process proxy, or a Toxiproxy server.
///
/// Toxic activities name a proxy, not a backend; the profile chooses the backend. So the same
/// experiment runs against either.
///
/// ## Implementation requirements
/// - Every call fails fast with a named error when the backend is unreachable; none hangs, also
///   under heavy traffic on the proxy.
/// - `removeToxic` and `deleteProxy` of something already gone throw ``ToxicBackendError/notFound``,
///   which cleanups treat as success.
/// - Toxic changes apply to live connections without dropping them (unless the toxic's own
///   semantics close them); a backend that can seed toxicity rolls uses ``BackendContext/seed``.
public protocol ToxicBackend: Sendable {
    /// For messages: `in-process proxy`, `Toxiproxy at http://127.0.0.1:8474`.
    var description: String { get }

    func proxies() async throws -> [ProxyDefinition]
    func proxy(named name: String) async throws -> ProxyDefinition
    /// Creates a proxy and returns it with the bound listen address.
    func createProxy(_ proxy: ProxyDefinition) async throws -> ProxyDefinition
    /// Changes listen, upstream or enabled (nil keeps the current value).
    func updateProxy(named name: String, listen: String?, upstream: String?, enabled: Bool?) async throws -> ProxyDefinition
    func deleteProxy(named name: String) async throws
    func addToxic(_ toxic: ToxicDefinition, to proxy: String) async throws -> ToxicDefinition
    /// Merges `attributes` into the toxic's and sets toxicity when given.
    func updateToxic(named name: String, on proxy: String, attributes: Value?, toxicity: Double?) async throws -> ToxicDefinition
    func removeToxic(named name: String, from proxy: String) async throws
    /// Removes every toxic and enables every proxy (Toxiproxy's `POST /reset`). A backend on a
    /// server others share limits this to the proxies and toxics the run created or changed.
    func reset() async throws
    /// Releases the backend's resources at the end of the run.
    func shutdown() async
    /// One line on what a toxic has done so far, for its fault window in the journal and reports
    /// (the in-process proxy counts the requests an HTTP toxic affected); nil when the backend
    /// does not count. Never fails: a toxic or proxy gone is nil.
    func toxicReport(named name: String, on proxy: String) async -> String?
}

extension ToxicBackend {
    public func toxicReport(named name: String, on proxy: String) async -> String? { nil }
}

/// Errors every backend reports the same way.
public enum ToxicBackendError: Error, Sendable, CustomStringConvertible, Equatable {
    case notFound(String)
    case conflict(String)
    case invalid(String)
    case unavailable(String)

    public var description: String {
        switch self {
        case .notFound(let m), .conflict(let m), .invalid(let m), .unavailable(let m): m
        }
    }
}

/// The run's toxic backend, in ``Resources``.
public enum ToxicBackendKey: ResourceKey {
    public typealias Value = any ToxicBackend
}

/// Makes a toxic backend from a profile's `toxics:` section.
public protocol ToxicBackendFactory: Sendable {
    /// The `backend:` name that selects it in a profile's `toxics:` section.
    var name: String { get }
    /// - Parameters:
    ///   - options: the profile's `toxics:` object (without `backend`), or nil.
    ///   - context: the run's logger, seed and environment.
    func makeBackend(options: SourceNode?, context: BackendContext) async throws -> any ToxicBackend
    /// Checks `options` at load time.
    func validate(options: SourceNode?, sink: DiagnosticSink)
    /// Why the backend cannot run a toxic of this type (or one limited to some `clients`); nil
    /// when it can. Checked at load for every `type: toxic` activity of a run that uses the backend.
    func cannotRun(_ toxic: ToxicDescriptor, limitedToClients: Bool) -> String?
    /// Attributes of a toxic the backend can run that it still must not be sent (values that
    /// would crash its server): the attribute's key, why, and what to do; nil when they are fine.
    /// Checked at load, beside ``cannotRun(_:limitedToClients:)``.
    func refuses(_ toxic: ToxicDescriptor, attributes: Value?) -> (key: String, reason: String, hint: String)?
    /// Whether the backend's proxies terminate and originate TLS (``ProxyDefinition/tls``,
    /// ``ProxyDefinition/upstreamTLS``); a suite proxy with either is a load error otherwise.
    var supportsTLS: Bool { get }
    /// Why the backend's proxies cannot take TLS settings, when ``supportsTLS`` is false: the end
    /// of a load error (`… cannot run a TLS proxy: a Toxiproxy server proxies plain TCP only`).
    var tlsRefusal: String { get }
    /// Checks a suite proxy's TLS files at load time beyond being readable (PEM that parses, a
    /// key that matches its certificate), reporting each problem at its key under `path`.
    /// - Parameters:
    ///   - proxy: the proxy, file names resolved to absolute paths.
    ///   - node: the proxy as written, for locations.
    func validateTLS(_ proxy: ProxyDefinition, node: SourceNode, path: DocumentPath, sink: DiagnosticSink)
    /// Whether the suite's `agents:` are made with this factory: each agent's object is its
    /// `options`, and ``BackendContext/agent`` names it. One registered factory does (the
    /// Toxiproxy driver's: an agent is a Toxiproxy API, `faultline proxy` or a real server).
    var servesAgents: Bool { get }
}

extension ToxicBackendFactory {
    public func validate(options: SourceNode?, sink: DiagnosticSink) {}
    public func cannotRun(_ toxic: ToxicDescriptor, limitedToClients: Bool) -> String? { nil }
    public func refuses(_ toxic: ToxicDescriptor, attributes: Value?) -> (key: String, reason: String, hint: String)? { nil }
    public var supportsTLS: Bool { false }
    public var tlsRefusal: String { "its proxies carry plain TCP only" }
    public func validateTLS(_ proxy: ProxyDefinition, node: SourceNode, path: DocumentPath, sink: DiagnosticSink) {}
    public var servesAgents: Bool { false }
}

/// What a backend factory gets to build a backend.
public struct BackendContext: Sendable {
    /// The run's seed (`--seed` or the suite's), for reproducible toxicity rolls and jitter.
    public var seed: UInt64
    public var environment: [String: String]
    public var registry: PluginRegistry
    /// The run's ledger: a backend on a server records there what it injects (``LedgerEntry``).
    public var ledger: RunLedger
    /// Tells the user about a step of setup (what the automatic recovery did).
    public var progress: @Sendable (String) -> Void
    /// The suite's name for the agent being made, for messages and the ledger; nil for the
    /// profile's backend.
    public var agent: String?
    /// Where each option given as exactly one `${name}` was read, by option (`token`: the
    /// environment variable of a secret `{type: env, key}`), so that a backend can record the
    /// source of a value that must not be written, such as a token.
    public var sources: [String: ValueSource]

    public init(
        seed: UInt64, environment: [String: String], registry: PluginRegistry, ledger: RunLedger = .disabled,
        progress: @escaping @Sendable (String) -> Void = { _ in }, agent: String? = nil, sources: [String: ValueSource] = [:]
    ) {
        self.agent = agent
        self.sources = sources
        self.seed = seed
        self.environment = environment
        self.registry = registry
        self.ledger = ledger
        self.progress = progress
    }

    /// Undoes what dead runs left on `server` (a run of any suite), before this run uses it.
    /// - Parameters:
    ///   - server: the server as the backend's ledger entries name it.
    ///   - environment: the environment the recoveries read credentials from (with the token the
    ///     profile gives, if any).
    public func recoverDeadRuns(on server: String, environment: [String: String]) async {
        let directory = ledger.path.map { ($0 as NSString).deletingLastPathComponent } ?? LedgerDirectory.path(environment: self.environment)
        let report = await Recovery(registry: registry, directory: directory, context: RecoveryContext(environment: environment))
            .run(RecoveryScope(servers: [server], includesLocal: false), automatic: true)
        for line in report.lines { progress(line) }
    }
}
