#if canImport(Glibc)
    import Glibc
#endif
import FaultlineKit
import FaultlineTesting
import Foundation
import Synchronization
import Testing

/// A thing left outside the run, for these tests: undoing it appends its name to a list.
struct LeftThing: LedgerEntry {
    static let kind = "test.thing"
    var name: String
    var server: String?
    var summary: String { "thing \(name)" }
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A ledger's file and lock, and ``Recovery`` over dead runs' ledgers. The recoveries here record
/// what they undo instead of touching a server: what is tested is the ledger, its liveness and
/// the bookkeeping of a recovery (the plugins' recoveries have their own tests with real peers).
@Suite("Run ledgers and recovery")
struct LedgerTests {
    final class Fixture: Sendable {
        let scratch: ScratchDirectory
        let registry: PluginRegistry

        init(failing: Set<String> = []) throws {
            scratch = try ScratchDirectory(prefix: "faultline-ledger")
            var registry = PluginRegistry()
            registry.register(recovery: SharedRecovery(failing: failing))
            self.registry = registry
        }

        var directory: String { scratch.path("ledgers") }
        var ledgers: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".ledger") } }

        func recovery() -> Recovery { Recovery(registry: registry, directory: directory) }
    }

    /// Records into a process-wide list, keyed by the entry's name (tests use unique names).
    struct SharedRecovery: LedgerRecovery {
        static let undone = Mutex<[String]>([])
        let failing: Set<String>

        func recover(_ entry: LeftThing, context: RecoveryContext) async throws -> String {
            if failing.contains(entry.name) { throw TestError("server down") }
            Self.undone.withLock { $0.append(entry.name) }
            return "undone"
        }
    }

    static func unique(_ name: String) -> String { "\(name)-\(UUID().uuidString.prefix(8))" }

    static func undone(among names: [String]) -> [String] { SharedRecovery.undone.withLock { $0 }.filter(names.contains) }

    /// Ends the run's hold on its ledger, as its death would, and waits until the lock is free.
    static func die(_ ledger: RunLedger) async throws -> [LedgerRecord] {
        let left = ledger.finish()
        if let path = ledger.path { try await waitUntilUnlocked((path as NSString).deletingLastPathComponent) }
        return left
    }

    /// Waits (at most 30 s) until no ledger in `directory` is locked: a child that another test
    /// forks at the moment a ledger is closed holds its descriptor, and so its lock, until it execs.
    static func waitUntilUnlocked(_ directory: String) async throws {
        func locked(_ name: String) -> Bool {
            let fd = open((directory as NSString).appendingPathComponent(name), O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return true }
            flock(fd, LOCK_UN)
            return false
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).contains(where: locked) {
            try #require(ContinuousClock.now < deadline, "a ledger in \(directory) stayed locked")
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test("a live run's ledger is left alone; once its process lets go, recovery undoes what is left, newest first, and deletes it")
    func liveThenDead() async throws {
        let fixture = try Fixture()
        let (a, b, c) = (Self.unique("a"), Self.unique("b"), Self.unique("c"))
        let ledger = try RunLedger.create(in: fixture.directory, header: LedgerHeader(file: "suite.yaml", profile: "ci"))
        ledger.record(LeftThing(name: a))
        let removed = ledger.record(LeftThing(name: b))
        ledger.record(LeftThing(name: c))
        ledger.remove(removed)
        #expect(fixture.ledgers.count == 1)

        let whileLive = await fixture.recovery().run()
        #expect(whileLive.runs.isEmpty)
        #expect(whileLive.live.map(\.runID) == [ledger.id])
        #expect(Self.undone(among: [a, b, c]).isEmpty)

        // Closing the descriptor is what the kernel does when the process dies.
        #expect(try await Self.die(ledger).map(\.summary) == ["thing \(a)", "thing \(c)"])
        let report = await fixture.recovery().run()
        #expect(Self.undone(among: [a, b, c]) == [c, a])
        #expect(report.runs.first?.undone == ["thing \(c): undone", "thing \(a): undone"])
        #expect(report.runs.first?.removed == true)
        #expect(fixture.ledgers.isEmpty)
        #expect(report.lines.first?.hasPrefix("recovered what a dead run left: suite.yaml --profile ci, pid \(getpid())") == true)

        // Idempotent: nothing left.
        let again = await fixture.recovery().run()
        #expect(again.isEmpty && again.runs.isEmpty)
    }

    @Test("a run that undid everything deletes its ledger")
    func cleanEnd() throws {
        let fixture = try Fixture()
        let ledger = try RunLedger.create(in: fixture.directory, header: LedgerHeader(file: "suite.yaml", profile: nil))
        let token = ledger.record(LeftThing(name: Self.unique("x")))
        #expect(fixture.ledgers.count == 1)
        ledger.remove(token)
        #expect(ledger.finish().isEmpty)
        #expect(fixture.ledgers.isEmpty)
    }

    @Test("a recovery that fails part-way leaves exactly the rest in the ledger, and the next one finishes it")
    func partial() async throws {
        let (ok, down) = (Self.unique("ok"), Self.unique("down"))
        let failing = try Fixture(failing: [down])
        let ledger = try RunLedger.create(in: failing.directory, header: LedgerHeader(file: "suite.yaml", profile: nil))
        ledger.record(LeftThing(name: down, server: "http://127.0.0.1:1"))
        ledger.record(LeftThing(name: ok))
        _ = try await Self.die(ledger)

        let first = await failing.recovery().run()
        #expect(first.failedCount == 1)
        #expect(first.runs.first?.failed.first?.contains("server down") == true)
        #expect(first.runs.first?.removed == false)
        #expect(Self.undone(among: [ok, down]) == [ok])
        #expect(failing.ledgers.count == 1)

        // The server is back: a recovery with the same ledgers undoes only what is left. (The first
        // recovery's lock may still be held by a child another test forked meanwhile.)
        try await Self.waitUntilUnlocked(failing.directory)
        var registry = PluginRegistry()
        registry.register(recovery: SharedRecovery(failing: []))
        let second = await Recovery(registry: registry, directory: failing.directory).run()
        #expect(second.runs.first?.undone == ["thing \(down): undone"])
        #expect(Self.undone(among: [ok, down]) == [ok, down])
        #expect(failing.ledgers.isEmpty)
    }

    @Test("a dry run says what it would undo and changes nothing; scopes select runs and servers")
    func dryRunAndScope() async throws {
        let fixture = try Fixture()
        let (local, remote, other) = (Self.unique("local"), Self.unique("remote"), Self.unique("other"))
        let ledger = try RunLedger.create(in: fixture.directory, header: LedgerHeader(file: fixture.scratch.path("suite.yaml"), profile: "ci"))
        ledger.record(LeftThing(name: local))
        ledger.record(LeftThing(name: remote, server: "http://127.0.0.1:8474"))
        ledger.record(LeftThing(name: other, server: "http://127.0.0.1:9999"))
        _ = try await Self.die(ledger)

        let dry = await fixture.recovery().run(dryRun: true)
        #expect(dry.runs.first?.pending.count == 3)
        #expect(Self.undone(among: [local, remote, other]).isEmpty)

        #expect(await fixture.recovery().run(RecoveryScope(profile: "staging")).runs.isEmpty)
        #expect(await fixture.recovery().run(RecoveryScope(file: fixture.scratch.path("other.yaml"))).runs.isEmpty)

        let server = await fixture.recovery().run(RecoveryScope(servers: [RecoveryScope.normalizedServer("127.0.0.1:8474/")], includesLocal: false))
        #expect(server.runs.first?.undone == ["thing \(remote): undone"])
        let mine = await fixture.recovery().run(RecoveryScope(file: fixture.scratch.path("./suite.yaml"), servers: []))
        #expect(mine.runs.first?.undone == ["thing \(local): undone"])
        #expect(Self.undone(among: [local, remote, other]) == [remote, local])
        #expect(fixture.ledgers.count == 1)
    }

    /// An entry on another machine whose recovery needs nothing the run brings, like a service on an ssh host.
    struct RemoteThing: LedgerEntry {
        static let kind = "test.remote"
        var name: String
        var server: String?
        var summary: String { "remote thing \(name)" }
    }

    /// Recovers a ``RemoteThing`` at a run's start too; its server `ssh://down` cannot be reached.
    struct RemoteRecovery: LedgerRecovery {
        static let recoversBeforeRun = true
        static let attempts = Mutex<[String]>([])

        struct Down: ServerUnreachable, CustomStringConvertible {
            var description: String { "ssh://down: host unreachable" }
        }

        func recover(_ entry: RemoteThing, context: RecoveryContext) async throws -> String {
            Self.attempts.withLock { $0.append(entry.name) }
            if entry.server == "ssh://down" { throw Down() }
            return "stopped"
        }
    }

    @Test(
        "a run's first recovery takes the entries on other machines whose recovery says so, not a server's; a server found unreachable is not tried again"
    )
    func beforeRunAndUnreachable() async throws {
        let fixture = try Fixture()
        var registry = fixture.registry
        registry.register(recovery: RemoteRecovery())
        let (local, server, up, down1, down2) = (
            Self.unique("local"), Self.unique("server"), Self.unique("up"), Self.unique("down1"), Self.unique("down2")
        )
        let suite = fixture.scratch.path("suite.yaml")
        let ledger = try RunLedger.create(in: fixture.directory, header: LedgerHeader(file: suite, profile: nil))
        ledger.record(LeftThing(name: local))
        ledger.record(LeftThing(name: server, server: "http://127.0.0.1:8474"))
        ledger.record(RemoteThing(name: up, server: "ssh://up"))
        ledger.record(RemoteThing(name: down1, server: "ssh://down"))
        ledger.record(RemoteThing(name: down2, server: "ssh://down"))
        _ = try await Self.die(ledger)

        let report = await Recovery(registry: registry, directory: fixture.directory).run(.beforeRun(of: suite), automatic: true)
        let run = try #require(report.runs.first)
        #expect(run.undone == ["remote thing \(up): stopped", "thing \(local): undone"])
        #expect(
            run.failed == [
                "remote thing \(down2): ssh://down: host unreachable", "remote thing \(down1): not tried, as ssh://down: host unreachable",
            ])
        // Newest first; the second entry on the unreachable server was not attempted, the Toxiproxy server's not at all.
        #expect(RemoteRecovery.attempts.withLock { $0 }.filter([up, down1, down2].contains) == [down2, up])
        #expect(Self.undone(among: [local, server]) == [local])
        #expect(fixture.ledgers.count == 1)

        // faultline recover, later, takes the rest.
        try await Self.waitUntilUnlocked(fixture.directory)
        let rest = await Recovery(registry: registry, directory: fixture.directory).run(
            RecoveryScope(servers: ["http://127.0.0.1:8474"], includesLocal: false))
        #expect(rest.runs.first?.undone == ["thing \(server): undone"])
    }

    @Test("an entry no registered plugin recovers stays in the ledger, named")
    func unknownKind() async throws {
        let fixture = try Fixture()
        let ledger = try RunLedger.create(in: fixture.directory, header: LedgerHeader(file: "suite.yaml", profile: nil))
        ledger.record(LeftThing(name: Self.unique("orphan")))
        _ = try await Self.die(ledger)
        let report = await Recovery(registry: PluginRegistry(), directory: fixture.directory).run()
        #expect(report.runs.first?.failed.first?.contains("no plugin registered recovers \"test.thing\"") == true)
        #expect(fixture.ledgers.count == 1)
    }

    @Test("a run records its ledger in its journals; a recovery of what it left is recorded there, the status kept when the run had ended")
    func journalRecordsRecovery() async throws {
        let kit = TestKit()
        let scratch = try ScratchDirectory(prefix: "faultline-ledger")
        let name = Self.unique("kept")
        let file = try scratch.write(
            "experiment.yaml",
            """
            title: leaves a thing
            description: its action records a ledger entry it never removes, as a plugin whose undo failed would
            method:
              - {type: action, name: leave, provider: {type: test.leave, name: \(name)}}
            """)
        var registry = kit.registry()
        registry.register(action: LeaveThing())
        registry.register(recovery: SharedRecovery(failing: []))
        var options = SuiteRunner.Options()
        options.environment = ["FAULTLINE_STATE_DIR": scratch.path("state")]
        options.journalPath = scratch.path("journal.json")
        let runner = SuiteRunner(registry: registry)
        let result = await runner.run(try runner.load(path: file, options: options))
        #expect(
            result.teardownProblems.contains { $0.contains("thing \(name)") && $0.contains("faultline recover retries") },
            "\(result.teardownProblems)")
        let before = try Journal.load(path: scratch.path("journal.json"))
        #expect(before.status == .completed)
        let ledgerID = try #require(before.ledger)

        let directory = LedgerDirectory.path(environment: options.environment)
        try await Self.waitUntilUnlocked(directory)
        let report = await Recovery(registry: registry, directory: directory).run()
        #expect(report.runs.first?.header.runID == ledgerID)
        #expect(report.runs.first?.journals == [scratch.path("journal.json")])
        let after = try Journal.load(path: scratch.path("journal.json"))
        #expect(after.status == .completed)
        #expect(after.recovery?.first?.undone == ["thing \(name): undone"])
        #expect(after.recovery?.first?.automatic == false)
    }

    /// Records a ``LeftThing`` and leaves it.
    struct LeaveThing: Action {
        struct Arguments: Decodable, Sendable { var name: String }
        static let type = "test.leave"
        static let summary = "records a ledger entry and leaves it"

        func perform(_ arguments: Arguments, context: ActivityContext) async throws -> Value {
            context.resources.ledger.record(LeftThing(name: arguments.name))
            return .null
        }
    }
}
