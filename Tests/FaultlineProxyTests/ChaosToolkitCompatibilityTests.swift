import FaultlineTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Compatibility with a Toxiproxy client no one here wrote: chaostoolkit-toxiproxy (PyPI), in a
/// venv that `.ci/run` creates, drives `faultline proxy` started as a real child process.
@Suite("chaostoolkit-toxiproxy drives faultline proxy")
struct ChaosToolkitCompatibilityTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources")

    /// The venv's python, or nil with the reason.
    static func python() -> String {
        if let override = ProcessInfo.processInfo.environment["FAULTLINE_CHAOSTOXI_PYTHON"] { return override }
        return packageRoot.appendingPathComponent(".build/chaostoxi-venv/bin/python").path
    }

    /// The `faultline` executable built beside this test bundle.
    static func faultline() -> String { (try? BuiltProduct.path("faultline")) ?? "faultline" }

    @Test("create_proxy, every create_*_toxic, delete_toxic, disable/enable and reset work unchanged", .timeLimit(.minutes(3)))
    func chaostoxi() async throws {
        let python = Self.python()
        try #require(
            FileManager.default.isExecutableFile(atPath: python),
            "the chaostoolkit-toxiproxy venv is missing at \(python): run Tests/FaultlineProxyTests/Resources/setup-chaostoxi-venv.sh (.ci/run does)")
        let faultline = Self.faultline()
        try #require(FileManager.default.isExecutableFile(atPath: faultline), "no faultline executable at \(faultline): run swift build first")

        let server = Process()
        server.executableURL = URL(fileURLWithPath: faultline)
        server.arguments = ["proxy", "--port", "0", "--seed", "7"]
        let output = Pipe()
        server.standardOutput = output
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            if server.isRunning { kill(server.processIdentifier, SIGKILL) }
        }
        // Stop waiting for the banner if the server never prints it.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(20))
            if server.isRunning { server.terminate() }
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
        let port = try #require(banner.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) }, "no API address in \"\(banner)\"")

        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: python)
        driver.arguments = [Self.resources.appendingPathComponent("chaostoxi_drive.py").path, String(port)]
        let report = Pipe()
        driver.standardOutput = report
        driver.standardError = FileHandle.nullDevice
        try driver.run()
        let driverWatchdog = Task {
            try await Task.sleep(for: .seconds(120))
            if driver.isRunning { driver.terminate() }
        }
        let lines = try await blocking { () -> String in
            let data = report.fileHandleForReading.readDataToEndOfFile()
            driver.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        driverWatchdog.cancel()
        let failures = lines.split(separator: "\n").filter { $0.hasPrefix("FAIL") }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        #expect(driver.terminationStatus == 0, "driver output:\n\(lines)")
        #expect(lines.contains("ok   delete_proxy"))

        // SIGTERM closes everything and exits cleanly.
        kill(server.processIdentifier, SIGTERM)
        let status = try await blocking { () -> Int32 in
            server.waitUntilExit()
            return server.terminationStatus
        }
        #expect(status == 0)
    }
}
