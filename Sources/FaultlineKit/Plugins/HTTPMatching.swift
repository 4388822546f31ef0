import Foundation

/// Conditions on a message's header fields, all of which must hold (`request_headers`,
/// `response_headers`).
///
/// Written either as an object, `{Content-Type: application/json}` — each named header present
/// with exactly that value, as Chaos Mesh's `request_headers` — or as a list of matchers in the
/// shape of Envoy's `HeaderMatcher`: `{name, exact | prefix | suffix | contains | regex | present
/// | range, invert, ignore_case}` (Envoy's own field names, `exact_match`, `safe_regex_match`,
/// `string_match`, `invert_match`, … are read too).
public struct HTTPHeaderConditions: Codable, Sendable, Equatable, SchemaTypeNamed {
    public var matchers: [HTTPHeaderMatcher]
    /// Written as `{name: value}`: encoded back that way.
    var writtenAsObject: Bool

    public static var schemaTypeName: String { "object of string, or list of header matchers" }

    public init(_ matchers: [HTTPHeaderMatcher]) {
        self.matchers = matchers
        writtenAsObject = false
    }

    /// Each header present with exactly this value.
    public init(exact: [String: String]) {
        matchers = exact.sorted { $0.key < $1.key }.map { HTTPHeaderMatcher(name: $0.key, test: .exact($0.value)) }
        writtenAsObject = true
    }

    public init(from decoder: any Decoder) throws {
        if case .array? = try? decoder.singleValueContainer().decode(Value.self) {
            self.init(try decoder.singleValueContainer().decode([HTTPHeaderMatcher].self))
            return
        }
        let object = try decoder.container(keyedBy: AnyKey.self)
        var exact: [String: String] = [:]
        for name in object.allKeys {
            guard let value = try? object.decode(String.self, forKey: name) else {
                // An object here is most likely a matcher written in the object form: say where it goes.
                let key = decoder.codingPath.last?.stringValue ?? "request_headers"
                throw DecodingError.typeMismatch(
                    String.self,
                    .init(
                        codingPath: object.codingPath + [name],
                        debugDescription:
                            "\(key): the value of header \"\(name.stringValue)\" must be a string (its exact value); a matcher goes in a list: \(key): [{name: \(name.stringValue), exact | prefix | suffix | contains | regex | present | range: …, invert}]"
                    ))
            }
            exact[name.stringValue] = value
        }
        self.init(exact: exact)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if writtenAsObject, let exact = exactValues {
            try container.encode(exact)
        } else {
            try container.encode(matchers)
        }
    }

    private var exactValues: [String: String]? {
        var values: [String: String] = [:]
        for matcher in matchers {
            guard case .exact(let value) = matcher.test, !matcher.invert, !matcher.ignoreCase, values[matcher.name] == nil else { return nil }
            values[matcher.name] = value
        }
        return values
    }

    public static func == (a: Self, b: Self) -> Bool { a.matchers == b.matchers }

    /// Whether every matcher holds for these fields.
    public func matches(_ headers: [HTTPHeaderField]) -> Bool { matchers.allSatisfy { $0.matches(headers) } }

    /// Rejects a matcher that can never be judged (an invalid regular expression, no name).
    func validate(key: String) throws {
        for (index, matcher) in matchers.enumerated() {
            if matcher.name.isEmpty { throw ArgumentError("\(key).\(index).name", "a header matcher needs the header's name") }
            if case .regex(let pattern) = matcher.test, matcher.compiled.regex == nil {
                throw ArgumentError(
                    "\(key).\(index)", "\"\(pattern)\" is not a valid regular expression",
                    hint: "the whole value must match it (as Envoy's safe_regex); escape . * + ? ( ) [ ] with a backslash")
            }
        }
    }
}

/// One condition on a header, as Envoy's `HeaderMatcher` judges it: the values of every field of
/// the name, joined with `,`, are tested; a missing header fails every test but `present: false`
/// (inverted: only `present: true` passes), unless `treat_missing_header_as_empty`.
public struct HTTPHeaderMatcher: Codable, Sendable, Equatable {
    public enum Test: Sendable, Equatable {
        case exact(String)
        case prefix(String)
        case suffix(String)
        case contains(String)
        /// The whole value matches the regular expression.
        case regex(String)
        case present(Bool)
        /// An integer value in `start..<end`.
        case range(start: Int64, end: Int64)
    }

    public var name: String
    public var test: Test
    public var invert: Bool
    public var ignoreCase: Bool
    public var treatMissingAsEmpty: Bool
    let compiled: CompiledPattern

