// `ProxyBenchmark --churn`: the proxy's memory under toxic churn, beside Toxiproxy's under the
// same load. Each server runs as a child process, one after the other; while 100 client
// connections stream data through its proxies, toxics of every type are added, updated and
// removed and proxies are deleted and created again. Then everything stops and is deleted, and
// the resident memory is read once more.
//
//   .build/release/ProxyBenchmark --churn [--seconds 30] [--streaming 10] [--toxiproxy PATH] [--faultline PATH]
//
// Most connections exchange 1–64 KiB with an echo server; `--streaming` percent of them stream
// both ways as fast as they can.
//
// --toxiproxy (or TOXIPROXY_SERVER) is a toxiproxy-server binary; without one only faultline is
// measured. --faultline measures another faultline binary than the one beside the benchmark.
// Goals (issue 15): after the churn RSS comes back to ≤ 2× the idle RSS, and the peak stays within
// Toxiproxy's under the same load.

import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

enum ChurnBenchmark {
    static let clients = 100
    static let proxies = 10

    /// A server under test: a child process with its admin API port.
    struct Server {
        var label: String
        var process: Process
        var apiPort: Int
        var pid: Int32 { process.processIdentifier }
    }

    /// What one run measured.
    struct Result {
        var label: String
        var idle: Int
        var peak: Int
        var after: Int
        var movedBytes: Int
        var connections: Int
        var apiCalls: Int
        var apiFailures: Int
    }

    static func run(faultline: String, arguments: [String]) {
        let seconds = option("--seconds", in: arguments).flatMap(Double.init) ?? 30
        let streaming = option("--streaming", in: arguments).flatMap(UInt64.init) ?? 10
        let toxiproxy = option("--toxiproxy", in: arguments) ?? ProcessInfo.processInfo.environment["TOXIPROXY_SERVER"]
        print(
            "Proxy memory under churn: \(clients) connections (\(streaming) % streaming, the rest exchanging 1–64 KiB) through \(proxies) proxies for \(Int(seconds)) s while toxics"
        )
        print("of every type are added, updated and removed and proxies deleted and created; then all is closed and deleted.")
        let echo = try! TestServer.echo()
        var results: [Result] = []
        results.append(
            measure(
                try! startFaultline(option("--faultline", in: arguments) ?? faultline), echo: echo.port, seconds: seconds, streamingPercent: streaming
            ))
        if let toxiproxy {
            if FileManager.default.isExecutableFile(atPath: toxiproxy) {
                results.append(measure(try! startToxiproxy(toxiproxy), echo: echo.port, seconds: seconds, streamingPercent: streaming))
            } else {
                print("no Toxiproxy at \(toxiproxy): measuring faultline only")
            }
        } else {
            print("no Toxiproxy given (--toxiproxy PATH or TOXIPROXY_SERVER): measuring faultline only")
        }
        print("")
        func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
        func cell(_ text: String, _ width: Int) -> String { text.padding(toLength: width, withPad: " ", startingAt: 0) }
        print(
            cell("server", 20) + cell("idle RSS", 12) + cell("peak (VmHWM)", 14) + cell("after churn", 13) + cell("after/idle", 12)
                + cell("data moved", 13) + cell("connections", 13) + "API calls (failed)")
        print(String(repeating: "-", count: 116))
        for result in results {
            print(
                cell(result.label, 20) + cell(mib(result.idle), 12) + cell(mib(result.peak), 14) + cell(mib(result.after), 13)
                    + cell(String(format: "%.2f×", Double(result.after) / Double(max(1, result.idle))), 12)
                    + cell(String(format: "%.0f MiB", Double(result.movedBytes) / 1_048_576), 13) + cell("\(result.connections)", 13)
                    + "\(result.apiCalls) (\(result.apiFailures))")
        }
        let ours = results[0]
        print("")
        print(goal(ours.after <= 2 * ours.idle, String(format: "after churn ≤ 2× idle: %.2f×", Double(ours.after) / Double(max(1, ours.idle)))))
        if results.count > 1 {
            let theirs = results[1]
            print(
                goal(
                    ours.peak <= theirs.peak,
                    String(format: "peak within Toxiproxy's: %.2f× Toxiproxy's peak", Double(ours.peak) / Double(max(1, theirs.peak)))))
        }
    }

    private static func option(_ name: String, in arguments: [String]) -> String? {
        guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
        return arguments[index + 1]
    }

    // MARK: Servers

    static func startFaultline(_ path: String) throws -> Server {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["proxy", "--port", "0", "--seed", "1"]
        let banner = Pipe()
        process.standardOutput = banner
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while true {
            let byte = banner.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            line.append(byte)
        }
        let port = Int(String(decoding: line, as: UTF8.self).split(separator: ":").last!.prefix { $0.isNumber })!
        return Server(label: "faultline proxy", process: process, apiPort: port)
    }

