import FaultlineKit
import FaultlineProcess
import FaultlineReports
import FaultlineTesting
import Foundation
import Testing

/// Regenerates the fixture journals from real runs of the engine (`SuiteRunner`, as `faultline run`
/// does) with the process provider and FaultlineTesting's fakes. Off unless asked for:
///
///     FAULTLINE_UPDATE_FIXTURES=1 swift test --filter FixtureGenerator
///     FAULTLINE_UPDATE_GOLDEN=1 swift test --filter FaultlineReportsTests
///
/// The `http.load` outputs are written by hand, following the shared load-probe contract: the
/// runs use a background `test.probe` that waits as long as the load would run, and this generator
/// replaces its output with a synthetic load (seeded, so the same run gives the same numbers) whose
/// per-second series and totals are computed from individual synthetic requests, slower and failing
/// while a fault window of the journal is in force. Once `http.load` exists, these fixtures should
/// come from real load runs.
@Suite(.serialized)
struct FixtureGenerator {
    static var enabled: Bool { ProcessInfo.processInfo.environment["FAULTLINE_UPDATE_FIXTURES"] == "1" }

    @Test(.enabled(if: FixtureGenerator.enabled))
    func regenerate() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-fixtures-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let output = Fixtures.path("journals")
        try? FileManager.default.removeItem(atPath: output)
        try FileManager.default.createDirectory(atPath: output + "/suite", withIntermediateDirectories: true)

        // The suite: five experiments, one per outcome worth showing.
        let kit = TestKit()
        kit.script("latency-p95", [["p95_ms": 41.7], ["p95_ms": 412.3]])
        kit.script("orders-load", [["p95_ms": 141.8], ["p95_ms": 318.2]])
        let suite = try await run(kit, "suite.yaml", journalPath: work + "/suite")
        for (journal, path) in zip(suite.journals, suite.journalPaths) {
            var journal = journal
            switch journal.title {
            case "Checkout survives 300 ms of database latency":
                try applyLoad(&journal, activity: "browse-and-checkout", profile: .checkout, seed: 11)
            case "Orders API keeps p95 under 200 ms when the cache dies":
                try applyLoad(&journal, activity: "orders-load", profile: .orders, seed: 12)
            default:
                break
            }
            try write(journal, to: output + "/suite/" + (path as NSString).lastPathComponent)
        }

        // An interrupted run: SIGINT while the partition is in force.
        let interruption = Interruption()
        let interrupter = Task {
            try await Task.sleep(for: .milliseconds(1200))
            interruption.interrupt("SIGINT")
        }
        let partitionKit = TestKit()
        partitionKit.script("warehouse-lag", [0.2, 0.4, 0.9, 2.6, 3.4, 4.1])
        let interrupted = try await run(partitionKit, "interrupted.yaml", journalPath: work + "/interrupted.json", interruption: interruption)
        _ = try? await interrupter.value
        try write(try #require(interrupted.journals.first), to: output + "/interrupted.json")

        // The same experiment before and after a fix, for the comparison.
        for (name, answers, profile, seed) in [
            ("compare-baseline", [Value.bool(true), .bool(false)], LoadProfile.searchBefore, UInt64(21)),
            ("compare-after", [.bool(true), .bool(true)], LoadProfile.searchAfter, UInt64(22)),
        ] {
            let kit = TestKit()
            kit.script("search-answers", answers)
            let result = try await run(kit, "compare.yaml", journalPath: work + "/\(name).json")
            var journal = try #require(result.journals.first)
            try applyLoad(&journal, activity: "search-load", profile: profile, seed: seed)
            try write(journal, to: output + "/\(name).json")
        }
    }

    private func run(_ kit: TestKit, _ file: String, journalPath: String, interruption: Interruption = Interruption()) async throws
        -> SuiteRunner.Result
    {
        var options = SuiteRunner.Options()
        options.journalPath = journalPath
        options.seed = 42
        let runner = SuiteRunner(registry: kit.registry(plugins: [ProcessPlugin.self, ReportsPlugin.self]), observer: kit.observer)
        let prepared = try runner.load(path: Fixtures.path("experiments/" + file), options: options)
        return await runner.run(prepared, interruption: interruption)
    }

    /// Writes a journal with its origin relative to the fixtures, so files do not name this machine's paths.
    private func write(_ journal: Journal, to path: String) throws {
        var journal = journal
        journal.origin = "experiments/" + (journal.origin as NSString).lastPathComponent
        try journal.json(pretty: true).write(to: URL(fileURLWithPath: path))
    }

    // MARK: Synthetic load

