/// Decodes `Decodable` types from ``SourceNode`` trees, strictly and with precise errors.
///
/// - Every error is a ``Diagnostic`` naming the file, line and column of the value and its path.
/// - Keys that the type never asked for are reported as unknown, with the closest known key as a
///   suggestion. This works for synthesized `Decodable` conformances too: the decoder records which
///   keys the type's `init(from:)` looked up and reports the rest.
/// - Unknown keys do not stop decoding; they go to the ``DiagnosticSink`` so that one pass reports
///   every problem. Errors that make a value impossible to build are thrown.
public struct NodeDecoder: Sendable {
    /// Report keys the decoded type does not read (default `true`).
    public var rejectsUnknownKeys: Bool

    public init(rejectsUnknownKeys: Bool = true) {
        self.rejectsUnknownKeys = rejectsUnknownKeys
    }

    /// Decodes `type` from `node`.
    /// - Parameters:
    ///   - path: where `node` sits in its document, for messages.
    ///   - sink: receives unknown-key diagnostics; when nil they are thrown after decoding.
    public func decode<T: Decodable>(
        _ type: T.Type, from node: SourceNode, path: DocumentPath = .root, sink: DiagnosticSink? = nil
    ) throws -> T {
        let ownSink = sink ?? DiagnosticSink()
        let state = DecodingState(sink: ownSink, strict: rejectsUnknownKeys)
        let decoder = NodeDecoding(node: node, path: path, codingPath: [], state: state)
        do {
            let value = try decoder.decodeValue(T.self)
            if sink == nil { try ownSink.throwIfErrors() }
            return value
        } catch let error as DecodingError {
            throw Self.diagnostic(for: error, root: node, rootPath: path)
        }
    }

    /// Decodes `type` from a plain value (errors carry paths but no file positions).
    public func decode<T: Decodable>(_ type: T.Type, from value: Value, path: DocumentPath = .root) throws -> T {
        try decode(type, from: SourceNode(value, at: nil), path: path)
    }

    /// Translates a `DecodingError` thrown by hand-written `init(from:)` code into a located diagnostic.
    static func diagnostic(for error: DecodingError, root: SourceNode, rootPath: DocumentPath) -> Diagnostic {
        func locate(_ codingPath: [any CodingKey]) -> (SourceNode?, DocumentPath) {
            var node: SourceNode? = root
            var path = rootPath
            for key in codingPath {
                if let index = key.intValue, node?.elements != nil {
                    node = node?.elements.flatMap { $0.indices.contains(index) ? $0[index] : nil }
                    path = path.appending(index)
                } else {
                    node = node?[key.stringValue]
                    path = path.appending(key.stringValue)
                }
            }
            return (node, path)
        }
        switch error {
        case .dataCorrupted(let context):
            let (node, path) = locate(context.codingPath)
            return Diagnostic(context.debugDescription, at: node?.location ?? root.location, path: path)
        case .keyNotFound(let key, let context):
            let (node, path) = locate(context.codingPath)
            return Diagnostic("missing required key \"\(key.stringValue)\"", at: node?.location ?? root.location, path: path)
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            let (node, path) = locate(context.codingPath)
            return Diagnostic(context.debugDescription, at: node?.location ?? root.location, path: path)
        @unknown default:
            return Diagnostic("\(error)", at: root.location, path: rootPath)
        }
    }
}

/// The string raw values of a `CaseIterable` enum, or nil for other types.
func stringChoices<T>(of type: T.Type) -> [String]? {
    guard let iterable = type as? any CaseIterable.Type else { return nil }
    func open<C: CaseIterable>(_ c: C.Type) -> [String] {
        c.allCases.compactMap { ($0 as? any RawRepresentable)?.rawValue as? String }
    }
    let choices = open(iterable)
    return choices.isEmpty ? nil : choices
}

/// Describes a node for "expected X, found Y" messages.
func describeFound(_ node: SourceNode) -> String {
    switch node.content {
    case .scalar(.string(let s), _):
        let shown = s.count > 40 ? String(s.prefix(40)) + "…" : s
        return "the string \"\(shown)\""
    case .scalar(.null, _): return "nothing (null)"
    case .scalar(let v, _): return "\(v.kindDescription) \(v)"
    case .array: return "a list"
    case .object: return "an object"
    }
}

final class DecodingState {
    let sink: DiagnosticSink
    let strict: Bool
    init(sink: DiagnosticSink, strict: Bool) {
        self.sink = sink
        self.strict = strict
    }
}

