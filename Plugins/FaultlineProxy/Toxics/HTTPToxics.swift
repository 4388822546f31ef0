import FaultlineKit

// The HTTP toxics: each acts per request on the requests its match attributes select, with its
// toxicity as the probability per request. Upstream they act on the request, downstream on the
// response (see `HTTPToxic`).

/// Decodes and encodes an HTTP toxic's own attributes beside the shared match attributes.
private struct MatchCoding {
    static func decode(_ decoder: any Decoder) throws -> HTTPRequestMatch { try HTTPRequestMatch(from: decoder) }
    static func encode(_ match: HTTPRequestMatch, to encoder: any Encoder) throws { try match.encode(to: encoder) }
}

private func helpWithMatch(_ own: [String: String]) -> [String: String] {
    own.merging(HTTPRequestMatch.help) { mine, _ in mine }
}

/// `http_abort`: answers matching requests with a status (and optional headers and body) instead
/// of forwarding them (upstream), or replaces the server's response with it (downstream: the
/// server did the work, the client sees the failure).
public struct HTTPAbortToxic: HTTPToxic {
    public static let type = "http_abort"
    public static let summary = "Answer matching HTTP requests with a status (default 503) instead of forwarding them"
    public static let attributeHelp = helpWithMatch([
        "status": "the status code to answer with, 100…599 (default 503)",
        "body": "the response body (default empty)",
        "headers": "extra response headers, name: value",
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["status": NumberRange(100...599, unit: "(HTTP status)", integer: true)]
        public var status: Int
        public var body: String
        public var headers: [String: String]
        public var match: HTTPRequestMatch

        public init(status: Int = 503, body: String = "", headers: [String: String] = [:], match: HTTPRequestMatch = HTTPRequestMatch()) {
            self.status = status
            self.body = body
            self.headers = headers
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case status, body, headers }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            status = try c.decodeIfPresent(Int.self, forKey: .status) ?? 503
            body = try c.decodeIfPresent(String.self, forKey: .body) ?? ""
            headers = try c.decodeIfPresent([String: String].self, forKey: .headers) ?? [:]
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(status, forKey: .status)
            try c.encode(body, forKey: .body)
            try c.encode(headers, forKey: .headers)
            try MatchCoding.encode(match, to: encoder)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        guard (100...599).contains(attributes.status) else {
            throw ArgumentError(
                "status", "status must be an HTTP status code 100…599 (found \(attributes.status))",
                hint: "503 Service Unavailable is the usual choice")
        }
        try validateHeaderNames(attributes.headers.keys, key: "headers")
        try validateHeaderValues(attributes.headers.values, key: "headers")
        try attributes.match.validate()
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        let headers = attributes.headers.sorted { $0.key < $1.key }.map { HTTPHeaderField(name: $0.key, value: $0.value) }
        return .respond(HTTPSyntheticResponse(status: attributes.status, headers: headers, body: Array(attributes.body.utf8)))
    }
}

/// `http_latency`: delays matching requests (upstream) or their responses (downstream) by
/// `latency ± jitter` milliseconds; what follows them on the connection waits behind them.
public struct HTTPLatencyToxic: HTTPToxic {
    public static let type = "http_latency"
    public static let summary = "Delay matching HTTP requests (upstream) or responses (downstream) by latency ± jitter ms"
    public static let attributeHelp = helpWithMatch([
        "latency": "delay in milliseconds",
        "jitter": "uniform random variation in milliseconds, ± around latency (seeded per request)",
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["latency": .milliseconds, "jitter": .milliseconds]
        public var latency: Int
        public var jitter: Int
        public var match: HTTPRequestMatch

        public init(latency: Int = 0, jitter: Int = 0, match: HTTPRequestMatch = HTTPRequestMatch()) {
            self.latency = latency
            self.jitter = jitter
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case latency, jitter }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            latency = try c.attribute(.latency)
            jitter = try c.attribute(.jitter)
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(latency, forKey: .latency)
            try c.encode(jitter, forKey: .jitter)
            try MatchCoding.encode(match, to: encoder)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        try requireNonNegative(attributes.latency, "latency", unit: "milliseconds")
        try requireNonNegative(attributes.jitter, "jitter", unit: "milliseconds")
        try attributes.match.validate()
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        var delay = Int64(attributes.latency) * 1_000_000
        if attributes.jitter > 0 {
            let span = UInt64(attributes.jitter) * 2_000_000
            delay += Int64(random.next() % span) - Int64(attributes.jitter) * 1_000_000
        }
        return .delay(nanoseconds: UInt64(max(0, delay)))
    }
}

/// `http_reset`: resets the connection (RST) in the middle of a matching request (upstream) or of
/// its response (downstream), after the head and `body_bytes` bytes of the body.
public struct HTTPResetToxic: HTTPToxic {
    public static let type = "http_reset"
    public static let summary = "Reset the connection mid-request (upstream) or mid-response (downstream) for matching requests"
    public static let attributeHelp = helpWithMatch([
        "body_bytes": "bytes of the body (as sent, chunk framing included) forwarded before the reset; 0 resets right after the head"
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["body_bytes": .bytes]
        public var bodyBytes: Int
        public var match: HTTPRequestMatch

        public init(bodyBytes: Int = 0, match: HTTPRequestMatch = HTTPRequestMatch()) {
            self.bodyBytes = bodyBytes
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case bodyBytes = "body_bytes" }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            bodyBytes = try c.attribute(.bodyBytes)
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(bodyBytes, forKey: .bodyBytes)
            try MatchCoding.encode(match, to: encoder)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        try requireNonNegative(attributes.bodyBytes, "body_bytes", unit: "bytes")
        try attributes.match.validate()
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        .reset(afterBodyBytes: attributes.bodyBytes)
    }
}

/// `http_headers`: sets, adds or removes header fields of matching requests (upstream) or of
/// their responses (downstream).
public struct HTTPHeadersToxic: HTTPToxic {
    public static let type = "http_headers"
    public static let summary = "Set, add or remove headers of matching HTTP requests (upstream) or responses (downstream)"
    public static let attributeHelp = helpWithMatch([
        "set": "headers to set, name: value (replacing every field of that name)",
        "add": "headers to add, name: value (keeping existing ones)",
        "remove": "header names to remove",
    ])

