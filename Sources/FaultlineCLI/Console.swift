import FaultlineKit
import Foundation
import Logging
import Synchronization

/// Writes to the terminal: colour and in-place progress on a TTY, plain lines when piped.
final class Terminal: Sendable {
    static let shared = Terminal()

    let isInteractive: Bool
    let colors: Bool
    private let lock = Mutex(())

    private init() {
        isInteractive = isatty(STDOUT_FILENO) == 1
        let environment = ProcessInfo.processInfo.environment
        colors = isInteractive && environment["NO_COLOR"] == nil && environment["TERM"] != "dumb"
    }

    func write(_ text: String) {
        lock.withLock { _ in
            // Output nobody reads any more (`| head`) is dropped; the run goes on to its teardown.
            try? FileHandle.standardOutput.write(contentsOf: Data(text.utf8))
        }
    }

    func error(_ text: String) {
        lock.withLock { _ in
            try? FileHandle.standardError.write(contentsOf: Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
        }
    }

    enum Style: String {
        case red = "31", green = "32", yellow = "33", blue = "34", magenta = "35", cyan = "36", dim = "2", bold = "1"
    }

    func paint(_ text: String, _ style: Style) -> String {
        colors ? "\u{1B}[\(style.rawValue)m\(text)\u{1B}[0m" : text
    }
}

/// Log level and secret redaction for everything swift-log prints.
enum LogSettings {
    private static let state = Mutex<(level: Logger.Level, redactor: Redactor)>((.warning, Redactor()))

    static var level: Logger.Level {
        get { state.withLock { $0.level } }
        set { state.withLock { $0.level = newValue } }
    }

    static var redactor: Redactor {
        get { state.withLock { $0.redactor } }
        set { state.withLock { $0.redactor = newValue } }
    }
}

/// Prints log messages to stderr, with secrets masked.
struct ConsoleLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level {
        get { LogSettings.level }
        set {}
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        guard event.level >= LogSettings.level else { return }
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let context = merged["activity"].map { "[\($0)] " } ?? ""
        let rest = merged.filter { $0.key != "activity" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let text = "\(event.level): \(context)\(event.message)\(rest.isEmpty ? "" : " " + rest)"
        Terminal.shared.error(LogSettings.redactor.redact(text))
    }
}

/// Shows a run as it happens.
final class ConsoleObserver: RunObserver, Sendable {
    enum Verbosity { case quiet, normal, verbose }

    private let terminal = Terminal.shared
    private let verbosity: Verbosity
    private let state = Mutex<(pending: String?, pendingKey: String?)>((nil, nil))

    init(verbosity: Verbosity) { self.verbosity = verbosity }

    private func line(_ text: String) {
        state.withLock { s in
            if s.pending != nil {
                terminal.write("\n")
                s.pending = nil
                s.pendingKey = nil
            }
            terminal.write(text + "\n")
        }
    }

    func handle(_ event: RunEvent) {
        guard verbosity != .quiet else {
            if case .warning(let message) = event { terminal.error("warning: \(message)") }
            if case .activityFinished(let result) = event, let load = LoadSummary.result(providerType: result.providerType, output: result.output) {
                let lines = LoadSummary.lines(load, name: result.name, indent: "", onlyFailures: true, terminal: terminal)
                if !lines.isEmpty { terminal.write(lines.joined(separator: "\n") + "\n") }
            }
            return
        }
        let t = terminal
        switch event {
        case .suiteStarted(let name, let profile, let count):
            var text = t.paint("faultline \(Engine.version)", .bold) + " · \(name)"
            if let profile { text += " · profile \(t.paint(profile, .cyan))" }
            text += " · \(count) experiment\(count == 1 ? "" : "s")"
            line(text)
        case .setupStep(let step):
            line(t.paint("  · \(step)", .dim))
        case .experimentStarted(let title, let origin, let index, let total):
            line("")
            line(t.paint("▶ [\(index)/\(total)] \(title)", .bold) + t.paint("  \(origin)", .dim))
        case .phaseStarted(let phase):
            line("  " + t.paint(phase.rawValue, .blue))
        case .activityStarted(let name, let kind, _, let background):
            let text =
                "    \(t.paint("…", .dim)) \(kind.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)) \(name)\(background ? t.paint(" (background)", .dim) : "")"
            if t.isInteractive && !background {
                state.withLock { s in
                    if s.pending != nil { terminal.write("\n") }
                    terminal.write(text)
                    s.pending = text
                    s.pendingKey = name
                }
            } else {
                line(text)
            }
        case .activityFinished(let result):
            let mark: String
            switch result.status {
            case .succeeded where result.toleranceMet == false: mark = t.paint("✗", .red)
            case .succeeded: mark = t.paint("✓", .green)
            case .failed: mark = t.paint("✗", .red)
            case .interrupted: mark = t.paint("⚠", .yellow)
            case .skipped: mark = t.paint("○", .dim)
            }
            var text = "    \(mark) \(result.kind.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0)) \(result.name)"
            text += "  " + t.paint(result.status == .skipped ? "skipped" : DurationFormat.seconds(result.duration), .dim)
            if let message = result.message, result.status != .succeeded || result.toleranceMet == false {
                text += "  " + t.paint(message, result.status == .failed || result.toleranceMet == false ? .red : .yellow)
            }
            state.withLock { s in
                if t.isInteractive, s.pendingKey == result.name {
                    terminal.write("\r\u{1B}[2K" + text + "\n")
                } else {
                    if s.pending != nil { terminal.write("\n") }
                    terminal.write(text + "\n")
                }
                s.pending = nil
                s.pendingKey = nil
            }
            if let load = LoadSummary.result(providerType: result.providerType, output: result.output) {
                line(LoadSummary.lines(load, name: result.name, indent: "      ", onlyFailures: false, terminal: t).joined(separator: "\n"))
            }
        case .pausing(let activity, let seconds, let before):
            if verbosity == .verbose || seconds >= 1 {
                line(t.paint("    ⏸ pause \(DurationFormat.seconds(seconds)) \(before ? "before" : "after") \(activity)", .dim))
            }
        case .cleanupFinished(let record):
            let mark = record.status == .succeeded ? t.paint("✓", .green) : t.paint("✗", .red)
            line("    \(mark) \(record.description)" + (record.error.map { "  " + t.paint($0, .red) } ?? ""))
        case .interrupted(let signal, let count):
            line(
                t.paint(
                    count == 1
                        ? "⚠ \(signal): stopping the method, then rolling back (send again to abort the rollbacks)"
                        : "⚠ \(signal) again: aborting the rollbacks; still removing the faults Faultline injected (send a third time to exit at once)",
                    .yellow))
        case .experimentFinished(let journal):
            let verdict = Self.describe(journal, t)
            var text = "  ⇒ \(verdict) " + t.paint("(\(DurationFormat.seconds(journal.duration ?? 0)))", .dim)
            if let reason = journal.reason { text += " — \(reason)" }
            line(text)
        case .warning(let message):
            line(t.paint("warning: \(message)", .yellow))
        case .faultStarted, .faultEnded:
            // The actions that inject and remove a fault print their own lines.
            break
        }
    }

