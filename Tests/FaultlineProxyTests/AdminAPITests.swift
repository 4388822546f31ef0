import FaultlineKit
import FaultlineNetwork
import FaultlineProxy
import FaultlineTestSupport
import Foundation
import Testing

/// A raw HTTP/1.1 exchange over a real socket, so status lines, headers and bodies are checked
/// byte for byte.
struct HTTPReply {
    var status: Int
    var headers: [String: String]
    var body: String

    var json: Value? { try? JSONReader.value(body) }
}

/// - Parameters:
///   - host: the `Host` header.
///   - headers: more header fields (`Content-Type` replaces the default `application/json`).
func http(
    _ method: String, _ port: Int, _ path: String, body: String? = nil, userAgent: String = "faultline-tests", host: String = "127.0.0.1",
    headers: [(String, String)] = []
) async throws -> HTTPReply {
    var request = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: \(userAgent)\r\nConnection: close\r\n"
    for (name, value) in headers { request += "\(name): \(value)\r\n" }
    if let body {
        if !headers.contains(where: { $0.0.lowercased() == "content-type" }) { request += "Content-Type: application/json\r\n" }
        request += "Content-Length: \(body.utf8.count)\r\n"
    }
    return try await exchange(port, request + "\r\n" + (body ?? ""))
}

/// Sends raw request bytes and reads one response until the server closes.
func exchange(_ port: Int, _ request: String) async throws -> HTTPReply {
    try await blocking {
        let socket = try TestSocket(port: port)
        defer { socket.close() }
        try socket.send(request)
        let (bytes, _) = socket.receiveAll()
        return try HTTPReply(parsing: String(decoding: bytes, as: UTF8.self))
    }
}

extension HTTPReply {
    /// The first response in `text`.
    init(parsing text: String) throws {
        guard let split = text.range(of: "\r\n\r\n") else { throw SocketFailure("no HTTP response in \"\(text.prefix(200))\"", code: 0) }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        self.init(status: status, headers: headers, body: String(text[split.upperBound...]))
    }
}

/// Runs `body` with a fresh ``AdminFixture`` and closes it before returning, also when `body` throws.
func withAdminFixture<T: Sendable>(_ configuration: AdminServer.Configuration = .init(), _ body: (AdminFixture) async throws -> T) async throws -> T {
    try await closing(try await AdminFixture(configuration), body)
}

/// A request and the answer real Toxiproxy 2.8 gives it (status and body, byte for byte), measured
/// side by side with `toxiproxy-server` v2.8.0.
struct ToxiproxyAnswer: Sendable, CustomTestStringConvertible {
    var method: String
    var path: String
    var body: String?
    var status: Int
    var answer: String

    var testDescription: String { "\(method) \(path) \(body ?? "")" }

    /// Toxiproxy's error body: JSON in text/plain, ending in a newline.
    static func error(_ method: String, _ path: String, _ body: String?, _ status: Int, _ message: String) -> ToxiproxyAnswer {
        let escaped = message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return ToxiproxyAnswer(method: method, path: path, body: body, status: status, answer: "{\"error\":\"\(escaped)\",\"status\":\(status)}\n")
    }

