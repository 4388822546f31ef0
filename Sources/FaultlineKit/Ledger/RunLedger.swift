#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation
import Synchronization

/// Something a run did outside its own process that must be undone if the run dies before it
/// undoes it: a proxy created on a Toxiproxy server, a toxic added, a process it stopped with
/// SIGSTOP, services that could outlive it.
///
/// A plugin records an entry in the run's ``RunLedger`` before it acts, removes it once its own
/// undo has run, and registers a ``LedgerRecovery`` for the entry's ``kind``, which
/// `faultline recover` uses when the run died with the entry still in its ledger.
///
/// ## Implementation requirements
/// - An entry holds everything its recovery needs, and no secret (ledgers are plain files).
/// - ``kind`` is unique across plugins: prefix it with the plugin's name (`toxiproxy.toxic`).
public protocol LedgerEntry: Codable, Sendable {
    /// The registered kind of entry, e.g. `toxiproxy.toxic`.
    static var kind: String { get }
    /// What it left, in a few words: `toxic latency_downstream on proxy store`.
    var summary: String { get }
    /// The server it is on (`http://127.0.0.1:8474`), for `faultline recover --server` and the
    /// next run's automatic recovery; nil for what is on this machine.
    var server: String? { get }
}

/// Names one entry of a ``RunLedger``, to update or remove it.
public struct LedgerToken: Sendable, Hashable {
    let id: Int
}

/// A run's ledger: what the run has done outside its own process and not yet undone, kept in a
/// file as it changes, so that `faultline recover` can undo it after the run was killed.
///
/// The file is a line of JSON per change, appended with one `write` (so a kill never tears a
/// line; the page cache outlives the process). After an entry on a server is written, a thread of
/// the ledger's own flushes the file to disk (`fdatasync`: 2–3 ms, more on a busy disk, so never
/// on the tasks that run providers), since that entry outlives a crash of this machine too; one
/// on this machine (a process) needs no flush, as the machine's crash ends it anyway.
///
/// While the run lives it holds an exclusive `flock` on the file; the kernel releases it when the process dies however
/// it dies, so a ledger whose lock can be taken belongs to a dead run — no pid is trusted.
/// A run that ends having undone everything deletes its ledger.
///
/// ``disabled`` keeps entries in memory only (tests driving a provider outside a run).
public final class RunLedger: Sendable {
    /// The ledger file; nil for a ledger kept in memory.
    public let path: String?
    /// The run's ledger id (``LedgerHeader/runID``); nil for a ledger kept in memory.
    public let id: String?
    private let state: Mutex<State>
    /// Flushes the file off the cooperative pool, through a descriptor of its own (which shares
    /// the lock, so the lock outlives ``finish()`` until the last flush).
    private let syncer = DispatchQueue(label: "faultline ledger sync")
    private let syncFD: Int32

    private struct State {
        var fd: Int32
        var nextID = 1
        var entries: [Int: LedgerRecord] = [:]
        var closed = false
        var syncPending = false
    }

    /// A ledger kept in memory only.
    public static var disabled: RunLedger { RunLedger(path: nil, id: nil, fd: -1) }

    private init(path: String?, id: String?, fd: Int32) {
        self.path = path
        self.id = id
        state = Mutex(State(fd: fd))
        // Close-on-exec like the first: a child that inherited either would hold the lock after
        // the run died.
        syncFD = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1
    }

