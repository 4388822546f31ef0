import FaultlineKit
import Foundation

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

private func rangesWithMatch(_ own: [String: NumberRange]) -> [String: NumberRange] {
    own.merging(HTTPRequestMatch.numberRanges) { mine, _ in mine }
}

/// Envoy's header-controlled faults (`x-envoy-fault-…`): values read from the request.
enum EnvoyFaultHeaders {
    static let abort = "x-envoy-fault-abort-request"
    static let abortGRPC = "x-envoy-fault-abort-grpc-request"
    static let abortPercentage = "x-envoy-fault-abort-request-percentage"
    static let delay = "x-envoy-fault-delay-request"
    static let delayPercentage = "x-envoy-fault-delay-request-percentage"
    static let throughput = "x-envoy-fault-throughput-response"
    static let throughputPercentage = "x-envoy-fault-throughput-response-percentage"

    static func integer(_ request: HTTPToxicRequest, _ name: String) -> Int? {
        request.header(name).flatMap { Int($0) }
    }

    /// The toxicity of a toxic that may take its fault from the request's headers: as configured
    /// when it does not (`fromHeaders` false); when it does, nil (no fault) for a request without
    /// the fault's header, else lowered to the request's percentage header when it has one (Envoy
    /// caps the header's percentage at the configured one).
    static func toxicity(
        _ request: HTTPToxicRequest, fromHeaders: Bool, hasFault: @autoclosure () -> Bool, percentage name: String, configured: Double
    ) -> Double? {
        guard fromHeaders else { return configured }
        guard hasFault() else { return nil }
        guard let percent = integer(request, name), percent >= 0 else { return configured }
        return min(configured, Double(percent) / 100)
    }
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
        "header_abort":
            "Envoy's header-controlled abort: only requests carrying x-envoy-fault-abort-request (status) or x-envoy-fault-abort-grpc-request, at x-envoy-fault-abort-request-percentage (capped by toxicity)",
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges = rangesWithMatch(["status": NumberRange(100...599, unit: "(HTTP status)", integer: true)])
        public var status: Int
        public var body: String
        public var headers: [String: String]
        public var headerAbort: Bool
        public var match: HTTPRequestMatch

        public init(
            status: Int = 503, body: String = "", headers: [String: String] = [:], headerAbort: Bool = false,
            match: HTTPRequestMatch = HTTPRequestMatch()
        ) {
            self.status = status
            self.body = body
            self.headers = headers
            self.headerAbort = headerAbort
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case status, body, headers, headerAbort = "header_abort" }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            status = try c.decodeIfPresent(Int.self, forKey: .status) ?? 503
            body = try c.decodeIfPresent(String.self, forKey: .body) ?? ""
            headers = try c.decodeIfPresent([String: String].self, forKey: .headers) ?? [:]
            headerAbort = try c.decodeIfPresent(HTTPFlag.self, forKey: .headerAbort)?.isOn ?? false
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(status, forKey: .status)
            try c.encode(body, forKey: .body)
            try c.encode(headers, forKey: .headers)
            if headerAbort { try c.encode(true, forKey: .headerAbort) }
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