    struct RequestSpec {
        var name: String
        var method: String
        var path: String
        var baseMs: Double
        var status: String
        var bytes: Int
        var sent: Int
    }

    struct LoadProfile {
        var users: Int
        var rampUp: Double
        var thinkTime: Double
        var requests: [RequestSpec]
        var faultLatencyMs: Double
        var faultErrorRate: Double
        /// Error kinds while a fault is in force: status codes or the contract's error classes.
        var faultErrors: [String]
        var baseErrorRate: Double
        /// k6 thresholds on the overall stats; for hypothesis probes they become the tolerance.
        var thresholds: [String]

        static let productsRequest = RequestSpec(
            name: "GET /products", method: "GET", path: "/products", baseMs: 18, status: "200", bytes: 2300, sent: 160)
        static let checkoutRequest = RequestSpec(
            name: "POST /checkout", method: "POST", path: "/checkout", baseMs: 42, status: "201", bytes: 640, sent: 420)

        static let checkout = LoadProfile(
            users: 20, rampUp: 1, thinkTime: 0.1, requests: [productsRequest, checkoutRequest], faultLatencyMs: 300, faultErrorRate: 0.015,
            faultErrors: ["503", "503", "504", "read_timeout"], baseErrorRate: 0.001, thresholds: [])
        static let orders = LoadProfile(
            users: 12, rampUp: 0.5, thinkTime: 0.05,
            requests: [RequestSpec(name: "GET /orders", method: "GET", path: "/orders", baseMs: 35, status: "200", bytes: 1800, sent: 150)],
            faultLatencyMs: 260, faultErrorRate: 0.06, faultErrors: ["503", "500", "refused", "reset"], baseErrorRate: 0,
            thresholds: ["p(95)<200", "rate<0.05"])
        static let searchBefore = LoadProfile(
            users: 16, rampUp: 1, thinkTime: 0.1,
            requests: [
                RequestSpec(name: "GET /search", method: "GET", path: "/search?q=lamp", baseMs: 24, status: "200", bytes: 5200, sent: 170),
                RequestSpec(name: "GET /product", method: "GET", path: "/product/42", baseMs: 15, status: "200", bytes: 3100, sent: 160),
            ],
            faultLatencyMs: 820, faultErrorRate: 0.32, faultErrors: ["504", "504", "503", "read_timeout", "refused"], baseErrorRate: 0.002,
            thresholds: [])
        static let searchAfter = LoadProfile(
            users: 16, rampUp: 1, thinkTime: 0.1, requests: searchBefore.requests, faultLatencyMs: 60, faultErrorRate: 0.004, faultErrors: ["503"],
            baseErrorRate: 0.001, thresholds: [])
    }

    private struct Sample {
        var second: Int
        var request: Int
        var latency: Double
        /// A status code, or an error class for failures without a response.
        var outcome: String
        var failed: Bool
    }

    /// Replaces the output (and the provider, and for hypothesis probes the tolerance) of every record
    /// of `activity` with a synthetic `http.load` result.
    private func applyLoad(_ journal: inout Journal, activity: String, profile: LoadProfile, seed: UInt64) throws {
        let faults = journal.faults.compactMap { window -> (Date, Date)? in
            guard let start = window.start.date else { return nil }
            return (start, window.end?.date ?? journal.end?.date ?? start)
        }
        var counter = 0
        func rewrite(_ record: inout RunRecord) throws {
            guard record.name == activity else { return }
            counter += 1
            let output = synthesize(profile, record: record, faults: faults, seed: seed &+ UInt64(counter))
            record.output = output
            record.activity["provider"] = provider(profile, duration: record.duration)
            if record.toleranceMet != nil {
                let thresholds = output["thresholds"]?.arrayValue ?? []
                let missed = thresholds.filter { $0["ok"] == .bool(false) }
                let met = missed.isEmpty
                #expect(met == record.toleranceMet, "the scripted verdict of \(activity) must match its synthetic thresholds")
                record.activity["tolerance"] = .array(profile.thresholds.map { .string($0) })
                let message = missed.map { threshold -> String in
                    let metric = threshold["metric"]?.stringValue ?? ""
                    let measured = threshold["measured"]?.doubleValue ?? 0
                    return
                        "\(threshold["expression"]?.stringValue ?? ""): \(metric) was \(String(format: "%.1f", metric == "error_rate" ? measured * 100 : measured))\(metric == "error_rate" ? "%" : " ms")"
                }.joined(separator: "; ")
                if let old = record.toleranceMessage, !met {
                    journal.reason = journal.reason?.replacingOccurrences(of: old, with: message)
                }
                record.toleranceMessage = met ? nil : message
            }
        }
        for index in journal.run.indices { try rewrite(&journal.run[index]) }
        if var before = journal.steadyStates.before {
            for index in before.probes.indices { try rewrite(&before.probes[index]) }
            journal.steadyStates.before = before
        }
        if var after = journal.steadyStates.after {
            for index in after.probes.indices { try rewrite(&after.probes[index]) }
            journal.steadyStates.after = after
        }
        // The experiment as written shows the load probe too.
        journal.experiment = rewriteDefinition(journal.experiment, activity: activity) { definition in
            var definition = definition
            definition["provider"] = provider(profile, duration: 4)
            if definition["tolerance"] != nil { definition["tolerance"] = .array(profile.thresholds.map { .string($0) }) }
            return definition
        }
        #expect(counter > 0, "no record named \(activity)")
    }

