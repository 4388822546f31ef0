import NIOCore

/// An HTTP/1.x response parser working in place on the bytes a channel reads.
///
/// It reads exactly what a client needs — the status, the framing (`Content-Length`, chunked
/// transfer coding, read-until-close), keep-alive — and the header fields only when asked, so a
/// load's responses cost no allocation beyond the read buffer. Bodies come out as slices of it.
/// Framing follows RFC 9112 §6: no body after HEAD, 1xx, 204 and 304; chunked wins over a length;
/// without either the body runs until the server closes.
struct ResponseParser {
    enum Event {
        /// The final response's head. `headers` is empty unless the exchange collects them.
        case head(status: Int, keepAlive: Bool, headers: [(String, String)])
        case body(ByteBuffer)
        case end
    }

    private enum State {
        case statusLine
        case headers
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkEnd
        case trailers
        case untilClose
        /// The body is complete (or there is none); `.end` comes next.
        case ending
        case done
    }

    private var state = State.done
    private var buffer = ByteBuffer()
    private var headRequest = false
    private var collectHeaders = false
    // The head being read.
    private var status = 0
    private var http10 = false
    private var contentLength: Int?
    private var chunked = false
    private var connectionClose = false
    private var connectionKeepAlive = false
    private var headers: [(String, String)] = []
    private var headerBytes = 0

    /// The most bytes a status line and header fields may take.
    static let headLimit = 64 * 1024

    /// Expects the response to a new request.
    mutating func begin(headRequest: Bool, collectHeaders: Bool) {
        self.headRequest = headRequest
        self.collectHeaders = collectHeaders
        state = .statusLine
        resetHead()
    }

    private mutating func resetHead() {
        status = 0
        http10 = false
        contentLength = nil
        chunked = false
        connectionClose = false
        connectionKeepAlive = false
        headers = []
        headerBytes = 0
    }

    /// Lets go of the socket's buffer once every byte of it is read: the channel then reuses it
    /// for its next read instead of looking for another.
    mutating func releaseIfConsumed() {
        if buffer.readableBytes == 0 { buffer = ByteBuffer() }
    }

    /// Adds bytes read from the connection.
    mutating func feed(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// Reads from a socket straight into the parser's own buffer (a ``PlainConnection``), which
    /// is kept and reused from one response to the next: a connection reads without allocating.
    /// - Parameter read: gets the free space (at least `atLeast` bytes) and returns how many
    ///   bytes it wrote there.
    mutating func read(atLeast: Int, _ read: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        if buffer.readableBytes == 0 { buffer.clear() }
        return buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: atLeast, read)
    }

    /// Drops the bytes not parsed yet (bytes nobody asked for).
    mutating func discardInput() {
        buffer.moveReaderIndex(to: buffer.writerIndex)
    }

    /// The next event the bytes so far make, or nil when more bytes are needed.
    mutating func next() throws(HTTPFailure) -> Event? {
        while true {
            switch state {
            case .done:
                return nil
            case .statusLine, .headers:
                guard try readHead() else { return nil }
                if status < 200, status != 101 {
                    // 100 Continue and friends precede the real response.
                    state = .statusLine
                    resetHead()
                    continue
                }
                let keepAlive = http10 ? connectionKeepAlive : !connectionClose
                if headRequest || status == 204 || status == 304 || status == 101 {
                    state = .ending
                } else if chunked {
                    state = .chunkSize
                } else if let contentLength {
                    state = contentLength == 0 ? .ending : .fixed(remaining: contentLength)
                } else {
                    // Without framing the body runs until the server closes: not reusable.
                    state = .untilClose
                    return .head(status: status, keepAlive: false, headers: headers)
                }
                return .head(status: status, keepAlive: keepAlive, headers: headers)
            case .fixed(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: count)!
                state = remaining == count ? .ending : .fixed(remaining: remaining - count)
                return .body(slice)
            case .ending:
                state = .done
                return .end
            case .chunkSize:
                guard let line = try readLine() else { return nil }
                let digits = line.readableBytesView.prefix { $0 != UInt8(ascii: ";") && $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
                guard !digits.isEmpty, digits.count <= 15, let size = Int(String(decoding: digits, as: UTF8.self), radix: 16) else {
                    throw HTTPFailure(.other, "the server sent a malformed chunk size")
                }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: count)!
                state = remaining == count ? .chunkEnd : .chunkData(remaining: remaining - count)
                return .body(slice)
            case .chunkEnd:
                guard let line = try readLine() else { return nil }
                guard line.readableBytes == 0 else { throw HTTPFailure(.other, "the server sent a chunk longer than its size") }
                state = .chunkSize
            case .trailers:
                guard let line = try readLine() else { return nil }
                if line.readableBytes == 0 {
                    state = .done
                    return .end
                }
            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            }
        }
    }

    /// The server closed the connection: the end of a read-until-close body, or nil when the
    /// response was cut short.
    mutating func endOfInput() -> Event? {
        if case .untilClose = state {
            state = .done
            return .end
        }
        return nil
    }

    // MARK: Lines

