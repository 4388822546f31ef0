import FaultlineKit
import FaultlineProxy
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// `test.get`: GETs a URL `count` times over one keep-alive connection with Python's http.client
/// and returns the statuses.
struct GetProbe: Probe {
    static let type = "test.get"
    static let summary = "Statuses of GET requests"

    struct Arguments: Codable, Sendable {
        var port: Int
        var path: String
        var count: Int
    }

    func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let lines = try await HTTPToxicTests.python(port: arguments.port, Array(repeating: ("GET", arguments.path), count: arguments.count))
        return .array(lines.map { .int(Int($0.split(separator: " ")[0]) ?? 0) })
    }
}

enum GetProbePlugin: FaultlinePlugin {
    static let name = "test-get"
    static func register(into registry: inout PluginRegistry) { registry.register(probe: GetProbe()) }
}

@Suite("HTTP toxics in experiments")
struct HTTPExperimentTests {
    @Test("an http_abort activity answers matching requests, and its fault window counts them")
    func abortInExperiment() async throws {
        try await closing(try await TestNginx.start()) { nginx in
            let result = try await runSuite(
                """
                name: http faults
                proxies:
                  - {name: web, upstream: "127.0.0.1:\(nginx.port)"}
                experiments:
                  - title: half the requests fail
                    method:
                      - type: action
                        name: flaky
                        provider:
                          type: toxic
                          proxy: web
                          toxic: http_abort
                          stream: upstream
                          toxicity: 0.5
                          attributes: {status: 503, path: /}
                      - {type: probe, name: gets, provider: {type: test.get, port: "${proxies.web.port}", path: /, count: 30}}
                      - {type: probe, name: others, provider: {type: test.get, port: "${proxies.web.port}", path: /status/201, count: 3}}
                """, seed: 7, plugins: [GetProbePlugin.self])
            #expect(result.setupError == nil)
            let journal = try #require(result.journals.first)
            #expect(journal.outcome == .completed)
            let statuses = try #require(journal.run.first { $0.name == "gets" }?.output?.arrayValue).compactMap(\.intValue)
            let aborted = statuses.filter { $0 == 503 }.count
            #expect(statuses.count == 30 && aborted > 3 && aborted < 27 && statuses.allSatisfy { $0 == 503 || $0 == 200 })
            #expect(journal.run.first { $0.name == "others" }?.output == [201, 201, 201])
            let label = try #require(journal.faults.first?.label)
            #expect(label.hasPrefix("http_abort "))
            #expect(label.hasSuffix("— affected \(aborted) of 30 matching requests"), "\(label)")
        }
    }

    @Test("bad HTTP toxic attributes and clients are load errors at their line and column")
    func loadErrors() throws {
        let errors = try validationErrors(
            """
            title: typos
            method:
              - type: action
                name: a
                provider: {type: toxic, proxy: db, toxic: http_abort, attributes: {status: 700}}
              - type: action
                name: b
                provider: {type: toxic, proxy: db, toxic: http_latency, attributes: {latency: 10, pth: /x}}
              - type: action
                name: c
                provider: {type: toxic, proxy: db, toxic: latency, clients: [10.0.0.0/33]}
              - type: action
                name: d
                provider: {type: toxic, proxy: db, toxic: http_abort, attributes: {path_prefix: api}}
            """)
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:5:") && $0.contains("status must be 100…599 (HTTP status)") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:8:") && $0.contains("unknown key \"pth\" (did you mean \"path\"?)") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:11:") && $0.contains("the prefix length must be 0…32") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:14:") && $0.contains("path_prefix must start with /") }, "\(errors)")
    }

    @Test("a client condition limits any toxic to the clients it names")
    func clientCondition() async throws {
        try await withProxyFixture(path: .nio) { fixture in
            try await fixture.server.addToxic(
                ToxicDefinition(name: "far", type: "limit_data", attributes: ["bytes": 2], clients: ["10.0.0.0/8", "fd00::/8"]), to: "test")
            try await fixture.server.addToxic(
                ToxicDefinition(name: "near", type: "http_abort", stream: .upstream, attributes: ["status": 503], clients: ["::ffff:127.0.0.1/128"]),
                to: "test")
            // The loopback client is not in 10/8: limit_data does not apply, the echo is whole.
            let socket = try await fixture.connect()
            defer { socket.close() }
            let answer = try await blocking { () throws -> String in
                try socket.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                return String(decoding: socket.receive(count: 38).0, as: UTF8.self)
            }
            // http_abort does apply (an IPv4-mapped block matches 127.0.0.1).
            #expect(answer.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(answer)")
        }
    }

    @Test("client networks parse IPv4, IPv6 and CIDR blocks")
    func clientNetworks() throws {
        #expect(try ClientNetwork(parsing: "10.0.0.0/8").contains([10, 200, 3, 4]))
        #expect(try !ClientNetwork(parsing: "10.0.0.0/8").contains([11, 0, 0, 1]))
        #expect(try ClientNetwork(parsing: "127.0.0.1").contains([127, 0, 0, 1]))
        #expect(try ClientNetwork(parsing: "127.0.0.1").contains([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 0, 0, 1]))
        #expect(try ClientNetwork(parsing: "::1").contains([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))
        #expect(try ClientNetwork(parsing: "fd00::/8").contains([0xFD, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]))
        #expect(try !ClientNetwork(parsing: "fd00::/8").contains([0xFE, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]))
        #expect(throws: ArgumentError.self) { try ClientNetwork(parsing: "300.1.1.1") }
        #expect(throws: ArgumentError.self) { try ClientNetwork(parsing: "1::2::3") }
        #expect(throws: ArgumentError.self) { try ClientNetwork(parsing: "::1/129") }
    }
}

@Suite("HTTP toxics through the Toxiproxy-compatible admin API")
struct HTTPAdminTests {
    @Test("POST /proxies/{p}/toxics takes HTTP types and clients; the toxic echoes its attributes")
    func addOverAPI() async throws {
        try await withAdminFixture { fixture in
            let created = try await http(
                "POST", fixture.port, "/proxies/test/toxics",
                body:
                    #"{"type":"http_abort","stream":"upstream","toxicity":1,"attributes":{"status":502,"path_prefix":"/api/"},"clients":["127.0.0.0/8"]}"#
            )
            #expect(created.status == 200, "\(created.body)")
            #expect(created.json?["name"] == "http_abort_upstream")
            #expect(created.json?["attributes"]?["status"] == 502)
            #expect(created.json?["attributes"]?["path_prefix"] == "/api/")
            #expect(created.json?["clients"] == ["127.0.0.0/8"])
            let refused = try await http("POST", fixture.port, "/proxies/test/toxics", body: #"{"type":"http_abort","attributes":{"status":99}}"#)
            #expect(refused.status == 400)
            #expect(refused.body.contains("status must be 100…599 (HTTP status), found 99"))
            let badClients = try await http("POST", fixture.port, "/proxies/test/toxics", body: #"{"type":"latency","name":"x","clients":["nope"]}"#)
            #expect(badClients.status == 400)
            #expect(badClients.body.contains("is not an IP address or CIDR block"))
            // Through the proxy (an echo upstream): /api/ requests are answered 502 by the proxy.
            let reply = try await exchange(fixture.proxies.proxyPort, "GET /api/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(reply.status == 502)
        }
    }
}
