import FaultlineKit
import NIOCore
import Synchronization

/// What an HTTP toxic did, counted across every connection of its proxy.
final class HTTPToxicCounters: Sendable {
    /// Requests whose roll fired and that the toxic acted on.
    let affected = Atomic<UInt64>(0)
    /// Requests that matched (before the roll).
    let matched = Atomic<UInt64>(0)
    /// Connections whose traffic was not HTTP/1.x (or stopped being it): passed through untouched.
    let notHTTP = Atomic<UInt64>(0)
    /// Faults under way now (counted only for a toxic with `max_active_faults`).
    let active = Atomic<Int>(0)
    /// Requests whose roll fired but that were left alone: `max_active_faults` were under way.
    let overflow = Atomic<UInt64>(0)

    /// Takes one of `limit` places for a fault; false when all are taken.
    func tryActivate(limit: Int) -> Bool {
        var current = active.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = active.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// One line for the fault window in the journal and reports.
    var summary: String {
        let affected = affected.load(ordering: .relaxed)
        let matched = matched.load(ordering: .relaxed)
        var text = "affected \(affected) of \(matched) matching request\(matched == 1 ? "" : "s")"
        let overflow = overflow.load(ordering: .relaxed)
        if overflow > 0 {
            text += "; \(overflow) more left alone while max_active_faults were under way"
        }
        let notHTTP = notHTTP.load(ordering: .relaxed)
        if notHTTP > 0 {
            text += "; \(notHTTP) connection\(notHTTP == 1 ? " was" : "s were") not HTTP/1.x, passed through untouched (HTTP toxics could not apply)"
        }
        return text
    }
}

/// An HTTP toxic as one connection runs it (a class: requests read it without copying what the
/// toxic holds).
final class HTTPRuleState {
    let toxic: ActiveToxic
    let rule: HTTPToxicRule
    let counters: HTTPToxicCounters
    /// The base of this toxic's per-request generators on this connection.
    let seed: UInt64

    var name: String { toxic.definition.name }

    /// The toxic as connection `connection` of `runtime` runs it: its per-request generators
    /// depend on the run's seed, the proxy, the toxic and the connection, nothing else.
    convenience init?(_ toxic: ActiveToxic, runtime: ProxyRuntime, connection: UInt64) {
        guard let rule = toxic.prepared.http, let counters = toxic.httpCounters else { return nil }
        var random = SeededRandom(seed: runtime.seed, stream: "\(runtime.name)\u{1F}\(toxic.definition.name)\u{1F}\(connection)")
        self.init(toxic: toxic, rule: rule, counters: counters, seed: random.next())
    }

    init(toxic: ActiveToxic, rule: HTTPToxicRule, counters: HTTPToxicCounters, seed: UInt64) {
        self.toxic = toxic
        self.rule = rule
        self.counters = counters
        self.seed = seed
    }

    /// What the toxic decides for a connection's `number`th request (counted from 1).
    enum Roll {
        /// The request does not match, or the toxic does not apply to it.
        case skip
        /// A downstream toxic that also matches on the response: its roll, for when the response head arrives.
        case conditional(HTTPFault?)
        /// It matched: the fault, or nil when the roll did not fire.
        case decided(HTTPFault?)
    }

    /// A connection's traffic is not HTTP/1.x (`reason`): each toxic counts it, and the log says so.
    static func passedUntouched(_ reason: String, rules: [HTTPRuleState], runtime: ProxyRuntime, connection: UInt64) {
        for rule in rules { rule.counters.notHTTP.add(1, ordering: .relaxed) }
        runtime.log.notice("proxy \(runtime.name): connection \(connection): \(reason); HTTP toxics cannot apply, passing it through untouched")
    }

    /// Rolls for one request. The same request number on the same connection rolls the same, so
    /// the relay's screen and the session agree on every request (``HTTPScreen``).
    /// - Parameter withFault: whether to make the fault (the screen only asks whether one fires).
    func roll(_ head: HTTPToxicRequest, number: UInt64, withFault: Bool = true) -> Roll {
        guard rule.match.matches(head), let toxicity = rule.toxicity(for: head, configured: toxic.definition.toxicity) else { return .skip }
        var random = SeededRandom(seed: seed &+ number &* 0x9E37_79B9_7F4A_7C15)
        let fires = random.nextUnit() < toxicity
        let fault: HTTPFault? = fires ? (withFault ? rule.fault(for: head, random: &random) : .all([])) : nil
        if toxic.definition.stream == .downstream && rule.match.needsResponse { return .conditional(fault) }
        return .decided(fault)
    }
}

/// The HTTP/1.x side of one proxied connection that carries HTTP toxics: frames requests and
/// responses, decides per request which toxics fire, and applies their faults, passing every
/// byte no fault touches as it came.
///
/// Confined to the connection's event loop, like the links it feeds: what it lets through enters
/// each link's chain of byte toxics at its start. A message that is delayed holds what follows it
/// on the connection too, so order is kept (pipelined responses stay in request order, and a
/// response the proxy makes up waits for the responses of earlier requests).
final class HTTPSession {
    private unowned let upstream: Link
    private unowned let downstream: Link
    private weak var connection: ProxyConnection?
    private let runtime: ProxyRuntime
    private let connectionNumber: UInt64
    private(set) var rules: [HTTPRuleState] = []

