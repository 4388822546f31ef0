// libyaml, as Yams builds it. Yams' own composer builds its whole node tree (aliases shared, but
// hashed in full to find duplicate keys) before anything can be counted, so a 351-byte "billion
// laughs" costs gigabytes and minutes there; composing from libyaml's events lets every limit be
// checked as the document is read.
import CYaml

/// Builds ``SourceNode`` trees from libyaml's parse events, within ``InputLimits``.
///
/// - Aliases share the anchored node (no copy), but count as a copy of it against
///   ``InputLimits/values``, so what later passes walk is bounded too.
/// - Merge keys (`<<: *base`, `<<: [*a, *b]`) splice the referenced mappings' members in;
///   explicit keys override merged ones, and an earlier merged mapping wins over a later one (as
///   PyYAML, which Chaos Toolkit reads experiments with, does).
/// - A repeated key is an error at the repeat (PyYAML keeps the last one silently).
/// - Keys must be scalars; a list or object as a key is an error.
final class YAMLComposer {
    private let file: String
    private let limits: InputLimits
    private let sink: DiagnosticSink
    private let parser: UnsafeMutablePointer<yaml_parser_t>
    /// Anchored nodes with the number of values each stands for.
    private var anchors: [String: (node: SourceNode, values: Int)] = [:]
    /// Values built so far, aliases counted as copies.
    private var values = 0

    private init(file: String, limits: InputLimits, sink: DiagnosticSink) {
        self.file = file
        self.limits = limits
        self.sink = sink
        parser = .allocate(capacity: 1)
        yaml_parser_initialize(parser)
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
    }

    deinit {
        yaml_parser_delete(parser)
        parser.deallocate()
    }

    /// Parses one YAML document.
    /// - Throws: a ``Diagnostic`` for a syntax error or an exceeded limit, with its position; a
    ///   ``ValidationError`` for repeated and non-string keys (all of them).
    /// - Returns: the document and the number of values it stands for.
    static func compose(_ text: String, file: String, limits: InputLimits) throws -> (node: SourceNode, values: Int) {
        let sink = DiagnosticSink()
        var bytes = Array(text.utf8)
        let result = try bytes.withUnsafeMutableBufferPointer { buffer -> (SourceNode, Int) in
            let composer = YAMLComposer(file: file, limits: limits, sink: sink)
            yaml_parser_set_input_string(composer.parser, buffer.baseAddress, buffer.count)
            return (try composer.document(text), composer.values)
        }
        try sink.throwIfErrors()
        return result
    }

    /// One parse event, deleted when the value goes away.
    private final class Event {
        var event = yaml_event_t()
        deinit { yaml_event_delete(&event) }
        var type: yaml_event_type_t { event.type }
    }

    private func next(_ text: String) throws -> Event {
        let event = Event()
        guard yaml_parser_parse(parser, &event.event) == 1 else { throw syntaxError(text) }
        return event
    }

