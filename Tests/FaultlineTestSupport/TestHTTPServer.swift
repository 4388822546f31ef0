import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A real HTTP/1.1 server on an ephemeral loopback port, with routes that misbehave on purpose,
/// or a responder of the test's own.
///
/// - `/`: 200 `ok` (a healthy service); `/ok`: 200 `hello`; `/json`: a JSON document; `/echo`: the request as JSON;
///   `/status/N`: status N; `/redirect/N`: N redirects, then `/ok`; `/see-other`: 303 to `/echo`;
///   `/permanent`: 308 to `/echo`; `/slow?ms=N`: answers after N ms; `/hang`: never answers;
///   `/reset`: resets the connection after reading the request; `/half`: sends half a response and closes;
///   `/close`: answers with `Connection: close`; `/gate/NAME`: answers once the test opens gate NAME
///   (``openGate(_:)``), at once after that; anything else: 404.
///
/// Connections stay open between requests (as most services keep them); ``close()`` closes them.
public final class TestHTTPServer: Sendable {
    /// Answers a request (method, URI with query, body) with a status, a content type and a body.
    public typealias Responder = @Sendable (_ method: String, _ uri: String, _ body: String) -> (status: Int, contentType: String, body: String)

    public let port: Int
    private let channel: any Channel
    private let state: Shared