    private var requests = HTTPFraming(role: .request)
    private var responses = HTTPFraming(role: .response)
    /// Requests in flight, oldest first: the responses to come, in order.
    private var exchanges = ChunkQueue<Exchange>()
    private var requestCount: UInt64 = 0
    /// Nothing is parsed any more: the traffic is not HTTP/1.x, or was upgraded.
    private var passThrough = false
    /// Added to a live connection: wait for the start of a request before parsing.
    private var resyncing: Bool
    private var awaitingResponseStart = false
    /// A reset or close was sent: what arrives later is dropped.
    private var finished = false

    private var up: Outbox
    private var down: Outbox
    private var touchedOther = false

    // The message being read in each direction.
    private var request = MessageState()
    private var response = MessageState()

    private struct Exchange {
        var isHEAD: Bool
        var isCONNECT: Bool
        var faults: [HTTPFault]
        /// Downstream toxics whose match looks at the response: decided when its head arrives.
        var conditional: [ConditionalFault] = []
        /// Made up by the proxy: the request was not forwarded.
        var synthetic: HTTPSyntheticResponse?
        /// Not forwarded, and the connection ends instead of an answer: reset (true) or close.
        var dropReset: Bool?
        var syntheticDelay: UInt64 = 0
        /// Close the connection after the made-up response (the client expects it, or its
        /// request body is left unread).
        var closeAfter: Bool
        /// Toxics with `max_active_faults` whose fault this exchange holds a place of.
        var activated: [HTTPToxicCounters] = []
        /// The client waits for `100 Continue` before a body the proxy holds (for a merge): the
        /// proxy sends it once this exchange is at the front, after every earlier response.
        var owesContinue = false

        var isAnsweredHere: Bool { synthetic != nil || dropReset != nil }
    }

    /// A downstream toxic's roll for one request, applied if the response matches.
    private struct ConditionalFault {
        let match: HTTPRequestMatch
        let counters: HTTPToxicCounters
        /// nil when the roll did not fire.
        let fault: HTTPFault?
    }

    private struct MessageState {
        var discard = false
        var delay: UInt64 = 0
        var resetAfter: Int?
        var truncateAfter: Int?
        var replacement: [UInt8]?
        var isHEAD = false
        /// A 1xx response: the final one is still to come for the same request.
        var isInterim = false
        /// JSON merge patches for the body: the head waits until the whole body is read.
        var mergePatches: [Value] = []
        var heldRequest: HTTPToxicRequest?
        var heldResponse: HTTPFraming.ResponseHead?
        var collected = ByteBuffer()
        var chunked = false
        /// Body bytes per second, and when the bytes paced so far are due.
        var throttle: UInt64?
        var paceDue: UInt64 = 0
        /// Whether a cut (reset or truncation) waits for body bytes.
        var cutsBody: Bool { resetAfter != nil || truncateAfter != nil }
        var isHeld: Bool { heldRequest != nil || heldResponse != nil }
    }

    /// Places of `max_active_faults` taken when the response being read was judged. Kept out of
    /// `response`: a cut in the middle of sending it ends the connection, and ``kill()`` gives them back.
    private var responseActivated: [HTTPToxicCounters] = []

    /// The most of a body held to merge a JSON patch into; a longer one passes unchanged.
    static let maximumMergedBody = 16 * 1024 * 1024