    /// The outcome, with the documented one when the suite gave it: `deviated (as expected)`.
    static func describe(_ journal: Journal, _ t: Terminal) -> String {
        guard let expected = journal.expected else { return paintOutcome(journal.outcome, t) }
        let text = journal.outcome.rawValue + (journal.isUnexpected ? " (expected \(expected.rawValue))" : " (as expected)")
        return journal.verdict == .completed ? t.paint(text, .green) : t.paint(text, .red)
    }

    static func paintOutcome(_ outcome: Outcome, _ t: Terminal) -> String {
        switch outcome {
        case .completed: t.paint(outcome.rawValue, .green)
        case .deviated, .failed, .aborted: t.paint(outcome.rawValue, .red)
        case .interrupted, .running: t.paint(outcome.rawValue, .yellow)
        }
    }
}

/// The table at the end of a run: experiment, status, duration, deviated probes.
enum SummaryTable {
    static func render(_ journals: [Journal], terminal t: Terminal) -> String {
        let header = ["experiment", "status", "duration", "deviated probes"]
        var rows: [[String]] = []
        var outcomes: [Outcome] = []
        for journal in journals {
            var deviated: [String] = []
            for record in (journal.steadyStates.after?.probes ?? []) + journal.steadyStates.during.flatMap(\.probes)
            where record.toleranceMet == false || record.status == .failed {
                if !deviated.contains(record.name) { deviated.append(record.name) }
            }
            // A method probe whose tolerance missed deviates the experiment too (a load's thresholds).
            for record in journal.run where record.kind == "probe" && record.toleranceMet == false {
                if !deviated.contains(record.name) { deviated.append(record.name) }
            }
            if journal.outcome == .failed {
                for record in journal.steadyStates.before?.probes ?? [] where record.toleranceMet == false || record.status == .failed {
                    if !deviated.contains(record.name) { deviated.append(record.name + " (before)") }
                }
            }
            var status = journal.outcome.rawValue
            if let expected = journal.expected { status += journal.isUnexpected ? " (expected \(expected.rawValue))" : " (as expected)" }
            rows.append([
                journal.title, status, DurationFormat.seconds(journal.duration ?? 0), deviated.isEmpty ? "-" : deviated.joined(separator: ", "),
            ])
            outcomes.append(journal.verdict)
        }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        widths[0] = min(widths[0], 48)
        func format(_ row: [String], paintStatus: Outcome?) -> String {
            row.enumerated().map { i, cell in
                var text = cell.count > widths[i] ? String(cell.prefix(widths[i] - 1)) + "…" : cell
                let padding = String(repeating: " ", count: max(0, widths[i] - text.count))
                if i == 1, let paintStatus {
                    text = t.paint(text, paintStatus == .completed ? .green : (paintStatus == .interrupted ? .yellow : .red))
                }
                return text + padding
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        var lines = [t.paint(format(header, paintStatus: nil), .bold)]
        for (row, outcome) in zip(rows, outcomes) { lines.append(format(row, paintStatus: outcome)) }
        return lines.joined(separator: "\n")
    }
}
