/// A position in a source file, 1-based, as editors show it.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`, the form compilers print and editors jump to.
    public var description: String { "\(file):\(line):\(column)" }
}

/// A document value that remembers where each part of it was written.
///
/// Experiments, suites and plugin arguments are kept as `SourceNode`s until they are decoded into
/// typed structures, so every error can name the file, line and column of the offending value.
public struct SourceNode: Sendable {
    /// One member of an object, with the location of its key.
    public struct Member: Sendable {
        public var key: String
        public var keyLocation: SourceLocation?
        public var value: SourceNode

        public init(key: String, keyLocation: SourceLocation?, value: SourceNode) {
            self.key = key
            self.keyLocation = keyLocation
            self.value = value
        }
    }

    public enum Content: Sendable {
        /// A scalar (or null). `raw` is the text as written, for plain YAML scalars read as strings.
        case scalar(Value, raw: String?)
        case array([SourceNode])
        case object([Member])
    }

    public var content: Content
    public var location: SourceLocation?

    public init(_ content: Content, at location: SourceLocation?) {
        self.content = content
        self.location = location
    }

    /// Builds a node tree from a plain value, placing every part of it at `location`.
    ///
    /// Used when a substituted `${var}` brings a whole object into an argument: errors inside it
    /// point at the place that referenced the variable.
    public init(_ value: Value, at location: SourceLocation?) {
        self.location = location
        switch value {
        case .array(let elements):
            content = .array(elements.map { SourceNode($0, at: location) })
        case .object(let object):
            content = .object(object.map { Member(key: $0.key, keyLocation: location, value: SourceNode($0.value, at: location)) })
        default:
            content = .scalar(value, raw: nil)
        }
    }

    /// The plain value, without locations.
    public var value: Value {
        switch content {
        case .scalar(let v, _): v
        case .array(let elements): .array(elements.map(\.value))
        case .object(let members): .object(ValueObject(members.map { ($0.key, $0.value.value) }))
        }
    }

    public var members: [Member]? { if case .object(let m) = content { m } else { nil } }
    public var elements: [SourceNode]? { if case .array(let e) = content { e } else { nil } }
    public var scalar: Value? { if case .scalar(let v, _) = content { v } else { nil } }
    public var stringValue: String? { scalar?.stringValue }
    public var isNull: Bool { scalar?.isNull ?? false }

    /// The member named `key` of an object node.
    public subscript(key: String) -> SourceNode? {
        members?.first { $0.key == key }?.value
    }

    /// The member entry named `key`, with its key location.
    public func member(_ key: String) -> Member? { members?.first { $0.key == key } }

    /// A short name of the node's kind for messages.
    public var kindDescription: String { value.kindDescription }

    /// Rewrites every string scalar (keys excluded), keeping locations.
    public func mapStrings(_ transform: (String, SourceLocation?) throws -> SourceNode) rethrows -> SourceNode {
        switch content {
        case .scalar(.string(let s), _):
            return try transform(s, location)
        case .scalar:
            return self
        case .array(let elements):
            return SourceNode(.array(try elements.map { try $0.mapStrings(transform) }), at: location)
        case .object(let members):
            return SourceNode(
                .object(try members.map { Member(key: $0.key, keyLocation: $0.keyLocation, value: try $0.value.mapStrings(transform)) }),
                at: location)
        }
    }
}

extension SourceNode: Decodable {
    /// Decoding a `SourceNode` member keeps the part of the document as written, with locations
    /// (from ``NodeDecoder``); from other decoders it holds the plain value.
    public init(from decoder: any Decoder) throws {
        if let nodeDecoder = decoder as? NodeDecoding {
            self = nodeDecoder.node
        } else {
            self = SourceNode(try Value(from: decoder), at: nil)
        }
    }
}
