import FaultlineTestSupport
import FaultlineTesting
import Foundation
import Testing

/// The fuzz targets' regression inputs (Fixtures/fuzz/<target>/: bombs, huge numbers, special
/// files, HTTP requests, and whatever `scripts/fuzz` once found), replayed by the same binary
/// `scripts/fuzz` builds with libFuzzer — built here without it, it runs each input once.
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fuzz")

    @Test("every regression input goes through its target without a crash", arguments: ["loader", "admin-http", "http-framing"])
    func replay(_ target: String) async throws {
        let directory = Self.fixtures.appendingPathComponent(target)
        let inputs = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted().map { directory.appendingPathComponent($0).path }
        #expect(inputs.count >= 5)
        let result = try await run(try BuiltProduct.path("faultline-fuzz"), [target] + inputs)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.stdout.split(separator: "\n").map(String.init) == inputs.map { "ok \($0)" }, "\(result.output)")
    }

    @Test("an unknown target is a usage error")
    func usage() async throws {
        let result = try await run(try BuiltProduct.path("faultline-fuzz"), ["yaml"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("usage: faultline-fuzz loader|admin-http|http-framing"))
    }
}