    static func startToxiproxy(_ path: String) throws -> Server {
        let (probe, port) = try Sockets.listen()
        close(probe)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-host", "127.0.0.1", "-port", String(port)]
        process.environment = ProcessInfo.processInfo.environment.merging(["LOG_LEVEL": "error"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 where adminRequest(port: port, "GET", "/version").status != 200 { usleep(50_000) }
        let version = adminRequest(port: port, "GET", "/version").body.trimmingCharacters(in: .whitespacesAndNewlines)
        return Server(
            label: "toxiproxy \(version.contains("\"version\"") ? "" : version)".trimmingCharacters(in: .whitespaces), process: process, apiPort: port
        )
    }

    // MARK: One run

    /// What the client, churn and main threads share during one run.
    final class Run: Sendable {
        let apiPort: Int
        let echo: Int
        /// The share of connections that stream as fast as they can rather than exchange.
        let streamingPercent: UInt64
        /// The port each proxy listens on now; 0 while it is being created again.
        let ports = Shared([Int](repeating: 0, count: ChurnBenchmark.proxies))
        let calls = Counter(0)
        let failures = Counter(0)
        let moved = Counter(0)
        let connections = Counter(0)
        let finished = Counter(0)
        private let stopped = Atomic<Bool>(false)

        init(apiPort: Int, echo: Int, streamingPercent: UInt64) {
            self.apiPort = apiPort
            self.echo = echo
            self.streamingPercent = streamingPercent
        }

        var stopping: Bool { stopped.load(ordering: .relaxed) }
        func stop() { stopped.store(true, ordering: .relaxed) }

        @discardableResult
        func call(_ method: String, _ path: String, _ body: String = "") -> (status: Int, body: String) {
            calls.add(1)
            let response = adminRequest(port: apiPort, method, path, body)
            if !(200..<300).contains(response.status) { failures.add(1) }
            return response
        }

        func createProxy(_ index: Int) {
            let (status, body) = call("POST", "/proxies", #"{"name":"churn\#(index)","listen":"127.0.0.1:0","upstream":"127.0.0.1:\#(echo)"}"#)
            guard status == 201,
                let port = body.components(separatedBy: "\"listen\":\"127.0.0.1:").dropFirst().first.flatMap({ Int($0.prefix { $0.isNumber }) })
            else { return }
            ports.withLock { $0[index] = port }
        }
    }

    static func measure(_ server: Server, echo: Int, seconds: Double, streamingPercent: UInt64) -> Result {
        print("measuring \(server.label) (pid \(server.pid))…")
        // CHURN_HOLD=S waits S seconds before and after the churn, to attach a profiler.
        let hold = ProcessInfo.processInfo.environment["CHURN_HOLD"].flatMap(UInt32.init)
        if let hold {
            FileHandle.standardError.write(Data("holding \(server.label) (pid \(server.pid)) for \(hold) s\n".utf8))
            sleep(hold)
        }
        sleep(1)
        let idle = memory(of: server.pid).rss
        let run = Run(apiPort: server.apiPort, echo: echo, streamingPercent: streamingPercent)
        for index in 0..<proxies { run.createProxy(index) }

        for client in 0..<clients {
            Sockets.thread {
                stream(client: client, run: run)
                run.finished.add(1)
            }
        }
        Sockets.thread {
            churn(run)
            run.finished.add(1)
        }

        var peakSampled = idle
        let end = nanoseconds() + UInt64(seconds * 1e9)
        while nanoseconds() < end {
            usleep(100_000)
            peakSampled = max(peakSampled, memory(of: server.pid).rss)
        }
        run.stop()
        while run.finished.value < clients + 1 { usleep(10_000) }
        // Everything goes: toxics, proxies, connections.
        run.call("POST", "/reset")
        for index in 0..<proxies { run.call("DELETE", "/proxies/churn\(index)") }
        // What is still held 5 s after the last connection closed (a gracefully closing connection
        // may linger up to 2 s for its peer's FIN).
        sleep(5)
        let status = memory(of: server.pid)
        if let hold {
            FileHandle.standardError.write(Data("holding \(server.label) (pid \(server.pid)) for \(hold) s\n".utf8))
            sleep(hold)
        }
        server.process.terminate()
        server.process.waitUntilExit()
        return Result(
            label: server.label, idle: idle, peak: max(peakSampled, status.hwm), after: status.rss, movedBytes: run.moved.value,
            connections: run.connections.value, apiCalls: run.calls.value, apiFailures: run.failures.value)
    }