    static let all: [ToxiproxyAnswer] = [
        .error("POST", "/proxies", "{", 400, "bad request body: unexpected EOF"),
        .error("POST", "/proxies", "", 400, "bad request body: EOF"),
        .error("POST", "/proxies", "[]", 400, "bad request body: json: cannot unmarshal array into Go value of type toxiproxy.Proxy"),
        .error("POST", "/proxies", "null", 400, "missing required field: name"),
        .error(
            "POST", "/proxies", #"{"name":5,"upstream":"x:1"}"#, 400,
            "bad request body: json: cannot unmarshal number into Go struct field Proxy.name of type string"),
        .error(
            "POST", "/proxies", #"{"name":"a","upstream":"x:1","enabled":"yes"}"#, 400,
            "bad request body: json: cannot unmarshal string into Go struct field Proxy.enabled of type bool"),
        .error(
            "POST", "/proxies", #"{"name":"a","upstream":"x:1","listen":"nonsense"}"#, 500, "listen tcp: address nonsense: missing port in address"),
        .error("POST", "/proxies", #"{"name":"a","upstream":"x:1","listen":"127.0.0.1:99999"}"#, 500, "listen tcp: address 99999: invalid port"),
        .error("PATCH", "/proxies/test", "{", 400, "bad request body: unexpected EOF"),
        .error(
            "POST", "/proxies/test/toxics", #"{"type":"latncy","stream":"sideways"}"#, 400, "stream was invalid, can be either upstream or downstream"
        ),
        .error("POST", "/proxies/test/toxics", #"{"type":"latency","stream":""}"#, 400, "stream was invalid, can be either upstream or downstream"),
        .error(
            "POST", "/proxies/test/toxics", #"{"type":"latency","attributes":5}"#, 400,
            "bad request body: json: cannot unmarshal number into Go struct field ToxicWrapper.attributes of type toxics.NoopToxic"),
        .error(
            "POST", "/proxies/test/toxics", #"{"type":"latency","attributes":{"latency":"x"}}"#, 400,
            "bad request body: json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of type int64"),
        .error(
            "POST", "/proxies/test/toxics", #"{"type":"latency","attributes":{"latency":1.5}}"#, 400,
            "bad request body: json: cannot unmarshal number 1.5 into Go struct field LatencyToxic.attributes.latency of type int64"),
        .error(
            "POST", "/proxies/test/toxics", #"{"type":"latency","toxicity":"x"}"#, 400,
            "bad request body: json: cannot unmarshal string into Go struct field ToxicWrapper.toxicity of type float32"),
        .error("POST", "/proxies/test/toxics", "[]", 400, "bad request body: json: cannot unmarshal array into Go value of type toxics.ToxicWrapper"),
        ToxiproxyAnswer(method: "POST", path: "/populate", body: "[]", status: 201, answer: #"{"proxies":null}"#),
        ToxiproxyAnswer(method: "POST", path: "/populate", body: "null", status: 201, answer: #"{"proxies":null}"#),
        ToxiproxyAnswer(
            method: "POST", path: "/populate", body: "{}", status: 400,
            answer:
                #"{"error":"bad request body: json: cannot unmarshal object into Go value of type []struct { toxiproxy.Proxy; Enabled *bool \"json:\\\"enabled\\\"\" }","status":400,"proxies":null}"#
        ),
        ToxiproxyAnswer(
            method: "POST", path: "/populate", body: #"[{"name":5}]"#, status: 400,
            answer:
                #"{"error":"bad request body: json: cannot unmarshal number into Go struct field .name of type string","status":400,"proxies":null}"#),
    ]
}

/// An admin server in front of a proxy fixture.
final class AdminFixture: TestResource, Sendable {
    let proxies: ProxyFixture
    let admin: AdminServer

    init(_ configuration: AdminServer.Configuration = .init()) async throws {
        proxies = try await ProxyFixture()
        do {
            admin = try await AdminServer.start(
                api: AdminAPI(server: proxies.server), host: "127.0.0.1", port: 0, group: proxies.group, configuration: configuration)
        } catch {
            await proxies.close()
            throw error
        }
    }

    var port: Int { admin.port }

    func close() async {
        await admin.stop()
        await proxies.close()
    }
}

@Suite("Toxiproxy-compatible admin API over HTTP")
struct AdminAPITests {
    @Test("GET /version answers like Toxiproxy 2.12")
    func version() async throws {
        try await withAdminFixture { fixture in
            let reply = try await http("GET", fixture.port, "/version")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"] == "application/json;charset=utf-8")
            #expect(reply.body == "{\"version\": \"2.12.0\"}\n")
            #expect(reply.headers["x-toxiproxy-request-id"]?.count == 20)
        }
    }

    @Test("proxies: create 201, list as a map, get, update, delete 204, with Toxiproxy's errors")
    func proxies() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port
            let upstream = "127.0.0.1:\(fixture.proxies.upstream.port)"

            // A port below the ephemeral range: the proxy is disabled and enabled below, which rebinds it.
            let listen = "127.0.0.1:\(try FreePort.take())"
            let created = try await http("POST", port, "/proxies", body: #"{"name":"db","listen":"\#(listen)","upstream":"\#(upstream)"}"#)
            #expect(created.status == 201)
            #expect(created.headers["content-type"] == "application/json")
            #expect(created.body == #"{"name":"db","listen":"\#(listen)","upstream":"\#(upstream)","enabled":true,"toxics":[]}"#)

            let duplicate = try await http("POST", port, "/proxies", body: #"{"name":"db","listen":"127.0.0.1:0","upstream":"\#(upstream)"}"#)
            #expect(duplicate.status == 409)
            #expect(duplicate.body == "{\"error\":\"proxy already exists\",\"status\":409}\n")
            #expect(duplicate.headers["content-type"] == "text/plain; charset=utf-8")
            #expect(duplicate.headers["x-content-type-options"] == "nosniff")

            let noName = try await http("POST", port, "/proxies", body: #"{"upstream":"\#(upstream)"}"#)
            #expect(noName.status == 400)
            #expect(noName.body == "{\"error\":\"missing required field: name\",\"status\":400}\n")
            let noUpstream = try await http("POST", port, "/proxies", body: #"{"name":"x"}"#)
            #expect(noUpstream.body == "{\"error\":\"missing required field: upstream\",\"status\":400}\n")
            let badJSON = try await http("POST", port, "/proxies", body: "{nope")
            #expect(badJSON.status == 400)
            #expect(badJSON.json?["error"]?.stringValue?.hasPrefix("bad request body: ") == true)
            let empty = try await http("POST", port, "/proxies", body: "")
            #expect(empty.body == "{\"error\":\"bad request body: EOF\",\"status\":400}\n")
            let wrongType = try await http("POST", port, "/proxies", body: #"{"name":1,"upstream":"x:1"}"#)
            #expect(wrongType.status == 400)
            let taken = try await http("POST", port, "/proxies", body: #"{"name":"other","listen":"\#(listen)","upstream":"\#(upstream)"}"#)
            #expect(taken.status == 500)
            #expect(taken.json?["error"]?.stringValue?.hasPrefix("listen tcp \(listen): ") == true)

            let list = try await http("GET", port, "/proxies")
            #expect(list.status == 200)
            #expect(list.json?["db"]?["upstream"]?.stringValue == upstream)

            let one = try await http("GET", port, "/proxies/db")
            #expect(one.status == 200 && one.json?["name"] == "db")
            let missing = try await http("GET", port, "/proxies/nope")
            #expect(missing.status == 404)
            #expect(missing.body == "{\"error\":\"proxy not found\",\"status\":404}\n")

            for method in ["PATCH", "POST"] {
                let disabled = try await http(method, port, "/proxies/db", body: #"{"enabled":false}"#)
                #expect(disabled.status == 200)
                #expect(disabled.json?["enabled"] == false)
                #expect(disabled.json?["listen"]?.stringValue == listen)
                let enabled = try await http(method, port, "/proxies/db", body: #"{"enabled":true}"#)
                #expect(enabled.json?["enabled"] == true)
                #expect(enabled.json?["listen"]?.stringValue == listen)
            }
            let patchMissing = try await http("PATCH", port, "/proxies/nope", body: #"{"enabled":false}"#)
            #expect(patchMissing.status == 404)
            let badListen = try await http("PATCH", port, "/proxies/db", body: #"{"listen":"nonsense"}"#)
            #expect(badListen.status == 500)
            #expect(badListen.body == "{\"error\":\"address nonsense: missing port in address\",\"status\":500}\n")
            #expect(try await http("GET", port, "/proxies/db").json?["listen"]?.stringValue == listen)

            let deleted = try await http("DELETE", port, "/proxies/db")
            #expect(deleted.status == 204)
            #expect(deleted.body.isEmpty)
            #expect(try await http("DELETE", port, "/proxies/db").status == 404)
        }
    }

    @Test("toxics: defaults, 200 on create, merge on update, 204 on delete, and the errors")
    func toxics() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port

            let created = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"latency","attributes":{"latency":100}}"#)
            #expect(created.status == 200)
            #expect(
                created.body
                    == #"{"attributes":{"latency":100,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}"#)
            let upstreamToxic = try await http(
                "POST", port, "/proxies/test/toxics",
                body: #"{"name":"cut","type":"limit_data","stream":"UpStream","toxicity":0.5,"attributes":{"bytes":10,"unknown":1}}"#)
            #expect(upstreamToxic.status == 200)
            // The stream is parsed ignoring case and echoed as sent (.NET clients send "UpStream"), as Toxiproxy does.
            #expect(upstreamToxic.body == #"{"attributes":{"bytes":10},"name":"cut","type":"limit_data","stream":"UpStream","toxicity":0.5}"#)

            let list = try await http("GET", port, "/proxies/test/toxics")
            #expect(list.json?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["cut", "latency_downstream"])
            #expect(try await http("GET", port, "/proxies/test").json?["toxics"]?.arrayValue?.count == 2)

            let conflict = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"latency","stream":"downstream"}"#)
            #expect(conflict.status == 409)
            #expect(conflict.body == "{\"error\":\"toxic already exists\",\"status\":409}\n")
            let badType = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"latncy"}"#)
            #expect(badType.body == "{\"error\":\"invalid toxic type\",\"status\":400}\n")
            let badStream = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"latency","stream":"sideways"}"#)
            #expect(badStream.body == "{\"error\":\"stream was invalid, can be either upstream or downstream\",\"status\":400}\n")
            let badAttribute = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"bandwidth","attributes":{"rate":"fast"}}"#)
            #expect(badAttribute.status == 400)
            #expect(badAttribute.json?["error"]?.stringValue?.hasPrefix("bad request body: ") == true)
            for body in [
                #"{"type":"bandwidth","attributes":{"rate":-1}}"#, #"{"type":"slicer","attributes":{"average_size":-1}}"#,
                #"{"type":"slicer","attributes":{"average_size":10,"size_variation":-1}}"#,
            ] {
                #expect(try await http("POST", port, "/proxies/test/toxics", body: body).status == 400)
            }
            // Toxiproxy takes a variation at or above the average, and its Node client's own tests
            // send one (`average_size: 1000, size_variation: 1000`).
            let wideBody = #"{"type":"slicer","name":"wide","attributes":{"average_size":1000,"size_variation":1000,"delay":1000}}"#
            let wideSlicer = try await http("POST", port, "/proxies/test/toxics", body: wideBody)
            #expect(wideSlicer.status == 200, "\(wideSlicer.body)")
            #expect(wideSlicer.json?["attributes"]?["size_variation"] == 1000)
            #expect(try await http("DELETE", port, "/proxies/test/toxics/wide").status == 204)
            // A slicer with no attributes (Toxiproxy's defaults, average_size 0) is taken as Toxiproxy
            // takes it, and cuts 1-byte pieces.
            let plain = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"slicer","name":"plain"}"#)
            #expect(plain.status == 200, "\(plain.body)")
            #expect(plain.json?["attributes"] == ["average_size": 0, "size_variation": 0, "delay": 0], "\(plain.body)")
            #expect(try await http("DELETE", port, "/proxies/test/toxics/plain").status == 204)
            #expect(try await http("POST", port, "/proxies/nope/toxics", body: #"{"type":"latency"}"#).status == 404)

            let fetched = try await http("GET", port, "/proxies/test/toxics/latency_downstream")
            #expect(fetched.status == 200 && fetched.json?["type"] == "latency")
            let missing = try await http("GET", port, "/proxies/test/toxics/nope")
            #expect(missing.body == "{\"error\":\"toxic not found\",\"status\":404}\n")

            let updated = try await http(
                "PATCH", port, "/proxies/test/toxics/latency_downstream", body: #"{"attributes":{"jitter":5},"name":"ignored","type":"timeout"}"#)
            #expect(updated.status == 200)
            #expect(
                updated.body
                    == #"{"attributes":{"latency":100,"jitter":5},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}"#)
            let toxicity = try await http("POST", port, "/proxies/test/toxics/latency_downstream", body: #"{"toxicity":0.25}"#)
            #expect(toxicity.json?["toxicity"] == 0.25)
            #expect(toxicity.json?["attributes"]?["jitter"] == 5)
            #expect(try await http("PATCH", port, "/proxies/test/toxics/nope", body: "{}").status == 404)

            #expect(try await http("DELETE", port, "/proxies/test/toxics/latency_downstream").status == 204)
            #expect(try await http("DELETE", port, "/proxies/test/toxics/latency_downstream").status == 404)
            #expect(try await http("DELETE", port, "/proxies/nope/toxics/cut").body == "{\"error\":\"proxy not found\",\"status\":404}\n")
        }
    }

    @Test("populate creates, keeps identical proxies with their toxics, replaces changed ones, and validates first")
    func populate() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port
            let upstream = "127.0.0.1:\(fixture.proxies.upstream.port)"
            let first = try await http(
                "POST", port, "/populate",
                body:
                    #"[{"name":"a","listen":"127.0.0.1:0","upstream":"\#(upstream)"},{"name":"b","listen":"127.0.0.1:0","upstream":"\#(upstream)","enabled":false}]"#
            )
            #expect(first.status == 201)
            let created = try #require(first.json?["proxies"]?.arrayValue)
            #expect(created.map { $0["name"] } == ["a", "b"])
            #expect(created[1]["enabled"] == false)
            let aListen = try #require(created[0]["listen"]?.stringValue)
            #expect(aListen.hasPrefix("127.0.0.1:") && !aListen.hasSuffix(":0"), "port 0 is reported as the port bound")

            _ = try await http("POST", port, "/proxies/a/toxics", body: #"{"type":"latency"}"#)
            let again = try await http("POST", port, "/populate", body: #"[{"name":"a","listen":"\#(aListen)","upstream":"\#(upstream)"}]"#)
            #expect(again.status == 201)
            #expect(again.json?["proxies"]?[0]?["toxics"]?.arrayValue?.count == 1)

            let invalid = try await http("POST", port, "/populate", body: #"[{"name":"c","upstream":"\#(upstream)"},{"name":"d"}]"#)
            #expect(invalid.status == 400)
            #expect(invalid.headers["content-type"] == "application/json")
            #expect(invalid.body == #"{"error":"missing required field: upstream at proxy 2","status":400,"proxies":null}"#)
            #expect(try await http("GET", port, "/proxies/c").status == 404)

            let notArray = try await http("POST", port, "/populate", body: #"{"name":"a"}"#)
            #expect(notArray.status == 400)

            let clash = try await http(
                "POST", port, "/populate",
                body:
                    #"[{"name":"e","listen":"127.0.0.1:0","upstream":"\#(upstream)"},{"name":"f","listen":"\#(aListen)","upstream":"\#(upstream)"}]"#)
            #expect(clash.status == 500)
            #expect(clash.json?["proxies"]?.arrayValue?.map { $0["name"] } == ["e"])
        }
    }

    @Test("status and body are Toxiproxy 2.8's, byte for byte", arguments: ToxiproxyAnswer.all)
    func toxiproxyAnswers(_ case_: ToxiproxyAnswer) async throws {
        try await withAdminFixture { fixture in
            let reply = try await http(case_.method, fixture.port, case_.path, body: case_.body)
            #expect(reply.status == case_.status)
            #expect(reply.body == case_.answer)
        }
    }

    @Test("a toxic with null or absent attributes gets Toxiproxy's zero attributes; an update with null ones keeps them")
    func nullAttributes() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port
            let created = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"latency","attributes":null,"toxicity":null}"#)
            #expect(created.status == 200)
            #expect(
                created.body
                    == #"{"attributes":{"latency":0,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}"#)
            let absent = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"limit_data","stream":"upstream"}"#)
            #expect(absent.body == #"{"attributes":{"bytes":0},"name":"limit_data_upstream","type":"limit_data","stream":"upstream","toxicity":1}"#)
            _ = try await http(
                "PATCH", port, "/proxies/test/toxics/latency_downstream", body: #"{"attributes":{"latency":7,"jitter":3},"toxicity":0.5}"#)
            for body in [#"{"attributes":null}"#, "{}", #"{"attributes":{"latency":null}}"#, #"{"toxicity":null}"#, "null"] {
                let kept = try await http("PATCH", port, "/proxies/test/toxics/latency_downstream", body: body)
                #expect(kept.status == 200, "\(body)")
                #expect(kept.json?["attributes"] == ["latency": 7, "jitter": 3], "\(body)")
                #expect(kept.json?["toxicity"] == 0.5, "\(body)")
            }
        }
    }

    @Test("a listen conflict names the resolved address, as Go's net.Listen does")
    func listenConflict() async throws {
        try await withAdminFixture { fixture in
            let taken = fixture.proxies.proxyPort
            let reply = try await http(
                "POST", fixture.port, "/proxies", body: #"{"name":"b","listen":"localhost:\#(taken)","upstream":"127.0.0.1:1"}"#)
            #expect(reply.status == 500)
            #expect(reply.body == "{\"error\":\"listen tcp 127.0.0.1:\(taken): bind: address already in use\",\"status\":500}\n")
            // Naming the bound address by another name changes nothing and reports the bound one.
            let same = try await http("PATCH", fixture.port, "/proxies/test", body: #"{"listen":"localhost:\#(taken)"}"#)
            #expect(same.json?["listen"] == .string("127.0.0.1:\(taken)"))
        }
    }

    @Test("every address (0.0.0.0, none, ::) is one dual-stack listener shown as [::]:port, as Go's net.Listen makes it")
    func everyAddressListen() async throws {
        try await withAdminFixture { fixture in
            let upstream = "127.0.0.1:\(fixture.proxies.upstream.port)"
            for (index, host) in ["0.0.0.0", "", "[::]"].enumerated() {
                let port = try FreePort.take()
                let created = try await http(
                    "POST", fixture.port, "/proxies", body: #"{"name":"every\#(index)","listen":"\#(host):\#(port)","upstream":"\#(upstream)"}"#)
                #expect(created.status == 201, "\(created.body)")
                #expect(created.json?["listen"] == .string("[::]:\(port)"), "\(created.body)")
                // IPv4 and IPv6 clients both reach the upstream's echo through it.
                for client in ["127.0.0.1", "::1"] {
                    let echoed = try await blocking {
                        let socket = try TestSocket(host: client, port: port)
                        defer { socket.close() }
                        try socket.send("ping")
                        return socket.receive(count: 4).0
                    }
                    #expect(echoed == Array("ping".utf8), "\(client) → \(host):\(port)")
                }
                // Another spelling of every address is the same socket: Go's words for the conflict name it as written.
                let again = try await http(
                    "POST", fixture.port, "/proxies", body: #"{"name":"again\#(index)","listen":"0.0.0.0:\#(port)","upstream":"\#(upstream)"}"#)
                #expect(again.body == "{\"error\":\"listen tcp 0.0.0.0:\(port): bind: address already in use\",\"status\":500}\n")
                // Populate names it 0.0.0.0 and keeps it, as it keeps `localhost` for 127.0.0.1.
                let kept = try await http(
                    "POST", fixture.port, "/populate", body: #"[{"name":"every\#(index)","listen":"0.0.0.0:\#(port)","upstream":"\#(upstream)"}]"#)
                #expect(kept.status == 201 && kept.json?["proxies"]?[0]?["listen"] == .string("[::]:\(port)"), "\(kept.body)")
            }
        }
    }

    @Test("an unclean path is redirected, and only requests that reach an endpoint get a request id")
    func routerDetails() async throws {
        try await withAdminFixture { fixture in
            let redirect = try await http("GET", fixture.port, "//proxies?x=1")
            #expect(redirect.status == 301)
            #expect(redirect.headers["location"] == "/proxies?x=1")
            #expect(try await http("GET", fixture.port, "/nope").headers["x-toxiproxy-request-id"] == nil)
            #expect(try await http("GET", fixture.port, "/proxies").headers["x-toxiproxy-request-id"]?.count == 20)
        }
    }

    @Test("populate creates each proxy with its toxics (our extension), checks them first, and keeps Toxiproxy's add-or-replace")
    func populateWithToxics() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port
            let upstream = "127.0.0.1:\(fixture.proxies.upstream.port)"
            let listen = "127.0.0.1:\(try FreePort.take())"
            let entry =
                #"{"name":"db","listen":"\#(listen)","upstream":"\#(upstream)","toxics":[{"type":"latency","attributes":{"latency":150}},{"name":"cut","type":"limit_data","attributes":{"bytes":4}}]}"#
            let created = try await http("POST", port, "/populate", body: "[\(entry)]")
            #expect(created.status == 201)
            let toxics = try #require(created.json?["proxies"]?[0]?["toxics"]?.arrayValue)
            #expect(toxics.map { $0["name"] } == ["latency_downstream", "cut"])

            // The toxics act on the first connection: the echo is late, and cut after 4 bytes.
            let proxyPort = try #require(Int(listen.split(separator: ":")[1]))
            let (bytes, elapsed) = try await blocking {
                let socket = try TestSocket(port: proxyPort)
                defer { socket.close() }
                let start = monotonicSeconds()
                try socket.send("abcdefgh")
                let (bytes, _) = socket.receiveAll()
                return (bytes, monotonicSeconds() - start)
            }
            #expect(String(decoding: bytes, as: UTF8.self) == "abcd")
            #expect(elapsed >= 0.15)

            // A bad toxic fails the whole request, and nothing is applied.
            let bad = try await http(
                "POST", port, "/populate",
                body:
                    #"[{"name":"new","listen":"127.0.0.1:0","upstream":"\#(upstream)"},{"name":"db2","upstream":"\#(upstream)","toxics":[{"type":"latncy"}]}]"#
            )
            #expect(bad.status == 400)
            #expect(bad.body == #"{"error":"invalid toxic type at proxy 2, toxic 1","status":400,"proxies":null}"#)
            #expect(try await http("GET", port, "/proxies/new").status == 404)
            let duplicate = try await http(
                "POST", port, "/populate", body: #"[{"name":"x","upstream":"\#(upstream)","toxics":[{"type":"noop"},{"type":"noop"}]}]"#)
            #expect(duplicate.json?["error"] == "toxic already exists at proxy 1, toxic 2")
            #expect(duplicate.status == 400)

            // The same proxy again without `toxics` is kept as it is, toxics included (Toxiproxy's
            // add-or-replace); with `toxics`, its toxics become the listed ones.
            let kept = try await http("POST", port, "/populate", body: #"[{"name":"db","listen":"\#(listen)","upstream":"\#(upstream)"}]"#)
            #expect(kept.json?["proxies"]?[0]?["toxics"]?.arrayValue?.count == 2)
            let listed = try await http(
                "POST", port, "/populate", body: #"[{"name":"db","listen":"\#(listen)","upstream":"\#(upstream)","toxics":[{"type":"noop"}]}]"#)
            #expect(listed.json?["proxies"]?[0]?["toxics"]?.arrayValue?.map { $0["name"] } == ["noop_downstream"])
            #expect(try await http("GET", port, "/proxies/db/toxics").json?.arrayValue?.count == 1)
        }
    }

    @Test("an upstream without a port is taken, as Toxiproxy stores it, and each client is closed at once; attribute keys match in any case")
    func clientsOwnTestData() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port
            // Toxiproxy.Net's tests: upstreams such as "one.com" and "google.com", never dialled.
            let created = try await http(
                "POST", port, "/proxies", body: #"{"Name":"one","Listen":"127.0.0.1:0","Upstream":"one.com","Enabled":true}"#)
            #expect(created.status == 201, "\(created.body)")
            #expect(created.json?["upstream"] == "one.com" && created.json?["enabled"] == true)
            let populated = try await http("POST", port, "/populate", body: #"[{"name":"two","listen":"127.0.0.1:0","upstream":"localhost"}]"#)
            #expect(populated.status == 201 && populated.json?["proxies"]?[0]?["upstream"] == "localhost", "\(populated.body)")
            let moved = try await http("POST", port, "/proxies/two", body: #"{"upstream":"google.com"}"#)
            #expect(moved.status == 200 && moved.json?["upstream"] == "google.com", "\(moved.body)")
            // A connection to such a proxy is closed at once, as when the upstream refuses.
            let listen = try #require(created.json?["listen"]?.stringValue?.split(separator: ":").last.flatMap { Int($0) })
            let end = try await blocking {
                let socket = try TestSocket(port: listen, timeout: 5)
                defer { socket.close() }
                let (bytes, end) = socket.receiveAll()
                return (bytes.count, end)
            }
            #expect(end.0 == 0 && end.1 == .eof, "\(end)")
            // Moved back to a real upstream, the proxy carries traffic.
            let fixed = try await http("POST", port, "/proxies/one", body: #"{"upstream":"127.0.0.1:\#(fixture.proxies.upstream.port)"}"#)
            #expect(fixed.status == 200)

            // Go matches JSON keys to a toxic's fields ignoring case (Json.NET sends "Latency"); a
            // later spelling wins, and keys of no field are ignored.
            let latency = try await http(
                "POST", port, "/proxies/one/toxics",
                body: #"{"Attributes":{"Latency":5,"Jitter":10},"Type":"latency","Name":"slow","Stream":"UpStream"}"#)
            #expect(latency.json?["attributes"] == ["latency": 5, "jitter": 10], "\(latency.body)")
            let twice = try await http(
                "POST", port, "/proxies/one/toxics", body: #"{"type":"latency","name":"y","attributes":{"latency":1,"LATENCY":7,"Latencyy":9}}"#)
            #expect(twice.json?["attributes"] == ["latency": 7, "jitter": 0], "\(twice.body)")
            let rate = try await http("POST", port, "/proxies/one/toxics", body: #"{"type":"bandwidth","attributes":{"Rate":100}}"#)
            #expect(rate.status == 200 && rate.json?["attributes"]?["rate"] == 100, "\(rate.body)")
            let updated = try await http("POST", port, "/proxies/one/toxics/slow", body: #"{"attributes":{"JITTER":3}}"#)
            #expect(updated.json?["attributes"] == ["latency": 5, "jitter": 3], "\(updated.body)")
            // The stream stays as it was sent, through updates and in listings.
            #expect(updated.json?["stream"] == "UpStream", "\(updated.body)")
            let listed = try await http("GET", port, "/proxies/one")
            #expect(listed.json?["toxics"]?.arrayValue?.first { $0["name"] == "slow" }?["stream"] == "UpStream", "\(listed.body)")
            let defaultName = try await http("POST", port, "/proxies/one/toxics", body: #"{"type":"timeout","stream":"DOWNSTREAM"}"#)
            #expect(defaultName.json?["name"] == "timeout_DOWNSTREAM" && defaultName.json?["stream"] == "DOWNSTREAM", "\(defaultName.body)")
            let slicer = try await http(
                "POST", port, "/proxies/one/toxics", body: #"{"type":"slicer","name":"s","attributes":{"Average_Size":10,"averagesize":3,"Delay":5}}"#
            )
            #expect(slicer.json?["attributes"] == ["average_size": 10, "size_variation": 0, "delay": 5], "\(slicer.body)")
        }
    }

    @Test("reset removes every toxic and enables every proxy")
    func reset() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port
            _ = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"latency"}"#)
            _ = try await http("PATCH", port, "/proxies/test", body: #"{"enabled":false}"#)
            let reset = try await http("POST", port, "/reset")
            #expect(reset.status == 204)
            let proxy = try await http("GET", port, "/proxies/test")
            #expect(proxy.json?["enabled"] == true)
            #expect(proxy.json?["toxics"] == .array([]))
        }
    }

    @Test("routing: 404 for unknown paths, 405 for wrong methods, 403 for browsers")
    func routing() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port
            let unknown = try await http("GET", port, "/nope")
            #expect(unknown.status == 404)
            #expect(unknown.body == "404 page not found\n")
            #expect(unknown.headers["content-type"] == "text/plain; charset=utf-8")
            #expect(try await http("GET", port, "/proxies/test/toxics/a/b").status == 404)
            let wrongMethod = try await http("PUT", port, "/proxies")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.body.isEmpty)
            #expect(try await http("DELETE", port, "/reset").status == 405)
            #expect(try await http("GET", port, "/populate").status == 405)
            let browser = try await http("GET", port, "/proxies", userAgent: "Mozilla/5.0 (X11; Linux x86_64)")
            #expect(browser.status == 403)
            #expect(browser.body == "User agent not allowed\n")
        }
    }

    @Test("GET /metrics counts bytes per proxy and direction while connections are open")
    func metrics() async throws {
        try await withAdminFixture { fixture in
            _ = try await http("POST", fixture.port, "/proxies/test/toxics", body: #"{"type":"latency","attributes":{"latency":1}}"#)
            let socket = try await fixture.proxies.connect()
            defer { socket.close() }
            _ = try await ToxicBehaviourTests.roundTrip(socket, "0123456789")
            let reply = try await http("POST", fixture.port, "/metrics")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            let lines = reply.body.split(separator: "\n").map(String.init)
            let labels = "listener=\"127.0.0.1:\(fixture.proxies.proxyPort)\",proxy=\"test\",upstream=\"127.0.0.1:\(fixture.proxies.upstream.port)\""
            #expect(lines.contains("toxiproxy_proxy_received_bytes_total{direction=\"upstream\",\(labels)} 10"))
            #expect(lines.contains("toxiproxy_proxy_sent_bytes_total{direction=\"downstream\",\(labels)} 10"))
            #expect(lines.contains("toxiproxy_proxy_connections_open{proxy=\"test\"} 1"))
            #expect(
                lines.contains(
                    "toxiproxy_proxy_toxic_toxicity{proxy=\"test\",stream=\"downstream\",toxic=\"latency_downstream\",type=\"latency\"} 1.0"))
        }
    }
}
