import ArgumentParser
import Dispatch
import FaultlineDemo
import FaultlineKit
import Foundation

/// `faultline-demo`: the order system the example suite breaks.
@main
struct FaultlineDemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "faultline-demo",
        abstract: "A small order system for chaos experiments: a Redis-protocol store, an order API and a notifier.",
        discussion: """
            Each server prints one line, "faultline-demo NAME listening on HOST:PORT", when it is ready, \
            logs notable events to stderr, and exits cleanly on SIGTERM or SIGINT.
            """,
        subcommands: [Store.self, OrderAPICommand.self, Notifier.self]
    )
}

/// Where a server listens.
struct ListenOptions: ParsableArguments {
    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on; 0 picks a free one (see the ready line).")
    var port = 0

    func validate() throws {
        guard HostPort.Role.listen.ports.contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
    }
}

struct Store: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An in-memory key-value store speaking the Redis protocol (RESP2).",
        discussion: """
            Commands: PING ECHO SET (EX PX NX XX KEEPTTL) GET DEL EXISTS INCR INCRBY DECR DECRBY EXPIRE \
            PEXPIRE TTL PTTL KEYS DBSIZE FLUSHDB FLUSHALL SELECT CLIENT (SETNAME GETNAME ID SETINFO) \
            COMMAND INFO QUIT. Try it with redis-cli -p PORT.
            """
    )

    @OptionGroup var listen: ListenOptions

    func run() async throws {
        try await serve(try await StoreServer.bind(host: listen.host, port: listen.port))
    }
}

struct OrderAPICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "order-api",
        abstract: "An HTTP JSON order service backed by a Redis-protocol store, notifying a notifier.",
        discussion: """
            Routes: POST /orders {"item": "book", "quantity": 2} -> 201; GET /orders/ID; GET /health; \
            GET /health/ready (pings the store); GET /stats.

            The store client keeps one connection and, by default, has no timeout, no retries and no \
            breaker. Without --retries a lost store connection is never re-established: every later \
            order answers 500 until the service is restarted. The options below are the fixes.
            """
    )

    @OptionGroup var listen: ListenOptions

    @Option(help: ArgumentHelp("The store's address.", valueName: "host:port"), transform: { try HostPort(parsing: $0) })
    var store: HostPort

    @Option(help: ArgumentHelp("The notifier's base URL.", valueName: "http://host:port"), transform: { try HTTPEndpoint(parsing: $0) })
    var notifier: HTTPEndpoint

    @Option(help: "Fail a store call with no reply within this time, and drop its connection; 0 waits forever.")
    var storeTimeoutMs = 0

    @Option(help: "Retry a failed store call up to this many times, reconnecting as needed; 0 never retries or reconnects.")
    var retries = 0

    @Option(help: "The pause before the first retry; it doubles for each further retry.")
    var backoffMs = 100

    @Option(help: "The longest pause between retries.")
    var backoffMaxMs = 2000

    @Option(help: "Open the circuit breaker after this many consecutive failed store calls (answering 503 fast); 0 turns it off.")
    var breakerThreshold = 0

    @Option(help: "How long the open breaker answers 503 before it lets one trial call through.")
    var breakerCooldownMs = 2000

    @Option(help: "How long a notification may take; 0 waits forever.")
    var notifyTimeoutMs = 1000

    @Option(help: "best-effort: a failed notification still answers 201 with \"notified\": false; required: 502.")
    var notify = NotifyPolicy.bestEffort

    @Option(help: "Open the notifier's own circuit breaker after this many consecutive failed notifications (skipping them); 0 turns it off.")
    var notifyBreakerThreshold = 0

    @Option(help: "How long the notifier's open breaker skips notifications before it lets one trial through.")
    var notifyBreakerCooldownMs = 2000

    func validate() throws {
        let counts = [
            ("--store-timeout-ms", storeTimeoutMs), ("--retries", retries), ("--backoff-ms", backoffMs),
            ("--backoff-max-ms", backoffMaxMs), ("--breaker-threshold", breakerThreshold),
            ("--breaker-cooldown-ms", breakerCooldownMs), ("--notify-timeout-ms", notifyTimeoutMs),
            ("--notify-breaker-threshold", notifyBreakerThreshold), ("--notify-breaker-cooldown-ms", notifyBreakerCooldownMs),
        ]
        for (name, value) in counts where value < 0 {
            throw ValidationError("\(name) must be 0 or more, not \(value)")
        }
    }

    func run() async throws {
        let options = OrderAPIOptions(
            store: store,
            notifier: notifier,
            storeOptions: StoreOptions(
                timeout: storeTimeoutMs > 0 ? .milliseconds(storeTimeoutMs) : nil,
                retries: retries,
                backoff: .milliseconds(backoffMs),
                maxBackoff: .milliseconds(max(backoffMs, backoffMaxMs)),
                breakerThreshold: breakerThreshold,
                breakerCooldown: .milliseconds(breakerCooldownMs)
            ),
            notifyTimeout: notifyTimeoutMs > 0 ? .milliseconds(notifyTimeoutMs) : nil,
            notifyPolicy: notify,
            notifyBreakerThreshold: notifyBreakerThreshold,
            notifyBreakerCooldown: .milliseconds(notifyBreakerCooldownMs)
        )
        let log = logger("order-api")
        log(
            "store \(store) (timeout \(storeTimeoutMs) ms, retries \(retries), breaker threshold \(breakerThreshold)); notifier \(notifier) (\(notify.rawValue), breaker threshold \(notifyBreakerThreshold))"
        )
        try await serve(try await OrderAPI.bind(host: listen.host, port: listen.port, options: options, log: log))
    }
}

