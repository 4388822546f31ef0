// Fuzz targets for what reads untrusted bytes: the experiment/suite loader (`faultline validate`),
// the admin API's request parser, and the proxy's HTTP framing of what clients and servers send.
// Built by scripts/fuzz with `-sanitize=fuzzer` (libFuzzer) in a build directory of its own; an
// ordinary build makes the same binary replay inputs, so a crash a fuzzer found is reproduced with
// `faultline-fuzz loader crash-…`.
import FaultlineCLI
import FaultlineKit
import FaultlineProxy
import Foundation

/// The inputs a target reads, by name.
enum Target: String, CaseIterable {
    /// Experiment and suite documents, YAML and JSON, through the whole validation of a run's plan.
    case loader
    /// HTTP/1.1 requests as the admin API reads them off a connection.
    case adminHTTP = "admin-http"
    /// Either direction of a proxied connection carrying HTTP toxics, in reads of any size.
    case httpFraming = "http-framing"

    func run(_ bytes: UnsafeBufferPointer<UInt8>) {
        switch self {
        case .loader: Loader.shared.validate(bytes)
        case .adminHTTP: AdminRequests.parse(bytes)
        case .httpFraming: ProxyStreams.frame(bytes)
        }
    }
}

/// Validates documents as `faultline validate` does: written to a file in a directory of its own
/// (a suite's relative experiment paths resolve there), loaded with every built-in plugin.
final class Loader: @unchecked Sendable {
    // One fuzzing thread uses it.
    static let shared = Loader()
    let directory: String
    let runner = SuiteRunner(registry: PluginRegistry(plugins: Faultline.builtins))

    init() {
        directory = NSTemporaryDirectory() + "faultline-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func validate(_ bytes: UnsafeBufferPointer<UInt8>) {
        let data = Data(buffer: bytes)
        // JSON and YAML both: a document that starts like JSON is read as each.
        let first = bytes.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
        var names = ["fuzz.yaml"]
        if first == UInt8(ascii: "{") || first == UInt8(ascii: "[") { names.append("fuzz.json") }
        for name in names {
            let path = directory + "/" + name
            guard FileManager.default.createFile(atPath: path, contents: data) else { fatalError("cannot write \(path)") }
            do {
                _ = try runner.load(path: path, options: SuiteRunner.Options())
            } catch let error as ValidationError {
                // Every error names its place or is about the file as a whole.
                for diagnostic in error.diagnostics where diagnostic.severity == .error {
                    _ = diagnostic.description
                }
            } catch {
                fatalError("load threw something other than a ValidationError: \(error)")
            }
        }
    }

    func removeDirectory() { try? FileManager.default.removeItem(atPath: directory) }
}

/// Parses requests as the admin server does, and checks what it answers is consistent.
enum AdminRequests {
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) {
        let limits = AdminHTTPParser.Limits(headBytes: 2048, headerCount: 20, bodyBytes: 4096)
        switch AdminHTTPParser.parse(bytes, limits: limits) {
        case .complete(let request, let consumed):
            precondition(consumed > 0 && consumed <= bytes.count, "consumed \(consumed) of \(bytes.count) bytes")
            precondition(request.body.count <= limits.bodyBytes, "a body of \(request.body.count) bytes past the limit")
            precondition(request.headers.count <= limits.headerCount, "\(request.headers.count) headers past the limit")
            _ = request.keepAlive
            // A pipelined request after it parses on its own.
            _ = AdminHTTPParser.parse(bytes[consumed...], limits: limits)
        case .head(let request, let minimumBytes):
            precondition(minimumBytes > bytes.count, "asks for \(minimumBytes) bytes with \(bytes.count) there")
            precondition(request.headers.count <= limits.headerCount)
        case .incomplete(let minimumBytes):
            precondition(minimumBytes > bytes.count, "asks for \(minimumBytes) bytes with \(bytes.count) there")
        case .failure(let error):
            precondition([400, 413, 431, 501, 505].contains(error.status), "status \(error.status)")
        }
    }
}

/// Frames a stream as the proxy does: the first byte chooses the direction, whether responses
/// answer HEAD, and the read size; every byte after it must come out once, in order.
enum ProxyStreams {
    static func frame(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let control = bytes.first else { return }
        let stream = UnsafeBufferPointer(rebasing: bytes[1...])
        let readSizes = [1, 2, 3, 7, 16, 64, 512, 65536]
        let output = HTTPFramingProbe.frame(
            stream, responses: control & 1 == 1, readSize: readSizes[Int(control >> 1) & 7], afterHEAD: control & 0x10 != 0)
        precondition(output.elementsEqual(stream), "framing passed on \(output.count) bytes of \(stream.count), or changed them")
    }
}

@main
enum FaultlineFuzz {
    static func main() {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2, let target = Target(rawValue: arguments[1]) else {
            let names = Target.allCases.map(\.rawValue).joined(separator: "|")
            FileHandle.standardError.write(Data("usage: faultline-fuzz \(names) [libFuzzer options and corpus directories | input files]\n".utf8))
            exit(2)
        }
        selected = target
        #if FAULTLINE_FUZZING
            // libFuzzer reads the rest of the command line (corpus directories, -max_total_time, …)
            // after the program's path, without the target's name.
            var argc = CInt(arguments.count - 1)
            var argv: [UnsafeMutablePointer<CChar>?] =
                [CommandLine.unsafeArgv[0]] + (2..<Int(CommandLine.argc)).map { CommandLine.unsafeArgv[$0] } + [nil]
            let status = argv.withUnsafeMutableBufferPointer { buffer in
                var pointer = buffer.baseAddress
                return LLVMFuzzerRunDriver(&argc, &pointer, testOneInput)
            }
            Loader.shared.removeDirectory()
            exit(status)
        #else
            // Without libFuzzer: run each input file once (a crash reproduces).
            for path in arguments.dropFirst(2) {
                guard let data = FileManager.default.contents(atPath: path) else {
                    FileHandle.standardError.write(Data("cannot read \(path)\n".utf8))
                    exit(2)
                }
                data.withUnsafeBytes { target.run($0.bindMemory(to: UInt8.self)) }
                print("ok \(path)")
            }
            if target == .loader { Loader.shared.removeDirectory() }
        #endif
    }
}

/// The target libFuzzer calls (a global: a C callback captures nothing).
nonisolated(unsafe) var selected = Target.loader

#if FAULTLINE_FUZZING
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    // Also under libFuzzer's own name: a debug link pulls in libFuzzer's main, which calls it.
    @_cdecl("LLVMFuzzerTestOneInput")
    func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        selected.run(UnsafeBufferPointer(start: data, count: size))
        return 0
    }
#endif
