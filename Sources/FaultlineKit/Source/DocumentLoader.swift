import Foundation
import Yams

/// Reads YAML and JSON documents into ``SourceNode`` trees with a location on every value.
///
/// YAML scalars are resolved with the YAML 1.2 core schema (`true`/`false` are the only booleans;
/// `yes`, `no`, `on` and `off` stay strings), so a YAML document means what the same JSON would.
public enum DocumentLoader {
    public enum Format: String, Sendable {
        case yaml, json
    }

    /// The format implied by a file name, or nil for an unsupported extension.
    public static func format(forPath path: String) -> Format? {
        switch (path as NSString).pathExtension.lowercased() {
        case "yaml", "yml": .yaml
        case "json": .json
        default: nil
        }
    }

    /// Reads and parses a file.
    /// - Parameter path: a `.yaml`, `.yml` or `.json` file.
    /// - Throws: a ``Diagnostic`` with the position of a syntax error, or naming the unreadable file.
    public static func load(path: String) throws -> SourceNode {
        guard let format = format(forPath: path) else {
            throw Diagnostic(
                "cannot read \(path): only .yaml, .yml and .json files are supported",
                hint: "rename the file with one of these extensions")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "it is not readable UTF-8 text" : "no such file"
            throw Diagnostic("cannot read \(path): \(reason)")
        }
        return try parse(text, format: format, file: path)
    }

    /// Parses text in the given format; `file` names it in locations.
    public static func parse(_ text: String, format: Format, file: String) throws -> SourceNode {
        switch format {
        case .json: return try JSONReader.parse(text, file: file)
        case .yaml: return try parseYAML(text, file: file)
        }
    }

