import FaultlineTesting
@testable import FaultlineDemo
import FaultlineNetwork
import FaultlineProcess
import FaultlineTestSupport
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
        notifyTimeout: Duration? = .seconds(30),  // far longer than the binary's 1 s: a full test run starves 2 cores
        notifyPolicy: NotifyPolicy = .bestEffort,
        notifyBreakerThreshold: Int = 0,
        notifyBreakerCooldown: Duration = .seconds(2),
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
            notifyPolicy: notifyPolicy,
            notifyBreakerThreshold: notifyBreakerThreshold,
            notifyBreakerCooldown: notifyBreakerCooldown
        )
        let system = OrderSystem(store: store, notifier: notifier, api: try await OrderAPI.bind(options: options))
        try await withRunning([store, notifier, system.api]) { try await body(system) }
    }

    /// `POST /orders`.
    func order(_ item: String = "book", quantity: Int = 1, timeout: Duration = .seconds(30)) async throws -> HTTPClientResponse {
        try await post("/orders", #"{"item": "\#(item)", "quantity": \#(quantity)}"#, timeout: timeout)
    }

    func post(_ path: String, _ body: String, timeout: Duration = .seconds(30)) async throws -> HTTPClientResponse {
        try await HTTPClient.request(.POST, apiEndpoint, path: path, json: ByteBuffer(string: body), timeout: timeout)
    }

    func get(_ path: String, from endpoint: HTTPEndpoint? = nil) async throws -> HTTPClientResponse {
        try await HTTPClient.request(.GET, endpoint ?? apiEndpoint, path: path, timeout: .seconds(30))
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
        let relay = try await TCPRelay(to: HostPort(host: "127.0.0.1", port: try FreePort.take()))
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

/// The `faultline-demo` binary `swift test` built beside this test bundle.
let demoBinary: String = (try? BuiltProduct.path("faultline-demo")) ?? "faultline-demo"
