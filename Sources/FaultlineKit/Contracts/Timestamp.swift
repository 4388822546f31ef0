import Foundation

/// A moment as journals write it: RFC 3339 in UTC with microseconds
/// (`2026-01-01T09:30:00.250000+00:00`), as Chaos Toolkit's journal writes its times.
///
/// It encodes as that string. A timestamp read from a journal keeps the text as written, so a
/// journal read and written again says the same; ``date`` is the moment it names.
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// The RFC 3339 text.
    public let text: String

    /// The moment `date`, in UTC with microseconds.
    public init(_ date: Date) {
        let seconds = date.timeIntervalSince1970
        var whole = floor(seconds)
        var micros = Int(((seconds - whole) * 1_000_000).rounded())
        if micros >= 1_000_000 {
            whole += 1
            micros -= 1_000_000
        }
        var t = time_t(whole)
        var parts = tm()
        gmtime_r(&t, &parts)
        text = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), micros)
    }

    /// A timestamp as written, unchecked (``date`` is nil when it is not RFC 3339).
    public init(text: String) { self.text = text }

    /// Now.
    public static func now() -> Timestamp { Timestamp(Date()) }

    /// The moment the text names: RFC 3339 with or without fractions, with an offset or `Z`; nil
    /// for other text. Fractions are read to the millisecond, as Foundation's ISO 8601 parser reads them.
    public var date: Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    public var description: String { text }

    /// Earlier first; text that names no moment sorts before every moment, then by text.
    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        switch (a.date, b.date) {
        case (let x?, let y?): x < y
        case (nil, _?): true
        case (_?, nil): false
        case (nil, nil): a.text < b.text
        }
    }

    public init(from decoder: any Decoder) throws {
        text = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}