struct Notifier: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receives the order API's notifications: POST /notify -> 204, GET /notifications -> {\"count\": n}."
    )

    @OptionGroup var listen: ListenOptions

    func run() async throws {
        try await serve(try await NotifierServer.bind(host: listen.host, port: listen.port))
    }
}

extension NotifyPolicy: ExpressibleByArgument {}

/// Announces the server, serves until SIGTERM or SIGINT, then stops it and returns.
func serve(_ server: DemoServer) async throws {
    let log = logger(server.name)
    let signals = SignalWaiter([SIGTERM, SIGINT])
    // Written straight to the descriptor: a buffered print would not reach a pipe until exit.
    write(line: server.readyLine, to: .standardOutput)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        group.addTask {
            let signal = await signals.next()
            log("stopping on \(signal == SIGTERM ? "SIGTERM" : "SIGINT")")
        }
        try await group.next()
        group.cancelAll()
        try await group.waitForAll()
    }
}

/// A line on stderr, prefixed with the service's name.
func logger(_ name: String) -> @Sendable (String) -> Void {
    { message in write(line: "faultline-demo \(name): \(message)", to: .standardError) }
}

/// Writes a line, ignoring a reader that went away: the runner that read a service's output may
/// have been killed (its pipe then fails with EPIPE), and `FileHandle.write(_:)` traps on that
/// failure, which would leave a crashed service with its ports held by the backtracer instead of
/// one that stops on its SIGTERM.
func write(line: String, to handle: FileHandle) {
    try? handle.write(contentsOf: Data((line + "\n").utf8))
}

/// Turns the given signals from process-ending into an event to wait for (``SignalPipe``: the
/// handlers are in place when `init` returns, so a signal sent as soon as the ready line is read is
/// caught).
final class SignalWaiter: Sendable {
    init(_ numbers: [Int32]) { SignalPipe.install(numbers) }

    /// The next signal received, read on a thread of its own; a pipe that fails reads as SIGTERM.
    func next() async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: SignalPipe.next() ?? SIGTERM) }.start()
        }
    }
}
