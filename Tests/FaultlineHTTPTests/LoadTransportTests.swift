import FaultlineKit
import FaultlineTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import FaultlineHTTP
import FaultlineTestSupport

/// The load's two transports: plain sockets on its own loops (``PlainConnection`` on a
/// ``LoadLoop``) and NIO channels (``ExchangeHandler``), which TLS endpoints use.
@Suite("http.load's plain transport and its loops")
struct LoadTransportTests {
    static let loops = LoadLoops(count: 2)

    /// Runs a load on the plain transport, or on NIO's loops (`plain: false`).
    func load(_ arguments: Value, plain: Bool) async throws -> LoadResult {
        let plainLoops = plain ? try #require(Self.loops) : nil
        return try LoadResult(
            decoding: try await LoadProbe.run(try prepared(LoadProbe.self, arguments), context: .standalone(name: "load"), plainLoops: plainLoops))
    }

    @Test(
        "both transports count every exchange alike: statuses, error classes, bytes, connections",
        arguments: [
            Value.object(["url": "/ok"]), ["url": "/status/503"], ["url": "/close"], ["url": "/half"], ["url": "/reset"], ["url": "/chunked"],
            ["url": "/redirect/1"], ["url": "/echo", "method": "HEAD"],
            // A request and a response far larger than a socket's buffers: written and read in pieces.
            ["url": "/echo", "method": "POST", "body": .string(String(repeating: "chaos ", count: 700_000))],
        ])
    func sameCounts(request: Value) async throws {
        var results: [(LoadResult, requests: Int, connections: Int)] = []
        for plain in [true, false] {
            try await closing(TestHTTPServer.start()) { server in
                var arguments = request
                arguments["url"] = .string(server.url + (request["url"]?.stringValue ?? ""))
                arguments["users"] = 2
                arguments["iterations"] = 5
                arguments["request_timeout"] = [5, 30]
                let result = try await load(arguments, plain: plain)
                results.append((result, server.total, server.connectionCount))
            }
        }
        let (plain, nio) = (results[0], results[1])
        #expect(plain.0.overall.count == 10)
        #expect(plain.0.overall.count == nio.0.overall.count)
        #expect(plain.0.overall.ok == nio.0.overall.ok)
        #expect(plain.0.overall.statusCodes == nio.0.overall.statusCodes)
        #expect(plain.0.overall.errors == nio.0.overall.errors)
        #expect(plain.0.overall.bytesSent == nio.0.overall.bytesSent)
        #expect(plain.0.overall.bytesReceived == nio.0.overall.bytesReceived)
        #expect(plain.requests == nio.requests, "requests the server saw")
        #expect(plain.connections == nio.connections, "connections the server saw")
    }

    @Test("a load with an HTTPS endpoint runs on NIO's loops, TLS and all: every request counted, one connection per user")
    func tls() async throws {
        try await closing(TestHTTPServer.start(tls: true)) { server in
            let result = try await load(
                ["url": .string("https://localhost:\(server.port)/ok"), "users": 2, "iterations": 5, "verify_tls": false], plain: true)
            #expect(result.overall.count == 10 && result.overall.ok == 10, "\(result.overall.errors)")
            #expect(server.count("/ok") == 10)
            #expect(server.connectionCount == 2)
            // Verified, the self-signed certificate fails every request as TLS, on NIO's loops too.
            let refused = try await load(["url": .string("https://localhost:\(server.port)/ok"), "iterations": 2], plain: true)
            #expect(refused.overall.errors.first { $0.label == "tls" }?.count == 2, "\(refused.overall.errors)")
        }
    }

    @Test("a listener that never accepts is a connect timeout, on time")
    func connectTimeout() async throws {
        let listener = try FullBacklogListener()
        defer { listener.close() }
        let result = try await load(
            ["url": .string("http://127.0.0.1:\(listener.port)/"), "iterations": 1, "request_timeout": [0.3, 1]], plain: true)
        #expect(result.overall.errors.first { $0.label == "connect_timeout" }?.count == 1, "\(result.overall.errors)")
    }

