import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `faultline proxy`, built beside this test bundle, as a real child process; ended by its PID.
final class FaultlineProxyProcess: @unchecked Sendable {
    // Set in init, then only read; Process is thread-safe for these calls.
    let process = Process()
    /// The admin API's port, from the banner.
    let port: Int

    /// Starts `faultline proxy --port 0 …` and waits for its banner.
    init(_ arguments: [String] = []) async throws {
        let faultline = (try? BuiltProduct.path("faultline")) ?? "faultline"
        try #require(FileManager.default.isExecutableFile(atPath: faultline), "no faultline executable at \(faultline): run swift build first")
        process.executableURL = URL(fileURLWithPath: faultline)
        process.arguments = ["proxy", "--port", "0", "--seed", "7"] + arguments
        // A token in the test runner's environment would lock the clients out.
        process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "TOXIPROXY_AUTH_TOKEN" }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let process = process
        // Stop waiting for the banner if the server never prints it.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(20))
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        let banner = try await blocking { () -> String in
            var line = Data()
            while true {
                let byte = output.fileHandleForReading.readData(ofLength: 1)
                if byte.isEmpty || byte == Data("\n".utf8) { break }
                line.append(byte)
            }
            return String(decoding: line, as: UTF8.self)
        }
        watchdog.cancel()
        guard let port = banner.split(separator: ":").last.flatMap({ Int($0.prefix { $0.isNumber }) }) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw SocketFailure("no API address in \"\(banner)\"", code: 0)
        }
        self.port = port
    }

    /// SIGTERM (SIGKILL after 20 s), then the exit status.
    func stop() async throws -> Int32 {
        let process = process
        kill(process.processIdentifier, SIGTERM)
        let watchdog = Task {
            try await Task.sleep(for: .seconds(20))
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        defer { watchdog.cancel() }
        return try await blocking {
            process.waitUntilExit()
            return process.terminationStatus
        }
    }
}

/// Compatibility with Toxiproxy clients no one here wrote, from PyPI (chaostoolkit-toxiproxy and
/// toxiproxy-python, in a venv that `.ci/run` creates), driving `faultline proxy` started as a
/// real child process; and the proxy's `--config` file.
@Suite("Toxiproxy clients from PyPI drive faultline proxy")
struct ChaosToolkitCompatibilityTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources")

    /// The venv's python.
    static func python() -> String {
        if let override = ProcessInfo.processInfo.environment["FAULTLINE_CHAOSTOXI_PYTHON"] { return override }
        return packageRoot.appendingPathComponent(".build/chaostoxi-venv/bin/python").path
    }

    /// Runs a driver script from Resources against a fresh `faultline proxy` and checks that every
    /// one of its checks passed and the server then exits cleanly on SIGTERM.
    static func drive(_ script: String, lastCheck: String) async throws {
        let python = Self.python()
        try #require(
            FileManager.default.isExecutableFile(atPath: python),
            "the Toxiproxy clients' venv is missing at \(python): run Tests/FaultlineProxyTests/Resources/setup-chaostoxi-venv.sh (.ci/run does)")
        let server = try await FaultlineProxyProcess()
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: python)
        driver.arguments = [resources.appendingPathComponent(script).path, String(server.port)]
        let report = Pipe()
        driver.standardOutput = report
        driver.standardError = report
        try driver.run()
        let driverWatchdog = Task {
            try await Task.sleep(for: .seconds(120))
            if driver.isRunning { kill(driver.processIdentifier, SIGKILL) }
        }
        let lines = try await blocking { () -> String in
            let data = report.fileHandleForReading.readDataToEndOfFile()
            driver.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        driverWatchdog.cancel()
        let status = try await server.stop()
        let failures = lines.split(separator: "\n").filter { $0.hasPrefix("FAIL") }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        #expect(driver.terminationStatus == 0, "driver output:\n\(lines)")
        #expect(lines.contains("ok   \(lastCheck)"), "driver output:\n\(lines)")
        // SIGTERM closes everything and exits cleanly.
        #expect(status == 0)
    }

    @Test("chaostoolkit-toxiproxy: create_proxy, every create_*_toxic, delete_toxic, disable/enable and reset work unchanged", .timeLimit(.minutes(3)))
    func chaostoxi() async throws {
        try await Self.drive("chaostoxi_drive.py", lastCheck: "delete_proxy")
    }

    @Test("toxiproxy-python: its test suite's calls, with an upstream that serves one connection at a time", .timeLimit(.minutes(3)))
    func toxiproxyPython() async throws {
        try await Self.drive("toxiproxy_python_drive.py", lastCheck: "destroy_all")
    }

    @Test("--config creates proxies with their toxics before the API answers; a bad toxic is an error at its line", .timeLimit(.minutes(2)))
    func configWithToxics() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let good = scratch.appendingPathComponent("proxies.json")
        try Data(
            #"""
            [
              {"name": "db", "listen": "127.0.0.1:0", "upstream": "localhost:5432",
               "toxics": [{"type": "latency", "attributes": {"latency": 200}}, {"name": "cut", "type": "limit_data", "stream": "upstream", "attributes": {"bytes": 10}}]},
              {"name": "cache", "listen": "127.0.0.1:0", "upstream": "localhost:6379", "enabled": false}
            ]
            """#.utf8
        ).write(to: good)
        let server = try await FaultlineProxyProcess(["--config", good.path])
        let proxies = try await http("GET", server.port, "/proxies").json
        #expect(try await server.stop() == 0)
        #expect(proxies?["db"]?["toxics"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["cut", "latency_downstream"])
        #expect(proxies?["db"]?["toxics"]?[1]?["attributes"] == ["latency": 200, "jitter": 0])
        #expect(proxies?["cache"]?["enabled"] == false)

        let bad = scratch.appendingPathComponent("bad.json")
        try Data(
            #"""
            [
              {"name": "db", "listen": "127.0.0.1:0", "upstream": "localhost:5432",
               "toxics": [{"type": "latency"},
                          {"type": "latncy"}]}
            ]
            """#.utf8
        ).write(to: bad)
        let faultline = (try? BuiltProduct.path("faultline")) ?? "faultline"
        let run = Process()
        run.executableURL = URL(fileURLWithPath: faultline)
        run.arguments = ["proxy", "--port", "0", "--config", bad.path]
        let errors = Pipe()
        run.standardOutput = FileHandle.nullDevice
        run.standardError = errors
        try run.run()
        let watchdog = Task {
            try await Task.sleep(for: .seconds(30))
            if run.isRunning { kill(run.processIdentifier, SIGKILL) }
        }
        let message = try await blocking { () -> String in
            let data = errors.fileHandleForReading.readDataToEndOfFile()
            run.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        watchdog.cancel()
        #expect(run.terminationStatus == 2)
        #expect(message.contains("\(bad.path):4:15: invalid toxic type at proxy 1, toxic 2"), "\(message)")
    }
}
