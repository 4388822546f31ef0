import FaultlineKit
import Foundation
import NIOCore
import NIOPosix

/// `tcp.connect`: can a TCP connection be opened, how long does it take, and — optionally — does
/// the server answer a line as it should (`send: "PING\r\n"`, `expect: "^\+PONG"`)?
///
/// Output: `{connected, address, connect_ms, response, elapsed_ms}`. A refused connection, a
/// connect that times out and an answer that never matches fail the probe with a message naming
/// the address and the cause.
public struct TCPConnectProbe: Probe {
    public static let type = "tcp.connect"
    public static let summary =
        "Open a TCP connection (optionally send a line and expect an answer); output {connected, connect_ms, response, elapsed_ms}"
    public static let argumentHelp = [
        "address": "host:port to connect to",
        "timeout": "seconds for the connect, and again for the answer",
        "send": "text to send once connected (YAML double quotes understand \\r\\n)",
        "expect": "regular expression the answer must contain; the probe reads until it matches",
    ]

    public struct Arguments: Codable, Sendable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["timeout": .seconds]
        public var address: String
        public var timeout: Double
        public var send: String?
        public var expect: String?

        enum CodingKeys: String, CodingKey { case address, timeout, send, expect }

        public init(address: String, timeout: Double = 5, send: String? = nil, expect: String? = nil) {
            self.address = address
            self.timeout = timeout
            self.send = send
            self.expect = expect
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            address = try c.decode(String.self, forKey: .address)
            timeout = try c.decodeIfPresent(Double.self, forKey: .timeout) ?? 5
            send = try c.decodeIfPresent(String.self, forKey: .send)
            expect = try c.decodeIfPresent(String.self, forKey: .expect)
        }

        /// Host and port of `address`.
        var endpoint: HostPort { get throws(ArgumentError) { try HostPort.argument(address, key: "address", role: .connect) } }
    }

    public init() {}

    public static func validate(_ arguments: Arguments) throws {
        _ = try arguments.endpoint
        guard arguments.timeout > 0 else { throw ArgumentError("timeout", "timeout must be more than 0 seconds") }
        if let expect = arguments.expect, (try? NSRegularExpression(pattern: expect)) == nil {
            throw ArgumentError("expect", "invalid regular expression \"\(expect)\"")
        }
    }

    public func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
        let endpoint = try arguments.endpoint
        let (host, port) = (endpoint.host, endpoint.port)
        let clock = ContinuousClock()
        let start = clock.now
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.nanoseconds(Int64(nanosecondsIn: arguments.timeout)))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                }
        } catch {
            throw ActivityFailure("cannot connect to \(arguments.address): \(Self.describe(error, timeout: arguments.timeout))")
        }
        let connected = clock.now
        let connectMilliseconds = Self.milliseconds(connected - start)
        var response: String?

        do {
            try await exchange(channel, arguments: arguments, response: &response)
        } catch let error as ActivityFailure {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            let expect = arguments.expect.map { " without an answer matching /\($0)/" } ?? ""
            throw ActivityFailure("\(arguments.address) closed the connection\(expect) (\(Self.describe(error, timeout: arguments.timeout)))")
        }
        var output: ValueObject = [
            "connected": true, "address": .string(arguments.address), "connect_ms": .double(connectMilliseconds),
        ]
        if let response { output["response"] = .string(response) }
        output["elapsed_ms"] = .double(Self.milliseconds(clock.now - start))
        return .object(output)
    }

    /// Sends the line and reads until the expected answer arrives.
    private func exchange(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, arguments: Arguments, response: inout String?) async throws {
        var answerText: String?
        try await channel.executeThenClose { inbound, outbound in
            guard arguments.send != nil || arguments.expect != nil else { return }
            if let send = arguments.send { try await outbound.write(ByteBuffer(string: send)) }
            guard let expect = arguments.expect else { return }
            let pattern = try NSRegularExpression(pattern: expect)
            let answer: String? = try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask {
                    var text = ""
                    for try await buffer in inbound {
                        text += String(buffer: buffer)
                        if pattern.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil { return text }
                        if text.utf8.count > 1 << 20 { break }
                    }
                    throw ActivityFailure(
                        "\(arguments.address) closed the connection without an answer matching /\(expect)/",
                        details: text.isEmpty ? [] : ["got: \(text.prefix(200))"])
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(saturating: arguments.timeout))
                    return nil
                }
                defer { group.cancelAll() }
                return try await group.next() ?? nil
            }
            guard let answer else {
                throw ActivityFailure(
                    "no answer matching /\(expect)/ from \(arguments.address) within \(Substitution.interpolated(.double(arguments.timeout))) s")
            }
            answerText = answer
        }
        response = answerText
    }

    static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return ((Double(seconds) * 1000 + Double(attoseconds) / 1e15) * 1000).rounded() / 1000
    }

    /// Names the cause the way people say it: refused, timed out, unreachable.
    static func describe(_ error: any Error, timeout: Double) -> String {
        if case ChannelError.connectTimeout = error { return "timed out after \(Substitution.interpolated(.double(timeout))) s" }
        if let connection = error as? NIOConnectionError {
            return connection.connectionErrors.first.map { describe($0.error, timeout: timeout) } ?? connection.dnsAAAAError.map { "\($0)" }
                ?? "\(error)"
        }
        if let io = error as? IOError {
            switch io.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case EHOSTUNREACH, ENETUNREACH: return "host unreachable"
            case ETIMEDOUT: return "timed out"
            default: return String(cString: strerror(io.errnoCode))
            }
        }
        if error is SocketAddressError { return "cannot resolve the host name" }
        return "\(error)"
    }
}

/// The network plugin: the `tcp.connect` probe and the `free_port` configuration type.
public enum NetworkPlugin: FaultlinePlugin {
    public static let name = "network"

    public static func register(into registry: inout PluginRegistry) {
        registry.register(probe: TCPConnectProbe())
        registry.register(configurationProvider: FreePortProvider())
    }
}
