import FaultlineKit
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Finds HTTP/1.x message boundaries in one direction of a connection, keeping every byte.
///
/// Why not NIOHTTP1's decoder: a proxy that passes untouched messages byte for byte must know
/// where each message's bytes start and end in the stream, which the decoder does not expose (it
/// hands out parsed parts, and re-encoding them would change chunk extensions, header layout and
/// anything odd a test relies on). This parser only frames: it parses a head into an
/// ``HTTPToxicRequest`` (or a status and fields), and reports each body byte range as it passes;
/// the bytes themselves are the socket's, sliced without copying.
struct HTTPFraming {
    enum Role { case request, response }

    /// A response head's parts.
    struct ResponseHead {
        var version: String
        var status: Int
        var reason: String
        var headers: [HTTPHeaderField]
    }

    /// A response head as framed: its status. The rest is parsed on demand (``responseHead(_:)``),
    /// as most responses pass untouched.
    struct ResponseStart {
        let status: Int
    }

    enum Head {
        case request(HTTPToxicRequest)
        case response(ResponseStart)
    }

    enum Event {
        /// A message head: its raw bytes (leading empty lines included) and what they say.
        case head(ByteBuffer, Head)
        /// Body bytes as sent (chunk framing included).
        case body(ByteBuffer)
        /// The message's last byte has passed.
        case end
        /// Bytes after the stream stopped being HTTP/1.x (an upgrade, a tunnel).
        case opaque(ByteBuffer)
        /// Bytes that are not HTTP/1.x: the reason, and everything from the first such byte.
        case notHTTP(String, ByteBuffer)
    }

    /// The longest head accepted; a longer one is not HTTP as a server would take it.
    static let maximumHeadBytes = 64 * 1024
    /// The longest request or status line accepted.
    static let maximumLineBytes = 16 * 1024

    private enum State {
        case head
        case length(Int)
        case chunkSize
        case chunkData(Int)
        case chunkDataEnd(Int)
        case trailer
        case untilClose
        case opaque
    }

    let role: Role
    private var state = State.head
    private var pending = ByteBuffer()
    /// Chunk-size line or trailer line being read.
    private var lineLength = 0
    private var sawCR = false

    /// For a response: whether the next one has no body whatever its headers say (a response to
    /// HEAD), and whether a 2xx answers CONNECT. Set by the session before each head is read.
    var nextResponseToHEAD = false
    var nextResponseToCONNECT = false

    init(role: Role) { self.role = role }

    /// Whether the stream is no longer parsed.
    var isOpaque: Bool { if case .opaque = state { true } else { false } }

    /// Bytes of a head not yet complete.
    var pendingBytes: Int { pending.readableBytes }

    /// Stops parsing: everything from now on is opaque; what was buffered comes back.
    mutating func becomeOpaque() -> ByteBuffer? {
        state = .opaque
        guard pending.readableBytes > 0 else { return nil }
        defer { pending = ByteBuffer() }
        return pending
    }

    /// The next event from `input`, consuming what it covers; nil when `input` needs more bytes.
    mutating func next(_ input: inout ByteBuffer) -> Event? {
        switch state {
        case .opaque:
            guard input.readableBytes > 0 else { return nil }
            return .opaque(input.readSlice(length: input.readableBytes)!)
        case .head:
            return readHead(&input)
        case .length(let remaining):
            if remaining == 0 { return finish() }
            guard input.readableBytes > 0 else { return nil }
            let count = min(remaining, input.readableBytes)
            let slice = input.readSlice(length: count)!
            state = .length(remaining - count)
            return .body(slice)
        case .untilClose:
            guard input.readableBytes > 0 else { return nil }
            return .body(input.readSlice(length: input.readableBytes)!)
        case .chunkSize, .chunkData, .chunkDataEnd, .trailer:
            return readChunked(&input)
        }
    }

    /// Ends the current message (the event after its last byte).
    private mutating func finish() -> Event {
        state = .head
        return .end
    }

    // MARK: Heads

