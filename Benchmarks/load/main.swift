// http.load against wrk, on the same local nginx, with the same connections and duration; then
// the peak memory of http.load from 10^4 to 10^7 requests. Run with Benchmarks/load/run.sh
// (it installs wrk and nginx from Debian and builds in release mode).
//
// Usage: FaultlineLoadBenchmark [--connections N] [--duration S] [--max-requests N] [--rounds N]
//        FaultlineLoadBenchmark --shards [--connections N] [--duration S] [--rounds N]   (Shards.swift)
//        FaultlineLoadBenchmark --memory-child URL REQUESTS CONNECTIONS   (internal)
import FaultlineHTTP
import FaultlineKit
import Foundation
import NIOCore
import NIOPosix

struct Options {
    var connections = 64
    var duration = 10.0
    var maxRequests = 10_000_000
    var threads = min(ProcessInfo.processInfo.activeProcessorCount, 2)
    var rounds = 3
    /// Event loops for http.load; wrk gets as many threads.
    var loops = min(ProcessInfo.processInfo.activeProcessorCount, 2)
    /// Compare one shard on one core with two on two cores (Shards.swift) instead of wrk.
    var shards = false
    /// The `faultline` binary the shards run (default: beside this program).
    var faultline = (CommandLine.arguments[0] as NSString).deletingLastPathComponent + "/faultline"

    init(_ arguments: [String]) {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--connections": connections = Int(iterator.next() ?? "") ?? connections
            case "--duration": duration = Double(iterator.next() ?? "") ?? duration
            case "--max-requests": maxRequests = Int(Double(iterator.next() ?? "") ?? Double(maxRequests))
            case "--threads":
                threads = max(1, Int(iterator.next() ?? "") ?? threads)
                loops = threads
            case "--rounds": rounds = max(1, Int(iterator.next() ?? "") ?? rounds)
            case "--shards": shards = true
            case "--faultline": faultline = iterator.next() ?? faultline
            default: break
            }
        }
    }
}

/// Latency and throughput as both tools report them.
struct Measurement {
    var requestsPerSecond: Double
    var p50: Double
    var p99: Double
    var count: Int
    /// CPU time the tool spent per request, in microseconds: robust to other load on the machine.
    var cpuMicrosPerRequest: Double = 0
}

