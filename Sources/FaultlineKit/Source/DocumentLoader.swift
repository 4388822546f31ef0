import Foundation

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
    /// - Parameters:
    ///   - path: a `.yaml`, `.yml` or `.json` file.
    ///   - limits: how large a document may be and make the loader build.
    /// - Throws: a ``Diagnostic`` with the position of a syntax error or of an exceeded limit, or
    ///   naming the unreadable file.
    public static func load(path: String, limits: InputLimits = .documents) throws -> SourceNode {
        try loadCounted(path: path, limits: limits).node
    }

    /// The document and the number of values it holds (aliases counted as copies).
    static func loadCounted(path: String, limits: InputLimits) throws -> (node: SourceNode, values: Int) {
        guard let format = format(forPath: path) else {
            throw Diagnostic(
                "cannot read \(path): only .yaml, .yml and .json files are supported",
                hint: "rename the file with one of these extensions")
        }
        let text = try read(path, limits: limits)
        return try parseCounted(text, format: format, file: path, limits: limits)
    }

    /// The file's text, read no further than the limit. Only regular files are read: a FIFO or
    /// `/dev/stdin` would wait for a writer, `/dev/zero` never ends.
    private static func read(_ path: String, limits: InputLimits) throws -> String {
        // Opened without blocking (a FIFO's open waits for a writer), then checked.
        let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            let reason = errno == ENOENT ? "no such file" : "it is not readable"
            throw Diagnostic("cannot read \(path): \(reason)")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw Diagnostic("cannot read \(path): it is not a regular file", hint: "name an experiment or suite file")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        var data = Data()
        while data.count <= limits.documentBytes {
            let chunk: Data?
            do {
                chunk = try handle.read(upToCount: min(1 << 20, limits.documentBytes + 1 - data.count))
            } catch {
                throw Diagnostic("cannot read \(path): \(error.localizedDescription)")
            }
            guard let chunk, !chunk.isEmpty else { break }
            data.append(chunk)
        }
        guard data.count <= limits.documentBytes else {
            throw Diagnostic(
                "\(path) is larger than \(InputLimits.bytes(limits.documentBytes))", at: SourceLocation(file: path, line: 1, column: 1),
                hint: "an experiment or suite is a few kilobytes; split a generated one into several files")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw Diagnostic("\(path) is not UTF-8 text", at: firstInvalidUTF8(data, file: path), hint: "save it as UTF-8")
        }
        return text
    }

    /// Where the first byte that is not UTF-8 is.
    private static func firstInvalidUTF8(_ data: Data, file: String) -> SourceLocation {
        var parser = Unicode.UTF8.ForwardParser()
        var bytes = data.makeIterator()
        var (line, column) = (1, 1)
        while true {
            switch parser.parseScalar(from: &bytes) {
            case .valid(let scalar):
                if scalar.count == 1, scalar.first == UInt8(ascii: "\n") { (line, column) = (line + 1, 1) } else { column += 1 }
            case .emptyInput, .error:
                return SourceLocation(file: file, line: line, column: column)
            }
        }
    }

    /// Parses text in the given format; `file` names it in locations.
    public static func parse(_ text: String, format: Format, file: String, limits: InputLimits = .documents) throws -> SourceNode {
        try parseCounted(text, format: format, file: file, limits: limits).node
    }

    static func parseCounted(_ text: String, format: Format, file: String, limits: InputLimits) throws -> (node: SourceNode, values: Int) {
        guard text.utf8.count <= limits.documentBytes else {
            throw Diagnostic("\(file) is larger than \(InputLimits.bytes(limits.documentBytes))", at: SourceLocation(file: file, line: 1, column: 1))
        }
        switch format {
        case .json: return try JSONReader.parseCounted(text, file: file, limits: limits)
        case .yaml: return try YAMLComposer.compose(text, file: file, limits: limits)
        }
    }

    static func coreBool(_ text: String) -> Bool? {
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