    /// Creates the ledger of a new run in `directory` and locks it for the life of this process.
    /// The file appears under its final name only once locked, so a concurrent
    /// `faultline recover` never takes a live run's ledger for a dead one.
    /// - Throws: ``LedgerError`` when the directory or file cannot be made.
    public static func create(in directory: String, header: LedgerHeader) throws -> RunLedger {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw LedgerError(
                "cannot create the ledger directory \(directory): \(error.localizedDescription); set \(LedgerDirectory.variable) to a writable directory"
            )
        }
        let name = header.runID + LedgerDirectory.suffix
        let temporary = (directory as NSString).appendingPathComponent(".\(name).new")
        let path = (directory as NSString).appendingPathComponent(name)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw LedgerError(
                "cannot create the ledger \(temporary): \(String(cString: strerror(errno))); set \(LedgerDirectory.variable) to a writable directory")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0, LedgerLine.append(.header(header), to: fd), rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            unlink(temporary)
            throw LedgerError("cannot write the ledger \(path): \(reason)")
        }
        let ledger = RunLedger(path: path, id: header.runID, fd: fd)
        ledger.state.withLock { ledger.scheduleSync(&$0) }
        return ledger
    }

    /// Asks the sync thread for a flush, unless one is already waiting to start.
    private func scheduleSync(_ state: inout State) {
        guard syncFD >= 0, !state.syncPending else { return }
        state.syncPending = true
        let fd = syncFD
        syncer.async { [self] in
            // Cleared first: a line written during this flush asks for another.
            self.state.withLock { $0.syncPending = false }
            _ = fdatasync(fd)
        }
    }

    /// Records an entry before the run acts, and returns its token.
    @discardableResult
    public func record<E: LedgerEntry>(_ entry: E) -> LedgerToken {
        let record = LedgerRecord(entry)
        return state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.entries[id] = record
            if state.fd >= 0 {
                _ = LedgerLine.append(.put(id: id, record), to: state.fd)
                if record.server != nil { scheduleSync(&state) }
            }
            return LedgerToken(id: id)
        }
    }

    /// Replaces an entry (a toxic whose prior state is now known).
    public func update<E: LedgerEntry>(_ token: LedgerToken, _ entry: E) {
        let record = LedgerRecord(entry)
        state.withLock { state in
            guard state.entries[token.id] != nil else { return }
            state.entries[token.id] = record
            if state.fd >= 0 {
                _ = LedgerLine.append(.put(id: token.id, record), to: state.fd)
                if record.server != nil { scheduleSync(&state) }
            }
        }
    }

    /// Removes an entry once what it records is undone (or turned out never to have happened).
    /// Removing one already removed does nothing.
    public func remove(_ token: LedgerToken) {
        state.withLock { state in
            guard state.entries.removeValue(forKey: token.id) != nil else { return }
            // No sync: a removal lost to a power cut only makes recovery undo again what is gone.
            if state.fd >= 0 { _ = LedgerLine.append(.drop(id: token.id), to: state.fd) }
        }
    }

    /// Notes a journal of the run, so that a recovery records itself there. A relative path is
    /// noted as an absolute one: `faultline recover` may run from another directory.
    public func noteJournal(_ path: String) {
        let absolute = URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true))
            .standardizedFileURL.path
        state.withLock { state in
            if state.fd >= 0 { _ = LedgerLine.append(.journal(absolute), to: state.fd) }
        }
    }

    /// What the ledger holds now, oldest first.
    public var entries: [LedgerRecord] {
        state.withLock { state in state.entries.sorted { $0.key < $1.key }.map(\.value) }
    }

    /// Ends the run's hold on the ledger: an empty ledger is deleted; one that still holds
    /// entries stays for `faultline recover`. Idempotent.
    /// - Returns: what is left in it.
    @discardableResult
    public func finish() -> [LedgerRecord] {
        state.withLock { state in
            let left = state.entries.sorted { $0.key < $1.key }.map(\.value)
            guard !state.closed else { return left }
            state.closed = true
            if state.fd >= 0 {
                if left.isEmpty, let path { unlink(path) }
                // Closing the descriptors releases the lock.
                close(state.fd)
                state.fd = -1
                let fd = syncFD
                syncer.async { close(fd) }
            }
            return left
        }
    }

    deinit { finish() }
}

/// The run's ledger, in ``Resources``.
public enum RunLedgerKey: ResourceKey {
    public typealias Value = RunLedger
}

extension Resources {
    /// The run's ledger, or one kept in memory outside a run.
    public var ledger: RunLedger { self[RunLedgerKey.self] ?? .disabled }
}

/// One entry of a ledger, as stored: its kind and its fields.
public struct LedgerRecord: Sendable, Codable, Equatable {
    public var kind: String
    public var summary: String
    public var server: String?
    public var entry: Value