    public init(name: String, test: Test, invert: Bool = false, ignoreCase: Bool = false, treatMissingAsEmpty: Bool = false) {
        self.name = name
        self.test = test
        self.invert = invert
        self.ignoreCase = ignoreCase
        self.treatMissingAsEmpty = treatMissingAsEmpty
        compiled = CompiledPattern(test, ignoreCase: ignoreCase)
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.name == b.name && a.test == b.test && a.invert == b.invert && a.ignoreCase == b.ignoreCase && a.treatMissingAsEmpty == b.treatMissingAsEmpty
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, exact, prefix, suffix, contains, regex, present, range, invert
        case ignoreCase = "ignore_case"
        // Envoy's names.
        case exactMatch = "exact_match", prefixMatch = "prefix_match", suffixMatch = "suffix_match", containsMatch = "contains_match"
        case presentMatch = "present_match", safeRegexMatch = "safe_regex_match", rangeMatch = "range_match", stringMatch = "string_match"
        case invertMatch = "invert_match", treatMissingHeaderAsEmpty = "treat_missing_header_as_empty"
    }

    /// Envoy's `StringMatcher` (`string_match`).
    struct StringMatch: Codable {
        var exact, prefix, suffix, contains: String?
        var safeRegex: Value?
        var ignoreCase: Bool?
        enum CodingKeys: String, CodingKey {
            case exact, prefix, suffix, contains, safeRegex = "safe_regex", ignoreCase = "ignore_case"
        }
    }

    /// An integer range, `start` included, `end` not (Envoy's `Int64Range`).
    struct RangeBounds: Codable, NumberRanges {
        static let numberRanges: [String: NumberRange] = [
            "start": NumberRange(-9_000_000_000_000_000...9_000_000_000_000_000, integer: true),
            "end": NumberRange(-9_000_000_000_000_000...9_000_000_000_000_000, integer: true),
        ]
        var start: Int64
        var end: Int64
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .name)
        var tests: [Test] = []
        func string(_ key: CodingKeys, _ make: (String) -> Test) throws {
            if let value = try c.decodeIfPresent(String.self, forKey: key) { tests.append(make(value)) }
        }
        func regex(_ value: Value?) -> String? { value?.stringValue ?? value?["regex"]?.stringValue }
        try string(.exact, Test.exact)
        try string(.exactMatch, Test.exact)
        try string(.prefix, Test.prefix)
        try string(.prefixMatch, Test.prefix)
        try string(.suffix, Test.suffix)
        try string(.suffixMatch, Test.suffix)
        try string(.contains, Test.contains)
        try string(.containsMatch, Test.contains)
        try string(.regex, Test.regex)
        if let pattern = regex(try c.decodeIfPresent(Value.self, forKey: .safeRegexMatch)) { tests.append(.regex(pattern)) }
        if let present = try c.decodeIfPresent(Bool.self, forKey: .present) { tests.append(.present(present)) }
        if let present = try c.decodeIfPresent(Bool.self, forKey: .presentMatch) { tests.append(.present(present)) }
        for key in [CodingKeys.range, .rangeMatch] {
            if let range = try c.decodeIfPresent(RangeBounds.self, forKey: key) { tests.append(.range(start: range.start, end: range.end)) }
        }
        var ignoreCase = try c.decodeIfPresent(Bool.self, forKey: .ignoreCase) ?? false
        if let match = try c.decodeIfPresent(StringMatch.self, forKey: .stringMatch) {
            if let value = match.exact { tests.append(.exact(value)) }
            if let value = match.prefix { tests.append(.prefix(value)) }
            if let value = match.suffix { tests.append(.suffix(value)) }
            if let value = match.contains { tests.append(.contains(value)) }
            if let pattern = regex(match.safeRegex) { tests.append(.regex(pattern)) }
            ignoreCase = ignoreCase || match.ignoreCase == true
        }
        guard tests.count <= 1 else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "a header matcher takes one test: exact, prefix, suffix, contains, regex, present or range (header \"\(name)\")"
                ))
        }
        let invert = try c.decodeIfPresent(Bool.self, forKey: .invert) ?? c.decodeIfPresent(Bool.self, forKey: .invertMatch) ?? false
        let missing = try c.decodeIfPresent(Bool.self, forKey: .treatMissingHeaderAsEmpty) ?? false
        self.init(name: name, test: tests.first ?? .present(true), invert: invert, ignoreCase: ignoreCase, treatMissingAsEmpty: missing)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        switch test {
        case .exact(let value): try c.encode(value, forKey: .exact)
        case .prefix(let value): try c.encode(value, forKey: .prefix)
        case .suffix(let value): try c.encode(value, forKey: .suffix)
        case .contains(let value): try c.encode(value, forKey: .contains)
        case .regex(let value): try c.encode(value, forKey: .regex)
        case .present(let value): try c.encode(value, forKey: .present)
        case .range(let start, let end): try c.encode(RangeBounds(start: start, end: end), forKey: .range)
        }
        if invert { try c.encode(true, forKey: .invert) }
        if ignoreCase { try c.encode(true, forKey: .ignoreCase) }
        if treatMissingAsEmpty { try c.encode(true, forKey: .treatMissingHeaderAsEmpty) }
    }

    /// Whether the condition holds for these fields.
    public func matches(_ headers: [HTTPHeaderField]) -> Bool {
        var values: [String] = []
        for field in headers where field.name.caseInsensitiveEquals(name) { values.append(field.value) }
        if values.isEmpty && !treatMissingAsEmpty {
            guard case .present(let present) = test else { return false }
            return invert ? present : !present
        }
        let joined = values.joined(separator: ",")
        let result: Bool
        switch test {
        case .exact(let expected):
            // Envoy: an empty value is "present"; Chaos Mesh: any one field with the value.
            result = expected.isEmpty || equal(joined, expected) || values.contains { equal($0, expected) }
        case .prefix(let prefix): result = fold(joined).hasPrefix(fold(prefix))
        case .suffix(let suffix): result = fold(joined).hasSuffix(fold(suffix))
        case .contains(let part): result = part.isEmpty || fold(joined).contains(fold(part))
        case .regex: result = compiled.wholeMatch(joined)
        case .present(let present): result = present
        case .range(let start, let end):
            if let number = Int64(joined) { result = number >= start && number < end } else { result = false }
        }
        return result != invert
    }

    private func fold(_ text: String) -> String { ignoreCase ? text.lowercased() : text }
    private func equal(_ a: String, _ b: String) -> Bool { ignoreCase ? a.caseInsensitiveEquals(b) : a == b }
}

