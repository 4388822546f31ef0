import FaultlineKit
import Foundation
import Logging
import Synchronization

/// The `toxiproxy` toxic backend: the suite's proxies and every toxic and proxy activity go to a
/// Toxiproxy server.
///
/// ```yaml
/// profiles:
///   staging:
///     toxics: {backend: toxiproxy, url: http://127.0.0.1:8474}   # or TOXIPROXY_URL
/// ```
///
/// Options: `url` (default: the `TOXIPROXY_URL` environment variable), `token` (the server's API
/// token: `${secret}`, `{type: env, key}` or `{type: file, path}` — see ``TokenSource``; default:
/// the `TOXIPROXY_AUTH_TOKEN` environment variable), `ca_file` (the CA of an `https` server),
/// `connect_timeout` and `timeout` (seconds, for every call). The options are checked when the
/// suite loads; at run start the server is asked its version, so an unreachable server, or one
/// that refuses the token, fails the run at once.
///
/// The same factory makes the suite's fault agents (``servesAgents``): an agent's object takes
/// these options, `url` required.
public struct ToxiproxyBackendFactory: ToxicBackendFactory {
    public let name = "toxiproxy"

    /// The environment variable `toxiproxy-cli` reads, used when the profile gives no `url`.
    public static let environmentKey = "TOXIPROXY_URL"

    /// The environment variable Toxiproxy 2.13 reads its API token from, used when the profile
    /// gives no `token`.
    public static let tokenEnvironmentKey = "TOXIPROXY_AUTH_TOKEN"

    struct Options: Decodable, NumberRanges {
        static let numberRanges: [String: NumberRange] = ["connect_timeout": .seconds, "timeout": .seconds]
        var url: String?
        var token: Value?
        var caFile: String?
        var connectTimeout: Double?
        var timeout: Double?

        enum CodingKeys: String, CodingKey {
            case url
            case token
            case caFile = "ca_file"
            case connectTimeout = "connect_timeout"
            case timeout
        }
    }

    public init() {}

    public var servesAgents: Bool { true }
    public var tlsRefusal: String { "a Toxiproxy server proxies plain TCP only" }

    public func cannotRun(_ toxic: ToxicDescriptor, limitedToClients: Bool) -> String? {
        if toxic.isHTTP { return "\(toxic.type) is an HTTP toxic, and a Toxiproxy server runs byte-stream toxics only" }
        if limitedToClients { return "clients: conditions are Faultline's, and a Toxiproxy server applies a toxic to every client" }
        return nil
    }

    public func refuses(_ toxic: ToxicDescriptor, attributes: Value?) -> (key: String, reason: String, hint: String)? {
        ToxiproxyClient.crashingAttributes(type: toxic.type, attributes: attributes)
    }

    public func validate(options: SourceNode?, sink: DiagnosticSink) {
        guard let options else { return }
        let parsed: Options
        do {
            parsed = try NodeDecoder().decode(Options.self, from: options, sink: sink)
        } catch {
            sink.report(error, fallbackLocation: options.location, path: nil)
            return
        }
        // A `${variable}` is checked when the run substitutes it.
        if let url = parsed.url, !url.contains("${") {
            do {
                _ = try ToxiproxyAddress(parsing: url)
            } catch let error as ArgumentError {
                sink.report(Diagnostic("toxiproxy backend url: \(error.message)", at: options["url"]?.location ?? options.location, hint: error.hint))
            } catch {}
        }
        if let token = parsed.token, !(token.stringValue?.contains("${") ?? false) {
            do {
                _ = try TokenSource.parse(token)
            } catch {
                sink.report(Diagnostic(error.description, at: options["token"]?.location ?? options.location, hint: error.hint))
            }
        }
        for (key, value) in [("connect_timeout", parsed.connectTimeout), ("timeout", parsed.timeout)] {
            if let value, !(value > 0 && value.isFinite) {
                sink.report(
                    Diagnostic(
                        "\(key) must be a number of seconds above 0, found \(Substitution.interpolated(.double(value)))",
                        at: options[key]?.location ?? options.location))
            }
        }
    }

