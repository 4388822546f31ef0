@testable import FaultlineDemo
import FaultlineNetwork
import FaultlineTestSupport
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Each resilience option, observed through the API with the store link broken by a relay.
@Suite("Resilience options")
struct ResilienceTests {
    /// Runs an order system whose store is reached through `relay`.
    func withRelayedStore(
        _ options: StoreOptions,
        _ body: (OrderSystem, TCPRelay) async throws -> Void
    ) async throws {
        var relay: TCPRelay?
        defer { relay?.close() }
        try await OrderSystem.with(
            storeOptions: options,
            storeAddress: { store in
                relay = try await TCPRelay(to: HostPort(host: store.host, port: store.port))
                return relay!.address
            }
        ) { system throws in
            try await body(system, relay!)
        }
    }

    @Test("without --retries a lost store connection is never re-established: every later order is 500")
    func lostConnectionWithoutRetries() async throws {
        try await withRelayedStore(StoreOptions()) { system, relay throws in
            #expect(try await system.order().status == .created)
            await relay.severAll()
            // The store is reachable again through the relay, but the API does not reconnect.
            for _ in 0..<3 {
                let response = try await system.order()
                #expect(response.status == .internalServerError)
            }
            let last = try await system.order()
            #expect(last["error"] == "store connection lost; restart the service or run with --retries")
            #expect(try await system.get("/health").status == .ok, "liveness does not look at the store")
            #expect(try await system.get("/health/ready").status == .serviceUnavailable)
            #expect("\(try await system.stats()["reconnects"]!)" == "0")
        }
    }

    @Test("with --retries the API reconnects and recovers once the store is reachable")
    func lostConnectionWithRetries() async throws {
        try await withRelayedStore(StoreOptions(retries: 2, backoff: .milliseconds(10))) { system, relay throws in
            #expect(try await system.order().status == .created)
            await relay.severAll()
            #expect(try await system.order().status == .created)
            #expect(try await system.order().status == .created)
            #expect(try await system.get("/orders/3").status == .ok)
            #expect("\(try await system.stats()["reconnects"]!)" == "1")
        }
    }

    @Test("retries back off and give up: a store that stays away fails after N retries")
    func retriesExhausted() async throws {
        try await withRelayedStore(StoreOptions(timeout: .milliseconds(50), retries: 2, backoff: .milliseconds(10))) { system, relay throws in
            relay.set(.blackhole)
            await relay.severAll()
            let response = try await system.order()
            #expect(response.status == .internalServerError)
            #expect(response["error"]?.hasPrefix("store: ") == true, "\(response.text)")
            let stats = try await system.stats()
            #expect("\(stats["retries"]!)" == "2")
            #expect("\(stats["store_errors"]!)" == "1")
        }
    }

    @Test("a store that never answers: with --store-timeout-ms the order fails fast with 500")
    func storeTimeout() async throws {
        let silent = try await TCPRelay.silent()
        defer { silent.close() }
        try await OrderSystem.with(storeOptions: StoreOptions(timeout: .milliseconds(100)), storeAddress: { _ in silent.address }) { system throws in
            let response = try await system.order(timeout: .seconds(10))
            #expect(response.status == .internalServerError)
            #expect(response["error"] == "store: no reply within 100 ms")
            #expect(try await system.get("/health/ready").status == .serviceUnavailable)
        }
    }

