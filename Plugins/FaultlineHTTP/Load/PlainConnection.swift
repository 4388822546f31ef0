import CFaultlineSystem
import FaultlineKit
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// What a load user sends its requests on: a NIO channel (``ExchangeHandler``, for TLS) or a
/// plain socket on a load loop (``PlainConnection``). One exchange at a time, confined to the
/// user's loop; every exchange ends exactly once.
protocol LoadConnection: AnyObject {
    /// False once the connection closed or the server asked to close it.
    var isReusable: Bool { get }
    func send(_ request: PreparedRequest, options: ExchangeOptions, completion: @escaping PendingExchange.Completion)
    /// Fails the exchange if the response stalled for its read timeout; called by the worker's sweep.
    func checkTimeout(now: NIODeadline)
    /// Ends the running exchange as abandoned (a stopped load) and closes the connection.
    func abandon()
    func close()
}

extension ExchangeHandler: LoadConnection {}

/// A plain-HTTP keep-alive connection on a ``LoadLoop``: the load's fast path.
///
/// A request goes out with one `send` of the bytes encoded once; the response is read with one
/// `recv` straight into the parser's buffer, which the connection keeps (no allocation, promise
/// or pipeline per request). Failures are named as on NIO (``HTTPFailure/classify(_:target:)``
/// of the same errors), so a result does not depend on the transport. Read timeouts come from
/// the worker's sweep only (``ExchangeOptions/ownTimer`` is not used).
final class PlainConnection: LoadLoopSocket, LoadConnection {
    private enum State {
        case connecting((Result<PlainConnection, HTTPFailure>) -> Void)
        case open
        case closed
    }

    private let loop: LoadLoop
    private let peer: String
    private var fd: Int32
    private var slot = -1
    private var state: State
    private var connectTimer: Scheduled<Void>?
    private var parser = ResponseParser()
    private var received = 0
    private var inFlight: PendingExchange?
    /// The rest of a request the socket did not take at once (its send buffer was full).
    private var unsent: ByteBuffer?
    private(set) var isReusable = true
    /// Why the connection closed, for a request sent after it did.
    private var closeReason: HTTPFailure?

    private init(loop: LoadLoop, peer: String, fd: Int32, connected: @escaping (Result<PlainConnection, HTTPFailure>) -> Void) {
        self.loop = loop
        self.peer = peer
        self.fd = fd
        state = .connecting(connected)
    }