    public static func toxicity(_ attributes: Attributes, request: HTTPToxicRequest, configured: Double) -> Double? {
        EnvoyFaultHeaders.toxicity(
            request, fromHeaders: attributes.headerAbort, hasFault: headerStatus(request) != nil || headerGRPCStatus(request) != nil,
            percentage: EnvoyFaultHeaders.abortPercentage, configured: configured)
    }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        var headers = attributes.headers.sorted { $0.key < $1.key }.map { HTTPHeaderField(name: $0.key, value: $0.value) }
        var status = attributes.status
        if attributes.headerAbort {
            if let grpc = headerGRPCStatus(request) {
                // Envoy answers a gRPC abort with 200 and the status in grpc-status.
                status = 200
                headers += [
                    HTTPHeaderField(name: "content-type", value: "application/grpc"), HTTPHeaderField(name: "grpc-status", value: String(grpc)),
                ]
            } else if let code = headerStatus(request) {
                status = code
            }
        }
        return .respond(HTTPSyntheticResponse(status: status, headers: headers, body: Array(attributes.body.utf8)))
    }

    /// `x-envoy-fault-abort-request`, when it holds a status Envoy accepts (200…599).
    static func headerStatus(_ request: HTTPToxicRequest) -> Int? {
        EnvoyFaultHeaders.integer(request, EnvoyFaultHeaders.abort).flatMap { (200..<600).contains($0) ? $0 : nil }
    }

    /// `x-envoy-fault-abort-grpc-request`, a gRPC status 0…16.
    static func headerGRPCStatus(_ request: HTTPToxicRequest) -> Int? {
        EnvoyFaultHeaders.integer(request, EnvoyFaultHeaders.abortGRPC).flatMap { (0...16).contains($0) ? $0 : nil }
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
        "header_delay":
            "Envoy's header-controlled delay: only requests carrying x-envoy-fault-delay-request (ms), at x-envoy-fault-delay-request-percentage (capped by toxicity)",
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges = rangesWithMatch(["latency": .milliseconds, "jitter": .milliseconds])
        public var latency: Int
        public var jitter: Int
        public var headerDelay: Bool
        public var match: HTTPRequestMatch

        public init(latency: Int = 0, jitter: Int = 0, headerDelay: Bool = false, match: HTTPRequestMatch = HTTPRequestMatch()) {
            self.latency = latency
            self.jitter = jitter
            self.headerDelay = headerDelay
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case latency, jitter, headerDelay = "header_delay" }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            latency = try c.attribute(.latency)
            jitter = try c.attribute(.jitter)
            headerDelay = try c.decodeIfPresent(HTTPFlag.self, forKey: .headerDelay)?.isOn ?? false
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(latency, forKey: .latency)
            try c.encode(jitter, forKey: .jitter)
            if headerDelay { try c.encode(true, forKey: .headerDelay) }
            try MatchCoding.encode(match, to: encoder)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        try requireNonNegative(attributes.latency, "latency", unit: "milliseconds")
        try requireNonNegative(attributes.jitter, "jitter", unit: "milliseconds")
        try attributes.match.validate()
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func toxicity(_ attributes: Attributes, request: HTTPToxicRequest, configured: Double) -> Double? {
        EnvoyFaultHeaders.toxicity(
            request, fromHeaders: attributes.headerDelay, hasFault: headerLatency(request) != nil, percentage: EnvoyFaultHeaders.delayPercentage,
            configured: configured)
    }

    /// `x-envoy-fault-delay-request`: milliseconds, 0 up to a day.
    static func headerLatency(_ request: HTTPToxicRequest) -> Int? {
        EnvoyFaultHeaders.integer(request, EnvoyFaultHeaders.delay).flatMap { (0...86_400_000).contains($0) ? $0 : nil }
    }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        let latency = attributes.headerDelay ? headerLatency(request) ?? 0 : attributes.latency
        var delay = Int64(latency) * 1_000_000
        if attributes.jitter > 0 {
            let span = UInt64(attributes.jitter) * 2_000_000
            delay += Int64(random.next() % span) - Int64(attributes.jitter) * 1_000_000
        }
        return .delay(nanoseconds: UInt64(max(0, delay)))
    }
}

