import FaultlineHTTP
import FaultlineKit
import FaultlineMetrics
import FaultlineNetwork
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// GETs a URL with the `http` provider and returns its status and body.
private func get(_ url: String) async throws -> (status: Int, body: Value, headers: Value) {
    let output = try await HTTPProvider.run(HTTPProvider.Arguments(url: url, timeout: RequestTimeout(connect: 5, read: 30)), context: .standalone())
    return (output["status"]?.intValue ?? 0, output["body"] ?? .null, output["headers"] ?? .null)
}

/// A real Prometheus (the Debian package) on a free loopback port, scraping one target every
/// 100 ms, with its configuration and storage in a scratch directory; ended by its PID in
/// ``close()``.
final class TestPrometheus: TestResource, Sendable {
    let port: Int
    let process: TestProcess
    let directory: ScratchDirectory

    private init(port: Int, process: TestProcess, directory: ScratchDirectory) {
        self.port = port
        self.process = process
        self.directory = directory
    }

    /// Starts Prometheus scraping `target` (`host:port`) and waits until it is ready.
    static func start(scraping target: String) async throws -> TestPrometheus {
        guard let binary = installed("prometheus") else { throw TestFailure("prometheus is not installed (apt-get install prometheus)") }
        let directory = try ScratchDirectory(prefix: "faultline-prometheus")
        let port = try FreePort.take()
        try directory.write(
            "prometheus.yml",
            """
            global: {scrape_interval: 100ms, scrape_timeout: 100ms}
            scrape_configs:
              - job_name: faultline
                static_configs: [{targets: ["\(target)"]}]
            """)
        let process = try TestProcess(
            binary,
            [
                "--config.file=\(directory.path("prometheus.yml"))", "--storage.tsdb.path=\(directory.path("data"))",
                "--web.listen-address=127.0.0.1:\(port)",
            ], in: directory)
        let prometheus = TestPrometheus(port: port, process: process, directory: directory)
        let ready = await eventually(timeout: .seconds(60)) {
            guard process.isRunning else { return true }
            return (try? await get("http://127.0.0.1:\(port)/-/ready").status) == 200
        }
        guard ready, process.isRunning else {
            await prometheus.close()
            throw TestFailure("prometheus did not become ready:\n\(process.stderr.suffix(2000))")
        }
        return prometheus
    }

    /// An instant query's samples: each series' labels and value.
    func query(_ promQL: String) async throws -> [(labels: [String: String], value: Double)] {
        let encoded = promQL.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))!
        let response = try await get("http://127.0.0.1:\(port)/api/v1/query?query=\(encoded)")
        guard response.status == 200, response.body["status"] == "success", let result = response.body["data"]?["result"]?.arrayValue else {
            throw TestFailure("query \(promQL): \(response.status) \(response.body)")
        }
        return result.map { sample in
            var labels: [String: String] = [:]
            for (key, value) in sample["metric"]?.objectValue ?? [:] { labels[key] = value.stringValue }
            return (labels, Double(sample["value"]?[1]?.stringValue ?? "") ?? .nan)
        }
    }

    /// The value of a query that names one series, or nil when it names none.
    func value(_ promQL: String) async throws -> Double? {
        let samples = try await query(promQL)
        guard samples.count <= 1 else { throw TestFailure("query \(promQL) gave \(samples.count) series: \(samples)") }
        return samples.first?.value
    }

    func close() async { _ = await process.stop() }
}

