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
              faultline report --merge shard-0/ shard-1/ shard-2/ --format html -o merged.html

            --merge takes the journals of every shard of a run (faultline run --shard I/N): per experiment,
            the shards' loads merge exactly (their latency histograms add up), the load thresholds are judged
            on the merged data, and the report shows the merged run first, then each shard.

            Exit codes: 0 written (with --merge: and every merged run completed), 1 with --merge: the report
            was written and a merged run did not complete (a merged threshold missed, or a shard's run
            failed), 2 invalid input (unreadable journal, unknown format, shards that do not make one run).
            """)

    @Argument(help: ArgumentHelp("Journal files or directories of journals; with --compare, BASELINE then AFTER.", valueName: "journal"))
    var journals: [String] = []

    @Option(name: .shortAndLong, help: ArgumentHelp("md, html or junit (default: from --output's extension, else md).", valueName: "format"))
    var format: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the report here instead of standard output.", valueName: "path"))
    var output: String?

    @Flag(help: "Compare two runs: the first journal (or directory) is the baseline, the second the run after the change.")
    var compare = false

    @Flag(help: "Merge the journals of a run's shards (faultline run --shard I/N): exact merged loads, thresholds judged on them.")
    var merge = false

    @Option(help: ArgumentHelp("The report's title (default: the experiment's title).", valueName: "text"))
    var title: String?

    func validate() throws {
        if merge && compare { throw ValidationError("give --merge or --compare, not both") }
    }

    func run() throws {
        let t = Terminal.shared
        let request = ReportRequest(inputs: journals, format: format, outputPath: output, compare: compare, title: title, merge: merge)
        var failed = false
        do {
            let text: String
            if merge {
                let (rendered, groups, skipped) = try request.renderMerge(registry: CommandEnvironment.registry)
                text = rendered
                for path in skipped {
                    t.error(t.paint("note: ", .dim) + "\(path): no sharded load in this journal, nothing to merge; left out of the report")
                }
                for group in groups {
                    t.error(t.paint("merged · \(group.merged.title): \(group.merged.outcome.rawValue)", .bold))
                    for load in group.loads {
                        for line in LoadSummary.lines(load.result, name: load.name, indent: "  ", onlyFailures: false, terminal: t) { t.error(line) }
                    }
                    if let reason = group.merged.reason, group.merged.verdict != .completed { t.error("  " + t.paint(reason, .red)) }
                }
                failed = groups.contains { $0.merged.verdict != .completed }
            } else {
                text = try request.render(registry: CommandEnvironment.registry)
            }
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
        if failed { throw ExitCode(1) }
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
    var merge = false

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

    /// The report of a sharded run (`--merge`): per experiment, the merged run, then each shard.
    func renderMerge(registry: PluginRegistry) throws -> (text: String, groups: [ShardMerge.Group], skipped: [String]) {
        let reporter = try self.reporter(registry)
        guard !inputs.isEmpty else {
            throw Failure(message: "--merge needs the journals of every shard (files, or each shard's journal directory)")
        }
        let (groups, skipped) = try ShardMerge.merge(try inputs.flatMap(Self.journalFiles(at:)))
        let journals = groups.flatMap { [$0.merged] + $0.shards }
        return (try reporter.render(journals, options: ReportOptions(title: title)), groups, skipped)
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
        try journalFiles(at: path).map(\.journal)
    }

    /// The journals at a path with the files they were read from.
    static func journalFiles(at path: String) throws -> [(path: String, journal: Journal)] {
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
                return (file, try Journal.load(path: file))
            } catch {
                throw Failure(message: "\(file) is not a readable Faultline journal: \(error)")
            }
        }
    }
}