    public func makeBackend(options: SourceNode?, context: BackendContext) async throws -> any ToxicBackend {
        let parsed = try options.map { try NodeDecoder().decode(Options.self, from: $0) } ?? Options()
        let source: String
        let text: String
        if let url = parsed.url {
            (source, text) = (context.agent.map { "agent \($0)'s url" } ?? "the profile's toxics.url", url)
        } else if let url = context.environment[Self.environmentKey], !url.isEmpty {
            (source, text) = (Self.environmentKey, url)
        } else {
            throw ToxiproxyBackendError(
                "no Toxiproxy address: give url: in the profile's toxics: section (e.g. toxics: {backend: toxiproxy, url: http://127.0.0.1:8474}) or set \(Self.environmentKey)"
            )
        }
        let address: ToxiproxyAddress
        do {
            address = try ToxiproxyAddress(parsing: text)
        } catch let error as ArgumentError {
            throw ToxiproxyBackendError("\(source): \(error.message)" + (error.hint.map { "; \($0)" } ?? ""))
        }
        var timeouts = ToxiproxyClient.Timeouts()
        if let seconds = parsed.connectTimeout { timeouts.connect = .seconds(saturating: seconds) }
        if let seconds = parsed.timeout { timeouts.request = .seconds(saturating: seconds) }
        let tokenSource: TokenSource?
        do {
            tokenSource = try parsed.token.map { value throws(ArgumentError) in try TokenSource.parse(value) }
        } catch {
            throw ToxiproxyBackendError(error.description + (error.hint.map { "; \($0)" } ?? ""))
        }
        let (token, tokenOrigin): (String?, String?)
        if let tokenSource, let resolved = try Self.nonEmpty(tokenSource, environment: context.environment, agent: context.agent) {
            let origin = context.agent == nil ? "the profile's toxics.token" : tokenSource.origin
            (token, tokenOrigin) = (resolved, context.sources["token"].map { "\(context.agent == nil ? origin + ": " : "")\($0)" } ?? origin)
        } else if let resolved = context.environment[Self.tokenEnvironmentKey], !resolved.isEmpty {
            (token, tokenOrigin) = (resolved, Self.tokenEnvironmentKey)
        } else {
            (token, tokenOrigin) = (nil, nil)
        }
        // Checked here rather than at load: the file may exist only where the suite runs (a mounted Secret).
        let caFile = parsed.caFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw ToxiproxyBackendError("ca_file \(caFile) cannot be read (the PEM file of the CA that signed \(address.url)'s certificate)")
        }
        let client = ToxiproxyClient(address: address, timeouts: timeouts, token: token, caFile: caFile)
        // Fail the run before any experiment when the server is not there (or is not Toxiproxy,
        // or does not take the token). For an agent the connect timeout bounds the wait.
        do {
            _ = try await client.version(timeout: max(timeouts.connect, .seconds(5)))
        } catch {
            await client.shutdown()
            throw ToxiproxyBackendError("\(error) (address from \(source)" + (tokenOrigin.map { ", token from \($0)" } ?? "") + ")")
        }
        // What dead runs left on this server goes first (the token the profile gives included).
        var environment = context.environment
        if let token { environment[Self.tokenEnvironmentKey] = token }
        await context.recoverDeadRuns(on: address.url, environment: environment)
        let access = ServerAccess(agent: context.agent, token: tokenSource, source: context.sources["token"], caFile: caFile)
        return ToxiproxyBackend(client: client, ledger: context.ledger, access: access)
    }

    /// The token a source gives; nil for an empty literal (no token, as before agents).
    private static func nonEmpty(_ source: TokenSource, environment: [String: String], agent: String?) throws -> String? {
        if case .literal(let text) = source, text.isEmpty { return nil }
        return try source.resolve(environment: environment)
    }
}

/// Why the `toxiproxy` backend could not start.
public struct ToxiproxyBackendError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

/// The Toxiproxy servers a run's activities name directly (a Chaos Toolkit experiment's
/// `toxiproxy_url`, a `toxiproxy.*` activity's `url`): one ``ToxiproxyBackend`` per address for
/// the whole run, so that what the run left on each server is removed when it ends.
public final class ToxiproxyConnections: Sendable {
    private let state = Mutex<(backends: [ToxiproxyAddress: ToxiproxyBackend], closed: Bool)>(([:], false))
    private let token: String?
    private let ledger: RunLedger
    private let recovery: (@Sendable (ToxiproxyAddress) async -> Void)?

    /// - Parameters:
    ///   - token: sent to every server (`TOXIPROXY_AUTH_TOKEN` by default).
    ///   - ledger: the run's ledger, where what is done on each server is recorded.
    ///   - recovery: recovers what dead runs left on a server, before the run first uses it.
    public init(
        token: String? = ProcessInfo.processInfo.environment[ToxiproxyBackendFactory.tokenEnvironmentKey], ledger: RunLedger = .disabled,
        recovery: (@Sendable (ToxiproxyAddress) async -> Void)? = nil
    ) {
        self.token = token
        self.ledger = ledger
        self.recovery = recovery
    }

    /// The backend for an address, made on first use.
    public func backend(for address: ToxiproxyAddress) throws -> ToxiproxyBackend {
        var firstUse: (@Sendable () async -> Void)?
        if let recovery { firstUse = { await recovery(address) } }
        return try state.withLock { state in
            guard !state.closed else { throw ActivityFailure("the run is ending: no new Toxiproxy connection to \(address.url)") }
            if let backend = state.backends[address] { return backend }
            let backend = ToxiproxyBackend(client: ToxiproxyClient(address: address, token: token), ledger: ledger, firstUse: firstUse)
            state.backends[address] = backend
            return backend
        }
    }

    /// Cleans up every server (see ``ToxiproxyBackend/shutdown()``) and closes the connections.
    public func shutdown() async {
        let backends = state.withLock { state in
            state.closed = true
            return Array(state.backends.values)
        }
        for backend in backends { await backend.shutdown() }
    }
}

/// The run's ``ToxiproxyConnections``, in ``Resources``.
public enum ToxiproxyConnectionsKey: ResourceKey {
    public typealias Value = ToxiproxyConnections
}

/// Provides ``ToxiproxyConnections`` to a run and cleans them up at its end (also on interrupt).
struct ToxiproxyConnectionsExtension: RunExtension {
    let name = "toxiproxy connections"
    let suiteKeys: [String] = []
    /// Before services, so that servers are cleaned up after the services stop.
    let stage = RunStage.network

    func plan(_ sections: RunSections, context: RunPlanContext, sink: DiagnosticSink) -> Void? { () }

    func start(_ plan: Void, setup: RunSetup) async throws -> (any RunExtensionHandle)? {
        let context = BackendContext(
            seed: setup.seed, environment: setup.environment, registry: setup.registry, ledger: setup.resources.ledger, progress: { setup.step($0) })
        let connections = ToxiproxyConnections(ledger: setup.resources.ledger) { address in
            await context.recoverDeadRuns(on: address.url, environment: context.environment)
        }
        setup.provide(ToxiproxyConnectionsKey.self, connections)
        return Handle(connections: connections)
    }

    struct Handle: RunExtensionHandle {
        let connections: ToxiproxyConnections

        func stop() async -> [String] {
            await connections.shutdown()
            return []
        }
    }
}