/// User plus system CPU seconds of this process or of its finished children.
func cpuSeconds(_ who: __rusage_who) -> Double {
    var usage = rusage()
    getrusage(who.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

enum BenchmarkError: Error, CustomStringConvertible {
    case missing(String)
    case failed(String)
    var description: String {
        switch self {
        case .missing(let tool): "\(tool) is not installed: run Benchmarks/load/run.sh, which installs it (apt-get install -y wrk nginx-light)"
        case .failed(let message): message
        }
    }
}

func which(_ tool: String) -> String? {
    for directory in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let path = directory + "/" + tool
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// Runs a program to the end and returns its standard output.
func run(_ path: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchmarkError.failed("\(path) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
    }
    return String(decoding: data, as: UTF8.self)
}

/// A free loopback port: bound to 0, read, released.
func freePort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            bind(descriptor, raw, length) == 0 && getsockname(descriptor, raw, &length) == 0
        }
    }
    guard ok else { throw BenchmarkError.failed("cannot find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// nginx on a loopback port answering every request with a short body, access log off.
final class Nginx {
    let port: Int
    let process = Process()
    let directory: URL

    init(workers: Int) throws {
        guard let nginx = which("nginx") else { throw BenchmarkError.missing("nginx") }
        port = try freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("logs"), withIntermediateDirectories: true)
        let configuration = """
            worker_processes \(workers);
            pid \(directory.path)/nginx.pid;
            error_log \(directory.path)/logs/error.log warn;
            events { worker_connections 4096; }
            http {
                access_log off;
                keepalive_requests 100000000;
                keepalive_timeout 120s;
                client_body_temp_path \(directory.path)/body;
                proxy_temp_path \(directory.path)/proxy;
                fastcgi_temp_path \(directory.path)/fastcgi;
                uwsgi_temp_path \(directory.path)/uwsgi;
                scgi_temp_path \(directory.path)/scgi;
                server {
                    listen 127.0.0.1:\(port);
                    location / { default_type text/plain; return 200 "hello from nginx\\n"; }
                }
            }
            """
        try configuration.write(to: directory.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: nginx)
        process.arguments = ["-p", directory.path, "-c", directory.appendingPathComponent("nginx.conf").path, "-g", "daemon off;"]
        try process.run()
        // Ready when it accepts a connection.
        for _ in 0..<200 {
            if canConnect() { return }
            usleep(20_000)
        }
        stop()
        throw BenchmarkError.failed("nginx did not start; see \(directory.path)/logs/error.log")
    }

    var url: String { "http://127.0.0.1:\(port)/" }

    private func canConnect() -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    func stop() {
        if process.isRunning {
            process.terminate()  // SIGTERM: nginx stops its workers and exits.
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}

/// wrk's numbers, from its `--latency` report.
func runWrk(url: String, connections: Int, threads: Int, duration: Double) throws -> Measurement {
    guard let wrk = which("wrk") else { throw BenchmarkError.missing("wrk") }
    let cpuBefore = cpuSeconds(RUSAGE_CHILDREN)
    // The same request on the wire as http.load's: it adds User-Agent and Accept to Host, and
    // each field is work for nginx, the shared server both tools are measured against.
    let headers = ["-H", "User-Agent: faultline/\(Engine.version)", "-H", "Accept: */*"]
    let text = try run(
        wrk, ["-t", String(min(threads, connections)), "-c", String(connections), "-d", "\(Int(duration))s", "--latency"] + headers + [url])
    func milliseconds(_ token: Substring) -> Double? {
        let units: [(String, Double)] = [("us", 0.001), ("ms", 1), ("s", 1000), ("m", 60_000)]
        for (suffix, scale) in units where token.hasSuffix(suffix) {
            if let number = Double(token.dropLast(suffix.count)) { return number * scale }
        }
        return nil
    }
    var result = Measurement(requestsPerSecond: 0, p50: 0, p99: 0, count: 0)
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if fields.first == "Requests/sec:", let value = fields.last.flatMap({ Double($0) }) { result.requestsPerSecond = value }
        if fields.count == 2, fields[0] == "50%", let value = milliseconds(fields[1]) { result.p50 = value }
        if fields.count == 2, fields[0] == "99%", let value = milliseconds(fields[1]) { result.p99 = value }
        if fields.count >= 2, fields[1] == "requests", let value = Int(fields[0]) { result.count = value }
    }
    guard result.requestsPerSecond > 0 else { throw BenchmarkError.failed("cannot read wrk's output:\n\(text)") }
    result.cpuMicrosPerRequest = (cpuSeconds(RUSAGE_CHILDREN) - cpuBefore) * 1e6 / Double(max(result.count, 1))
    return result
}

/// http.load's event loops, as many as wrk's threads: its own for plain HTTP (what this
/// benchmark loads), NIO's for TLS.
nonisolated(unsafe) var loadGroup = MultiThreadedEventLoopGroup.singleton
nonisolated(unsafe) var plainLoops = LoadLoops.shared

/// Sets how many event loops http.load runs on.
func useLoops(_ count: Int) {
    guard count != System.coreCount else { return }
    loadGroup = MultiThreadedEventLoopGroup(numberOfThreads: count)
    plainLoops = LoadLoops(count: count)
}

func runLoad(url: String, connections: Int, duration: Double? = nil, iterations: Int? = nil) async throws -> Value {
    let arguments = LoadProbe.Arguments(url: url, users: connections, duration: duration, iterations: iterations)
    try LoadProbe.validate(arguments)
    return try await LoadProbe.run(arguments, context: .standalone(name: "benchmark"), group: loadGroup, plainLoops: plainLoops)
}

func measurement(_ output: Value) -> Measurement {
    let overall = output["overall"] ?? .null
    return Measurement(
        requestsPerSecond: overall["rps"]?.doubleValue ?? 0, p50: overall["p50_ms"]?.doubleValue ?? 0, p99: overall["p99_ms"]?.doubleValue ?? 0,
        count: overall["count"]?.intValue ?? 0)
}

/// Peak resident memory of this process, in KiB (`VmHWM`).
func peakResidentKiB() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
    }
    return 0
}

func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : String(repeating: " ", count: width - text.count) + text }
func fixed(_ value: Double, _ places: Int = 3) -> String { String(format: "%.\(places)f", value) }

// MARK: Main

let arguments = Array(CommandLine.arguments.dropFirst())

if arguments.first == "--memory-child" {
    // One run of `requests` requests in a fresh process, so its peak RSS is its own.
    let url = arguments[1]
    let requests = Int(arguments[2])!
    let connections = Int(arguments[3])!
    if let loops = arguments.count > 4 ? Int(arguments[4]) : nil { useLoops(loops) }
    let output = try await runLoad(url: url, connections: connections, iterations: max(1, requests / connections))
    print("\(measurement(output).count) \(peakResidentKiB()) \(fixed(measurement(output).requestsPerSecond, 0))")
    exit(0)
}

/// Stops nginx when the benchmark is interrupted, so nothing is left running.
nonisolated(unsafe) var nginxProcessID: pid_t = 0