    private mutating func readHead(_ input: inout ByteBuffer) -> Event? {
        guard input.readableBytes > 0 || pending.readableBytes > 0 else { return nil }
        let start = pending.readableBytes
        if start == 0, let first = input.readableBytesView.first, !Self.canStartHead(first) {
            state = .opaque
            return .notHTTP(
                role == .request ? "the client's first bytes are not an HTTP/1.x request" : "the server's bytes are not an HTTP/1.x response",
                input.readSlice(length: input.readableBytes)!)
        }
        // The usual case, a whole head in one read: sliced from the read, not copied.
        if start == 0, let end = Self.headEnd(in: input, from: 0) {
            let raw = input.readSlice(length: end)!
            return headOrOpaque(raw, rest: &input)
        }
        // Look for the blank line from a few bytes before the new ones (it may straddle reads).
        pending.writeImmutableBuffer(input)
        let scanFrom = max(0, start - 3)
        guard let end = Self.headEnd(in: pending, from: scanFrom) else {
            let lineEnded = input.readableBytesView.contains(10)
            input.moveReaderIndex(forwardBy: input.readableBytes)
            if pending.readableBytes > Self.maximumHeadBytes {
                return notHTTP(role == .request ? "no HTTP/1.x request line" : "no HTTP/1.x status line")
            }
            // Judged again only when the bytes doubled or a line ended, and never once the whole
            // first line passed: a head trickled in byte by byte costs time linear in its length.
            let crossedLineLimit = judgedAt <= Self.maximumLineBytes && pending.readableBytes > Self.maximumLineBytes
            if !firstLineJudged && (pending.readableBytes >= 2 * judgedAt || lineEnded || crossedLineLimit) {
                judgedAt = pending.readableBytes
                switch judgeFirstLine() {
                case .implausible: return notHTTP(role == .request ? "no HTTP/1.x request line" : "no HTTP/1.x status line")
                case .whole: firstLineJudged = true
                case .partial: break
                }
            }
            return nil
        }
        // Give back what follows the head.
        let used = end - start
        input.moveReaderIndex(forwardBy: used)
        let raw = pending.readSlice(length: end)!
        pending = ByteBuffer()
        judgedAt = 0
        firstLineJudged = false
        return headOrOpaque(raw, rest: &input)
    }

    /// The parsed head, or, when it is malformed, the end of framing: the head and everything
    /// after it pass through untouched.
    private mutating func headOrOpaque(_ raw: ByteBuffer, rest input: inout ByteBuffer) -> Event {
        guard let head = parse(raw) else {
            var all = raw
            all.writeImmutableBuffer(input)
            input.moveReaderIndex(forwardBy: input.readableBytes)
            state = .opaque
            return .notHTTP("malformed HTTP/1.x head", all)
        }
        return head
    }

    private mutating func notHTTP(_ reason: String) -> Event {
        state = .opaque
        defer { pending = ByteBuffer() }
        return .notHTTP(reason, pending)
    }

    /// Leading empty lines, a method's letters, or `HTTP/`.
    private static func canStartHead(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") || (byte >= 0x41 && byte <= 0x5A) || byte == UInt8(ascii: "-")
            || byte == UInt8(ascii: "_")
    }

    private enum FirstLine {
        /// It may still become a request or status line; more of it is to come.
        case partial
        /// Whole (a line end follows it) and plausible: it cannot change.
        case whole
        case implausible
    }

