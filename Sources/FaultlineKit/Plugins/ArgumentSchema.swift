/// The arguments a provider (or a toxic) accepts, for `faultline plugins`: names, types,
/// whether required, defaults, choices and help.
///
/// Derived from the `Decodable` arguments type itself by decoding it from nothing and recording
/// what its initializer asks for, so it can never drift from what validation accepts.
public struct ArgumentSchema: Sendable, Codable, Equatable {
    public struct Field: Sendable, Codable, Equatable {
        public var name: String
        public var type: String
        public var required: Bool
        public var defaultValue: Value?
        public var choices: [String]?
        public var help: String?
        public var fields: [Field]?
        /// The range the field's numbers must fall in (``NumberRanges``).
        public var range: NumberRange?
        /// Whether the field reads a number anywhere in its value (a plain number, or inside a
        /// type such as `seconds or [connect, read]`): such a field must declare a range.
        public var readsNumber = false

        enum CodingKeys: String, CodingKey {
            case name, type, required, defaultValue = "default", choices, help, fields, range
        }
    }

    public var fields: [Field]

    /// Records the schema of `type`, with help texts by key.
    public static func of<T: Decodable>(_ type: T.Type, help: [String: String] = [:]) -> ArgumentSchema {
        let recorder = SchemaRecorder(ranges: numberRanges(of: T.self), inherited: nil)
        let instance = try? T(from: recorder)
        var fields = recorder.fields
        if let encodable = instance as? any Encodable, case .object(let encoded)? = try? ValueEncoder().encode(AnyEncodable(encodable)) {
            for index in fields.indices where !fields[index].required {
                if let value = encoded[fields[index].name], !value.isNull { fields[index].defaultValue = value }
            }
        }
        for index in fields.indices { fields[index].help = help[fields[index].name] }
        return ArgumentSchema(fields: fields)
    }
}

private struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

/// A name for a type in schemas ("integer", "list of string").
public protocol SchemaTypeNamed {
    static var schemaTypeName: String { get }
}

extension Array: SchemaTypeNamed where Element: Decodable {
    public static var schemaTypeName: String { "list of \(schemaName(of: Element.self))" }
}

extension Dictionary: SchemaTypeNamed where Key == String, Value: Decodable {
    public static var schemaTypeName: String { "object of \(schemaName(of: Value.self))" }
}

extension Optional: SchemaTypeNamed where Wrapped: Decodable {
    public static var schemaTypeName: String { schemaName(of: Wrapped.self) }
}

/// The schema name of a type.
public func schemaName<T>(of type: T.Type) -> String {
    if let named = type as? any SchemaTypeNamed.Type { return named.schemaTypeName }
    switch type {
    case is String.Type: return "string"
    case is Bool.Type: return "boolean"
    case is Double.Type, is Float.Type: return "number"
    case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type, is UInt64.Type, is UInt32.Type, is UInt16.Type, is Int16.Type, is UInt8.Type,
        is Int8.Type:
        return "integer"
    case is Value.Type, is SourceNode.Type: return "any"
    default:
        if let choices = stringChoices(of: type) { return choices.joined(separator: "|") }
        return "object"
    }
}

/// The ranges a type declares, if it does.
func numberRanges<T>(of type: T.Type) -> [String: NumberRange] {
    (type as? any NumberRanges.Type)?.numberRanges ?? [:]
}

/// A decoder that decodes a type from nothing and records the keys its initializer asks for.
final class SchemaRecorder: Decoder {
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var fields: [ArgumentSchema.Field] = []
    /// The ranges of the type being recorded, and the range its enclosing key gave it.
    let ranges: [String: NumberRange]
    let inherited: NumberRange?
    /// Whether the type read a number through a single-value container.
    var readsNumber = false

    init(ranges: [String: NumberRange] = [:], inherited: NumberRange? = nil) {
        self.ranges = ranges
        self.inherited = inherited
    }

    func record<T>(_ key: String, _ type: T.Type, required: Bool, nested: [ArgumentSchema.Field]?, readsNumber: Bool = false) {
        guard !fields.contains(where: { $0.name == key }) else { return }
        var field = ArgumentSchema.Field(
            name: key, type: schemaName(of: type), required: required, defaultValue: nil, choices: stringChoices(of: type), help: nil,
            fields: nested?.isEmpty == false ? nested : nil)
        field.readsNumber = readsNumber || field.type.hasSuffix("number") || field.type.hasSuffix("integer")
        if field.readsNumber { field.range = ranges[key] ?? inherited }
        fields.append(field)
    }