    /// - Parameter midStream: the connection has carried bytes already, so parsing waits for a
    ///   request to start.
    ///   - resume: where the relay's screen stopped (it passed the connection's requests so far):
    ///     the framing of both streams, the responses still to come, and the requests' count, so
    ///     the next request rolls as it would have here.
    init(connection: ProxyConnection, midStream: Bool, resume: HTTPResume? = nil) {
        if let resume {
            requests = resume.requests
            responses = resume.responses
            for exchange in resume.inFlight {
                exchanges.append(Exchange(isHEAD: exchange.isHEAD, isCONNECT: exchange.isCONNECT, faults: [], closeAfter: false))
            }
            response.isInterim = resume.interim
            requestCount = resume.requestCount
        }
        upstream = connection.upstream
        downstream = connection.downstream
        self.connection = connection
        runtime = connection.runtime
        connectionNumber = connection.number
        resyncing = midStream && resume == nil
        up = Outbox(link: connection.upstream)
        down = Outbox(link: connection.downstream)
    }

    // MARK: Toxic changes

    func add(_ toxic: ActiveToxic) {
        guard let state = HTTPRuleState(toxic, runtime: runtime, connection: connectionNumber) else { return }
        rules.append(state)
        if passThrough { state.counters.notHTTP.add(1, ordering: .relaxed) }
    }

    func update(_ toxic: ActiveToxic) {
        guard let index = rules.firstIndex(where: { $0.name == toxic.definition.name }), let rule = toxic.prepared.http else { return }
        rules[index] = HTTPRuleState(toxic: toxic, rule: rule, counters: rules[index].counters, seed: rules[index].seed)
    }

    /// Removes a toxic; what the session held back is released at once, as a removed toxic does.
    func remove(named name: String) {
        guard let index = rules.firstIndex(where: { $0.name == name }) else { return }
        rules.remove(at: index)
        up.releaseAll()
        down.releaseAll()
    }

    // MARK: Bytes from the sockets

    func receive(_ buffer: ByteBuffer, from direction: ToxicStream) {
        guard !finished else { return }
        var input = buffer
        if direction == .upstream { readRequests(&input) } else { readResponses(&input) }
        if touchedOther {
            touchedOther = false
            (direction == .upstream ? downstream : upstream).afterEvent()
        }
    }

    func sourceReachedEnd(_ direction: ToxicStream) {
        guard !finished else { return }
        if direction == .upstream {
            if let rest = requests.becomeOpaque() { up.send(rest, delay: 0) }
            up.sendEnd()
        } else {
            if let rest = responses.becomeOpaque() { down.send(rest, delay: 0) }
            // A body that runs until the close and is merged: it goes now.
            if response.isHeld { flushHeld(&response, to: down, direction: .downstream) }
            // A body that runs until the close and is replaced: the replacement goes now.
            if let replacement = response.replacement, !response.isHEAD {
                down.send(ByteBuffer(bytes: replacement), delay: response.delay)
                response.replacement = nil
            }
            down.sendEnd()
        }
    }

    /// The connection is closing: timers stop and nothing more passes.
    func kill() {
        finished = true
        up.cancel()
        down.cancel()
        while let exchange = exchanges.popFirst() { Self.release(exchange.activated) }
        Self.release(responseActivated)
        responseActivated = []
    }

    static func release(_ activated: [HTTPToxicCounters]) {
        for counters in activated { counters.active.subtract(1, ordering: .relaxed) }
    }

    /// Takes a place of the toxic's `max_active_faults`, if it has one; false when they are taken.
    static func activate(_ match: HTTPRequestMatch, _ counters: HTTPToxicCounters, into activated: inout [HTTPToxicCounters]) -> Bool {
        guard let limit = match.maxActiveFaults else { return true }
        guard counters.tryActivate(limit: limit) else {
            counters.overflow.add(1, ordering: .relaxed)
            return false
        }
        activated.append(counters)
        return true
    }

    /// The exchange at the front is done: its places are given back.
    private func finishExchange() {
        if let exchange = exchanges.popFirst() { Self.release(exchange.activated) }
    }

    // MARK: Requests

    private func readRequests(_ input: inout ByteBuffer) {
        if passThrough {
            up.send(input, delay: request.delay)
            return
        }
        if resyncing {
            guard Self.startsRequest(input) else {
                up.send(input, delay: 0)
                return
            }
            resyncing = false
            awaitingResponseStart = true
        }
        while !finished, let event = requests.next(&input) {
            switch event {
            case .head(let raw, .request(let head)): requestHead(raw, head)
            case .head: break
            case .body(let bytes): requestBody(bytes)
            case .end: requestEnded()
            case .opaque(let bytes): up.send(bytes, delay: request.delay)
            case .notHTTP(let reason, let bytes):
                stopParsing(reason)
                up.send(bytes, delay: request.delay)
            }
        }
    }

