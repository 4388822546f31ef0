import FaultlineKit

/// Toxiproxy's words for bad request bodies and listen failures: what Go's `encoding/json` and
/// `net.Listen` say, so that clients that compare error texts see the same ones from us.
enum ToxiproxyWording {
    /// Toxiproxy's request body types, as Go prints them in `cannot unmarshal … into Go value of type …`.
    enum Body: String {
        case proxy = "toxiproxy.Proxy"
        case populate = #"[]struct { toxiproxy.Proxy; Enabled *bool "json:\"enabled\"" }"#
        case populateEntry = #"struct { toxiproxy.Proxy; Enabled *bool "json:\"enabled\"" }"#
        case toxic = "toxics.ToxicWrapper"
        case toxicUpdate = #"struct { Attributes interface {} "json:\"attributes\""; Toxicity float32 "json:\"toxicity\"" }"#
    }

    /// The Go type of a field, for the check and the message.
    enum FieldType: String {
        case string, bool, float32, int, int64
    }

    /// Go's struct names of Toxiproxy's toxics (its error texts name them), and the Go type of
    /// every attribute: all integers.
    static let toxicStructs: [String: (name: String, attributes: [String: FieldType])] = [
        "latency": ("LatencyToxic", ["latency": .int64, "jitter": .int64]),
        "bandwidth": ("BandwidthToxic", ["rate": .int64]),
        "slow_close": ("SlowCloseToxic", ["delay": .int64]),
        "timeout": ("TimeoutToxic", ["timeout": .int64]),
        "reset_peer": ("ResetToxic", ["timeout": .int64]),
        "slicer": ("SlicerToxic", ["average_size": .int, "size_variation": .int, "delay": .int]),
        "limit_data": ("LimitDataToxic", ["bytes": .int64]),
        "noop": ("NoopToxic", [:]),
    ]

    static func badBody(_ detail: String) -> ProxyError { ProxyError(.badRequest, "bad request body: \(detail)") }

    /// Parses a request body as Go's `json.Decoder` would judge it: nothing at all is `EOF`, a
    /// body cut short is `unexpected EOF`; other syntax errors keep our parser's wording.
    static func parse(_ body: [UInt8]) throws(ProxyError) -> Value {
        let text = String(decoding: body, as: UTF8.self)
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { throw badBody("EOF") }
        do {
            return try JSONReader.value(text)
        } catch let diagnostic as Diagnostic {
            if let location = diagnostic.location, endsAt(text, line: location.line, column: location.column) {
                throw badBody("unexpected EOF")
            }
            throw badBody(diagnostic.message)
        } catch {
            throw badBody("\(error)")
        }
    }

    /// Whether line:column is just past the last character of `text` (the parser ran out of input).
    private static func endsAt(_ text: String, line: Int, column: Int) -> Bool {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return line == lines.count && column == (lines.last?.count ?? 0) + 1
    }

    /// The body as an object; `null` is an empty one (Go leaves the target as it was).
    static func object(_ value: Value, as body: Body) throws(ProxyError) -> ValueObject {
        switch value {
        case .null: return ValueObject()
        case .object(let object): return object
        default: throw cannotUnmarshal(value, into: body)
        }
    }

    /// A body of the wrong JSON type for `body`.
    static func cannotUnmarshal(_ value: Value, into body: Body) -> ProxyError {
        badBody("json: cannot unmarshal \(kind(value)) into Go value of type \(body.rawValue)")
    }

    /// A field of an object the way Go finds it: the exact key, else one that matches ignoring case.
    static func field(_ object: ValueObject, _ key: String) -> Value? {
        if let value = object[key] { return value }
        return object.first { $0.key.lowercased() == key }?.value
    }

    /// Checks the known fields of `object` in the order they were written (Go reports the first
    /// mismatch); `owner` is the Go struct name in the message (`Proxy`, `ToxicWrapper`, or empty
    /// for Toxiproxy's anonymous structs).
    static func checkFields(_ object: ValueObject, _ types: KeyValuePairs<String, FieldType>, owner: String, path: String = "")
        throws(ProxyError)
    {
        for (key, value) in object {
            guard let type = types.first(where: { $0.key == key.lowercased() })?.value else { continue }
            if let mismatch = mismatch(value, type) {
                throw badBody("json: cannot unmarshal \(mismatch) into Go struct field \(owner).\(path)\(key.lowercased()) of type \(type.rawValue)")
            }
        }
    }

