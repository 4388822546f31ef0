import FaultlineTesting
@testable import FaultlineDemo
import FaultlineNetwork
import FaultlineProcess
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Runs `servers` for the duration of `body`, then stops them (cancellation closes every socket).
func withRunning<T>(_ servers: [DemoServer], _ body: () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for server in servers { group.addTask { try await server.run() } }
        defer { group.cancelAll() }
        return try await body()
    }
}

/// The built-in store, a notifier and an order API wired together, in process, on free ports.
struct OrderSystem {
    var store: DemoServer
    var notifier: DemoServer
    var api: DemoServer

    var apiEndpoint: HTTPEndpoint { HTTPEndpoint(host: api.host, port: api.port) }
    var notifierEndpoint: HTTPEndpoint { HTTPEndpoint(host: notifier.host, port: notifier.port) }

    /// Starts the system and runs `body` with it.
    /// - Parameters:
    ///   - storeAddress: Where the API finds its store; defaults to the built-in store (e.g. a relay instead).
    ///   - notifierAddress: Where the API finds its notifier; defaults to the notifier.
    static func with(
        storeOptions: StoreOptions = StoreOptions(),
        notifyTimeout: Duration? = .seconds(10),  // longer than the binary's 1 s: test machines are loaded
        notifyPolicy: NotifyPolicy = .bestEffort,
        storeAddress: ((DemoServer) async throws -> HostPort)? = nil,
        notifierAddress: HTTPEndpoint? = nil,
        _ body: (OrderSystem) async throws -> Void
    ) async throws {
        let store = try await StoreServer.bind()
        let notifier = try await NotifierServer.bind()
        let options = OrderAPIOptions(
            store: try await storeAddress?(store) ?? HostPort(host: store.host, port: store.port),
            notifier: notifierAddress ?? HTTPEndpoint(host: notifier.host, port: notifier.port),
            storeOptions: storeOptions,
            notifyTimeout: notifyTimeout,
            notifyPolicy: notifyPolicy
        )
        let system = OrderSystem(store: store, notifier: notifier, api: try await OrderAPI.bind(options: options))
        try await withRunning([store, notifier, system.api]) { try await body(system) }
    }

    /// `POST /orders`.
    func order(_ item: String = "book", quantity: Int = 1, timeout: Duration = .seconds(10)) async throws -> HTTPClientResponse {
        try await post("/orders", #"{"item": "\#(item)", "quantity": \#(quantity)}"#, timeout: timeout)
    }

    func post(_ path: String, _ body: String, timeout: Duration = .seconds(10)) async throws -> HTTPClientResponse {
        try await HTTPClient.request(.POST, apiEndpoint, path: path, json: ByteBuffer(string: body), timeout: timeout)
    }

    func get(_ path: String, from endpoint: HTTPEndpoint? = nil) async throws -> HTTPClientResponse {
        try await HTTPClient.request(.GET, endpoint ?? apiEndpoint, path: path, timeout: .seconds(10))
    }

    /// `GET /stats` as a JSON object.
    func stats() async throws -> [String: any Sendable] {
        try #require(try await get("/stats").json)
    }
}

extension HTTPClientResponse {
    /// A key of the JSON body, as text.
    subscript(_ key: String) -> String? {
        json?[key].map { "\($0)" }
    }

    var text: String { String(buffer: body) }
}

/// A TCP relay placed between a client and a server, to break the link the way a network fault does.
final class TCPRelay: Sendable {
    enum Mode {
        /// Pass bytes both ways.
        case forward
        /// Accept connections and read what arrives, but never pass it on nor answer.
        case blackhole
    }

    private final class State: Sendable {
        let lock = Mutex<(mode: Mode, open: [any Channel])>((.forward, []))
    }

    let port: Int
    private let listener: any Channel
    private let state = State()

