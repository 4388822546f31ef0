import FaultlineKit
import FaultlineTesting
import Testing

/// A probe written as its own plugin, as a custom binary lists it.
struct AnswerProbe: ProbePlugin {
    static let type = "test.answer"
    static let summary = "Answers with a number"

    struct Arguments: Codable, Sendable {
        var plus: Int
    }

    func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value { .int(42 + arguments.plus) }
}

@Suite("A probe that is its own plugin")
struct ProbePluginTests {
    @Test("listed as a plugin, it registers itself under its type, named after it")
    func listed() async throws {
        let registry = PluginRegistry(plugins: [AnswerProbe.self])
        #expect(registry.pluginNames == ["test.answer"])
        #expect(registry.providers.keys.contains { $0.type == "test.answer" && $0.kind == .probe })
        #expect(registry.owners["test.answer"] == "test.answer")

        let result = try await TestKit().run(
            yaml: """
                title: t
                method:
                  - {type: probe, name: answer, provider: {type: test.answer, plus: 1}}
                """, plugins: [AnswerProbe.self])
        #expect(result.journals.first?.run.first?.output == 43)
    }
}
