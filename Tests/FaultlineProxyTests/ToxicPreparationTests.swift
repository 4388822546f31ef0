import FaultlineKit
import FaultlineProxy
import Synchronization
import Testing

/// `counted`: a pass-through toxic that counts how often its attributes are decoded.
struct CountedToxic: Toxic {
    static let type = "counted"
    static let summary = "Pass everything through, counting attribute decodes"
    static let decodes = Atomic<Int>(0)

    struct Attributes: Codable, Sendable {
        var level: Int

        init(from decoder: any Decoder) throws {
            CountedToxic.decodes.add(1, ordering: .relaxed)
            level = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(Int.self, forKey: .level) ?? 0
        }
    }

    static func makeStage(_ attributes: Attributes, random: SeededRandom) -> any ToxicStage { PassThrough() }

    final class PassThrough: ToxicStage {
        func receive(_ chunk: ToxicChunk, link: any ToxicLink) { link.forward(chunk) }
        func stop(link: any ToxicLink) {}
        func update(_ attributes: any Sendable, link: any ToxicLink) {}
    }
}

enum CountedToxicPlugin: FaultlinePlugin {
    static let name = "counted-toxic"
    static func register(into registry: inout PluginRegistry) { registry.register(toxic: CountedToxic.self) }
}

@Suite("A toxic's attributes are decoded once per definition")
struct ToxicPreparationTests {
    @Test("the toxic action's decoded attributes reach the in-process proxy, which does not decode them again")
    func decodedOnce() async throws {
        let result = try await runSuite(
            """
            name: s
            proxies: [{name: db, upstream: "127.0.0.1:9"}]
            experiments:
              - title: t
                method:
                  - {type: action, name: fault, provider: {type: toxic, proxy: db, toxic: counted, attributes: {level: 3}}}
            """, plugins: [CountedToxicPlugin.self])
        #expect(result.exitCode == 0)
        #expect(result.journals.first?.run.first?.output?["attributes"] == ["level": 3])
        // Once when the plan is validated, once when the activity is prepared to run; the proxy
        // takes the prepared attributes as they are.
        #expect(CountedToxic.decodes.load(ordering: .relaxed) == 2)
    }
}
