import NIOCore
import NIOPosix
import Synchronization

/// `faultline-demo notifier`: receives the order API's notifications and counts them.
///
/// - `POST /notify` → 204, counted.
/// - `GET /notifications` → `{"count": n}`.
/// - `GET /health` → 200 `{"status": "ok"}`.
public enum NotifierServer {
    /// Binds the notifier.
    /// - Parameters:
    ///   - host: The address to listen on.
    ///   - port: The port; 0 picks a free one.
    ///   - group: The event loops.
    public static func bind(
        host: String = "127.0.0.1",
        port: Int = 0,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> DemoServer {
        let count = Atomic<Int>(0)
        return try await HTTPServer.bind(name: "notifier", host: host, port: port, group: group) { request in
            switch (request.method, request.path) {
            case (.POST, "/notify"):
                count.add(1, ordering: .relaxed)
                return HTTPResponse(status: .noContent)
            case (.GET, "/notifications"):
                return .json(.ok, ["count": count.load(ordering: .relaxed)])
            case (.GET, "/health"):
                return .json(.ok, ["status": "ok"])
            case (_, "/notify"), (_, "/notifications"), (_, "/health"):
                return .error(.methodNotAllowed, "no \(request.method) on \(request.path)")
            default:
                return .error(.notFound, "no route for \(request.method) \(request.path)")
            }
        }
    }
}
