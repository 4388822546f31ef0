import FaultlineKit
import FaultlineTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import FaultlineHTTP
import FaultlineNetwork
import FaultlineTestSupport

/// Runs `http.load` with arguments written as a value.
func runLoad(_ arguments: Value) async throws -> Value {
    try await LoadProbe.run(try prepared(LoadProbe.self, arguments), context: .standalone(name: "load"))
}

@Suite("http.load against a real server")
struct LoadProbeTests {
    @Test("closed model: every request is counted, as the server saw it, on one connection per user")
    func closedIterations() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runLoad(["url": .string(server.url + "/ok"), "users": 4, "iterations": 25])
            let overall = try #require(output["overall"])
            #expect(overall["count"] == 100)
            #expect(overall["ok"] == 100)
            #expect(overall["failed"] == 0)
            #expect(overall["error_rate"] == 0.0)
            #expect(overall["status_codes"] == ["200": 100])
            #expect(server.count("/ok") == 100)
            #expect(server.connectionCount == 4)
            #expect(output["requests"]?["request"]?["count"] == 100)
            #expect(output["model"] == "closed")
            #expect(output["users"] == 4)
            #expect(output["iterations"] == 25)
            #expect(output["dropped"] == 0)
            // Every stats key of the shared contract is there.
            for key in [
                "count", "ok", "failed", "error_rate", "min_ms", "avg_ms", "max_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "rps",
                "bytes_received", "bytes_sent", "bytes_per_s", "status_codes", "errors",
            ] {
                #expect(overall[key] != nil, "missing \(key)")
            }
            let minimum = try #require(overall["min_ms"]?.doubleValue)
            let median = try #require(overall["p50_ms"]?.doubleValue)
            let maximum = try #require(overall["max_ms"]?.doubleValue)
            #expect(minimum > 0 && minimum <= median && median <= maximum)
            #expect((overall["bytes_received"]?.intValue ?? 0) > 100 * 60)
            #expect((overall["bytes_sent"]?.intValue ?? 0) > 100 * 40)
        }
    }

    @Test("the output is the shared LoadResult: it reads back and writes the same text")
    func outputIsTheSharedContract() async throws {
        let output = try await closing(TestHTTPServer.start()) { server in
            try await runLoad([
                "requests": [["name": "home", "url": .string(server.url + "/ok")], ["name": "gone", "url": .string(server.url + "/status/503")]],
                "users": 2, "iterations": 3,
            ])
        }
        let result = try LoadResult(decoding: output)
        #expect(result.requests.map(\.name) == ["home", "gone"] && result.overall.count == 12 && result.requests[1].stats.serverErrors == 6)
        #expect(JSONWriter.string(result.value, pretty: false) == JSONWriter.string(output, pretty: false))
    }

    @Test("the time series adds up to the total")
    func timeline() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runLoad(["url": .string(server.url + "/ok"), "users": 2, "duration": 1.5])
            let entries = try #require(output["timeline"]?.arrayValue)
            #expect(entries.count >= 2)
            #expect(entries.map { $0["second"] } == (0..<entries.count).map { .int($0) })
            let total = entries.reduce(0) { $0 + ($1["count"]?.intValue ?? 0) }
            #expect(total == output["overall"]?["count"]?.intValue)
            #expect(total == server.count("/ok"))
            #expect(total > 0)
        }
    }

    @Test("named requests run in sequence per user, each with its own stats")
    func namedRequests() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runLoad([
                "users": 3, "iterations": 5,
                "requests": [
                    ["name": "login", "url": .string(server.url + "/echo"), "method": "POST", "body": ["user": "ada"]],
                    ["name": "prediction", "url": .string(server.url + "/json")],
                    ["name": "missing", "url": .string(server.url + "/status/404")],
                ],
            ])
            let requests = try #require(output["requests"]?.objectValue)
            #expect(requests.keys == ["login", "prediction", "missing"])
            #expect(requests["login"]?["count"] == 15)
            #expect(requests["prediction"]?["count"] == 15)
            #expect(requests["missing"]?["failed"] == 15)
            #expect(requests["missing"]?["errors"]?["http_4xx"] == 15)
            #expect(requests["missing"]?["status_codes"] == ["404": 15])
            #expect(output["overall"]?["count"] == 45)
            #expect(output["overall"]?["failed"] == 15)
            #expect(server.count("/echo") == 15 && server.count("/json") == 15 && server.count("/status/404") == 15)
            #expect(server.connectionCount == 3)
        }
    }

    @Test("expected_status decides what a failure is")
    func expectedStatus() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runLoad(["url": .string(server.url + "/status/503"), "iterations": 4, "expected_status": [200, 503]])
            #expect(output["overall"]?["ok"] == 4)
            let failing = try await runLoad(["url": .string(server.url + "/status/503"), "iterations": 4])
            #expect(failing["overall"]?["errors"]?["http_5xx"] == 4)
            #expect(failing["overall"]?["error_rate"] == 1.0)
        }
    }

    @Test(
        "connection failures are counted by class",
        arguments: [
            ("/reset", "reset"), ("/hang", "read_timeout"), ("/half", "reset"),
        ] as [(String, String)])
    func errorClasses(path: String, key: String) async throws {
        try await closing(TestHTTPServer.start()) { server in
            // Only /hang waits for the read timeout; the others get one a loaded machine cannot reach
            // before the server's reset does.
            let read: Value = path == "/hang" ? 0.2 : 30
            let output = try await runLoad(["url": .string(server.url + path), "iterations": 3, "request_timeout": [2, read]])
            #expect(output["overall"]?["errors"]?[key] == 3, "errors: \(output["overall"]?["errors"] ?? .null)")
            #expect(output["overall"]?["failed"] == 3)
        }
    }

    @Test("requests in flight when the duration ends finish and are counted")
    func gracefulStop() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runLoad(["url": .string(server.url + "/slow?ms=200"), "users": 3, "duration": 0.3])
            #expect(output["overall"]?["count"]?.intValue == server.count("/slow"))
            #expect(output["overall"]?["ok"]?.intValue == server.count("/slow"))
        }
    }

    @Test("requests still unanswered after graceful_stop are abandoned, not counted, and their connections closed")
    func abandoned() async throws {
        try await closing(TestHTTPServer.start()) { server in
            // The load is stopped with the call its duration makes, but on a signal — both requests
            // reached the server — rather than after a time a loaded machine may not have reached.
            let arguments = try prepared(LoadProbe.self, ["url": .string(server.url + "/hang"), "users": 2, "duration": 3600, "graceful_stop": 0.1])
            let plan = try await LoadProbe.makePlan(arguments)
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            let worker = try await loop.submit {
                NIOLoopBound(LoadWorker(loop: loop, plan: plan, index: 0, workerCount: 1, start: .now(), seed: 1), eventLoop: loop)
            }.get()
            try await loop.submit { worker.value.begin() }.get()
            #expect(await eventually { server.count("/hang") == 2 })
            let stopped = ContinuousClock.now
            let terminatedAtOnce = try await loop.submit {
                worker.value.stop()
                return worker.value.terminated
            }.get()
            #expect(!terminatedAtOnce, "requests in flight get graceful_stop")
            try await loop.flatSubmit { worker.value.done }.get()
            #expect(ContinuousClock.now - stopped >= .milliseconds(100))
            let snapshot = try await loop.submit { worker.value.recorder.snapshot() }.get()
            #expect(snapshot.records.isEmpty, "abandoned is neither a response nor an error")
            #expect(await eventually { server.openConnections == 0 })
        }
    }

    @Test(
        "think time and ramp-up keep every user's requests",
        arguments: [
            Value.object(["think_time": 0.02]), ["think_time": [0.01, 0.03]], ["ramp_up": 0.2, "duration": 3600],
        ])
    func pacing(extra: Value) async throws {
        // A duration no run reaches: the iterations end the load, however slow a loaded machine is.
        try await closing(TestHTTPServer.start()) { server in
            var arguments: Value = ["url": .string(server.url + "/ok"), "users": 3, "iterations": 4]
            for (key, value) in extra.objectValue! { arguments[key] = value }
            let output = try await runLoad(arguments)
            #expect(output["overall"]?["count"] == 12)
            #expect(server.count("/ok") == 12)
        }
    }

    @Test("a dead server is counted as refused, not a hang")
    func refused() async throws {
        let port = try FreePort.take()
        let output = try await runLoad(["url": .string("http://127.0.0.1:\(port)/"), "users": 2, "iterations": 3])
        #expect(output["overall"]?["errors"]?["refused"] == 6)
    }

    @Test("open model: a slow server makes arrivals drop, and sent plus dropped is the schedule")
    func openModelDrops() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runLoad(["url": .string(server.url + "/slow?ms=300"), "rate": 50, "duration": 1, "users": 2])
            let count = try #require(output["overall"]?["count"]?.intValue)
            let dropped = try #require(output["dropped"]?.intValue)
            #expect(count + dropped == 50)
            #expect(dropped > 0)
            #expect(count == server.count("/slow"))
            #expect(output["model"] == "open")
            #expect(output["rate"] == 50.0)
            // Latency is measured from the scheduled start, so it is never below the server's delay.
            #expect((output["overall"]?["min_ms"]?.doubleValue ?? 0) >= 300)
        }
    }

    @Test("open model: every arrival is sent when the server keeps up")
    func openModel() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let output = try await runLoad(["url": .string(server.url + "/ok"), "rate": 100, "duration": 1])
            let count = try #require(output["overall"]?["count"]?.intValue)
            // On a machine too loaded to answer within graceful_stop, the late ones are abandoned.
            let abandoned = output["abandoned"]?.intValue ?? 0
            #expect(count + (output["dropped"]?.intValue ?? -1) + abandoned == 100)
            #expect(count <= server.count("/ok") && server.count("/ok") <= count + abandoned)
        }
    }

    @Test("requests still in flight when graceful_stop runs out are counted as abandoned, in no other count")
    func abandonedAtTheEnd() async throws {
        try await closing(TestHTTPServer.start()) { server in
            // Open model: five arrivals a connection each, none answered.
            let open = try await runLoad(["url": .string(server.url + "/hang"), "rate": 10, "duration": 0.5, "users": 5, "graceful_stop": 0.1])
            #expect(open["overall"]?["count"] == 0)
            #expect(open["dropped"] == 0)
            #expect(open["abandoned"] == 5)
            // Closed model: each user's first request.
            let closed = try await runLoad(["url": .string(server.url + "/hang"), "users": 3, "duration": 0.2, "graceful_stop": 0.1])
            #expect(closed["overall"]?["count"] == 0)
            #expect(closed["abandoned"] == 3)
            let result = try LoadResult(decoding: closed)
            #expect(result.abandoned == 3)
            // Nothing abandoned: the key is not written.
            let done = try await runLoad(["url": .string(server.url + "/ok"), "users": 1, "iterations": 2])
            #expect(done["overall"]?["count"] == 2)
            #expect(done["abandoned"] == nil)
        }
    }

    @Test("cancelling stops the load at once, closes its connections and keeps what was measured")
    func cancellation() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let task = Task { try await runLoad(["url": .string(server.url + "/ok"), "users": 4, "duration": 120]) }
            #expect(await eventually { server.count("/ok") > 50 })
            task.cancel()
            do {
                let output = try await task.value
                Issue.record("expected an interruption, got \(output)")
            } catch let failure as ActivityFailure {
                #expect(failure.message.contains("interrupted"))
                #expect((failure.output?["overall"]?["count"]?.intValue ?? 0) > 0)
                #expect((failure.output?["elapsed_s"]?.doubleValue ?? 999) < 60)
            }
            #expect(await eventually { server.openConnections == 0 })
        }
    }

    @Test("a host that does not resolve fails at once with a named DNS failure")
    func dns() async throws {
        await #expect {
            _ = try await runLoad(["url": "http://no-such-host.invalid/", "iterations": 1])
        } throws: { error in
            "\(error)".contains("DNS failure")
        }
    }
}