    private init(port: Int, channel: any Channel, state: Shared) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    /// Starts a server.
    /// - Parameters:
    ///   - tls: speak HTTPS with a self-signed certificate for localhost.
    ///   - respond: answers every request instead of the routes.
    ///   - onRequest: called with the number of requests received so far, before each is answered.
    public static func start(
        tls: Bool = false, respond: Responder? = nil, onRequest: (@Sendable (Int) -> Void)? = nil
    ) async throws -> TestHTTPServer {
        let state = Shared(respond: respond, onRequest: onRequest)
        let sslContext: NIOSSLContext? =
            tls
            ? try NIOSSLContext(
                configuration: .makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem))))
            : nil
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.connections.withLock { $0 += 1 }
                state.open.track(channel)
                do {
                    if let sslContext { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Routes(state: state))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TestHTTPServer(port: channel.localAddress!.port!, channel: channel, state: state)
    }

    /// The base URL, e.g. `http://127.0.0.1:54321`.
    public var url: String { "http://127.0.0.1:\(port)" }

    /// Requests received for a path (without query).
    public func count(_ path: String) -> Int { state.counts.withLock { $0[path] ?? 0 } }

    /// Every request received.
    public var total: Int { state.counts.withLock { $0.values.reduce(0, +) } }

    /// Requests received, in order, as `METHOD uri`.
    public var requests: [String] { state.requests.withLock { $0 } }

    /// Connections accepted.
    public var connectionCount: Int { state.connections.withLock { $0 } }

    /// Connections open now.
    public var openConnections: Int { state.open.count }

    /// Answers the requests waiting at `/gate/NAME`, and from now on answers that gate at once.
    public func openGate(_ name: String) { state.gates.open(name) }

    /// Requests waiting at `/gate/NAME` now.
    public func waiting(atGate name: String) -> Int { state.gates.waiting(name) }

    fileprivate final class Shared: Sendable {
        let respond: Responder?
        let onRequest: (@Sendable (Int) -> Void)?
        let counts = Mutex<[String: Int]>([:])
        let requests = Mutex<[String]>([])
        let connections = Mutex(0)
        let open = OpenChannels()
        let gates = Gates()

        init(respond: Responder?, onRequest: (@Sendable (Int) -> Void)?) {
            self.respond = respond
            self.onRequest = onRequest
        }
    }

    static let certificatePEM = """
        -----BEGIN CERTIFICATE-----
        MIIDJzCCAg+gAwIBAgIUIIzFMYL8xCeBwyQUVCWvN29h0zYwDQYJKoZIhvcNAQEL
        BQAwFDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMzA4MjgwNloYDzIxMjYx
        MDMwMDgyODA2WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwggEiMA0GCSqGSIb3DQEB
        AQUAA4IBDwAwggEKAoIBAQDEZnMw0fEfwXJgMIM6gTHFaEh/fCq4dii58JPNbNG5
        0cOg7xK0kN36l/H1JZHdfnAc6Efpp+TozvBmpuzjXejE+Url39TTi0xDYvdIGBRu
        SqI8YZs8Tqp5AiiitbXxm3P/0axsBtazLRJjD6dCMTPU8oMc1CKYwjF9HLFW84fs
        Jt4UbbYmlC1IQ9T18DQh9xo67OxDEI9n3F+I+zcJXUh1nilnxMqKrmkXCyWIjGNa
        McTBJTLb1Y6aWNHbYjqMySHPnOUptbirIidvIum+mkq/P5RHbUNC24hD2+yP1Y3j
        yF5YG+SIH3mY98PfGKhgE2cbniKTJPHqQT01VY9RTR3XAgMBAAGjbzBtMB0GA1Ud
        DgQWBBS8rMicCs2bAcIBBe3IoMXTB4VMVjAfBgNVHSMEGDAWgBS8rMicCs2bAcIB
        Be3IoMXTB4VMVjAPBgNVHRMBAf8EBTADAQH/MBoGA1UdEQQTMBGCCWxvY2FsaG9z
        dIcEfwAAATANBgkqhkiG9w0BAQsFAAOCAQEAbyCYHWEm9OcGm+cj/HTGkUzjhwHr
        cE6/WeF2KCRVw4DbZO0lgyAOIRxejMmqmshqMHp9fnXvQGng2BNAlT2BSOY+traF
        LIWjerqDm3JDzgNW5IIQ0vF7c/Ehh08lzfy9H4Vq9DU0Kic7kDcIqtfBz9+0YFsy
        SGnrvnTubGW6LnEyNKv07ew2zAVMSv9FBt8Lya65aSzconkM1KijicIyluZAkUSH
        O7AhAf1UP61BevM1PtIvoFiu8zaBrCE2TmHCCm+LAiNJsyZqRMqurfNlmMwyom79
        7UDK0ZjAg19RW2n1DM2ieXinADgaSYhletnkIEpCpiLSh9iKwCTEKApNZQ==
        -----END CERTIFICATE-----
        """

    static let privateKeyPEM = """
        -----BEGIN PRIVATE KEY-----
        MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDEZnMw0fEfwXJg
        MIM6gTHFaEh/fCq4dii58JPNbNG50cOg7xK0kN36l/H1JZHdfnAc6Efpp+TozvBm
        puzjXejE+Url39TTi0xDYvdIGBRuSqI8YZs8Tqp5AiiitbXxm3P/0axsBtazLRJj
        D6dCMTPU8oMc1CKYwjF9HLFW84fsJt4UbbYmlC1IQ9T18DQh9xo67OxDEI9n3F+I
        +zcJXUh1nilnxMqKrmkXCyWIjGNaMcTBJTLb1Y6aWNHbYjqMySHPnOUptbirIidv
        Ium+mkq/P5RHbUNC24hD2+yP1Y3jyF5YG+SIH3mY98PfGKhgE2cbniKTJPHqQT01
        VY9RTR3XAgMBAAECggEAJjxn2q5UykDoGo/3THGQlgUqcB9lVcozPZf3vnucDRgo
        hPFma970SHBCe96Xmk6eVxJlxbiZGTYImYOQBOfohEiga0Z7cb/h1hCzYcbGW36O
        PUEnbsNF7w8biCnmRSZlm/1fGxztua5hsQWAI6PemmuoWPl3ztOnvNrUL8Bzyuai
        snXlMn9GA/OOYNd1pqxrp6jI8Se40JIeghS+8Lq8qtc4yxlfvUXJoGKqWJaOoTLI
        izUs7kTgucJ0vzsUK8vk25Cvb49ti5cTR9kHd6bwKO4oFxIoF5ERGodCqtAzOyZT
        wP+QxhsZF4i8nMcHxT/7Iyb3dPEo/Z/1cdRzvk+KMQKBgQDxmyF4QwsXyHjM6KX+
        628iuC688D6D33yYceG17T/nH0KIiHlYijHBq+qbmOk4gG5UD6rO8O6eLGKMieTU
        YfxlksLLf0/1Es4kiWA1btEuSLou9g+jtXNNT4ZnPMyCbLO3zKqEM1BGWPrgINTD
        3X+vSS0RkCWk0FbH2bzewHNymQKBgQDQGdw61MdfjUjtmWbjz0JG7GmfOR/5q22A
        BMF7YcjNJq/8ZiSvNHuh+kJ+MYKjisg9oUBxIYp7rs5aT9P35X8X8TgFZVGoU8vW
        dOmz9Pdxf3vDtzT9ZgSOwD1rcKH+apbo5AUsnLjnopZMTtC7l+kLKpT4IkPctJzE
        p/FsJsPJ7wKBgQDTd+a5rmS9MliZcWApWcRybSdrdBQjtK8Hd1YJuFjgYLoJavpb
        Bso6K9Ey04n+TFtE9Fmau8L/avXu8Jr7UbBq7yPUneBML2ODE0LEQfSRQFLF29Ug
        gycimeKX5d1SovZCf78X6xnuGN+s4M+Zh/vEXpY18ycftMLgNbJcfbIOsQKBgCal
        ltPKLlideXy+r3ABTrKzNw5d4oVQg95xg6kxSMRouegq5AcxvQAg5PZgpX1Pyc5A
        QyJ/cyNzHFmDV79C/K5qmtfNsDONlF54iepkxQtr/IUlYg7pQlFsfDuWyE7iZrJL
        nnZhiKlj9Xuoa3VbSelL+Cx42JeFZ1PSSLCoJlY7AoGBAMUEoYAnP7fenEudlSfh
        Cl3KrYghgCbMig9hIeS2QmD0EO1vNL2WUhMZi8tYWHLINI6XuoLSyaSpaYPqGYVY
        BwXPqb7++I+5PXJ42VCwaDaWnG1aoAXq8Rh2zg/OavtaQ98wrVFkCx+OoCW9aeQf
        MgdDMTR6L2hP1i/Z3BtrVIlY
        -----END PRIVATE KEY-----
        """
}

