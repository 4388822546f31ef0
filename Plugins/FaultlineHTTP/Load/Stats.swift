import NIOCore

enum Stats {
    /// Milliseconds with microsecond precision, as the outputs show durations.
    static func milliseconds(_ amount: TimeAmount) -> Double { (Double(amount.nanoseconds) / 1000).rounded() / 1000 }
}
