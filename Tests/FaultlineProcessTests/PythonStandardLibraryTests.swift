import FaultlineKit
import FaultlineProcess
import FaultlineTesting
import Foundation
import Testing

/// `os`, `os.path` and `shutil` functions in `python` providers, run natively: each call runs in
/// a fresh directory, and its return value (or the error line Chaos Toolkit would journal) and
/// what it leaves on disk are compared with Python's own, run on an identical directory.
@Suite("Python's os, os.path and shutil functions without Python")
struct PythonStandardLibraryTests {
    struct Call: CustomTestStringConvertible, Sendable {
        let module: String
        let function: String
        /// Arguments; `DIR` in a string is the directory the call runs in.
        let arguments: Value
        var testDescription: String { "\(module).\(function)(\(arguments))" }

        init(_ module: String, _ function: String, _ arguments: Value) {
            self.module = module
            self.function = function
            self.arguments = arguments
        }
    }

    static let calls: [Call] = [
        Call("os.path", "exists", ["path": "DIR/a.txt"]),
        Call("os.path", "exists", ["path": "DIR/missing"]),
        Call("os.path", "exists", ["path": "DIR/sub"]),
        Call("os.path", "isfile", ["path": "DIR/a.txt"]),
        Call("os.path", "isfile", ["path": "DIR/sub"]),
        Call("os.path", "isdir", ["s": "DIR/sub"]),
        Call("os.path", "isdir", ["s": "DIR/a.txt"]),
        Call("os.path", "islink", ["path": "DIR/link"]),
        Call("os.path", "islink", ["path": "DIR/a.txt"]),
        Call("os.path", "getsize", ["filename": "DIR/a.txt"]),
        Call("os.path", "getsize", ["filename": "DIR/missing"]),
        Call("os", "remove", ["path": "DIR/a.txt"]),
        Call("os", "remove", ["path": "DIR/missing"]),
        Call("os", "remove", ["path": "DIR/sub"]),
        Call("os", "unlink", ["path": "DIR/link"]),
        Call("os", "rename", ["src": "DIR/a.txt", "dst": "DIR/b.txt"]),
        Call("os", "rename", ["src": "DIR/missing", "dst": "DIR/b.txt"]),
        Call("os", "replace", ["src": "DIR/a.txt", "dst": "DIR/sub/inner.txt"]),
        Call("os", "mkdir", ["path": "DIR/new"]),
        Call("os", "mkdir", ["path": "DIR/sub"]),
        Call("os", "makedirs", ["name": "DIR/x/y/z"]),
        Call("os", "makedirs", ["name": "DIR/sub"]),
        Call("os", "makedirs", ["name": "DIR/sub", "exist_ok": true]),
        Call("os", "rmdir", ["path": "DIR/empty"]),
        Call("os", "rmdir", ["path": "DIR/sub"]),
        Call("os", "listdir", ["path": "DIR/sub"]),
        Call("os", "listdir", ["path": "DIR/missing"]),
        Call("os", "getenv", ["key": "FAULTLINE_NOT_SET_ANYWHERE"]),
        Call("os", "getenv", ["key": "FAULTLINE_NOT_SET_ANYWHERE", "default": "fallback"]),
        Call("shutil", "copyfile", ["src": "DIR/a.txt", "dst": "DIR/c.txt"]),
        Call("shutil", "copyfile", ["src": "DIR/missing", "dst": "DIR/c.txt"]),
        Call("shutil", "copy", ["src": "DIR/a.txt", "dst": "DIR/sub"]),
        Call("shutil", "move", ["src": "DIR/a.txt", "dst": "DIR/empty"]),
        Call("shutil", "move", ["src": "DIR/sub/inner.txt", "dst": "DIR/moved.txt"]),
        Call("shutil", "rmtree", ["path": "DIR/sub"]),
        Call("shutil", "rmtree", ["path": "DIR/missing"]),
        Call("shutil", "rmtree", ["path": "DIR/missing", "ignore_errors": true]),
    ]