    public struct Attributes: Codable, Sendable, Equatable {
        public var set: [String: String]
        public var add: [String: String]
        public var remove: [String]
        public var match: HTTPRequestMatch

        public init(set: [String: String] = [:], add: [String: String] = [:], remove: [String] = [], match: HTTPRequestMatch = HTTPRequestMatch()) {
            self.set = set
            self.add = add
            self.remove = remove
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case set, add, remove }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            set = try c.decodeIfPresent([String: String].self, forKey: .set) ?? [:]
            add = try c.decodeIfPresent([String: String].self, forKey: .add) ?? [:]
            remove = try c.decodeIfPresent([String].self, forKey: .remove) ?? []
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(set, forKey: .set)
            try c.encode(add, forKey: .add)
            try c.encode(remove, forKey: .remove)
            try MatchCoding.encode(match, to: encoder)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        if attributes.set.isEmpty && attributes.add.isEmpty && attributes.remove.isEmpty {
            throw ArgumentError("set", "http_headers changes nothing", hint: "give set, add or remove")
        }
        try validateHeaderNames(attributes.set.keys, key: "set")
        try validateHeaderNames(attributes.add.keys, key: "add")
        try validateHeaderValues(attributes.set.values, key: "set")
        try validateHeaderValues(attributes.add.values, key: "add")
        try validateHeaderNames(attributes.remove, key: "remove")
        try attributes.match.validate()
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        // Removals first, then sets and adds, each in name order, so the result does not depend
        // on how the attributes were written.
        var edits = attributes.remove.map { HTTPHeaderEdit.remove(name: $0) }
        edits += attributes.set.sorted { $0.key < $1.key }.map { HTTPHeaderEdit.set(name: $0.key, value: $0.value) }
        edits += attributes.add.sorted { $0.key < $1.key }.map { HTTPHeaderEdit.add(name: $0.key, value: $0.value) }
        return .editHeaders(edits)
    }
}

/// `http_body`: replaces the body of responses to matching requests, or truncates it (the head
/// still announces the full length, and the connection closes after the cut). Downstream only.
public struct HTTPBodyToxic: HTTPToxic {
    public static let type = "http_body"
    public static let summary = "Replace or truncate the response body of matching HTTP requests (downstream)"
    public static let streams: [ToxicStream] = [.downstream]
    public static let attributeHelp = helpWithMatch([
        "body": "the new body (Content-Length adjusted); absent keeps the server's",
        "truncate": "bytes of the body (as sent) to keep before closing the connection; -1 keeps all (default)",
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges: [String: NumberRange] = ["truncate": NumberRange(-1...1_099_511_627_776, unit: "bytes", integer: true)]
        public var body: String?
        public var truncate: Int
        public var match: HTTPRequestMatch

        public init(body: String? = nil, truncate: Int = -1, match: HTTPRequestMatch = HTTPRequestMatch()) {
            self.body = body
            self.truncate = truncate
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case body, truncate }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            body = try c.decodeIfPresent(String.self, forKey: .body)
            truncate = try c.decodeIfPresent(Int.self, forKey: .truncate) ?? -1
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(body, forKey: .body)
            try c.encode(truncate, forKey: .truncate)
            try MatchCoding.encode(match, to: encoder)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        if attributes.truncate < -1 { throw ArgumentError("truncate", "truncate must be -1 (keep the whole body) or a byte count ≥ 0") }
        if attributes.body == nil && attributes.truncate == -1 {
            throw ArgumentError("body", "http_body changes nothing", hint: "give body (a replacement), truncate (bytes to keep), or both")
        }
        try attributes.match.validate()
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        var faults: [HTTPFault] = []
        if let body = attributes.body { faults.append(.replaceBody(Array(body.utf8))) }
        if attributes.truncate >= 0 { faults.append(.truncateBody(attributes.truncate)) }
        return faults.count == 1 ? faults[0] : .all(faults)
    }
}

/// Rejects header names a message cannot carry.
private func validateHeaderNames(_ names: some Sequence<String>, key: String) throws {
    for name in names where name.isEmpty || name.contains(where: { $0 == ":" || $0 == " " || $0 == "\r" || $0 == "\n" }) {
        throw ArgumentError(key, "\"\(name)\" is not a header name")
    }
}

/// Rejects header values that would end the field early (a line break).
private func validateHeaderValues(_ values: some Sequence<String>, key: String) throws {
    for value in values where value.contains(where: { $0 == "\r" || $0 == "\n" }) {
        throw ArgumentError(key, "a header value must not contain a line break")
    }
}
