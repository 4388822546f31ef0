import FaultlineKit
import FaultlineTesting
import Foundation
import Synchronization
import Testing

/// A configuration type whose every evaluation gives a new number, to prove values are computed once.
final class CountingProvider: ConfigurationProvider {
    let type = "counter"
    let calls = Mutex(0)
    func value(for node: SourceNode, key: String) throws -> Value {
        if node["fail"] != nil { throw Diagnostic("counter refused", at: node.location) }
        return .int(
            calls.withLock {
                $0 += 1; return $0
            } * 100)
    }
}

struct CounterPlugin: FaultlinePlugin {
    static let name = "counter"
    static let provider = CountingProvider()
    static func register(into registry: inout PluginRegistry) { registry.register(configurationProvider: provider) }
}

@Suite("Suites and plugin-defined configuration")
struct SuiteTests {
    @Test("a plugin-defined configuration value is computed once per run, so validation and the run agree")
    func providedValues() async throws {
        let kit = TestKit()
        let result = try await kit.run(
            yaml: """
                name: s
                configuration:
                  port: {type: counter}
                experiments:
                  - title: first
                    method:
                      - {type: action, name: a, provider: {type: test.action, label: "first ${port}"}}
                  - title: second
                    method:
                      - {type: action, name: a, provider: {type: test.action, label: "second ${port}"}}
                """, plugins: [CounterPlugin.self])
        #expect(result.exitCode == 0)
        #expect(kit.log.count == 2)
        let first = try #require(kit.log.first?.split(separator: " ").last)
        #expect(kit.log == ["first \(first)", "second \(first)"])
    }

    @Test("a plugin-defined configuration value that fails is a located error")
    func providedFailure() async throws {
        let kit = TestKit()
        await #expect(throws: ValidationError.self) {
            _ = try await kit.run(yaml: "title: t\nconfiguration:\n  port: {type: counter, fail: true}\nmethod: []\n", plugins: [CounterPlugin.self])
        }
    }

    @Test("suite proxies are created through the toxic backend, exported, and deleted at the end")
    func proxies() async throws {
        let kit = TestKit()
        let result = try await kit.run(
            yaml: """
                name: s
                proxies:
                  - {name: db, upstream: "127.0.0.1:5432"}
                  - {name: web, listen: "0.0.0.0:0", upstream: "127.0.0.1:8080"}
                experiments:
                  - title: uses the proxy
                    method:
                      - {type: action, name: a, provider: {type: test.action, label: "port ${proxies.db.port} on ${proxies.db.host}"}}
                      # One on every address is reached here at 127.0.0.1.
                      - {type: action, name: b, provider: {type: test.action, label: "port ${proxies.web.port} on ${proxies.web.host}"}}
                """)
        #expect(result.exitCode == 0)
        #expect(kit.log == ["port 20001 on 127.0.0.1", "port 20002 on 127.0.0.1"])
        #expect(try await kit.backend.proxies().isEmpty)
    }

    @Test("a malformed proxies section is a located error")
    func badProxies() async throws {
        let kit = TestKit()
        let error = try await #require(throws: ValidationError.self) {
            _ = try await kit.run(
                yaml: """
                    name: s
                    proxies:
                      - {name: db, upstream: "http://db:5432/x"}
                    experiments: [{title: t, method: []}]
                    """)
        }
        #expect(error.description.contains(":3:26: upstream must be host:port, found \"http://db:5432/x\""), "\(error)")
    }
}