    private func requestHead(_ raw: ByteBuffer, _ head: HTTPToxicRequest) {
        requestCount += 1
        var requestFaults: [HTTPFault] = []
        var responseFaults: [HTTPFault] = []
        var conditional: [ConditionalFault] = []
        var activated: [HTTPToxicCounters] = []
        for rule in rules {
            let fault: HTTPFault?
            switch rule.roll(head, number: requestCount) {
            case .skip: continue
            case .conditional(let rolled):
                conditional.append(ConditionalFault(match: rule.rule.match, counters: rule.counters, fault: rolled))
                continue
            case .decided(let rolled): fault = rolled
            }
            rule.counters.matched.add(1, ordering: .relaxed)
            guard let fault, Self.activate(rule.rule.match, rule.counters, into: &activated) else { continue }
            rule.counters.affected.add(1, ordering: .relaxed)
            if rule.toxic.definition.stream == .upstream {
                requestFaults.append(contentsOf: fault.flattened)
            } else {
                responseFaults.append(contentsOf: fault.flattened)
            }
        }
        let isCONNECT = head.method == "CONNECT"
        let expectsContinue = head.headers.lists("expect", "100-continue")
        var exchange = Exchange(
            isHEAD: head.method == "HEAD", isCONNECT: isCONNECT, faults: responseFaults, conditional: conditional,
            closeAfter: head.closesAfterAnswer, activated: activated)
        request = MessageState()
        if requestFaults.isEmpty {
            exchanges.append(exchange)
            up.send(raw, delay: 0)
            return
        }
        var edited = head
        var edits = false
        for fault in requestFaults {
            switch fault {
            case .respond(let answer): if !exchange.isAnsweredHere { exchange.synthetic = answer }
            case .drop(let reset): if !exchange.isAnsweredHere { exchange.dropReset = reset }
            case .delay(let nanoseconds): request.delay &+= nanoseconds
            case .reset(let bytes): request.resetAfter = min(request.resetAfter ?? .max, max(0, bytes))
            case .truncateBody(let bytes): request.truncateAfter = min(request.truncateAfter ?? .max, max(0, bytes))
            case .editHeaders(let changes):
                for change in changes { edited.headers.apply(change) }
                edits = true
            case .editRequest(let changes):
                for change in changes { edited.apply(change) }
                edits = true
            case .replaceBody(let body): request.replacement = body
            case .mergeJSON(let patch): request.mergePatches.append(patch)
            case .throttleBody(let rate): request.throttle = min(request.throttle ?? .max, max(1, rate))
            case .setStatus, .all: break  // response faults; `all` is flattened
            }
        }
        if exchange.isAnsweredHere {
            // Answered here: the request and its body never reach the server.
            exchange.syntheticDelay = request.delay
            request.discard = true
            exchanges.append(exchange)
            sendReadySynthetics()
            return
        }
        let holdsBody = request.replacement == nil && !request.mergePatches.isEmpty
        // The server never sees the expectation of a held request: the proxy answers it.
        exchange.owesContinue = holdsBody && expectsContinue
        exchanges.append(exchange)
        if request.replacement != nil {
            Self.replaceBody(of: &request, headers: &edited.headers)
            edits = true
        } else if holdsBody {
            // The head waits for the body: its length is known once the patch is merged.
            if expectsContinue { edited.headers.apply(.remove(name: "expect")) }
            request.heldRequest = edited
            request.chunked = Self.isChunked(head.headers)
            sendOwedContinue()
            return
        }
        up.send(edits ? edited.serialized() : raw, delay: request.delay)
        if request.resetAfter == 0 {
            cut(.upstream, reset: true)
        } else if request.truncateAfter == 0 && request.replacement == nil {
            cut(.upstream, reset: false)
        }
    }

    private func requestBody(_ bytes: ByteBuffer) {
        if request.discard { return }
        if request.heldRequest != nil {
            collect(bytes, in: &request, to: up, direction: .upstream)
            return
        }
        send(bytes, in: &request, to: up, direction: .upstream)
    }

    private func requestEnded() {
        if request.isHeld {
            flushHeld(&request, to: up, direction: .upstream)
        } else if let replacement = request.replacement {
            up.send(ByteBuffer(bytes: replacement), delay: request.delay)
            if request.truncateAfter != nil { cut(.upstream, reset: false) }
        }
        request = MessageState()
    }

    /// Keeps body bytes of a message whose head waits for a merge; past the limit, gives up the
    /// merge and sends what it held as it came.
    private func collect(_ bytes: ByteBuffer, in message: inout MessageState, to outbox: Outbox, direction: ToxicStream) {
        message.collected.writeImmutableBuffer(bytes)
        guard message.collected.readableBytes > Self.maximumMergedBody else { return }
        runtime.log.notice(
            "proxy \(runtime.name): connection \(connectionNumber): a body over \(Self.maximumMergedBody) bytes passes without its JSON merge patch")
        message.mergePatches = []
        flushHeld(&message, to: outbox, direction: direction)
    }