    /// Whether the first line so far can still become a request or status line of HTTP/1.x.
    private func judgeFirstLine() -> FirstLine {
        let bytes = pending.readableBytesView.drop { $0 == 13 || $0 == 10 }
        // Empty lines before a head are allowed (RFC 9112 §2.2), not a kilobyte of them.
        if bytes.isEmpty { return pending.readableBytes > 1024 ? .implausible : .partial }
        let line = bytes.prefix { $0 != 13 && $0 != 10 }
        if line.count > Self.maximumLineBytes { return .implausible }
        let text = Array(line)
        let prefix: [UInt8] = Array("HTTP/1.".utf8)
        let plausible: Bool
        if role == .response {
            plausible = text.count <= prefix.count ? prefix.starts(with: text) : text.starts(with: prefix)
        } else {
            // `METHOD target HTTP/1.x`: once two spaces are seen the version must follow.
            let spaces = text.indices.filter { text[$0] == 32 }
            if spaces.count >= 2 {
                let version = Array(text[(spaces[1] + 1)...])
                plausible = version.count <= prefix.count ? prefix.starts(with: version) : version.starts(with: prefix)
            } else {
                plausible = true
            }
        }
        guard plausible else { return .implausible }
        return line.count < bytes.count ? .whole : .partial
    }

    /// The pending bytes when the first line was last judged, and whether it was judged whole.
    private var judgedAt = 0
    private var firstLineJudged = false

    /// The index just past the first CRLFCRLF (or LFLF) at or after `from`.
    private static func headEnd(in buffer: ByteBuffer, from: Int) -> Int? {
        buffer.withUnsafeReadableBytes { bytes -> Int? in
            let count = bytes.count
            var index = from
            // Leading empty lines are not the end of a head.
            var seenContent = bytes[..<from].contains { $0 != 13 && $0 != 10 }
            while !seenContent && index < count {
                if bytes[index] != 13 && bytes[index] != 10 { seenContent = true }
                index += 1
            }
            // From here on only line feeds matter: the head ends at LF (CR) LF.
            while index < count {
                guard let newline = memchr(bytes.baseAddress! + index, 10, count - index) else { return nil }
                let at = UnsafeRawPointer(newline) - bytes.baseAddress!
                let next = at + 1
                if next < count {
                    if bytes[next] == 10 { return next + 1 }
                    if bytes[next] == 13, next + 1 < count, bytes[next + 1] == 10 { return next + 2 }
                }
                index = next
            }
            return nil
        }
    }

    private mutating func parse(_ raw: ByteBuffer) -> Event? {
        raw.withUnsafeReadableBytes { bytes in
            switch role {
            case .request: parseRequest(raw, bytes)
            case .response: parseResponse(raw, bytes)
            }
        }
    }

    private mutating func parseRequest(_ raw: ByteBuffer, _ bytes: UnsafeRawBufferPointer) -> Event? {
        guard let scan = HeadScan(bytes, keepFields: true) else { return nil }
        // `METHOD SP target SP HTTP/1.x`; the target may not hold a space, the version may.
        let line = scan.startLine
        guard let space1 = bytes[line].firstIndex(of: 32), space1 > line.lowerBound,
            let space2 = bytes[space1 + 1..<line.upperBound].firstIndex(of: 32), space2 > space1 + 1,
            bytes[space2 + 1..<line.upperBound].starts(with: "HTTP/1.".utf8)
        else { return nil }
        let headers = scan.headers(bytes)
        let framing = scan.folded ? Self.bodyFraming(headers, allowUntilClose: false) : scan.framing(bytes, allowUntilClose: false)
        guard let framing else { return nil }
        let request = HTTPToxicRequest(
            method: Self.string(bytes, line.lowerBound..<space1), target: Self.string(bytes, space1 + 1..<space2),
            version: Self.string(bytes, space2 + 1..<line.upperBound), headers: headers)
        state = framing
        return .head(raw, .request(request))
    }

    /// A response head is only framed here, without making strings: most pass untouched, and
    /// ``responseHead(_:)`` parses the rest of one when a toxic needs it.
    private mutating func parseResponse(_ raw: ByteBuffer, _ bytes: UnsafeRawBufferPointer) -> Event? {
        guard var scan = HeadScan(bytes, keepFields: false) else { return nil }
        if scan.folded {
            guard let full = HeadScan(bytes, keepFields: true) else { return nil }
            scan = full
        }
        guard let status = Self.status(bytes, scan.startLine) else { return nil }
        if status == 101 || (nextResponseToCONNECT && (200..<300).contains(status)) {
            state = .opaque
        } else if (100..<200).contains(status) || status == 204 || status == 304 || nextResponseToHEAD {
            state = .length(0)
        } else {
            let framing =
                scan.folded ? Self.bodyFraming(scan.headers(bytes), allowUntilClose: true) : scan.framing(bytes, allowUntilClose: true)
            guard let framing else { return nil }
            state = framing
        }
        return .head(raw, .response(ResponseStart(status: status)))
    }