@Suite("faultline run --metrics-listen", .serialized)
struct MetricsTests {
    /// A suite of two experiments: a quick one, then a load through a proxy with 20 ms of latency,
    /// held by the test twice — inside the load (its third request waits at a gate) and after it
    /// (a probe waits at another) — so the test reads Prometheus while the load runs and after it
    /// ended, before the run ends.
    static func suite(server: Int) -> String {
        """
        name: metrics
        experiments:
          - title: warm up
            method:
              - {type: probe, name: ping, provider: {type: http, url: "http://127.0.0.1:\(server)/ok", expected_status: 200}}
          - title: load under latency
            method:
              - {type: action, name: proxy, provider: {type: proxy.create, name: api, upstream: "127.0.0.1:\(server)"}}
              - {type: action, name: slow, provider: {type: toxic, proxy: api, toxic: latency, attributes: {latency: 20}}}
              - type: probe
                name: traffic
                provider:
                  type: http.load
                  users: 2
                  iterations: 20
                  records: true
                  request_timeout: [5, 300]
                  requests:
                    - {name: ok, url: "http://127.0.0.1:${api_PORT}/ok"}
                    - {name: broken, url: "http://127.0.0.1:${api_PORT}/status/503"}
                    - {name: held, url: "http://127.0.0.1:${api_PORT}/gate/load"}
              - {type: action, name: heal, provider: {type: toxic.remove, proxy: api, name: latency_downstream}}
              - {type: probe, name: hold, provider: {type: http, url: "http://127.0.0.1:\(server)/gate/end", timeout: [5, 300]}}
        """
    }

