import CFaultlineSystem
import FaultlineKit
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The proxy's fast path: threads (one per core) with their own epoll that accept every proxy's
/// connections and relay those that have no toxic, socket to socket, without the channels, pipelines and
/// buffers of an event-loop framework.
///
/// Most connections through a chaos proxy see no toxic most of the time, and setting up a NIO
/// channel pair per connection cost ~110 µs of CPU, which capped new connections at ~10,000/s
/// on two cores. Here a connection is two descriptors and a few flags; a bulk stream's bytes go
/// through a pipe with splice(2) and never enter user space.
///
/// A connection leaves the relay for ``ProxyConnection`` (NIO, with the toxic engine) when:
/// - it is accepted while its proxy has toxics, or its upstream is a host name to resolve: the
///   accepted socket is handed over at once;
/// - a toxic is added to (or changed on) its proxy while it is open: both sockets are handed over
///   with whatever bytes the relay held, and take the proxy's toxics from then on. The change's
///   API call returns once the connection runs with the toxics, as for any other connection.
///
/// A connection one of whose sides has already ended its stream (half-closed) is not handed over:
/// it finishes here, without the new toxics. Everything else — half-close propagation, resets
/// passed on as resets, backpressure (at most ``maximumHeld`` bytes per direction), the proxy's
/// byte counters, a refused upstream closing the client cleanly, "down" closing everything — is
/// the same on both paths.
///
/// A relay is one thread; its state is confined to it; other threads post ``Command``s and wake
/// it through an eventfd. Every relay watches every listener (EPOLLEXCLUSIVE: one is woken per
/// new connection) and keeps the connections it accepted.
final class Relay: @unchecked Sendable {
    /// Where results of commands are delivered (futures need an event loop).
    let group: any EventLoopGroup
    private let log: Logger
    private let epoll: Int32
    private let wake: Int32
    /// Posted commands, and whether the loop still runs (after it stops, its descriptors are
    /// closed and may be reused: nothing may be written to `wake` then).
    private let inbox = Mutex<(commands: [Command], open: Bool)>(([], true))
    /// Handovers in progress, by connection: a later command for one waits for it.
    private let handovers = Mutex<[UInt64: EventLoopFuture<Void>]>([:])

    // Confined to the relay thread.
    private var slots: [RelayedConnection?] = []
    private var generations: [UInt32] = []
    private var freeSlots: [Int] = []
    private var listeners: [Int32: RelayListener] = [:]
    /// Slots of connections with a deadline (connecting or draining).
    private var timed: Set<Int> = []
    private var nextScan: UInt64 = 0
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
    /// A read given to an ``HTTPScreen``.
    private var screenInput = ByteBuffer()

    enum Command {
        case addListener(RelayListener, exclusive: Bool, EventLoopPromise<Void>)
        case removeListener(Int32, EventLoopPromise<Void>)
        case abort(RelayedRef, EventLoopPromise<Void>)
        case handOver(RelayedRef, EventLoopPromise<Void>)
        case stop
    }

    /// - Returns: nil where there is no epoll (not Linux): proxies then accept through NIO.
    init?(group: any EventLoopGroup, log: Logger) {
        let epoll = faultline_epoll_create()
        guard epoll >= 0 else { return nil }
        let wake = faultline_eventfd()
        guard wake >= 0, faultline_epoll_add(epoll, wake, FAULTLINE_EPOLL_IN | FAULTLINE_EPOLL_ET, Tag.wake) == 0 else {
            close(epoll)
            if wake >= 0 { close(wake) }
            return nil
        }
        self.epoll = epoll
        self.wake = wake
        self.group = group
        self.log = log
        let thread = Thread { [self] in run() }
        thread.name = "faultline-relay"
        thread.start()
    }

    // MARK: From other threads

    /// Starts accepting on a bound, listening, non-blocking socket. `exclusive` when other relays
    /// accept on it too: a new connection wakes one of them.
    func add(_ listener: RelayListener, exclusive: Bool) async {
        let promise = group.next().makePromise(of: Void.self)
        post(.addListener(listener, exclusive: exclusive, promise))
        try? await promise.futureResult.get()
    }