    /// Sends a held head and its body: merged with the patches when the body is JSON, else as it came.
    private func flushHeld(_ message: inout MessageState, to outbox: Outbox, direction: ToxicStream) {
        var body = message.collected
        var head: ByteBuffer
        let merged =
            message.mergePatches.isEmpty
            ? nil
            : Self.dechunked(Array(body.readableBytesView), chunked: message.chunked).flatMap { Self.merged($0, patches: message.mergePatches) }
        if var request = message.heldRequest {
            if let merged { Self.reframe(&request.headers, length: merged.count) }
            head = request.serialized()
        } else if var response = message.heldResponse {
            if let merged { Self.reframe(&response.headers, length: merged.count) }
            head = response.serialized()
        } else {
            return
        }
        if let merged { body = ByteBuffer(bytes: merged) }
        message.heldRequest = nil
        message.heldResponse = nil
        message.collected = ByteBuffer()
        outbox.send(head, delay: message.delay)
        send(body, in: &message, to: outbox, direction: direction)
    }

    /// A message whose body is replaced: the replacement merge-patched if asked, its length in the
    /// head, the original body dropped; a truncation cuts the replacement instead.
    private static func replaceBody(of message: inout MessageState, headers: inout [HTTPHeaderField]) {
        guard var replacement = message.replacement else { return }
        if !message.mergePatches.isEmpty { replacement = merged(replacement, patches: message.mergePatches) ?? replacement }
        reframe(&headers, length: replacement.count)
        message.discard = true
        if let limit = message.truncateAfter, limit < replacement.count {
            replacement = Array(replacement.prefix(limit))
        } else {
            message.truncateAfter = nil
        }
        message.replacement = replacement
    }

    /// Header fields for a body of `length` bytes, sent whole.
    private static func reframe(_ headers: inout [HTTPHeaderField], length: Int) {
        headers.apply(.remove(name: "transfer-encoding"))
        headers.apply(.set(name: "Content-Length", value: String(length)))
    }

    private static func isChunked(_ headers: [HTTPHeaderField]) -> Bool {
        guard let encoding = headers.last(where: { $0.name.caseInsensitiveEquals("transfer-encoding") }) else { return false }
        return HTTPFraming.lastCodingIsChunked(encoding.value.utf8)
    }

    /// The body with the patches merged into it (RFC 7396), or nil when it is not JSON.
    static func merged(_ body: [UInt8], patches: [Value]) -> [UInt8]? {
        guard var value = try? JSONReader.value(String(decoding: body, as: UTF8.self)) else { return nil }
        for patch in patches { value = value.mergePatched(with: patch) }
        return Array(JSONWriter.string(value, pretty: false).utf8)
    }

    /// A body's data without chunk framing; nil when the framing is broken.
    static func dechunked(_ bytes: [UInt8], chunked: Bool) -> [UInt8]? {
        guard chunked else { return bytes }
        var data: [UInt8] = []
        var index = 0
        while true {
            guard let lineEnd = bytes[index...].firstIndex(of: 10) else { return nil }
            let sizeText = bytes[index..<lineEnd].prefix { $0 != UInt8(ascii: ";") && $0 != 13 && $0 != 32 && $0 != 9 }
            guard let size = Int(String(decoding: sizeText, as: UTF8.self), radix: 16), size >= 0 else { return nil }
            index = lineEnd + 1
            if size == 0 { return data }
            guard size <= bytes.count - index else { return nil }
            data += bytes[index..<(index + size)]
            index += size
            // The CRLF after the chunk's data.
            while index < bytes.count, bytes[index] == 13 || bytes[index] == 10 {
                index += 1
                if bytes[index - 1] == 10 { break }
            }
        }
    }

    /// Sends body bytes, cutting the connection once a reset or truncation's count is reached.
    private func send(_ bytes: ByteBuffer, in message: inout MessageState, to outbox: Outbox, direction: ToxicStream) {
        guard message.cutsBody else {
            pace(bytes, in: &message, to: outbox)
            return
        }
        let limit = min(message.resetAfter ?? .max, message.truncateAfter ?? .max)
        let count = min(limit, bytes.readableBytes)
        if count > 0 { pace(bytes.getSlice(at: bytes.readerIndex, length: count)!, in: &message, to: outbox) }
        if message.resetAfter != nil { message.resetAfter! -= count }
        if message.truncateAfter != nil { message.truncateAfter! -= count }
        if message.resetAfter == 0 {
            cut(direction, reset: true)
        } else if message.truncateAfter == 0 {
            cut(direction, reset: false)
        }
    }

