import FaultlineKit
import FaultlineNetwork
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `faultline proxy`, built beside this test bundle, as a real child process; ended by its PID.
final class FaultlineProxyProcess: TestResource {
    let child: TestProcess
    /// The admin API's port, from the banner.
    let port: Int
    var pid: pid_t { child.pid }

    /// Starts `faultline proxy --port 0 …` and waits for its banner. (`TestProcess` keeps the test
    /// runner's `TOXIPROXY_*` variables away from it: a token there would lock the clients out.)
    init(_ arguments: [String] = []) async throws {
        child = try TestProcess(try BuiltProduct.path("faultline"), ["proxy", "--port", "0", "--seed", "7"] + arguments)
        do {
            let banner = try await child.line(startingWith: "faultline proxy: API on", timeout: .seconds(20))
            port = try #require(
                banner.split(separator: ":").dropFirst(3).first.flatMap { Int($0.prefix { $0.isNumber }) }, "no API port in \"\(banner)\"")
        } catch {
            await child.stop(grace: 0)
            throw error
        }
    }

    /// SIGTERM (SIGKILL after 20 s), then the exit status.
    @discardableResult
    func stop() async -> Int32 { await child.stop(grace: 20) }

    func close() async { await stop() }
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
        let driver = try TestProcess(python, [resources.appendingPathComponent(script).path, String(server.port)])
        let driverStatus = await driver.wait(timeout: .seconds(120))
        let lines = driver.stdout + driver.stderr
        let status = await server.stop()
        let failures = lines.split(separator: "\n").filter { $0.hasPrefix("FAIL") }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        #expect(driverStatus == 0, "driver output:\n\(lines)")
        #expect(lines.contains("ok   \(lastCheck)"), "driver output:\n\(lines)")
        // SIGTERM closes everything and exits cleanly.
        #expect(status == 0)
    }

    @Test(
        "chaostoolkit-toxiproxy: create_proxy, every create_*_toxic, delete_toxic, disable/enable and reset work unchanged", .timeLimit(.minutes(3)))
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
               "toxics": [{"type": "latency", "attributes": {"latency": 200}}, {"name": "cut", "type": "limit_data", "stream": "upstream", "attributes": {"bytes": 10}},
                          {"name": "defaults", "type": "latency", "attributes": null, "clients": ["10.9.8.0/24"]}]},
              {"name": "cache", "listen": "127.0.0.1:0", "upstream": "localhost:6379", "enabled": false}
            ]
            """#.utf8
        ).write(to: good)
        let server = try await FaultlineProxyProcess(["--config", good.path])
        let proxies = try await http("GET", server.port, "/proxies").json
        #expect(await server.stop() == 0)
        #expect(proxies?["db"]?["toxics"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["cut", "latency_downstream", "defaults"])
        #expect(proxies?["db"]?["toxics"]?[1]?["attributes"] == ["latency": 200, "jitter": 0])
        // `"attributes": null` means the type's defaults, as on POST /proxies/{name}/toxics.
        #expect(proxies?["db"]?["toxics"]?[2]?["attributes"] == ["latency": 0, "jitter": 0])
        // The client condition (our extension) is kept, as populate keeps it: no toxic for everyone.
        #expect(proxies?["db"]?["toxics"]?[2]?["clients"] == ["10.9.8.0/24"])
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
        let run = try TestProcess(try BuiltProduct.path("faultline"), ["proxy", "--port", "0", "--config", bad.path])
        #expect(await run.wait(timeout: .seconds(30)) == 2)
        let message = run.stderr
        #expect(message.contains("\(bad.path):4:15: invalid toxic type at proxy 1, toxic 2"), "\(message)")
    }

    /// Found by the end-to-end bad-input corpus: these errors named 1:1, whatever entry was wrong.
    @Test("--config: a bad upstream address is an error at that entry's upstream", .timeLimit(.minutes(2)))
    func configBadAddress() async throws {
        let scratch = try ScratchDirectory()
        let bad = try scratch.write(
            "proxies.json",
            #"""
            [
              {"name": "db", "listen": "127.0.0.1:0", "upstream": "localhost:5432"},
              {"name": "cache", "listen": "127.0.0.1:0",
               "upstream": "http://127.0.0.1:6379"}
            ]
            """#)
        let run = try TestProcess(try BuiltProduct.path("faultline"), ["proxy", "--port", "0", "--config", bad], in: scratch)
        #expect(await run.wait(timeout: .seconds(30)) == 2)
        #expect(run.stderr.contains("\(bad):4:16: upstream must be host:port, found \"http://127.0.0.1:6379\""), "\(run.stderr)")
    }

    /// testcontainers' Toxiproxy module starts `toxiproxy-server -host=0.0.0.0 -config=…`: Go's
    /// flags, one dash, `=` or a space before the value.
    @Test("toxiproxy-server's single-dash flags start faultline proxy as they start Toxiproxy", .timeLimit(.minutes(2)))
    func toxiproxyServerFlags() async throws {
        let scratch = try ScratchDirectory()
        let config = try scratch.write("tc.json", #"[{"name": "redis", "listen": "127.0.0.1:0", "upstream": "redis:6379"}]"#)
        let port = try FreePort.take()
        let proxy = try TestProcess(
            try BuiltProduct.path("faultline"),
            ["proxy", "-host=127.0.0.1", "-port", "\(port)", "-config=\(config)", "-seed", "7", "-proxy-metrics", "-runtime-metrics"], in: scratch)
        try await closing(proxy) { proxy in
            _ = try await proxy.line(startingWith: "faultline proxy: API on http://127.0.0.1:\(port)", timeout: .seconds(20))
            let proxies = try await http("GET", port, "/proxies")
            #expect(proxies.json?["redis"]?["upstream"] == "redis:6379", "\(proxies.body)")
        }
    }

    /// A SIGTERM before the handlers were registered used to be ignored (a dispatch source is
    /// registered asynchronously, after the signal was set to be ignored): the proxy then ran on.
    @Test("SIGTERM at any moment of start-up ends faultline proxy; after the banner it closes every proxy and exits 0", .timeLimit(.minutes(2)))
    func terminationDuringStartUp() async throws {
        for _ in 0..<5 {
            let early = try TestProcess(try BuiltProduct.path("faultline"), ["proxy", "--port", "0"])
            early.signal(SIGTERM)
            // Before the handlers: killed by the signal (143); after: closed cleanly (0). Never running on.
            let status = await early.wait(timeout: .seconds(30))
            #expect(status == 0 || status == 128 + SIGTERM, "\(status): \(early.lines)")
        }
        let server = try await FaultlineProxyProcess()
        server.child.signal(SIGTERM)
        #expect(await server.child.wait(timeout: .seconds(30)) == 0)
        #expect(server.child.stderr.contains("SIGTERM: closing every proxy"), "\(server.child.stderr)")
    }
}
