import Foundation

/// An HTTP/1.1 request as the admin API reads it off a connection: the head, and the body once
/// it has arrived (de-chunked).
public struct AdminHTTPRequest: Sendable, Equatable {
    public var method: String
    /// The request target as sent (`/proxies/db?x=1`).
    public var target: String
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    /// Header fields in order, names as sent.
    public var headers: [Header]
    public var body: [UInt8]
    /// Whether the body is still to come (``AdminHTTPParser/Outcome/head(_:)``).
    public var expectsContinue: Bool

    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    /// The value of the first field named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// Every value of the fields named `name`.
    public func headers(named name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    /// Whether the connection stays open after the answer (HTTP/1.1 unless `Connection: close`;
    /// HTTP/1.0 only with `Connection: keep-alive`).
    public var keepAlive: Bool {
        let tokens = headers(named: "Connection").flatMap { $0.lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if tokens.contains("close") { return false }
        return minorVersion >= 1 || tokens.contains("keep-alive")
    }
}

/// A request the admin API refuses before routing it: its status and why.
public struct AdminHTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 400 (malformed), 413 (body too large), 431 (head too large), 501 (a transfer coding other
    /// than chunked), 505 (not HTTP/1.x).
    public var status: Int
    public var reason: String

    public init(_ status: Int, _ reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String { "\(status): \(reason)" }
}

/// Reads one HTTP/1.1 request from the start of a byte buffer: a pure function, so a fuzzer can
/// feed it any bytes (`AdminHTTPParser.parse(bytes, limits:)`), and the admin server calls it
/// again as bytes arrive.
///
/// Strict where leniency lets one request pass for another (request smuggling): a body length is
/// either one `Content-Length` or `Transfer-Encoding: chunked`, never both; header names are
/// tokens with no space before the colon; no folded lines; no control characters in values. Line
/// ends may be CRLF or a bare LF, and empty lines before a request are skipped, as Go's server does.
public enum AdminHTTPParser {
    /// How much a request may be.
    public struct Limits: Sendable, Equatable {
        /// Request line and header fields together.
        public var headBytes: Int
        public var headerCount: Int
        /// The body after de-chunking.
        public var bodyBytes: Int

        public init(headBytes: Int = 32 << 10, headerCount: Int = 100, bodyBytes: Int = 1 << 20) {
            self.headBytes = headBytes
            self.headerCount = headerCount
            self.bodyBytes = bodyBytes
        }
    }

    public enum Outcome: Sendable, Equatable {
        /// A whole request, and how many bytes it took (a pipelined request may follow).
        case complete(AdminHTTPRequest, consumed: Int)
        /// The head is complete, the body is not: parse again once at least `minimumBytes` are there.
        case head(AdminHTTPRequest, minimumBytes: Int)
        /// The head is not complete: parse again once at least `minimumBytes` are there.
        case incomplete(minimumBytes: Int)
        /// Not a request to answer; answer with the error's status and close the connection.
        case failure(AdminHTTPError)
    }

    public static func parse(_ bytes: some Collection<UInt8>, limits: Limits = Limits()) -> Outcome {
        let buffer = Array(bytes)
        return buffer.withUnsafeBufferPointer { parse(buffer: $0, limits: limits) }
    }

    private static func parse(buffer: UnsafeBufferPointer<UInt8>, limits: Limits) -> Outcome {
        var start = 0
        // Empty lines before the request line.
        while start < buffer.count, buffer[start] == cr || buffer[start] == lf { start += 1 }
        guard let headEnd = endOfHead(buffer, from: start, limit: limits.headBytes) else {
            if buffer.count - start > limits.headBytes { return .failure(AdminHTTPError(431, "request head larger than \(limits.headBytes) bytes")) }
            return .incomplete(minimumBytes: buffer.count + 1)
        }
        var request: AdminHTTPRequest
        switch parseHead(UnsafeBufferPointer(rebasing: buffer[start..<headEnd.linesEnd]), limits: limits) {
        case .success(let head): request = head
        case .failure(let error): return .failure(error)
        }
        let bodyStart = headEnd.bodyStart
        switch bodyFraming(request, limits: limits) {
        case .failure(let error):
            return .failure(error)
        case .success(.none):
            return .complete(request, consumed: bodyStart)
        case .success(.length(let length)):
            guard buffer.count - bodyStart >= length else {
                request.expectsContinue = continueExpected(request)
                return .head(request, minimumBytes: bodyStart + length)
            }
            request.body = Array(buffer[bodyStart..<(bodyStart + length)])
            return .complete(request, consumed: bodyStart + length)
        case .success(.chunked):
            switch dechunk(UnsafeBufferPointer(rebasing: buffer[bodyStart...]), limits: limits) {
            case .failure(let error):
                return .failure(error)
            case .success(.needMore(let minimum)):
                request.expectsContinue = continueExpected(request)
                return .head(request, minimumBytes: bodyStart + minimum)
            case .success(.done(let body, let consumed)):
                request.body = body
                return .complete(request, consumed: bodyStart + consumed)
            }
        }
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// Where the head's lines end (before the empty line) and the body starts.
    private static func endOfHead(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int, limit: Int) -> (linesEnd: Int, bodyStart: Int)? {
        var index = start
        let end = min(buffer.count, start + limit + 4)
        while index < end {
            if buffer[index] == lf {
                // LF LF or LF CR LF ends the head.
                if index + 1 < buffer.count, buffer[index + 1] == lf { return (index + 1, index + 2) }
                if index + 2 < buffer.count, buffer[index + 1] == cr, buffer[index + 2] == lf { return (index + 1, index + 3) }
            }
            index += 1
        }
        return nil
    }

    /// The lines of a head (each ending in LF or CRLF).
    private static func lines(_ head: UnsafeBufferPointer<UInt8>) -> [UnsafeBufferPointer<UInt8>] {
        var lines: [UnsafeBufferPointer<UInt8>] = []
        var lineStart = 0
        for index in 0..<head.count where head[index] == lf {
            var lineEnd = index
            if lineEnd > lineStart, head[lineEnd - 1] == cr { lineEnd -= 1 }
            lines.append(UnsafeBufferPointer(rebasing: head[lineStart..<lineEnd]))
            lineStart = index + 1
        }
        return lines
    }

    private static func parseHead(_ head: UnsafeBufferPointer<UInt8>, limits: Limits) -> Result<AdminHTTPRequest, AdminHTTPError> {
        let lines = lines(head)
        guard let requestLine = lines.first else { return .failure(AdminHTTPError(400, "no request line")) }
        let parts = requestLine.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else { return .failure(AdminHTTPError(400, "malformed request line")) }
        guard parts[0].allSatisfy(isTokenCharacter) else { return .failure(AdminHTTPError(400, "invalid method")) }
        guard parts[1].allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return .failure(AdminHTTPError(400, "invalid request target")) }
        let version = String(decoding: parts[2], as: UTF8.self)
        let minor: Int
        switch version {
        case "HTTP/1.1": minor = 1
        case "HTTP/1.0": minor = 0
        default:
            guard version.hasPrefix("HTTP/") else { return .failure(AdminHTTPError(400, "malformed HTTP version")) }
            return .failure(AdminHTTPError(505, "unsupported HTTP version \(version.prefix(16))"))
        }
        var headers: [AdminHTTPRequest.Header] = []
        for line in lines.dropFirst() {
            guard headers.count < limits.headerCount else {
                return .failure(AdminHTTPError(431, "more than \(limits.headerCount) header fields"))
            }
            if let first = line.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
                return .failure(AdminHTTPError(400, "folded header line"))
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return .failure(AdminHTTPError(400, "header line without a colon")) }
            let name = line[..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenCharacter) else { return .failure(AdminHTTPError(400, "invalid header field name")) }
            var value = line[(colon + 1)...]
            while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
            while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
            guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                return .failure(AdminHTTPError(400, "invalid header field value"))
            }
            headers.append(.init(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self)))
        }
        let request = AdminHTTPRequest(
            method: String(decoding: parts[0], as: UTF8.self), target: String(decoding: parts[1], as: UTF8.self), minorVersion: minor,
            headers: headers, body: [], expectsContinue: false)
        if minor == 1 && request.headers(named: "Host").count != 1 {
            // As Go's server: HTTP/1.1 needs exactly one Host.
            return .failure(AdminHTTPError(400, request.headers(named: "Host").isEmpty ? "missing required Host header" : "too many Host headers"))
        }
        return .success(request)
    }