    /// Opens a connection to `address`; `done` runs on `loop` (at once when the connect fails
    /// or completes without waiting).
    static func connect(
        to address: SocketAddress, peer: String, timeout: TimeAmount, on loop: LoadLoop,
        _ done: @escaping (Result<PlainConnection, HTTPFailure>) -> Void
    ) {
        let fd = faultline_tcp_socket(address.protocol.rawValue)
        guard fd >= 0 else {
            done(.failure(HTTPFailure.classify(IOError(errnoCode: errno, reason: "socket"), target: peer)))
            return
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let connection = PlainConnection(loop: loop, peer: peer, fd: fd, connected: done)
        let result = address.withSockAddr { Glibc.connect(fd, $0, socklen_t($1)) }
        let error = result == 0 ? 0 : errno
        if error != 0 && error != EINPROGRESS {
            connection.connectEnded(error: error)
            return
        }
        // Watched once connecting: a socket not yet connecting reads as hung up.
        guard let slot = loop.watch(fd, for: connection) else {
            connection.connectEnded(error: errno)
            return
        }
        connection.slot = slot
        if error == 0 {
            connection.connectEnded(error: 0)
            return
        }
        connection.connectTimer = loop.assumeIsolated().scheduleTask(in: timeout) { [connection] in
            connection.connectEnded(failure: HTTPFailure.classify(ChannelError.connectTimeout(timeout), target: peer))
        }
    }

    private func connectEnded(error: Int32) {
        connectEnded(failure: error == 0 ? nil : HTTPFailure.classify(IOError(errnoCode: error, reason: "connect"), target: peer))
    }

    private func connectEnded(failure: HTTPFailure?) {
        guard case .connecting(let done) = state else { return }
        connectTimer?.cancel()
        connectTimer = nil
        if let failure {
            closeSocket()
            done(.failure(failure))
        } else {
            state = .open
            done(.success(self))
        }
    }

    // MARK: Exchanges

    func send(_ request: PreparedRequest, options: ExchangeOptions, completion: @escaping PendingExchange.Completion) {
        precondition(inFlight == nil, "one exchange at a time")
        guard case .open = state, isReusable else {
            completion(.failure(closeReason ?? HTTPFailure(.reset, "the connection to \(peer) is closed")))
            return
        }
        let bytes = request.encoded
        inFlight = PendingExchange(
            completion: completion, options: options, lastActivity: .now(), receivedAtStart: received, sent: bytes.readableBytes)
        parser.begin(headRequest: request.method == .HEAD, collectHeaders: options.collectBody)
        write(bytes)
    }

    /// Writes what the socket takes and keeps the rest for when it is writable again.
    private func write(_ bytes: ByteBuffer) {
        var bytes = bytes
        while bytes.readableBytes > 0 {
            let written = bytes.withUnsafeReadableBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written >= 0 {
                bytes.moveReaderIndex(forwardBy: written)
                continue
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK:
                unsent = bytes
                return
            case let error:
                fail(HTTPFailure.classify(IOError(errnoCode: error, reason: "write"), target: peer))
                return
            }
        }
        unsent = nil
    }

    func ready(_ events: UInt32) {
        switch state {
        case .closed:
            return
        case .connecting:
            guard events & (FAULTLINE_EPOLL_OUT | FAULTLINE_EPOLL_ERR | FAULTLINE_EPOLL_HUP) != 0 else { return }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 { error = errno }
            if error == 0 && events & FAULTLINE_EPOLL_OUT == 0 { return }
            connectEnded(error: error)
        case .open:
            if events & FAULTLINE_EPOLL_OUT != 0, let unsent { write(unsent) }
            let ending = events & (FAULTLINE_EPOLL_RDHUP | FAULTLINE_EPOLL_HUP | FAULTLINE_EPOLL_ERR) != 0
            if ending || events & FAULTLINE_EPOLL_IN != 0 { readAll(untilEnd: ending) }
        }
    }

    /// Reads until the socket is empty: its readiness is edge-triggered.
    /// - Parameter untilEnd: the peer closed or failed: read on to the end of the stream or the
    ///   error, which came with the same event (a short read does not mean there is no more).
    private func readAll(untilEnd: Bool) {
        while case .open = state {
            var space = 0
            var error: Int32 = 0
            let count = parser.read(atLeast: 4096) { buffer in
                space = buffer.count
                let count = recv(fd, buffer.baseAddress, buffer.count, 0)
                if count < 0 { error = errno }
                return max(count, 0)
            }
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return }
            if error != 0 {
                fail(HTTPFailure.classify(IOError(errnoCode: error, reason: "read"), target: peer))
                return
            }
            if count == 0 {
                peerClosed()
                return
            }
            received += count
            if inFlight == nil {
                parser.discardInput()  // Bytes nobody asked for: ignored.
            } else {
                inFlight!.lastActivity = .now()
                do {
                    while inFlight != nil, let event = try parser.next() { handle(event) }
                } catch {
                    fail(error)
                    return
                }
            }
            // A short read emptied the socket.
            if count < space && !untilEnd { return }
        }
    }

    private func handle(_ event: ResponseParser.Event) {
        guard let result = inFlight!.take(event, received: received, reusable: &isReusable), let flight = inFlight else { return }
        inFlight = nil
        if !isReusable { closeSocket() }
        flight.completion(.success(result))
    }

    private func peerClosed() {
        isReusable = false
        if inFlight != nil, let end = parser.endOfInput() { handle(end) }
        fail(HTTPFailure(.reset, "\(peer) closed the connection before the response was complete"))
    }

    func checkTimeout(now: NIODeadline) {
        guard let flight = inFlight, now - flight.lastActivity >= flight.options.readTimeout else { return }
        fail(HTTPFailure(.readTimeout, "\(peer) sent nothing for \(Seconds.text(flight.options.readTimeout))"))
    }

    func abandon() { fail(.abandonedExchange) }

    func close() {
        isReusable = false
        closeSocket()
    }

    private func fail(_ failure: HTTPFailure) {
        isReusable = false
        if closeReason == nil { closeReason = failure }
        closeSocket()
        guard let flight = inFlight else { return }
        inFlight = nil
        flight.completion(.failure(failure))
    }

    private func closeSocket() {
        if case .connecting = state {
            connectTimer?.cancel()
            connectTimer = nil
        }
        state = .closed
        guard fd >= 0 else { return }
        if slot >= 0 { loop.unwatch(slot) }
        slot = -1
        unsent = nil
        Glibc.close(fd)
        fd = -1
    }
}