    /// `HTTP/1.x SP 3DIGIT [SP reason]`: where the version ends (its space) and where the code
    /// ends (the reason's space, or the line's end); nil when the line is not one.
    private static func statusLine(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> (space: Int, codeEnd: Int)? {
        guard let space = bytes[line].firstIndex(of: 32), bytes[line.lowerBound..<space].starts(with: "HTTP/1.".utf8) else { return nil }
        let codeEnd = bytes[space + 1..<line.upperBound].firstIndex(of: 32) ?? line.upperBound
        guard codeEnd - space - 1 == 3 else { return nil }
        return (space, codeEnd)
    }

    /// The status of a status line, or nil.
    private static func status(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) -> Int? {
        statusLine(bytes, line).flatMap { Int(string(bytes, $0.space + 1..<$0.codeEnd)) }
    }

    /// A response head's parts, from a head this framing accepted.
    static func responseHead(_ raw: ByteBuffer) -> ResponseHead {
        raw.withUnsafeReadableBytes { bytes in
            guard let scan = HeadScan(bytes, keepFields: true), let (space, codeEnd) = statusLine(bytes, scan.startLine) else {
                return ResponseHead(version: "HTTP/1.1", status: 502, reason: "", headers: [])
            }
            let line = scan.startLine
            return ResponseHead(
                version: string(bytes, line.lowerBound..<space), status: Int(string(bytes, space + 1..<codeEnd)) ?? 502,
                reason: codeEnd < line.upperBound ? string(bytes, codeEnd + 1..<line.upperBound) : "", headers: scan.headers(bytes))
        }
    }

    private static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// A head's lines read in one pass over its bytes, without making strings: where the start
    /// line and each field are, and what the fields that frame the body say.
    private struct HeadScan {
        var startLine: Range<Int>
        /// Each field's name and value (without surrounding spaces and tabs), when kept.
        var fields: [(name: Range<Int>, value: Range<Int>)] = []
        /// Lines that continue a field (obsolete line folding): the field's position and the line.
        var continuations: [(field: Int, line: Range<Int>)] = []
        /// A field continues on the next line; when fields are not kept, the scan stops there.
        var folded = false
        /// The last `Transfer-Encoding` value, and the first `Content-Length` one.
        var transferEncoding: Range<Int>?
        var contentLength: Range<Int>?
        var contentLengthsDiffer = false

        /// nil when the head is malformed: no start line, a field without a name, or space
        /// before a field's colon.
        init?(_ bytes: UnsafeRawBufferPointer, keepFields: Bool) {
            startLine = 0..<0
            var haveStart = false
            var fieldCount = 0
            var index = 0
            let count = bytes.count
            while index < count {
                let lineStart = index
                while index < count && bytes[index] != 10 { index += 1 }
                guard index < count else { break }  // no LF: not a whole line
                var lineEnd = index
                if lineEnd > lineStart && bytes[lineEnd - 1] == 13 { lineEnd -= 1 }
                index += 1
                if lineEnd == lineStart { continue }  // leading empty lines, and the last one
                if !haveStart {
                    startLine = lineStart..<lineEnd
                    haveStart = true
                    continue
                }
                let first = bytes[lineStart]
                if first == 32 || first == 9 {
                    guard fieldCount > 0 else { return nil }
                    folded = true
                    guard keepFields else { return }
                    continuations.append((fieldCount - 1, HeadScan.trimmed(bytes, lineStart..<lineEnd)))
                    continue
                }
                var colon = lineStart
                while colon < lineEnd && bytes[colon] != 58 {
                    if bytes[colon] == 32 || bytes[colon] == 9 { return nil }
                    colon += 1
                }
                guard colon < lineEnd, colon > lineStart else { return nil }
                let name = lineStart..<colon
                let value = HeadScan.trimmed(bytes, colon + 1..<lineEnd)
                fieldCount += 1
                if keepFields { fields.append((name, value)) }
                if bytes[name].asciiCaseInsensitiveEquals("transfer-encoding".utf8) {
                    transferEncoding = value
                } else if bytes[name].asciiCaseInsensitiveEquals("content-length".utf8) {
                    if let first = contentLength {
                        if !bytes[first].elementsEqual(bytes[value]) { contentLengthsDiffer = true }
                    } else {
                        contentLength = value
                    }
                }
            }
            guard haveStart else { return nil }
        }

        /// The fields as strings, continued lines joined to their field's value with a space.
        func headers(_ bytes: UnsafeRawBufferPointer) -> [HTTPHeaderField] {
            var headers: [HTTPHeaderField] = []
            headers.reserveCapacity(fields.count)
            for field in fields {
                headers.append(HTTPHeaderField(name: HTTPFraming.string(bytes, field.name), value: HTTPFraming.string(bytes, field.value)))
            }
            for continuation in continuations { headers[continuation.field].value += " " + HTTPFraming.string(bytes, continuation.line) }
            return headers
        }

        /// The body's framing (RFC 9112 §6.3) from the fields as scanned (not folded); nil when
        /// they are contradictory or invalid.
        func framing(_ bytes: UnsafeRawBufferPointer, allowUntilClose: Bool) -> State? {
            if let encoding = transferEncoding {
                if HTTPFraming.lastCodingIsChunked(bytes[encoding]) { return .chunkSize }
                return allowUntilClose ? .untilClose : nil
            }
            guard let length = contentLength else { return allowUntilClose ? .untilClose : .length(0) }
            guard !contentLengthsDiffer, let value = Int(HTTPFraming.string(bytes, length)), value >= 0 else { return nil }
            return .length(value)
        }

        static func trimmed(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
            var start = range.lowerBound
            var end = range.upperBound
            while start < end && (bytes[start] == 32 || bytes[start] == 9) { start += 1 }
            while end > start && (bytes[end - 1] == 32 || bytes[end - 1] == 9) { end -= 1 }
            return start..<end
        }
    }

    /// The body's framing from Transfer-Encoding and Content-Length (RFC 9112 §6.3); nil when they
    /// are contradictory or invalid.
    private static func bodyFraming(_ headers: [HTTPHeaderField], allowUntilClose: Bool) -> State? {
        if let encoding = headers.last(where: { $0.name.caseInsensitiveEquals("transfer-encoding") }) {
            return lastCodingIsChunked(encoding.value.utf8) ? .chunkSize : allowUntilClose ? .untilClose : nil
        }
        let lengths = headers.filter { $0.name.caseInsensitiveEquals("content-length") }.map(\.value)
        guard let first = lengths.first else { return allowUntilClose ? .untilClose : .length(0) }
        guard lengths.allSatisfy({ $0 == first }), let length = Int(first), length >= 0 else { return nil }
        return .length(length)
    }

    /// Whether a `Transfer-Encoding` value's last coding is chunked (RFC 9112 §6.3): empty list
    /// members are not codings, and spaces around one do not count.
    static func lastCodingIsChunked(_ value: some BidirectionalCollection<UInt8>) -> Bool {
        var members = value[...]
        while members.last == UInt8(ascii: ",") { members = members.dropLast() }
        var coding = members.lastIndex(of: UInt8(ascii: ",")).map { members[members.index(after: $0)...] } ?? members
        while let first = coding.first, first == 32 || first == 9 { coding = coding.dropFirst() }
        while let last = coding.last, last == 32 || last == 9 { coding = coding.dropLast() }
        return coding.asciiCaseInsensitiveEquals("chunked".utf8)
    }

    // MARK: Chunked bodies

    private mutating func readChunked(_ input: inout ByteBuffer) -> Event? {
        guard input.readableBytes > 0 else { return nil }
        let view = input.readableBytesView
        var index = view.startIndex
        loop: while index < view.endIndex {
            switch state {
            case .chunkSize, .trailer:
                let isTrailer = if case .trailer = state { true } else { false }
                let byte = view[index]
                index += 1
                if byte == 10 {
                    if isTrailer {
                        if lineLength == 0 {
                            // The empty line after the trailer: the message ends after this byte.
                            state = .length(0)
                            lineLength = 0
                            break loop
                        }
                        lineLength = 0
                    } else {
                        let chunk = chunkSizeValue
                        chunkSizeValue = 0
                        chunkSizeDone = false
                        lineLength = 0
                        state = chunk == 0 ? .trailer : .chunkData(chunk)
                    }
                } else if byte != 13 {
                    lineLength += 1
                    if !isTrailer, !chunkSizeDone {
                        if let digit = Self.hexValue(byte) {
                            guard chunkSizeValue < (Int.max >> 8) else { return chunkedFailure(&input) }
                            chunkSizeValue = chunkSizeValue * 16 + digit
                        } else if lineLength == 1 {
                            return chunkedFailure(&input)
                        } else {
                            chunkSizeDone = true
                        }
                    }
                    if lineLength > 16 * 1024 { return chunkedFailure(&input) }
                }
            case .chunkData(let remaining):
                let take = min(remaining, view.endIndex - index)
                index += take
                state = remaining - take == 0 ? .chunkDataEnd(2) : .chunkData(remaining - take)
            case .chunkDataEnd(let remaining):
                let byte = view[index]
                index += 1
                if byte == 10 || remaining == 1 { state = .chunkSize } else { state = .chunkDataEnd(remaining - 1) }
            default:
                break loop
            }
        }
        let consumed = index - view.startIndex
        return .body(input.readSlice(length: consumed)!)
    }

    private var chunkSizeValue = 0
    private var chunkSizeDone = false

    private mutating func chunkedFailure(_ input: inout ByteBuffer) -> Event {
        state = .opaque
        return .notHTTP("malformed chunked body", input.readSlice(length: input.readableBytes)!)
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: Int(byte - 0x30)
        case 0x41...0x46: Int(byte - 0x41 + 10)
        case 0x61...0x66: Int(byte - 0x61 + 10)
        default: nil
        }
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }
}