    /// Listens on a free loopback port and relays to `target`.
    init(to target: HostPort, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        let state = self.state
        listener = try await ServerBootstrap(group: group)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                let mode = state.lock.withLock { state in
                    state.open.append(inbound)
                    return state.mode
                }
                guard mode == .forward else {
                    // Read (so the sender is not blocked by flow control) and drop everything.
                    return inbound.setOption(.autoRead, value: true)
                }
                return ClientBootstrap(group: inbound.eventLoop)
                    .channelInitializer { outbound in outbound.pipeline.addHandler(RelayHandler(partner: inbound)) }
                    .connect(host: target.host, port: target.port)
                    .flatMap { outbound in
                        state.lock.withLock { $0.open.append(outbound) }
                        return inbound.pipeline.addHandler(RelayHandler(partner: outbound)).flatMap {
                            inbound.setOption(.autoRead, value: true)
                        }
                    }
                    .flatMapErrorThrowing { _ in inbound.close(promise: nil) }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        port = listener.localAddress!.port!
    }

    /// A listener that accepts connections, reads, and never answers.
    static func silent() async throws -> TCPRelay {
        let relay = try await TCPRelay(to: try await closedPort())
        relay.set(.blackhole)
        return relay
    }

    var address: HostPort { HostPort(host: "127.0.0.1", port: port) }

    /// How new connections are treated; existing ones keep theirs.
    func set(_ mode: Mode) {
        state.lock.withLock { $0.mode = mode }
    }

    /// Closes every connection relayed so far, both sides, as a proxy's `timeout` toxic does.
    func severAll() async {
        let open = state.lock.withLock { state in
            defer { state.open.removeAll() }
            return state.open
        }
        for channel in open { try? await channel.close() }
    }

    /// Stops listening and closes every relayed connection.
    func close() {
        let open = state.lock.withLock { $0.open }
        for channel in open + [listener] { channel.close(promise: nil) }
    }
}

/// Writes what one side reads to the other, and closes the other when one closes.
private final class RelayHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    let partner: any Channel

    init(partner: any Channel) {
        self.partner = partner
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// A loopback port with nothing listening on it: connecting is refused, and a server a test
/// starts can bind it. It lies below the ephemeral range (see ``FreePort``): a port from
/// `bind(0)` is taken back within seconds on a machine this busy, which once made redis-server
/// fail with "Address already in use".
func closedPort() async throws -> HostPort {
    HostPort(host: "127.0.0.1", port: try FreePort.take())
}

/// The path of an executable on PATH, if installed.
func installed(_ name: String) -> String? {
    try? ChildProcess.resolveExecutable(name)
}

/// Runs a program to its end and returns its exit status and its output (stdout and stderr).
func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
    let child = try ChildProcess(
        executable: try ChildProcess.resolveExecutable(executable), arguments: arguments,
        environment: ProcessInfo.processInfo.environment)
    let termination = await child.wait()
    let (stdout, stderr) = await child.collectedOutput()
    return (termination.status, (stdout + stderr).trimmingCharacters(in: .whitespacesAndNewlines))
}

/// A long-running child (a server) whose output lines are kept, stopped with `stop()`.
final class ServerProcess: Sendable {
    private final class Lines: Sendable {
        let lock = Mutex<[String]>([])
        func append(_ line: String) { lock.withLock { $0.append(line) } }
    }

    let child: ChildProcess
    private let lines = Lines()

    init(_ executable: String, _ arguments: [String]) throws {
        let lines = self.lines
        child = try ChildProcess(
            executable: try ChildProcess.resolveExecutable(executable), arguments: arguments,
            environment: ProcessInfo.processInfo.environment,
            stdout: .lines(lines.append), stderr: .lines(lines.append))
    }

    /// Every line written so far, stdout and stderr.
    var output: [String] { lines.lock.withLock { $0 } }

    /// Waits for a line starting with `prefix` and returns it.
    func line(startingWith prefix: String) async throws -> String {
        let seen = await eventually { output.contains { $0.hasPrefix(prefix) } || child.termination != nil }
        return try #require(output.first { $0.hasPrefix(prefix) }, "no line \"\(prefix)…\" (seen: \(seen)); output: \(output)")
    }

    /// SIGTERM, then SIGKILL if it does not end; returns how it ended.
    @discardableResult
    func stop() async -> ChildProcess.Termination {
        await child.terminate(grace: 5)
    }
}

/// The `faultline-demo` binary `swift test` built beside this test bundle.
let demoBinary: String = (try? BuiltProduct.path("faultline-demo")) ?? "faultline-demo"

/// Polls `condition` (another process's progress, or a time-based state) until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(10), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

/// Whether CI runs us: there, tests that need an installed tool fail rather than skip when it is missing.
let isCI = ProcessInfo.processInfo.environment["CI"] != nil