func compare(_ options: Options, nginx: Nginx) async throws {
    let cores = ProcessInfo.processInfo.activeProcessorCount

    print(
        "http.load vs wrk: nginx (1 worker) on 127.0.0.1, \(options.connections) connections, \(options.threads) threads/event loops, \(Int(options.duration)) s a run, \(options.rounds) rounds, \(cores) cores"
    )
    print("(the tools take turns, in alternating order, so that other load on the machine hits both alike)")
    // A short warm-up so that neither tool pays for nginx's first connections.
    _ = try runWrk(url: nginx.url, connections: options.connections, threads: options.threads, duration: 1)
    var wrkRuns: [Measurement] = []
    var loadRuns: [Measurement] = []
    print("")
    print(
        pad("round", 8) + pad("wrk req/s", 12) + pad("load req/s", 12) + pad("ratio", 8) + pad("wrk p50", 10) + pad("load p50", 10)
            + pad("wrk p99", 10) + pad("load p99", 10) + pad("wrk cpu/req", 13) + pad("load cpu/req", 13))
    for round in 1...options.rounds {
        func wrkRun() throws {
            wrkRuns.append(try runWrk(url: nginx.url, connections: options.connections, threads: options.threads, duration: options.duration))
        }
        func loadRun() async throws {
            let cpuBefore = cpuSeconds(RUSAGE_SELF)
            var m = measurement(try await runLoad(url: nginx.url, connections: options.connections, duration: options.duration))
            m.cpuMicrosPerRequest = (cpuSeconds(RUSAGE_SELF) - cpuBefore) * 1e6 / Double(max(m.count, 1))
            loadRuns.append(m)
        }
        if round % 2 == 1 {
            try wrkRun()
            try await loadRun()
        } else {
            try await loadRun()
            try wrkRun()
        }
        let w = wrkRuns.last!, l = loadRuns.last!
        print(
            pad(String(round), 8) + pad(fixed(w.requestsPerSecond, 0), 12) + pad(fixed(l.requestsPerSecond, 0), 12)
                + pad(String(format: "%.2f", l.requestsPerSecond / w.requestsPerSecond), 8) + pad(fixed(w.p50), 10) + pad(fixed(l.p50), 10)
                + pad(fixed(w.p99), 10) + pad(fixed(l.p99), 10) + pad(fixed(w.cpuMicrosPerRequest, 1) + " µs", 13)
                + pad(fixed(l.cpuMicrosPerRequest, 1) + " µs", 13))
    }
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    let wrk = Measurement(
        requestsPerSecond: median(wrkRuns.map(\.requestsPerSecond)), p50: median(wrkRuns.map(\.p50)), p99: median(wrkRuns.map(\.p99)), count: 0)
    let load = Measurement(
        requestsPerSecond: median(loadRuns.map(\.requestsPerSecond)), p50: median(loadRuns.map(\.p50)), p99: median(loadRuns.map(\.p99)), count: 0)

    print("")
    print("medians" + pad("requests/s", 12) + pad("p50 ms", 10) + pad("p99 ms", 10))
    for (name, m) in [("wrk", wrk), ("http.load", load)] {
        print(
            name + String(repeating: " ", count: 7 - min(7, name.count)) + pad(fixed(m.requestsPerSecond, 0), 12) + pad(fixed(m.p50), 10)
                + pad(fixed(m.p99), 10))
    }
    let ratio = load.requestsPerSecond / wrk.requestsPerSecond
    let p50Difference = (load.p50 - wrk.p50) / wrk.p50 * 100
    let p99Difference = (load.p99 - wrk.p99) / wrk.p99 * 100
    print(
        "ratio  " + pad(String(format: "%.2f×", ratio), 12) + pad(String(format: "%+.1f %%", p50Difference), 10)
            + pad(String(format: "%+.1f %%", p99Difference), 10))
    // The issue's goal: at least wrk's rate with the same connections, and no latency wrk would not see.
    let met = ratio >= 1.0 && p50Difference <= 0
    print("goal: ≥ 1.00× wrk's requests/s, p50 no worse than wrk's: \(met ? "met" : "NOT met")")

    print("")
    print("memory: peak RSS of a fresh process running N requests with \(options.connections) users")
    print(pad("requests", 12) + pad("peak MiB", 12) + pad("requests/s", 14))
    var sizes: [Int] = []
    var size = 10_000
    while size <= options.maxRequests {
        sizes.append(size)
        size *= 10
    }
    var peaks: [Double] = []
    for size in sizes {
        let text = try run(CommandLine.arguments[0], ["--memory-child", nginx.url, String(size), String(options.connections), String(options.loops)])
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count == 3, let count = Int(fields[0]), let kib = Double(fields[1]) else {
            throw BenchmarkError.failed("memory child said: \(text)")
        }
        peaks.append(kib / 1024)
        print(pad(String(count), 12) + pad(fixed(kib / 1024, 1), 12) + pad(String(fields[2]), 14))
    }
    if let first = peaks.first, let last = peaks.last {
        print(String(format: "growth from %d to %d requests: %.2f× (flat means close to 1×)", sizes.first!, sizes.last!, last / first))
    }
}

let options = Options(arguments)
useLoops(options.loops)
let nginx = try Nginx(workers: 1)
nginxProcessID = nginx.process.processIdentifier
for signalNumber in [SIGINT, SIGTERM] {
    signal(signalNumber) { number in
        kill(nginxProcessID, SIGTERM)
        _exit(128 + number)
    }
}
do {
    if options.shards {
        try await compareShards(options, nginx: nginx)
    } else {
        try await compare(options, nginx: nginx)
    }
    nginx.stop()
} catch {
    nginx.stop()
    print("benchmark failed: \(error)")
    exit(1)
}
