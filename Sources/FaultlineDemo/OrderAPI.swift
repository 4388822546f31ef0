import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// What the order API does when the notifier cannot be reached.
public enum NotifyPolicy: String, Sendable, CaseIterable {
    /// The order is still confirmed (201) with `"notified": false`.
    case bestEffort = "best-effort"
    /// The order fails with 502.
    case required
}

/// The settings of `faultline-demo order-api`.
public struct OrderAPIOptions: Sendable {
    /// The Redis-protocol store holding the orders.
    public var store: HostPort
    /// The notifier told about every new order.
    public var notifier: HTTPEndpoint
    /// Timeout, retries and breaker of the store client; all off by default.
    public var storeOptions: StoreOptions
    /// How long a notification may take; `nil` waits for ever.
    public var notifyTimeout: Duration?
    /// What a failed notification does to the order.
    public var notifyPolicy: NotifyPolicy
    /// Consecutive failed notifications that open the notifier's circuit breaker (its own, not the
    /// store's); 0 turns it off. While it is open, orders are not notified and the notifier is not
    /// called.
    public var notifyBreakerThreshold: Int
    /// How long the notifier's open breaker skips notifications before it lets one trial through.
    public var notifyBreakerCooldown: Duration

    /// - Parameters: See the properties.
    public init(
        store: HostPort,
        notifier: HTTPEndpoint,
        storeOptions: StoreOptions = StoreOptions(),
        notifyTimeout: Duration? = .seconds(1),
        notifyPolicy: NotifyPolicy = .bestEffort,
        notifyBreakerThreshold: Int = 0,
        notifyBreakerCooldown: Duration = .seconds(2)
    ) {
        self.store = store
        self.notifier = notifier
        self.storeOptions = storeOptions
        self.notifyTimeout = notifyTimeout
        self.notifyPolicy = notifyPolicy
        self.notifyBreakerThreshold = notifyBreakerThreshold
        self.notifyBreakerCooldown = notifyBreakerCooldown
    }
}

/// `faultline-demo order-api`: an HTTP/1.1 JSON service that stores orders in a Redis-protocol store
/// and notifies the notifier about each.
///
/// - `POST /orders` `{"item": "book", "quantity": 2}` → 201 `{"id", "item", "quantity", "notified"}`;
///   400 on bad input; 500 `{"error": "store: …"}` when the store fails; 503 when the breaker is open;
///   502 when the notification fails (or the notifier's open breaker skips it) and `--notify required`.
/// - `GET /orders/{id}` → 200 with the stored order, or 404.
/// - `GET /health` → 200 (liveness: no store call); `GET /health/ready` → 200 or 503 after a store PING.
/// - `GET /stats` → the counters in `OrderStats`.
public enum OrderAPI {
    /// Binds the order API and connects to its store (a failure to connect is logged, not fatal).
    /// - Parameters:
    ///   - host: The address to listen on.
    ///   - port: The port; 0 picks a free one.
    ///   - options: Store, notifier and resilience settings.
    ///   - log: Receives one line per notable event (store connection lost, breaker opened, ...).
    ///   - group: The event loops.
    public static func bind(
        host: String = "127.0.0.1",
        port: Int = 0,
        options: OrderAPIOptions,
        log: @escaping @Sendable (String) -> Void = { _ in },
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> DemoServer {
        let stats = OrderStats()
        let store = StoreClient(
            host: options.store.host,
            port: options.store.port,
            options: options.storeOptions,
            events: StoreClientEvents(
                retried: { stats.update { $0.retries += 1 } },
                reconnected: { stats.update { $0.reconnects += 1 } },
                failed: { error in
                    stats.update {
                        if case .breakerOpen = error { $0.breakerRejections += 1 } else { $0.storeErrors += 1 }
                    }
                },
                log: log
            ),
            group: group
        )
        await store.connectEagerly()
        let service = OrderService(store: store, options: options, stats: stats, log: log, group: group)
        do {
            let server = try await HTTPServer.bind(name: "order-api", host: host, port: port, group: group) { request in
                await service.handle(request)
            }
            return server.onStop { await store.shutdown() }
        } catch {
            await store.shutdown()
            throw error
        }
    }
}

/// The counters on `GET /stats`.
final class OrderStats: Sendable {
    struct Counters: Sendable {
        var orders = 0
        var storeErrors = 0
        var retries = 0
        var reconnects = 0
        var breakerRejections = 0
        var notificationsSent = 0
        var notificationsFailed = 0
        /// Notifications the notifier's open breaker skipped (the notifier was not called).
        var notificationsSkipped = 0
        /// Whether the last notification failed; failures are logged when this changes, not one per order.
        var notifierFailing = false
    }

    private let counters = Mutex(Counters())

