import FaultlineKit
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A request as the demo services see it: the whole body is read before the handler runs.
struct HTTPRequest: Sendable {
    var method: HTTPMethod
    /// The path without the query string.
    var path: String
    var headers: HTTPHeaders
    var body: ByteBuffer
}

/// A response with its whole body.
struct HTTPResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders = [:]
    var body: ByteBuffer?

    /// A JSON response.
    static func json(_ status: HTTPResponseStatus, _ value: some Encodable, headers: HTTPHeaders = [:]) -> HTTPResponse {
        let data = (try? JSONEncoder.demo.encode(value)) ?? Data("{}".utf8)
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        return HTTPResponse(status: status, headers: headers, body: ByteBuffer(bytes: data))
    }

    /// `{"error": message}` with `status`.
    static func error(_ status: HTTPResponseStatus, _ message: String, headers: HTTPHeaders = [:]) -> HTTPResponse {
        .json(status, ["error": message], headers: headers)
    }
}

extension JSONEncoder {
    /// Compact JSON with keys in a stable order, so responses are easy to read and to compare.
    static var demo: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

/// An HTTP/1.1 server (keep-alive, pipelining) that hands each complete request to `handler`.
enum HTTPServer {
    /// Requests with larger bodies are answered 413 and the connection closed.
    static let maxBodySize = 1 << 20

    static func bind(
        name: String,
        host: String,
        port: Int,
        group: any EventLoopGroup,
        handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse
    ) async throws -> DemoServer {
        try await DemoServer.bind(
            name: name, host: host, port: port, group: group,
            initializer: { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            },
            handle: { connection in await serve(connection, handler: handler) }
        )
    }

    private static func serve(
        _ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>,
        handler: @Sendable (HTTPRequest) async -> HTTPResponse
    ) async {
        try? await connection.executeThenClose { parts, writer in
            var head: HTTPRequestHead?
            var body = ByteBuffer()
            for try await part in parts {
                switch part {
                case .head(let requestHead):
                    head = requestHead
                    body.clear()
                case .body(var chunk):
                    guard body.readableBytes + chunk.readableBytes <= maxBodySize else {
                        let response = HTTPResponse.error(.payloadTooLarge, "request body larger than \(maxBodySize) bytes")
                        try await write(response, to: writer, version: head?.version ?? .http1_1, keepAlive: false)
                        return
                    }
                    body.writeBuffer(&chunk)
                case .end:
                    guard let requestHead = head else { return }
                    head = nil
                    let path = String(requestHead.uri.prefix { $0 != "?" })
                    let request = HTTPRequest(method: requestHead.method, path: path, headers: requestHead.headers, body: body)
                    let response = await handler(request)
                    try await write(response, to: writer, version: requestHead.version, keepAlive: requestHead.isKeepAlive)
                    if !requestHead.isKeepAlive { return }
                }
            }
        }
    }

    private static func write(
        _ response: HTTPResponse,
        to writer: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
        version: HTTPVersion,
        keepAlive: Bool
    ) async throws {
        var headers = response.headers
        if response.status != .noContent {
            headers.replaceOrAdd(name: "Content-Length", value: String(response.body?.readableBytes ?? 0))
        }
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        var parts: [HTTPServerResponsePart] = [.head(HTTPResponseHead(version: version, status: response.status, headers: headers))]
        if let body = response.body, body.readableBytes > 0 { parts.append(.body(.byteBuffer(body))) }
        parts.append(.end(nil))
        try await writer.write(contentsOf: parts)
    }
}

/// A response read by `HTTPClient`.
struct HTTPClientResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ByteBuffer

    /// The body as a JSON object, if it is one.
    var json: [String: any Sendable]? {
        (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: any Sendable]
    }
}

