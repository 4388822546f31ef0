#if canImport(Glibc)
    import Glibc
#endif
import NIOCore
import NIOPosix
import Synchronization

/// A loopback TCP server on an ephemeral port that treats every connection the same way: the
/// echo server and the misbehaving peers (silent, resetting, closing) the tests point proxies and
/// probes at.
public final class TestTCPServer: Sendable {
    /// What the server does with each connection.
    public enum Behaviour: Sendable {
        /// Echoes every byte; half-closes when the client half-closes.
        case echo
        /// Sends these bytes on connect and half-closes, then discards what it reads.
        case send([UInt8])
        /// Reads until EOF, then answers with what it read (a request/response over half-close).
        case replyAfterEnd
        /// Answers each read with this text, in two writes (a reader must read until it has it all).
        case reply(String)
        /// Resets every connection as soon as it reads something.
        case resetOnData
        /// Closes every connection as soon as it is accepted.
        case closeOnAccept
        /// Never reads nor answers: what the client sends piles up in buffers (a hung service).
        case stall
    }

    let channel: any Channel
    public let port: Int
    private let counter: Counter

    /// Starts listening on 127.0.0.1, on an ephemeral port.
    /// - Parameter group: the event loops to serve on (the shared singleton by default).
    public init(_ behaviour: Behaviour = .echo, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        let counter = Counter()
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 2048)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                counter.accepted.add(1, ordering: .relaxed)
                counter.open.track(channel)
                if case .stall = behaviour { return channel.setOption(.autoRead, value: false) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(behaviour))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
        self.counter = counter
    }

    /// Connections accepted so far.
    public var acceptedCount: Int { counter.accepted.load(ordering: .relaxed) }

    /// `127.0.0.1:port`.
    public var address: String { "127.0.0.1:\(port)" }

    private final class Counter: Sendable {
        let accepted = Atomic<Int>(0)
        let open = OpenChannels()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let behaviour: Behaviour
        var collected: ByteBuffer?

        init(_ behaviour: Behaviour) { self.behaviour = behaviour }

        func channelActive(context: ChannelHandlerContext) {
            switch behaviour {
            case .send(let bytes):
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil)
                context.close(mode: .output, promise: nil)
            case .closeOnAccept:
                context.close(promise: nil)
            default:
                break
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            switch behaviour {
            case .echo: context.write(wrapOutboundOut(buffer), promise: nil)
            case .send, .stall, .closeOnAccept: break
            case .reply(let text):
                let middle = text.index(text.startIndex, offsetBy: text.count / 2)
                context.write(wrapOutboundOut(ByteBuffer(string: String(text[..<middle]))), promise: nil)
                context.write(wrapOutboundOut(ByteBuffer(string: String(text[middle...]))), promise: nil)
            case .replyAfterEnd:
                if collected == nil { collected = buffer } else { collected!.writeBuffer(&buffer) }
            case .resetOnData:
                if let options = context.channel as? any SocketOptionProvider {
                    _ = options.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                }
                context.close(promise: nil)
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard case .inputClosed? = event as? ChannelEvent else { return }
            switch behaviour {
            case .echo:
                closeOutputAfterWrites(context, last: ByteBuffer())
            case .replyAfterEnd:
                closeOutputAfterWrites(context, last: collected ?? ByteBuffer())
            case .send, .reply, .resetOnData, .closeOnAccept, .stall:
                context.close(promise: nil)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

        /// NIO's `close(mode: .output)` after the input closed drops pending writes; wait for them.
        private func closeOutputAfterWrites(_ context: ChannelHandlerContext, last: ByteBuffer) {
            let promise = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(last), promise: promise)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            promise.futureResult.whenComplete { _ in bound.value.close(mode: .output, promise: nil) }
        }
    }
}

extension TestTCPServer: TestResource {
    /// Stops listening and closes every connection still open.
    public func close() async {
        try? await channel.close()
        await counter.open.closeAll()
    }
}

/// The accepted connections of a test server that are still open, so closing the server closes
/// them too instead of leaving them to outlive the test.
final class OpenChannels: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in _ = channels.withLock { $0.removeValue(forKey: id) } }
    }

    var count: Int { channels.withLock { $0.count } }

    func closeAll() async {
        for channel in channels.withLock({ Array($0.values) }) { try? await channel.close() }
    }
}