/// `http_reset`: resets the connection (RST) in the middle of a matching request (upstream) or of
/// its response (downstream), after the head and `body_bytes` bytes of the body. With
/// `forward_head: false` nothing of the message is forwarded (Chaos Mesh's `abort`: the server
/// never sees the request, or the client never sees the response); with `close: true` the
/// connection is closed (FIN) instead of reset.
public struct HTTPResetToxic: HTTPToxic {
    public static let type = "http_reset"
    public static let summary = "Reset the connection mid-request (upstream) or mid-response (downstream) for matching requests"
    public static let attributeHelp = helpWithMatch([
        "body_bytes": "bytes of the body (as sent, chunk framing included) forwarded before the reset; 0 resets right after the head",
        "forward_head": "false: forward nothing of the message (the server never sees the request; the client never sees the response)",
        "close": "true: close the connection (FIN, curl: empty reply) instead of resetting it (RST)",
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges = rangesWithMatch(["body_bytes": .bytes])
        public var bodyBytes: Int
        public var forwardHead: Bool
        public var close: Bool
        public var match: HTTPRequestMatch

        public init(bodyBytes: Int = 0, forwardHead: Bool = true, close: Bool = false, match: HTTPRequestMatch = HTTPRequestMatch()) {
            self.bodyBytes = bodyBytes
            self.forwardHead = forwardHead
            self.close = close
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case bodyBytes = "body_bytes", forwardHead = "forward_head", close }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            bodyBytes = try c.attribute(.bodyBytes)
            forwardHead = try c.decodeIfPresent(Bool.self, forKey: .forwardHead) ?? true
            close = try c.decodeIfPresent(Bool.self, forKey: .close) ?? false
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(bodyBytes, forKey: .bodyBytes)
            if !forwardHead { try c.encode(false, forKey: .forwardHead) }
            if close { try c.encode(true, forKey: .close) }
            try MatchCoding.encode(match, to: encoder)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        try requireNonNegative(attributes.bodyBytes, "body_bytes", unit: "bytes")
        if !attributes.forwardHead && attributes.bodyBytes > 0 {
            throw ArgumentError("body_bytes", "body_bytes forwards part of a body, but forward_head: false forwards nothing", hint: "leave one out")
        }
        try attributes.match.validate()
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        if !attributes.forwardHead { return .drop(reset: !attributes.close) }
        return attributes.close ? .truncateBody(attributes.bodyBytes) : .reset(afterBodyBytes: attributes.bodyBytes)
    }
}

/// `http_headers`: sets, adds or removes header fields of matching requests (upstream) or of
/// their responses (downstream).
public struct HTTPHeadersToxic: HTTPToxic {
    public static let type = "http_headers"
    public static let summary = "Set, add or remove headers of matching HTTP requests (upstream) or responses (downstream)"
    public static let attributeHelp = helpWithMatch([
        "set": "headers to set, name: value (replacing every field of that name)",
        "add": "headers to add (keeping existing ones): name: value, or a list of [name, value] to repeat a name",
        "remove": "header names to remove",
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges = rangesWithMatch([:])
        public var set: [String: String]
        public var add: HTTPFieldList
        public var remove: [String]
        public var match: HTTPRequestMatch

        public init(
            set: [String: String] = [:], add: HTTPFieldList = HTTPFieldList(), remove: [String] = [], match: HTTPRequestMatch = HTTPRequestMatch()
        ) {
            self.set = set
            self.add = add
            self.remove = remove
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case set, add, remove }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            set = try c.decodeIfPresent([String: String].self, forKey: .set) ?? [:]
            add = try c.decodeIfPresent(HTTPFieldList.self, forKey: .add) ?? HTTPFieldList()
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
        try validateHeaderNames(attributes.add.pairs.map(\.name), key: "add")
        try validateHeaderValues(attributes.set.values, key: "set")
        try validateHeaderValues(attributes.add.pairs.map(\.value), key: "add")
        try validateHeaderNames(attributes.remove, key: "remove")
        try attributes.match.validate()
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        // Removals first, then sets in name order, then adds in the order written, so the result
        // does not depend on how an object's keys were ordered.
        var edits = attributes.remove.map { HTTPHeaderEdit.remove(name: $0) }
        edits += attributes.set.sorted { $0.key < $1.key }.map { HTTPHeaderEdit.set(name: $0.key, value: $0.value) }
        edits += attributes.add.pairs.map { HTTPHeaderEdit.add(name: $0.name, value: $0.value) }
        return .editHeaders(edits)
    }
}

/// `http_body`: replaces the body of matching requests (upstream) or of their responses
/// (downstream), merges a JSON patch into it, or truncates it (the head still announces the full
/// length, and the connection closes after the cut).
public struct HTTPBodyToxic: HTTPToxic {
    public static let type = "http_body"
    public static let summary = "Replace, JSON-merge-patch or truncate the body of matching HTTP requests (upstream) or responses (downstream)"
    public static let attributeHelp = helpWithMatch([
        "body": "the new body (Content-Length adjusted); absent keeps the original",
        "body_base64": "the new body in base64 (as Chaos Mesh's replace.body), instead of body",
        "merge_patch":
            "a JSON object (or its text) merged into a JSON body, RFC 7396 (Chaos Mesh's patch.body, type JSON); a body that is not JSON passes unchanged",
        "truncate": "bytes of the body (as sent) to keep before closing the connection; -1 keeps all (default)",
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges = rangesWithMatch(["truncate": NumberRange(-1...1_099_511_627_776, unit: "bytes", integer: true)])
        public var body: String?
        public var bodyBase64: String?
        public var mergePatch: Value?
        public var truncate: Int
        public var match: HTTPRequestMatch

        public init(
            body: String? = nil, bodyBase64: String? = nil, mergePatch: Value? = nil, truncate: Int = -1, match: HTTPRequestMatch = HTTPRequestMatch()
        ) {
            self.body = body
            self.bodyBase64 = bodyBase64
            self.mergePatch = mergePatch
            self.truncate = truncate
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case body, bodyBase64 = "body_base64", mergePatch = "merge_patch", truncate }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            body = try c.decodeIfPresent(String.self, forKey: .body)
            bodyBase64 = try c.decodeIfPresent(String.self, forKey: .bodyBase64)
            mergePatch = try c.decodeIfPresent(Value.self, forKey: .mergePatch).flatMap { $0.isNull ? nil : $0 }
            truncate = try c.decodeIfPresent(Int.self, forKey: .truncate) ?? -1
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(body, forKey: .body)
            try c.encodeIfPresent(bodyBase64, forKey: .bodyBase64)
            try c.encodeIfPresent(mergePatch, forKey: .mergePatch)
            try c.encode(truncate, forKey: .truncate)
            try MatchCoding.encode(match, to: encoder)
        }

        /// The replacement body's bytes, from `body` or `body_base64`.
        var replacement: [UInt8]? {
            if let body { return Array(body.utf8) }
            return bodyBase64.flatMap { Data(base64Encoded: $0, options: .ignoreUnknownCharacters) }.map { [UInt8]($0) }
        }

        /// The merge patch as a value (a string is read as JSON text).
        var patch: Value? {
            guard let mergePatch else { return nil }
            if case .string(let text) = mergePatch { return try? JSONReader.value(text) }
            return mergePatch
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        if attributes.truncate < -1 { throw ArgumentError("truncate", "truncate must be -1 (keep the whole body) or a byte count ≥ 0") }
        if attributes.body != nil && attributes.bodyBase64 != nil {
            throw ArgumentError("body_base64", "body and body_base64 both replace the body", hint: "give one of them")
        }
        if attributes.bodyBase64 != nil && attributes.replacement == nil {
            throw ArgumentError("body_base64", "body_base64 is not valid base64")
        }
        if attributes.mergePatch != nil {
            guard attributes.patch != nil else {
                throw ArgumentError("merge_patch", "merge_patch is not JSON", hint: "write an object, e.g. {foo: bar}, or its JSON text")
            }
            if attributes.replacement != nil {
                throw ArgumentError("merge_patch", "merge_patch patches the body that body replaces", hint: "give one of them")
            }
        }
        if attributes.replacement == nil && attributes.mergePatch == nil && attributes.truncate == -1 {
            throw ArgumentError(
                "body", "http_body changes nothing", hint: "give body (a replacement), merge_patch (JSON to merge), truncate (bytes to keep), or both"
            )
        }
        try attributes.match.validate()
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        var faults: [HTTPFault] = []
        if let body = attributes.replacement { faults.append(.replaceBody(body)) }
        if let patch = attributes.patch { faults.append(.mergeJSON(patch)) }
        if attributes.truncate >= 0 { faults.append(.truncateBody(attributes.truncate)) }
        return faults.count == 1 ? faults[0] : .all(faults)
    }
}

/// `http_rewrite`: changes the request line of matching requests (upstream: method, path, query
/// parameters), or only the status code of their responses (downstream), keeping the rest.
public struct HTTPRewriteToxic: HTTPToxic {
    public static let type = "http_rewrite"
    public static let summary = "Rewrite the method, path or query of matching HTTP requests (upstream) or the status of their responses (downstream)"
    public static let attributeHelp = helpWithMatch([
        "set_method": "upstream: the new method (e.g. DELETE)",
        "set_path": "upstream: the new path (the query is kept)",
        "set_query": "upstream: query parameters to set, name: value (replacing those of that name, else appended)",
        "add_query": "upstream: query parameters to append: name: value, or a list of [name, value]",
        "remove_query": "upstream: query parameter names to remove",
        "set_status": "downstream: the new status code, keeping the response's headers and body",
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges = rangesWithMatch(["set_status": NumberRange(100...599, unit: "(HTTP status)", integer: true)])
        public var setMethod: String?
        public var setPath: String?
        public var setQuery: [String: String]
        public var addQuery: HTTPFieldList
        public var removeQuery: [String]
        public var setStatus: Int?
        public var match: HTTPRequestMatch

        public init(
            setMethod: String? = nil, setPath: String? = nil, setQuery: [String: String] = [:], addQuery: HTTPFieldList = HTTPFieldList(),
            removeQuery: [String] = [], setStatus: Int? = nil, match: HTTPRequestMatch = HTTPRequestMatch()
        ) {
            self.setMethod = setMethod
            self.setPath = setPath
            self.setQuery = setQuery
            self.addQuery = addQuery
            self.removeQuery = removeQuery
            self.setStatus = setStatus
            self.match = match
        }

        enum CodingKeys: String, CodingKey {
            case setMethod = "set_method", setPath = "set_path", setQuery = "set_query", addQuery = "add_query", removeQuery = "remove_query"
            case setStatus = "set_status"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            setMethod = try c.decodeIfPresent(String.self, forKey: .setMethod)
            setPath = try c.decodeIfPresent(String.self, forKey: .setPath)
            setQuery = try c.decodeIfPresent([String: String].self, forKey: .setQuery) ?? [:]
            addQuery = try c.decodeIfPresent(HTTPFieldList.self, forKey: .addQuery) ?? HTTPFieldList()
            removeQuery = try c.decodeIfPresent([String].self, forKey: .removeQuery) ?? []
            setStatus = try c.decodeIfPresent(Int.self, forKey: .setStatus)
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(setMethod, forKey: .setMethod)
            try c.encodeIfPresent(setPath, forKey: .setPath)
            if !setQuery.isEmpty { try c.encode(setQuery, forKey: .setQuery) }
            if !addQuery.isEmpty { try c.encode(addQuery, forKey: .addQuery) }
            if !removeQuery.isEmpty { try c.encode(removeQuery, forKey: .removeQuery) }
            try c.encodeIfPresent(setStatus, forKey: .setStatus)
            try MatchCoding.encode(match, to: encoder)
        }

        var changesRequest: Bool { setMethod != nil || setPath != nil || !setQuery.isEmpty || !addQuery.isEmpty || !removeQuery.isEmpty }
    }

    public static func validate(_ attributes: Attributes) throws {
        if !attributes.changesRequest && attributes.setStatus == nil {
            throw ArgumentError(
                "set_status", "http_rewrite changes nothing",
                hint: "give set_method, set_path, set_query, add_query or remove_query (upstream), or set_status (downstream)")
        }
        if let method = attributes.setMethod, method.isEmpty || !method.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) {
            throw ArgumentError("set_method", "\"\(method)\" is not an HTTP method", hint: "e.g. DELETE")
        }
        if let path = attributes.setPath, !path.hasPrefix("/") || path.contains(where: { $0 == " " || $0 == "?" || $0 == "\r" || $0 == "\n" }) {
            throw ArgumentError(
                "set_path", "set_path must start with / and hold no space or ? (found \"\(path)\")", hint: "set query parameters with set_query")
        }
        if let status = attributes.setStatus, status < 200 || status == 204 || status == 304 {
            throw ArgumentError(
                "set_status", "set_status \(status) would leave the response's body unread by the client",
                hint: "a status of 200…599 other than 204 and 304; answer 204 or 304 with http_abort")
        }
        try attributes.match.validate()
    }