    /// Sends body bytes after the message's delay, at most at its throttle's rate: in pieces of
    /// 50 ms each, every piece due when the ones before it have had their time.
    private func pace(_ bytes: ByteBuffer, in message: inout MessageState, to outbox: Outbox) {
        guard let rate = message.throttle else {
            outbox.send(bytes, delay: message.delay)
            return
        }
        let now = outbox.now
        message.paceDue = max(message.paceDue, now &+ message.delay)
        let piece = Int(max(1, min(rate / 20, 64 * 1024)))
        var rest = bytes
        while rest.readableBytes > 0, let slice = rest.readSlice(length: min(piece, rest.readableBytes)) {
            message.paceDue &+= UInt64(slice.readableBytes) &* 1_000_000_000 / rate
            outbox.send(slice, delay: message.paceDue &- now)
        }
    }

    /// Ends the connection after what was sent in `direction`: with RST, or with FIN (truncation).
    private func cut(_ direction: ToxicStream, reset: Bool) {
        let outbox = direction == .upstream ? up : down
        outbox.sendCut(reset: reset)
        finished = true
    }

    // MARK: Responses

    private func readResponses(_ input: inout ByteBuffer) {
        if passThrough || resyncing {
            down.send(input, delay: response.delay)
            return
        }
        if awaitingResponseStart {
            guard Self.startsResponse(input) else {
                down.send(input, delay: 0)
                return
            }
            awaitingResponseStart = false
        }
        while !finished {
            let front = exchanges.first
            responses.nextResponseToHEAD = front?.isHEAD ?? false
            responses.nextResponseToCONNECT = front?.isCONNECT ?? false
            guard let event = responses.next(&input) else { break }
            switch event {
            case .head(let raw, .response(let head)): responseHead(raw, head)
            case .head: break
            case .body(let bytes): responseBody(bytes)
            case .end: responseEnded()
            case .opaque(let bytes): down.send(bytes, delay: response.delay)
            case .notHTTP(let reason, let bytes):
                stopParsing(reason)
                down.send(bytes, delay: response.delay)
            }
        }
    }

    private func responseHead(_ raw: ByteBuffer, _ start: HTTPFraming.ResponseStart) {
        response = MessageState()
        guard let exchange = exchanges.first else {
            // A response nobody asked for (a 408 before closing): passed on as it is.
            down.send(raw, delay: 0)
            return
        }
        response.isHEAD = exchange.isHEAD
        let status = start.status
        if responses.isOpaque {
            // The framing took it for an upgrade (101) or the tunnel a CONNECT asked for (2xx).
            down.send(raw, delay: 0)
            finishExchange()
            becomeTunnel()
            return
        }
        if (100..<200).contains(status) {
            // Interim (100 Continue): the final response is still to come.
            response.isInterim = true
            down.send(raw, delay: 0)
            return
        }
        var faults = exchange.faults
        // The fields as strings only when a toxic reads or edits them.
        let parsed = exchange.conditional.isEmpty ? nil : HTTPFraming.responseHead(raw)
        for conditional in exchange.conditional where conditional.match.matchesResponse(status: status, headers: parsed?.headers ?? []) {
            conditional.counters.matched.add(1, ordering: .relaxed)
            guard let fault = conditional.fault, Self.activate(conditional.match, conditional.counters, into: &responseActivated) else { continue }
            conditional.counters.affected.add(1, ordering: .relaxed)
            faults.append(contentsOf: fault.flattened)
        }
        guard !faults.isEmpty else {
            down.send(raw, delay: 0)
            return
        }
        let head = parsed ?? HTTPFraming.responseHead(raw)
        var edited = head
        var edits = false
        var answer: HTTPSyntheticResponse?
        var drop: Bool?
        for fault in faults {
            switch fault {
            case .respond(let made): if answer == nil && drop == nil { answer = made }
            case .drop(let reset): if answer == nil && drop == nil { drop = reset }
            case .delay(let nanoseconds): response.delay &+= nanoseconds
            case .reset(let bytes): response.resetAfter = min(response.resetAfter ?? .max, max(0, bytes))
            case .truncateBody(let bytes): response.truncateAfter = min(response.truncateAfter ?? .max, max(0, bytes))
            case .replaceBody(let body): response.replacement = body
            case .mergeJSON(let patch): response.mergePatches.append(patch)
            case .throttleBody(let rate): response.throttle = min(response.throttle ?? .max, max(1, rate))
            case .setStatus(let status):
                edited.status = status
                edited.reason = HTTPStatusText.reason(status)
                edits = true
            case .editHeaders(let changes):
                for change in changes { edited.headers.apply(change) }
                edits = true
            case .editRequest, .all: break
            }
        }
        if let drop {
            // Nothing of the server's response reaches the client: the connection ends instead.
            response.discard = true
            if response.delay > 0 {
                down.sendCut(reset: drop, delay: response.delay)
                finished = true
            } else {
                cut(.downstream, reset: drop)
            }
            return
        }
        if let answer {
            // The server's response is read and dropped; the client gets the made-up one.
            response.discard = true
            down.send(Self.serialize(answer, isHEAD: exchange.isHEAD, close: false), delay: response.delay)
            return
        }
        if response.replacement != nil {
            Self.replaceBody(of: &response, headers: &edited.headers)
            edits = true
        } else if !response.mergePatches.isEmpty && !exchange.isHEAD {
            // The head waits for the body: its length is known once the patch is merged.
            response.heldResponse = edited
            response.chunked = Self.isChunked(head.headers)
            return
        }
        down.send(edits ? edited.serialized() : raw, delay: response.delay)
        if response.resetAfter == 0 {
            cut(.downstream, reset: true)
        } else if response.truncateAfter == 0 && response.replacement == nil {
            cut(.downstream, reset: false)
        }
    }

