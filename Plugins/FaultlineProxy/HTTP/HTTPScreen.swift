import FaultlineKit
import NIOCore

/// The relay's view of a connection whose proxy carries only HTTP toxics: it frames the requests
/// and responses crossing the connection and rolls each request's toxics, and as long as none
/// fires the relay moves the bytes as they came, without NIO.
///
/// Most requests through a proxy with HTTP toxics meet no fault (the toxics match some paths, or
/// fire for a fraction of requests), and running a connection on NIO's channels, the HTTP
/// session and the links cost about a third more CPU per request than the relay.
///
/// The commonest fault, an upstream `http_abort` (a made-up answer; the server never sees the
/// request), the screen answers itself when the connection has no response still to come: it
/// drops the request and its body and hands the relay the answer for the client (``takeAnswers()``),
/// counting it as the session would. Any other fault, or a toxic that asks to see the response,
/// makes the screen keep that request's head and everything the client sent after it
/// (``held``), and the connection moves to NIO with the screen's state (``HTTPResume``): an
/// ``HTTPSession`` goes on from there, framing the responses still on their way and answering
/// the held request in its turn. It rolls the same dice the screen did: the rolls depend on the
/// proxy, the toxic, the connection and the request's number, which the session takes over. So
/// a seeded run makes the same faults whichever path a request took.
///
/// Confined to the relay thread, as the connection it belongs to.
final class HTTPScreen {
    private let runtime: ProxyRuntime
    private let connectionNumber: UInt64
    private var rules: [HTTPRuleState] = []
    private var requests = HTTPFraming(role: .request)
    private var responses = HTTPFraming(role: .response)
    /// Requests passed on whose responses have not ended, oldest first.
    private var exchanges = ChunkQueue<HTTPResume.Exchange>()
    /// Requests passed on (the session numbers the next one after them).
    private(set) var requestCount: UInt64 = 0
    /// The client's bytes from the head of the request a toxic acts on: the relay reads no more
    /// from the client, and hands the connection over with these.
    private(set) var held: ByteBuffer?
    /// The response being read is interim (1xx): the final one is still to come.
    private var interim = false
    /// The traffic stopped being HTTP (or became a tunnel): nothing more is screened.
    private(set) var stopped = false
    /// The rules a request matched (kept to spare an allocation per request).
    private var matched: [Int] = []
    /// Responses made up here for the client, in order, not yet taken by the relay.
    private var answers: ByteBuffer?
    /// The body of a request answered here is read and dropped.
    private var discarding = false

    /// What of a read from the client goes on to the server now.
    enum Passed {
        /// The read's first bytes, as many as this (all when no head is cut in two or held).
        case prefix(Int)
        /// These bytes (a head that straddled reads, completed by this one).
        case bytes(ByteBuffer)
    }

    init(runtime: ProxyRuntime, connection: UInt64, toxics: [ActiveToxic], client: [UInt8]?) {
        self.runtime = runtime
        connectionNumber = connection
        rescreen(toxics, client: client)
    }

    /// Takes the proxy's toxics as they are now (a toxic was added, changed or removed).
    func rescreen(_ toxics: [ActiveToxic], client: [UInt8]?) {
        rules = toxics.compactMap { toxic in
            toxic.applies(toClient: client) ? HTTPRuleState(toxic, runtime: runtime, connection: connectionNumber) : nil
        }
    }

    /// Whether a toxic limited to some clients is among `toxics` (the client's address is then needed).
    static func needsClientAddress(_ toxics: [ActiveToxic]) -> Bool { toxics.contains { $0.clients != nil } }

    // MARK: Requests

    /// Frames a read from the client; what is not passed stays here: a head not yet complete, or
    /// (``held``) the request a toxic acts on and what follows it.
    /// - Parameter input: the read (the relay's scratch buffer, consumed here).
    func requestBytes(_ input: inout ByteBuffer) -> Passed {
        // With nothing kept from earlier reads, what passes is always the read's first bytes
        // (until a request answered here is left out).
        var contiguous = requests.pendingBytes == 0
        let read = input
        var prefix = 0
        var out = ByteBuffer()
        func pass(_ slice: ByteBuffer) {
            if contiguous { prefix += slice.readableBytes } else { out.writeImmutableBuffer(slice) }
        }
        func leaveOut() {
            guard contiguous else { return }
            contiguous = false
            out = read.getSlice(at: read.readerIndex, length: prefix) ?? ByteBuffer()
        }
        loop: while held == nil, let event = requests.next(&input) {
            switch event {
            case .head(let raw, .request(let head)):
                switch decide(head) {
                case .pass:
                    requestCount += 1
                    exchanges.append(HTTPResume.Exchange(isHEAD: head.method == "HEAD", isCONNECT: head.method == "CONNECT"))
                    pass(raw)
                case .answer(let answer):
                    requestCount += 1
                    leaveOut()
                    discarding = true
                    var bytes = HTTPSession.serialize(answer, isHEAD: head.method == "HEAD", close: false)
                    if answers == nil { answers = bytes } else { answers!.writeBuffer(&bytes) }
                case .handOver:
                    var rest = raw
                    rest.writeImmutableBuffer(input)
                    held = rest
                    break loop
                }
            case .head: break
            case .end: discarding = false
            case .body(let slice):
                if discarding { leaveOut() } else { pass(slice) }
            case .opaque(let slice): pass(slice)
            case .notHTTP(let reason, let slice):
                stop(notHTTP: reason)
                pass(slice)
                break loop
            }
        }
        return contiguous ? .prefix(prefix) : .bytes(out)
    }

