import FaultlineKit
import FaultlineNetwork
import FaultlineTestSupport
import FaultlineTesting
import FaultlineToxiproxy
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `faultline run` as a real child process, with `faultline proxy` as a real child process standing
/// in for a shared Toxiproxy server, and a real HTTP service behind the proxies.
@Suite("faultline run with a Toxiproxy server", .serialized, .timeLimit(.minutes(3)))
struct RunTests {
    static let chaosToolkitExperiment = packageRoot.appendingPathComponent("experiments/chaostoolkit/toxiproxy-latency-timeout.json").path
    static let paritySuite = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/parity/suite.yaml").path

    /// Someone else's proxy and toxic on the server, which no run may touch.
    static func preexisting(_ client: ToxiproxyClient) async throws -> ProxyDefinition {
        _ = try await client.createProxy(ProxyDefinition(name: "theirs", listen: "127.0.0.1:\(try FreePort.take())", upstream: "127.0.0.1:1"))
        _ = try await client.addToxic(ToxicDefinition(name: "their_latency", type: "latency", attributes: ["latency": 7]), to: "theirs")
        return try await client.proxy(named: "theirs")
    }

    /// The method steps of an experiment that injects every kind of fault the Toxiproxy backend
    /// and driver can, on the suite proxy `service` and on ``preexisting(_:)``'s `theirs`: YAML
    /// list items indented for `experiments: [{method: …}]`.
    static func everyKindOfFault(service: Int) -> String {
        [
            "{type: action, name: slow, provider: {type: toxic, proxy: service, toxic: latency, attributes: {latency: 100}}}",
            "{type: action, name: on-theirs, provider: {type: toxic, proxy: theirs, toxic: bandwidth, attributes: {rate: 100}}}",
            "{type: action, name: theirs-down, provider: {type: proxy.disable, proxy: theirs}}",
            "{type: action, name: extra, provider: {type: proxy.create, name: extra, upstream: \"127.0.0.1:\(service)\"}}",
            "{type: action, name: chaostoxi-proxy, provider: {type: python, module: chaostoxi.proxy.actions, func: create_proxy, arguments: {proxy_name: ctk, upstream_host: 127.0.0.1, upstream_port: \(service), listen_host: 127.0.0.1}}}",
            "{type: action, name: chaostoxi-toxic, provider: {type: python, module: chaostoxi.toxic.actions, func: create_latency_toxic, arguments: {for_proxy: ctk, toxic_name: lag, latency: 10}}}",
            "{type: action, name: native, provider: {type: toxiproxy.toxic, proxy: extra, toxic: slicer, attributes: {average_size: 64}}}",
        ].map { "      - " + $0 }.joined(separator: "\n")
    }

    static func record(_ journal: Journal, _ name: String) -> RunRecord? {
        journal.run.first { $0.activity["name"]?.stringValue == name }
    }

    @Test("a Chaos Toolkit experiment with chaostoxi latency and timeout toxics runs unchanged on the in-process proxy, with no server")
    func chaosToolkitInProcess() async throws {
        try await closing(TestHTTPServer.start()) { service in
            let scratch = try ScratchDirectory()
            let run = try TestProcess.faultline(
                ["run", Self.chaosToolkitExperiment, "--journal-path", "journal.json"], in: scratch,
                environment: ["SERVICE_PORT": String(service.port)])
            let status = await run.wait()
            #expect(status == 0, "\(run.stdout)\n\(run.stderr)")
            let journal = try Journal.load(path: scratch.path("journal.json"))
            try Self.checkChaosToolkitJournal(journal)
        }
    }

    /// What the experiment must show on either backend: the toxics took effect and were undone.
    static func checkChaosToolkitJournal(_ journal: Journal) throws {
        #expect(journal.verdict == .completed, "\(journal.reason ?? "")")
        #expect(record(journal, "proxy-the-service")?.output == true)
        let slow = try #require(record(journal, "call-through-slow-network")?.output)
        #expect(slow["status"] == 0)
        // At least the toxic's 300 ms: compared with the toxic, not with a machine-dependent bound.
        #expect(try #require(Double(slow["stdout"]?.stringValue ?? "")) >= 0.3, "\(slow)")
        let hung = try #require(record(journal, "call-through-hung-network")?.output)
        #expect(hung["status"] == 28, "curl should give up at its 1 s limit (exit 28): \(hung)")
        #expect(record(journal, "proxy-still-there")?.output == true)
        #expect(journal.rollbacks.map(\.status) == [.succeeded, .succeeded])
        #expect(journal.cleanup.map(\.description) == ["remove toxic hang from service", "remove toxic slow from service", "delete proxy service"])
        #expect(journal.cleanup.allSatisfy { $0.status == .succeeded })
        #expect(journal.faults.count == 2 && journal.faults.allSatisfy { $0.end != nil })
    }