    /// The next line without its CR LF (a bare LF is accepted), or nil when it is incomplete.
    private mutating func readLine() throws(HTTPFailure) -> ByteBuffer? {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > Self.headLimit { throw HTTPFailure(.other, "the server sent a line longer than 64 KiB") }
            return nil
        }
        let length = newline - buffer.readerIndex
        headerBytes += length + 1
        if headerBytes > Self.headLimit { throw HTTPFailure(.other, "the server sent more than 64 KiB of header fields") }
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
        return line
    }

    /// Reads the status line and header fields the buffer holds, in place: one pass over the
    /// bytes, no slice per line (a slice costs reference counting, and a load parses a head per
    /// request). Returns true at the blank line that ends the head, false when more bytes are needed.
    private mutating func readHead() throws(HTTPFailure) -> Bool {
        let bytes = buffer
        var failure: HTTPFailure?
        var complete = false
        let consumed = bytes.withUnsafeReadableBytes { raw -> Int in
            var offset = 0
            while !complete, failure == nil {
                guard let newline = raw[offset...].firstIndex(of: UInt8(ascii: "\n")) else {
                    if raw.count - offset > Self.headLimit { failure = HTTPFailure(.other, "the server sent a line longer than 64 KiB") }
                    break
                }
                headerBytes += newline - offset + 1
                if headerBytes > Self.headLimit {
                    failure = HTTPFailure(.other, "the server sent more than 64 KiB of header fields")
                    break
                }
                var end = newline
                if end > offset, raw[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = UnsafeRawBufferPointer(rebasing: raw[offset..<end])
                offset = newline + 1
                do throws(HTTPFailure) {
                    if case .statusLine = state {
                        try parseStatusLine(line)
                        state = .headers
                    } else if line.isEmpty {
                        complete = true
                    } else {
                        try parseHeader(line)
                    }
                } catch {
                    failure = error
                }
            }
            return offset
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        if let failure { throw failure }
        return complete
    }

    private mutating func parseStatusLine(_ bytes: UnsafeRawBufferPointer) throws(HTTPFailure) {
        // "HTTP/1.1 200 OK"
        guard bytes.count >= 12, bytes.starts(with: "HTTP/1.".utf8), bytes[bytes.startIndex + 8] == UInt8(ascii: " ") else {
            throw HTTPFailure(.other, "the server did not answer with HTTP/1.x (\"\(String(decoding: bytes.prefix(40), as: UTF8.self))\")")
        }
        http10 = bytes[bytes.startIndex + 7] == UInt8(ascii: "0")
        var code = 0
        for byte in bytes[(bytes.startIndex + 9)..<(bytes.startIndex + 12)] {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { throw HTTPFailure(.other, "the server sent a malformed status line") }
            code = code * 10 + Int(byte - UInt8(ascii: "0"))
        }
        guard code >= 100 else { throw HTTPFailure(.other, "the server sent status \(code)") }
        status = code
    }

    private mutating func parseHeader(_ bytes: UnsafeRawBufferPointer) throws(HTTPFailure) {
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon > bytes.startIndex else {
            throw HTTPFailure(.other, "the server sent a malformed header field")
        }
        let name = bytes[bytes.startIndex..<colon]
        var value = bytes[(colon + 1)...]
        while let first = value.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { value = value.dropFirst() }
        while let last = value.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { value = value.dropLast() }

        if Self.equalsIgnoringCase(name, "content-length") {
            var length = 0
            guard !value.isEmpty, value.count <= 18 else { throw HTTPFailure(.other, "the server sent a malformed Content-Length") }
            for byte in value {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
                    throw HTTPFailure(.other, "the server sent a malformed Content-Length")
                }
                length = length * 10 + Int(byte - UInt8(ascii: "0"))
            }
            if let existing = contentLength, existing != length { throw HTTPFailure(.other, "the server sent two different Content-Lengths") }
            contentLength = length
        } else if Self.equalsIgnoringCase(name, "transfer-encoding") {
            chunked = Self.containsToken(value, "chunked")
        } else if Self.equalsIgnoringCase(name, "connection") {
            if Self.containsToken(value, "close") { connectionClose = true }
            if Self.containsToken(value, "keep-alive") { connectionKeepAlive = true }
        }
        if collectHeaders {
            headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
    }

    static func equalsIgnoringCase<Bytes: Collection<UInt8>>(_ bytes: Bytes, _ lowercase: StaticString) -> Bool {
        lowercase.withUTF8Buffer { bytes.asciiCaseInsensitiveEquals($0) }
    }

    /// Whether a comma-separated header value lists `token` (case-insensitively).
    /// Walks the elements in place: every response has a `Connection` field, and splitting it
    /// into an array would cost the load an allocation a request.
    static func containsToken<Bytes: BidirectionalCollection<UInt8>>(_ value: Bytes, _ token: StaticString) -> Bool where Bytes.Index == Int {
        var start = value.startIndex
        while start <= value.endIndex {
            let end = value[start...].firstIndex(of: UInt8(ascii: ",")) ?? value.endIndex
            var part = value[start..<end]
            while let first = part.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { part = part.dropFirst() }
            while let last = part.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { part = part.dropLast() }
            if equalsIgnoringCase(part, token) { return true }
            start = end + 1
        }
        return false
    }
}