    /// Stops accepting on a listening socket (its owner closes it).
    func removeListener(_ fd: Int32) async {
        let promise = group.next().makePromise(of: Void.self)
        post(.removeListener(fd, promise))
        try? await promise.futureResult.get()
    }

    /// Closes a relayed connection (its proxy went down).
    func abort(_ ref: RelayedRef) -> EventLoopFuture<Void> {
        let promise = group.next().makePromise(of: Void.self)
        post(.abort(ref, promise))
        return promise.futureResult
    }

    /// Hands a relayed connection to NIO, where it takes its proxy's toxics.
    func handOver(_ ref: RelayedRef) -> EventLoopFuture<Void> {
        let promise = group.next().makePromise(of: Void.self)
        post(.handOver(ref, promise))
        return promise.futureResult
    }

    /// Stops the thread; listeners and connections must be gone already.
    func shutdown() {
        post(.stop)
    }

    private func post(_ command: Command) {
        let posted = inbox.withLock { inbox -> Bool in
            guard inbox.open else { return false }
            inbox.commands.append(command)
            var one: UInt64 = 1
            _ = write(wake, &one, 8)
            return true
        }
        guard !posted else { return }
        switch command {
        case .addListener(_, _, let promise), .removeListener(_, let promise), .abort(_, let promise), .handOver(_, let promise):
            promise.succeed()
        case .stop:
            break
        }
    }

    // MARK: The loop

    private enum Tag {
        static let wake: UInt64 = 0
        /// Listeners: fd << 2 | 1.
        static func listener(_ fd: Int32) -> UInt64 { UInt64(UInt32(fd)) << 2 | 1 }
        /// Connection sides: generation << 32 | slot << 2 | side << 1 | 0, plus 2 so no tag is 0.
        static func side(slot: Int, generation: UInt32, side: Int) -> UInt64 {
            UInt64(generation) << 32 | UInt64(slot) << 3 | UInt64(side) << 2 | 2
        }
    }

