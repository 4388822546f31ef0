import ArgumentParser
import FaultlineKit
import FaultlineProxy
import Foundation
import Synchronization

/// `faultline proxy`: the in-process proxy as a standalone server that Toxiproxy clients drive.
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run TCP proxies with network faults, driven by a Toxiproxy-compatible HTTP API.",
        discussion: """
            Existing Toxiproxy clients work unchanged (Toxiproxy \(AdminAPI.compatibleVersion) API): create proxies, add \
            latency, bandwidth, slow_close, timeout, reset_peer, slicer and limit_data toxics, disable proxies. \
            Faultline's additions: HTTP toxics, client conditions, and proxies that terminate TLS (tls) or \
            originate it (upstream_tls). Runs until SIGINT or SIGTERM, then closes every proxy and connection. The \
            first line on standard output names the API address (useful with --port 0); a line follows for each \
            self-signed TLS proxy of --config, naming its CA file.
            """)

    // Each option also answers to toxiproxy-server's single-dash spelling (`-host=0.0.0.0`,
    // `-port 8474`, `-config FILE`, `-seed N`), so scripts and images that start Toxiproxy
    // (testcontainers' module runs `-host=0.0.0.0 -config=…`) can start this instead.
    @Option(name: [.long, .customLong("host", withSingleDash: true)], help: "Address the admin API listens on.")
    var host = "127.0.0.1"

    @Option(name: [.long, .customLong("port", withSingleDash: true)], help: "Port of the admin API (0 picks a free one).")
    var port = 8474

    @Option(
        name: [.long, .customLong("config", withSingleDash: true)],
        help: ArgumentHelp(
            "Create these proxies at startup: a JSON array, as Toxiproxy's -config and POST /populate take, where each proxy may also list its toxics and give tls and upstream_tls.",
            valueName: "proxies.json"))
    var config: String?

    @Option(
        name: [.long, .customLong("seed", withSingleDash: true)],
        help: "Seed for toxicity rolls and toxic randomness, so a run can be replayed (default: random).")
    var seed: UInt64?

    /// toxiproxy-server's `-proxy-metrics` and `-runtime-metrics`: taken and ignored, since
    /// `/metrics` always serves the proxies' series, and there is no Go runtime to describe.
    @Flag(
        name: [.customLong("proxy-metrics"), .customLong("proxy-metrics", withSingleDash: true)],
        help: .hidden)
    var proxyMetrics = false
    @Flag(
        name: [.customLong("runtime-metrics"), .customLong("runtime-metrics", withSingleDash: true)],
        help: .hidden)
    var runtimeMetrics = false

    @Option(
        help: ArgumentHelp(
            "Require this file's token as Authorization: Bearer on every API request (default: the TOXIPROXY_AUTH_TOKEN environment variable).",
            valueName: "path"))
    var tokenFile: String?

    @Option(
        name: .customLong("allowed-host"),
        help: ArgumentHelp(
            "Also answer requests whose Host is this name (repeatable; .example.com allows its subdomains). This machine's addresses, localhost and its host name are always allowed.",
            valueName: "name"))
    var allowedHosts: [String] = []

    @Flag(help: "Listen on a non-loopback address without a token (anyone who reaches the port can then drive the proxies).")
    var insecure = false

    /// The environment variable Toxiproxy 2.13 reads its API token from.
    static let tokenVariable = "TOXIPROXY_AUTH_TOKEN"

    func validate() throws {
        if !NumberRange.listenPort.contains(Double(port)) { throw ValidationError(NumberRange.listenPort.message("--port", found: Double(port))) }
    }

    func run() async throws {
        let terminal = Terminal.shared
        let registry = CommandEnvironment.registry
        let seed = seed ?? UInt64.random(in: 1...UInt64.max)
        // A proxy given no listen address listens where the API does: on loopback, or on every
        // address (Toxiproxy's choice) when the API is open beyond this machine.
        let server = ProxyServer(
            toxicTypes: registry.toxics, seed: seed, defaultListen: AdminServer.isLoopback(host: host) ? "127.0.0.1:0" : ":0")
        let termination = TerminationSignal()
        termination.install()

        let token: String?
        do {
            token = try readToken()
        } catch {
            await server.shutdown()
            terminal.error("error: \(error)")
            throw ExitCode(2)
        }
        if token == nil, !AdminServer.isLoopback(host: host) {
            if !insecure {
                await server.shutdown()
                terminal.error(
                    "error: the API would listen on \(host), beyond this machine, without a token: anyone who reaches it could point proxies "
                        + "anywhere and cut connections. Set \(Self.tokenVariable) (or --token-file), listen on 127.0.0.1, or pass --insecure.")
                throw ExitCode(2)
            }
            terminal.error("warning: the API listens on \(host) without a token (--insecure): anyone who reaches it can drive the proxies")
        }
        let configuration = AdminServer.Configuration(access: AdminAccess(token: token, allowedHosts: allowedHosts))
        let admin: AdminServer
        do {
            admin = try await AdminServer.start(
                api: AdminAPI(server: server), host: host, port: port, group: server.group, configuration: configuration)
        } catch {
            await server.shutdown()
            terminal.error("error: cannot listen on \(host):\(port): \(error)")
            throw ExitCode(1)
        }
        var populated: [ProxyDefinition] = []
        if let config {
            do {
                populated = try await populate(server, from: config)
            } catch {
                await admin.stop()
                await server.shutdown()
                // A diagnostic names file:line:column itself.
                terminal.error(error is Diagnostic ? "error: \(error)" : "error: \(config): \(error)")
                throw ExitCode(2)
            }
        }
        terminal.write(
            "faultline proxy: API on http://\(admin.address) (Toxiproxy \(AdminAPI.compatibleVersion) compatible), seed \(seed)"
                + (token == nil ? "" : ", bearer token required") + "\n")
        for proxy in populated {
            guard let tls = proxy.tls, let ca = tls.ca else { continue }
            terminal.write("faultline proxy: proxy \(proxy.name) terminates TLS on \(proxy.listen); clients trust the CA in \(ca)\n")
        }

        let signal = await termination.wait()
        terminal.error("\(signal): closing every proxy")
        await admin.stop()
        await server.shutdown()
    }

    /// The API token: the --token-file's content (without the line end), else the environment's;
    /// nil when neither gives one. Never printed.
    private func readToken() throws -> String? {
        let token: String
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw ValidationError("--token-file \(tokenFile): cannot read the file")
            }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw ValidationError("--token-file \(tokenFile): the file is empty; write the token in it") }
        } else {
            guard let value = ProcessInfo.processInfo.environment[Self.tokenVariable], !value.isEmpty else { return nil }
            token = value
        }
        guard token.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw ValidationError(
                "the token (\(tokenFile.map { "--token-file \($0)" } ?? Self.tokenVariable)) must be printable ASCII without spaces, as an HTTP header carries it"
            )
        }
        return token
    }

    private func populate(_ server: ProxyServer, from path: String) async throws -> [ProxyDefinition] {
        let document = try DocumentLoader.load(path: path)
        guard let elements = document.elements else {
            throw Diagnostic("expected a JSON array of proxies ({name, listen, upstream, enabled, toxics})", at: document.location)
        }
        var requests: [ProxyServer.ProxyRequest] = []
        let directory = (path as NSString).deletingLastPathComponent
        let sink = DiagnosticSink()
        for (index, element) in elements.enumerated() {
            let entry = try NodeDecoder(rejectsUnknownKeys: false).decode(ConfigProxy.self, from: element, path: DocumentPath([.index(index)]))
            // TLS files are named relative to the config file, and checked (with their line) before anything starts.
            let tls = entry.tls?.resolvingFiles(against: directory)
            let upstreamTLS = entry.upstreamTLS?.resolvingFiles(against: directory)
            ProxyTLSCheck.report(tls: tls, upstreamTLS: upstreamTLS, node: element, path: DocumentPath([.index(index)]), sink: sink)
            // The API takes an upstream that is not host:port, as Toxiproxy does (its clients' tests
            // create such proxies); in a config file it is a mistake, shown at its line.
            if let upstream = entry.upstream, !upstream.isEmpty, !ProxyServer.isUpstreamAddress(upstream) {
                sink.report(
                    Diagnostic(
                        "upstream must be host:port, found \"\(upstream)\"", at: element["upstream"]?.location ?? element.location,
                        path: DocumentPath([.index(index), .key("upstream")])))
            }
            requests.append(
                ProxyServer.ProxyRequest(
                    name: entry.name ?? "", listen: entry.listen ?? "", upstream: entry.upstream ?? "", enabled: entry.enabled ?? true,
                    toxics: entry.toxics?.map {
                        ProxyServer.ToxicRequest(
                            name: $0.name, type: $0.type ?? "", stream: $0.stream, toxicity: $0.toxicity, attributes: $0.attributes,
                            clients: $0.clients)
                    }, tls: tls, upstreamTLS: upstreamTLS))
        }
        if let first = sink.diagnostics.first { throw first }
        let (proxies, error) = await server.populate(requests)
        guard let error else { return proxies }
        // Point at the entry (or its toxic) the error is about.
        let entry = error.entry.flatMap { elements.indices.contains($0 - 1) ? elements[$0 - 1] : nil }
        let toxic = error.entryToxic.flatMap { number in entry?["toxics"]?.elements.flatMap { $0.indices.contains(number - 1) ? $0[number - 1] : nil }
        }
        // A bad address is the entry's field it names (`upstream must be host:port`, `listen tcp: …`).
        let field = ["upstream", "listen"].first { error.message.hasPrefix($0) }.flatMap { entry?[$0] }
        throw Diagnostic(error.message, at: (toxic ?? field ?? entry)?.location ?? document.location)
    }

    /// One entry of a Toxiproxy config file, with our extension `toxics`.
    private struct ConfigProxy: Decodable {
        var name: String?
        var listen: String?
        var upstream: String?
        var enabled: Bool?
        var toxics: [ConfigToxic]?
        /// Our extension: TLS terminated on listen and originated to the upstream.
        var tls: ListenTLS?
        var upstreamTLS: UpstreamTLS?

        enum CodingKeys: String, CodingKey {
            case name, listen, upstream, enabled, toxics, tls
            case upstreamTLS = "upstream_tls"
        }
    }

    /// A toxic as `POST /proxies/{name}/toxics` takes it.
    private struct ConfigToxic: Decodable {
        var name: String?
        var type: String?
        var stream: String?
        var toxicity: Double?
        var attributes: Value?
        /// Our extension: the client addresses or CIDR blocks the toxic applies to.
        var clients: [String]?
    }
}

/// Waits for the first SIGINT or SIGTERM; a second one while the proxies close exits at once.
///
/// The handlers are in place when ``install()`` returns (``SignalPipe``), so a signal sent as soon
/// as the API is up is never lost; a thread of its own reads them.
final class TerminationSignal: Sendable {
    private let first = Mutex<(name: String?, waiter: CheckedContinuation<String, Never>?)>((nil, nil))

    func install() {
        Thread { [self] in
            while let number = SignalPipe.next() {
                let name = SignalPipe.name(number)
                let waiter = first.withLock { state -> CheckedContinuation<String, Never>?? in
                    guard state.name == nil else { return nil }
                    state.name = name
                    defer { state.waiter = nil }
                    return .some(state.waiter)
                }
                guard let waiter else { exit(130) }
                waiter?.resume(returning: name)
            }
        }.start()
        SignalPipe.install([SIGINT, SIGTERM])
    }

    func wait() async -> String {
        await withCheckedContinuation { continuation in
            let received = first.withLock { state -> String? in
                if state.name == nil { state.waiter = continuation }
                return state.name
            }
            if let received { continuation.resume(returning: received) }
        }
    }
}
