import FaultlineKit
import FaultlineTesting
import Testing

@Suite("What providers declare to the engine")
struct ProviderContractTests {
    @Test("a tolerance probe's output is judged by its provider's contract, never by the keys it happens to have")
    func toleranceProbeByContract() async throws {
        let kit = TestKit()
        // A process or an HTTP output would say "exit 1" or "no 2xx" here; test.probe declares no
        // success rule, so its output is judged by truthiness, whatever its keys.
        for (value, outcome) in [("{status: 1, stdout: \"\"}", Outcome.completed), ("{status: 500, headers: {}}", .completed), ("false", .failed)] {
            let result = try await kit.run(
                yaml: """
                    title: t
                    steady-state-hypothesis:
                      title: h
                      probes:
                        - type: probe
                          name: p
                          provider: {type: test.probe, value: 1}
                          tolerance: {type: probe, name: judge, provider: {type: test.probe, value: \(value)}}
                    method: []
                    """)
            #expect(result.journals[0].outcome == outcome, "\(value)")
        }
    }
}