    private static func parseYAML(_ text: String, file: String) throws -> SourceNode {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            throw diagnostic(for: error, file: file, text: text)
        }
        guard let node else {
            return SourceNode(.scalar(.null, raw: nil), at: SourceLocation(file: file, line: 1, column: 1))
        }
        let sink = DiagnosticSink()
        let result = convert(node, file: file, sink: sink)
        try sink.throwIfErrors()
        return result
    }

    private static func diagnostic(for error: YamlError, file: String, text: String) -> Diagnostic {
        switch error {
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams points at the first occurrence; point at the repeat, which is what to remove.
            let key = duplicates.first ?? "?"
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            var location = SourceLocation(file: file, line: context.mark.line, column: context.mark.column)
            for index in context.mark.line..<lines.count {
                let line = lines[index]
                let indent = line.prefix { $0 == " " }.count
                if indent == context.mark.column - 1, line.dropFirst(indent).hasPrefix("\(key):") || line.dropFirst(indent).hasPrefix("\"\(key)\":") {
                    location = SourceLocation(file: file, line: index + 1, column: indent + 1)
                    break
                }
            }
            return Diagnostic(
                "duplicate key \"\(key)\"", at: location,
                hint: "a key may appear only once in an object; the first is at line \(context.mark.line)")
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var message = "invalid YAML: \(problem)"
            if let context { message += " (\(context.text) at line \(context.mark.line))" }
            var hint: String?
            if problem.contains("found character that cannot start any token") {
                hint = "quote values that start with '@', '`', '%' or contain tabs; indent with spaces"
            } else if problem.contains("mapping values are not allowed") {
                hint = "quote a value that contains ': ', or check the indentation of the line above"
            } else if problem.contains("did not find expected") {
                hint = "check the indentation, and quote strings such as \"${name}\" inside [ ] or { }"
            }
            return Diagnostic(message, at: SourceLocation(file: file, line: mark.line, column: mark.column), hint: hint)
        case .reader(let problem, _, _, _):
            return Diagnostic("invalid YAML: \(problem)", at: SourceLocation(file: file, line: 1, column: 1))
        default:
            return Diagnostic("invalid YAML: \(error)", at: SourceLocation(file: file, line: 1, column: 1))
        }
    }

    private static func location(_ mark: Mark?, _ file: String) -> SourceLocation? {
        mark.map { SourceLocation(file: file, line: $0.line, column: $0.column) }
    }

    private static func convert(_ node: Node, file: String, sink: DiagnosticSink) -> SourceNode {
        switch node {
        case .scalar(let scalar):
            return SourceNode(resolve(scalar), at: location(scalar.mark, file))
        case .sequence(let sequence):
            return SourceNode(.array(sequence.map { convert($0, file: file, sink: sink) }), at: location(sequence.mark, file))
        case .mapping(let mapping):
            var members: [SourceNode.Member] = []
            var seen: Set<String> = []
            for (keyNode, valueNode) in mapping {
                let keyLocation = location(keyNode.mark, file)
                guard case .scalar(let keyScalar) = keyNode else {
                    sink.report(Diagnostic("a key must be a plain string, not a list or object", at: keyLocation))
                    continue
                }
                let key = keyScalar.string
                if key == "<<" {
                    // YAML merge key: splice the referenced mapping's members in, without overriding.
                    for merged in mergeSources(valueNode) {
                        for member in convert(merged, file: file, sink: sink).members ?? [] where !seen.contains(member.key) {
                            seen.insert(member.key)
                            members.append(member)
                        }
                    }
                    continue
                }
                if seen.contains(key) {
                    sink.report(Diagnostic("duplicate key \"\(key)\"", at: keyLocation, hint: "a key may appear only once in an object; remove one"))
                    continue
                }
                seen.insert(key)
                members.append(.init(key: key, keyLocation: keyLocation, value: convert(valueNode, file: file, sink: sink)))
            }
            return SourceNode(.object(members), at: location(mapping.mark, file))
        case .alias(let alias):
            sink.report(Diagnostic("unresolved YAML alias *\(alias.anchor.rawValue)", at: location(alias.mark, file)))
            return SourceNode(.scalar(.null, raw: nil), at: location(alias.mark, file))
        }
    }

    private static func mergeSources(_ node: Node) -> [Node] {
        switch node {
        case .mapping: [node]
        case .sequence(let sequence): Array(sequence)
        default: []
        }
    }

    private static func resolve(_ scalar: Node.Scalar) -> SourceNode.Content {
        let text = scalar.string
        let tag = scalar.tag.rawValue
        let implicit = tag.isEmpty || tag == "!" || tag == "?" || tag == Tag.Name.str.rawValue
        if !implicit || scalar.style != .plain {
            // Quoted, or explicitly tagged: honour the tag.
            switch tag {
            case Tag.Name.int.rawValue: if let i = Int(text) { return .scalar(.int(i), raw: text) }
            case Tag.Name.float.rawValue: if let d = Double(text) { return .scalar(.double(d), raw: text) }
            case Tag.Name.bool.rawValue: if let b = coreBool(text) { return .scalar(.bool(b), raw: text) }
            case Tag.Name.null.rawValue: return .scalar(.null, raw: text)
            default: break
            }
            return .scalar(.string(text), raw: nil)
        }
        return .scalar(resolvePlain(text), raw: text)
    }

    private static func coreBool(_ text: String) -> Bool? {
        switch text {
        case "true", "True", "TRUE": true
        case "false", "False", "FALSE": false
        default: nil
        }
    }

    /// YAML 1.2 core schema resolution of a plain scalar.
    static func resolvePlain(_ text: String) -> Value {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
        case ".nan", ".NaN", ".NAN": return .double(.nan)
        default: break
        }
        if let b = coreBool(text) { return .bool(b) }
        let utf8 = Array(text.utf8)
        if utf8.count > 2, utf8[0] == UInt8(ascii: "0") {
            if utf8[1] == UInt8(ascii: "x"), let i = Int(text.dropFirst(2), radix: 16) { return .int(i) }
            if utf8[1] == UInt8(ascii: "o"), let i = Int(text.dropFirst(2), radix: 8) { return .int(i) }
        }
        if isDecimalInteger(utf8), let i = Int(text) { return .int(i) }
        if isFloat(utf8), let d = Double(text) { return .double(d) }
        return .string(text)
    }

    private static func isDecimalInteger(_ s: [UInt8]) -> Bool {
        var i = 0
        if i < s.count, s[i] == UInt8(ascii: "-") || s[i] == UInt8(ascii: "+") { i += 1 }
        guard i < s.count else { return false }
        return s[i...].allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    private static func isFloat(_ s: [UInt8]) -> Bool {
        func digit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        var i = 0
        if i < s.count, s[i] == UInt8(ascii: "-") || s[i] == UInt8(ascii: "+") { i += 1 }
        var mantissaDigits = 0
        while i < s.count, digit(s[i]) { i += 1; mantissaDigits += 1 }
        if i < s.count, s[i] == UInt8(ascii: ".") {
            i += 1
            while i < s.count, digit(s[i]) { i += 1; mantissaDigits += 1 }
        }
        guard mantissaDigits > 0 else { return false }
        if i < s.count, s[i] == UInt8(ascii: "e") || s[i] == UInt8(ascii: "E") {
            i += 1
            if i < s.count, s[i] == UInt8(ascii: "-") || s[i] == UInt8(ascii: "+") { i += 1 }
            var exponentDigits = 0
            while i < s.count, digit(s[i]) { i += 1; exponentDigits += 1 }
            guard exponentDigits > 0 else { return false }
        }
        return i == s.count
    }
}