    func update<T>(_ body: (inout Counters) -> T) -> T {
        counters.withLock { body(&$0) }
    }
}

/// The order API's request handling.
final class OrderService: Sendable {
    private let store: StoreClient
    private let options: OrderAPIOptions
    private let stats: OrderStats
    private let log: @Sendable (String) -> Void
    private let group: any EventLoopGroup
    private let notifyBreaker: Mutex<CircuitBreaker>

    init(store: StoreClient, options: OrderAPIOptions, stats: OrderStats, log: @escaping @Sendable (String) -> Void, group: any EventLoopGroup) {
        self.store = store
        self.options = options
        self.stats = stats
        self.log = log
        self.group = group
        self.notifyBreaker = Mutex(CircuitBreaker(threshold: options.notifyBreakerThreshold, cooldown: options.notifyBreakerCooldown))
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let path = request.path.split(separator: "/").map(String.init)
        func only(_ method: HTTPMethod, _ respond: () async -> HTTPResponse) async -> HTTPResponse {
            guard request.method == method else {
                return .error(.methodNotAllowed, "use \(method) \(request.path)", headers: ["Allow": "\(method)"])
            }
            return await respond()
        }
        switch path {
        case ["orders"]: return await only(.POST) { await createOrder(request.body) }
        case _ where path.count == 2 && path[0] == "orders": return await only(.GET) { await order(id: path[1]) }
        case ["health"]: return await only(.GET) { .json(.ok, ["status": "ok"]) }
        case ["health", "ready"]: return await only(.GET) { await readiness() }
        case ["stats"]: return await only(.GET) { await statistics() }
        default: return .error(.notFound, "no route for \(request.method) \(request.path)")
        }
    }

    private func createOrder(_ body: ByteBuffer) async -> HTTPResponse {
        let input: NewOrder
        switch NewOrder.parse(body) {
        case .success(let order): input = order
        case .failure(let message): return .error(.badRequest, message.description)
        }
        let id: Int64
        do {
            guard let next = try await store.call(["INCR", "orders:seq"]).integerValue else {
                return .error(.internalServerError, "store: INCR orders:seq did not answer an integer")
            }
            id = next
            let order = StoredOrder(id: id, item: input.item, quantity: input.quantity, createdAt: Date.now.formatted(.iso8601))
            let json = String(decoding: try JSONEncoder.demo.encode(order), as: UTF8.self)
            _ = try await store.call(["SET", "order:\(id)", json])
        } catch {
            return storeFailure(error)
        }
        stats.update { $0.orders += 1 }

        let notified: Bool
        switch await notify(orderID: id) {
        case nil:
            notified = true
        case let reason? where options.notifyPolicy == .required:
            return .json(.badGateway, NotifyFailure(error: "notifier: \(reason)", id: id))
        case _?:
            notified = false
        }
        return .json(.created, CreatedOrder(id: id, item: input.item, quantity: input.quantity, notified: notified))
    }

    private func order(id: String) async -> HTTPResponse {
        guard let number = Int64(id), number > 0 else { return .error(.notFound, "no order \(id)") }
        do {
            guard case .bulkString(let json?) = try await store.call(["GET", "order:\(number)"]) else {
                return .error(.notFound, "no order \(number)")
            }
            return HTTPResponse(status: .ok, headers: ["Content-Type": "application/json"], body: json)
        } catch {
            return storeFailure(error)
        }
    }

    private func readiness() async -> HTTPResponse {
        do {
            _ = try await store.call(["PING"])
            return .json(.ok, ["status": "ready"])
        } catch {
            return .json(.serviceUnavailable, ["status": "unavailable", "error": storeFailureMessage(error)])
        }
    }

    private func statistics() async -> HTTPResponse {
        let breaker = await store.breakerState
        let counters = stats.update { $0 }
        return .json(
            .ok,
            StatsBody(
                orders: counters.orders, storeErrors: counters.storeErrors, retries: counters.retries,
                reconnects: counters.reconnects, breaker: breaker, breakerRejections: counters.breakerRejections,
                notificationsSent: counters.notificationsSent, notificationsFailed: counters.notificationsFailed,
                notifierBreaker: notifyBreaker.withLock { $0.stateName }, notificationsSkipped: counters.notificationsSkipped
            ))
    }

