import FaultlineKit
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
            Issue.record("no golden file \(name); write it with FAULTLINE_UPDATE_GOLDEN=1 swift test --filter FaultlineReportsTests", sourceLocation: sourceLocation)
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

/// Runs external programs (xmllint, the HTML parser) for the tests.
enum Tools {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        // Files, not pipes: a full pipe would block the child while we wait for it.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("out")
        let err = directory.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: out)
        let errHandle = try FileHandle(forWritingTo: err)
        defer {
            try? outHandle.close()
            try? errHandle.close()
        }
        process.standardOutput = outHandle
        process.standardError = errHandle
        try process.run()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus, stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// Finds a program on PATH.
    static func which(_ name: String) -> String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return paths.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// A Python with html5lib: `FAULTLINE_PYTHON`, the package's `.venv` (made by `.ci/run`), or python3 on PATH.
    static func pythonWithHTML5Lib() -> String? {
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["FAULTLINE_PYTHON"] { candidates.append(configured) }
        candidates.append((Fixtures.packageRoot as NSString).appendingPathComponent(".venv/bin/python3"))
        if let python = which("python3") { candidates.append(python) }
        return candidates.first { candidate in
            FileManager.default.isExecutableFile(atPath: candidate) && ((try? run(candidate, ["-c", "import html5lib"]).status) == 0)
        }
    }

    static let setupHint = "run .ci/run once, or: python3 -m venv .venv && .venv/bin/pip install html5lib; apt-get install -y libxml2-utils"
}