    public static func streamProblem(_ attributes: Attributes, stream: ToxicStream) -> String? {
        if let problem = attributes.match.streamProblem(stream) { return problem }
        if stream == .upstream, attributes.setStatus != nil {
            return "set_status changes the response, which an upstream toxic acts before (use stream: downstream)"
        }
        if stream == .downstream, attributes.changesRequest {
            return "set_method, set_path and the query change the request, which a downstream toxic acts after (use stream: upstream)"
        }
        return nil
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        if let status = attributes.setStatus { return .setStatus(status) }
        var edits: [HTTPRequestEdit] = []
        if let method = attributes.setMethod { edits.append(.setMethod(method)) }
        if let path = attributes.setPath { edits.append(.setPath(path)) }
        edits += attributes.removeQuery.map { .removeQuery(name: $0) }
        edits += attributes.setQuery.sorted { $0.key < $1.key }.map { .setQuery(name: $0.key, value: $0.value) }
        edits += attributes.addQuery.pairs.map { .addQuery(name: $0.name, value: $0.value) }
        return .editRequest(edits)
    }
}

/// `http_bandwidth`: sends the bodies of the responses to matching requests at `rate` KB/s (the
/// head goes at once), as Envoy's `response_rate_limit`. Downstream only.
public struct HTTPBandwidthToxic: HTTPToxic {
    public static let type = "http_bandwidth"
    public static let summary = "Limit the body of responses to matching HTTP requests to rate KB/s (downstream)"
    public static let streams: [ToxicStream] = [.downstream]
    public static let attributeHelp = helpWithMatch([
        "rate": "kilobytes per second (1 KB = 1000 bytes) for each response body",
        "header_limit":
            "Envoy's header-controlled limit: only requests carrying x-envoy-fault-throughput-response (KiB/s), at x-envoy-fault-throughput-response-percentage (capped by toxicity)",
    ])

