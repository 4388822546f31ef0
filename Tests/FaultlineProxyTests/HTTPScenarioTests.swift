import FaultlineKit
import FaultlineProxy
import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// The HTTP fault scenarios of Envoy's fault filter (`envoy.extensions.filters.http.fault.v3.HTTPFault`)
/// and Chaos Mesh's HTTPChaos, as the README's mapping table writes them with Faultline's toxics,
/// replayed through the in-process proxy against real servers (nginx, and the test HTTP server
/// where the upstream must echo what it received) with curl and Python as clients.
@Suite("HTTP fault scenarios from Envoy and Chaos Mesh", .serialized)
struct HTTPScenarioTests {
    typealias Fixture = HTTPToxicTests.Fixture

    /// `curl -s` printing the status code after the body (`…\n<status>`), with request headers.
    static func status(_ url: String, headers: [String] = [], _ extra: [String] = []) async throws -> Int {
        let result = try await HTTPToxicTests.curl(["-o", "/dev/null", "-w", "%{http_code}"] + headers.flatMap { ["-H", $0] } + extra + [url])
        return Int(result.output) ?? -Int(result.status)
    }

    /// The JSON an upstream `/echo` answered, as a value.
    static func echo(_ arguments: [String]) async throws -> Value {
        let result = try await HTTPToxicTests.curl(arguments)
        #expect(result.status == 0, "curl exit \(result.status)")
        return try JSONReader.value(result.output)
    }

    // MARK: Envoy

    @Test("Envoy abort {http_status: 503, percentage: 50}: http_abort with toxicity 0.5, seeded, the server never sees the aborted")
    func envoyAbortPercentage() async throws {
        func pattern(seed: UInt64) async throws -> (statuses: [String], served: Int) {
            let upstream = try await TestHTTPServer.start()
            let statuses = try await closing(try await Fixture(seed: seed, upstreamPort: upstream.port)) { f in
                try await f.add("http_abort", stream: "upstream", toxicity: 0.5, ["status": 503])
                return try await HTTPToxicTests.python(port: f.port, Array(repeating: ("GET", "/ok"), count: 40))
            }
            let served = upstream.count("/ok")
            await upstream.close()
            return (statuses, served)
        }
        let first = try await pattern(seed: 5)
        let again = try await pattern(seed: 5)
        #expect(first.statuses == again.statuses)
        let aborted = first.statuses.filter { $0 == "503 0" }.count
        #expect(aborted > 5 && aborted < 35)
        #expect(first.statuses.allSatisfy { $0 == "503 0" || $0 == "200 5" })
        #expect(first.served == 40 - aborted)
    }