    /// The responses made up here since the last call, for the client.
    func takeAnswers() -> ByteBuffer? {
        defer { answers = nil }
        return answers
    }

    private enum Decision {
        /// No toxic fires: the request goes on to the server.
        case pass
        /// Answered here (an upstream `http_abort`): the request and its body are dropped.
        case answer(HTTPSyntheticResponse)
        /// The session runs the request: another fault fires, or a toxic needs the response.
        case handOver
    }

    /// What becomes of a request; counts its matches and faults, as the session would, unless
    /// the session is to run it.
    private func decide(_ head: HTTPToxicRequest) -> Decision {
        let number = requestCount + 1
        matched.removeAll(keepingCapacity: true)
        var fires = false
        for index in rules.indices {
            switch rules[index].roll(head, number: number, withFault: false) {
            case .skip: continue
            case .conditional: return .handOver
            case .decided(let fault):
                if fault != nil { fires = true }
                matched.append(index)
            }
        }
        guard fires else {
            for index in matched { rules[index].counters.matched.add(1, ordering: .relaxed) }
            return .pass
        }
        // Answered here only with no response still to come (the answer goes to the client at
        // once) and when the connection stays open after it.
        guard exchanges.isEmpty, !interim, head.method != "CONNECT", !head.closesAfterAnswer else { return .handOver }
        var faults: [(rule: HTTPRuleState, fault: HTTPFault?)] = []
        for index in matched {
            guard case .decided(let fault) = rules[index].roll(head, number: number) else { return .handOver }
            if let fault {
                let isAnswer = fault.flattened.allSatisfy { if case .respond = $0 { true } else { false } }
                guard rules[index].toxic.definition.stream == .upstream, isAnswer else { return .handOver }
            }
            faults.append((rules[index], fault))
        }
        // Counted as the session counts them (HTTPSession.requestHead): the first answer wins.
        var answer: HTTPSyntheticResponse?
        var activated: [HTTPToxicCounters] = []
        for (rule, fault) in faults {
            rule.counters.matched.add(1, ordering: .relaxed)
            guard let fault, HTTPSession.activate(rule.rule.match, rule.counters, into: &activated) else { continue }
            rule.counters.affected.add(1, ordering: .relaxed)
            if answer == nil, case .respond(let made)? = fault.flattened.first { answer = made }
        }
        // A fault is under way until its answer is sent, which is now.
        HTTPSession.release(activated)
        guard let answer else { return .pass }  // Each fault was over its max_active_faults.
        return .answer(answer)
    }

    // MARK: Responses

    /// Frames a read from the server (every byte of which the relay passes on as it came).
    func responseBytes(_ input: inout ByteBuffer) {
        guard !stopped else { return }
        while !stopped {
            let front = exchanges.first
            responses.nextResponseToHEAD = front?.isHEAD ?? false
            responses.nextResponseToCONNECT = front?.isCONNECT ?? false
            guard let event = responses.next(&input) else { break }
            switch event {
            case .head(_, .response(let start)):
                if responses.isOpaque {
                    // An upgrade (101) or a CONNECT's tunnel (2xx): opaque both ways from here.
                    stopped = true
                } else {
                    interim = (100..<200).contains(start.status)
                }
            case .head, .body: break
            case .end:
                if interim {
                    interim = false
                } else {
                    _ = exchanges.popFirst()
                }
            case .opaque: stopped = true
            case .notHTTP(let reason, _): stop(notHTTP: reason)
            }
        }
    }

    // MARK: Handing over

    /// Where an ``HTTPSession`` taking over the connection goes on from; the screen keeps nothing.
    func resume() -> HTTPResume {
        var inFlight: [HTTPResume.Exchange] = []
        while let exchange = exchanges.popFirst() { inFlight.append(exchange) }
        var resume = HTTPResume(requests: requests, responses: responses, inFlight: inFlight, interim: interim, requestCount: requestCount)
        if let held {
            // The held bytes start with a head: the session frames them from the start.
            resume.requests = HTTPFraming(role: .request)
            resume.unscreened = held
            self.held = nil
        }
        requests = HTTPFraming(role: .request)
        responses = HTTPFraming(role: .response)
        return resume
    }

    /// The client's bytes the relay has not passed on (a request held for the session, or a head
    /// not yet complete), when the connection goes on as plain bytes.
    func takeUnpassed() -> ByteBuffer? {
        if let held {
            self.held = nil
            return held
        }
        return requests.becomeOpaque()
    }

    private func stop(notHTTP reason: String) {
        stopped = true
        HTTPRuleState.passedUntouched(reason, rules: rules, runtime: runtime, connection: connectionNumber)
    }
}

/// What an ``HTTPSession`` needs to go on where a relay's ``HTTPScreen`` stopped: both streams'
/// framing as it stands (a head partly read, a body partly passed), the requests whose responses
/// are still to come, and how many requests passed.
struct HTTPResume {
    struct Exchange {
        var isHEAD: Bool
        var isCONNECT: Bool
    }

    var requests: HTTPFraming
    var responses: HTTPFraming
    var inFlight: [Exchange]
    /// The response being read is interim (1xx).
    var interim: Bool
    var requestCount: UInt64
    /// The client's bytes the screen held: they go through the session as if read now.
    var unscreened: ByteBuffer?
}
