/// A JSON-like value: what probes return, what arguments hold after loading, and what journals store.
///
/// Objects keep their keys in insertion order so that journals and reports are deterministic and
/// read in the order the author wrote them. Equality of objects ignores key order, as JSON's does.
public enum Value: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([Value])
    case object(ValueObject)
}

extension Value {
    /// A short name of the value's kind, as used in error messages ("a string", "an integer").
    public var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int: "an integer"
        case .double: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }

    public var isNull: Bool { if case .null = self { true } else { false } }

    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }

    public var arrayValue: [Value]? { if case .array(let a) = self { a } else { nil } }

    public var objectValue: ValueObject? { if case .object(let o) = self { o } else { nil } }

    /// The value as an integer, accepting doubles that are whole numbers.
    public var intValue: Int? {
        switch self {
        case .int(let i): i
        case .double(let d) where d.rounded() == d && abs(d) < 9.2e18: Int(d)
        default: nil
        }
    }

    /// The value as a double, accepting integers.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    /// The number, or the number a string spells exactly (`"5"`, `"0.25"`): where Chaos Toolkit's
    /// Python code takes a number, a numeric string from an `env` configuration value works too.
    public var numberValue: Double? {
        if let stringValue { return Value(exactNumber: stringValue)?.doubleValue }
        return doubleValue
    }

    /// The number `text` spells exactly — an optional sign, digits, an optional fraction and
    /// exponent, as JSON writes numbers; no spaces, no `inf`, no hexadecimal — or nil.
    public init?(exactNumber text: String) {
        let bytes = Array(text.utf8)
        func digit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        var i = 0
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") { i += 1 }
        let integerStart = i
        while i < bytes.count, digit(bytes[i]) { i += 1 }
        let integerDigits = i - integerStart
        var fractionDigits = 0
        var isInteger = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            while i < bytes.count, digit(bytes[i]) { i += 1; fractionDigits += 1 }
        }
        guard integerDigits + fractionDigits > 0 else { return nil }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") { i += 1 }
            let exponentStart = i
            while i < bytes.count, digit(bytes[i]) { i += 1 }
            guard i > exponentStart else { return nil }
        }
        guard i == bytes.count else { return nil }
        if isInteger, let integer = Int(text.hasPrefix("+") ? String(text.dropFirst()) : text) {
            self = .int(integer)
        } else if let double = Double(text), double.isFinite {
            self = .double(double)
        } else {
            return nil
        }
    }

    /// Member lookup on objects; `nil` for other kinds or a missing key.
    public subscript(key: String) -> Value? {
        get { objectValue?[key] }
        set {
            guard case .object(var object) = self else { return }
            object[key] = newValue
            self = .object(object)
        }
    }

    /// Element lookup on arrays; `nil` when out of range or not an array.
    public subscript(index: Int) -> Value? {
        guard case .array(let a) = self, a.indices.contains(index) else { return nil }
        return a[index]
    }

    /// Python-style truthiness, used where Chaos Toolkit tests a value with `if value:`.
    public var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0
        case .string(let s): !s.isEmpty
        case .array(let a): !a.isEmpty
        case .object(let o): !o.isEmpty
        }
    }

    /// Equality that treats `1` and `1.0` as the same number, as JSON and Python do.
    public func looselyEquals(_ other: Value) -> Bool {
        switch (self, other) {
        case (.int, .double), (.double, .int), (.double, .double):
            return doubleValue == other.doubleValue
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.looselyEquals($1) }
        case (.object(let a), .object(let b)):
            return a.count == b.count && a.allSatisfy { key, value in b[key].map { value.looselyEquals($0) } ?? false }
        default:
            return self == other
        }
    }

    /// Walks every string in the value (keys excluded) and replaces it with `transform`'s result.
    public func mapStrings(_ transform: (String) throws -> Value) rethrows -> Value {
        switch self {
        case .string(let s): return try transform(s)
        case .array(let a): return .array(try a.map { try $0.mapStrings(transform) })
        case .object(let o): return .object(try o.mapValues { try $0.mapStrings(transform) })
        default: return self
        }
    }
}

extension Value: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: Value...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, Value)...) {
        self = .object(ValueObject(elements))
    }
}

extension Value: CustomStringConvertible {
    /// Compact JSON text of the value.
    public var description: String { JSONWriter.string(self, pretty: false) }
}

/// An insertion-ordered string-keyed map of values, the object case of ``Value``.
public struct ValueObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var keys: [String] = []
    private var storage: [String: Value] = [:]

    public init() {}

    public init<S: Sequence>(_ pairs: S) where S.Element == (String, Value) {
        for (key, value) in pairs { self[key] = value }
    }

    public init(dictionaryLiteral elements: (String, Value)...) { self.init(elements) }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    /// Reads a member; setting `nil` removes it, setting a new key appends it.
    public subscript(key: String) -> Value? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public func makeIterator() -> AnyIterator<(key: String, value: Value)> {
        var index = 0
        return AnyIterator {
            guard index < keys.count else { return nil }
            defer { index += 1 }
            let key = keys[index]
            return (key, storage[key]!)
        }
    }

    public func mapValues(_ transform: (Value) throws -> Value) rethrows -> ValueObject {
        var result = ValueObject()
        for key in keys { result[key] = try transform(storage[key]!) }
        return result
    }

    public static func == (lhs: ValueObject, rhs: ValueObject) -> Bool { lhs.storage == rhs.storage }
    public func hash(into hasher: inout Hasher) { hasher.combine(storage) }
}