@Suite("http.load in experiments: thresholds, background runs, argument errors")
struct LoadExperimentTests {
    func experiment(url: String, tolerance: String, extra: String = "") -> String {
        """
        title: load
        steady-state-hypothesis:
          title: fast enough
          probes:
            - type: probe
              name: load
              provider:
                type: http.load
                users: 2
                iterations: 10
        \(extra)        requests:
                  - {name: home, url: "\(url)/ok"}
                  - {name: broken, url: "\(url)/status/500"}
              tolerance: \(tolerance)
        method: []
        """
    }

    @Test("thresholds that hold: the hypothesis is met and the output lists each threshold")
    func thresholdsPass() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let kit = TestKit()
            let result = try await kit.run(
                yaml: experiment(url: server.url, tolerance: #"{overall: ["count>=40", "rate<=0.5"], home: ["p(99)<60000", "rate<0.01"]}"#),
                plugins: [HTTPPlugin.self])
            let journal = try #require(result.journals.first)
            let probe = try #require(journal.steadyStates.before?.probes.first)
            #expect(probe.toleranceMet == true, "\(probe.toleranceMessage ?? "")")
            let thresholds = try #require(probe.output?["thresholds"]?.arrayValue)
            #expect(thresholds.count == 4)
            #expect(thresholds[0] == ["scope": "overall", "expression": "count>=40", "metric": "count", "limit": 40, "measured": 40.0, "ok": true])
            #expect(thresholds[1]["measured"] == 0.5)
            #expect(thresholds[2]["scope"] == "home" && thresholds[2]["metric"] == "p99_ms")
        }
    }

    @Test("a missed threshold names the metric, the limit and the measured value")
    func thresholdsFail() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let kit = TestKit()
            let result = try await kit.run(yaml: experiment(url: server.url, tolerance: #"["rate<0.01", "count>1000"]"#), plugins: [HTTPPlugin.self])
            let journal = try #require(result.journals.first)
            let probe = try #require(journal.steadyStates.before?.probes.first)
            #expect(probe.toleranceMet == false)
            let message = try #require(probe.toleranceMessage)
            #expect(message.contains("rate of overall is 0.5, limit < 0.01"))
            #expect(message.contains("count of overall is 40, limit > 1000"))
            #expect(probe.output?["thresholds"]?[1]?["ok"] == false)
            #expect(journal.outcome == .deviated || journal.outcome == .failed)
        }
    }

    @Test("a threshold for a request the load does not have is a miss that says so")
    func unknownScope() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let kit = TestKit()
            let result = try await kit.run(yaml: experiment(url: server.url, tolerance: #"{prediction: ["p(99)<10"]}"#), plugins: [HTTPPlugin.self])
            let probe = try #require(result.journals.first?.steadyStates.before?.probes.first)
            #expect(probe.toleranceMet == false)
            #expect(probe.toleranceMessage?.contains(#"no request or phase named "prediction""#) == true)
        }
    }

    @Test(
        "bad threshold syntax is a load error at file, line and column",
        arguments: [
            (#"["p(95)<200", "p(95)<2oo"]"#, #""2oo" is not a number"#),
            (#"["latency<200"]"#, "unknown metric"),
            (#"["p(75)<200"]"#, "p(75) is not measured"),
            (#"{home: ["avg 150"]}"#, "needs a comparison"),
        ] as [(String, String)])
    func badSyntax(tolerance: String, message: String) async throws {
        let kit = TestKit()
        await #expect {
            _ = try await kit.run(yaml: experiment(url: "http://127.0.0.1:1", tolerance: tolerance), plugins: [HTTPPlugin.self])
        } throws: { error in
            let text = "\(error)"
            return text.contains("experiment.yaml:14:") && text.contains(message)
        }
    }

    @Test("a load runs in the background across the method and is recorded with its output")
    func background() async throws {
        try await closing(TestHTTPServer.start()) { server in
            let kit = TestKit()
            let result = try await kit.run(
                yaml: """
                    title: load across a fault
                    method:
                      - type: probe
                        name: load
                        background: true
                        provider: {type: http.load, url: "\(server.url)/ok", users: 2, duration: 1}
                        tolerance: ["rate<0.01"]
                      - {type: action, name: inject, provider: {type: test.action, label: inject, delay: 0.3}}
                    """, plugins: [HTTPPlugin.self])
            let journal = try #require(result.journals.first)
            let load = try #require(journal.run.first { $0.activity["name"] == "load" })
            #expect(load.status == .succeeded)
            #expect((load.output?["overall"]?["count"]?.intValue ?? 0) > 0)
            #expect(load.output?["thresholds"]?[0]?["ok"] == true)
            #expect(kit.log == ["inject"])
        }
    }

    @Test(
        "argument mistakes are caught before anything runs",
        arguments: [
            (Value.object(["iterations": 1]), "needs a url or a list of requests"),
            (["url": "http://x/", "requests": [["url": "http://x/"]], "iterations": 1], "either url or requests"),
            (["url": "http://x/"], "needs a duration or iterations"),
            (["url": "http://x/", "rate": 10], "needs a duration"),
            (["url": "http://x/", "rate": 10, "duration": 1, "ramp_up": 1], "closed model"),
            (["url": "http://x/", "duration": 1, "ramp_up": 2], "longer than the duration"),
            (["requests": [["name": "a", "url": "http://x/"], ["name": "a", "url": "http://x/"]], "iterations": 1], "names must be unique"),
            (["requests": [["name": "overall", "url": "http://x/"]], "iterations": 1], "cannot name a request"),
            (["url": "http://x/", "iterations": 1, "think_time": [2, 1]], "think_time must be"),
        ] as [(Value, String)])
    func badArguments(arguments: Value, message: String) throws {
        #expect {
            _ = try prepared(LoadProbe.self, arguments)
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}

@Suite("k6 threshold grammar")
struct ThresholdGrammarTests {
    @Test(
        "expressions parse into metric, comparison and limit",
        arguments: [
            ("p(95)<200", "p95_ms", "<", 200.0), ("p(99.9) <= 1500", "p999_ms", "<=", 1500), ("avg<150", "avg_ms", "<", 150),
            ("max<1000", "max_ms", "<", 1000), ("min>0.5", "min_ms", ">", 0.5), ("med<100", "p50_ms", "<", 100),
            ("rate<0.01", "error_rate", "<", 0.01), ("count>100", "count", ">", 100), ("rps>=50", "rps", ">=", 50),
            ("p(90) != 3", "p90_ms", "!=", 3), ("count===5", "count", "===", 5),
        ] as [(String, String, String, Double)])
    func parses(text: String, key: String, comparison: String, limit: Double) throws {
        let threshold = try Threshold(parsing: text)
        #expect(threshold.metric.outputKey == key)
        #expect(threshold.comparison.rawValue == comparison)
        #expect(threshold.limit == limit)
    }

    @Test(
        "judging compares the measured value with the limit",
        arguments: [
            ("p(95)<200", 199.9, true), ("p(95)<200", 200, false), ("p(95)<=200", 200, true), ("rps>50", 50.5, true), ("rps>50", 49, false),
        ] as [(String, Double, Bool)])
    func judges(text: String, measured: Double, ok: Bool) throws {
        let threshold = try Threshold(parsing: text)
        let stats = try LoadStats(decoding: .object([threshold.metric.outputKey: .double(measured)]))
        let entry = threshold.evaluate(stats, scope: "overall")
        #expect(entry.ok == ok)
        #expect(entry.measured == measured)
    }
}