    /// Adds, updates and removes toxics of every type on random proxies, and now and then deletes
    /// a proxy and creates it again, until told to stop.
    private static func churn(_ run: Run) {
        var random = SplitMix(seed: 42)
        var toxics = [[String]](repeating: [], count: proxies)
        var serial = 0
        while !run.stopping {
            let index = Int(random.next() % UInt64(proxies))
            let roll = random.next() % 100
            let base = "/proxies/churn\(index)/toxics"
            if roll < 4 {
                // Delete and create again: its toxics go, its connections are closed, and it listens on a new port.
                run.ports.withLock { $0[index] = 0 }
                run.call("DELETE", "/proxies/churn\(index)")
                toxics[index] = []
                run.createProxy(index)
            } else if roll < 55 || toxics[index].isEmpty {
                if toxics[index].count >= 4 {
                    run.call("DELETE", base + "/" + toxics[index].removeFirst())
                }
                serial += 1
                let name = "t\(serial)"
                let type = toxicTypes[Int(random.next() % UInt64(toxicTypes.count))]
                let stream = random.next() % 2 == 0 ? "upstream" : "downstream"
                let toxicity = Double(30 + random.next() % 71) / 100
                let body =
                    #"{"name":"\#(name)","type":"\#(type)","stream":"\#(stream)","toxicity":\#(toxicity),"attributes":\#(attributes(type, &random))}"#
                if run.call("POST", base, body).status == 200 { toxics[index].append(name) }
            } else if roll < 80 {
                let name = toxics[index][Int(random.next() % UInt64(toxics[index].count))]
                let current = run.call("GET", base + "/" + name).body
                guard let type = toxicTypes.first(where: { current.contains("\"type\":\"\($0)\"") }) else { continue }
                run.call("PATCH", base + "/" + name, #"{"attributes":\#(attributes(type, &random))}"#)
            } else {
                let name = toxics[index].remove(at: Int(random.next() % UInt64(toxics[index].count)))
                run.call("DELETE", base + "/" + name)
            }
            usleep(2_000)
        }
    }

    /// One client: connects to a random proxy and, for 0.2–2 s (or until a toxic closes the
    /// connection), sends 1–64 KiB and reads it back from the echo server, again and again; then
    /// closes and starts over, until told to stop. At most 64 KiB of a client's are in flight, so
    /// what a server holds is its own doing, not the load's.
    private static func stream(client: Int, run: Run) {
        var random = SplitMix(seed: UInt64(client) &* 7919 &+ 1)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0x5A)
        while !run.stopping {
            let index = Int(random.next() % UInt64(proxies))
            let port = run.ports.withLock { $0[index] }
            guard port != 0, let fd = try? Sockets.connect(port) else {
                usleep(10_000)
                continue
            }
            run.connections.add(1)
            // A toxic that drops or delays data must not hold a client for long.
            var timeout = timeval(tv_sec: 0, tv_usec: 500_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let deadline = nanoseconds() + 200_000_000 + random.next() % 1_800_000_000
            if random.next() % 100 < run.streamingPercent {
                pour(fd, buffer, until: deadline, run: run)
                close(fd)
                continue
            }
            exchange: while !run.stopping && nanoseconds() < deadline {
                let size = 1 + Int(random.next() % UInt64(buffer.count))
                guard Sockets.writeAll(fd, UnsafeRawBufferPointer(rebasing: buffer[..<size])) else { break }
                var received = 0
                while received < size {
                    let count = recv(fd, buffer.baseAddress, size - received, 0)
                    if count <= 0 {
                        if count < 0 && errno == EINTR { continue }
                        break exchange
                    }
                    received += count
                    run.moved.add(count)
                }
            }
            close(fd)
        }
    }

    /// Streams both ways as fast as the proxy goes (non-blocking), until the deadline or a toxic
    /// closes the connection: what toxics hold then grows with the proxy's speed.
    private static func pour(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, until deadline: UInt64, run: Run) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN | POLLOUT), revents: 0)
        while !run.stopping && nanoseconds() < deadline {
            descriptor.revents = 0
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            if descriptor.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let count = recv(fd, buffer.baseAddress, buffer.count, 0)
                if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { return }
                if count > 0 { run.moved.add(count) }
            }
            if descriptor.revents & Int16(POLLOUT) != 0 {
                let count = send(fd, buffer.baseAddress, 16 << 10, Int32(MSG_NOSIGNAL))
                if count < 0 && errno != EAGAIN && errno != EINTR { return }
            }
        }
    }

    static let toxicTypes = ["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"]

    /// Attributes for a toxic of `type`, within what Toxiproxy survives (no slicer of size 0, no
    /// bandwidth of 0, which hang or crash it).
    private static func attributes(_ type: String, _ random: inout SplitMix) -> String {
        func pick(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(random.next() % UInt64(range.count)) }
        switch type {
        case "latency": return #"{"latency":\#(pick(0...200)),"jitter":\#(pick(0...50))}"#
        case "bandwidth": return #"{"rate":\#(pick(10...100_000))}"#
        case "slow_close": return #"{"delay":\#(pick(0...500))}"#
        case "timeout": return #"{"timeout":\#(pick(0...500))}"#
        case "reset_peer": return #"{"timeout":\#(pick(0...200))}"#
        case "slicer":
            let average = pick(1...1024)
            return #"{"average_size":\#(average),"size_variation":\#(pick(0...(average - 1))),"delay":\#(pick(0...100))}"#
        default: return #"{"bytes":\#(pick(1024...1_048_576))}"#
        }
    }
}

/// A small seeded generator, so both servers see the same sequence of changes.
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A process's resident memory now and at its highest, from /proc/PID/status (VmRSS, VmHWM).
func memory(of pid: Int32) -> (rss: Int, hwm: Int) {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Int {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
        return (line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
    }
    return (field("VmRSS"), field("VmHWM"))
}
