import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

@testable import FaultlineHTTP
import FaultlineTestSupport

@Suite("http.load stages: ramping users and ramping arrival rate")
struct LoadStageTests {
    @Test("a ramp is linear between targets; user n runs while the target is n + 1 or more")
    func ramp() {
        let ramp = Ramp(start: 0, stages: [Stage(duration: 1, target: 4), Stage(duration: 1, target: 4), Stage(duration: 0.5, target: 0)])
        #expect(ramp.total == 2.5 && ramp.peak == 4)
        #expect(ramp.value(at: 0.5) == 2 && ramp.value(at: 1.5) == 4 && ramp.value(at: 2.25) == 2)
        let first = ramp.intervals(atLeast: 1)
        #expect(first.count == 1 && abs(first[0].from - 0.25) < 1e-9 && abs(first[0].to - 2.375) < 1e-9)
        let last = ramp.intervals(atLeast: 4)
        #expect(last.count == 1 && abs(last[0].from - 1) < 1e-9 && abs(last[0].to - 2) < 1e-9)
        #expect(ramp.intervals(atLeast: 5).isEmpty)
        // Down and up again: two stretches.
        let dip = Ramp(start: 2, stages: [Stage(duration: 1, target: 0), Stage(duration: 1, target: 2)])
        #expect(dip.intervals(atLeast: 1).map { [$0.from, $0.to] } == [[0, 0.5], [1.5, 2]])
    }

    @Test("arrivals follow the integral of the rate: k / r at a constant rate, √(k / 50) on a ramp from 0 to 100/s over 1 s")
    func arrivals() {
        let constant = Ramp(start: 20, stages: [Stage(duration: 2, target: 20)])
        #expect(constant.arrivals == 40)
        #expect((0..<40).allSatisfy { abs(constant.arrivalTime($0) - Double($0) / 20) < 1e-9 })
        let rising = Ramp(start: 0, stages: [Stage(duration: 1, target: 100)])
        #expect(rising.arrivals == 50)
        #expect((0..<50).allSatisfy { abs(rising.arrivalTime($0) - (Double($0) / 50).squareRoot()) < 1e-9 })
        let falling = Ramp(start: 100, stages: [Stage(duration: 1, target: 0)])
        #expect(falling.arrivals == 50)
        // 100t − 50t² = k.
        let times = (0..<50).map(falling.arrivalTime)
        #expect(times.enumerated().allSatisfy { k, t in abs(100 * t - 50 * t * t - Double(k)) < 1e-6 })
    }

    @Test("open model: each request is sent when the ramp says, and sent plus dropped is the schedule")
    func rampingArrivalRate() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stages-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await closing(TestHTTPServer.start()) { server in
            let arguments = try prepared(
                LoadProbe.self,
                ["url": .string(server.url + "/ok"), "rate": 0, "stages": [["duration": 1, "target": 100]], "records": true])
            let result = try LoadResult(
                decoding: try await LoadProbe.run(arguments, context: .standalone(name: "ramp", runDirectory: directory)))
            // On a machine too loaded to answer within graceful_stop, the late ones are abandoned.
            #expect(result.overall.count + result.dropped + result.abandoned == 50)
            #expect(result.overall.count <= server.count("/ok") && server.count("/ok") <= result.overall.count + result.abandoned)
            #expect(result.durationSeconds == 1 && result.stages == [LoadStage(durationSeconds: 1, target: 100)])
            let rows = try RecordRow.read(try #require(result.recordsFile))
            let due = (0..<50).map { Int64((Double($0) / 50).squareRoot() * 1e6) }
            let sent = rows.map(\.sentMicros).sorted()
            // A record for every request that ended and every drop, each timed from its arrival.
            #expect(sent.count == result.overall.count + result.dropped)
            // Each at its own arrival's time (arrivals are far more than 2 µs apart).
            #expect(Set(sent).count == sent.count && sent.allSatisfy { at in due.contains { abs($0 - at) <= 1 } }, "sent at \(sent), due at \(due)")
        }
    }

    @Test("closed model: users start as the target rises past them and stop as it falls")
    func rampingUsers() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stages-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await closing(TestHTTPServer.start()) { server in
            let arguments = try prepared(
                LoadProbe.self,
                [
                    "url": .string(server.url + "/ok"), "think_time": 0.01, "records": true,
                    "stages": [
                        ["duration": 0.5, "target": 4], ["duration": 0.5, "target": 4], ["duration": 0.25, "target": 0],
                        ["duration": 1.5, "target": 0],
                    ],
                ])
            let result = try LoadResult(
                decoding: try await LoadProbe.run(arguments, context: .standalone(name: "ramp", runDirectory: directory)))
            #expect(result.users == 4 && result.durationSeconds == 2.75)
            #expect(server.connectionCount == 4, "one connection per user, four users at the peak")
            let rows = try RecordRow.read(try #require(result.recordsFile))
            #expect(rows.count == result.overall.count && !rows.isEmpty)
            // User 1 starts when the target reaches 1 (0.125 s); timers never fire early.
            #expect(rows.allSatisfy { $0.sentMicros >= 125_000 })
            // Until 0.25 s only one user runs: its requests are strictly one after another.
            let early = rows.filter { $0.sentMicros < 250_000 }.sorted { $0.sentMicros < $1.sentMicros }
            for (a, b) in zip(early, early.dropFirst()) {
                #expect(b.sentMicros >= a.sentMicros + (a.latencyMicros ?? 0), "overlapping requests before the second user starts")
            }
            // The last user stops when the target falls below 1 (1.1875 s). In the last stage's last
            // second a user sends at most the one request it had due when its stop came late (on a
            // starved machine a think-time timer and the stop can fire in the same late turn).
            let late = rows.filter { $0.sentMicros >= 1_750_000 }
            #expect(late.count <= 4, "\(late.map(\.sentMicros))")
        }
    }

    @Test(
        "stage mistakes are caught before anything runs",
        arguments: [
            (Value.object(["stages": [], "url": "http://x/"]), "stages is empty"),
            (["stages": [["duration": 1, "target": 2]], "duration": 5, "url": "http://x/"], "duration cannot be given with stages"),
            (["stages": [["duration": 0, "target": 2]], "url": "http://x/"], "stages.0.duration"),
            (["stages": [["duration": 1, "target": 2.5]], "url": "http://x/"], "a users target is a whole number"),
            (["stages": [["duration": 1, "target": -1]], "rate": 1, "url": "http://x/"], "stages.0.target"),
            (["stages": [["duration": 1, "target": 0]], "url": "http://x/"], "every target is 0"),
            (["stages": [["duration": 1]], "url": "http://x/"], "target"),
        ] as [(Value, String)])
    func badStages(arguments: Value, message: String) throws {
        #expect {
            _ = try prepared(LoadProbe.self, arguments)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test("a bad stage is a load error at its file, line and column")
    func located() async throws {
        let kit = TestKit()
        await #expect {
            _ = try await kit.run(
                yaml: """
                    title: ramp
                    method:
                      - type: probe
                        name: load
                        provider:
                          type: http.load
                          url: http://127.0.0.1:1/
                          stages:
                            - {duration: 10, target: 5}
                            - {duration: -1, target: 0}
                    """, plugins: [HTTPPlugin.self])
        } throws: { error in
            let text = "\(error)"
            return text.contains("experiment.yaml:10:22:") && text.contains("a stage lasts more than 0") && text.contains("stages[1].duration")
        }
    }
}