extension HTTPFraming.ResponseHead {
    /// The head as bytes, after edits.
    func serialized() -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("\(version) \(status) \(reason)\r\n")
        for field in headers { buffer.writeString("\(field.name): \(field.value)\r\n") }
        buffer.writeString("\r\n")
        return buffer
    }
}

extension HTTPToxicRequest {
    /// The head as bytes, after edits.
    func serialized() -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("\(method) \(target) \(version)\r\n")
        for field in headers { buffer.writeString("\(field.name): \(field.value)\r\n") }
        buffer.writeString("\r\n")
        return buffer
    }
}

extension [HTTPHeaderField] {
    /// The fields after one edit.
    mutating func apply(_ edit: HTTPHeaderEdit) {
        switch edit {
        case .set(let name, let value):
            removeAll { $0.name.caseInsensitiveEquals(name) }
            append(HTTPHeaderField(name: name, value: value))
        case .add(let name, let value):
            append(HTTPHeaderField(name: name, value: value))
        case .remove(let name):
            removeAll { $0.name.caseInsensitiveEquals(name) }
        }
    }

    func value(_ name: String) -> String? { first { $0.name.caseInsensitiveEquals(name) }?.value }

    /// Whether a comma-separated field of this name lists `token` (case-insensitive).
    func lists(_ name: String, _ token: String) -> Bool {
        contains { field in
            field.name.caseInsensitiveEquals(name) && field.value.split(separator: ",").contains { $0.trimmingSpaces().caseInsensitiveEquals(token) }
        }
    }
}
