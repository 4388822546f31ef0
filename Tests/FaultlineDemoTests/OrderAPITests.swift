@testable import FaultlineDemo
import FaultlineNetwork
import FaultlineTestSupport
import Foundation
import NIOCore
import Testing

@Suite("The order API")
struct OrderAPITests {
    @Test("an order is stored, notified and read back; health, readiness and stats answer")
    func orderFlow() async throws {
        try await OrderSystem.with { system throws in
            try await Self.exerciseOrderFlow(system)
        }
    }

    /// The happy path, shared by the built-in store and a real redis-server.
    static func exerciseOrderFlow(_ system: OrderSystem) async throws {
        #expect(try await system.get("/health").status == .ok)
        #expect(try await system.get("/health/ready").status == .ok)

        let created = try await system.order("book", quantity: 2)
        #expect(created.status == .created)
        #expect(created.text == #"{"id":1,"item":"book","notified":true,"quantity":2}"#)
        #expect(try await system.order("pen").status == .created)

        let stored = try await system.get("/orders/1")
        #expect(stored.status == .ok)
        #expect(stored["item"] == "book")
        #expect(stored["quantity"] == "2")
        #expect(try await system.get("/orders/3").status == .notFound)
        #expect(try await system.get("/orders/abc").status == .notFound)

        let notifications = try await system.get("/notifications", from: system.notifierEndpoint)
        #expect(notifications["count"] == "2")
        let stats = try await system.stats()
        #expect("\(stats["orders"]!)" == "2")
        #expect("\(stats["store_errors"]!)" == "0")
        #expect("\(stats["breaker"]!)" == "off")
    }

    @Test(
        "bad orders are refused with a message",
        arguments: [
            (#"{"quantity": 1}"#, "item is required"),
            (#"{"item": "", "quantity": 1}"#, "item is required"),
            (#"{"item": 5, "quantity": 1}"#, "item must be a non-empty string"),
            (#"{"item": "book"}"#, "quantity is required"),
            (#"{"item": "book", "quantity": 0}"#, "quantity must be a positive integer"),
            (#"{"item": "book", "quantity": "two"}"#, "quantity must be a positive integer"),
            ("not json", "the body must be a JSON object"),
        ])
    func badInput(_ body: String, _ message: String) async throws {
        try await OrderSystem.with { system throws in
            let response = try await system.post("/orders", body)
            #expect(response.status == .badRequest)
            #expect(response["error"]?.hasPrefix(message) == true, "\(response.text)")
        }
    }

    @Test("unknown routes answer 404, wrong methods 405")
    func routes() async throws {
        try await OrderSystem.with { system throws in
            #expect(try await system.get("/nope").status == .notFound)
            #expect(try await system.get("/orders").status == .methodNotAllowed)
            #expect(try await system.post("/health", "").status == .methodNotAllowed)
        }
    }

    @Test(
        "the same flow works against a real redis-server",
        .enabled(if: installed("redis-server") != nil || isCI, "redis-server is not installed (apt-get install -y redis-server)")
    )
    func realRedis() async throws {
        try await RedisServer.with { redis in
            try await OrderSystem.with(storeAddress: { _ in redis }) { system throws in
                try await Self.exerciseOrderFlow(system)
            }
        }
    }
}

/// A `redis-server` child process on a free port, without persistence.
enum RedisServer {
    /// Runs `body` with a fresh redis-server's address, then stops the server.
    static func with(_ body: (HostPort) async throws -> Void) async throws {
        let path = try #require(installed("redis-server"), "CI installs redis-server (see .ci/run)")
        // redis-server cannot pick a free port and report it, so take one that was just free;
        // another process grabbing it in between shows as a failed start.
        let address = HostPort(host: "127.0.0.1", port: try FreePort.take())
        let arguments = ["--port", String(address.port), "--bind", address.host, "--save", "", "--appendonly", "no", "--loglevel", "warning"]
        try await closing(TestProcess(path, arguments)) { server in
            let ready = await eventually {
                let client = StoreClient(host: address.host, port: address.port)
                let reply = try? await client.call(["PING"])
                await client.shutdown()
                return reply == .simpleString("PONG")
            }
            try #require(ready, "redis-server did not answer PING on \(address): \(server.lines)")
            try await body(address)
        }
    }
}
