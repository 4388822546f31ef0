import FaultlineKit
import FaultlineProxy
import FaultlineTestSupport
import Foundation
import Testing

/// The admin API checks every number against the range an experiment's toxic would have: a value
/// out of range is a 400, never a trap in the proxy (Toxiproxy takes any int64 and overflows).
@Suite("admin API: numbers out of range are 400s")
struct AdminRangeTests {
    /// Every numeric attribute of every toxic the proxy serves, with its range.
    static let attributes: [(toxic: String, attribute: String, range: NumberRange)] = {
        let registry = PluginRegistry(plugins: [ProxyPlugin.self])
        return registry.toxics.values.sorted { $0.type < $1.type }.flatMap { descriptor in
            descriptor.schema.fields.filter(\.readsNumber).map { (descriptor.type, $0.name, $0.range ?? NumberRange(0...0)) }
        }
    }()

    @Test("a toxic attribute out of range: 400 naming the range, and nothing added")
    func attributesOutOfRange() async throws {
        #expect(Self.attributes.count >= 9)
        try await withAdminFixture { fixture in
            let port = fixture.port
            for (toxic, attribute, range) in Self.attributes {
                for value in ["9223372036854775807", "-9223372036854775808", "\(Int64(range.upperBound) + 1)", "\(Int64(range.lowerBound) - 1)"] {
                    let body = #"{"name":"t","type":"\#(toxic)","attributes":{"\#(attribute)":\#(value)}}"#
                    let reply = try await http("POST", port, "/proxies/test/toxics", body: body)
                    #expect(reply.status == 400, "\(body): \(reply.status) \(reply.body)")
                    #expect(reply.json?["error"]?.stringValue?.contains("\(attribute) must be \(range)") == true, "\(body): \(reply.body)")
                }
            }
            #expect(try await http("GET", port, "/proxies/test/toxics").json == [])

            // An update out of range changes nothing.
            #expect(
                try await http("POST", port, "/proxies/test/toxics", body: #"{"name":"slow","type":"latency","attributes":{"latency":10}}"#).status
                    == 200)
            let update = try await http("POST", port, "/proxies/test/toxics/slow", body: #"{"attributes":{"latency":99999999999999999}}"#)
            #expect(update.status == 400, "\(update.body)")
            #expect(try await http("GET", port, "/proxies/test/toxics/slow").json?["attributes"]?["latency"] == 10)
        }
    }

    @Test("any toxicity a float32 holds is taken and echoed, as Toxiproxy takes it: at or above 1 the toxic always applies, at or below 0 never")
    func toxicity() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port
            // Beyond a float32: Go's decoder refuses it, and so does this API.
            let huge = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"latency","toxicity":1e300}"#)
            #expect(huge.status == 400, "\(huge.body)")
            #expect(huge.json?["error"]?.stringValue?.contains("Go struct field ToxicWrapper.toxicity of type float32") == true, "\(huge.body)")
            let upstream = "127.0.0.1:\(fixture.proxies.upstream.port)"
            let created = try await http("POST", port, "/proxies", body: #"{"name":"cut","listen":"127.0.0.1:0","upstream":"\#(upstream)"}"#)
            let listen = try #require(created.json?["listen"]?.stringValue?.split(separator: ":").last.flatMap { Int($0) })
            func echoed() async throws -> String {
                try await blocking {
                    let socket = try TestSocket(port: listen)
                    defer { socket.close() }
                    try socket.send("hello")
                    socket.shutdownWrite()
                    return String(decoding: socket.receiveAll().0, as: UTF8.self)
                }
            }
            // Toxiproxy.Net's tests send 80 (a percentage) and read it back.
            let always = try await http(
                "POST", port, "/proxies/cut/toxics", body: #"{"name":"cut","type":"limit_data","toxicity":80,"attributes":{"bytes":1}}"#)
            #expect(always.status == 200 && always.json?["toxicity"] == 80, "\(always.body)")
            #expect(try await echoed() == "h")
            let never = try await http("POST", port, "/proxies/cut/toxics/cut", body: #"{"toxicity":-1}"#)
            #expect(never.status == 200 && never.json?["toxicity"] == -1, "\(never.body)")
            #expect(try await echoed() == "hello")
        }
    }
}