/// A minimal HTTP/1.1 client: one connection per request, closed afterwards. The order API uses it to
/// notify, so a restarted notifier is reached again at once; the tests use it to call the services.
enum HTTPClient {
    /// Sends one request.
    /// - Parameters:
    ///   - method: The method.
    ///   - endpoint: Where to send it.
    ///   - path: The path, appended to the endpoint's base path.
    ///   - body: A JSON body, or nothing.
    ///   - timeout: Bounds connecting and the whole exchange; `nil` waits for ever.
    ///   - group: The event loops.
    /// - Throws: `HTTPClientError`.
    static func request(
        _ method: HTTPMethod,
        _ endpoint: HTTPEndpoint,
        path: String,
        json body: ByteBuffer? = nil,
        timeout: Duration?,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> HTTPClientResponse {
        guard let timeout else { return try await exchange(method, endpoint, path: path, body: body, timeout: nil, group: group) }
        return try await withThrowingTaskGroup(of: HTTPClientResponse?.self) { tasks in
            tasks.addTask { try await exchange(method, endpoint, path: path, body: body, timeout: timeout, group: group) }
            tasks.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { tasks.cancelAll() }
            guard let response = try await tasks.next()! else {
                throw HTTPClientError(reason: "no response within \(timeout.milliseconds) ms")
            }
            return response
        }
    }

    private static func exchange(
        _ method: HTTPMethod,
        _ endpoint: HTTPEndpoint,
        path: String,
        body: ByteBuffer?,
        timeout: Duration?,
        group: any EventLoopGroup
    ) async throws -> HTTPClientResponse {
        let connection: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            connection = try await ClientBootstrap(group: group)
                .connectTimeout(timeout.map { .milliseconds($0.milliseconds) } ?? .seconds(10))
                .connect(host: endpoint.host, port: endpoint.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw HTTPClientError(reason: NetworkError.describe(error, connecting: endpoint.address))
        }
        do {
            return try await connection.executeThenClose { parts, writer in
                var headers: HTTPHeaders = ["Host": endpoint.address, "Connection": "close"]
                headers.add(name: "Content-Length", value: String(body?.readableBytes ?? 0))
                if body != nil { headers.add(name: "Content-Type", value: "application/json") }
                // One write: the server answers (and, for `Connection: close`, closes) as soon as
                // the body is complete, so a separate write of the empty end part could find the
                // connection already closed. A server may also answer before reading the whole
                // request (a 413): a failed write matters only if no response comes.
                var request: [HTTPClientRequestPart] = [
                    .head(HTTPRequestHead(version: .http1_1, method: method, uri: endpoint.basePath + path, headers: headers))
                ]
                if let body { request.append(.body(.byteBuffer(body))) }
                request.append(.end(nil))
                var writeFailure: (any Error)?
                do { try await writer.write(contentsOf: request) } catch { writeFailure = error }

                var head: HTTPResponseHead?
                var received = ByteBuffer()
                for try await part in parts {
                    switch part {
                    case .head(let responseHead): head = responseHead
                    case .body(var chunk): received.writeBuffer(&chunk)
                    case .end:
                        guard let head else { break }
                        return HTTPClientResponse(status: head.status, headers: head.headers, body: received)
                    }
                }
                if let writeFailure { throw writeFailure }
                throw HTTPClientError(reason: "connection closed before a complete response")
            }
        } catch let error as HTTPClientError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw HTTPClientError(reason: NetworkError.describe(error))
        }
    }
}

/// Why an HTTP exchange failed, in a few words.
struct HTTPClientError: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}

/// Where an HTTP service is: `http://HOST:PORT[/base]`.
public struct HTTPEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The host name or address.
    public var host: String
    /// The port.
    public var port: Int
    /// A path prefix for every request, without a trailing slash; usually empty.
    public var basePath: String

    /// - Parameters: See the properties.
    public init(host: String, port: Int, basePath: String = "") {
        self.host = host
        self.port = port
        self.basePath = basePath
    }

    /// Parses `http://HOST:PORT[/base]`.
    /// - Throws: `AddressError` naming the expected form.
    public init(parsing url: String) throws {
        guard url.hasPrefix("http://") else {
            throw AddressError("\"\(url)\" is not an http:// URL; expected http://HOST:PORT, e.g. http://127.0.0.1:8081")
        }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        let address = try HostPort(parsing: String(authority))
        var basePath = String(rest.dropFirst(authority.count))
        while basePath.hasSuffix("/") { basePath.removeLast() }
        self.init(host: address.host, port: address.port, basePath: basePath)
    }

    /// `HOST:PORT`, with IPv6 hosts in brackets.
    var address: String { HostPort(host: host, port: port).description }

    public var description: String { "http://\(address)\(basePath)" }
}

/// A TCP address given as `HOST:PORT`: Faultline's, so the demo reads the addresses a suite gives it
/// as the suite's own checks read them.
public typealias HostPort = FaultlineKit.HostPort

extension HostPort {
    /// Parses an address to connect to, `HOST:PORT` or `[IPv6]:PORT`.
    /// - Throws: `AddressError` naming what is wrong and the expected form.
    public init(parsing text: String) throws(AddressError) {
        do {
            try self.init(parsing: text, role: .connect)
        } catch {
            throw AddressError("\"\(text)\" is not HOST:PORT: \(error.hint)")
        }
    }
}

/// A malformed address on the command line.
public struct AddressError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Short, human descriptions of network failures ("connection refused", "connection reset by peer").
enum NetworkError {
    static func describe(_ error: any Error, connecting target: String? = nil) -> String {
        let reason = plain(error)
        return target.map { "cannot connect to \($0): \(reason)" } ?? reason
    }

    private static func plain(_ error: any Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            if let dns = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve \(error.host): \(plain(dns))" }
            return error.connectionErrors.first.map { plain($0.error) } ?? "no address for \(error.host)"
        case let error as IOError:
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ECONNRESET: return "connection reset by peer"
            case EPIPE: return "connection closed by peer"
            case ETIMEDOUT: return "timed out"
            default: return String(cString: strerror(error.errnoCode)).lowercased()
            }
        case let error as ChannelError:
            switch error {
            case .connectTimeout(let amount): return "connect timed out after \(amount.nanoseconds / 1_000_000) ms"
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed, .inputClosed: return "connection closed"
            default: return "\(error)"
            }
        case let error as StoreError: return error.description
        case let error as HTTPClientError: return error.reason
        default: return "\(error)"
        }
    }
}
