import FaultlineKit
import Foundation

/// Number, time and duration formatting shared by every format. Locale-independent, so that the
/// same journal gives the same bytes on every machine.
enum Format {
    /// Milliseconds for people: `0.42 ms`, `3.1 ms`, `182 ms`, `1.25 s`.
    static func ms(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        if value == 0 { return "0 ms" }
        if value >= 1000 { return String(format: "%.2f s", value / 1000) }
        if value >= 100 { return String(format: "%.0f ms", value) }
        if value >= 10 { return String(format: "%.1f ms", value) }
        return String(format: "%.2f ms", value)
    }

    /// A 0...1 rate as a percentage: `0%`, `0.38%`, `12.5%`, `100%`.
    static func percent(_ rate: Double) -> String {
        guard rate.isFinite else { return "—" }
        let value = rate * 100
        if value == 0 { return "0%" }
        if value == 100 { return "100%" }
        if value < 10 { return String(format: "%.2f%%", value) }
        return String(format: "%.1f%%", value)
    }

    /// An integer with thousands separators: `12,345`.
    static func integer(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
            out.append(character)
        }
        return value < 0 ? "-" + out : out
    }

    /// Requests per second: `98.4/s`.
    static func rate(_ perSecond: Double) -> String {
        guard perSecond.isFinite else { return "—" }
        return perSecond >= 100 ? String(format: "%.0f/s", perSecond) : String(format: "%.1f/s", perSecond)
    }

    /// Bytes: `950 B`, `12.3 KB`, `4.5 MB` (powers of 1000, as network tools print them).
    static func bytes(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        if value < 1000 { return String(format: "%.0f B", value) }
        if value < 1_000_000 { return String(format: "%.1f KB", value / 1000) }
        if value < 1_000_000_000 { return String(format: "%.1f MB", value / 1_000_000) }
        return String(format: "%.2f GB", value / 1_000_000_000)
    }

    /// A duration for people (`850 ms`, `4.2 s`, `2 min 5 s`); below a millisecond, `0.4 ms` or `<0.1 ms`.
    static func duration(_ seconds: Double) -> String {
        if seconds > 0 && seconds < 0.000_05 { return "<0.1 ms" }
        if seconds > 0 && seconds < 0.001 { return String(format: "%.1f ms", seconds * 1000) }
        return DurationFormat.seconds(seconds)
    }

    /// Seconds since the experiment started: `+0.000 s`, `+12.345 s`.
    /// A ramping load's stages: `stages 30 s → 200, 10 s → 0`; nil without stages.
    static func stages(_ result: LoadResult) -> String? {
        guard !result.stages.isEmpty else { return nil }
        return "stages " + result.stages.map { "\(duration($0.durationSeconds)) → \(number($0.target))" }.joined(separator: ", ")
    }

    /// Which share of a sharded load an output is, or how many shards it merges:
    /// `shard 1/3: 33 users`, `3 shards merged`; nil for an unsharded load.
    static func shard(_ result: LoadResult) -> String? {
        if let merged = result.mergedShards { return "\(merged) shard\(merged == 1 ? "" : "s") merged" }
        guard let shard = result.shard else { return nil }
        let share =
            result.model == .open
            ? "\(shard.arrivals.map { "\(integer($0)) iterations, " } ?? "")at most \(shard.users) connections"
            : "\(shard.users) user\(shard.users == 1 ? "" : "s")"
        return "shard \(shard.index)/\(shard.count): \(share)"
    }

    static func offset(_ seconds: Double) -> String {
        String(format: "+%.3f s", max(0, seconds))
    }

    /// A load metric's value by the metric's name: `p95_ms` in ms, `error_rate` as a percentage,
    /// `rps` per second, `count` as an integer.
    static func metric(_ name: String, _ value: Double) -> String {
        if name.hasSuffix("_ms") || ["avg", "min", "max", "med"].contains(name) || name.hasPrefix("p(") { return ms(value) }
        if name.hasSuffix("rate") { return percent(value) }
        if name == "rps" || name.hasSuffix("_per_s") { return rate(value) }
        if name.hasPrefix("bytes") { return bytes(value) }
        if ["count", "ok", "failed", "dropped"].contains(name) { return integer(Int(value.rounded())) }
        return number(value)
    }

    /// A plain number: `3`, `2.5`, `0.125`.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        if value.rounded() == value && abs(value) < 1e15 { return String(Int(value)) }
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    /// `2026-11-23 08:23:10 UTC`.
    static func dateTime(_ date: Date) -> String {
        let parts = utc(date)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d UTC", parts.year, parts.month, parts.day, parts.hour, parts.minute, parts.second)
    }

    /// `08:23:10 UTC`, or the full date and time when the day differs from `reference`'s.
    static func time(_ date: Date, sameDayAs reference: Date?) -> String {
        let parts = utc(date)
        if let reference, utc(reference).day != parts.day || utc(reference).month != parts.month { return dateTime(date) }
        return String(format: "%02d:%02d:%02d UTC", parts.hour, parts.minute, parts.second)
    }

    /// The timestamp JUnit expects: `2026-11-23T08:23:10` (UTC, no zone).
    static func junitTimestamp(_ date: Date) -> String {
        let parts = utc(date)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d", parts.year, parts.month, parts.day, parts.hour, parts.minute, parts.second)
    }

    private static func utc(_ date: Date) -> (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        var time = time_t(floor(date.timeIntervalSince1970))
        var parts = tm()
        gmtime_r(&time, &parts)
        return (Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    /// Shortens text to `limit` characters with an ellipsis.
    static func truncate(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(max(1, limit - 1))) + "…"
    }

    /// Compact one-line JSON of a value, shortened.
    static func compact(_ value: Value, limit: Int = 80) -> String {
        truncate(JSONWriter.string(value, pretty: false), limit)
    }
}