    /// Checks a toxic's attributes against Toxiproxy's Go struct of its type; custom types (which
    /// Toxiproxy does not have) are left to their own decoding.
    static func checkAttributes(_ attributes: ValueObject, type: String) throws(ProxyError) {
        guard let toxic = toxicStructs[type] else { return }
        for (key, value) in attributes {
            guard let fieldType = toxic.attributes[key.lowercased()], let mismatch = mismatch(value, fieldType) else { continue }
            throw badBody(
                "json: cannot unmarshal \(mismatch) into Go struct field \(toxic.name).attributes.\(key.lowercased()) of type \(fieldType.rawValue)")
        }
    }

    /// `attributes` with each key of one of Toxiproxy's own toxics spelt as the toxic names it:
    /// Go's decoder matches JSON keys to struct fields ignoring case (Toxiproxy.Net sends
    /// `"Latency"`, `"Jitter"`), and a later spelling of a field overrides an earlier one. Other
    /// keys, and every key of a toxic Toxiproxy does not have, stay as they were.
    static func canonicalAttributes(_ attributes: Value, type: String) -> Value {
        guard let known = toxicStructs[type]?.attributes, case .object(let object) = attributes,
            object.contains(where: { known[$0.key] == nil && known[$0.key.lowercased()] != nil })
        else { return attributes }
        var canonical = ValueObject()
        for (key, value) in object {
            let field = known[key] == nil && known[key.lowercased()] != nil ? key.lowercased() : key
            canonical[field] = value
        }
        return .object(canonical)
    }

    /// The Go type an `attributes` value that is not an object fails to decode into.
    static func attributesTarget(type: String) -> String { "toxics." + (toxicStructs[type]?.name ?? "NoopToxic") }

    /// `attributes` that is not an object, as Go fails to decode it into `target`.
    static func attributesNotObject(_ value: Value, owner: String, target: String) -> ProxyError {
        badBody("json: cannot unmarshal \(kind(value)) into Go struct field \(owner).attributes of type \(target)")
    }

    /// What Go says it found when `value` does not fit `type` (nil when it fits; null always fits).
    private static func mismatch(_ value: Value, _ type: FieldType) -> String? {
        switch (type, value) {
        // A float32 holds up to ~3.4e38; Go refuses a number beyond it.
        case (.float32, .double(let number)) where abs(number) > Double(Float.greatestFiniteMagnitude): "number \(number)"
        case (_, .null), (.string, .string), (.bool, .bool), (.float32, .int), (.float32, .double), (.int, .int), (.int64, .int): nil
        case (.int, .double(let number)), (.int64, .double(let number)): "number \(number)"
        default: kind(value)
        }
    }

    private static func kind(_ value: Value) -> String {
        switch value {
        case .null: "null"
        case .bool: "bool"
        case .int, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    // MARK: Listen addresses

    /// Splits a listen address as Go's `net.Listen` does, with its words for what is wrong
    /// (`address nonsense: missing port in address`, `address 99999: invalid port`).
    static func splitListen(_ text: String) throws(ProxyError) -> (host: String, port: Int) {
        do {
            let address = try HostPort(parsing: text, role: .listen)
            return (address.host, address.port)
        } catch {
            throw ProxyError(.serverError, goWords(error))
        }
    }

    /// `net.SplitHostPort`'s and `LookupPort`'s words for an address that is not host:port.
    private static func goWords(_ error: HostPortError) -> String {
        switch error.reason {
        case .missingPort: "address \(error.text): missing port in address"
        case .tooManyColons: "address \(error.text): too many colons in address"
        case .missingBracket: "address \(error.text): missing ']' in address"
        case .unexpectedBracket(let bracket): "address \(error.text): unexpected '\(bracket)' in address"
        case .invalidPort(let port), .portOutOfRange(let port, _): "address \(port): invalid port"
        // A listener needs no host.
        case .missingHost: "address \(error.text): missing host"
        }
    }

    /// A listen failure as Toxiproxy reports it: `listen tcp 127.0.0.1:8080: bind: address already
    /// in use`, naming the resolved address (`:8080` when no host was given), or `listen tcp:
    /// lookup x: no such host` when there is none.
    static func listenFailure(at address: String?, _ reason: String) -> ProxyError {
        ProxyError(.serverError, "listen tcp" + (address.map { " " + $0 } ?? "") + ": " + reason)
    }
}