    /// A placeholder value of T built from nothing, the fields T itself records, and whether it
    /// reads a number.
    func placeholder<T: Decodable>(_ type: T.Type, key: String) -> (T?, [ArgumentSchema.Field], Bool) {
        if let choices = stringChoices(of: type), let first = choices.first {
            return (try? NodeDecoder().decode(T.self, from: .string(first)), [], false)
        }
        if T.self == Value.self || T.self == SourceNode.self { return (try? T(from: SchemaRecorder()), [], false) }
        let child = SchemaRecorder(ranges: numberRanges(of: T.self), inherited: ranges[key] ?? inherited)
        let value = try? T(from: child)
        return (value, child.fields, child.readsNumber)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Keyed<Key>(recorder: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { Unkeyed() }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { Single(recorder: self) }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let recorder: SchemaRecorder
        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { [] }

        func contains(_ key: Key) -> Bool {
            recorder.record(key.stringValue, Value.self, required: false, nested: nil)
            return false
        }

        func decodeNil(forKey key: Key) throws -> Bool { true }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            let (value, nested, readsNumber) = recorder.placeholder(type, key: key.stringValue)
            recorder.record(key.stringValue, type, required: true, nested: nested, readsNumber: readsNumber)
            guard let value else {
                throw DecodingError.valueNotFound(type, .init(codingPath: [key], debugDescription: "schema placeholder"))
            }
            return value
        }

        func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
            try decodeIfPresent(generic: type, forKey: key)
        }

        private func decodeIfPresent<T: Decodable>(generic type: T.Type, forKey key: Key) throws -> T? {
            let (_, nested, readsNumber) = recorder.placeholder(type, key: key.stringValue)
            recorder.record(key.stringValue, type, required: false, nested: nested, readsNumber: readsNumber)
            return nil
        }

        // The standard library's defaults for these go through contains(), which loses the type.
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

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            recorder.record(key.stringValue, Value.self, required: true, nested: nil)
            return KeyedDecodingContainer(Keyed<NestedKey>(recorder: SchemaRecorder()))
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            recorder.record(key.stringValue, [Value].self, required: true, nested: nil)
            return Unkeyed()
        }

        func superDecoder() throws -> any Decoder { recorder }
        func superDecoder(forKey key: Key) throws -> any Decoder { SchemaRecorder() }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        var codingPath: [any CodingKey] { [] }
        var count: Int? { 0 }
        var isAtEnd: Bool { true }
        var currentIndex: Int { 0 }
        mutating func decodeNil() throws -> Bool { true }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            throw DecodingError.valueNotFound(type, .init(codingPath: [], debugDescription: "schema placeholder"))
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            KeyedDecodingContainer(Keyed<NestedKey>(recorder: SchemaRecorder()))
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { Unkeyed() }
        mutating func superDecoder() throws -> any Decoder { SchemaRecorder() }
    }

    struct Single: SingleValueDecodingContainer {
        let recorder: SchemaRecorder
        var codingPath: [any CodingKey] { [] }
        func decodeNil() -> Bool { false }
        func decode(_ type: Bool.Type) throws -> Bool { false }
        func decode(_ type: String.Type) throws -> String { "" }
        func decode(_ type: Double.Type) throws -> Double { number() }
        func decode(_ type: Float.Type) throws -> Float { number() }
        func decode(_ type: Int.Type) throws -> Int { number() }
        func decode(_ type: Int8.Type) throws -> Int8 { number() }
        func decode(_ type: Int16.Type) throws -> Int16 { number() }
        func decode(_ type: Int32.Type) throws -> Int32 { number() }
        func decode(_ type: Int64.Type) throws -> Int64 { number() }
        func decode(_ type: UInt.Type) throws -> UInt { number() }
        func decode(_ type: UInt8.Type) throws -> UInt8 { number() }
        func decode(_ type: UInt16.Type) throws -> UInt16 { number() }
        func decode(_ type: UInt32.Type) throws -> UInt32 { number() }
        func decode(_ type: UInt64.Type) throws -> UInt64 { number() }
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let (value, _, readsNumber) = recorder.placeholder(type, key: "")
            if readsNumber { recorder.readsNumber = true }
            guard let value else { throw DecodingError.valueNotFound(type, .init(codingPath: [], debugDescription: "schema placeholder")) }
            return value
        }

        private func number<N: Numeric>() -> N {
            recorder.readsNumber = true
            return 0
        }
    }
}