    /// RFC 7230 `tchar`.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    private enum Framing {
        case none
        case length(Int)
        case chunked
    }

    private static func bodyFraming(_ request: AdminHTTPRequest, limits: Limits) -> Result<Framing, AdminHTTPError> {
        let encodings = request.headers(named: "Transfer-Encoding")
        let lengths = request.headers(named: "Content-Length")
        if !encodings.isEmpty {
            guard lengths.isEmpty else { return .failure(AdminHTTPError(400, "both Transfer-Encoding and Content-Length")) }
            let codings = encodings.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard codings == ["chunked"] else { return .failure(AdminHTTPError(501, "unsupported transfer encoding")) }
            return .success(.chunked)
        }
        guard !lengths.isEmpty else { return .success(.none) }
        let values = Set(
            lengths.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { $0.trimmingCharacters(in: .whitespaces) })
        guard values.count == 1, let text = values.first, !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let length = Int(text)
        else {
            return .failure(AdminHTTPError(400, "invalid Content-Length"))
        }
        guard length <= limits.bodyBytes else { return .failure(AdminHTTPError(413, "request body larger than \(limits.bodyBytes) bytes")) }
        return .success(length == 0 ? .none : .length(length))
    }

    private static func continueExpected(_ request: AdminHTTPRequest) -> Bool {
        request.minorVersion >= 1 && request.header("Expect")?.lowercased() == "100-continue"
    }

    private enum Dechunked {
        case done([UInt8], consumed: Int)
        case needMore(Int)
    }

    /// Decodes a chunked body from the start of `buffer`: the body and the bytes it took, or how
    /// many bytes are needed before trying again.
    private static func dechunk(_ buffer: UnsafeBufferPointer<UInt8>, limits: Limits) -> Result<Dechunked, AdminHTTPError> {
        var body: [UInt8] = []
        var index = 0
        // Chunk extensions and trailers are skipped; each line is bounded, and so is the encoded
        // body (tiny chunks with long extensions would otherwise hold far more than the body).
        let maximumLine = 4096
        let maximumEncoded = limits.bodyBytes * 2 + 65536
        func needMore(_ minimum: Int) -> Result<Dechunked, AdminHTTPError> {
            buffer.count >= maximumEncoded
                ? .failure(AdminHTTPError(413, "request body larger than \(limits.bodyBytes) bytes")) : .success(.needMore(minimum))
        }
        func line(from start: Int) -> Result<(content: UnsafeBufferPointer<UInt8>, next: Int)?, AdminHTTPError> {
            var position = start
            while position < buffer.count {
                if buffer[position] == lf {
                    var end = position
                    if end > start, buffer[end - 1] == cr { end -= 1 }
                    return .success((UnsafeBufferPointer(rebasing: buffer[start..<end]), position + 1))
                }
                position += 1
                if position - start > maximumLine { return .failure(AdminHTTPError(400, "chunk line too long")) }
            }
            return .success(nil)
        }
        while true {
            let sizeLine: (content: UnsafeBufferPointer<UInt8>, next: Int)
            switch line(from: index) {
            case .failure(let error): return .failure(error)
            case .success(nil): return needMore(buffer.count + 1)
            case .success(let found?): sizeLine = found
            }
            let digits = sizeLine.content.prefix { $0 != UInt8(ascii: ";") }.filter { $0 != 0x20 && $0 != 0x09 }
            // Hex digits only: Int(_:radix:) also takes a sign, and a chunk of size -5 is no chunk.
            guard !digits.isEmpty, digits.count <= 15, digits.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0 | 0x20) }),
                let size = Int(String(decoding: digits, as: UTF8.self), radix: 16)
            else {
                return .failure(AdminHTTPError(400, "invalid chunk size"))
            }
            index = sizeLine.next
            if size == 0 {
                // Trailer fields until an empty line.
                while true {
                    switch line(from: index) {
                    case .failure(let error): return .failure(error)
                    case .success(nil): return needMore(buffer.count + 1)
                    case .success(let found?):
                        index = found.next
                        if found.content.isEmpty { return .success(.done(body, consumed: index)) }
                    }
                }
            }
            guard body.count + size <= limits.bodyBytes else {
                return .failure(AdminHTTPError(413, "request body larger than \(limits.bodyBytes) bytes"))
            }
            guard buffer.count >= index + size + 1 else { return needMore(index + size + 1) }
            body += buffer[index..<(index + size)]
            index += size
            // The chunk's data ends with CRLF (or LF).
            if buffer[index] == cr {
                guard buffer.count >= index + 2 else { return needMore(index + 2) }
                guard buffer[index + 1] == lf else { return .failure(AdminHTTPError(400, "chunk not followed by CRLF")) }
                index += 2
            } else if buffer[index] == lf {
                index += 1
            } else {
                return .failure(AdminHTTPError(400, "chunk not followed by CRLF"))
            }
        }
    }
}