    private func run() {
        let capacity = 256
        let tags = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity)
        let events = UnsafeMutablePointer<UInt32>.allocate(capacity: capacity)
        defer {
            tags.deallocate()
            events.deallocate()
            buffer.deallocate()
            let left = inbox.withLock { inbox -> [Command] in
                inbox.open = false
                close(epoll)
                close(wake)
                return inbox.commands
            }
            for command in left {
                switch command {
                case .addListener(_, _, let promise), .removeListener(_, let promise), .abort(_, let promise), .handOver(_, let promise):
                    promise.succeed()
                case .stop: break
                }
            }
        }
        while true {
            let timeout: Int32 = timed.isEmpty ? -1 : 100
            let count = faultline_epoll_wait(epoll, tags, events, Int32(capacity), timeout)
            if count < 0 {
                if errno == EINTR { continue }
                log.error("relay: epoll_wait failed: \(String(cString: strerror(errno)))")
                return
            }
            for index in 0..<Int(count) {
                let tag = tags[index]
                let mask = events[index]
                if tag == Tag.wake {
                    var value: UInt64 = 0
                    _ = read(wake, &value, 8)
                    if !runCommands() { return }
                } else if tag & 3 == 1 {
                    if let listener = listeners[Int32(truncatingIfNeeded: tag >> 2)] { acceptAll(listener) }
                } else {
                    event(
                        slot: Int((tag >> 3) & 0x1FFF_FFFF), generation: UInt32(truncatingIfNeeded: tag >> 32), side: Int((tag >> 2) & 1), mask: mask)
                }
            }
            if !timed.isEmpty { scanDeadlines() }
        }
    }

    /// Runs posted commands; false when told to stop.
    private func runCommands() -> Bool {
        let commands = inbox.withLock { inbox -> [Command] in
            let taken = inbox.commands
            inbox.commands.removeAll(keepingCapacity: true)
            return taken
        }
        for command in commands {
            switch command {
            case .addListener(let listener, let exclusive, let promise):
                listeners[listener.fd] = listener
                let events = FAULTLINE_EPOLL_IN | FAULTLINE_EPOLL_ET | (exclusive ? FAULTLINE_EPOLL_EXCLUSIVE : 0)
                if faultline_epoll_add(epoll, listener.fd, events, Tag.listener(listener.fd)) != 0 {
                    log.error("relay: cannot watch listener: \(String(cString: strerror(errno)))")
                }
                promise.succeed()
                acceptAll(listener)
            case .removeListener(let fd, let promise):
                if listeners.removeValue(forKey: fd) != nil { _ = faultline_epoll_remove(epoll, fd) }
                promise.succeed()
            case .abort(let ref, let promise):
                if let connection = connection(ref) {
                    finish(connection)
                    promise.succeed()
                } else {
                    afterHandover(ref, promise)
                }
            case .handOver(let ref, let promise):
                if let connection = connection(ref) {
                    if let screen = connection.screen, let toxics = connection.runtime.screenableToxics() {
                        // Still only HTTP toxics: the screen takes them and the connection stays.
                        screen.rescreen(toxics, client: clientAddress(connection, for: toxics))
                        promise.succeed()
                    } else {
                        handOver(connection, promise)
                    }
                } else {
                    afterHandover(ref, promise)
                }
            case .stop:
                return false
            }
        }
        return true
    }

    private func connection(_ ref: RelayedRef) -> RelayedConnection? {
        guard ref.slot < slots.count, generations[ref.slot] == ref.generation else { return nil }
        return slots[ref.slot]
    }

    /// A command for a connection the relay no longer has: done once its handover (if any) is.
    private func afterHandover(_ ref: RelayedRef, _ promise: EventLoopPromise<Void>) {
        if let pending = handovers.withLock({ $0[ref.key] }) {
            pending.cascade(to: promise)
        } else {
            promise.succeed()
        }
    }

    // MARK: Accepting

    private func acceptAll(_ listener: RelayListener) {
        while true {
            let fd = faultline_accept(listener.fd)
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED: continue
                case EAGAIN: return
                default:
                    // Out of descriptors, most likely: what is queued waits for the next event.
                    log.warning("proxy \(listener.runtime.name): accept failed: \(String(cString: strerror(errno)))")
                    return
                }
            }
            admit(fd, listener)
        }
    }

    private func admit(_ fd: Int32, _ listener: RelayListener) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let slot =
            freeSlots.popLast()
            ?? {
                slots.append(nil)
                generations.append(0)
                return slots.count - 1
            }()
        let ref = RelayedRef(relay: self, slot: slot, generation: generations[slot])
        switch listener.runtime.admit(.relayed(ref)) {
        case .refused:
            freeSlots.append(slot)
            close(fd)
        case .toxic:
            freeSlots.append(slot)
            ProxyConnection.accept(fd, runtime: listener.runtime, on: group.next())
        case .relay(let number, let address):
            let connection = RelayedConnection(runtime: listener.runtime, number: number, slot: slot, generation: generations[slot], client: fd)
            slots[slot] = connection
            watch(fd, connection, side: 0)
            connect(connection, to: address)
        case .screen(let number, let address, let toxics):
            let connection = RelayedConnection(runtime: listener.runtime, number: number, slot: slot, generation: generations[slot], client: fd)
            connection.screen = HTTPScreen(
                runtime: listener.runtime, connection: number, toxics: toxics, client: clientAddress(connection, for: toxics))
            slots[slot] = connection
            watch(fd, connection, side: 0)
            connect(connection, to: address)
        }
    }

    /// The client's IP address bytes when a toxic is limited to some clients (looked up once).
    private func clientAddress(_ connection: RelayedConnection, for toxics: [ActiveToxic]) -> [UInt8]? {
        guard HTTPScreen.needsClientAddress(toxics) else { return nil }
        if connection.clientAddress == nil {
            connection.clientAddress = RelayListener.address(of: connection.fds[0], peer: true).flatMap(ProxyConnection.addressBytes)
        }
        return connection.clientAddress
    }

    private func watch(_ fd: Int32, _ connection: RelayedConnection, side: Int) {
        let events = FAULTLINE_EPOLL_IN | FAULTLINE_EPOLL_OUT | FAULTLINE_EPOLL_RDHUP | FAULTLINE_EPOLL_ET
        _ = faultline_epoll_add(epoll, fd, events, Tag.side(slot: connection.slot, generation: connection.generation, side: side))
    }

    private func connect(_ connection: RelayedConnection, to address: SocketAddress) {
        let fd = faultline_tcp_socket(address.protocol.rawValue)
        guard fd >= 0 else {
            connectFailed(connection, reason: String(cString: strerror(errno)))
            return
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        connection.fds[1] = fd
        let result = address.withSockAddr { Glibc.connect(fd, $0, socklen_t($1)) }
        if result != 0 && errno != EINPROGRESS {
            connectFailed(connection, reason: String(cString: strerror(errno)))
            return
        }
        connection.connecting = true
        connection.deadline = now() + 10_000_000_000
        timed.insert(connection.slot)
        watch(fd, connection, side: 1)
    }

    private func connectFailed(_ connection: RelayedConnection, reason: String) {
        log.debug("upstream \(connection.runtime.targetDescription) refused connection \(connection.number): \(reason)")
        if connection.fds[1] >= 0 {
            close(connection.fds[1])
            connection.fds[1] = -1
        }
        connection.connecting = false
        // As on the NIO path: FIN to the client, then read and discard until it closes (closing
        // with unread data would send it a reset), for at most 2 s.
        Glibc.shutdown(connection.fds[0], Int32(SHUT_WR))
        connection.draining = true
        connection.deadline = now() + 2_000_000_000
        timed.insert(connection.slot)
        drain(connection)
    }

    // MARK: Events

    private func event(slot: Int, generation: UInt32, side: Int, mask: UInt32) {
        guard slot < slots.count, generations[slot] == generation, let connection = slots[slot] else { return }
        if mask & (FAULTLINE_EPOLL_IN | FAULTLINE_EPOLL_RDHUP | FAULTLINE_EPOLL_HUP | FAULTLINE_EPOLL_ERR) != 0 {
            connection.readable[side] = true
        }
        if mask & (FAULTLINE_EPOLL_RDHUP | FAULTLINE_EPOLL_HUP | FAULTLINE_EPOLL_ERR) != 0 {
            connection.closing[side] = true
        }
        if mask & (FAULTLINE_EPOLL_OUT | FAULTLINE_EPOLL_HUP | FAULTLINE_EPOLL_ERR) != 0 {
            connection.writable[side] = true
        }
        if connection.draining {
            drain(connection)
            return
        }
        if connection.connecting {
            guard side == 1, connection.writable[1] else { return }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(connection.fds[1], SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                connectFailed(connection, reason: String(cString: strerror(error)))
                return
            }
            connection.connecting = false
            timed.remove(connection.slot)
        }
        pump(connection)
    }

    /// Moves bytes both ways until the sockets have nothing more to give or take.
    private func pump(_ connection: RelayedConnection) {
        repeat {
            connection.repump = false
            for direction in 0..<2 {
                if !pump(connection, direction: direction) { return }
            }
        } while connection.repump
        if connection.screen?.held != nil {
            if connection.ended[0] || connection.ended[1] {
                // A side ended its stream: the connection finishes here, the held request as it came.
                dropScreen(connection)
                pump(connection)
                return
            }
            // A toxic acts on the held request: NIO runs the connection from here.
            handOver(connection, nil)
            return
        }
        if connection.shut[0] && connection.shut[1] { finish(connection) }
    }

    /// The connection is relayed as plain bytes from now on: what the screen had not passed on
    /// goes to the server first.
    private func dropScreen(_ connection: RelayedConnection) {
        guard let screen = connection.screen else { return }
        connection.screen = nil
        connection.repump = true
        if let rest = screen.takeUnpassed(), rest.readableBytes > 0 {
            rest.withUnsafeReadableBytes { hold($0, in: connection, direction: 0) }
        }
    }

    /// Frames `count` bytes just read from `direction`'s source in the screen; returns how many of
    /// the buffer's first bytes go on now (the screen may hold the rest, or pass others).
    private func screen(_ screen: HTTPScreen, _ connection: RelayedConnection, count: Int, direction: Int) -> Int {
        // One buffer for every read the relay screens, so a read costs no allocation.
        screenInput.clear()
        screenInput.writeBytes(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        guard direction == 0 else {
            screen.responseBytes(&screenInput)
            return count
        }
        let passed = screen.requestBytes(&screenInput)
        if let answers = screen.takeAnswers() {
            // Made up by the screen: they follow every response already read, toward the client.
            answers.withUnsafeReadableBytes { hold($0, in: connection, direction: 1) }
            connection.repump = true
        }
        switch passed {
        case .prefix(let count):
            return count
        case .bytes(let bytes):
            if bytes.readableBytes > 0 { bytes.withUnsafeReadableBytes { hold($0, in: connection, direction: 0) } }
            return 0
        }
    }

    /// Direction 0 is client to server (upstream), 1 server to client (downstream); the source is
    /// side `direction`, the destination the other. False when the connection was closed.
    private func pump(_ connection: RelayedConnection, direction: Int) -> Bool {
        let source = direction
        let destination = 1 - direction
        let counters = direction == 0 ? connection.runtime.metrics.upstream : connection.runtime.metrics.downstream
        if connection.pipes[direction] != nil { return splice(connection, direction: direction, counters: counters) }
        while true {
            if connection.bulk[direction] && connection.pending[direction] == nil && !connection.ended[direction] && connection.screen == nil {
                // A bulk stream: from here on the kernel moves its bytes through a pipe.
                connection.bulk[direction] = false
                var fds: (Int32, Int32) = (-1, -1)
                let capacity = withUnsafeMutableBytes(of: &fds) {
                    faultline_relay_pipe($0.baseAddress!.assumingMemoryBound(to: Int32.self), Int32(Self.maximumHeld))
                }
                if capacity > 0 {
                    connection.pipes[direction] = SplicePipe(read: fds.0, write: fds.1, capacity: Int(capacity))
                    return splice(connection, direction: direction, counters: counters)
                }
            }
            // What is held goes first.
            if let pending = connection.pending[direction], connection.writable[destination] {
                let written = pending.withUnsafeReadableBytes { send(connection.fds[destination], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if written >= 0 {
                    counters.sent.add(UInt64(written), ordering: .relaxed)
                    if written == pending.readableBytes {
                        connection.pending[direction] = nil
                    } else {
                        connection.pending[direction]!.moveReaderIndex(forwardBy: written)
                    }
                    continue
                }
                guard writeFailed(connection, side: destination) else { return false }
            }
            let held = connection.pending[direction]?.readableBytes ?? 0
            if connection.ended[direction] {
                passEnd(connection, direction: direction, held: held)
                return true
            }
            // Backpressure: the source is read only while less than the limit waits for the
            // destination (TCP flow control then slows the sender).
            // A request a toxic acts on waits for NIO: the client is not read until it takes over.
            guard connection.readable[source], held < Self.maximumHeld, direction == 1 || connection.screen?.held == nil else { return true }
            let count = recv(connection.fds[source], buffer.baseAddress, buffer.count, 0)
            if count > 0 {
                counters.received.add(UInt64(count), ordering: .relaxed)
                let passed = connection.screen.map { screen($0, connection, count: count, direction: direction) } ?? count
                var written = 0
                if held == 0 && passed > 0 && connection.writable[destination] {
                    written = send(connection.fds[destination], buffer.baseAddress, passed, Int32(MSG_NOSIGNAL))
                    if written < 0 {
                        guard writeFailed(connection, side: destination) else { return false }
                        written = 0
                    }
                    counters.sent.add(UInt64(written), ordering: .relaxed)
                }
                if written < passed {
                    hold(UnsafeRawBufferPointer(rebasing: buffer[written..<passed]), in: connection, direction: direction)
                }
                if connection.screen?.stopped == true { dropScreen(connection) }
                if count == buffer.count {
                    connection.bulk[direction] = true
                } else if !connection.closing[source] {
                    // A short read took all the socket had (as nginx judges with EPOLLRDHUP): the
                    // next bytes bring a new edge, so no read is spent to learn EAGAIN. A peer
                    // that closed (RDHUP) is read on to its end, which brings no new edge.
                    connection.readable[source] = false
                }
                continue
            }
            // The client's end: a head it left incomplete goes on as it came.
            if count == 0 && direction == 0 { dropScreen(connection) }
            if let result = readFailed(count, connection, direction: direction, drained: true) { return result }
        }
    }

    /// `pump` for a direction whose bytes go through a pipe with splice(2), never through user
    /// space: the same steps, the pipe in the place of the held buffer.
    private func splice(_ connection: RelayedConnection, direction: Int, counters: DirectionCounters) -> Bool {
        let source = direction
        let destination = 1 - direction
        var pipe = connection.pipes[direction]!
        defer { if connection.fds[0] >= 0 { connection.pipes[direction] = pipe } }
        while true {
            if pipe.held > 0 && connection.writable[destination] {
                let moved = faultline_splice(pipe.read, connection.fds[destination], pipe.held)
                if moved > 0 {
                    counters.sent.add(UInt64(moved), ordering: .relaxed)
                    pipe.held -= moved
                    continue
                }
                guard writeFailed(connection, side: destination) else { return false }
            }
            if connection.ended[direction] {
                passEnd(connection, direction: direction, held: pipe.held)
                return true
            }
            guard connection.readable[source], pipe.held < pipe.capacity else { return true }
            let moved = faultline_splice(connection.fds[source], pipe.write, pipe.capacity - pipe.held)
            if moved > 0 {
                counters.received.add(UInt64(moved), ordering: .relaxed)
                pipe.held += moved
                continue
            }
            // EAGAIN also means a full pipe (its slots can fill before its byte capacity): only an
            // empty pipe proves the socket empty. A pipe that holds bytes has a destination that
            // is not writable, whose EPOLLOUT resumes this loop.
            if let result = readFailed(moved, connection, direction: direction, drained: pipe.held == 0) { return result }
        }
    }

    /// A read from `direction`'s source returned `result` (0 or less): 0 is the end of its stream
    /// and EINTR is retried (nil: the pump goes on); EAGAIN marks the source drained when `drained`
    /// (its EPOLLIN resumes the pump); anything else closes the connection (false).
    private func readFailed(_ result: Int, _ connection: RelayedConnection, direction: Int, drained: Bool) -> Bool? {
        if result == 0 {
            connection.ended[direction] = true
            return nil
        }
        switch errno {
        case EINTR: return nil
        case EAGAIN:
            if drained { connection.readable[direction] = false }
            return true
        default:
            fail(connection, side: direction, error: errno)
            return false
        }
    }

    /// A write to `side` failed: EAGAIN marks it not writable (its EPOLLOUT resumes the pump),
    /// EINTR is retried by the pump's loop, anything else closes the connection (false).
    private func writeFailed(_ connection: RelayedConnection, side: Int) -> Bool {
        switch errno {
        case EINTR: return true
        case EAGAIN:
            connection.writable[side] = false
            return true
        default:
            fail(connection, side: side, error: errno)
            return false
        }
    }

    /// The direction's source sent its FIN: once nothing is held, FIN to the destination.
    private func passEnd(_ connection: RelayedConnection, direction: Int, held: Int) {
        guard held == 0, !connection.shut[direction] else { return }
        Glibc.shutdown(connection.fds[1 - direction], Int32(SHUT_WR))
        connection.shut[direction] = true
    }

    /// What a direction may hold for a destination that is not taking bytes (as NIO's write
    /// buffer high-water mark on the toxic path).
    static let maximumHeld = 1 << 20

    /// Appends bytes the destination did not take to what the direction holds.
    private func hold(_ bytes: UnsafeRawBufferPointer, in connection: RelayedConnection, direction: Int) {
        guard var pending = connection.pending[direction] else {
            connection.pending[direction] = ByteBuffer(bytes: bytes)
            return
        }
        connection.pending[direction] = nil  // unique, so appending does not copy
        if pending.readerIndex > pending.capacity / 2 { pending.discardReadBytes() }
        pending.writeBytes(bytes)
        connection.pending[direction] = pending
    }

    /// A socket error: a reset (or a write to a reset peer) is passed on as a reset, anything else
    /// closes both sides.
    private func fail(_ connection: RelayedConnection, side: Int, error: Int32) {
        if error == ECONNRESET || error == EPIPE {
            let other = connection.fds[1 - side]
            if other >= 0 {
                var noLinger = linger(l_onoff: 1, l_linger: 0)
                setsockopt(other, SOL_SOCKET, SO_LINGER, &noLinger, socklen_t(MemoryLayout<linger>.size))
            }
        }
        finish(connection)
    }

    /// Reads and discards from a client whose upstream failed, until it closes.
    private func drain(_ connection: RelayedConnection) {
        while true {
            let count = recv(connection.fds[0], buffer.baseAddress, buffer.count, 0)
            if count > 0 { continue }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && errno == EAGAIN { return }
            finish(connection)
            return
        }
    }

    private func scanDeadlines() {
        let time = now()
        guard time >= nextScan else { return }
        nextScan = time + 100_000_000
        for slot in timed {
            guard let connection = slots[slot] else {
                timed.remove(slot)
                continue
            }
            guard time >= connection.deadline else { continue }
            if connection.connecting {
                connectFailed(connection, reason: "connect timed out")
            } else {
                finish(connection)
            }
        }
    }

    // MARK: Ending

    /// Closes both sockets and leaves the proxy's books.
    private func finish(_ connection: RelayedConnection) {
        for side in 0..<2 where connection.fds[side] >= 0 { close(connection.fds[side]) }
        connection.fds = Pair(-1, -1)
        connection.closePipes()
        release(connection)
        connection.runtime.unregister(connection.number)
    }

    private func release(_ connection: RelayedConnection) {
        slots[connection.slot] = nil
        generations[connection.slot] &+= 1
        freeSlots.append(connection.slot)
        timed.remove(connection.slot)
    }

    /// Moves a connection to NIO with what the relay held for it.
    private func handOver(_ connection: RelayedConnection, _ promise: EventLoopPromise<Void>?) {
        // A connection that is failing, or one side of which has ended its stream, finishes here.
        if connection.draining || connection.ended[0] || connection.ended[1] {
            if connection.screen != nil {
                dropScreen(connection)
                if !connection.draining { pump(connection) }
            }
            promise?.succeed()
            return
        }
        for side in 0..<2 where connection.fds[side] >= 0 { _ = faultline_epoll_remove(epoll, connection.fds[side]) }
        var server: Int32? = connection.fds[1] >= 0 ? connection.fds[1] : nil
        if connection.connecting, let fd = server {
            // NIO connects again; the half-made connection is dropped.
            close(fd)
            server = nil
        }
        for direction in 0..<2 {
            // Bytes in a pipe are held bytes like any other (the buffer is empty while a pipe is used).
            guard let pipe = connection.pipes[direction], pipe.held > 0 else { continue }
            var bytes = ByteBuffer()
            bytes.reserveCapacity(pipe.held)
            var left = pipe.held
            while left > 0 {
                let count = read(pipe.read, buffer.baseAddress, min(left, buffer.count))
                if count <= 0 {
                    if count < 0 && errno == EINTR { continue }
                    break
                }
                bytes.writeBytes(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                left -= count
            }
            connection.pending[direction] = bytes
        }
        connection.closePipes()
        var handover = Handover(
            number: connection.number, client: connection.fds[0], server: server, pending: [connection.pending[0], connection.pending[1]])
        if let screen = connection.screen {
            // The session goes on where the screen stopped.
            handover.resume = screen.resume()
            connection.screen = nil
        }
        let ref = RelayedRef(relay: self, slot: connection.slot, generation: connection.generation)
        release(connection)
        let done = ProxyConnection.adopt(handover, runtime: connection.runtime, on: group.next())
        handovers.withLock { $0[ref.key] = done }
        done.whenComplete { [self] _ in _ = handovers.withLock { $0.removeValue(forKey: ref.key) } }
        if let promise { done.cascade(to: promise) }
    }
}

/// What NIO takes over from the relay: the sockets, and bytes read but not yet written
/// (`pending[0]` for the server, `pending[1]` for the client).
struct Handover: Sendable {
    var number: UInt64
    var client: Int32
    /// nil when the relay was still connecting: NIO connects anew.
    var server: Int32?
    var pending: [ByteBuffer?]
    /// For a connection the relay screened: where its HTTP session goes on from. Without it,
    /// bytes may be in flight mid-message, so a session waits for a request to start.
    var resume: HTTPResume?
}

/// A relayed connection as the proxy's books hold it.
struct RelayedRef: Sendable {
    let relay: Relay
    let slot: Int
    let generation: UInt32

    var key: UInt64 { UInt64(generation) << 32 | UInt64(slot) }
}

/// One relayed connection: side 0 is the client, side 1 the upstream server.
final class RelayedConnection {
    let runtime: ProxyRuntime
    let number: UInt64
    let slot: Int
    let generation: UInt32
    var fds: Pair<Int32>
    var readable = Pair(false, false)
    var writable = Pair(false, false)
    /// By direction: the source sent its FIN.
    var ended = Pair(false, false)
    /// By side: epoll said the peer closed or failed (RDHUP, HUP, ERR): read it until its end.
    var closing = Pair(false, false)
    /// By direction: the destination was half-closed after everything was written.
    var shut = Pair(false, false)
    var pending = Pair<ByteBuffer?>(nil, nil)
    /// By direction: a read filled the relay's whole buffer (the next step moves it to a pipe).
    var bulk = Pair(false, false)
    /// By direction: the pipe a bulk stream's bytes go through.
    var pipes = Pair<SplicePipe?>(nil, nil)
    var connecting = false
    var draining = false
    var deadline: UInt64 = 0
    /// For a proxy with only HTTP toxics: frames and rolls each request; nil: plain bytes.
    var screen: HTTPScreen?
    /// The client's address bytes, once a toxic limited to some clients needed them.
    var clientAddress: [UInt8]?
    /// Something changed that one direction's pump must see again (the screen was dropped).
    var repump = false

    init(runtime: ProxyRuntime, number: UInt64, slot: Int, generation: UInt32, client: Int32) {
        self.runtime = runtime
        self.number = number
        self.slot = slot
        self.generation = generation
        fds = Pair(client, -1)
    }
}

extension RelayedConnection {
    func closePipes() {
        for direction in 0..<2 {
            guard let pipe = pipes[direction] else { continue }
            close(pipe.read)
            close(pipe.write)
            pipes[direction] = nil
        }
    }
}

/// A pipe between a bulk stream's source and destination, and how many bytes it holds.
struct SplicePipe {
    let read: Int32
    let write: Int32
    let capacity: Int
    var held = 0
}

/// Two values indexed 0 and 1, stored inline (a connection's two sides or two directions).
struct Pair<Value> {
    var first: Value
    var second: Value

    init(_ first: Value, _ second: Value) {
        self.first = first
        self.second = second
    }

    subscript(index: Int) -> Value {
        get { index == 0 ? first : second }
        set {
            if index == 0 { first = newValue } else { second = newValue }
        }
    }
}

/// A proxy's listening socket in the relay.
struct RelayListener: Sendable {
    let fd: Int32
    let runtime: ProxyRuntime

    /// Binds and listens on `address` (non-blocking), returning the socket and the bound address.
    static func bind(_ address: SocketAddress) throws(ProxyError) -> (fd: Int32, address: SocketAddress) {
        let fd = faultline_tcp_socket(address.protocol.rawValue)
        guard fd >= 0 else { throw ProxyError(.serverError, "socket: \(Self.lastError())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if address.protocol == .inet6 {
            // `::` takes IPv4 clients too (dual-stack, as Go listens); any other IPv6 address only its own.
            var v6Only: Int32 = address.ipAddress == "::" ? 0 : 1
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6Only, socklen_t(MemoryLayout<Int32>.size))
        }
        if address.withSockAddr({ Glibc.bind(fd, $0, socklen_t($1)) }) != 0 {
            let reason = lastError()
            close(fd)
            throw ProxyError(.serverError, "bind: \(reason)")
        }
        if listen(fd, 4096) != 0 {
            let reason = lastError()
            close(fd)
            throw ProxyError(.serverError, "listen: \(reason)")
        }
        return (fd, Self.address(of: fd, peer: false) ?? address)
    }

    /// A socket's own IP address (getsockname) or its peer's (getpeername); nil when it has none.
    static func address(of fd: Int32, peer: Bool) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee) } }
        case AF_INET6:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee) } }
        default:
            return nil
        }
    }

    private static func lastError() -> String { String(cString: strerror(errno)).lowercased() }
}

private func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
