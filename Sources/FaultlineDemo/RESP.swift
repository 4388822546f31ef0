import NIOCore

/// A value of the Redis serialization protocol, version 2 (RESP2).
public enum RESPValue: Sendable, Hashable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    /// A bulk string; `nil` is RESP's null bulk string.
    case bulkString(ByteBuffer?)
    /// An array; `nil` is RESP's null array.
    case array([RESPValue]?)

    /// A command as clients send it: an array of bulk strings.
    public static func command(_ words: [String]) -> RESPValue {
        .array(words.map { .bulkString(ByteBuffer(string: $0)) })
    }

    /// A bulk string holding `text`.
    public static func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }

    /// The null bulk string.
    public static let null = RESPValue.bulkString(nil)

    /// The text of a simple or bulk string.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let buffer?): String(buffer: buffer)
        default: nil
        }
    }

    /// The value of an integer reply.
    public var integerValue: Int64? {
        if case .integer(let value) = self { value } else { nil }
    }

    /// Appends the wire form of this value.
    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .simpleString(let text):
            buffer.writeString("+\(text)\r\n")
        case .error(let text):
            buffer.writeString("-\(text)\r\n")
        case .integer(let value):
            buffer.writeString(":\(value)\r\n")
        case .bulkString(nil):
            buffer.writeStaticString("$-1\r\n")
        case .bulkString(let bytes?):
            buffer.writeString("$\(bytes.readableBytes)\r\n")
            buffer.writeImmutableBuffer(bytes)
            buffer.writeStaticString("\r\n")
        case .array(nil):
            buffer.writeStaticString("*-1\r\n")
        case .array(let elements?):
            buffer.writeString("*\(elements.count)\r\n")
            for element in elements { element.write(to: &buffer) }
        }
    }
}

/// A malformed RESP stream. The stream cannot be resynchronised after one, so the connection ends.
public struct RESPProtocolError: Error, CustomStringConvertible {
    public let description: String
}

/// An incremental RESP2 parser: takes one complete value off the front of a buffer, or leaves the
/// buffer untouched when the value has not fully arrived yet, wherever the bytes were split.
enum RESPParser {
    static let maxLineLength = 64 * 1024
    static let maxBulkLength = 512 * 1024 * 1024
    static let maxArrayCount = 1024 * 1024
    static let maxDepth = 32

    /// Parses one value; `nil` when more bytes are needed.
    /// - Parameters:
    ///   - buffer: The received bytes; on success its reader index moves past the value.
    ///   - allowInline: Accept Redis "inline commands" (`PING\r\n` typed into telnet), as servers do.
    static func parse(_ buffer: inout ByteBuffer, allowInline: Bool) throws -> RESPValue? {
        var cursor = buffer
        while allowInline, let first = cursor.getInteger(at: cursor.readerIndex, as: UInt8.self), !isTypeMarker(first) {
            guard let line = try readLine(&cursor) else { return nil }
            let words = line.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") })
            if words.isEmpty {
                // Redis skips empty inline lines.
                buffer = cursor
                continue
            }
            buffer = cursor
            return .array(words.map { .bulkString(ByteBuffer(bytes: $0)) })
        }
        guard let value = try parseValue(&cursor, depth: 0) else { return nil }
        buffer = cursor
        return value
    }

    private static func isTypeMarker(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "*"), UInt8(ascii: "$"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"): true
        default: false
        }
    }

    private static func parseValue(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        guard depth < maxDepth else { throw RESPProtocolError(description: "nesting deeper than \(maxDepth)") }
        guard let marker = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        guard isTypeMarker(marker) else {
            throw RESPProtocolError(description: "expected '*', '$', '+', '-' or ':', got byte \(marker)")
        }
        buffer.moveReaderIndex(forwardBy: 1)
        guard let line = try readLine(&buffer) else { return nil }
        switch marker {
        case UInt8(ascii: "+"): return .simpleString(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: "-"): return .error(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: ":"): return .integer(try integer(line))
        case UInt8(ascii: "$"):
            let length = try integer(line)
            if length == -1 { return .null }
            guard length >= 0, length <= maxBulkLength else { throw RESPProtocolError(description: "invalid bulk length \(length)") }
            guard buffer.readableBytes >= Int(length) + 2 else { return nil }
            let bytes = buffer.readSlice(length: Int(length))!
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
                throw RESPProtocolError(description: "bulk string not followed by CRLF")
            }
            return .bulkString(bytes)
        default:
            let count = try integer(line)
            if count == -1 { return .array(nil) }
            guard count >= 0, count <= maxArrayCount else { throw RESPProtocolError(description: "invalid array length \(count)") }
            var elements: [RESPValue] = []
            elements.reserveCapacity(Int(count))
            for _ in 0..<count {
                guard let element = try parseValue(&buffer, depth: depth + 1) else { return nil }
                elements.append(element)
            }
            return .array(elements)
        }
    }

    /// Reads a CRLF-terminated line (without the CRLF); `nil` when it has not fully arrived.
    private static func readLine(_ buffer: inout ByteBuffer) throws -> ByteBufferView? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > maxLineLength { throw RESPProtocolError(description: "line longer than \(maxLineLength) bytes") }
            return nil
        }
        guard newline > view.startIndex, view[newline - 1] == UInt8(ascii: "\r") else {
            throw RESPProtocolError(description: "line not terminated by CRLF")
        }
        let line = view[view.startIndex..<(newline - 1)]
        buffer.moveReaderIndex(to: newline + 1)
        return line
    }

    private static func integer(_ line: ByteBufferView) throws -> Int64 {
        guard let value = Int64(String(decoding: line, as: UTF8.self)) else {
            throw RESPProtocolError(description: "invalid integer \"\(String(decoding: line, as: UTF8.self))\"")
        }
        return value
    }
}

/// Frames a byte stream into RESP values.
final class RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue

    private let allowInline: Bool

    /// - Parameter allowInline: Servers accept inline commands; clients expect only RESP replies.
    init(allowInline: Bool) {
        self.allowInline = allowInline
    }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let value = try RESPParser.parse(&buffer, allowInline: allowInline) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// Writes RESP values in their wire form.
final class RESPEncoder: MessageToByteEncoder {
    typealias OutboundIn = RESPValue

    func encode(data: RESPValue, out: inout ByteBuffer) throws {
        data.write(to: &out)
    }
}
