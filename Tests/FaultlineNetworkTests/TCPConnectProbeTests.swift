import FaultlineKit
@testable import FaultlineNetwork
import FaultlineTestSupport
import Foundation
import NIOCore
import NIOPosix
import Testing

@Suite("tcp.connect")
struct TCPConnectProbeTests {
    func run(_ arguments: TCPConnectProbe.Arguments) async throws -> Value {
        try TCPConnectProbe.validate(arguments)
        return try await TCPConnectProbe().probe(arguments, context: .standalone())
    }

    @Test("connects and reports the connect time")
    func connects() async throws {
        try await closing(TestTCPServer(.stall)) { server in
            let output = try await run(.init(address: "127.0.0.1:\(server.port)"))
            #expect(output["connected"] == true)
            #expect((output["connect_ms"]?.doubleValue ?? -1) >= 0)
        }
    }

    @Test("sends a line and reads until the answer matches, across segments")
    func sendExpect() async throws {
        try await closing(TestTCPServer(.reply("+PONG\r\n"))) { server in
            let output = try await run(.init(address: "127.0.0.1:\(server.port)", send: "PING\r\n", expect: "^\\+PONG\\r\\n$"))
            #expect(output["response"] == "+PONG\r\n")
        }
    }

    @Test("a refused connection names the address and the cause")
    func refused() async throws {
        let port = try FreePort.take()
        let error = try await #require(throws: ActivityFailure.self) { _ = try await run(.init(address: "127.0.0.1:\(port)")) }
        #expect(error.message == "cannot connect to 127.0.0.1:\(port): connection refused")
    }

    @Test("a silent server fails after the timeout, not later")
    func silent() async throws {
        try await closing(TestTCPServer(.stall)) { server in
            let error = try await #require(throws: ActivityFailure.self) {
                _ = try await run(.init(address: "127.0.0.1:\(server.port)", timeout: 0.2, send: "PING\r\n", expect: "PONG"))
            }
            #expect(error.message == "no answer matching /PONG/ from 127.0.0.1:\(server.port) within 0.2 s")
        }
    }

    @Test("a server that closes without answering is a failure")
    func closes() async throws {
        try await closing(TestTCPServer(.closeOnAccept)) { server in
            let error = try await #require(throws: ActivityFailure.self) {
                _ = try await run(.init(address: "127.0.0.1:\(server.port)", send: "PING\r\n", expect: "PONG"))
            }
            #expect(error.message.contains("closed the connection without an answer matching /PONG/"))
        }
    }

    @Test(
        "bad arguments are validation errors",
        arguments: [
            ("localhost", "address"), ("127.0.0.1:99999", "address"), ("127.0.0.1:80", "expect"),
        ])
    func validation(_ address: String, _ key: String) throws {
        let arguments = TCPConnectProbe.Arguments(address: address, expect: key == "expect" ? "(unclosed" : nil)
        let error = try #require(throws: ArgumentError.self) { try TCPConnectProbe.validate(arguments) }
        #expect(error.key == key)
    }
}

@Suite("free_port")
struct FreePortTests {
    @Test("gives a port nothing listens on, that can then be bound")
    func free() throws {
        let node = try DocumentLoader.parse("{type: free_port}", format: .yaml, file: "p.yaml")
        let port = try #require(try FreePortProvider().value(for: node, key: "api_port").intValue)
        #expect((1024...65535).contains(port))
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: port).wait()
        try channel.close().wait()
    }

    @Test("the port lies below the ephemeral range, where no outgoing connection or bind(0) takes it")
    func belowEphemeral() throws {
        let node = try DocumentLoader.parse("{type: free_port}", format: .yaml, file: "p.yaml")
        let ephemeral = FreePorts.ephemeralRange()
        let range = try #require(FreePorts.candidates(ephemeral: ephemeral))
        for _ in 0..<20 {
            let port = try #require(try FreePortProvider().value(for: node, key: "port").intValue)
            #expect(range.contains(port), "\(port) is not in \(range) (ephemeral: \(ephemeral))")
        }
    }

    @Test("candidates sit under the ephemeral range and above 1023, or there are none")
    func candidates() {
        #expect(FreePorts.candidates(ephemeral: 32768...60999) == 16384...32767)
        #expect(FreePorts.candidates(ephemeral: 49152...65535) == 32768...49151)
        #expect(FreePorts.candidates(ephemeral: 10000...65535) == 1024...9999)
        #expect(FreePorts.candidates(ephemeral: 1024...65535) == nil)
        #expect(FreePorts.candidates(ephemeral: 2000...65535) == nil)
    }

    @Test("no two keys get the same port")
    func distinct() throws {
        let node = try DocumentLoader.parse("{type: free_port}", format: .yaml, file: "p.yaml")
        let ports = try (0..<200).map { try #require(try FreePortProvider().value(for: node, key: "port\($0)").intValue) }
        #expect(Set(ports).count == ports.count)
    }

    @Test("a port something listens on is not free")
    func taken() throws {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
        defer { try? channel.close().wait() }
        var loopback = in_addr()
        inet_pton(AF_INET, "127.0.0.1", &loopback)
        #expect(throws: FreePorts.Failure.self) { try FreePorts.bindAndRelease(loopback, port: channel.localAddress!.port!) }
    }

    @Test("a host that is not an IPv4 address is a located error")
    func badHost() throws {
        let node = try DocumentLoader.parse("{type: free_port, host: localhost}", format: .yaml, file: "p.yaml")
        let error = try #require(throws: Diagnostic.self) { try FreePortProvider().value(for: node, key: "api_port") }
        #expect(error.description.hasPrefix("p.yaml:1:25: free_port needs an IPv4 address"))
    }
}
