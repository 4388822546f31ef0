// `--shards`: one shard of a load alone on one core, then two shards at once on a core each,
// merged with `faultline report --merge`; prints the merged request rate over the single one's.
import FaultlineHTTP
import FaultlineKit
import Foundation

/// A `faultline run` of the benchmark's experiment as one shard, pinned to `core` with taskset.
struct ShardRun {
    let process = Process()
    let journal: String

    init(faultline: String, experiment: String, shard: String, core: Int, startAt: String, directory: URL) throws {
        guard let taskset = which("taskset") else { throw BenchmarkError.missing("taskset") }
        journal = directory.appendingPathComponent("shard-\(shard.replacingOccurrences(of: "/", with: "-")).json").path
        process.executableURL = URL(fileURLWithPath: taskset)
        process.arguments = [
            "-c", String(core), faultline, "run", experiment, "--shard", shard, "--start-at", startAt, "--start-lateness", "30",
            "--journal-path", journal, "--quiet",
        ]
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(["NO_COLOR": "1", "FAULTLINE_STATE_DIR": directory.path + "/state"]) { $1 }
        try process.run()
    }

    /// Waits for the run; its load output.
    func finish() throws -> LoadResult {
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BenchmarkError.failed("faultline run exited with \(process.terminationStatus)") }
        let journal = try Journal.load(path: journal)
        guard let output = journal.run.first?.output else { throw BenchmarkError.failed("\(self.journal) has no load output") }
        return try LoadResult(decoding: output)
    }
}

func compareShards(_ options: Options, nginx: Nginx) async throws {
    // Absolute: the shards run in a directory of their own.
    let faultline = URL(fileURLWithPath: options.faultline).standardizedFileURL.path
    guard FileManager.default.isExecutableFile(atPath: faultline) else {
        throw BenchmarkError.failed("\(faultline) is missing: run Benchmarks/load/run.sh --shards, which builds it in release mode")
    }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("faultline-shards-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let experiment = directory.appendingPathComponent("load.yaml").path
    try """
    title: shard benchmark
    method:
      - type: probe
        name: load
        provider: {type: http.load, url: "\(nginx.url)", users: \(options.connections), duration: \(options.duration)}
    """.write(toFile: experiment, atomically: true, encoding: .utf8)

    let cores = ProcessInfo.processInfo.activeProcessorCount
    print(
        "shards: nginx (1 worker) on 127.0.0.1, \(options.connections) users in all, \(Int(options.duration)) s a run, \(options.rounds) rounds, \(cores) cores"
    )
    print("one shard (--shard 0/1) pinned to core 0, then two shards (0/2 and 1/2, one --start-at) pinned to cores 0 and 1, merged")
    print("")
    print(pad("round", 8) + pad("1 shard req/s", 16) + pad("2 shards req/s", 16) + pad("ratio", 8) + pad("merged p99", 12))
    var ratios: [Double] = []
    for round in 1...options.rounds {
        func instant(_ seconds: Double) -> String { Timestamp(Date().addingTimeInterval(seconds)).text }
        let single = try ShardRun(faultline: faultline, experiment: experiment, shard: "0/1", core: 0, startAt: instant(2), directory: directory)
        let alone = try single.finish()
        let at = instant(3)
        let shards = try [
            ShardRun(faultline: faultline, experiment: experiment, shard: "0/2", core: 0, startAt: at, directory: directory),
            ShardRun(faultline: faultline, experiment: experiment, shard: "1/2", core: min(1, cores - 1), startAt: at, directory: directory),
        ]
        let outputs = try shards.map { try $0.finish() }
        // The CLI's merge, as a user runs it, must accept them; the rate is read from the same merge in-process.
        let merge = Process()
        merge.executableURL = URL(fileURLWithPath: faultline)
        merge.arguments = ["report", "--merge"] + shards.map(\.journal) + ["--output", directory.appendingPathComponent("merged.md").path]
        merge.standardError = FileHandle.nullDevice
        try merge.run()
        merge.waitUntilExit()
        guard merge.terminationStatus == 0 else { throw BenchmarkError.failed("faultline report --merge exited with \(merge.terminationStatus)") }
        let merged = try LoadMerge.merge(outputs, names: shards.map(\.journal)).result
        let ratio = merged.overall.rps / alone.overall.rps
        ratios.append(ratio)
        print(
            pad(String(round), 8) + pad(fixed(alone.overall.rps, 0), 16) + pad(fixed(merged.overall.rps, 0), 16)
                + pad(String(format: "%.2f", ratio), 8)
                + pad(fixed(merged.overall.p99Ms), 12))
    }
    let median = ratios.sorted()[ratios.count / 2]
    print("")
    print(String(format: "median ratio, 2 shards on 2 cores over 1 shard on 1 core: %.2f× (2× is perfect scaling)", median))
    print("nginx shares the same cores, and so does anything else running: below 2× measures the machine, not the shards")
}