struct IndexKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ index: Int) {
        stringValue = "\(index)"
        intValue = index
    }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.init(intValue) }
}

final class NodeDecoding: Decoder {
    let node: SourceNode
    let path: DocumentPath
    let codingPath: [any CodingKey]
    let state: DecodingState
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// Keys the decoded type looked up, present or not: the known keys, for suggestions.
    var queriedKeys: Set<String> = []
    /// Keys that were present and read.
    var readKeys: Set<String> = []
    var knownKeys: [String] = []
    var vendedKeyedContainer = false
    /// The range every number in this node must fall in (from the nearest ``NumberRanges`` table).
    let range: NumberRange?
    /// The ranges of the keys of the type being decoded here, when it declares them.
    var ranges: [String: NumberRange] = [:]

    init(node: SourceNode, path: DocumentPath, codingPath: [any CodingKey], state: DecodingState, range: NumberRange? = nil) {
        self.node = node
        self.path = path
        self.codingPath = codingPath
        self.state = state
        self.range = range
    }

    func mismatch(_ expected: String) -> Diagnostic {
        Diagnostic("expected \(expected), found \(describeFound(node))", at: node.location, path: path)
    }

    /// Decodes a value of type T from this decoder's node, then reports keys T did not read.
    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == SourceNode.self { return node as! T }
        if T.self == Value.self { return node.value as! T }
        if let ranged = T.self as? any NumberRanges.Type { ranges = ranged.numberRanges }
        if let choices = stringChoices(of: T.self), case .scalar(.string(let s), _) = node.content, !choices.contains(s) {
            let suggestion = Suggestion.closest(to: s, in: choices)
            let hint = suggestion.map { "did you mean \"\($0)\"?" } ?? "expected one of: \(choices.joined(separator: ", "))"
            throw Diagnostic("invalid value \"\(s)\"", at: node.location, path: path, hint: hint)
        }
        let value = try T(from: self)
        finish()
        return value
    }

    private func finish() {
        guard state.strict, vendedKeyedContainer, let members = node.members else { return }
        let known = queriedKeys.union(knownKeys).sorted()
        for member in members where !readKeys.contains(member.key) {
            // Past the sink's limit the diagnostic is only counted: skip the suggestion.
            let hint =
                state.sink.isFull
                ? nil : Suggestion.didYouMean(member.key, in: known) ?? (known.isEmpty ? nil : "known keys: \(known.joined(separator: ", "))")
            state.sink.report(
                Diagnostic("unknown key \"\(member.key)\"", at: member.keyLocation ?? node.location, path: path.appending(member.key), hint: hint))
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let members = node.members else { throw mismatch("an object") }
        vendedKeyedContainer = true
        if let cases = Key.self as? any CaseIterable.Type {
            func open<C: CaseIterable>(_ c: C.Type) -> [String] { c.allCases.compactMap { ($0 as? any CodingKey)?.stringValue } }
            knownKeys += open(cases)
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, members: members))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard let elements = node.elements else { throw mismatch("a list") }
        return UnkeyedContainer(decoder: self, elements: elements)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleValue(decoder: self) }

    func child(_ node: SourceNode, key: any CodingKey, path: DocumentPath) -> NodeDecoding {
        let range = key.intValue == nil ? ranges[key.stringValue] ?? range : range
        return NodeDecoding(node: node, path: path, codingPath: codingPath + [key], state: state, range: range)
    }

    /// Rejects a number outside this node's range, at the number's position.
    func checkRange(_ number: Double) throws {
        guard let range, !range.contains(number) else { return }
        let keys = path.components.compactMap { component -> String? in if case .key(let key) = component { key } else { nil } }
        let key = keys.last ?? "the value"
        throw Diagnostic(range.message(key, found: number), at: node.location, path: path)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: NodeDecoding
    let members: [SourceNode.Member]

    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { members.compactMap { Key(stringValue: $0.key) } }

    func contains(_ key: Key) -> Bool {
        decoder.queriedKeys.insert(key.stringValue)
        return members.contains { $0.key == key.stringValue }
    }

    private func member(_ key: Key) throws -> SourceNode.Member {
        decoder.queriedKeys.insert(key.stringValue)
        guard let member = members.first(where: { $0.key == key.stringValue }) else {
            // A misspelling of the missing key is the likelier story: say that.
            if let typo = members.first(where: { !decoder.readKeys.contains($0.key) && Suggestion.closest(to: $0.key, in: [key.stringValue]) != nil })
            {
                throw Diagnostic(
                    "unknown key \"\(typo.key)\"", at: typo.keyLocation ?? decoder.node.location, path: decoder.path.appending(typo.key),
                    hint: "did you mean \"\(key.stringValue)\"?")
            }
            throw Diagnostic(
                "missing required key \"\(key.stringValue)\"", at: decoder.node.location, path: decoder.path,
                hint: "add \(key.stringValue): …")
        }
        decoder.readKeys.insert(key.stringValue)
        return member
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try member(key).value.isNull
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let m = try member(key)
        return try decoder.child(m.value, key: key, path: decoder.path.appending(key.stringValue)).decodeValue(T.self)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        try decodeIfPresent(generic: type, forKey: key)
    }

    // One path for every type, so that a present-but-null value is read the same way for all.
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try decodeIfPresent(generic: type, forKey: key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try decodeIfPresent(generic: type, forKey: key) }

    private func decodeIfPresent<T: Decodable>(generic type: T.Type, forKey key: Key) throws -> T? {
        decoder.queriedKeys.insert(key.stringValue)
        guard let m = members.first(where: { $0.key == key.stringValue }) else { return nil }
        decoder.readKeys.insert(key.stringValue)
        if m.value.isNull, T.self != Value.self, T.self != SourceNode.self { return nil }
        return try decoder.child(m.value, key: key, path: decoder.path.appending(key.stringValue)).decodeValue(T.self)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let m = try member(key)
        return try decoder.child(m.value, key: key, path: decoder.path.appending(key.stringValue)).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let m = try member(key)
        return try decoder.child(m.value, key: key, path: decoder.path.appending(key.stringValue)).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { decoder }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        let m = try member(key)
        return decoder.child(m.value, key: key, path: decoder.path.appending(key.stringValue))
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: NodeDecoding
    let elements: [SourceNode]
    var currentIndex = 0

    init(decoder: NodeDecoding, elements: [SourceNode]) {
        self.decoder = decoder
        self.elements = elements
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    private mutating func next() throws -> NodeDecoding {
        guard !isAtEnd else {
            throw Diagnostic("the list has too few elements", at: decoder.node.location, path: decoder.path)
        }
        defer { currentIndex += 1 }
        return decoder.child(elements[currentIndex], key: IndexKey(currentIndex), path: decoder.path.appending(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        if elements[currentIndex].isNull {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decodeValue(T.self) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }

    mutating func superDecoder() throws -> any Decoder { try next() }
}

private struct SingleValue: SingleValueDecodingContainer {
    let decoder: NodeDecoding
    var codingPath: [any CodingKey] { decoder.codingPath }
    private var node: SourceNode { decoder.node }

    func decodeNil() -> Bool { node.isNull }

    func decode(_ type: Bool.Type) throws -> Bool {
        guard case .scalar(.bool(let b), _) = node.content else { throw decoder.mismatch("true or false") }
        return b
    }

    func decode(_ type: String.Type) throws -> String {
        switch node.content {
        case .scalar(.string(let s), _): return s
        // A plain YAML scalar such as `version: 1.10` is accepted as the text written.
        case .scalar(.int(let i), let raw): return raw ?? String(i)
        case .scalar(.double(let d), let raw): return raw ?? "\(d)"
        case .scalar(.bool(let b), let raw): return raw ?? String(b)
        default: throw decoder.mismatch("a string")
        }
    }

    func decode(_ type: Double.Type) throws -> Double {
        guard let d = node.scalar?.doubleValue ?? writtenNumber?.doubleValue else { throw decoder.mismatch("a number") }
        try decoder.checkRange(d)
        return d
    }

    /// A string that is exactly a number (`"8080"`, or `"${port}"` from an `env` configuration
    /// value, which is text): Chaos Toolkit's Python functions take it where they take a number,
    /// so a declared number does too.
    private var writtenNumber: Value? {
        guard case .scalar(.string(let text), _) = node.content else { return nil }
        return Value(exactNumber: text)
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    private func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        // The range first: 9999999999999999999 is out of range, not "not an integer".
        if let number = node.scalar?.doubleValue ?? writtenNumber?.doubleValue { try decoder.checkRange(number) }
        guard let i = node.scalar?.intValue ?? writtenNumber?.intValue else { throw decoder.mismatch("an integer") }
        guard let value = I(exactly: i) else {
            throw Diagnostic("\(i) is out of range (\(I.min)…\(I.max))", at: node.location, path: decoder.path)
        }
        return value
    }

    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(T.self) }
}
