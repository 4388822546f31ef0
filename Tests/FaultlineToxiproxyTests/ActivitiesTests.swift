import FaultlineKit
import FaultlineTestSupport
import FaultlineTesting
import FaultlineToxiproxy
import Foundation
import Testing

/// `toxiproxy.*` activities and the toxic activities' reset, in experiments run in-process against
/// `faultline proxy` as a child process.
@Suite("Toxiproxy activities in experiments")
struct ActivitiesTests {
    static func outputs(_ journal: Journal) -> [String: Value] {
        Dictionary(
            journal.run.compactMap { record in record.activity["name"]?.stringValue.map { ($0, record.output ?? .null) } },
            uniquingKeysWith: { a, _ in a })
    }

    @Test("toxiproxy.* name a server whatever the profile; what they did is undone at the end, and only that")
    func nativeActivities() async throws {
        try await withStandIn { server, client in
            let theirs = try await RunTests.preexisting(client)
            let url = server.url
            let result = try await runSuite(
                """
                name: native
                experiments:
                  - title: on a named server
                    method:
                      - {type: probe, name: version, provider: {type: toxiproxy.version, url: "\(url)"}}
                      - type: action
                        name: populate
                        provider: {type: toxiproxy.populate, url: "\(url)", proxies: [{name: a, upstream: "127.0.0.1:1"}, {name: b, upstream: "127.0.0.1:2", enabled: false}]}
                      - {type: action, name: create, provider: {type: toxiproxy.proxy.create, url: "\(url)", name: c, upstream: "127.0.0.1:3"}}
                      - {type: action, name: toxic, provider: {type: toxiproxy.toxic, url: "\(url)", proxy: a, toxic: latency, attributes: {latency: 20}}}
                      - {type: action, name: tune, provider: {type: toxiproxy.toxic.update, url: "\(url)", proxy: a, name: latency_downstream, attributes: {jitter: 2}}}
                      - {type: action, name: retune-theirs, provider: {type: toxiproxy.toxic.update, url: "\(url)", proxy: theirs, name: their_latency, toxicity: 0.5}}
                      - {type: action, name: move-theirs, provider: {type: toxiproxy.proxy.update, url: "\(url)", proxy: theirs, upstream: "127.0.0.1:9"}}
                      - {type: action, name: down, provider: {type: toxiproxy.proxy.disable, url: "\(url)", proxy: theirs}}
                      - {type: action, name: up, provider: {type: toxiproxy.proxy.enable, url: "\(url)", proxy: b}}
                      - {type: probe, name: proxies, provider: {type: toxiproxy.proxies, url: "\(url)"}}
                      - {type: probe, name: a, provider: {type: toxiproxy.proxy, url: "\(url)", proxy: a}}
                      - {type: probe, name: toxics, provider: {type: toxiproxy.toxics, url: "\(url)", proxy: a}}
                      - {type: action, name: remove, provider: {type: toxiproxy.toxic.remove, url: "\(url)", proxy: a, name: latency_downstream}}
                      - {type: action, name: delete, provider: {type: toxiproxy.proxy.delete, url: "\(url)", name: c}}
                      - {type: probe, name: during, provider: {type: toxiproxy.proxies, url: "\(url)"}}
                """)
            let journal = try #require(result.journals.first)
            #expect(journal.verdict == .completed, "\(journal.reason ?? "") \(journal.run.compactMap(\.exception))")
            let out = Self.outputs(journal)
            #expect(out["version"] == "2.12.0")
            #expect(out["populate"]?["created"] == ["a", "b"])
            #expect(out["proxies"]?.objectValue?.keys.sorted() == ["a", "b", "c", "theirs"])
            #expect(out["a"]?["toxics"]?[0]?["attributes"] == ["latency": 20, "jitter": 2])
            #expect(out["toxics"]?[0]?["name"] == "latency_downstream")
            #expect(out["remove"]?["removed"] == true)
            #expect(out["delete"]?["deleted"] == true)
            let during = try #require(out["during"]?["theirs"])
            #expect(during["upstream"] == "127.0.0.1:9" && during["enabled"] == false)
            #expect(during["toxics"]?[0]?["toxicity"] == 0.5)
            #expect(journal.cleanup.allSatisfy { $0.status == .succeeded }, "\(journal.cleanup)")
            // Populated and created proxies are gone; theirs has its upstream, state and toxic back.
            #expect(try await client.proxies() == [theirs])
        }
    }