    private func responseBody(_ bytes: ByteBuffer) {
        if response.discard { return }
        if response.heldResponse != nil {
            collect(bytes, in: &response, to: down, direction: .downstream)
            return
        }
        send(bytes, in: &response, to: down, direction: .downstream)
    }

    private func responseEnded() {
        if response.isInterim {
            response = MessageState()
            return
        }
        if response.isHeld {
            flushHeld(&response, to: down, direction: .downstream)
        } else if let replacement = response.replacement {
            if !response.isHEAD { down.send(ByteBuffer(bytes: replacement), delay: response.delay) }
            if response.truncateAfter != nil {
                cut(.downstream, reset: false)
                return
            }
        }
        Self.release(responseActivated)
        responseActivated = []
        response = MessageState()
        finishExchange()
        sendReadySynthetics()
    }

    /// Sends the made-up responses now at the front of the queue (those of earlier requests went),
    /// then the `100 Continue` the next exchange may be owed.
    private func sendReadySynthetics() {
        while !finished, let first = exchanges.first, first.isAnsweredHere {
            finishExchange()
            touchedOther = true
            guard let answer = first.synthetic else {
                // Dropped: the connection ends where the answer would have been.
                down.sendCut(reset: first.dropReset ?? true, delay: first.syntheticDelay)
                finished = true
                return
            }
            down.send(Self.serialize(answer, isHEAD: first.isHEAD, close: first.closeAfter), delay: first.syntheticDelay)
            if first.closeAfter {
                cut(.downstream, reset: false)
            }
        }
        sendOwedContinue()
    }

    /// Sends the `100 Continue` the exchange at the front is owed: only there does it follow
    /// every earlier response (a pipelined client waits for it before sending its body).
    private func sendOwedContinue() {
        guard !finished, var first = exchanges.first, first.owesContinue else { return }
        first.owesContinue = false
        exchanges.replaceFirst(first)
        down.send(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n"), delay: 0)
        touchedOther = true
    }

    // MARK: Not HTTP

    /// After a 101 (an upgrade, e.g. to WebSocket) or a 2xx to CONNECT, bytes are opaque both ways.
    private func becomeTunnel() {
        passThrough = true
        if let rest = requests.becomeOpaque() { up.send(rest, delay: 0) }
        _ = responses.becomeOpaque()
    }

    private func stopParsing(_ reason: String) {
        guard !passThrough else { return }
        passThrough = true
        if let rest = requests.becomeOpaque() { up.send(rest, delay: 0) }
        if let rest = responses.becomeOpaque() { down.send(rest, delay: 0) }
        HTTPRuleState.passedUntouched(reason, rules: rules, runtime: runtime, connection: connectionNumber)
    }

    /// Whether a read that starts a request is plausible: `TOKEN SP`, then `HTTP/1.` on its line.
    static func startsRequest(_ buffer: ByteBuffer) -> Bool {
        let view = buffer.readableBytesView
        guard let space = view.firstIndex(of: 32), space > view.startIndex,
            view[view.startIndex..<space].allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || $0 == UInt8(ascii: "-") })
        else { return false }
        let line = view[space...].prefix { $0 != 13 && $0 != 10 }
        return line.count < 16 * 1024 && String(decoding: line, as: UTF8.self).contains(" HTTP/1.")
    }

