// What writing the journal costs a run: the same experiment of N instant probes (N records) run
// with the journal written to a file and with it kept in memory only, in the same process. The
// difference is the cost of the journal file; a writer that rewrites the whole file after every
// record grows with N², one that writes off the engine's path stays flat per record.
// Run with Benchmarks/journal/run.sh (release build).
//
// Usage: JournalBenchmark [N ...]   (default: 1000 2500 5000 10000)
import FaultlineKit
import Foundation

/// `bench.echo`: returns its `value` at once, as a fast probe would.
struct EchoProbe: Probe {
    static let type = "bench.echo"
    static let summary = "Returns its value"

    struct Arguments: Codable, Sendable {
        var value: Value
    }

    func probe(_ arguments: Arguments, context: ActivityContext) async throws -> Value { arguments.value }
}

struct EchoPlugin: FaultlinePlugin {
    static let name = "bench"
    static func register(into registry: inout PluginRegistry) { registry.register(probe: EchoProbe()) }
}

/// User plus system CPU seconds of this process, every thread included.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// An experiment whose method is `count` probes, each returning an output the size of a small
/// HTTP probe's.
func experiment(records count: Int) -> String {
    let output: Value = ["status": 200, "headers": ["content-type": "application/json"], "body": ["ok": true, "items": [1, 2, 3]]]
    let activities = (0..<count).map { index -> Value in
        ["type": "probe", "name": .string("probe-\(index)"), "provider": ["type": "bench.echo", "value": output]]
    }
    let document: Value = ["title": "journal benchmark", "description": "N instant probes", "method": .array(activities)]
    return JSONWriter.string(document, pretty: false)
}

struct Measurement {
    var wall: Double
    var cpu: Double
    var bytes: Int
}

/// Loads and runs the experiment; only the run is timed.
func measure(records count: Int, directory: URL, toFile: Bool) async throws -> Measurement {
    let file = directory.appendingPathComponent("experiment-\(count).json")
    try experiment(records: count).write(to: file, atomically: true, encoding: .utf8)
    let journalPath = directory.appendingPathComponent("journal-\(count).json").path
    try? FileManager.default.removeItem(atPath: journalPath)
    var options = SuiteRunner.Options()
    options.journalPath = journalPath
    let runner = SuiteRunner(registry: PluginRegistry(plugins: [EchoPlugin.self]))
    let plan = try runner.load(path: file.path, options: options)
    let planned = try require(plan.experiments.first)
    let engine = Engine(registry: runner.registry)
    let runOptions = RunOptions(journalPath: toFile ? journalPath : nil, runDirectory: directory.path)

    let clock = ContinuousClock()
    let cpuBefore = cpuSeconds()
    let start = clock.now
    let journal = await engine.run(planned.experiment, configuration: planned.configuration, options: runOptions)
    let elapsed = clock.now - start
    let cpu = cpuSeconds() - cpuBefore
    guard journal.run.count == count, journal.outcome == .completed else {
        throw BenchmarkError("the run recorded \(journal.run.count) of \(count) records, outcome \(journal.outcome)")
    }
    var bytes = 0
    if toFile {
        let written = try Journal.load(path: journalPath)
        guard written.run.count == count, written.status == .completed else { throw BenchmarkError("the journal file is not the finished journal") }
        bytes = (try FileManager.default.attributesOfItem(atPath: journalPath)[.size] as? Int) ?? 0
    }
    return Measurement(wall: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, cpu: cpu, bytes: bytes)
}

struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func require<T>(_ value: T?) throws -> T {
    guard let value else { throw BenchmarkError("missing") }
    return value
}

func format(_ seconds: Double) -> String { String(format: "%8.3f s", seconds) }

/// Prints a line at once (a long run piped into a file shows each row as it is measured).
func line(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

@main
struct JournalBenchmark {
    static func main() async throws {
        let sizes = CommandLine.arguments.dropFirst().compactMap { Int($0) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-journal-benchmark-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        line("records | in memory: wall, cpu | journal file: wall, cpu | file cost: wall, cpu, per record | journal size")
        for count in sizes.isEmpty ? [1000, 2500, 5000, 10_000] : sizes {
            let memory = try await measure(records: count, directory: directory, toFile: false)
            let file = try await measure(records: count, directory: directory, toFile: true)
            let wallCost = max(0, file.wall - memory.wall)
            let cpuCost = max(0, file.cpu - memory.cpu)
            line(
                [
                    String(format: "%7d", count), "|", format(memory.wall), format(memory.cpu), "|", format(file.wall), format(file.cpu), "|",
                    format(wallCost), format(cpuCost), String(format: "%9.1f µs", cpuCost / Double(count) * 1e6), "|",
                    String(format: "%6.1f MB", Double(file.bytes) / 1e6),
                ].joined(separator: " "))
        }
    }
}
