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

    @Test("a toxicity outside 0…1: 400, on create and on update")
    func toxicity() async throws {
        try await withAdminFixture { fixture in
            let port = fixture.port
            for value in ["2", "-0.5", "1e300"] {
                let created = try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"latency","toxicity":\#(value)}"#)
                #expect(created.status == 400, "\(value): \(created.body)")
            }
            #expect(try await http("POST", port, "/proxies/test/toxics", body: #"{"type":"latency","toxicity":0.5}"#).status == 200)
            let updated = try await http("POST", port, "/proxies/test/toxics/latency_downstream", body: #"{"toxicity":7}"#)
            #expect(updated.status == 400)
            #expect(updated.json?["error"]?.stringValue?.contains("toxicity must be 0…1, found 7") == true, "\(updated.body)")
            #expect(try await http("GET", port, "/proxies/test/toxics/latency_downstream").json?["toxicity"] == 0.5)
        }
    }
}