/// A regular expression compiled once, shared by every connection.
final class CompiledPattern: @unchecked Sendable {
    // NSRegularExpression is immutable and safe to use from several threads at once.
    let regex: NSRegularExpression?

    init(_ test: HTTPHeaderMatcher.Test, ignoreCase: Bool) {
        guard case .regex(let pattern) = test else {
            regex = nil
            return
        }
        regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$", options: ignoreCase ? [.caseInsensitive] : [])
    }

    func wholeMatch(_ text: String) -> Bool {
        guard let regex else { return false }
        return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}

/// Header fields as an ordered list of name and value: written as an object (`{Token: a}`) or, to
/// repeat a name, as a list of pairs (`[[Token, a], [Token, b]]`, Chaos Mesh's `patch.headers`).
public struct HTTPFieldList: Codable, Sendable, Equatable, SchemaTypeNamed {
    public var pairs: [(name: String, value: String)]

    public static var schemaTypeName: String { "object of string, or list of [name, value]" }

    public init(_ pairs: [(name: String, value: String)] = []) { self.pairs = pairs }

    public init(from decoder: any Decoder) throws {
        if case .array? = try? decoder.singleValueContainer().decode(Value.self) {
            let lists = try decoder.singleValueContainer().decode([[String]].self)
            pairs = try lists.map { pair in
                guard pair.count == 2 else {
                    throw DecodingError.dataCorrupted(
                        .init(codingPath: decoder.codingPath, debugDescription: "each entry is a [name, value] pair (found \(pair.count) strings)"))
                }
                return (pair[0], pair[1])
            }
        } else {
            pairs = try decoder.singleValueContainer().decode([String: String].self).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if Set(pairs.map { $0.name.lowercased() }).count == pairs.count {
            try container.encode(Dictionary(pairs.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a }))
        } else {
            try container.encode(pairs.map { [$0.name, $0.value] })
        }
    }

    public var isEmpty: Bool { pairs.isEmpty }

    public static func == (a: Self, b: Self) -> Bool { a.pairs.elementsEqual(b.pairs) { $0.name == $1.name && $0.value == $1.value } }
}

/// A flag written as `true`/`false` or, as in Envoy's configuration, as an empty object (`header_abort: {}`).
public struct HTTPFlag: Codable, Sendable, Equatable, SchemaTypeNamed {
    public var isOn: Bool

    public static var schemaTypeName: String { "boolean" }

    public init(_ isOn: Bool) { self.isOn = isOn }

    public init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer().decode(Value.self)
        switch value {
        case .bool(let flag): isOn = flag
        case .object(let object) where object.isEmpty: isOn = true
        case .null: isOn = false
        default:
            throw DecodingError.typeMismatch(
                Bool.self, .init(codingPath: decoder.codingPath, debugDescription: "expected true, false or {} (found \(value.kindDescription))"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(isOn)
    }
}

extension Value {
    /// This value with a JSON merge patch applied (RFC 7396): an object patch sets its members
    /// (recursively), `null` members remove, anything else replaces the whole value.
    public func mergePatched(with patch: Value) -> Value {
        guard case .object(let members) = patch else { return patch }
        var result = objectValue ?? ValueObject()
        for (key, value) in members {
            if value.isNull {
                result[key] = nil
            } else {
                result[key] = (result[key] ?? .null).mergePatched(with: value)
            }
        }
        return .object(result)
    }
}
