#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation
import Logging

/// Undoes what a dead run left, for one kind of ``LedgerEntry``: what `faultline recover` and
/// the next run's automatic step call. A plugin registers one per kind of entry it records.
///
/// ## Implementation requirements
/// - Idempotent: finding the thing already undone (a proxy gone, a process exited or its pid now
///   naming another process) is success.
/// - Undo only what the entry names, never more: the server and machine are shared.
/// - Fail fast with a named error when the server is unreachable; the entry then stays in the
///   ledger for the next try.
public protocol LedgerRecovery: Sendable {
    associatedtype Entry: LedgerEntry
    /// Undoes `entry`.
    /// - Returns: what it did, in a few words (`deleted proxy store`, `already gone`).
    /// - Throws: an error conforming to ``ServerUnreachable`` when the entry's server cannot be
    ///   reached at all, so the rest of the recovery does not wait on it again.
    func recover(_ entry: Entry, context: RecoveryContext) async throws -> String
    /// Whether the next run of the same suite undoes the entry before it starts, as it does what
    /// is on this machine, though it is on another (``LedgerEntry/server``): true when the entry
    /// holds all its recovery needs (an ssh host, with its key and known-hosts files). False by
    /// default: an entry on a server whose credentials the run brings (a Toxiproxy token) is
    /// recovered when the run's backend first reaches that server.
    static var recoversBeforeRun: Bool { get }
}

extension LedgerRecovery {
    public static var recoversBeforeRun: Bool { false }
}

/// An error of a ``LedgerRecovery`` that could not reach the entry's server at all (refused,
/// timed out, no route, refused the credentials): the recovery tries no other entry on that
/// server, which would fail the same way after the same wait, and keeps them all for the next try.
public protocol ServerUnreachable: Error {}

/// What a recovery gets.
public struct RecoveryContext: Sendable {
    /// The environment to read credentials from (`TOXIPROXY_AUTH_TOKEN`).
    public var environment: [String: String]
    /// API tokens the user gave for this recovery (`faultline recover --token`), by agent name or
    /// server URL: used before what the ledger says.
    public var tokens: [String: String]
    public var logger: Logger

    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment, tokens: [String: String] = [:],
        logger: Logger = Logger(label: "faultline.recover")
    ) {
        self.environment = environment
        self.tokens = tokens
        self.logger = logger
    }
}

/// A registered ``LedgerRecovery`` with its entry type opened.
public struct LedgerRecoveryDescriptor: Sendable {
    public let kind: String
    /// ``LedgerRecovery/recoversBeforeRun``.
    public let recoversBeforeRun: Bool
    let body: @Sendable (LedgerRecord, RecoveryContext) async throws -> String

    init<R: LedgerRecovery>(_ recovery: R) {
        kind = R.Entry.kind
        recoversBeforeRun = R.recoversBeforeRun
        body = { record, context in try await recovery.recover(try record.decode(R.Entry.self), context: context) }
    }
}

/// What a recovery did to a dead run's journal: kept in the journal (`recovery`) and the ledger.
public struct RecoveryNote: Sendable, Codable, Equatable {
    public var at: Timestamp
    /// The pid of the `faultline` that recovered.
    public var by: Int32
    /// True for the step a run takes before it starts.
    public var automatic: Bool
    /// What was undone, one line each.
    public var undone: [String]
    /// What could not be undone, and why; it stays in the ledger.
    public var failed: [String]
}

/// Which dead runs and entries a recovery touches.
public struct RecoveryScope: Sendable {
    /// Only runs of this suite or experiment file (any spelling of its path).
    public var file: String?
    /// Only runs of this profile.
    public var profile: String?
    /// Only entries on these servers (URLs as the entries give them); nil for any server.
    public var servers: Set<String>?
    /// Entries on this machine (stopped processes, services) too.
    public var includesLocal: Bool
    /// Entries on other machines whose recovery is part of the step a run takes before it starts
    /// (``LedgerRecovery/recoversBeforeRun``: remote services over ssh), whatever ``servers`` says.
    public var includesBeforeRun: Bool

    public init(
        file: String? = nil, profile: String? = nil, servers: Set<String>? = nil, includesLocal: Bool = true, includesBeforeRun: Bool = false
    ) {
        self.file = file
        self.profile = profile
        self.servers = servers
        self.includesLocal = includesLocal
        self.includesBeforeRun = includesBeforeRun
    }

    /// What the next run of `file` recovers before it starts: what dead runs of that file left on
    /// this machine, and on other machines their recoveries reach by themselves (ssh hosts).
    public static func beforeRun(of file: String) -> RecoveryScope {
        RecoveryScope(file: file, servers: [], includesBeforeRun: true)
    }

    /// A server URL as ledger entries write it: `127.0.0.1:8474` and `http://127.0.0.1:8474/`
    /// are `http://127.0.0.1:8474`.
    public static func normalizedServer(_ text: String) -> String {
        var url = text.contains("://") ? text : "http://" + text
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }

    func matches(_ header: LedgerHeader) -> Bool {
        (file.map { URL(fileURLWithPath: $0).standardizedFileURL.path == header.absoluteFile } ?? true)
            && (profile.map { $0 == header.profile } ?? true)
    }

    func matches(_ record: LedgerRecord, recoversBeforeRun: Bool) -> Bool {
        guard let server = record.server else { return includesLocal }
        if includesBeforeRun && recoversBeforeRun { return true }
        return servers.map { $0.contains(Self.normalizedServer(server)) } ?? true
    }
}

/// What a recovery found and did.
public struct RecoveryReport: Sendable {
    /// One dead run's ledger.
    public struct Run: Sendable {
        public var header: LedgerHeader
        public var path: String
        public var undone: [String] = []
        public var failed: [String] = []
        /// In a dry run: what would be undone.
        public var pending: [String] = []
        /// Its ledger is empty now and was deleted.
        public var removed = false
        /// Journals that now record the recovery.
        public var journals: [String] = []
    }

    public var runs: [Run] = []
    /// Ledgers another live process holds (a running run, or a recovery under way).
    public var live: [LedgerHeader] = []
    /// Ledgers that could not be read.
    public var problems: [String] = []

    /// Whether anything was left to undo.
    public var isEmpty: Bool { runs.allSatisfy { $0.undone.isEmpty && $0.failed.isEmpty && $0.pending.isEmpty && $0.journals.isEmpty } }
    public var failedCount: Int { runs.reduce(0) { $0 + $1.failed.count } }

    /// The report for people, a line each: per dead run what was undone, what could not be
    /// (and stays in its ledger), what a dry run would undo, and the journals that record it.
    public var lines: [String] {
        var lines: [String] = []
        for run in runs {
            let header = run.header
            let verb = run.pending.isEmpty ? "recovered" : "would recover"
            lines.append(
                "\(verb) what a dead run left: \(header.file)\(header.profile.map { " --profile \($0)" } ?? ""), pid \(header.pid), started \(header.start)"
            )
            lines += run.undone.map { "  undone: \($0)" }
            lines += run.failed.map { "  not undone (kept in \(run.path)): \($0)" }
            lines += run.pending.map { "  would undo: \($0)" }
            lines += run.journals.map { "  journal: \(Self.shown($0))" }
        }
        lines += problems
        return lines
    }

    /// A journal's path as people read it: relative to the current directory when inside it
    /// (ledgers note absolute paths).
    static func shown(_ path: String) -> String {
        let here = FileManager.default.currentDirectoryPath + "/"
        return path.hasPrefix(here) ? String(path.dropFirst(here.count)) : path
    }
}

/// Finds the ledgers of dead runs and undoes what they hold, through the plugins' registered
/// ``LedgerRecovery``s: `faultline recover`, and the step a run takes before it starts.
///
/// A ledger is a dead run's when its `flock` can be taken: the kernel released the lock the run
/// held. The recovery keeps the lock while it works, so two recoveries never undo one ledger
/// twice, and a live run's ledger is never touched. Entries are undone newest first; each undone
/// one is dropped from the ledger at once, so a recovery that fails part-way leaves exactly the
/// rest. An emptied ledger is deleted.
public struct Recovery: Sendable {
    public let registry: PluginRegistry
    /// The ledger directory (``LedgerDirectory``).
    public let directory: String
    public let context: RecoveryContext

    public init(registry: PluginRegistry, directory: String, context: RecoveryContext = RecoveryContext()) {
        self.registry = registry
        self.directory = directory
        self.context = context
    }