    static func startsResponse(_ buffer: ByteBuffer) -> Bool {
        buffer.readableBytesView.starts(with: "HTTP/1.".utf8)
    }

    static func serialize(_ answer: HTTPSyntheticResponse, isHEAD: Bool, close: Bool) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("HTTP/1.1 \(answer.status) \(HTTPStatusText.reason(answer.status))\r\n")
        var headers = answer.headers
        if headers.value("content-length") == nil { headers.append(HTTPHeaderField(name: "Content-Length", value: String(answer.body.count))) }
        if close { headers.apply(.set(name: "Connection", value: "close")) }
        for field in headers { buffer.writeString("\(field.name): \(field.value)\r\n") }
        buffer.writeString("\r\n")
        if !isHEAD { buffer.writeBytes(answer.body) }
        return buffer
    }
}

extension HTTPToxicRequest {
    /// Whether the connection closes after a response the proxy makes up for this request: the
    /// client asked for it (`Connection: close`, HTTP/1.0 without keep-alive), or waits for a
    /// `100 Continue` before a body that is then left unread.
    var closesAfterAnswer: Bool {
        headers.lists("connection", "close") || (version == "HTTP/1.0" && !headers.lists("connection", "keep-alive"))
            || headers.lists("expect", "100-continue")
    }
}

extension HTTPFault {
    /// The fault's parts, `all` opened.
    var flattened: [HTTPFault] {
        if case .all(let faults) = self { return faults.flatMap(\.flattened) }
        return [self]
    }
}

/// What one direction of an HTTP session lets through: at once when nothing is held, else in
/// order after what is held, each item when it is due.
final class Outbox {
    private enum Item {
        case bytes(ByteBuffer)
        case end
        case cut(reset: Bool)
    }

    private unowned let link: Link
    private var queue = ChunkQueue<(item: Item, due: UInt64)>()
    private var lastDue: UInt64 = 0
    private var held = 0
    private var timer: Scheduled<Void>?

    init(link: Link) { self.link = link }

    func send(_ bytes: ByteBuffer, delay: UInt64) {
        guard bytes.readableBytes > 0 else { return }
        enqueue(.bytes(bytes), delay: delay)
    }

    func sendEnd() { enqueue(.end, delay: 0) }

    func sendCut(reset: Bool, delay: UInt64 = 0) { enqueue(.cut(reset: reset), delay: delay) }

    /// The link's clock, in nanoseconds.
    var now: UInt64 { link.now }

    private func enqueue(_ item: Item, delay: UInt64) {
        if queue.isEmpty && delay == 0 {
            perform(item)
            return
        }
        let due = max(link.now &+ delay, lastDue)
        lastDue = due
        queue.append((item, due))
        if case .bytes(let bytes) = item {
            held += bytes.readableBytes
            link.heldChanged(by: bytes.readableBytes)
        }
        if timer == nil { scheduleNext() }
    }

    private func perform(_ item: Item) {
        switch item {
        case .bytes(let bytes): link.forward(bytes)
        case .end: link.deliverEnd(from: 0)
        case .cut(let reset):
            if reset { link.connection?.resetAfterPendingWrites() } else { link.connection?.closeGracefully() }
        }
    }

    private func scheduleNext() {
        guard let first = queue.first else { return }
        let loop = link.eventLoop.assumeIsolatedUnsafeUnchecked()
        timer = loop.scheduleTask(deadline: .uptimeNanoseconds(first.due)) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.releaseDue()
        }
    }

    private func releaseDue() {
        let now = link.now
        while let first = queue.first, first.due <= now {
            _ = queue.popFirst()
            release(first.item)
        }
        link.afterEvent()
        if timer == nil { scheduleNext() }
    }

    private func release(_ item: Item) {
        if case .bytes(let bytes) = item {
            held -= bytes.readableBytes
            link.heldChanged(by: -bytes.readableBytes)
        }
        perform(item)
    }

    /// Everything held goes now (the toxic that delayed it was removed).
    func releaseAll() {
        timer?.cancel()
        timer = nil
        while let first = queue.popFirst() { release(first.item) }
        lastDue = 0
    }

    func cancel() {
        timer?.cancel()
        timer = nil
        queue = ChunkQueue()
        held = 0
    }
}

/// Reason phrases for made-up responses.
enum HTTPStatusText {
    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: (200..<300).contains(status) ? "OK" : (400..<500).contains(status) ? "Client Error" : "Server Error"
        }
    }
}
