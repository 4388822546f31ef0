import FaultlineKit
import FaultlineTesting
import Foundation
import Testing

/// Values as Chaos Toolkit's Python reads them: numbers written as text.
@Suite("Python's reading and writing of values")
struct PythonCompatibilityTests {
    struct Typed: Decodable {
        var port: Int
        var ratio: Double
    }

    @Test("a declared number takes a string that is exactly a number", arguments: [
        (#"{port: "8080", ratio: "0.25"}"#, 8080, 0.25),
        (#"{port: "-1", ratio: "1e3"}"#, -1, 1000),
        (#"{port: "+7", ratio: "5"}"#, 7, 5),
        ("{port: 8080, ratio: 0.5}", 8080, 0.5),
    ])
    func numbersAsText(_ yaml: String, _ port: Int, _ ratio: Double) throws {
        let node = try DocumentLoader.parse(yaml, format: .yaml, file: "t.yaml")
        let typed = try NodeDecoder().decode(Typed.self, from: node)
        #expect(typed.port == port)
        #expect(typed.ratio == ratio)
    }

    @Test("text that is not exactly a number is still an error at its position", arguments: [
        #"{port: "80 80", ratio: 1}"#, #"{port: "8080.5", ratio: 1}"#, #"{port: "0x50", ratio: 1}"#, #"{port: 1, ratio: "inf"}"#,
        #"{port: " 8080", ratio: 1}"#, #"{port: 1, ratio: "1,5"}"#,
    ])
    func notNumbers(_ yaml: String) throws {
        let node = try DocumentLoader.parse(yaml, format: .yaml, file: "t.yaml")
        #expect {
            try NodeDecoder().decode(Typed.self, from: node)
        } throws: { error in
            "\(error)".contains("t.yaml:1:") && "\(error)".contains("expected")
        }
    }
}
