import ArgumentParser
import FaultlineKit
import Foundation

/// `faultline report`: reports from journals after the fact, and before/after comparisons.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Make a Markdown, HTML or JUnit report from journals, or compare a baseline run with a later one.",
        discussion: """
            A directory stands for every *.json journal in it (a suite run's journals/), in name order;
            several journals give one report with a summary table first.

              faultline report journals/ --format html --output reports/suite.html
              faultline report journal.json --format junit -o junit.xml
              faultline report --compare before.json after.json --format html -o compare.html

            Exit codes: 0 written, 2 invalid input (unreadable journal, unknown format).
            """)

    @Argument(help: ArgumentHelp("Journal files or directories of journals; with --compare, BASELINE then AFTER.", valueName: "journal"))
    var journals: [String] = []

    @Option(name: .shortAndLong, help: ArgumentHelp("md, html or junit (default: from --output's extension, else md).", valueName: "format"))
    var format: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the report here instead of standard output.", valueName: "path"))
    var output: String?

    @Flag(help: "Compare two runs: the first journal (or directory) is the baseline, the second the run after the change.")
    var compare = false

    @Option(help: ArgumentHelp("The report's title (default: the experiment's title).", valueName: "text"))
    var title: String?

    func run() throws {
        let t = Terminal.shared
        let request = ReportRequest(inputs: journals, format: format, outputPath: output, compare: compare, title: title)
        do {
            let text = try request.render(registry: CommandEnvironment.registry)
            if let output {
                try request.write(text, to: output)
                t.error(t.paint("report: \(output)", .dim))
            } else {
                t.write(text)
            }
        } catch let error as ReportRequest.Failure {
            t.error(t.paint("error: ", .red) + error.message)
            throw ExitCode(2)
        }
    }
}

/// What `faultline report` does, apart from the command line: find the journals, pick the
/// reporter, render.
struct ReportRequest {
    var inputs: [String]
    var format: String?
    var outputPath: String?
    var compare: Bool
    var title: String?

    /// A problem with the input, in one line a user can act on.
    struct Failure: Error, Equatable, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// The report's text.
    func render(registry: PluginRegistry) throws -> String {
        let reporter = try self.reporter(registry)
        if compare {
            guard inputs.count == 2 else {
                throw Failure(
                    message: "--compare needs two inputs, BASELINE then AFTER (a journal or a directory of journals each); got \(inputs.count)")
            }
            guard let comparing = reporter as? any ComparisonReporter else {
                let able = registry.reporters.values.filter { $0 is any ComparisonReporter }.map(\.format).sorted()
                throw Failure(message: "the \(reporter.format) report cannot compare runs; use --format \(able.joined(separator: " or "))")
            }
            let baseline = try Self.journals(at: inputs[0])
            let after = try Self.journals(at: inputs[1])
            return try comparing.renderComparison(baseline: baseline, after: after, options: ReportOptions(title: title))
        }
        guard !inputs.isEmpty else {
            throw Failure(message: "name at least one journal (e.g. journal.json) or a directory of journals (e.g. journals/)")
        }
        let journals = try inputs.flatMap(Self.journals(at:))
        return try reporter.render(journals, options: ReportOptions(title: title))
    }

    /// Writes the report, creating the directory it goes in.
    func write(_ text: String, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw Failure(message: "cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// The reporter for `--format`, else for the output's extension, else Markdown.
    func reporter(_ registry: PluginRegistry) throws -> any Reporter {
        let known = registry.reporters.keys.sorted()
        if let format {
            guard let reporter = registry.reporters[format] else {
                let hint = Suggestion.didYouMean(format, in: known) ?? "known formats: \(known.joined(separator: ", "))"
                throw Failure(message: "unknown report format \"\(format)\" (\(hint))")
            }
            return reporter
        }
        if let outputPath {
            let extensionName = (outputPath as NSString).pathExtension.lowercased()
            let aliases = ["markdown": "md", "htm": "html"]
            let wanted = aliases[extensionName] ?? extensionName
            if let reporter = registry.reporters.values.sorted(by: { $0.format < $1.format }).first(where: {
                $0.fileExtension == wanted || $0.format == wanted
            }) {
                return reporter
            }
        }
        guard let markdown = registry.reporters["md"] ?? known.first.flatMap({ registry.reporters[$0] }) else {
            throw Failure(message: "no reporters are registered")
        }
        return markdown
    }

    /// The journals at a path: the file itself, or every `*.json` in a directory, in name order.
    static func journals(at path: String) throws -> [Journal] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw Failure(message: "\(path): no such file or directory")
        }
        var files = [path]
        if isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            files = names.filter { $0.hasSuffix(".json") }.sorted().map { (path as NSString).appendingPathComponent($0) }
            guard !files.isEmpty else { throw Failure(message: "\(path): no journals (*.json) in this directory") }
        }
        return try files.map { file in
            do {
                return try Journal.load(path: file)
            } catch {
                throw Failure(message: "\(file) is not a readable Faultline journal: \(error)")
            }
        }
    }
}
