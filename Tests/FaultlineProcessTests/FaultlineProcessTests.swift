#if canImport(Glibc)
    import Glibc
#endif
import FaultlineKit
@testable import FaultlineProcess
import Foundation
import Testing

@Suite("The Chaos Toolkit process provider")
struct ProcessProviderTests {
    func run(_ value: Value) async throws -> Value {
        let args = try arguments(ProcessProvider.Arguments.self, value)
        try ProcessProvider.validate(args)
        return try await ProcessProvider.run(args, context: makeContext())
    }

    @Test("returns status, stdout and stderr; a non-zero status is output, not failure")
    func output() async throws {
        let output = try await run(["path": "sh", "arguments": ["-c", "echo out; echo err >&2; exit 3"]])
        #expect(output == ["status": 3, "stdout": "out\n", "stderr": "err\n"])
    }

    @Test("a string of arguments runs through /bin/sh -c")
    func shellString() async throws {
        let output = try await run(["path": "echo", "arguments": "a  b | tr a-z A-Z"])
        #expect(output["stdout"] == "A B\n")
    }

    @Test("a timeout stops the whole process group, even one that ignores SIGTERM, and fails")
    func timeout() async throws {
        let number = uniqueSleep()
        let result = await failure { try await run(["path": "sh", "arguments": ["-c", .string("trap '' TERM; sleep \(number) & wait")], "timeout": 0.3]) }
        #expect(result?.message.hasPrefix("sh timed out after 0.3 s; its process group was stopped (killed by SIGKILL)") == true)
        // The group got SIGKILL; its members vanish a moment later.
        #expect(await eventually { liveProcesses(containing: number).isEmpty })
    }

    @Test("an unknown program is a validation error")
    func unknownProgram() throws {
        let args = try arguments(ProcessProvider.Arguments.self, ["path": "no-such-program-xyz"])
        #expect(throws: ArgumentError.self) { try ProcessProvider.validate(args) }
    }
}