    private func location(_ mark: yaml_mark_t) -> SourceLocation {
        SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    private func document(_ text: String) throws -> SourceNode {
        _ = try next(text)  // stream start
        let start = try next(text)
        guard start.type == YAML_DOCUMENT_START_EVENT else {
            return SourceNode(.scalar(.null, raw: nil), at: SourceLocation(file: file, line: 1, column: 1))
        }
        let root = try node(try next(text), depth: 0, text: text)
        _ = try next(text)  // document end
        let after = try next(text)
        if after.type == YAML_DOCUMENT_START_EVENT {
            throw Diagnostic(
                "invalid YAML: expected a single document in the stream, but found another document", at: location(after.event.start_mark),
                hint: "remove the \"---\" and what follows, or move it to a file of its own")
        }
        return root.node
    }

    /// Builds the node an event starts, and the number of values it stands for.
    private func node(_ event: Event, depth: Int, text: String) throws -> (node: SourceNode, values: Int) {
        let at = location(event.event.start_mark)
        let built: (node: SourceNode, values: Int)
        let anchor: UnsafeMutablePointer<yaml_char_t>?
        switch event.type {
        case YAML_ALIAS_EVENT:
            let name = String(cString: event.event.data.alias.anchor)
            guard let anchored = anchors[name] else {
                throw Diagnostic("invalid YAML: unknown alias *\(name)", at: at, hint: "define &\(name) before this line")
            }
            try count(anchored.values, at: at)
            return anchored
        case YAML_SCALAR_EVENT:
            let scalar = event.event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)), as: UTF8.self)
            let tag = scalar.tag.map { String(cString: $0) } ?? ""
            try count(1, at: at)
            built = (SourceNode(Self.resolve(text, tag: tag, plain: scalar.style == YAML_PLAIN_SCALAR_STYLE), at: at), 1)
            anchor = scalar.anchor
        case YAML_SEQUENCE_START_EVENT:
            try enter(depth, at: at)
            try count(1, at: at)
            var elements: [SourceNode] = []
            var total = 1
            while true {
                let child = try next(text)
                if child.type == YAML_SEQUENCE_END_EVENT { break }
                let element = try node(child, depth: depth + 1, text: text)
                elements.append(element.node)
                total += element.values
            }
            built = (SourceNode(.array(elements), at: at), total)
            anchor = event.event.data.sequence_start.anchor
        case YAML_MAPPING_START_EVENT:
            try enter(depth, at: at)
            try count(1, at: at)
            built = try mapping(at: at, depth: depth, text: text)
            anchor = event.event.data.mapping_start.anchor
        default:
            throw Diagnostic("invalid YAML: unexpected event", at: at)
        }
        if let anchor { anchors[String(cString: anchor)] = built }
        return built
    }

    private func mapping(at: SourceLocation, depth: Int, text: String) throws -> (node: SourceNode, values: Int) {
        var explicit: [SourceNode.Member] = []
        var firstLines: [String: Int] = [:]
        var merged: [SourceNode.Member] = []
        var mergedKeys: Set<String> = []
        var total = 1
        while true {
            let keyEvent = try next(text)
            if keyEvent.type == YAML_MAPPING_END_EVENT { break }
            let keyLocation = location(keyEvent.event.start_mark)
            let key = try node(keyEvent, depth: depth + 1, text: text)
            let value = try node(try next(text), depth: depth + 1, text: text)
            total += key.values + value.values
            guard let name = Self.keyText(key.node) else {
                sink.report(Diagnostic("a key must be a plain string, not a list or object", at: keyLocation))
                continue
            }
            if case .scalar(_, raw: "<<") = key.node.content {
                // YAML merge key: the referenced mappings' members, in order; the first wins.
                let sources = value.node.elements ?? [value.node]
                for source in sources {
                    guard let members = source.members else {
                        sink.report(
                            Diagnostic("a merge key (<<) takes a mapping or a list of mappings, found \(describeFound(source))", at: source.location))
                        continue
                    }
                    for member in members where mergedKeys.insert(member.key).inserted { merged.append(member) }
                }
                continue
            }
            if let first = firstLines[name] {
                sink.report(
                    Diagnostic(
                        "duplicate key \"\(name)\"", at: keyLocation,
                        hint: "a key may appear only once in an object; the first is at line \(first)"))
                continue
            }
            firstLines[name] = keyLocation.line
            explicit.append(SourceNode.Member(key: name, keyLocation: keyLocation, value: value.node))
        }
        // Explicit keys override merged ones.
        let members = merged.isEmpty ? explicit : merged.filter { firstLines[$0.key] == nil } + explicit
        return (SourceNode(.object(members), at: at), total)
    }

    private func count(_ added: Int, at location: SourceLocation) throws {
        let (sum, overflow) = values.addingReportingOverflow(added)
        values = overflow ? .max : sum
        guard values <= limits.values else {
            throw Diagnostic(
                "the document holds more than \(limits.values) values (each use of a YAML alias counts as a copy)", at: location,
                hint: "split it into several files, or use fewer aliases of large anchors")
        }
    }

    private func enter(_ depth: Int, at location: SourceLocation) throws {
        guard depth < limits.depth else {
            throw Diagnostic("lists and objects nest more than \(limits.depth) deep", at: location, hint: "flatten the structure")
        }
    }

    /// The text of a scalar key: as written (`1`, `true` and `null` keys are strings, as YAML reads them here).
    private static func keyText(_ node: SourceNode) -> String? {
        guard case .scalar(let value, let raw) = node.content else { return nil }
        if let raw { return raw }
        if case .string(let text) = value { return text }
        return nil
    }

    private func syntaxError(_ text: String) -> Diagnostic {
        let problem = parser.pointee.problem.map { String(cString: $0) } ?? "unknown error"
        if parser.pointee.error == YAML_READER_ERROR {
            // The offset counts bytes from the start.
            let offset = min(Int(parser.pointee.problem_offset), text.utf8.count)
            let before = text.utf8.prefix(offset)
            let line = before.reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            let lineStart = before.lastIndex(of: UInt8(ascii: "\n")).map { before.index(after: $0) } ?? before.startIndex
            let column = String(decoding: before[lineStart...], as: UTF8.self).count + 1
            return Diagnostic("invalid YAML: \(problem)", at: SourceLocation(file: file, line: line, column: column))
        }
        if problem.hasPrefix("Maximum nesting level reached") {
            // libyaml's own limit (1000), met while it scans ahead of the events.
            return Diagnostic(
                "lists and objects nest more than \(limits.depth) deep", at: location(parser.pointee.problem_mark), hint: "flatten the structure")
        }
        var message = "invalid YAML: \(problem)"
        if let context = parser.pointee.context {
            message += " (\(String(cString: context)) at line \(parser.pointee.context_mark.line + 1))"
        }
        var hint: String?
        if problem.contains("found character that cannot start any token") {
            hint = "quote values that start with '@', '`', '%' or contain tabs; indent with spaces"
        } else if problem.contains("mapping values are not allowed") {
            hint = "quote a value that contains ': ', or check the indentation of the line above"
        } else if problem.contains("did not find expected") {
            hint = "check the indentation, and quote strings such as \"${name}\" inside [ ] or { }"
        }
        return Diagnostic(message, at: location(parser.pointee.problem_mark), hint: hint)
    }

    /// A scalar's value: quoted and explicitly tagged scalars honour their tag (a string unless
    /// `!!int` and the like); plain ones follow the YAML 1.2 core schema.
    static func resolve(_ text: String, tag: String, plain: Bool) -> SourceNode.Content {
        let implicit = tag.isEmpty || tag == "!" || tag == "?" || tag == "tag:yaml.org,2002:str"
        if !implicit || !plain {
            switch tag {
            case "tag:yaml.org,2002:int": if let i = Int(text) { return .scalar(.int(i), raw: text) }
            case "tag:yaml.org,2002:float": if let d = Double(text) { return .scalar(.double(d), raw: text) }
            case "tag:yaml.org,2002:bool": if let b = DocumentLoader.coreBool(text) { return .scalar(.bool(b), raw: text) }
            case "tag:yaml.org,2002:null": return .scalar(.null, raw: text)
            default: break
            }
            return .scalar(.string(text), raw: nil)
        }
        return .scalar(DocumentLoader.resolvePlain(text), raw: text)
    }
}
