@testable import FaultlineDemo
import NIOCore
import NIOEmbedded
import Testing

@Suite("RESP framing")
struct RESPTests {
    /// Three pipelined requests, one inline, one with a binary value holding CRLF.
    static let requests: [RESPValue] = [
        .array([.bulk("SET"), .bulk("k"), .bulkString(ByteBuffer(bytes: [0, 13, 10, 255]))]),
        .command(["GET", "k"]),
        .command(["PING"]),
    ]
    static let requestBytes: [UInt8] = {
        var buffer = ByteBuffer()
        requests[0].write(to: &buffer)
        requests[1].write(to: &buffer)
        buffer.writeString("PING\r\n")  // an inline command, as typed into telnet
        return Array(buffer.readableBytesView)
    }()

    static let replies: [RESPValue] = [
        .simpleString("OK"), .error("ERR nope"), .integer(-42), .null, .bulk(""), .array(nil), .array([]),
        .array([.integer(1), .array([.bulk("nested"), .null]), .simpleString("x")]),
    ]

    /// Feeds `chunks` to a decoder one write at a time and returns every value it produced.
    func decode(_ chunks: [[UInt8]], allowInline: Bool) throws -> [RESPValue] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(RESPDecoder(allowInline: allowInline)))
        var values: [RESPValue] = []
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(bytes: chunk))
            while let value = try channel.readInbound(as: RESPValue.self) { values.append(value) }
        }
        _ = try channel.finish()
        return values
    }

    @Test("pipelined requests split at every byte decode to the same commands")
    func requestsSplitAnywhere() throws {
        let bytes = Self.requestBytes
        for split in 0...bytes.count {
            let values = try decode([Array(bytes[..<split]), Array(bytes[split...])], allowInline: true)
            #expect(values == Self.requests, "split at byte \(split)")
        }
    }

    @Test("requests arriving one byte per segment decode")
    func requestsByteByByte() throws {
        #expect(try decode(Self.requestBytes.map { [$0] }, allowInline: true) == Self.requests)
    }

    @Test("replies of every type, split at every byte, decode in order")
    func repliesSplitAnywhere() throws {
        var buffer = ByteBuffer()
        for reply in Self.replies { reply.write(to: &buffer) }
        let bytes = Array(buffer.readableBytesView)
        for split in 0...bytes.count {
            #expect(try decode([Array(bytes[..<split]), Array(bytes[split...])], allowInline: false) == Self.replies)
        }
    }

    @Test(
        "the wire form is Redis's",
        arguments: [
            (RESPValue.simpleString("OK"), "+OK\r\n"),
            (.error("ERR x"), "-ERR x\r\n"),
            (.integer(7), ":7\r\n"),
            (.null, "$-1\r\n"),
            (.array(nil), "*-1\r\n"),
            (.command(["GET", "k"]), "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
        ])
    func wireForm(_ value: RESPValue, _ wire: String) {
        var buffer = ByteBuffer()
        value.write(to: &buffer)
        #expect(String(buffer: buffer) == wire)
    }

    @Test(
        "malformed streams are protocol errors",
        arguments: [
            ("?x\r\n", false),  // not a type marker (and inline commands are a server's)
            ("$3\r\nabcde\r\n", true),  // bulk not followed by CRLF
            ("*2\n", true),  // LF without CR
            ("$-5\r\n", true),  // negative length
            (":12a\r\n", true),  // not a number
        ])
    func malformed(_ text: String, _ allowInline: Bool) {
        #expect(throws: RESPProtocolError.self) {
            var buffer = ByteBuffer(string: text)
            _ = try RESPParser.parse(&buffer, allowInline: allowInline)
        }
    }

    @Test(
        "KEYS patterns match like Redis's",
        arguments: [
            ("*", "anything", true), ("order:*", "order:12", true), ("order:*", "orders:seq", false),
            ("h?llo", "hello", true), ("h?llo", "hllo", false), ("h[ae]llo", "hallo", true), ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true), ("h[^e]llo", "hello", false), ("h[a-c]llo", "hbllo", true),
            ("h\\*llo", "h*llo", true), ("h\\*llo", "hello", false), ("*:seq", "orders:seq", true), ("", "", true),
        ])
    func glob(_ pattern: String, _ key: String, _ matches: Bool) {
        #expect(Glob.matches(Array(pattern.utf8), Array(key.utf8)) == matches)
    }
}