    @Test("a real Prometheus scrapes the run: load counters, latency histogram, faults and progress agree with the journal")
    func prometheus() async throws {
        guard isCI || installed("prometheus") != nil else { return }
        try await closing(TestHTTPServer.start()) { server in
            let metricsPort = try FreePort.take()
            try await closing(TestPrometheus.start(scraping: "127.0.0.1:\(metricsPort)")) { prometheus in
                let scratch = try ScratchDirectory()
                try scratch.write("suite.yaml", Self.suite(server: server.port))
                let run = try TestProcess.faultline(
                    ["run", "suite.yaml", "--journal-path", "journals", "--metrics-listen", "127.0.0.1:\(metricsPort)"], in: scratch)
                defer { run.signal(SIGKILL) }
                let load = #"{experiment="load under latency",probe="traffic"}"#
                func last(_ metric: String) async throws -> Double? { try await prometheus.value("last_over_time(\(metric)[1m])") }

                // While the load runs: both users wait at the gate, each having had one `ok` and one `broken`.
                let held = try await eventually(timeout: .seconds(120)) {
                    guard run.isRunning, server.waiting(atGate: "load") == 2 else { return false }
                    let running = try await last("faultline_load_running\(load)")
                    let ok = try await last(#"faultline_load_requests_total{probe="traffic",request="ok",status="200"}"#)
                    return running == 1 && ok == 2
                }
                try #require(held, "Prometheus never saw the held load\n\(run.stdout)\n\(run.stderr)")
                #expect(try await last(#"faultline_load_requests_total{probe="traffic",request="broken",status="503"}"#) == 2)
                #expect(try await last(#"faultline_load_errors_total{probe="traffic",request="broken",error="http_5xx"}"#) == 2)
                #expect(try await prometheus.query(#"last_over_time(faultline_load_requests_total{request="held"}[1m])"#).isEmpty)
                #expect(try await last(#"faultline_fault_active{experiment="load under latency"}"#) == 1, "the latency toxic is in force")
                #expect(try await last("faultline_experiment_current") == 2)
                #expect(try await last(#"faultline_experiments_finished_total{outcome="completed"}"#) == 1)
                #expect(try await last("faultline_experiments") == 2)

                // The load ends; the fault is removed; the run waits at the second gate.
                server.openGate("load")
                let ended = try await eventually(timeout: .seconds(120)) {
                    guard run.isRunning, server.waiting(atGate: "end") == 1 else { return false }
                    let running = try await last("faultline_load_running\(load)")
                    let active = try await last(#"faultline_fault_active{experiment="load under latency"}"#)
                    return running == 0 && active == 0
                }
                try #require(ended, "Prometheus never saw the load end\n\(run.stdout)\n\(run.stderr)")
                var requests: [String: Double] = [:]
                for sample in try await prometheus.query("last_over_time(faultline_load_requests_total\(load)[1m])") {
                    requests["\(sample.labels["request"] ?? "?") \(sample.labels["status"] ?? "?")"] = sample.value
                }
                var histogram: [String: [String: Double]] = [:]
                for sample in try await prometheus.query("last_over_time(faultline_load_request_duration_seconds_bucket\(load)[1m])") {
                    histogram[sample.labels["request"] ?? "?", default: [:]][sample.labels["le"] ?? "?"] = sample.value
                }
                var sums: [String: Double] = [:]
                for sample in try await prometheus.query("last_over_time(faultline_load_request_duration_seconds_sum\(load)[1m])") {
                    sums[sample.labels["request"] ?? "?"] = sample.value
                }
                let faultSeries = try await prometheus.query(
                    #"last_over_time(faultline_fault_start_timestamp_seconds{experiment="load under latency"}[1m])"#)
                let faultEnd = try await last(#"faultline_fault_end_timestamp_seconds{experiment="load under latency"}"#)
                let running = try await prometheus.query(#"last_over_time(faultline_experiment_running[1m])"#)

                server.openGate("end")
                #expect(await run.wait() == 0, "\(run.stdout)\n\(run.stderr)")

                // What Prometheus read is what the journal says.
                let journal = try Journal.load(path: scratch.path("journals/02-load-under-latency.json"))
                let record = try #require(journal.run.first { $0.providerType == "http.load" })
                let result = try LoadResult(decoding: try #require(record.output))
                #expect(result.overall.count == 120)
                for named in result.requests {
                    for status in named.stats.statusCodes {
                        #expect(requests["\(named.name) \(status.label)"] == Double(status.count), "\(named.name) \(status.label): \(requests)")
                    }
                    #expect(histogram[named.name]?["+Inf"] == Double(named.stats.count))
                    let sum = try #require(sums[named.name])
                    #expect(abs(sum * 1000 - named.stats.avgMs * Double(named.stats.count)) < 0.001 * Double(named.stats.count))
                }
                #expect(requests.count == 3, "\(requests)")

                // Each bucket counts the records at or under its bound, request by request.
                let csv = try String(contentsOfFile: scratch.path(try #require(result.recordsFile)), encoding: .utf8)
                let rows = csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
                #expect(rows.count == 120)
                for (name, buckets) in histogram {
                    let latencies = rows.filter { $0[1] == name }.compactMap { Double($0[6]) }.map { Int(($0 * 1000).rounded()) }
                    #expect(latencies.count == 40)
                    for (le, count) in buckets where le != "+Inf" {
                        let bound = Int((try #require(Double(le)) * 1_000_000).rounded())
                        #expect(Double(latencies.filter { $0 <= bound }.count) == count, "\(name) le=\(le)")
                    }
                    #expect(buckets["0.01"] == 0, "20 ms of latency puts every response above 10 ms")
                }

                // The fault: its label, start and end.
                try #require(journal.faults.count == 1 && faultSeries.count == 1)
                let fault = journal.faults[0]
                #expect(fault.label.hasPrefix(faultSeries[0].labels["fault"] ?? "?"), "\(fault.label) / \(faultSeries[0].labels)")
                #expect(faultSeries[0].labels["fault"]?.contains("latency") == true)
                #expect(abs(faultSeries[0].value - Double(try #require(fault.start.microsecondsSinceEpoch)) / 1e6) < 1e-5)
                #expect(abs((faultEnd ?? 0) - Double(try #require(fault.end?.microsecondsSinceEpoch)) / 1e6) < 1e-5)

                // Progress: the first experiment finished, the second still ran when the values were read.
                let states = Dictionary(running.map { ($0.labels["experiment"] ?? "?", $0.value) }, uniquingKeysWith: { a, _ in a })
                #expect(states == ["warm up": 0, "load under latency": 1])
                #expect(run.stdout.contains("metrics: http://127.0.0.1:\(metricsPort)/metrics"), "\(run.stdout)")
            }
        }
    }

    @Test("a bad address is a command-line error; a port in use stops the run before any experiment")
    func badAddresses() async throws {
        let scratch = try ScratchDirectory()
        try scratch.write(
            "exp.yaml", "title: t\nmethod:\n  - {type: action, name: touch, provider: {type: process, path: touch, arguments: [ran]}}\n")
        for (text, message) in [
            ("9100", "the port is missing"), ("localhost:http", "the port \"http\" is not a number"), ("[::1:9100", "\"[\" has no matching \"]\""),
        ] {
            let run = try TestProcess.faultline(["run", "exp.yaml", "--metrics-listen", text], in: scratch)
            #expect(await run.wait() == 2, "\(text): \(run.stderr)")
            #expect(run.stderr.contains("--metrics-listen \"\(text)\" is not host:port: \(message)"), "\(run.stderr)")
        }
        try await closing(TestTCPServer()) { occupied in
            let run = try TestProcess.faultline(["run", "exp.yaml", "--metrics-listen", occupied.address], in: scratch)
            #expect(await run.wait() == 1, "\(run.stdout)\n\(run.stderr)")
            #expect(
                run.stderr.contains("the run could not start: cannot serve metrics on \(occupied.address): the address is in use"), "\(run.stderr)")
            #expect(!FileManager.default.fileExists(atPath: scratch.path("ran")), "no experiment ran")
            #expect(!FileManager.default.fileExists(atPath: scratch.path("journal.json")))
        }
    }
}

/// The exposition's format, checked line by line as Prometheus's text format 0.0.4 defines it.
@Suite("the metrics exposition")
struct ExpositionFormatTests {
    /// Reads an exposition strictly: every family's HELP and TYPE before its samples, names and
    /// labels well formed, values numbers, histograms cumulative with `+Inf` equal to `_count`.
    /// - Returns: every sample as `name{labels}` → value, labels in the order written.
    static func parse(_ text: String) throws -> [String: Double] {
        let name = try Regex(#"^[a-zA-Z_:][a-zA-Z0-9_:]*$"#)
        let label = try Regex(#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)""#)
        var samples: [String: Double] = [:]
        var types: [String: String] = [:]
        var helped: Set<String> = []
        guard text.hasSuffix("\n") else { throw TestFailure("the exposition must end with a line feed") }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ", maxSplits: 3)
                guard parts.count == 4, (try? name.wholeMatch(in: String(parts[2]))) != nil else { throw TestFailure("bad comment: \(line)") }
                let family = String(parts[2])
                if parts[1] == "HELP" {
                    guard helped.insert(family).inserted else { throw TestFailure("two HELP lines for \(family)") }
                } else {
                    guard ["counter", "gauge", "histogram"].contains(parts[3]), types[family] == nil else { throw TestFailure("bad TYPE: \(line)") }
                    types[family] = String(parts[3])
                }
                continue
            }
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw TestFailure("a sample needs a value: \(line)")
            }
            let series = line[..<space]
            let metric = String(series.prefix { $0 != "{" })
            guard (try? name.wholeMatch(in: metric)) != nil else { throw TestFailure("bad metric name: \(line)") }
            if series.count > metric.count {
                guard series.hasSuffix("}") else { throw TestFailure("unclosed labels: \(line)") }
                var rest = Substring(series.dropFirst(metric.count + 1).dropLast())
                var names: Set<String> = []
                while !rest.isEmpty {
                    guard let match = try label.prefixMatch(in: rest) else { throw TestFailure("bad label at \(rest): \(line)") }
                    guard names.insert(String(match.output[1].substring!)).inserted else { throw TestFailure("a label twice: \(line)") }
                    rest = rest[match.range.upperBound...]
                    if rest.hasPrefix(",") { rest = rest.dropFirst() } else if !rest.isEmpty { throw TestFailure("bad separator: \(line)") }
                }
            }
            let family =
                ["_bucket", "_sum", "_count"].first { metric.hasSuffix($0) && types[String(metric.dropLast($0.count))] == "histogram" }
                .map { String(metric.dropLast($0.count)) } ?? metric
            guard let type = types[family], helped.contains(family) else { throw TestFailure("a sample before its HELP and TYPE: \(line)") }
            if type == "counter" { guard metric.hasSuffix("_total"), value >= 0 else { throw TestFailure("a counter: \(line)") } }
            guard samples.updateValue(value, forKey: String(series)) == nil else { throw TestFailure("a series twice: \(line)") }
        }
        // Histograms: buckets grow with `le`, and +Inf is the count.
        for (family, type) in types where type == "histogram" {
            let buckets = samples.filter { $0.key.hasPrefix(family + "_bucket{") }
            let groups = Dictionary(grouping: buckets) { $0.key.replacing(try! Regex(#",?le="[^"]*""#), with: "") }
            for (_, group) in groups {
                let ordered = group.map { entry -> (Double, Double) in
                    let le = entry.key.firstMatch(of: try! Regex(#"le="([^"]*)""#))!.output[1].substring!
                    return (le == "+Inf" ? .infinity : Double(le)!, entry.value)
                }.sorted { $0.0 < $1.0 }
                guard zip(ordered, ordered.dropFirst()).allSatisfy({ $0.1 <= $1.1 }), ordered.last?.0 == .infinity else {
                    throw TestFailure("\(family): buckets not cumulative up to +Inf: \(ordered)")
                }
                let count = group[0].key.replacing(try! Regex(#",?le="[^"]*""#), with: "").replacing(family + "_bucket", with: family + "_count")
                    .replacing("{}", with: "")
                guard samples[count] == ordered.last?.1 else { throw TestFailure("\(family): +Inf is not \(count)") }
            }
        }
        return samples
    }

    @Test("the endpoint serves Prometheus text with every documented metric, escaped labels and a consistent histogram")
    func format() async throws {
        let metrics = RunMetrics()
        metrics.handle(.suiteStarted(name: "suite \"one\"", profile: nil, experiments: 2))
        metrics.handle(.experimentStarted(title: "a\\b\nc", origin: "x.yaml", index: 1, total: 2))
        let start = Timestamp(Date(timeIntervalSince1970: 1_700_000_000.25))
        metrics.handle(.faultStarted(FaultWindow(id: "slow#1", label: #"latency "300 ms" on db"#, start: start, end: nil)))
        var counted = LoadProgress(requests: ["home", "search"])
        counted.requests[0].statuses = [200: 3, 0: 1]
        counted.requests[0].errors = ["refused": 1]
        counted.requests[0].latencyBuckets[0] = 1
        counted.requests[0].latencyBuckets[5] = 2
        counted.requests[0].latencySumMicros = 40_400
        let live = counted
        let id = metrics.loadStarted(activity: "traffic", requests: ["home", "search"]) { live }

        let server = try await MetricsServer.start(metrics, on: HostPort(host: "127.0.0.1", port: 0))
        do {
            let response = try await get(server.url)
            #expect(response.status == 200)
            #expect(response.headers["Content-Type"]?.stringValue == "text/plain; version=0.0.4; charset=utf-8", "\(response.headers)")
            let text = try #require(response.body.stringValue)
            let samples = try Self.parse(text)
            let load = #"experiment="a\\b\nc",probe="traffic""#
            #expect(samples[#"faultline_run_info{suite="suite \"one\"",profile=""}"#] == 1)
            #expect(samples["faultline_experiments"] == 2)
            #expect(samples[#"faultline_experiment_running{index="1",experiment="a\\b\nc"}"#] == 1)
            #expect(samples[#"faultline_fault_active{experiment="a\\b\nc",fault="latency \"300 ms\" on db"}"#] == 1)
            #expect(samples[#"faultline_fault_start_timestamp_seconds{experiment="a\\b\nc",fault="latency \"300 ms\" on db"}"#] == 1_700_000_000.25)
            #expect(samples["faultline_load_running{\(load)}"] == 1)
            #expect(samples["faultline_load_requests_total{\(load),request=\"home\",status=\"200\"}"] == 3)
            #expect(samples["faultline_load_requests_total{\(load),request=\"home\",status=\"0\"}"] == 1)
            #expect(samples["faultline_load_errors_total{\(load),request=\"home\",error=\"refused\"}"] == 1)
            #expect(samples["faultline_load_request_duration_seconds_bucket{\(load),request=\"home\",le=\"0.0005\"}"] == 1)
            #expect(samples["faultline_load_request_duration_seconds_bucket{\(load),request=\"home\",le=\"0.01\"}"] == 1)
            #expect(samples["faultline_load_request_duration_seconds_bucket{\(load),request=\"home\",le=\"0.025\"}"] == 3)
            #expect(samples["faultline_load_request_duration_seconds_bucket{\(load),request=\"home\",le=\"+Inf\"}"] == 3)
            #expect(samples["faultline_load_request_duration_seconds_sum{\(load),request=\"home\"}"] == 0.0404)
            #expect(samples["faultline_load_request_duration_seconds_count{\(load),request=\"search\"}"] == 0)
            #expect(samples["faultline_load_dropped_total{\(load)}"] == 0)

            // The README's table names every family the endpoint writes.
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let readme = try String(contentsOfFile: root.appendingPathComponent("README.md").path, encoding: .utf8)
            let families = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) }
            #expect(families.count == 13)
            for family in families { #expect(readme.contains("| `\(family)` |"), "the README's metrics table lacks \(family)") }

            // Prometheus's own linter agrees.
            if let promtool = installed("promtool") {
                let scratch = try ScratchDirectory()
                try scratch.write("metrics.txt", text)
                let check = try TestProcess("/bin/sh", ["-c", "\"$0\" check metrics < metrics.txt", promtool], in: scratch)
                #expect(await check.wait() == 0, "\(check.stdout)\(check.stderr)")
            } else {
                #expect(!isCI, "promtool comes with the prometheus package")
            }

            // A finished load keeps its counts; the fault ends.
            var final = counted
            final.requests[1].statuses = [200: 1]
            final.requests[1].latencyBuckets[15] = 1
            final.requests[1].latencySumMicros = 31_000_000
            metrics.loadEnded(id, final: final)
            metrics.handle(
                .faultEnded(
                    FaultWindow(
                        id: "slow#1", label: #"latency "300 ms" on db"#, start: start, end: Timestamp(Date(timeIntervalSince1970: 1_700_000_002)))))
            let after = try Self.parse(try #require(try await get(server.url).body.stringValue))
            #expect(after["faultline_load_running{\(load)}"] == 0)
            #expect(after["faultline_load_requests_total{\(load),request=\"home\",status=\"200\"}"] == 3)
            #expect(after["faultline_load_request_duration_seconds_bucket{\(load),request=\"search\",le=\"30\"}"] == 0)
            #expect(after["faultline_load_request_duration_seconds_bucket{\(load),request=\"search\",le=\"+Inf\"}"] == 1)
            #expect(after[#"faultline_fault_active{experiment="a\\b\nc",fault="latency \"300 ms\" on db"}"#] == 0)
            #expect(after[#"faultline_fault_end_timestamp_seconds{experiment="a\\b\nc",fault="latency \"300 ms\" on db"}"#] == 1_700_000_002)
            #expect(try await get(server.url.replacingOccurrences(of: "/metrics", with: "/other")).status == 404)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
        await #expect(throws: (any Error).self) { try await get(server.url) }
    }

    @Test(
        "a latency falls in the first bucket whose bound it does not exceed",
        arguments: [
            (UInt32(1), 0), (500, 0), (501, 1), (1000, 1), (30_000_000, 14), (30_000_001, 15),
        ])
    func buckets(micros: UInt32, bucket: Int) {
        #expect(LoadProgress.Request.bucket(ofMicros: micros) == bucket)
    }
}
