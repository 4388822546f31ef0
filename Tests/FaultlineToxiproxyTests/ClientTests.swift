import FaultlineKit
import FaultlineNetwork
import FaultlineTestSupport
import FaultlineToxiproxy
import Foundation
import Testing

/// The REST client against `faultline proxy` run as a real child process, standing in for a
/// Toxiproxy server, and against small fakes for what only other Toxiproxy versions do.
@Suite("Toxiproxy client")
struct ClientTests {
    @Test("every API call: version, proxies, populate, toxics, updates, reset, deletes", .timeLimit(.minutes(2)))
    func everyCall() async throws {
        try await closing(TestHTTPServer.start()) { upstream in
            try await withStandIn { server, client in
                #expect(try await client.version() == "2.12.0")
                #expect(try await client.proxies().isEmpty)

                // Create: port 0 comes back bound.
                let created = try await client.createProxy(
                    ProxyDefinition(name: "web", listen: "127.0.0.1:\(try FreePort.take())", upstream: "127.0.0.1:\(upstream.port)"))
                let port = try #require(created.listenPort)
                #expect(port > 0)
                #expect(created.enabled && created.upstream == "127.0.0.1:\(upstream.port)" && created.toxics.isEmpty)
                #expect(try await client.proxy(named: "web") == created)

                // Populate: a new proxy is created, an unchanged one kept.
                let populated = try await client.populate([
                    ProxyDefinition(name: "web", listen: created.listen, upstream: created.upstream),
                    ProxyDefinition(name: "db", listen: "127.0.0.1:0", upstream: "127.0.0.1:1", enabled: false),
                ])
                #expect(populated.map(\.name) == ["web", "db"])
                #expect(try await client.proxies().map(\.name) == ["db", "web"])
                #expect(try await client.proxy(named: "db").enabled == false)

                // Toxics: create (defaults echoed), list, read, update (merged), remove.
                let latency = try await client.addToxic(ToxicDefinition(name: "slow", type: "latency", attributes: ["latency": 50]), to: "web")
                #expect(latency.attributes == ["latency": 50, "jitter": 0])
                #expect(latency.stream == .downstream && latency.toxicity == 1)
                let cut = try await client.addToxic(
                    ToxicDefinition(name: "cut", type: "limit_data", stream: .upstream, toxicity: 0.5, attributes: ["bytes": 10]), to: "web")
                #expect(cut.stream == .upstream && cut.toxicity == 0.5)
                #expect(try await client.toxics(of: "web").map(\.name) == ["cut", "slow"])
                #expect(try await client.toxic(named: "slow", on: "web") == latency)
                let updated = try await client.updateToxic(named: "slow", on: "web", attributes: ["jitter": 5], toxicity: 0.25)
                #expect(updated.attributes == ["latency": 50, "jitter": 5])
                #expect(updated.toxicity == 0.25)
                #expect(try await client.proxy(named: "web").toxics.count == 2)
                try await client.removeToxic(named: "cut", from: "web")
                #expect(try await client.toxics(of: "web").map(\.name) == ["slow"])

                // Proxy updates: down, up, new upstream.
                #expect(try await client.updateProxy(named: "web", enabled: false).enabled == false)
                #expect(try await client.updateProxy(named: "web", enabled: true).enabled == true)
                #expect(try await client.updateProxy(named: "web", upstream: "127.0.0.1:2").upstream == "127.0.0.1:2")

                // Reset: every toxic gone, every proxy enabled.
                try await client.reset()
                let after = try await client.proxies()
                #expect(after.allSatisfy { $0.enabled && $0.toxics.isEmpty })

                try await client.deleteProxy(named: "web")
                try await client.deleteProxy(named: "db")
                #expect(try await client.proxies().isEmpty)
            }
        }
    }