    @Test("the same experiment runs unchanged against a Toxiproxy server named by toxiproxy_url, and leaves nothing on it")
    func chaosToolkitOnServer() async throws {
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn { server, client in
                let theirs = try await Self.preexisting(client)
                let scratch = try ScratchDirectory()
                let run = try TestProcess.faultline(
                    ["run", Self.chaosToolkitExperiment, "--journal-path", "journal.json", "--var", "toxiproxy_url=\(server.url)"], in: scratch,
                    environment: ["SERVICE_PORT": String(service.port)])
                let status = await run.wait()
                #expect(status == 0, "\(run.stdout)\n\(run.stderr)")
                try Self.checkChaosToolkitJournal(try Journal.load(path: scratch.path("journal.json")))
                #expect(try await client.proxies() == [theirs])
            }
        }
    }

    @Test("toxiproxy_host and toxiproxy_port are honoured: a dead address fails the activity at once, naming it")
    func chaosToolkitDeadServer() async throws {
        try await closing(TestHTTPServer.start()) { service in
            let port = try FreePort.take()
            let scratch = try ScratchDirectory()
            let run = try TestProcess.faultline(
                [
                    "run", Self.chaosToolkitExperiment, "--journal-path", "journal.json", "--var", "toxiproxy_host=127.0.0.1", "--var",
                    "toxiproxy_port=\(port)",
                ], in: scratch, environment: ["SERVICE_PORT": String(service.port)])
            #expect(await run.wait() == 1)
            let journal = try Journal.load(path: scratch.path("journal.json"))
            let failure = try #require(Self.record(journal, "proxy-the-service"))
            #expect(failure.status == .failed)
            #expect(
                failure.exception?.first?.hasPrefix(
                    "Toxiproxy at http://127.0.0.1:\(port): create proxy service: connection refused at 127.0.0.1:\(port)") == true,
                "\(failure.exception ?? [])")
        }
    }

    @Test("the same suite gives the same verdicts on the in-process proxy and on a Toxiproxy server, which it leaves as it found it")
    func sameVerdictsOnEitherBackend() async throws {
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn { server, client in
                let theirs = try await Self.preexisting(client)
                var verdicts: [String: [Outcome]] = [:]  // outcomes, before the suite's expectations
                var toxicListings: [String: Value] = [:]
                var reasons: [String: [String]] = [:]  // why each ended as it did, for a failure's message
                for (profile, extra) in [("inprocess", [String]()), ("toxiproxy", ["--var", "toxiproxy_api=\(server.url)"])] {
                    let scratch = try ScratchDirectory()
                    let run = try TestProcess.faultline(
                        ["run", Self.paritySuite, "--profile", profile, "--journal-path", scratch.path("journals")] + extra, in: scratch,
                        environment: ["SERVICE_PORT": String(service.port)])
                    let status = await run.wait()
                    #expect(status == 0, "\(profile): every experiment ends as the suite expects\n\(run.stdout)\n\(run.stderr)")
                    let files = try FileManager.default.contentsOfDirectory(atPath: scratch.path("journals")).filter { $0.hasSuffix(".json") }
                        .sorted()
                    let journals = try files.map { try Journal.load(path: scratch.path("journals/\($0)")) }
                    verdicts[profile] = journals.map(\.outcome)
                    reasons[profile] = journals.map { "\($0.outcome): \($0.reason ?? "-")" }
                    #expect(journals.allSatisfy { $0.verdict == .completed }, "\(profile): an experiment did not end as the suite documents")
                    toxicListings[profile] = journals.last.flatMap { Self.record($0, "toxics")?.output }
                    #expect(journals.allSatisfy { $0.cleanup.allSatisfy { $0.status == .succeeded } })
                }
                #expect(verdicts["inprocess"] == [.completed, .deviated, .deviated, .completed], "\(reasons)")
                #expect(verdicts["inprocess"] == verdicts["toxiproxy"], "\(reasons)")
                // The chaostoxi probe saw the same toxics, as Toxiproxy's API shows them, on both.
                #expect(toxicListings["inprocess"] != nil && toxicListings["inprocess"] == toxicListings["toxiproxy"])
                #expect(try await client.proxies() == [theirs])
            }
        }
    }

    @Test(
        "SIGINT to a run: its proxies and toxics are all gone from the server; someone else's proxy and toxic stay",
        arguments: [1, 2])
    func interruptedRun(signals: Int) async throws {
        try await closing(TestHTTPServer.start()) { service in
            try await withStandIn { server, client in
                let theirs = try await Self.preexisting(client)
                let scratch = try ScratchDirectory()
                try scratch.write(
                    "suite.yaml",
                    """
                    name: interrupted
                    proxies:
                      - {name: service, upstream: "127.0.0.1:\(service.port)"}
                    experiments:
                      - title: held up
                        method:
                    \(Self.everyKindOfFault(service: service.port))
                          - {type: probe, name: wait, provider: {type: process, path: sleep, arguments: ["60"]}}
                    profiles:
                      shared: {default: true, toxics: {backend: toxiproxy, url: "\(server.url)"}}
                    """)
                let run = try TestProcess.faultline(["run", "suite.yaml", "--journal-path", "journals"], in: scratch)
                // The run prints each activity as it starts; by "wait" every fault is on the server.
                #expect(await eventually { run.stdout.contains("… probe  wait") || !run.isRunning }, "\(run.stdout)\n\(run.stderr)")
                #expect(try await client.proxies().map(\.name) == ["ctk", "extra", "service", "theirs"])
                #expect(try await client.proxy(named: "theirs").enabled == false)
                // A second SIGINT may cancel the experiment's rollbacks and cleanups; then the backend's
                // ledger removes what the run left when it tears down (BackendTests covers that alone).
                for _ in 0..<signals { run.signal(SIGINT) }
                #expect(await run.wait() == 130, "\(run.stdout)\n\(run.stderr)")
                #expect(try await client.proxies() == [theirs])
            }
        }
    }

    @Test("Chaos Toolkit mistakes are load errors: unknown module (listing chaostoxi's), misspelt function or argument, bad values")
    func loadErrors() throws {
        let errors = try validationErrors(
            """
            name: mistakes
            experiments:
              - title: t
                method:
                  - {type: action, name: a, provider: {type: python, module: chaostoxi.toxic.actionz, func: create_latency_toxic}}
                  - {type: action, name: b, provider: {type: python, module: chaostoxi.toxic.actions, func: create_latncy_toxic}}
                  - {type: action, name: c, provider: {type: python, module: chaostoxi.toxic.actions, func: create_latency_toxic, arguments: {for_proxi: p, toxic_name: t, latency: 1}}}
                  - {type: action, name: d, provider: {type: python, module: chaostoxi.toxic.actions, func: create_bandwith_degradation_toxic, arguments: {for_proxy: p, toxic_name: t, rate: -1}}}
                  - {type: action, name: e, provider: {type: python, module: chaostoxi.toxic.actions, func: create_toxic, arguments: {for_proxy: p, toxic_name: t, toxic_type: latncy}}}
                  - {type: probe, name: f, provider: {type: python, module: chaostoxi.proxy.probes, func: get_proxy_attribute, arguments: {proxy_name: p, attribute: upstrem}}}
                  - {type: action, name: g, provider: {type: python, module: chaostoxi.proxy.actions, func: create_proxy, arguments: {proxy_name: p, upstream_host: h, upstream_port: http}}}
            """)
        func has(_ prefix: String, _ text: String) -> Bool { errors.contains { $0.hasPrefix(prefix) && $0.contains(text) } }
        #expect(has("suite.yaml:5:", "python module \"chaostoxi.toxic.actionz\" is not supported"), "\(errors)")
        #expect(has("suite.yaml:5:", "chaostoxi.proxy.actions, chaostoxi.proxy.probes, chaostoxi.toxic.actions"), "\(errors)")
        #expect(has("suite.yaml:6:", "has no function \"create_latncy_toxic\" (did you mean \"create_latency_toxic\"?)"), "\(errors)")
        #expect(has("suite.yaml:7:", "unknown key \"for_proxi\" (did you mean \"for_proxy\"?)"), "\(errors)")
        #expect(has("suite.yaml:8:", "rate must be 0…"), "\(errors)")
        #expect(has("suite.yaml:8:", "at experiments[0].method[3].provider.arguments.rate"), "\(errors)")
        #expect(has("suite.yaml:9:", "unknown toxic type \"latncy\" (did you mean \"latency\"?)"), "\(errors)")
        #expect(has("suite.yaml:10:", "a proxy has no attribute \"upstrem\" (did you mean \"upstream\"?)"), "\(errors)")
        #expect(has("suite.yaml:11:", "upstream_port must be a port number or env:NAME"), "\(errors)")
    }
}