extension TestHTTPServer: TestResource {
    /// Stops listening and closes every connection still open.
    public func close() async {
        try? await channel.close()
        await state.open.closeAll()
    }
}

/// Requests held at `/gate/NAME` until the test opens the gate.
private final class Gates: Sendable {
    private let state = Mutex<(opened: Set<String>, waiting: [String: [@Sendable () -> Void]])>(([], [:]))

    /// Queues `answer` until `name` opens; false (and nothing queued) when it is open.
    func wait(_ name: String, _ answer: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            guard !s.opened.contains(name) else { return false }
            s.waiting[name, default: []].append(answer)
            return true
        }
    }

    func open(_ name: String) {
        let answers = state.withLock { s in
            s.opened.insert(name)
            return s.waiting.removeValue(forKey: name) ?? []
        }
        for answer in answers { answer() }
    }

    func waiting(_ name: String) -> Int { state.withLock { $0.waiting[name]?.count ?? 0 } }
}

private final class Routes: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let state: TestHTTPServer.Shared
    var head: HTTPRequestHead?
    var body = ByteBuffer()

    init(state: TestHTTPServer.Shared) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            guard let head else { return }
            respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let components = URLComponents(string: head.uri)
        let path = components?.path ?? head.uri
        let query = Dictionary((components?.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { a, _ in a })
        state.counts.withLock { $0[path, default: 0] += 1 }
        let received = state.requests.withLock {
            $0.append("\(head.method.rawValue) \(head.uri)")
            return $0.count
        }
        state.onRequest?(received)
        if let respond = state.respond {
            let (status, contentType, text) = respond(head.method.rawValue, head.uri, String(buffer: body))
            send(context, HTTPResponseStatus(statusCode: status), text, type: contentType, keepAlive: head.isKeepAlive)
            return
        }
        let segments = path.split(separator: "/").map(String.init)
        switch segments.first ?? "" {
        case "":
            send(context, .ok, "ok", keepAlive: head.isKeepAlive)
        case "ok":
            send(context, .ok, "hello", keepAlive: head.isKeepAlive)
        case "json":
            send(
                context, .ok, #"{"name":"faultline","values":[1,2,3],"nested":{"ok":true}}"#, type: "application/json; charset=utf-8",
                keepAlive: head.isKeepAlive)
        case "echo":
            var headers: [String: String] = [:]
            for (name, value) in head.headers { headers[name.lowercased()] = value }
            let object: [String: Any] = [
                "method": head.method.rawValue, "path": path, "query": components?.percentEncodedQuery ?? "", "headers": headers,
                "body": String(buffer: body),
            ]
            let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            send(context, .ok, String(decoding: data, as: UTF8.self), type: "application/json", keepAlive: head.isKeepAlive)
        case "status":
            let code = Int(segments.dropFirst().first ?? "") ?? 500
            send(context, HTTPResponseStatus(statusCode: code), "status \(code) body", keepAlive: head.isKeepAlive)
        case "redirect":
            let remaining = Int(segments.dropFirst().first ?? "") ?? 1
            let location = remaining > 1 ? "/redirect/\(remaining - 1)" : "/ok"
            send(context, .found, "", extra: [("Location", location)], keepAlive: head.isKeepAlive)
        case "see-other":
            send(context, .seeOther, "", extra: [("Location", "/echo")], keepAlive: head.isKeepAlive)
        case "permanent":
            send(context, .permanentRedirect, "", extra: [("Location", "/echo")], keepAlive: head.isKeepAlive)
        case "slow":
            let delay = Int64(query["ms"] ?? "") ?? 100
            let keepAlive = head.isKeepAlive
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(delay)) {
                self.send(context, .ok, "slow", keepAlive: keepAlive)
            }
        case "hang":
            break
        case "gate":
            let keepAlive = head.isKeepAlive
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let answer: @Sendable () -> Void = {
                bound.eventLoop.execute {
                    let (routes, context) = bound.value
                    routes.send(context, .ok, "through", keepAlive: keepAlive)
                }
            }
            if !state.gates.wait(segments.dropFirst().first ?? "", answer) { answer() }
        case "reset":
            // SO_LINGER 0 makes close() send RST instead of FIN.
            let channel = context.channel
            (channel as! any SocketOptionProvider).setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
                channel.close(promise: nil)
            }
        case "half":
            let partial = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "100"])
            context.write(wrapOutboundOut(.head(partial)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "only part")))), promise: nil)
            context.close(promise: nil)
        case "chunked":
            // No Content-Length: NIO's encoder sends the body chunked.
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Type": "application/json"]))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: #"{"parts":"#)))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "[1,2]}")))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        case "close":
            send(context, .ok, "bye", keepAlive: false)
        default:
            send(context, .notFound, "no route for \(path)", keepAlive: head.isKeepAlive)
        }
    }

    private func send(
        _ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ text: String, type: String = "text/plain",
        extra: [(String, String)] = [], keepAlive: Bool
    ) {
        var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", String(text.utf8.count))] + extra)
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
