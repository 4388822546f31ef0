import Foundation
import Logging

/// Replaces secret values with `***` wherever they appear: journals, logs, console and reports.
///
/// Matching is by value, so a secret stays hidden after it was substituted into a URL, a header or
/// a command line, and in its percent-encoded and JSON-escaped forms.
public struct Redactor: Sendable {
    public static let mask = "***"
    /// Secrets of four characters or more, masked wherever they occur inside text.
    public private(set) var needles: [String] = []
    /// Shorter secrets, masked only where a whole string equals them: masking every "42" inside
    /// other text would make journals unreadable and still reveal nothing about the secret.
    public private(set) var exact: Set<String> = []

    public init(secrets: [String: [String: Value]] = [:]) { add(secrets: secrets) }

    /// Adds the values of secret scopes (`scope → key → value`), every string and number inside.
    public mutating func add(secrets: [String: [String: Value]]) {
        var values: [String] = []
        func collect(_ value: Value) {
            switch value {
            case .string(let s): values.append(s)
            case .int(let i): values.append(String(i))
            case .double(let d): values.append("\(d)")
            case .array(let a): a.forEach(collect)
            case .object(let o): o.forEach { collect($0.value) }
            default: break
            }
        }
        for scope in secrets.values { scope.values.forEach(collect) }
        add(values)
    }

    /// Adds more secret values.
    public mutating func add(_ values: [String]) {
        var set = Set(needles)
        for value in values where !value.isEmpty && value.count < 4 { exact.insert(value) }
        for value in values where value.count >= 4 {
            set.insert(value)
            if let encoded = value.addingPercentEncoding(withAllowedCharacters: .alphanumerics), encoded != value { set.insert(encoded) }
            var escaped = ""
            JSONWriter.writeString(value, into: &escaped)
            escaped = String(escaped.dropFirst().dropLast())
            if escaped != value { set.insert(escaped) }
        }
        // Longest first, so that a secret containing another is masked whole.
        needles = set.sorted { $0.count != $1.count ? $0.count > $1.count : $0 < $1 }
    }

    public var isEmpty: Bool { needles.isEmpty && exact.isEmpty }

    public func redact(_ text: String) -> String {
        if exact.contains(text) { return Self.mask }
        guard !needles.isEmpty else { return text }
        var result = text
        for needle in needles where result.contains(needle) {
            result = result.replacingOccurrences(of: needle, with: Self.mask)
        }
        return result
    }

    public func redact(_ value: Value) -> Value {
        guard !isEmpty else { return value }
        switch value {
        case .string(let s): return .string(redact(s))
        case .int(let i): return needles.contains(String(i)) || exact.contains(String(i)) ? .string(Self.mask) : value
        case .array(let a): return .array(a.map(redact))
        case .object(let o):
            var result = ValueObject()
            for (key, member) in o { result[redact(key)] = redact(member) }
            return .object(result)
        default: return value
        }
    }
}

/// A log handler that masks secrets in every line before passing it on: the engine gives each
/// activity a logger wrapped in one, holding the experiment's secrets and the shared ones, so a
/// provider's log lines are redacted whatever handler the process bootstrapped.
public struct RedactingLogHandler: LogHandler {
    private var wrapped: any LogHandler
    private let redactor: Redactor

    /// - Parameters:
    ///   - wrapped: the handler that writes the lines.
    ///   - redactor: the secrets to mask.
    public init(wrapping wrapped: any LogHandler, redactor: Redactor) {
        self.wrapped = wrapped
        self.redactor = redactor
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue.mapValues(redact) }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { wrapped.metadataProvider }
        set { wrapped.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue.map(redact) }
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = Logger.Message(stringLiteral: redactor.redact(event.message.description))
        event.metadata = event.metadata?.mapValues(redact)
        wrapped.log(event: event)
    }

    private func redact(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): .string(redactor.redact(text))
        case .stringConvertible(let convertible): .string(redactor.redact(convertible.description))
        case .array(let values): .array(values.map(redact))
        case .dictionary(let values): .dictionary(values.mapValues(redact))
        }
    }
}

extension Logger {
    /// This logger with secrets masked in every line it writes (``RedactingLogHandler``).
    public func redacting(_ redactor: Redactor) -> Logger {
        guard !redactor.isEmpty else { return self }
        var logger = self
        logger.handler = RedactingLogHandler(wrapping: handler, redactor: redactor)
        return logger
    }
}