    private func provider(_ profile: LoadProfile, duration: Double) -> Value {
        [
            "type": "http.load", "users": .int(profile.users), "ramp_up": .double(profile.rampUp), "duration": .double(duration.rounded()),
            "think_time": .double(profile.thinkTime),
            "requests": .array(
                profile.requests.map { ["name": .string($0.name), "method": .string($0.method), "url": .string("${api_url}\($0.path)")] }),
        ]
    }

    private func rewriteDefinition(_ value: Value, activity: String, _ transform: (Value) -> Value) -> Value {
        switch value {
        case .object(let object):
            if object["name"]?.stringValue == activity, object["provider"] != nil { return transform(value) }
            return .object(object.mapValues { rewriteDefinition($0, activity: activity, transform) })
        case .array(let items):
            return .array(items.map { rewriteDefinition($0, activity: activity, transform) })
        default:
            return value
        }
    }

    private func synthesize(_ profile: LoadProfile, record: RunRecord, faults: [(Date, Date)], seed: UInt64) -> Value {
        var random = SeededRandom(seed: seed)
        func gaussian() -> Double {
            let u1 = max(random.nextUnit(), 1e-12)
            let u2 = random.nextUnit()
            return sqrt(-2 * log(u1)) * cos(2 * .pi * u2)
        }
        let started = record.start.date!
        let ended = record.end.date!
        let elapsed = max(0.5, ended.timeIntervalSince(started))
        let relativeFaults = faults.map { ($0.0.timeIntervalSince(started), $0.1.timeIntervalSince(started)) }
        func coverage(_ from: Double, _ to: Double) -> Double {
            let covered = relativeFaults.map { max(0, min(to, $0.1) - max(from, $0.0)) }.max() ?? 0
            return min(1, covered / max(to - from, 1e-9))
        }
        let averageBase = profile.requests.map(\.baseMs).reduce(0, +) / Double(profile.requests.count)
        var samples: [Sample] = []
        var next = 0
        for second in 0..<Int(elapsed.rounded(.up)) {
            let length = min(1, elapsed - Double(second))
            let users =
                profile.rampUp > 0
                ? min(profile.users, max(1, Int((Double(profile.users) * Double(second + 1) / profile.rampUp).rounded(.up)))) : profile.users
            let faulted = coverage(Double(second), Double(second) + length)
            let meanLatency = averageBase + faulted * profile.faultLatencyMs
            let count = Int((Double(users) * length * 1000 / (meanLatency + profile.thinkTime * 1000)).rounded())
            for _ in 0..<count {
                let index = next % profile.requests.count
                next += 1
                let spec = profile.requests[index]
                let inFault = random.nextUnit() < faulted
                var latency = spec.baseMs * exp(0.35 * gaussian())
                if inFault { latency += profile.faultLatencyMs * (0.7 + 0.6 * random.nextUnit()) }
                let errorRate = inFault ? profile.faultErrorRate : profile.baseErrorRate
                var outcome = spec.status
                var failed = false
                if random.nextUnit() < errorRate {
                    failed = true
                    let kinds = inFault ? profile.faultErrors : ["503"]
                    outcome = kinds[Int(random.nextUnit() * Double(kinds.count)) % kinds.count]
                    switch outcome {
                    case "refused": latency = 0.2 + random.nextUnit() * 0.3
                    case "read_timeout": latency = 2000
                    case "reset": latency *= 0.5
                    default: break
                    }
                }
                samples.append(Sample(second: second, request: index, latency: (latency * 100).rounded() / 100, outcome: outcome, failed: failed))
            }
        }

        func stats(_ samples: [Sample]) -> Value {
            let sorted = samples.map(\.latency).sorted()
            func percentile(_ p: Double) -> Double {
                guard !sorted.isEmpty else { return 0 }
                return sorted[max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1)]
            }
            let failed = samples.filter(\.failed).count
            var codes: [String: Int] = [:]
            var errors: ValueObject = [
                "refused": 0, "connect_timeout": 0, "reset": 0, "read_timeout": 0, "tls": 0, "dns": 0, "http_4xx": 0, "http_5xx": 0, "other": 0,
            ]
            var received = 0
            var sent = 0
            for sample in samples {
                let spec = profile.requests[sample.request]
                if let code = Int(sample.outcome) {
                    codes[sample.outcome, default: 0] += 1
                    received += sample.failed ? 180 : spec.bytes
                    sent += spec.sent
                    if sample.failed {
                        errors[code >= 500 ? "http_5xx" : "http_4xx"] = .int((errors[code >= 500 ? "http_5xx" : "http_4xx"]?.intValue ?? 0) + 1)
                    }
                } else {
                    errors[sample.outcome] = .int((errors[sample.outcome]?.intValue ?? 0) + 1)
                    if sample.outcome != "refused" { sent += spec.sent }
                }
            }
            func round(_ value: Double, _ places: Double = 100) -> Value { .double((value * places).rounded() / places) }
            return [
                "count": .int(samples.count), "ok": .int(samples.count - failed), "failed": .int(failed),
                "error_rate": round(samples.isEmpty ? 0 : Double(failed) / Double(samples.count), 10000),
                "min_ms": .double(sorted.first ?? 0), "avg_ms": round(sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)),
                "max_ms": .double(sorted.last ?? 0), "p50_ms": .double(percentile(0.5)), "p90_ms": .double(percentile(0.9)),
                "p95_ms": .double(percentile(0.95)), "p99_ms": .double(percentile(0.99)), "p999_ms": .double(percentile(0.999)),
                "rps": round(Double(samples.count) / elapsed), "bytes_received": .int(received), "bytes_sent": .int(sent),
                "bytes_per_s": round(Double(received) / elapsed),
                "status_codes": .object(ValueObject(codes.keys.sorted().map { ($0, Value.int(codes[$0]!)) })),
                "errors": .object(errors),
            ]
        }

        let overall = stats(samples)
        var requests = ValueObject()
        for (index, spec) in profile.requests.enumerated() { requests[spec.name] = stats(samples.filter { $0.request == index }) }
        var timeline: [Value] = []
        for second in 0..<Int(elapsed.rounded(.up)) {
            let inSecond = samples.filter { $0.second == second }
            let secondStats = stats(inSecond)
            timeline.append([
                "second": .int(second), "at": .string(Timestamp(started.addingTimeInterval(Double(second))).text), "count": .int(inSecond.count),
                "errors": .int(inSecond.filter(\.failed).count), "p50_ms": secondStats["p50_ms"]!, "p99_ms": secondStats["p99_ms"]!,
            ])
        }
        var result: ValueObject = [
            "model": "closed", "users": .int(profile.users), "ramp_up_s": .double(profile.rampUp),
            "duration_s": .double((record.duration * 10).rounded() / 10),
            "iterations": .null, "rate": .null, "think_time_s": .double(profile.thinkTime), "started": .string(record.start.text),
            "ended": .string(record.end.text),
            "elapsed_s": .double((elapsed * 100).rounded() / 100), "dropped": 0, "overall": overall, "requests": .object(requests),
            "timeline": .array(timeline),
        ]
        if !profile.thresholds.isEmpty {
            result["thresholds"] = .array(
                profile.thresholds.map { expression in
                    let (metric, limit) = Self.parseThreshold(expression)
                    let measured = overall[metric]?.doubleValue ?? 0
                    return [
                        "scope": "overall", "expression": .string(expression), "metric": .string(metric), "limit": .double(limit),
                        "measured": .double(measured),
                        "ok": .bool(measured < limit),
                    ]
                })
        }
        return .object(result)
    }

    /// `p(95)<200` → (`p95_ms`, 200); `rate<0.01` → (`error_rate`, 0.01); `avg<150` → (`avg_ms`, 150).
    static func parseThreshold(_ expression: String) -> (String, Double) {
        let parts = expression.split(separator: "<", maxSplits: 1).map(String.init)
        let limit = Double(parts.last ?? "") ?? 0
        let name = parts.first ?? ""
        if name.hasPrefix("p("), let close = name.firstIndex(of: ")") {
            return ("p\(name[name.index(name.startIndex, offsetBy: 2)..<close])_ms", limit)
        }
        if name == "rate" { return ("error_rate", limit) }
        return ("\(name)_ms", limit)
    }
}