    public struct Attributes: Codable, Sendable, Equatable, NumberRanges {
        public static let numberRanges = rangesWithMatch(["rate": NumberRange(0...1_000_000_000, unit: "KB/s", integer: true)])
        public var rate: Int
        public var headerLimit: Bool
        public var match: HTTPRequestMatch

        public init(rate: Int = 0, headerLimit: Bool = false, match: HTTPRequestMatch = HTTPRequestMatch()) {
            self.rate = rate
            self.headerLimit = headerLimit
            self.match = match
        }

        enum CodingKeys: String, CodingKey { case rate, headerLimit = "header_limit" }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            rate = try c.attribute(.rate)
            headerLimit = try c.decodeIfPresent(HTTPFlag.self, forKey: .headerLimit)?.isOn ?? false
            match = try MatchCoding.decode(decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(rate, forKey: .rate)
            if headerLimit { try c.encode(true, forKey: .headerLimit) }
            try MatchCoding.encode(match, to: encoder)
        }
    }

    public static func validate(_ attributes: Attributes) throws {
        if attributes.rate <= 0 && !attributes.headerLimit {
            throw ArgumentError(
                "rate", "rate must be more than 0 KB/s (found \(attributes.rate))", hint: "or header_limit: true to take it from the request")
        }
        try attributes.match.validate()
    }

    public static func match(_ attributes: Attributes) -> HTTPRequestMatch { attributes.match }

    public static func toxicity(_ attributes: Attributes, request: HTTPToxicRequest, configured: Double) -> Double? {
        EnvoyFaultHeaders.toxicity(
            request, fromHeaders: attributes.headerLimit, hasFault: headerRate(request) != nil,
            percentage: EnvoyFaultHeaders.throughputPercentage, configured: configured)
    }

    /// `x-envoy-fault-throughput-response` in KiB/s, more than 0.
    static func headerRate(_ request: HTTPToxicRequest) -> Int? {
        EnvoyFaultHeaders.integer(request, EnvoyFaultHeaders.throughput).flatMap { $0 > 0 && $0 <= 1_000_000_000 ? $0 : nil }
    }

    public static func fault(_ attributes: Attributes, request: HTTPToxicRequest, random: inout SeededRandom) -> HTTPFault {
        if attributes.headerLimit, let kibibytes = headerRate(request) { return .throttleBody(bytesPerSecond: UInt64(kibibytes) * 1024) }
        return .throttleBody(bytesPerSecond: UInt64(max(1, attributes.rate)) * 1000)
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
