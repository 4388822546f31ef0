@testable import FaultlineDemo
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import NIOCore
import Testing

/// The `faultline-demo` binary as the suite runs it: child processes, ready lines, SIGTERM.
@Suite("faultline-demo as child processes")
struct ExecutableTests {
    /// Starts `faultline-demo ARGUMENTS` and returns it with the address from its ready line.
    func start(_ name: String, _ arguments: [String] = []) async throws -> (TestProcess, HostPort) {
        let server = try TestProcess(demoBinary, [name, "--port", "0"] + arguments)
        let line = try await server.line(startingWith: "faultline-demo \(name) listening on ")
        let address = try HostPort(parsing: String(line.dropFirst("faultline-demo \(name) listening on ".count)))
        return (server, address)
    }

    @Test("the three services start on free ports, take an order together, and exit 0 on SIGTERM")
    func orderSystem() async throws {
        let (store, storeAddress) = try await start("store")
        let (notifier, notifierAddress) = try await start("notifier")
        let notifierURL = "http://\(notifierAddress)"
        let (api, apiAddress) = try await start(
            "order-api",
            [
                "--store", "\(storeAddress)", "--notifier", notifierURL, "--retries", "1",
                // The default 1 s is for experiments; a loaded test machine can be slower than that.
                "--notify-timeout-ms", "30000",
            ])
        let endpoint = HTTPEndpoint(host: apiAddress.host, port: apiAddress.port)

        let created = try await HTTPClient.request(
            .POST, endpoint, path: "/orders", json: ByteBuffer(string: #"{"item": "tea", "quantity": 3}"#), timeout: .seconds(30))
        #expect(created.status == .created)
        #expect(created.text == #"{"id":1,"item":"tea","notified":true,"quantity":3}"#)
        let count = try await HTTPClient.request(.GET, HTTPEndpoint(parsing: notifierURL), path: "/notifications", timeout: .seconds(30))
        #expect(count["count"] == "1")

        for server in [api, notifier, store] {
            #expect(await server.stop() == 0, "\(server.lines)")
        }
    }

    @Test("SIGINT stops a server as cleanly as SIGTERM")
    func sigint() async throws {
        let (store, _) = try await start("store")
        store.signal(SIGINT)
        #expect(await store.wait() == 0)
    }

    /// As when `faultline` was killed outright: a service's output has no reader any more, and
    /// the guardian sends SIGTERM. Before, the "stopping on SIGTERM" line trapped on EPIPE, and the
    /// crashed server's ports stayed held by Swift's backtracer for 30 s. The shell reads the ready
    /// line from a FIFO, closes it (no reader left), and only then sends SIGTERM and waits.
    @Test("a server whose output's reader went away still stops cleanly on SIGTERM")
    func stopsWithoutItsReader() async throws {
        let scratch = try ScratchDirectory()
        let script = """
            mkfifo out
            "$0" store --port 0 >out 2>&1 &
            server=$!
            exec 3<out
            IFS= read -r line <&3
            echo "$line"
            exec 3<&-
            kill -TERM $server
            wait $server
            echo "exit $?"
            """
        let shell = try TestProcess("/bin/sh", ["-c", script, demoBinary], in: scratch)
        #expect(await shell.wait() == 0, "\(shell.stderr)")
        #expect(shell.lines.first?.hasPrefix("faultline-demo store listening on ") == true, "\(shell.lines)")
        #expect(shell.lines.last == "exit 0", "\(shell.lines)")
    }

    @Test(
        "bad options are refused with a usage error naming the fix",
        arguments: [
            (["order-api", "--store", "nope", "--notifier", "http://127.0.0.1:1"], "is not HOST:PORT"),
            (["order-api", "--store", "127.0.0.1:6379", "--notifier", "127.0.0.1:1"], "is not an http:// URL"),
            (["order-api", "--store", "127.0.0.1:6379", "--notifier", "http://127.0.0.1:1", "--retries=-1"], "--retries must be 0 or more"),
            (["order-api", "--store", "127.0.0.1:6379", "--notifier", "http://127.0.0.1:1", "--notify", "maybe"], "maybe"),
            (["store", "--port", "70000"], "--port must be from 0 to 65535"),
        ])
    func badOptions(_ arguments: [String], _ message: String) async throws {
        let result = try await run(demoBinary, arguments)
        #expect(result.status == 64)
        #expect(result.output.contains(message), "\(result.output)")
    }
}