    @Test("Envoy delay {fixed_delay: 0.3s} then abort: the made-up answer comes after the delay; other paths are untouched")
    func envoyDelayThenAbort() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_latency", stream: "upstream", ["latency": 300, "path": "/status/503"])
            try await f.add("http_abort", stream: "upstream", ["status": 418, "path": "/status/503"])
            let start = monotonicSeconds()
            #expect(try await Self.status("\(f.url)/status/503") == 418)
            #expect(monotonicSeconds() - start >= 0.3)
            #expect(try await Self.status("\(f.url)/status/201") == 201)
        }
    }

    @Test("Envoy headers: exact, prefix, suffix, contains, present, regex, range and invert matchers, all of which must match")
    func envoyHeaderMatchers() async throws {
        try await closing(try await Fixture()) { f in
            // Envoy's own spellings and Faultline's short ones, in one list: every one must hold.
            let matchers: Value = [
                ["name": "x-exact", "exact_match": "yes"],
                ["name": "x-prefix", "prefix": "abc"],
                ["name": "x-suffix", "suffix_match": "xyz"],
                ["name": "x-contains", "string_match": ["contains": "mid", "ignore_case": true]],
                ["name": "x-present", "present_match": true],
                ["name": "x-regex", "safe_regex_match": ["regex": "v[0-9]+"]],
                ["name": "x-range", "range_match": ["start": 10, "end": 20]],
                ["name": "x-debug", "invert": true],
            ]
            try await f.add("http_abort", stream: "upstream", ["status": 503, "request_headers": matchers])
            let all = ["x-exact: yes", "x-prefix: abcdef", "x-suffix: 1xyz", "x-contains: a-MID-b", "x-present: 1", "x-regex: v12", "x-range: 15"]
            #expect(try await Self.status("\(f.url)/", headers: all) == 503)
            // Each header alone off target leaves the request alone.
            let misses = [
                "x-exact: no", "x-prefix: xabc", "x-suffix: xyz1", "x-contains: none", "x-regex: v12a", "x-range: 20", "x-debug: 1",
            ]
            for miss in misses {
                let name = miss.split(separator: ":")[0]
                let headers = all.filter { !$0.hasPrefix(name + ":") } + [miss]
                #expect(try await Self.status("\(f.url)/", headers: headers) == 200, "\(miss)")
            }
            #expect(try await Self.status("\(f.url)/", headers: all.filter { !$0.hasPrefix("x-present") }) == 200)
            #expect(f.server.toxicReport(named: "http_abort_upstream", on: "web") == "affected 1 of 1 matching request")
        }
    }

    @Test("Envoy header-controlled faults: x-envoy-fault-abort-request, -delay-request, -throughput-response and their percentages")
    func envoyHeaderControlled() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_abort", stream: "upstream", toxicity: 1, ["header_abort": [:] as Value])
            try await f.add("http_latency", stream: "upstream", ["header_delay": true])
            try await f.add("http_bandwidth", ["header_limit": [:] as Value])
            #expect(try await Self.status("\(f.url)/") == 200)
            #expect(try await Self.status("\(f.url)/", headers: ["x-envoy-fault-abort-request: 429"]) == 429)
            // The percentage header caps the toxicity: 0 % aborts nothing.
            #expect(
                try await Self.status("\(f.url)/", headers: ["x-envoy-fault-abort-request: 429", "x-envoy-fault-abort-request-percentage: 0"]) == 200)
            let grpc = try await HTTPToxicTests.curl(["-i", "-H", "x-envoy-fault-abort-grpc-request: 14", "\(f.url)/"])
            #expect(grpc.output.hasPrefix("HTTP/1.1 200 OK\r\n") && grpc.output.contains("grpc-status: 14\r\n"), "\(grpc.output)")
            let start = monotonicSeconds()
            #expect(try await Self.status("\(f.url)/", headers: ["x-envoy-fault-delay-request: 300"]) == 200)
            #expect(monotonicSeconds() - start >= 0.3)
            // 100,000 bytes at 40 KiB/s take at least 2.4 s; the body arrives whole.
            let slow = monotonicSeconds()
            let big = try await HTTPToxicTests.curl(["-H", "x-envoy-fault-throughput-response: 40", "\(f.url)/big"])
            #expect(monotonicSeconds() - slow >= 2.3)
            #expect(Array(big.output.utf8) == TestNginx.bigBody)
            #expect(f.server.toxicReport(named: "http_abort_upstream", on: "web") == "affected 2 of 3 matching requests")
            #expect(f.server.toxicReport(named: "http_bandwidth_downstream", on: "web") == "affected 1 of 1 matching request")
        }
    }

    @Test("Envoy response_rate_limit {fixed_limit: {limit_kbps}}: http_bandwidth paces the body, the head comes at once")
    func envoyResponseRateLimit() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_bandwidth", ["rate": 50, "path": "/big"])
            let start = monotonicSeconds()
            let result = try await HTTPToxicTests.curl(["-w", "\n%{time_starttransfer}", "\(f.url)/big"])
            let elapsed = monotonicSeconds() - start
            let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(Array(lines.dropLast().joined(separator: "\n").utf8) == TestNginx.bigBody)
            // 100,000 bytes at 50,000 bytes/s: at least 1.9 s in all.
            #expect(elapsed >= 1.9)
            #expect(try await Self.status("\(f.url)/") == 200)
        }
    }

    @Test("Envoy max_active_faults: a request over the limit passes untouched while the others' faults are under way")
    func envoyMaxActiveFaults() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add("http_latency", ["latency": 0, "max_active_faults": 1, "path_prefix": "/gate/"])
            let url = f.url
            // The first response is held at the server's gate: its (downstream) fault stays active.
            let first = Task { try await Self.status("\(url)/gate/a") }
            #expect(await eventually { upstream.waiting(atGate: "a") == 1 })
            upstream.openGate("b")
            #expect(try await Self.status("\(url)/gate/b") == 200)
            #expect(
                f.server.toxicReport(named: "http_latency_downstream", on: "web")?.hasPrefix("affected 1 of 2 matching requests; 1 more left alone")
                    == true)
            upstream.openGate("a")
            #expect(try await first.value == 200)
            // The place is free again.
            #expect(try await Self.status("\(url)/gate/b") == 200)
            #expect(f.server.toxicReport(named: "http_latency_downstream", on: "web")?.hasPrefix("affected 2 of 3 matching requests") == true)
        }
        await upstream.close()
    }

    // MARK: Chaos Mesh

    @Test("Chaos Mesh abort (target Request and Response): the connection ends without an answer; path globs and method select")
    func chaosMeshAbort() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add(
                "http_reset", stream: "upstream", ["forward_head": false, "close": true, "method": "GET", "path": "/api/*"])
            let aborted = try await HTTPToxicTests.curl(["\(f.url)/api/orders"])
            #expect(aborted.status == 52, "curl exit \(aborted.status)")  // empty reply from server
            #expect(upstream.count("/api/orders") == 0)
            #expect(try await Self.status("\(f.url)/api/orders", ["-X", "POST"]) == 404)
            #expect(try await Self.status("\(f.url)/ok") == 200)
            // Target Response: the server answers, the client gets nothing.
            try await f.add("http_reset", name: "response_abort", ["forward_head": false, "path": "/ok"])
            let reset = try await HTTPToxicTests.curl(["\(f.url)/ok"])
            #expect(reset.status == 56 || reset.status == 52, "curl exit \(reset.status)")
            #expect(upstream.count("/ok") == 2)
        }
        await upstream.close()
    }

    @Test("Chaos Mesh request_headers (all must match), code and response_headers select requests and responses")
    func chaosMeshSelectors() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add(
                "http_abort", stream: "upstream", ["status": 503, "request_headers": ["Content-Type": "application/json", "X-Tenant": "a"]])
            #expect(try await Self.status("\(f.url)/ok", headers: ["Content-Type: application/json", "X-Tenant: a"]) == 503)
            #expect(try await Self.status("\(f.url)/ok", headers: ["Content-Type: application/json"]) == 200)
            #expect(try await Self.status("\(f.url)/ok", headers: ["X-Tenant: a"]) == 200)
            // Response target: only responses with status 404, and only JSON responses.
            try await f.add("http_abort", name: "on_404", ["status": 502, "code": 404])
            try await f.add("http_headers", name: "on_json", ["set": ["X-Chaos": "json"], "response_headers": ["Content-Type": "application/json"]])
            #expect(try await Self.status("\(f.url)/nothing-here") == 502)
            #expect(try await Self.status("\(f.url)/status/201") == 201)
            let json = try await HTTPToxicTests.curl(["-i", "\(f.url)/echo"])  // Content-Type: application/json
            #expect(json.output.contains("X-Chaos: json\r\n"))
            let text = try await HTTPToxicTests.curl(["-i", "\(f.url)/ok"])
            #expect(!text.output.contains("X-Chaos"))
            #expect(f.server.toxicReport(named: "on_404", on: "web") == "affected 1 of 1 matching request")
            #expect(upstream.count("/nothing-here") == 1)
        }
        await upstream.close()
    }

    @Test("Chaos Mesh replace on a Request: method, path, queries, headers and body reach the server replaced")
    func chaosMeshReplaceRequest() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add(
                "http_rewrite", stream: "upstream",
                ["set_method": "PUT", "set_path": "/echo", "set_query": ["page": "9"], "path_glob": "/api/*"])
            try await f.add("http_headers", stream: "upstream", ["set": ["X-Token": "replaced"], "path_glob": "/api/*"])
            try await f.add("http_body", stream: "upstream", ["body_base64": "eyJmb28iOiAiYmFyIn0=", "path_glob": "/api/*"])
            let echoed = try await Self.echo(
                ["-X", "POST", "-H", "X-Token: original", "--data-binary", "original body", "\(f.url)/api/v1/items?page=1&size=2&page=3"])
            #expect(echoed["method"] == "PUT")
            #expect(echoed["path"] == "/echo")
            #expect(echoed["query"] == "page=9&size=2")
            #expect(echoed["headers"]?["x-token"] == "replaced")
            #expect(echoed["headers"]?["content-length"] == "14")
            #expect(echoed["body"] == #"{"foo": "bar"}"#)
            // Chunked uploads are replaced too (the framing becomes Content-Length).
            let chunked = try await Self.echo(["-H", "Transfer-Encoding: chunked", "--data-binary", "chunks", "\(f.url)/api/v2"])
            #expect(chunked["body"] == #"{"foo": "bar"}"#)
            #expect(chunked["headers"]?["transfer-encoding"] == nil)
            #expect(try await HTTPToxicTests.curl(["\(f.url)/ok"]).output == "hello")
        }
        await upstream.close()
    }

    @Test("Chaos Mesh patch on a Request: headers and queries appended, the JSON body merge-patched with Content-Length rewritten")
    func chaosMeshPatchRequest() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add("http_headers", stream: "upstream", ["add": [["Token", "one"], ["Token", "two"]], "method": "POST"])
            try await f.add("http_rewrite", stream: "upstream", ["add_query": [["foo", "bar baz"]], "method": "POST"])
            try await f.add("http_body", stream: "upstream", ["merge_patch": #"{"foo": "bar", "drop": null, "nested": {"b": 2}}"#, "method": "POST"])
            let body = #"{"keep":1,"drop":true,"nested":{"a":1}}"#
            let echoed = try await Self.echo(["-H", "Content-Type: application/json", "--data-binary", body, "\(f.url)/echo?x=1"])
            #expect(echoed["query"] == "x=1&foo=bar%20baz")
            #expect(echoed["headers"]?["token"] == "one,two" || echoed["headers"]?["token"] == "two", "\(echoed)")
            let merged = #"{"keep":1,"nested":{"a":1,"b":2},"foo":"bar"}"#
            #expect(echoed["body"] == .string(merged))
            #expect(echoed["headers"]?["content-length"] == .string(String(merged.utf8.count)))
            // A chunked JSON upload is merged too; a body that is not JSON passes unchanged.
            let chunked = try await Self.echo(["-H", "Transfer-Encoding: chunked", "--data-binary", #"{"a":[1]}"#, "\(f.url)/echo"])
            #expect(chunked["body"] == #"{"a":[1],"foo":"bar","nested":{"b":2}}"#)
            let text = try await Self.echo(["--data-binary", "not json", "\(f.url)/echo"])
            #expect(text["body"] == "not json")
            // GETs on the same proxy are untouched.
            let get = try await Self.echo(["\(f.url)/echo?y=2"])
            #expect(get["query"] == "y=2" && get["headers"]?["token"] == nil)
        }
        await upstream.close()
    }

    @Test("Chaos Mesh replace on a Response: the code alone (headers and body kept), or headers and body")
    func chaosMeshReplaceResponse() async throws {
        try await closing(try await Fixture()) { f in
            try await f.add("http_rewrite", ["set_status": 404, "path": "/headers"])
            try await f.add("http_headers", stream: "upstream", ["set": ["X-Test": "sent"], "path": "/headers"])
            let replaced = try await HTTPToxicTests.curl(["-i", "\(f.url)/headers"])
            #expect(replaced.output.hasPrefix("HTTP/1.1 404 Not Found\r\n"), "\(replaced.output)")
            #expect(replaced.output.contains("X-Echo: sent\r\n"))
            #expect(replaced.output.hasSuffix("\r\n\r\nheaders\n"))
            try await f.add("http_body", name: "body", ["body": "replaced", "path": "/status/500"])
            try await f.add("http_headers", name: "type", ["set": ["Content-Type": "application/xml"], "path": "/status/500"])
            let body = try await HTTPToxicTests.curl(["-i", "\(f.url)/status/500"])
            #expect(body.output.hasPrefix("HTTP/1.1 500 "))
            #expect(body.output.contains("Content-Type: application/xml\r\n") && body.output.contains("Content-Length: 8\r\n"))
            #expect(body.output.hasSuffix("\r\n\r\nreplaced"))
            // On one keep-alive connection the others pass as they were.
            #expect(
                try await HTTPToxicTests.python(port: f.port, [("GET", "/headers"), ("GET", "/"), ("GET", "/status/500"), ("GET", "/big")])
                    == ["404 8", "200 17", "500 8", "200 100000"])
        }
    }

    @Test("Chaos Mesh patch on a Response: headers appended, the JSON body merge-patched (chunked too), other bodies unchanged")
    func chaosMeshPatchResponse() async throws {
        let upstream = try await TestHTTPServer.start()
        try await closing(try await Fixture(upstreamPort: upstream.port)) { f in
            try await f.add("http_body", ["merge_patch": ["values": nil, "chaos": ["on": true]] as Value])
            try await f.add("http_headers", ["add": [["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]], "path": "/json"])
            let json = try await HTTPToxicTests.curl(["-i", "\(f.url)/json"])
            let merged = #"{"name":"faultline","nested":{"ok":true},"chaos":{"on":true}}"#
            #expect(json.output.hasSuffix("\r\n\r\n" + merged), "\(json.output)")
            #expect(json.output.contains("Content-Length: \(merged.utf8.count)\r\n"))
            #expect(json.output.contains("Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"))
            let chunked = try await HTTPToxicTests.curl(["-i", "\(f.url)/chunked"])
            #expect(chunked.output.hasSuffix(#"{"parts":[1,2],"chaos":{"on":true}}"#), "\(chunked.output)")
            #expect(!chunked.output.lowercased().contains("transfer-encoding"))
            // Not JSON: byte for byte; keep-alive traffic goes on after held bodies.
            #expect(try await HTTPToxicTests.curl(["\(f.url)/ok"]).output == "hello")
            #expect(
                try await HTTPToxicTests.python(port: f.port, [("GET", "/json"), ("GET", "/ok"), ("GET", "/chunked"), ("HEAD", "/json")])
                    == ["200 \(merged.utf8.count)", "200 5", "200 35", "200 0"])
        }
        await upstream.close()
    }

    @Test("Attributes that cannot act are refused with the fix: response matches upstream, set_status upstream, a bad regex")
    func validation() async throws {
        try await closing(try await Fixture()) { f in
            func message(_ type: String, stream: String = "downstream", _ attributes: Value) async -> String {
                do {
                    try await f.add(type, stream: stream, attributes)
                    return "accepted"
                } catch let error as ProxyError {
                    return error.message
                } catch {
                    return "\(error)"
                }
            }
            #expect(await message("http_abort", stream: "upstream", ["code": 500]).contains("code matches the response"))
            #expect(await message("http_rewrite", stream: "upstream", ["set_status": 500]).contains("set_status changes the response"))
            #expect(await message("http_rewrite", ["set_method": "DELETE"]).contains("use stream: upstream"))
            #expect(await message("http_rewrite", ["set_status": 204]).contains("set_status 204"))
            #expect(await message("http_abort", ["request_headers": [["name": "x", "regex": "("]]]).contains("not a valid regular expression"))
            #expect(await message("http_reset", ["forward_head": false, "body_bytes": 3]).contains("forward_head: false"))
            #expect(await message("http_body", ["merge_patch": "{not json"]).contains("merge_patch is not JSON"))
            #expect(await message("http_bandwidth", [:]).contains("rate must be more than 0"))
        }
    }

    @Test("In an experiment the same mistakes are load errors at their line and column")
    func loadErrors() throws {
        let errors = try validationErrors(
            """
            title: mapped scenarios
            method:
              - type: action
                name: a
                provider: {type: toxic, proxy: db, toxic: http_abort, stream: upstream, attributes: {code: 500}}
              - type: action
                name: b
                provider: {type: toxic, proxy: db, toxic: http_rewrite, stream: downstream, attributes: {set_path: /v2}}
              - type: action
                name: c
                provider: {type: toxic, proxy: db, toxic: http_abort, attributes: {request_headers: [{name: x, prefx: a}]}}
              - type: action
                name: d
                provider: {type: toxic, proxy: db, toxic: http_body, attributes: {merge_patch: "{oops"}}
            """)
        #expect(
            errors.contains {
                $0.hasPrefix("experiment.yaml:5:") && $0.contains("code matches the response") && $0.contains("use stream: downstream")
            },
            "\(errors)")
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:8:") && $0.contains("use stream: upstream") }, "\(errors)")
        #expect(
            errors.contains { $0.hasPrefix("experiment.yaml:11:") && $0.contains("unknown key \"prefx\" (did you mean \"prefix\"?)") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("experiment.yaml:14:") && $0.contains("merge_patch is not JSON") }, "\(errors)")
    }

    @Test("A mistake inside request_headers is a load error at its own line and column, naming what to write")
    func headerMatcherErrorPositions() throws {
        let errors = try validationErrors(
            """
            title: header matchers
            method:
              - type: action
                name: a
                provider:
                  type: toxic
                  proxy: db
                  toxic: http_abort
                  attributes:
                    status: 503
                    request_headers:
                      - name: X-Foo
                        equalz: "1"
              - type: action
                name: b
                provider: {type: toxic, proxy: db, toxic: http_abort, attributes: {request_headers: {X-Foo: {equalz: "1"}}}}
              - type: action
                name: c
                provider: {type: toxic, proxy: db, toxic: http_abort, attributes: {request_headers: [{name: X-Foo, regex: "("}]}}
            """)
        #expect(
            errors.contains {
                $0.hasPrefix("experiment.yaml:13:13: http_abort: unknown key \"equalz\"") && $0.contains("known keys: contains, ")
                    && $0.contains(" exact, ") && $0.hasSuffix(" at method[0].provider.attributes.request_headers[0].equalz")
            }, "\(errors)")
        #expect(
            errors.contains {
                $0.hasPrefix("experiment.yaml:16:97: http_abort: request_headers: the value of header \"X-Foo\" must be a string")
                    && $0.contains("a matcher goes in a list: request_headers: [{name: X-Foo, exact | prefix")
                    && $0.hasSuffix(" at method[1].provider.attributes.request_headers.X-Foo")
            }, "\(errors)")
        #expect(
            errors.contains {
                $0.hasPrefix("experiment.yaml:19:90: http_abort: \"(\" is not a valid regular expression")
                    && $0.hasSuffix(" at method[2].provider.attributes.request_headers[0]")
            }, "\(errors)")
    }
}