    init<E: LedgerEntry>(_ entry: E) {
        kind = E.kind
        summary = entry.summary
        server = entry.server
        self.entry = (try? JSONDecoder().decode(Value.self, from: JSONEncoder().encode(entry))) ?? .null
    }

    /// The entry as its plugin's type.
    public func decode<E: LedgerEntry>(_ type: E.Type) throws -> E {
        try JSONDecoder().decode(E.self, from: JSONEncoder().encode(entry))
    }
}

/// Who a ledger belongs to: its first line.
public struct LedgerHeader: Sendable, Codable, Equatable {
    /// The ledger's name: `<start>-<pid>-<random>`.
    public var runID: String
    public var pid: Int32
    public var start: Timestamp
    /// The suite or experiment file, as given.
    public var file: String
    /// The same, absolute, to match runs of one suite.
    public var absoluteFile: String
    public var profile: String?
    public var host: String

    /// The header of a run of `file` starting now in this process.
    public init(file: String, profile: String?) {
        let pid = getpid()
        runID = "\(Int64(Date().timeIntervalSince1970 * 1000))-\(pid)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        self.pid = pid
        start = .now()
        self.file = file
        absoluteFile = URL(fileURLWithPath: file).standardizedFileURL.path
        self.profile = profile
        host = ProcessInfo.processInfo.hostName
    }

    enum CodingKeys: String, CodingKey {
        case runID = "run_id", pid, start, file, absoluteFile = "absolute_file", profile, host
    }
}

/// One line of a ledger file.
enum LedgerLine: Codable {
    case header(LedgerHeader)
    case put(id: Int, LedgerRecord)
    case drop(id: Int)
    case journal(String)
    /// A recovery's account of itself.
    case recovered(RecoveryNote)

    private enum CodingKeys: String, CodingKey { case ledger, put, drop, journal, recovered, record }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .header(let header): try container.encode(header, forKey: .ledger)
        case .put(let id, let record):
            try container.encode(id, forKey: .put)
            try container.encode(record, forKey: .record)
        case .drop(let id): try container.encode(id, forKey: .drop)
        case .journal(let path): try container.encode(path, forKey: .journal)
        case .recovered(let note): try container.encode(note, forKey: .recovered)
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let header = try container.decodeIfPresent(LedgerHeader.self, forKey: .ledger) {
            self = .header(header)
        } else if let id = try container.decodeIfPresent(Int.self, forKey: .put) {
            self = .put(id: id, try container.decode(LedgerRecord.self, forKey: .record))
        } else if let id = try container.decodeIfPresent(Int.self, forKey: .drop) {
            self = .drop(id: id)
        } else if let path = try container.decodeIfPresent(String.self, forKey: .journal) {
            self = .journal(path)
        } else {
            self = .recovered(try container.decode(RecoveryNote.self, forKey: .recovered))
        }
    }

    /// Appends the line with one `write`, so that a kill never leaves half of it.
    /// - Returns: whether it was written.
    static func append(_ line: LedgerLine, to fd: Int32) -> Bool {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var data = try? encoder.encode(line) else { return false }
        data.append(UInt8(ascii: "\n"))
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        return written == data.count
    }
}

/// Why a ledger could not be made or read.
public struct LedgerError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

/// Where ledgers live: `$FAULTLINE_STATE_DIR/ledgers`, else `$XDG_STATE_HOME/faultline/ledgers`,
/// else `~/.local/state/faultline/ledgers` (the XDG base directory specification's place for
/// state that outlives a process).
public enum LedgerDirectory {
    /// The environment variable that moves Faultline's state directory.
    public static let variable = "FAULTLINE_STATE_DIR"
    static let suffix = ".ledger"

    /// The ledger directory for an environment.
    public static func path(environment: [String: String]) -> String {
        if let state = environment[variable], !state.isEmpty { return (state as NSString).appendingPathComponent("ledgers") }
        if let xdg = environment["XDG_STATE_HOME"], xdg.hasPrefix("/") { return "\(xdg)/faultline/ledgers" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return "\(home)/.local/state/faultline/ledgers"
    }
}
