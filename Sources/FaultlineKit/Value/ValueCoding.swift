/// Encodes `Encodable` types into ``Value`` trees, keeping the order in which keys were encoded.
///
/// Plugins use it to return typed outputs: `return try ValueEncoder().encode(result)`.
public struct ValueEncoder: Sendable {
    public init() {}

    public func encode<T: Encodable>(_ value: T) throws -> Value {
        if let v = value as? Value { return v }
        let encoder = ValueEncoding(codingPath: [])
        try value.encode(to: encoder)
        return encoder.result
    }
}

extension Value: Codable {
    public init(from decoder: any Decoder) throws {
        if let nodeDecoder = decoder as? NodeDecoding {
            self = nodeDecoder.node.value
            return
        }
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? container.decode(Int.self) {
            self = .int(i)
        } else if let d = try? container.decode(Double.self) {
            self = .double(d)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([Value].self) {
            self = .array(a)
        } else {
            let keyed = try decoder.container(keyedBy: AnyKey.self)
            var object = ValueObject()
            for key in keyed.allKeys { object[key.stringValue] = try keyed.decode(Value.self, forKey: key) }
            self = .object(object)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        if let valueEncoder = encoder as? ValueEncoding {
            valueEncoder.node.content = .value(self)
            return
        }
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .int(let i):
            var c = encoder.singleValueContainer()
            try c.encode(i)
        case .double(let d):
            var c = encoder.singleValueContainer()
            try c.encode(d)
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let a):
            var c = encoder.unkeyedContainer()
            for element in a { try c.encode(element) }
        case .object(let o):
            var c = encoder.container(keyedBy: AnyKey.self)
            for (key, value) in o { try c.encode(value, forKey: AnyKey(key)) }
        }
    }
}

/// A coding key for arbitrary strings.
public struct AnyKey: CodingKey, Hashable, Sendable {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(_ string: String) { stringValue = string }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { stringValue = "\(intValue)" }
}

/// A node of the tree an encoding builds; resolved into a ``Value`` when encoding finishes.
final class EncodingNode {
    enum Content {
        case value(Value)
        case object([(String, EncodingNode)])
        case array([EncodingNode])
    }
    var content: Content = .value(.null)

    var resolved: Value {
        switch content {
        case .value(let v): v
        case .object(let members):
            .object(ValueObject(members.map { ($0.0, $0.1.resolved) }))
        case .array(let elements): .array(elements.map(\.resolved))
        }
    }

    func child(forKey key: String) -> EncodingNode {
        if case .object = content {} else { content = .object([]) }
        guard case .object(var members) = content else { fatalError("unreachable") }
        let node = EncodingNode()
        if let index = members.firstIndex(where: { $0.0 == key }) {
            members[index].1 = node
        } else {
            members.append((key, node))
        }
        content = .object(members)
        return node
    }

    func appendChild() -> EncodingNode {
        if case .array = content {} else { content = .array([]) }
        guard case .array(var elements) = content else { fatalError("unreachable") }
        let node = EncodingNode()
        elements.append(node)
        content = .array(elements)
        return node
    }
}

final class ValueEncoding: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    let node: EncodingNode

    init(codingPath: [any CodingKey], node: EncodingNode = EncodingNode()) {
        self.codingPath = codingPath
        self.node = node
    }

    var result: Value { node.resolved }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.content {} else { node.content = .object([]) }
        return KeyedEncodingContainer(Keyed<Key>(encoder: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.content {} else { node.content = .array([]) }
        return Unkeyed(encoder: self)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { Single(encoder: self) }

    func encode<T: Encodable>(_ value: T, into target: EncodingNode, key: (any CodingKey)?) throws {
        if let v = value as? Value {
            target.content = .value(v)
            return
        }
        let child = ValueEncoding(codingPath: codingPath + (key.map { [$0] } ?? []), node: target)
        try value.encode(to: child)
    }

    private struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let encoder: ValueEncoding
        var codingPath: [any CodingKey] { encoder.codingPath }

        mutating func encodeNil(forKey key: Key) throws { encoder.node.child(forKey: key.stringValue).content = .value(.null) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            try encoder.encode(value, into: encoder.node.child(forKey: key.stringValue), key: key)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            ValueEncoding(codingPath: codingPath + [key], node: encoder.node.child(forKey: key.stringValue)).container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            ValueEncoding(codingPath: codingPath + [key], node: encoder.node.child(forKey: key.stringValue)).unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder { ValueEncoding(codingPath: codingPath, node: encoder.node.child(forKey: "super")) }
        mutating func superEncoder(forKey key: Key) -> any Encoder {
            ValueEncoding(codingPath: codingPath + [key], node: encoder.node.child(forKey: key.stringValue))
        }
    }

    private struct Unkeyed: UnkeyedEncodingContainer {
        let encoder: ValueEncoding
        var codingPath: [any CodingKey] { encoder.codingPath }
        var count: Int {
            if case .array(let elements) = encoder.node.content { return elements.count }
            return 0
        }

        mutating func encodeNil() throws { encoder.node.appendChild().content = .value(.null) }
        mutating func encode<T: Encodable>(_ value: T) throws {
            try encoder.encode(value, into: encoder.node.appendChild(), key: IndexKey(count))
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            ValueEncoding(codingPath: codingPath, node: encoder.node.appendChild()).container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            ValueEncoding(codingPath: codingPath, node: encoder.node.appendChild()).unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder { ValueEncoding(codingPath: codingPath, node: encoder.node.appendChild()) }
    }

    private struct Single: SingleValueEncodingContainer {
        let encoder: ValueEncoding
        var codingPath: [any CodingKey] { encoder.codingPath }

        private func set(_ v: Value) { encoder.node.content = .value(v) }
        mutating func encodeNil() throws { set(.null) }
        mutating func encode(_ value: Bool) throws { set(.bool(value)) }
        mutating func encode(_ value: String) throws { set(.string(value)) }
        mutating func encode(_ value: Double) throws { set(.double(value)) }
        mutating func encode(_ value: Float) throws { set(.double(Double(value))) }
        mutating func encode(_ value: Int) throws { set(.int(value)) }
        mutating func encode(_ value: Int8) throws { set(.int(Int(value))) }
        mutating func encode(_ value: Int16) throws { set(.int(Int(value))) }
        mutating func encode(_ value: Int32) throws { set(.int(Int(value))) }
        mutating func encode(_ value: Int64) throws { set(.int(Int(value))) }
        mutating func encode(_ value: UInt) throws { set(.int(Int(clamping: value))) }
        mutating func encode(_ value: UInt8) throws { set(.int(Int(value))) }
        mutating func encode(_ value: UInt16) throws { set(.int(Int(value))) }
        mutating func encode(_ value: UInt32) throws { set(.int(Int(value))) }
        mutating func encode(_ value: UInt64) throws { set(.int(Int(clamping: value))) }
        mutating func encode<T: Encodable>(_ value: T) throws { try encoder.encode(value, into: encoder.node, key: nil) }
    }
}