    /// Tells the notifier, unless its breaker is open; returns why it failed or was skipped, or
    /// `nil` when it succeeded.
    private func notify(orderID: Int64) async -> String? {
        // nil: the open breaker skips this notification.
        guard let isTrial = notifyBreaker.withLock({ try? $0.admit(now: .now) }) else {
            stats.update { $0.notificationsSkipped += 1 }
            return "notifier circuit breaker open"
        }
        var failure: String?
        do {
            let body = ByteBuffer(string: #"{"order_id":\#(orderID)}"#)
            let response = try await HTTPClient.request(
                .POST, options.notifier, path: "/notify", json: body, timeout: options.notifyTimeout, group: group)
            if !(200..<300).contains(response.status.code) { failure = "answered \(response.status.code)" }
        } catch {
            failure = NetworkError.describe(error)
        }
        let opened = notifyBreaker.withLock { breaker in
            if failure == nil {
                breaker.recordSuccess()
                return false
            }
            if isTrial && Task.isCancelled {
                breaker.abandonTrial()
                return false
            }
            return breaker.recordFailure(now: .now)
        }
        if opened { log("notifier circuit breaker opened; notifications skipped for \(options.notifyBreakerCooldown.milliseconds) ms") }
        let changed = stats.update { counters in
            if failure == nil { counters.notificationsSent += 1 } else { counters.notificationsFailed += 1 }
            defer { counters.notifierFailing = failure != nil }
            return counters.notifierFailing != (failure != nil)
        }
        if changed {
            log(failure.map { "notifications to \(options.notifier) failing: \($0)" } ?? "notifications to \(options.notifier) succeed again")
        }
        return failure
    }

    private func storeFailure(_ error: any Error) -> HTTPResponse {
        switch error {
        case StoreError.breakerOpen(let retryAfter):
            let seconds = max(1, (retryAfter.milliseconds + 999) / 1000)
            return .error(.serviceUnavailable, storeFailureMessage(error), headers: ["Retry-After": String(seconds)])
        case is CancellationError:
            return .error(.serviceUnavailable, "shutting down")
        default:
            return .error(.internalServerError, storeFailureMessage(error))
        }
    }

    private func storeFailureMessage(_ error: any Error) -> String {
        switch error {
        case StoreError.connectionLost, StoreError.breakerOpen: "\(error)"
        default: "store: \(NetworkError.describe(error))"
        }
    }
}

/// The body of `POST /orders`.
struct NewOrder {
    var item: String
    var quantity: Int

    static let example = #"{"item": "book", "quantity": 2}"#

    /// The order, or a message saying what is wrong with the body.
    static func parse(_ body: ByteBuffer) -> Result<NewOrder, InvalidOrder> {
        struct Loose: Decodable {
            var item: String?
            var quantity: Int?
        }
        let loose: Loose
        do {
            loose = try JSONDecoder().decode(Loose.self, from: Data(body.readableBytesView))
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.first?.stringValue == "quantity" {
            return .failure(InvalidOrder("quantity must be a positive integer, e.g. \(example)"))
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.first?.stringValue == "item" {
            return .failure(InvalidOrder("item must be a non-empty string, e.g. \(example)"))
        } catch {
            return .failure(InvalidOrder("the body must be a JSON object like \(example)"))
        }
        guard let item = loose.item, !item.trimmingCharacters(in: .whitespaces).isEmpty else {
            return .failure(InvalidOrder("item is required: a non-empty string, e.g. \(example)"))
        }
        guard let quantity = loose.quantity else {
            return .failure(InvalidOrder("quantity is required: a positive integer, e.g. \(example)"))
        }
        guard quantity > 0 else {
            return .failure(InvalidOrder("quantity must be a positive integer, not \(quantity)"))
        }
        return .success(NewOrder(item: item, quantity: quantity))
    }
}

/// Why a `POST /orders` body was refused.
struct InvalidOrder: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An order as kept in the store under `order:<id>`.
struct StoredOrder: Codable {
    var id: Int64
    var item: String
    var quantity: Int
    var createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, item, quantity
        case createdAt = "created_at"
    }
}

/// The 201 answer to `POST /orders`.
struct CreatedOrder: Encodable {
    var id: Int64
    var item: String
    var quantity: Int
    var notified: Bool
}

/// The 502 answer when a required notification failed; the order itself is stored.
struct NotifyFailure: Encodable {
    var error: String
    var id: Int64
}

/// The body of `GET /stats`.
struct StatsBody: Encodable {
    var orders: Int
    var storeErrors: Int
    var retries: Int
    var reconnects: Int
    var breaker: String
    var breakerRejections: Int
    var notificationsSent: Int
    var notificationsFailed: Int
    var notifierBreaker: String
    var notificationsSkipped: Int

    enum CodingKeys: String, CodingKey {
        case orders, retries, reconnects, breaker
        case storeErrors = "store_errors"
        case breakerRejections = "breaker_rejections"
        case notificationsSent = "notifications_sent"
        case notificationsFailed = "notifications_failed"
        case notifierBreaker = "notifier_breaker"
        case notificationsSkipped = "notifications_skipped"
    }
}
