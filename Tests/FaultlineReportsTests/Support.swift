import FaultlineKit
import FaultlineTestSupport
import Foundation
import Testing

/// Paths of the fixtures, golden files and the external tools the tests use.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func path(_ relative: String) -> String { (directory as NSString).appendingPathComponent(relative) }

    static func journal(_ relative: String) throws -> Journal { try Journal.load(path: path("journals/" + relative)) }

    /// The suite run's journals, in run order.
    static func suiteJournals(_ name: String = "suite") throws -> [Journal] {
        let folder = path("journals/" + name)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".json") }.sorted()
        return try names.map { try Journal.load(path: (folder as NSString).appendingPathComponent($0)) }
    }

    /// Rewrite golden files instead of comparing: `FAULTLINE_UPDATE_GOLDEN=1 swift test --filter FaultlineReportsTests`.
    static var updatingGolden: Bool { ProcessInfo.processInfo.environment["FAULTLINE_UPDATE_GOLDEN"] == "1" }

    /// Compares `text` with the golden file `golden/NAME`, or rewrites it when updating.
    static func expectGolden(_ text: String, _ name: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        let file = path("golden/" + name)
        if updatingGolden {
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            return
        }
        guard let expected = try? String(contentsOfFile: file, encoding: .utf8) else {
            Issue.record(
                "no golden file \(name); write it with FAULTLINE_UPDATE_GOLDEN=1 swift test --filter FaultlineReportsTests",
                sourceLocation: sourceLocation)
            return
        }
        if expected == text { return }
        let a = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let b = text.split(separator: "\n", omittingEmptySubsequences: false)
        let line = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
        Issue.record(
            """
            \(name) differs from the golden file at line \(line + 1) (update deliberately with FAULTLINE_UPDATE_GOLDEN=1):
              golden: \(line < a.count ? String(a[line]) : "<end of file>")
              actual: \(line < b.count ? String(b[line]) : "<end of file>")
            """, sourceLocation: sourceLocation)
    }
}

/// The external tools the report tests check their output with (xmllint, a Python with html5lib).
enum Tools {
    /// A Python with html5lib: `FAULTLINE_PYTHON`, the package's `.venv` (made by `.ci/run`), or python3 on PATH.
    static func pythonWithHTML5Lib() async -> String? {
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["FAULTLINE_PYTHON"] { candidates.append(configured) }
        candidates.append((Fixtures.packageRoot as NSString).appendingPathComponent(".venv/bin/python3"))
        if let python = installed("python3") { candidates.append(python) }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            if (try? await run(candidate, ["-c", "import html5lib"]).status) == 0 { return candidate }
        }
        return nil
    }

    static let setupHint = "run .ci/run once, or: python3 -m venv .venv && .venv/bin/pip install html5lib; apt-get install -y libxml2-utils"
}