    /// Recovers every dead run in `scope`.
    /// - Parameters:
    ///   - dryRun: only say what would be undone.
    ///   - automatic: the step a run takes before it starts (recorded as such).
    public func run(_ scope: RecoveryScope = RecoveryScope(), dryRun: Bool = false, automatic: Bool = false) async -> RecoveryReport {
        var report = RecoveryReport()
        // Servers found unreachable (``ServerUnreachable``), with why: no other entry on them is tried.
        var unreachable: [String: String] = [:]
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            if name.hasPrefix("."), name.hasSuffix(LedgerDirectory.suffix + ".new") {
                // A run killed before its ledger got its name: it recorded nothing yet.
                removeAbandoned(path)
                continue
            }
            guard name.hasSuffix(LedgerDirectory.suffix) else { continue }
            let fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                if let header = LedgerContents.read(path: path)?.header { report.live.append(header) }
                continue
            }
            guard let contents = LedgerContents.read(path: path), let header = contents.header else {
                report.problems.append("\(path): not a ledger; left as it is")
                continue
            }
            guard scope.matches(header) else { continue }
            // Unlinked by a recovery that finished while this one waited to open it.
            guard FileManager.default.fileExists(atPath: path) else { continue }
            report.runs.append(
                await recover(
                    contents, header: header, path: path, fd: fd, scope: scope, dryRun: dryRun, automatic: automatic, unreachable: &unreachable))
        }
        report.runs.removeAll { $0.undone.isEmpty && $0.failed.isEmpty && $0.pending.isEmpty && $0.journals.isEmpty && !$0.removed }
        return report
    }

    private func recover(
        _ contents: LedgerContents, header: LedgerHeader, path: String, fd: Int32, scope: RecoveryScope, dryRun: Bool, automatic: Bool,
        unreachable: inout [String: String]
    ) async -> RecoveryReport.Run {
        var run = RecoveryReport.Run(header: header, path: path)
        let selected = contents.entries.filter {
            scope.matches($0.value, recoversBeforeRun: registry.recoveries[$0.value.kind]?.recoversBeforeRun == true)
        }
        .sorted { $0.key > $1.key }
        for (id, record) in selected {
            if dryRun {
                run.pending.append(record.summary)
                continue
            }
            if let server = record.server, let why = unreachable[server] {
                run.failed.append("\(record.summary): not tried, as \(why)")
                continue
            }
            guard let recovery = registry.recoveries[record.kind] else {
                run.failed.append(
                    "\(record.summary): no plugin registered recovers \"\(record.kind)\" entries; run faultline with the plugin that made it")
                continue
            }
            do {
                let done = try await recovery.body(record, context)
                _ = LedgerLine.append(.drop(id: id), to: fd)
                run.undone.append("\(record.summary): \(done)")
            } catch {
                run.failed.append("\(record.summary): \(error)")
                if let server = record.server, error is any ServerUnreachable { unreachable[server] = "\(error)" }
            }
        }
        guard !dryRun else { return run }
        let left = contents.entries.count - run.undone.count
        let note = RecoveryNote(at: .now(), by: getpid(), automatic: automatic, undone: run.undone, failed: run.failed)
        if left > 0, !run.undone.isEmpty || !run.failed.isEmpty { _ = LedgerLine.append(.recovered(note), to: fd) }
        // Even with nothing to undo (a run killed while it only probed), the dead run's journals
        // still say `running`: the recovery is what tells them the run is over.
        for journal in Set(contents.journals).sorted() where Self.record(note, header: header, in: journal) {
            run.journals.append(journal)
        }
        // Last: a recovery killed before this point leaves the ledger, and with it the journals,
        // for the next one.
        if left == 0 {
            unlink(path)
            run.removed = true
        }
        return run
    }

    /// Adds the recovery to a journal of the dead run (one whose `ledger` is the run's). A journal
    /// the run left `running` becomes `interrupted`, Chaos Toolkit's status for a run stopped from
    /// outside, with a reason that says so, and an `end`: the last time the dead run wrote it (when
    /// it died exactly is not known; it was alive then). A journal the run had ended is changed
    /// only when the recovery undid (or failed to undo) something.
    /// - Returns: whether the journal was changed.
    static func record(_ note: RecoveryNote, header: LedgerHeader, in path: String) -> Bool {
        guard var journal = try? Journal.load(path: path), journal.ledger == header.runID else { return false }
        guard journal.status == .running || !note.undone.isEmpty || !note.failed.isEmpty else { return false }
        if journal.status == .running {
            journal.status = .interrupted
            journal.outcome = .interrupted
            journal.reason = "faultline (pid \(header.pid)) was killed before this experiment ended; faultline recover undid what it left"
            let written = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate]) as? Date
            (journal.end, journal.duration) = Self.lastSign(of: journal, written: written)
        }
        journal.recovery = (journal.recovery ?? []) + [note]
        return JournalRecorder.write(journal, to: path)
    }

    /// The last moment a dead run is known to have been alive in a journal: the file's last write
    /// or the latest time recorded in it (the file system's clock may lag the run's by a few
    /// milliseconds), never before its start; and the duration up to it.
    static func lastSign(of journal: Journal, written: Date?) -> (Timestamp, Double) {
        let states = journal.steadyStates
        let records =
            journal.run + journal.rollbacks + [states.before, states.after].compactMap { $0 }.flatMap(\.probes)
            + states.during.flatMap(\.probes)
        var latest = journal.start
        var micros = journal.start.microsecondsSinceEpoch ?? 0
        for stamp in records.map(\.end) + [written.map(Timestamp.init)].compactMap({ $0 }) {
            if let value = stamp.microsecondsSinceEpoch, value > micros { (latest, micros) = (stamp, value) }
        }
        let start = journal.start.microsecondsSinceEpoch ?? micros
        return (latest, Double(micros - start) / 1_000_000)
    }

    private func removeAbandoned(_ path: String) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(path) }
    }
}

/// A ledger file as read back.
struct LedgerContents {
    var header: LedgerHeader?
    /// What is not yet undone, by id.
    var entries: [Int: LedgerRecord] = [:]
    var journals: [String] = []

    /// Reads a ledger; a line that does not parse (a torn last line after a power cut) is skipped.
    static func read(path: String) -> LedgerContents? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var contents = LedgerContents()
        let decoder = JSONDecoder()
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let parsed = try? decoder.decode(LedgerLine.self, from: Data(line)) else { continue }
            switch parsed {
            case .header(let header): contents.header = header
            case .put(let id, let record): contents.entries[id] = record
            case .drop(let id): contents.entries[id] = nil
            case .journal(let path): contents.journals.append(path)
            case .recovered: break
            }
        }
        return contents
    }
}
