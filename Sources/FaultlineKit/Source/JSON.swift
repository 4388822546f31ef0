import Foundation

/// Writes ``Value``s as JSON: deterministic (object keys in insertion order), UTF-8, no escaping
/// of `/`, and numbers that read back as the same numbers.
public enum JSONWriter {
    /// JSON text of `value`; pretty output uses two-space indentation like `json.dump(indent=2)`.
    public static func string(_ value: Value, pretty: Bool = true) -> String {
        var out = ""
        out.reserveCapacity(256)
        write(value, into: &out, pretty: pretty, indent: 0)
        return out
    }

    /// UTF-8 bytes of the JSON text, with a trailing newline when pretty.
    public static func data(_ value: Value, pretty: Bool = true) -> Data {
        var text = string(value, pretty: pretty)
        if pretty { text += "\n" }
        return Data(text.utf8)
    }

    private static func write(_ value: Value, into out: inout String, pretty: Bool, indent: Int) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += format(d)
        case .string(let s): writeString(s, into: &out)
        case .array(let elements):
            if elements.isEmpty { out += "[]"; return }
            out += "["
            for (i, element) in elements.enumerated() {
                if i > 0 { out += "," }
                if pretty { newline(&out, indent + 1) }
                write(element, into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { newline(&out, indent) }
            out += "]"
        case .object(let object):
            if object.isEmpty { out += "{}"; return }
            out += "{"
            for (i, member) in object.enumerated() {
                if i > 0 { out += "," }
                if pretty { newline(&out, indent + 1) }
                writeString(member.key, into: &out)
                out += pretty ? ": " : ":"
                write(member.value, into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { newline(&out, indent) }
            out += "}"
        }
    }

    private static func newline(_ out: inout String, _ indent: Int) {
        out += "\n"
        out += String(repeating: "  ", count: indent)
    }

    /// A double in the shortest form that reads back exactly; non-finite numbers become null.
    static func format(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d.rounded() == d, abs(d) < 1e15 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20 || c.value == 0x7F:
                out += String(format: "\\u%04x", c.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

/// Reads JSON into ``SourceNode``s with line and column for every value, so that JSON experiments
/// get the same precise errors as YAML ones. Strict RFC 8259: no comments, no trailing commas.
///
/// A document (``parse(_:file:)``) may not repeat a key in an object: Python's `json.load`, which
/// Chaos Toolkit reads experiments with, keeps the last silently, so a stray second `"method"`
/// would quietly replace the first. A value read from a response (``value(_:)``) keeps the last,
/// as Python does.
public struct JSONReader {
    private let bytes: [UInt8]
    private let file: String
    private let rejectsDuplicateKeys: Bool
    private let limits: InputLimits
    /// Values read so far, for ``InputLimits/values``.
    private(set) var values = 0
    private var index = 0
    private var line = 1
    private var lineStart = 0
    /// The last column computed, so that columns along one long line are counted once, not
    /// from the line's start each time (a journal written on one line would be quadratic).
    private var columnMark = (index: 0, column: 1)

    private init(_ bytes: [UInt8], file: String, rejectsDuplicateKeys: Bool, limits: InputLimits) {
        self.bytes = bytes
        self.file = file
        self.rejectsDuplicateKeys = rejectsDuplicateKeys
        self.limits = limits
    }

    /// Parses a whole JSON document.
    /// - Parameters:
    ///   - text: the document.
    ///   - file: the name used in locations and errors.
    ///   - limits: how deep the document may nest and how many values it may hold.
    /// - Throws: a ``Diagnostic`` naming the position of the first syntax error, repeated key or
    ///   exceeded limit.
    public static func parse(_ text: String, file: String, limits: InputLimits = .documents) throws -> SourceNode {
        try parseCounted(text, file: file, limits: limits).node
    }

    /// The document and the number of values it holds.
    static func parseCounted(_ text: String, file: String, limits: InputLimits) throws -> (node: SourceNode, values: Int) {
        var reader = JSONReader(Array(text.utf8), file: file, rejectsDuplicateKeys: true, limits: limits)
        let node = try reader.document()
        return (node, reader.values)
    }

    private static func parse(_ text: String, file: String, rejectsDuplicateKeys: Bool, limits: InputLimits) throws -> SourceNode {
        var reader = JSONReader(Array(text.utf8), file: file, rejectsDuplicateKeys: rejectsDuplicateKeys, limits: limits)
        return try reader.document()
    }

    private mutating func document() throws -> SourceNode {
        skipWhitespace()
        let node = try parseValue(depth: 0)
        skipWhitespace()
        if index < bytes.count {
            throw error("unexpected text after the JSON document")
        }
        return node
    }

    /// Parses JSON into a plain ``Value`` (locations dropped); a repeated key keeps its last value.
    public static func value(_ text: String) throws -> Value {
        try parse(text, file: "<json>", rejectsDuplicateKeys: false, limits: .journals).value
    }

    private var location: SourceLocation {
        mutating get {
            // Columns count characters, not bytes: skip UTF-8 continuation bytes.
            if columnMark.index < lineStart || columnMark.index > index { columnMark = (lineStart, 1) }
            var column = columnMark.column
            var i = columnMark.index
            while i < index {
                if bytes[i] & 0xC0 != 0x80 { column += 1 }
                i += 1
            }
            columnMark = (index, column)
            return SourceLocation(file: file, line: line, column: column)
        }
    }

    private mutating func error(_ message: String) -> Diagnostic {
        Diagnostic("invalid JSON: \(message)", at: location)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0D: index += 1
            case 0x0A:
                index += 1
                line += 1
                lineStart = index
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws -> SourceNode {
        guard depth <= limits.depth else { throw error("lists and objects nest more than \(limits.depth) deep") }
        values += 1
        guard values <= limits.values else { throw error("the document holds more than \(limits.values) values") }
        guard index < bytes.count else { throw error("unexpected end of input, expected a value") }
        let start = location
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(start, depth: depth)
        case UInt8(ascii: "["): return try parseArray(start, depth: depth)
        case UInt8(ascii: "\""): return SourceNode(.scalar(.string(try parseString()), raw: nil), at: start)
        case UInt8(ascii: "t"): try expectWord("true"); return SourceNode(.scalar(.bool(true), raw: nil), at: start)
        case UInt8(ascii: "f"): try expectWord("false"); return SourceNode(.scalar(.bool(false), raw: nil), at: start)
        case UInt8(ascii: "n"): try expectWord("null"); return SourceNode(.scalar(.null, raw: nil), at: start)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return SourceNode(.scalar(try parseNumber(), raw: nil), at: start)
        default:
            throw error("unexpected character \(describe(bytes[index])), expected a value")
        }
    }

    private func describe(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? "'\(Character(UnicodeScalar(byte)))'" : String(format: "0x%02x", byte)
    }

    private mutating func expectWord(_ word: String) throws {
        let w = Array(word.utf8)
        guard index + w.count <= bytes.count, Array(bytes[index..<index + w.count]) == w else {
            throw error("unexpected word, expected \(word)")
        }
        index += w.count
    }

    private mutating func parseObject(_ start: SourceLocation, depth: Int) throws -> SourceNode {
        index += 1
        var members: [SourceNode.Member] = []
        var firstLines: [String: Int] = [:]
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return SourceNode(.object(members), at: start)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw error("expected a string key in double quotes")
            }
            let keyLocation = location
            let key = try parseString()
            if rejectsDuplicateKeys {
                if let first = firstLines[key] {
                    throw Diagnostic(
                        "duplicate key \"\(key)\"", at: keyLocation,
                        hint: "a key may appear only once in an object; the first is at line \(first) (Chaos Toolkit would silently keep this one)")
                }
                firstLines[key] = keyLocation.line
            }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':' after key \"\(key)\"") }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            members.append(.init(key: key, keyLocation: keyLocation, value: value))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input inside an object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; break }
            throw error("expected ',' or '}' after a member")
        }
        return SourceNode(.object(members), at: start)
    }