    /// a.txt, sub/inner.txt, empty/ and link → a.txt.
    static func makeDirectory() throws -> ScratchDirectory {
        let directory = try ScratchDirectory(prefix: "faultline-pystd")
        try directory.write("a.txt", "hello\n")
        try directory.write("sub/inner.txt", "inner\n")
        try FileManager.default.createDirectory(atPath: directory.path("empty"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: directory.path("link"), withDestinationPath: directory.path("a.txt"))
        return directory
    }

    /// What a call gave: its return value, or the error line.
    enum Outcome: Equatable, Sendable, CustomStringConvertible {
        case returned(Value)
        case raised(String)
        var description: String {
            switch self {
            case .returned(let value): "returned \(value)"
            case .raised(let line): "raised \(line)"
            }
        }
    }

    static func faultline(_ call: Call, in directory: ScratchDirectory) async -> Outcome {
        let registry = PluginRegistry(plugins: [ProcessPlugin.self])
        guard let descriptor = registry.provider("python:\(call.module).\(call.function)", kind: .probe) else {
            return .raised("not registered")
        }
        let arguments = call.arguments.mapStrings { .string($0.replacingOccurrences(of: "DIR", with: directory.url.path)) }
        do {
            let invocation = try descriptor.prepare(SourceNode(arguments, at: nil), path: .root, sink: nil, registry: registry)
            let output = try await invocation(.standalone())
            return .returned(output.mapStrings { .string($0.replacingOccurrences(of: directory.url.path, with: "DIR")) })
        } catch let failure as ActivityFailure {
            return .raised(failure.message.replacingOccurrences(of: directory.url.path, with: "DIR"))
        } catch {
            return .raised("\(error)")
        }
    }

    /// Files and directories under a directory, with file contents, as `path=content` lines.
    static func tree(_ directory: ScratchDirectory) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: directory.url.path)
        var entries: [String] = []
        while let relative = enumerator?.nextObject() as? String {
            let full = directory.path(relative)
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory)
            let content = isDirectory.boolValue ? "/" : ((try? String(contentsOfFile: full, encoding: .utf8)) ?? "?")
            entries.append("\(relative)=\(content)")
        }
        return entries.sorted()
    }

    @Test(
        "return values and errors, as Python gives them",
        arguments: [
            (0, Outcome.returned(true)), (1, .returned(false)), (5, .returned(true)), (9, .returned(6)),
            (10, .raised("FileNotFoundError: [Errno 2] No such file or directory: 'DIR/missing'")),
            (11, .returned(nil)),
            (13, .raised("IsADirectoryError: [Errno 21] Is a directory: 'DIR/sub'")),
            (16, .raised("FileNotFoundError: [Errno 2] No such file or directory: 'DIR/missing' -> 'DIR/b.txt'")),
            (19, .raised("FileExistsError: [Errno 17] File exists: 'DIR/sub'")),
            (24, .raised("OSError: [Errno 39] Directory not empty: 'DIR/sub'")),
            (25, .returned(["inner.txt"])), (28, .returned("fallback")), (31, .returned("DIR/sub/a.txt")), (32, .returned("DIR/empty/a.txt")),
        ])
    func outcomes(_ index: Int, _ expected: Outcome) async throws {
        let directory = try Self.makeDirectory()
        #expect(await Self.faultline(Self.calls[index], in: directory) == expected, "\(Self.calls[index])")
    }

    @Test(
        "Python agrees on every call: what it returns or raises, and what it leaves on disk",
        .enabled(if: ChaosToolkitOracle.isAvailable, "\(ChaosToolkitOracle.missing)"))
    func pythonAgrees() async throws {
        try ChaosToolkitOracle.require()
        let script = """
            import importlib, json, sys, traceback
            request = json.load(sys.stdin)
            function = getattr(importlib.import_module(request["module"]), request["function"])
            try:
                print(json.dumps({"returned": function(**request["arguments"])}))
            except Exception as x:
                print(json.dumps({"raised": traceback.format_exception_only(type(x), x)[0].strip()}))
            """
        for call in Self.calls {
            let ours = try Self.makeDirectory()
            let theirs = try Self.makeDirectory()
            let outcome = await Self.faultline(call, in: ours)
            let arguments = call.arguments.mapStrings { .string($0.replacingOccurrences(of: "DIR", with: theirs.url.path)) }
            let request: Value = ["module": .string(call.module), "function": .string(call.function), "arguments": arguments]
            let answer = try JSONReader.value(try ChaosToolkitOracle.runPython(script, input: JSONWriter.string(request, pretty: false)))
            let python: Outcome =
                if let line = answer["raised"]?.stringValue { .raised(line.replacingOccurrences(of: theirs.url.path, with: "DIR")) } else {
                    .returned((answer["returned"] ?? .null).mapStrings { .string($0.replacingOccurrences(of: theirs.url.path, with: "DIR")) })
                }
            #expect(outcome == python, "\(call)")
            #expect(Self.tree(ours) == Self.tree(theirs), "what \(call) left on disk")
        }
    }
}