    @Test("a store that never answers: without a store timeout the order hangs until the client gives up")
    func noStoreTimeout() async throws {
        let silent = try await TCPRelay.silent()
        defer { silent.close() }
        try await OrderSystem.with(storeAddress: { _ in silent.address }) { system throws in
            await #expect(throws: HTTPClientError.self) {
                _ = try await system.order(timeout: .milliseconds(300))
            }
            // The service itself is alive; only the store calls hang.
            #expect(try await system.get("/health").status == .ok)
        }
    }

    @Test("the breaker opens after N consecutive failures and then answers 503 at once")
    func breakerOpens() async throws {
        let silent = try await TCPRelay.silent()
        defer { silent.close() }
        let options = StoreOptions(timeout: .milliseconds(50), breakerThreshold: 2, breakerCooldown: .seconds(60))
        try await OrderSystem.with(storeOptions: options, storeAddress: { _ in silent.address }) { system throws in
            #expect(try await system.order().status == .internalServerError)
            #expect(try await system.order().status == .internalServerError)
            let rejected = try await system.order()
            #expect(rejected.status == .serviceUnavailable)
            #expect(rejected["error"]?.hasPrefix("store circuit breaker open") == true, "\(rejected.text)")
            #expect(rejected.headers["Retry-After"].first != nil)
            let stats = try await system.stats()
            #expect("\(stats["breaker"]!)" == "open")
            #expect("\(stats["breaker_rejections"]!)" == "1")
            #expect("\(stats["store_errors"]!)" == "2")
        }
    }

    @Test("after the cooldown one trial call goes through, and its success closes the breaker")
    func breakerRecovers() async throws {
        let options = StoreOptions(
            timeout: .milliseconds(50), retries: 1, backoff: .milliseconds(10),
            breakerThreshold: 2, breakerCooldown: .milliseconds(200)
        )
        try await withRelayedStore(options) { system, relay throws in
            relay.set(.blackhole)
            await relay.severAll()
            #expect(try await system.order().status == .internalServerError)
            #expect(try await system.order().status == .internalServerError)
            // Open until a call is admitted after the cooldown, however long this took (asking
            // with an order could meet the cooldown already over on a loaded machine; the 503
            // while open is the test above, with a cooldown of a minute).
            #expect("\(try await system.stats()["breaker"]!)" == "open")
            relay.set(.forward)
            await relay.severAll()
            // The cooldown is a duration by design: poll until it has passed.
            #expect(await eventually { (try? await system.order().status) == .created })
            #expect("\(try await system.stats()["breaker"]!)" == "closed")
        }
    }

    @Test("notifier down: best-effort still confirms the order, required answers 502", arguments: NotifyPolicy.allCases)
    func notifierDown(_ policy: NotifyPolicy) async throws {
        let nobody = HostPort(host: "127.0.0.1", port: try FreePort.take())
        try await OrderSystem.with(notifyPolicy: policy, notifierAddress: HTTPEndpoint(host: nobody.host, port: nobody.port)) { system throws in
            let response = try await system.order()
            switch policy {
            case .bestEffort:
                #expect(response.status == .created)
                #expect(response["notified"] == "0" || response["notified"] == "false", "\(response.text)")
            case .required:
                #expect(response.status == .badGateway)
                #expect(response["error"]?.hasPrefix("notifier: cannot connect") == true, "\(response.text)")
                #expect(response["id"] == "1", "the order is stored and its id given")
            }
            #expect("\(try await system.stats()["notifications_failed"]!)" == "1")
        }
    }

    @Test("a notifier that never answers is bounded by --notify-timeout-ms")
    func notifierTimeout() async throws {
        let silent = try await TCPRelay.silent()
        defer { silent.close() }
        try await OrderSystem.with(
            notifyTimeout: .milliseconds(100), notifyPolicy: .required,
            notifierAddress: HTTPEndpoint(host: "127.0.0.1", port: silent.port)
        ) { system throws in
            let response = try await system.order()
            #expect(response.status == .badGateway)
            #expect(response["error"] == "notifier: no response within 100 ms")
        }
    }

    /// A notifier that answers 503 while `failing` is set and 204 otherwise, counting the calls it gets.
    final class FlakyNotifier: Sendable {
        let failing = Atomic<Bool>(true)
        let calls = Atomic<Int>(0)

        func bind() async throws -> DemoServer {
            try await HTTPServer.bind(name: "flaky-notifier", host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton) { _ in
                self.calls.add(1, ordering: .relaxed)
                return self.failing.load(ordering: .relaxed) ? .error(.serviceUnavailable, "busy") : HTTPResponse(status: .noContent)
            }
        }
    }

    @Test("the notifier's breaker opens after N failed notifications: orders are confirmed without calling the notifier")
    func notifierBreakerOpens() async throws {
        let flaky = FlakyNotifier()
        let notifier = try await flaky.bind()
        try await withRunning([notifier]) {
            try await OrderSystem.with(
                notifyBreakerThreshold: 2, notifyBreakerCooldown: .seconds(60),
                notifierAddress: HTTPEndpoint(host: notifier.host, port: notifier.port)
            ) { system throws in
                for _ in 0..<3 {
                    let response = try await system.order()
                    #expect(response.status == .created)
                    #expect(response["notified"] == "0" || response["notified"] == "false", "\(response.text)")
                }
                #expect(flaky.calls.load(ordering: .relaxed) == 2, "the third order's notification was skipped, not sent")
                let stats = try await system.stats()
                #expect("\(stats["notifier_breaker"]!)" == "open")
                #expect("\(stats["notifications_failed"]!)" == "2")
                #expect("\(stats["notifications_skipped"]!)" == "1")
                #expect("\(stats["breaker"]!)" == "off", "the store's breaker is another one")
            }
        }
    }

    @Test("after the notifier breaker's cooldown a trial notification goes through, and its success closes the breaker")
    func notifierBreakerRecovers() async throws {
        let flaky = FlakyNotifier()
        let notifier = try await flaky.bind()
        try await withRunning([notifier]) {
            try await OrderSystem.with(
                notifyPolicy: .required, notifyBreakerThreshold: 2, notifyBreakerCooldown: .milliseconds(200),
                notifierAddress: HTTPEndpoint(host: notifier.host, port: notifier.port)
            ) { system throws in
                #expect(try await system.order().status == .badGateway)
                #expect(try await system.order().status == .badGateway)
                #expect("\(try await system.stats()["notifier_breaker"]!)" == "open")
                flaky.failing.store(false, ordering: .relaxed)
                // The cooldown is a duration by design: poll until it has passed.
                #expect(
                    await eventually {
                        let notified = (try? await system.order())?["notified"]
                        return notified == "1" || notified == "true"
                    })
                #expect("\(try await system.stats()["notifier_breaker"]!)" == "closed")
            }
        }
    }
}