    private mutating func parseArray(_ start: SourceLocation, depth: Int) throws -> SourceNode {
        index += 1
        var elements: [SourceNode] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return SourceNode(.array(elements), at: start)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of input inside a list") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; break }
            throw error("expected ',' or ']' after a list element")
        }
        return SourceNode(.array(elements), at: start)
    }

    private mutating func parseNumber() throws -> Value {
        let start = index
        var isInteger = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        while index < bytes.count {
            let b = bytes[index]
            if b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") {
                index += 1
            } else if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
                || ((b == UInt8(ascii: "+") || b == UInt8(ascii: "-")) && index > start)
            {
                isInteger = false
                index += 1
            } else {
                break
            }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isInteger, let i = Int(text) { return .int(i) }
        guard let d = Double(text), text.last?.isNumber == true else { throw error("invalid number \(text)") }
        return .double(d)
    }

    private mutating func parseString() throws -> String {
        index += 1  // opening quote
        var scalars = String.UnicodeScalarView()
        var runStart = index
        func flush(_ reader: JSONReader, to end: Int) {
            scalars.append(contentsOf: String(decoding: reader.bytes[runStart..<end], as: UTF8.self).unicodeScalars)
        }
        while true {
            guard index < bytes.count else { throw error("unterminated string") }
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                flush(self, to: index)
                index += 1
                return String(scalars)
            }
            if b < 0x20 { throw error("control character in a string (escape it as \\u00\(String(format: "%02x", b)))") }
            if b != UInt8(ascii: "\\") { index += 1; continue }
            flush(self, to: index)
            index += 1
            guard index < bytes.count else { throw error("unterminated escape") }
            let e = bytes[index]
            index += 1
            switch e {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = try parseHex4()
                if (0xD800..<0xDC00).contains(code) {
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate in \\u escape")
                    }
                    index += 2
                    let low = try parseHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate in \\u escape") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                scalars.append(scalar)
            default:
                throw error("invalid escape \\\(Character(UnicodeScalar(e)))")
            }
            runStart = index
        }
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[index]
            let digit: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit in \\u escape")
            }
            value = value * 16 + digit
            index += 1
        }
        return value
    }
}