    @Test("a stopped load abandons its requests in flight and closes their sockets")
    func abandoned() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let arguments = try prepared(LoadProbe.self, ["url": .string(server.url + "/hang"), "users": 2, "duration": 3600, "graceful_stop": 0.1])
            let plan = try await LoadProbe.makePlan(arguments)
            let loop = try #require(Self.loops?.loops.first)
            let worker = try await loop.submit {
                NIOLoopBound(LoadWorker(loop: loop, plan: plan, index: 0, workerCount: 1, start: .now(), seed: 1), eventLoop: loop)
            }.get()
            try await loop.submit { worker.value.begin() }.get()
            #expect(await eventually { server.count("/hang") == 2 })
            try await loop.submit { worker.value.stop() }.get()
            try await loop.flatSubmit { worker.value.done }.get()
            let snapshot = try await loop.submit { worker.value.recorder.snapshot() }.get()
            #expect(snapshot.records.isEmpty, "abandoned is neither a response nor an error")
            #expect(await eventually { server.openConnections == 0 })
        }
    }

    @Test("scheduled tasks run in deadline order, never early; cancelled ones never run")
    func timers() async throws {
        let loop = try #require(Self.loops?.loops.first)
        var random = SeededRandom(seed: 7)
        let offsets = (0..<60).map { _ in Int64(random.nextUnit() * 30_000_000) }
        let ran = try await loop.submit {
            let start = NIODeadline.now()
            let log = NIOLoopBound(Box<[(Int, Bool)]>([]), eventLoop: loop)
            var scheduled: [Scheduled<Void>] = []
            for (index, offset) in offsets.enumerated() {
                let deadline = start + .nanoseconds(offset)
                scheduled.append(loop.scheduleTask(deadline: deadline) { log.value.value.append((index, NIODeadline.now() >= deadline)) })
            }
            // Every third one is cancelled before its time.
            for index in stride(from: 0, to: offsets.count, by: 3) { scheduled[index].cancel() }
            return (log, scheduled.map(\.futureResult))
        }.get()
        for (index, future) in ran.1.enumerated() {
            do {
                try await future.get()
                #expect(index % 3 != 0, "task \(index) was cancelled, yet ran")
            } catch {
                #expect(index % 3 == 0 && error as? EventLoopError == .cancelled, "task \(index): \(error)")
            }
        }
        let log = try await loop.submit { ran.0.value.value }.get()
        let expected = offsets.indices.filter { $0 % 3 != 0 }.sorted { (offsets[$0], $0) < (offsets[$1], $1) }
        #expect(log.map(\.0) == expected)
        #expect(log.allSatisfy { $0.1 }, "no task runs before its deadline")
    }

    @Test("a cancelled task leaves the loop's timers at once: a load that reconnects for every request cancels a connect timer each time")
    func cancelledTimersLeave() async throws {
        let loop = try #require(LoadLoop(name: "timer-test"))
        defer { loop.shutdownGracefully { _ in } }
        let counts = try await loop.submit {
            let later = NIODeadline.now() + .hours(1)
            let scheduled = (0..<1000).map { index in loop.scheduleTask(deadline: later + .nanoseconds(Int64(index % 7))) {} }
            let before = loop.scheduledCount
            // Every other one, in an order unlike the heap's, so entries leave from its middle.
            for index in stride(from: 999, through: 0, by: -2) { scheduled[index].cancel() }
            let half = loop.scheduledCount
            for index in stride(from: 0, to: 1000, by: 2) { scheduled[index].cancel() }
            return [before, half, loop.scheduledCount]
        }.get()
        #expect(counts == [1000, 500, 0])
        // The heap stays ordered through removals from its middle: the survivors run in order.
        let order = try await loop.submit {
            let start = NIODeadline.now()
            let log = NIOLoopBound(Box<[Int]>([]), eventLoop: loop)
            let scheduled = (0..<40).map { index in
                loop.scheduleTask(deadline: start + .milliseconds(Int64((index * 7) % 40))) { log.value.value.append((index * 7) % 40) }
            }
            for index in [3, 17, 22, 5, 39, 0] { scheduled[index].cancel() }
            return (log, scheduled.map(\.futureResult))
        }.get()
        for future in order.1 { try? await future.get() }
        let ran = try await loop.submit { order.0.value.value }.get()
        #expect(ran == ran.sorted() && ran.count == 34, "\(ran)")
    }

    @Test("tasks from other threads run on the loop, in order")
    func tasksFromOutside() async throws {
        let loop = try #require(Self.loops?.loops.first)
        #expect(!loop.inEventLoop)
        let results = try await withThrowingTaskGroup(of: [Bool].self) { group in
            for _ in 0..<4 {
                group.addTask { try await (0..<100).asyncMap { _ in try await loop.submit { loop.inEventLoop }.get() } }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(results.count == 400 && results.allSatisfy { $0 })
        let order = NIOLockedValueBox<[Int]>([])
        let futures = (0..<200).map { number in loop.submit { order.withLockedValue { $0.append(number) } } }
        for future in futures { try await future.get() }
        #expect(order.withLockedValue { $0 } == Array(0..<200))
    }
}

/// A mutable value a loop-bound closure can hold.
private final class Box<Value> {
    var value: Value
    init(_ value: Value) { self.value = value }
}

extension Sequence {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
