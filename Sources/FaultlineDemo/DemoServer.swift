import NIOCore
import NIOPosix
import Synchronization

/// One of the demo services, bound to its port and ready to serve.
///
/// Binding and serving are separate so that a caller learns the port (`--port 0` picks a free one)
/// and can announce it before the first connection arrives. `run()` serves until its task is
/// cancelled, then closes the listening socket and every connection, and returns.
public struct DemoServer: Sendable {
    /// The service's name: `store`, `order-api` or `notifier`.
    public let name: String
    /// The address the socket is bound to, as a numeric host.
    public let host: String
    /// The bound port.
    public let port: Int

    private var serve: @Sendable () async throws -> Void

    init(name: String, address: SocketAddress?, serve: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.host = address?.ipAddress ?? "?"
        self.port = address?.port ?? 0
        self.serve = serve
    }

    /// `HOST:PORT`, with IPv6 hosts in brackets.
    public var address: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The line printed when the service is ready; the suite's service runner waits for it.
    public var readyLine: String {
        "faultline-demo \(name) listening on \(address)"
    }

    /// Serves connections until the calling task is cancelled.
    public func run() async throws {
        do {
            try await serve()
        } catch is CancellationError {
            // Being cancelled is how a server is asked to stop; stopping is not an error.
        }
    }

    /// The same server, running `cleanup` after it stopped serving.
    func onStop(_ cleanup: @escaping @Sendable () async -> Void) -> DemoServer {
        let serve = self.serve
        var server = self
        server.serve = {
            do {
                try await serve()
            } catch {
                await cleanup()
                throw error
            }
            await cleanup()
        }
        return server
    }

    /// Binds a TCP listener whose every connection is wrapped by `initializer` and then handled by
    /// `handle` in a child task of `run()`.
    static func bind<Inbound: Sendable, Outbound: Sendable>(
        name: String,
        host: String,
        port: Int,
        group: any EventLoopGroup,
        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<Inbound, Outbound>>,
        handle: @escaping @Sendable (NIOAsyncChannel<Inbound, Outbound>) async -> Void
    ) async throws -> DemoServer {
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in initializer(channel).map { AcceptedConnection($0) } }
        return DemoServer(name: name, address: listener.channel.localAddress) {
            try await withThrowingDiscardingTaskGroup { group in
                try await listener.executeThenClose { connections in
                    for try await accepted in connections {
                        guard let connection = accepted.take() else { continue }
                        group.addTask { await handle(connection) }
                    }
                }
            }
        }
    }
}

/// A connection the listener accepted, until the accept loop takes it.
///
/// When a server stops, connections accepted at that moment never reach the loop: the stream drops
/// them (those buffered when the loop is cancelled, and those that arrive after it finished). A
/// `NIOAsyncChannel` dropped without `executeThenClose` traps the process ("Deinited NIOAsyncWriter
/// without calling finish()"), so one never taken is closed here instead.
private final class AcceptedConnection<Inbound: Sendable, Outbound: Sendable>: Sendable {
    private let connection: Mutex<NIOAsyncChannel<Inbound, Outbound>?>

    init(_ connection: NIOAsyncChannel<Inbound, Outbound>) {
        self.connection = Mutex(connection)
    }

    /// The connection, once; nil after the first call.
    func take() -> NIOAsyncChannel<Inbound, Outbound>? {
        connection.withLock { connection in
            defer { connection = nil }
            return connection
        }
    }

    deinit {
        guard let dropped = take() else { return }
        Task { try? await dropped.executeThenClose { _, _ in } }
    }
}
