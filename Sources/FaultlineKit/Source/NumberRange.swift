/// The range a number written by a user must fall in, with its unit.
///
/// Every number a user writes — a duration, a port, a count, a rate, a toxicity — has one, checked
/// when the document loads, so that a value `validate` accepts is one `run` can compute with: a
/// timeout of `1e300` seconds is a load error at its file:line:column, never a numeric trap in the
/// middle of a run that skips rollbacks and leaves faults behind. Types declare their ranges with
/// ``NumberRanges``; ``NodeDecoder`` enforces them.
public struct NumberRange: Sendable, Hashable, Codable, CustomStringConvertible {
    public var lowerBound: Double
    public var upperBound: Double
    /// The unit, as messages and the README name it (`seconds`, `milliseconds`, `KB/s`), or empty.
    public var unit: String
    /// Whether only whole numbers are meant (the field decodes an integer type).
    public var integer: Bool

    public init(_ bounds: ClosedRange<Double>, unit: String = "", integer: Bool = false) {
        lowerBound = bounds.lowerBound
        upperBound = bounds.upperBound
        self.unit = unit
        self.integer = integer
    }

    /// Whether `value` is a finite number within the bounds (NaN and infinities never are).
    public func contains(_ value: Double) -> Bool {
        value.isFinite && value >= lowerBound && value <= upperBound
    }

    /// `0…31536000 seconds`.
    public var description: String {
        "\(Self.number(lowerBound))…\(Self.number(upperBound))" + (unit.isEmpty ? "" : " \(unit)")
    }

    /// The complaint about a value outside the range, naming the key.
    public func message(_ key: String, found value: Double) -> String {
        "\(key) must be \(description), found \(Self.number(value))"
    }

    /// Checks a value read outside ``NodeDecoder`` (a command-line flag, a hand-parsed field).
    /// - Throws: ``ArgumentError`` naming `key`.
    public func check(_ value: Double, _ key: String) throws(ArgumentError) {
        guard contains(value) else { throw ArgumentError(key, message(key, found: value)) }
    }

    static func number(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    }

    // MARK: The ranges fields share

    /// The longest duration anyone writes: 365 days. In nanoseconds it is 3.2e16, far from
    /// Int64's 9.2e18, so sums and deadlines computed from such durations cannot overflow.
    public static let maximumSeconds: Double = 31_536_000

    /// A duration in seconds: 0 to 365 days.
    public static let seconds = NumberRange(0...maximumSeconds, unit: "seconds")
    /// A duration in milliseconds: 0 to 365 days.
    public static let milliseconds = NumberRange(0...maximumSeconds * 1000, unit: "milliseconds", integer: true)
    /// A duration in microseconds: 0 to 365 days.
    public static let microseconds = NumberRange(0...maximumSeconds * 1_000_000, unit: "microseconds", integer: true)
    /// A TCP port a user connects to or kills the owner of.
    public static let port = NumberRange(1...65535, unit: "(TCP port)", integer: true)
    /// A TCP port to listen on, where 0 asks the system for a free one.
    public static let listenPort = NumberRange(0...65535, unit: "(TCP port, 0 for any free one)", integer: true)
    /// A probability, such as a toxic's toxicity.
    public static let probability = NumberRange(0...1)
    /// A size in bytes: up to 1 TiB.
    public static let bytes = NumberRange(0...1_099_511_627_776, unit: "bytes", integer: true)
    /// A count of things (retries, processes, iterations), up to `upper`.
    public static func count(_ upper: Double) -> NumberRange { NumberRange(0...upper, integer: true) }
}

/// A `Decodable` type whose numbers have documented ranges, which ``NodeDecoder`` enforces.
///
/// ```swift
/// extension Arguments: NumberRanges {
///     static let numberRanges: [String: NumberRange] = ["timeout": .seconds, "port": .port]
/// }
/// ```
///
/// A key's range applies to every number in its value (`think_time: [1, 2]`, `timeout: {connect:
/// 1, read: 5}`), unless a type decoded inside declares its own. Arguments of providers and
/// attributes of toxics must give every numeric key a range (a test checks the registry), and the
/// ranges are what `faultline plugins` prints and the README lists.
public protocol NumberRanges {
    /// The range of each numeric key, by the key as written.
    static var numberRanges: [String: NumberRange] { get }
}

extension Duration {
    /// `seconds` as a duration, saturating: NaN and negative values are zero, and values beyond
    /// 100 years are 100 years — the one conversion from a user's seconds to a `Duration`, which
    /// cannot trap whatever the number (`Duration.seconds(1e300)` does).
    public static func seconds(saturating seconds: Double) -> Duration {
        .nanoseconds(Int64(nanosecondsIn: seconds))
    }

    /// `milliseconds` as a duration, saturating like ``seconds(saturating:)``.
    public static func milliseconds(saturating milliseconds: Double) -> Duration {
        .nanoseconds(Int64(nanosecondsIn: milliseconds / 1000))
    }

    /// Whole nanoseconds, saturating at Int64's bounds instead of trapping.
    public var saturatingNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflowSum) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflowSum ? (scaled < 0 ? .min : .max) : sum
    }
}

extension Int64 {
    /// Whole nanoseconds in `seconds`, saturating: NaN and negative values are 0, anything beyond
    /// 100 years is 100 years (3.2e18 ns, still clear of Int64's limit when a clock's now is added).
    public init(nanosecondsIn seconds: Double) {
        let limit = 100 * 365 * 86_400.0
        guard seconds > 0 else {  // also NaN
            self = 0
            return
        }
        self = Int64((Swift.min(seconds, limit) * 1e9).rounded())
    }
}

extension Decoder {
    /// Checks numbers that a type reads in its own way (from a ``Value``, say `seconds or [connect,
    /// read]`) against the range its key declares, as a number read from a single-value container
    /// is checked. Under ``NodeDecoder`` a number out of range throws a ``Diagnostic`` at the
    /// value's position; for `faultline plugins` it marks the field as one that reads numbers.
    public func checkRange(_ numbers: [Double]) throws {
        switch self {
        case let decoder as NodeDecoding:
            for number in numbers { try decoder.checkRange(number) }
        case let recorder as SchemaRecorder:
            recorder.readsNumber = true
        default:
            break
        }
    }
}