    @Test("toxic.reset on a shared server removes this run's toxics and enables its proxies; theirs stay")
    func scopedResetActivity() async throws {
        try await withStandIn { server, client in
            let theirs = try await RunTests.preexisting(client)
            let result = try await runSuite(
                """
                name: reset
                proxies: [{name: mine, upstream: "127.0.0.1:1"}]
                experiments:
                  - title: reset
                    method:
                      - {type: action, name: one, provider: {type: toxic, proxy: mine, toxic: latency}}
                      - {type: action, name: two, provider: {type: toxic, proxy: theirs, toxic: bandwidth, attributes: {rate: 10}}}
                      - {type: action, name: down, provider: {type: proxy.disable, proxy: mine}}
                      - {type: action, name: reset, provider: {type: toxic.reset}}
                      - {type: probe, name: after, provider: {type: toxiproxy.proxies}}
                profiles:
                  shared: {default: true, toxics: {backend: toxiproxy, url: "\(server.url)"}}
                """)
            let journal = try #require(result.journals.first)
            #expect(journal.verdict == .completed, "\(journal.reason ?? "")")
            let out = Self.outputs(journal)
            #expect(out["reset"] == ["removed": 2, "enabled": 1])
            #expect(out["after"]?["theirs"] == (try ValueEncoder().encode(theirs)))
            #expect(out["after"]?["mine"]?["toxics"] == [])
            #expect(out["after"]?["mine"]?["enabled"] == true)
            #expect(journal.faults.allSatisfy { $0.end != nil })
            #expect(try await client.proxies() == [theirs])
        }
    }

    @Test("toxiproxy.reset with scope: server is Toxiproxy's global reset, asked for by name")
    func serverReset() async throws {
        try await withStandIn { server, client in
            _ = try await RunTests.preexisting(client)
            let result = try await runSuite(
                """
                name: global
                experiments:
                  - title: reset everything
                    method:
                      - {type: action, name: reset, provider: {type: toxiproxy.reset, url: "\(server.url)", scope: server}}
                """)
            #expect(result.journals.first?.verdict == .completed)
            #expect(try await client.proxy(named: "theirs").toxics.isEmpty)
        }
    }

    @Test("a toxiproxy.* activity with no server named says how to name one")
    func noServer() async throws {
        let result = try await runSuite(
            """
            name: nowhere
            experiments:
              - title: t
                method: [{type: probe, name: v, provider: {type: toxiproxy.version}}]
            """)
        let record = try #require(result.journals.first?.run.first)
        #expect(record.status == .failed)
        #expect(record.exception?.first == "no Toxiproxy server named")
    }
}

@Suite("faultline plugins lists the driver")
struct PluginsListingTests {
    @Test("the toxiproxy backend, every toxiproxy.* type and every chaostoxi function, each with its arguments")
    func listing() async throws {
        let scratch = try ScratchDirectory()
        let run = try TestProcess.faultline(["plugins", "--json"], in: scratch)
        #expect(await run.wait() == 0)
        let listing = try JSONReader.value(run.stdout)
        #expect(listing["toxic_backends"]?.arrayValue?.contains("toxiproxy") == true)
        let providers = listing["providers"]?.arrayValue ?? []
        let byType = Dictionary(
            providers.compactMap { provider in provider["type"]?.stringValue.map { ($0, provider) } }, uniquingKeysWith: { a, _ in a })
        for type in [
            "toxiproxy.toxic", "toxiproxy.toxic.update", "toxiproxy.toxic.remove", "toxiproxy.proxy.create", "toxiproxy.proxy.update",
            "toxiproxy.proxy.delete", "toxiproxy.proxy.disable", "toxiproxy.proxy.enable", "toxiproxy.populate", "toxiproxy.reset",
            "toxiproxy.version", "toxiproxy.proxies", "toxiproxy.proxy", "toxiproxy.toxics",
        ] {
            #expect(byType[type]?["plugin"] == "toxiproxy", "\(type) is not listed")
            #expect(byType[type]?["arguments"]?.arrayValue?.contains { $0["name"] == "url" } == true, "\(type) takes no url")
        }
        let functions = [
            "chaostoxi.proxy.actions": ["create_proxy", "modify_proxy", "disable_proxy", "enable_proxy", "delete_proxy", "reset"],
            "chaostoxi.proxy.probes": ["proxy_exist", "get_proxy_attribute"],
            "chaostoxi.toxic.actions": [
                "create_toxic", "create_latency_toxic", "create_bandwith_degradation_toxic", "create_slow_connection_close_toxic",
                "create_timeout_toxic",
                "create_slicer_toxic", "create_limiter_toxic", "delete_toxic",
            ],
        ]
        for (module, names) in functions {
            for name in names { #expect(byType["python:\(module).\(name)"] != nil, "\(module).\(name) is not listed") }
        }
        let createProxy = byType["python:chaostoxi.proxy.actions.create_proxy"]?["arguments"]?.arrayValue ?? []
        #expect(createProxy.first { $0["name"] == "listen_host" }?["default"] == "0.0.0.0")
        #expect(createProxy.first { $0["name"] == "listen_port" }?["default"] == 0)
    }
}
