import FaultlineKit
import FaultlineNetwork
import FaultlineTesting
import FaultlineToxiproxy
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The package's root directory.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The `faultline` executable this test target depends on (so `swift test` builds it).
let faultlineExecutable: String = (try? BuiltProduct.path("faultline")) ?? "faultline"

/// Runs blocking code on a thread of its own, never on the cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Polls a condition that another process makes true, until a deadline.
func eventually(timeout: Duration = .seconds(30), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(25))
    }
    return await condition()
}

typealias Scratch = ScratchDirectory

/// A `faultline` child process with its output in files.
final class FaultlineProcess: @unchecked Sendable {
    // Set up in init, then only read; Process is thread-safe for these calls.
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(_ arguments: [String], in directory: Scratch, environment: [String: String] = [:]) throws {
        stdoutPath = directory.path("stdout-\(UUID().uuidString).txt")
        stderrPath = directory.path("stderr-\(UUID().uuidString).txt")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: faultlineExecutable)
        process.arguments = arguments
        process.currentDirectoryURL = directory.url
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        env["TOXIPROXY_URL"] = nil
        env["TOXIPROXY_AUTH_TOKEN"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the exit (killing the process after `timeout`) and returns the status.
    func wait(timeout: Duration = .seconds(120)) async -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline { kill(process.processIdentifier, SIGKILL) }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// `faultline proxy` on an ephemeral port, standing in for a Toxiproxy server.
final class ToxiproxyStandIn: Sendable {
    let child: FaultlineProcess
    let scratch: Scratch
    let address: ToxiproxyAddress

    /// The API token the server requires, if any.
    let token: String?

    /// - Parameter token: started with `TOXIPROXY_AUTH_TOKEN` set to it.
    init(token: String? = nil) async throws {
        scratch = try Scratch()
        self.token = token
        child = try FaultlineProcess(["proxy", "--port", "0", "--seed", "7"], in: scratch, environment: token.map { ["TOXIPROXY_AUTH_TOKEN": $0] } ?? [:])
        let child = child
        // The first line of standard output names the API address.
        let started = await eventually(timeout: .seconds(30)) { child.stdout.contains("\n") || !child.process.isRunning }
        let banner = child.stdout.split(separator: "\n").first.map(String.init) ?? ""
        guard started, let range = banner.range(of: #"http://[0-9.]+:[0-9]+"#, options: .regularExpression) else {
            throw TestFailure("faultline proxy did not start: \(banner) \(child.stderr)")
        }
        address = try ToxiproxyAddress(parsing: String(banner[range]))
    }

    var url: String { address.url }

    /// A client with short timeouts (and the server's token); shut it down when done.
    func client() -> ToxiproxyClient { client(token: token) }

    func client(token: String?) -> ToxiproxyClient {
        ToxiproxyClient(address: address, timeouts: .init(connect: .seconds(2), request: .seconds(10)), token: token)
    }

    /// Stops the server with SIGTERM and waits for it.
    func stop() async -> Int32 {
        child.signal(SIGTERM)
        return await child.wait(timeout: .seconds(30))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a stand-in server and a client for it, stopping both afterwards.
func withStandIn<T>(token: String? = nil, _ body: (ToxiproxyStandIn, ToxiproxyClient) async throws -> T) async throws -> T {
    let server = try await ToxiproxyStandIn(token: token)
    let client = server.client()
    do {
        let result = try await body(server, client)
        await client.shutdown()
        _ = await server.stop()
        return result
    } catch {
        await client.shutdown()
        _ = await server.stop()
        throw error
    }
}

/// Event loops for the test servers.
let testGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

/// A small HTTP/1.1 server on an ephemeral loopback port: it answers each request with
/// `respond` and keeps the connection open (as most services do).
final class TestHTTPServer: Sendable {
    typealias Responder = @Sendable (_ method: String, _ uri: String, _ body: String) -> (status: Int, contentType: String, body: String)

    let channel: any Channel
    let port: Int
    private let log = RequestLog()

    /// Requests received, as `METHOD uri`.
    var requests: [String] { log.entries.withLock { $0 } }

    final class RequestLog: Sendable {
        let entries = Mutex<[String]>([])
    }

    init(_ respond: @escaping Responder = { _, _, _ in (200, "text/plain", "ok") }) async throws {
        let log = self.log
        channel = try await ServerBootstrap(group: testGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(respond: respond, log: log))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
    }

    func close() async { try? await channel.close() }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        // Used only on its channel's event loop.
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let respond: Responder
        let log: RequestLog
        var head: HTTPRequestHead?
        var body = ""

        init(respond: @escaping Responder, log: RequestLog) {
            self.respond = respond
            self.log = log
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = ""
            case .body(let buffer):
                body += String(buffer: buffer)
            case .end:
                guard let head else { return }
                log.entries.withLock { $0.append("\(head.method.rawValue) \(head.uri)") }
                let (status, contentType, text) = respond(head.method.rawValue, head.uri, body)
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: contentType)
                headers.add(name: "Content-Length", value: String(text.utf8.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .init(statusCode: status), headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

/// A TCP server that accepts connections and never answers (a hung API).
final class SilentServer: Sendable {
    let channel: any Channel
    let port: Int

    init() async throws {
        channel = try await ServerBootstrap(group: testGroup)
            .childChannelInitializer { channel in channel.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
    }

    func close() async { try? await channel.close() }
}

/// A loopback port nothing listens on, below the ephemeral range, where no other test's
/// `bind(0)` or outgoing connection takes it (see ``FreePort``).
func closedPort() throws -> Int {
    try FreePort.take()
}