    @Test("a slicer that would crash a Toxiproxy server is refused before it is sent, on add and on update (judged merged)")
    func crashingSlicerRefused() async throws {
        try await withStandIn { server, client in
            _ = try await client.createProxy(ProxyDefinition(name: "db", listen: "127.0.0.1:0", upstream: "127.0.0.1:1"))
            // Toxiproxy's Node client's own tests send 1000 and 1000: taken.
            let even = try await client.addToxic(
                ToxicDefinition(name: "even", type: "slicer", attributes: ["average_size": 1000, "size_variation": 1000, "delay": 10]), to: "db")
            #expect(even.attributes["size_variation"] == 1000)
            await #expect {
                _ = try await client.addToxic(
                    ToxicDefinition(name: "wide", type: "slicer", attributes: ["average_size": 1, "size_variation": 100]), to: "db")
            } throws: { error in
                let error = try #require(error as? ToxiproxyError)
                return error.code == .badRequest && error.status == nil
                    && error.description.contains("slicer size_variation 100 is above average_size 1 + 1, which crashes a Toxiproxy server")
                    && error.description.contains("use a size_variation of at most 2")
            }
            // Toxiproxy's defaults (no attributes: average_size 0, no variation) overflow its stack
            // at the first byte.
            await #expect {
                _ = try await client.addToxic(ToxicDefinition(name: "plain", type: "slicer", attributes: [:]), to: "db")
            } throws: { error in
                let error = try #require(error as? ToxiproxyError)
                return error.code == .badRequest && error.status == nil
                    && error.description.contains("slicer average_size 0 with size_variation 0 crashes a Toxiproxy server")
                    && error.description.contains("use an average_size of at least 1")
            }
            // A variation alone is safe there: every piece may be a byte.
            _ = try await client.addToxic(
                ToxicDefinition(name: "bytes", type: "slicer", attributes: ["size_variation": 1]), to: "db")
            try await client.removeToxic(named: "bytes", from: "db")
            // Only average_size changes, yet together with the held variation it would crash.
            await #expect(throws: ToxiproxyError.self) {
                _ = try await client.updateToxic(named: "even", on: "db", attributes: ["average_size": 10])
            }
            #expect(try await client.toxics(of: "db").map(\.name) == ["even"])
            #expect(try await client.toxic(named: "even", on: "db").attributes["average_size"] == 1000)
            #expect(try await client.updateToxic(named: "even", on: "db", attributes: ["average_size": 999]).attributes["average_size"] == 999)
        }
    }

    @Test("names with spaces and slashes are escaped in paths")
    func escaping() async throws {
        try await withStandIn { _, client in
            let name = "a b/c?d"
            _ = try await client.createProxy(ProxyDefinition(name: name, listen: "127.0.0.1:0", upstream: "127.0.0.1:1"))
            #expect(try await client.proxy(named: name).name == name)
            _ = try await client.addToxic(ToxicDefinition(name: "x/y", type: "latency", attributes: ["latency": 1]), to: name)
            try await client.removeToxic(named: "x/y", from: name)
            try await client.deleteProxy(named: name)
        }
    }

    @Test("errors name the proxy or toxic, the server's words and what to do")
    func errors() async throws {
        try await withStandIn { server, client in
            _ = try await client.createProxy(ProxyDefinition(name: "web", listen: "127.0.0.1:0", upstream: "127.0.0.1:1"))

            let missing = await #expect(throws: ToxiproxyError.self) { try await client.proxy(named: "nope") }
            #expect(missing?.code == .notFound && missing?.status == 404)
            #expect(
                missing?.description.hasPrefix(
                    "Toxiproxy at \(server.url): read proxy nope: proxy not found (HTTP 404); the server has no proxy named \"nope\"") == true,
                "\(missing!)")

            let toxicOnMissing = await #expect(throws: ToxiproxyError.self) {
                try await client.addToxic(ToxicDefinition(name: "t", type: "latency"), to: "nope")
            }
            #expect(toxicOnMissing?.code == .notFound)
            #expect(toxicOnMissing?.message.contains("create it first") == true)

            let duplicate = await #expect(throws: ToxiproxyError.self) {
                try await client.createProxy(ProxyDefinition(name: "web", listen: "127.0.0.1:0", upstream: "127.0.0.1:1"))
            }
            #expect(duplicate?.code == .conflict && duplicate?.status == 409)
            #expect(duplicate?.message.contains("proxy already exists") == true)
            #expect(duplicate?.message.contains("a proxy named \"web\" is already on the server") == true)

            _ = try await client.addToxic(ToxicDefinition(name: "slow", type: "latency", attributes: ["latency": 1]), to: "web")
            let duplicateToxic = await #expect(throws: ToxiproxyError.self) {
                try await client.addToxic(ToxicDefinition(name: "slow", type: "bandwidth", stream: .upstream, attributes: ["rate": 1]), to: "web")
            }
            #expect(duplicateToxic?.code == .conflict)
            #expect(duplicateToxic?.message.contains("proxy web already has a toxic named \"slow\"") == true)

            let badType = await #expect(throws: ToxiproxyError.self) {
                try await client.addToxic(ToxicDefinition(name: "x", type: "latncy"), to: "web")
            }
            #expect(badType?.code == .badRequest && badType?.status == 400)
            #expect(badType?.message.contains("the server has no toxic type \"latncy\"") == true, "\(badType!)")

            let badAttribute = await #expect(throws: ToxiproxyError.self) {
                try await client.addToxic(ToxicDefinition(name: "y", type: "bandwidth", attributes: ["rate": "fast"]), to: "web")
            }
            #expect(badAttribute?.code == .badRequest)

            let missingToxic = await #expect(throws: ToxiproxyError.self) { try await client.removeToxic(named: "gone", from: "web") }
            #expect(missingToxic?.code == .notFound)
            #expect(missingToxic?.message.contains("proxy web has no toxic named \"gone\"") == true, "\(missingToxic!)")

            let updateMissing = await #expect(throws: ToxiproxyError.self) { try await client.updateToxic(named: "gone", on: "web", toxicity: 0.5) }
            #expect(updateMissing?.code == .notFound)

            let deleteMissing = await #expect(throws: ToxiproxyError.self) { try await client.deleteProxy(named: "nope") }
            #expect(deleteMissing?.code == .notFound)

            // The error maps onto the kernel's backend errors, which cleanups understand.
            #expect(missing?.backendError == .notFound(missing!.message))
            #expect(duplicate?.backendError == .conflict(duplicate!.message))
            #expect(badType?.backendError == .invalid(badType!.message))
        }
    }

    @Test("a dead server is an immediate 'connection refused' naming its address, not a retry until the connect timeout")
    func deadServer() async throws {
        let port = try FreePort.take()
        let address = try ToxiproxyAddress(parsing: "http://127.0.0.1:\(port)")
        try await closing(ToxiproxyClient(address: address, timeouts: .init(connect: .seconds(600), request: .seconds(600)))) { client in
            // With connection retries the call would wait out the 600 s connect timeout (and fail
            // the time limit); refused means refused.
            let error = await #expect(throws: ToxiproxyError.self) { try await client.version() }
            #expect(error?.code == .unreachable)
            #expect(
                error?.description.contains("Toxiproxy at http://127.0.0.1:\(port): read the version: connection refused at 127.0.0.1:\(port)")
                    == true, "\(error!)")
            #expect(error?.hint?.contains("toxiproxy-server") == true)
        }
    }

    @Test("a server that accepts but never answers fails with the request timeout")
    func hungServer() async throws {
        try await closing(TestTCPServer(.stall)) { silent in
            let address = try ToxiproxyAddress(parsing: "127.0.0.1:\(silent.port)")
            try await closing(ToxiproxyClient(address: address, timeouts: .init(connect: .seconds(2), request: .milliseconds(300)))) { client in
                let error = await #expect(throws: ToxiproxyError.self) { try await client.proxies() }
                #expect(error?.code == .timedOut)
                #expect(error?.reason == "no answer within 0.3 s")
            }
        }
    }

    @Test("older servers: PATCH answered 405 falls back to POST (and is remembered); 200 on create; a bare version body")
    func olderServer() async throws {
        let proxy = #"{"name":"web","listen":"127.0.0.1:9","upstream":"127.0.0.1:1","enabled":false,"toxics":[]}"#
        let toxic = #"{"name":"slow","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":9,"jitter":0}}"#
        let old = try await TestHTTPServer.start { method, uri, _ in
            switch (method, uri) {
            case ("GET", "/version"): (200, "text/plain", "2.1.4\n")
            case ("PATCH", _): (405, "text/plain", "")
            case ("POST", "/proxies"), ("POST", "/proxies/web"): (200, "application/json", proxy)
            case ("POST", "/proxies/web/toxics/slow"): (200, "application/json", toxic)
            default: (404, "text/plain", "404 page not found\n")
            }
        }
        try await closing(old) { old in
            try await closing(ToxiproxyClient(address: try ToxiproxyAddress(parsing: "http://127.0.0.1:\(old.port)"))) { client throws in
                #expect(try await client.version() == "2.1.4")
                #expect(try await client.createProxy(ProxyDefinition(name: "web", listen: "127.0.0.1:9", upstream: "127.0.0.1:1")).name == "web")
                #expect(try await client.updateProxy(named: "web", enabled: false).enabled == false)
                #expect(try await client.updateToxic(named: "slow", on: "web", attributes: ["latency": 9]).attributes["latency"] == 9)
                #expect(
                    old.requests == ["GET /version", "POST /proxies", "PATCH /proxies/web", "POST /proxies/web", "POST /proxies/web/toxics/slow"])

                let notToxiproxy = await #expect(throws: ToxiproxyError.self) { try await client.proxies() }
                #expect(notToxiproxy?.code == .notToxiproxy)
                #expect(notToxiproxy?.message.contains("no Toxiproxy 2.x API at this address") == true)
            }
        }
    }

    @Test(
        "addresses: URLs, host:port and host as toxiproxy-cli takes them; bad ones say how to write them",
        arguments: [
            ("http://127.0.0.1:8474", "http://127.0.0.1:8474"),
            ("127.0.0.1:9000", "http://127.0.0.1:9000"),
            ("localhost", "http://localhost:8474"),
            ("https://toxiproxy.example.com/base/", "https://toxiproxy.example.com:443/base"),
            ("http://[::1]:8474", "http://[::1]:8474"),
        ])
    func addresses(_ text: String, _ url: String) throws {
        #expect(try ToxiproxyAddress(parsing: text).url == url)
    }

    @Test("bad addresses", arguments: ["", "ftp://host:1", "http://:8474", "http://host:8474/?x=1", "http://host:99999"])
    func badAddresses(_ text: String) {
        #expect(throws: ArgumentError.self) { try ToxiproxyAddress(parsing: text) }
    }

    @Test("Chaos Toolkit's configuration keys: toxiproxy_url wins, else toxiproxy_host and toxiproxy_port (default 8474)")
    func configuredAddress() throws {
        #expect(try ToxiproxyAddress.configured(in: [:]) == nil)
        #expect(try ToxiproxyAddress.configured(in: ["toxiproxy_host": "10.0.0.5"])?.url == "http://10.0.0.5:8474")
        #expect(try ToxiproxyAddress.configured(in: ["toxiproxy_host": "10.0.0.5", "toxiproxy_port": "9000"])?.url == "http://10.0.0.5:9000")
        #expect(try ToxiproxyAddress.configured(in: ["toxiproxy_host": "h", "toxiproxy_port": 9001])?.url == "http://h:9001")
        #expect(try ToxiproxyAddress.configured(in: ["toxiproxy_url": "http://proxy:1/tp", "toxiproxy_host": "h"])?.url == "http://proxy:1/tp")
        #expect(throws: ArgumentError.self) { try ToxiproxyAddress.configured(in: ["toxiproxy_host": "h", "toxiproxy_port": "http"]) }
    }
}
