import ArgumentParser
import FaultlineKit
import Foundation

/// `faultline recover`: undoes what killed runs left behind, from their ledgers.
struct RecoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Undo what killed runs left behind: proxies and toxics on Toxiproxy servers, frozen processes, services (here and on ssh hosts).",
        discussion: """
            Every run keeps a ledger of what it did outside its own process ($\(LedgerDirectory.variable)/ledgers, \
            else $XDG_STATE_HOME/faultline/ledgers, else ~/.local/state/faultline/ledgers). A run that ends normally \
            undoes it all and deletes its ledger; one killed outright (SIGKILL, a crash) leaves it. `recover` undoes, \
            newest first, what the ledgers of dead runs hold — only that: a live run's ledger is never touched. What \
            cannot be undone (a server down) stays in the ledger for the next try. The dead run's journals record the \
            recovery, and a journal left `running` becomes `interrupted`. `faultline run` does this by itself first \
            for its suite's runs on this machine and for every dead run's leftovers on the Toxiproxy servers and \
            agents it uses. A suite's agents are reached with the token read where the run read it (the variable of \
            `token: {type: env, key}`, the file of `{type: file, path}`; run `recover` with the run's environment), \
            else TOXIPROXY_AUTH_TOKEN.
            Exit codes: 0 nothing left to undo, 1 something could not be undone.
            """)

    @Argument(help: "Only runs of this suite or experiment file.")
    var file: String?

    @Option(help: "Only runs of this profile.")
    var profile: String?

    @Option(
        help: ArgumentHelp(
            "Only what is on this Toxiproxy server (e.g. http://127.0.0.1:8474) or ssh host (ssh://user@host:port); repeatable.", valueName: "url"))
    var server: [String] = []

    @Flag(help: "Say what would be undone, and undo nothing.")
    var dryRun = false

    @Option(help: ArgumentHelp("The directory of ledgers (default: from \(LedgerDirectory.variable), XDG_STATE_HOME or HOME).", valueName: "dir"))
    var ledgerDir: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let directory = ledgerDir ?? LedgerDirectory.path(environment: environment)
        let scope = RecoveryScope(
            file: file, profile: profile, servers: server.isEmpty ? nil : Set(server.map(RecoveryScope.normalizedServer)),
            includesLocal: server.isEmpty)
        let report = await Recovery(registry: CommandEnvironment.registry, directory: directory, context: RecoveryContext(environment: environment))
            .run(scope, dryRun: dryRun)
        let t = Terminal.shared
        for line in report.lines { t.write(line + "\n") }
        if report.isEmpty { t.write("nothing to recover in \(directory)\n") }
        for header in report.live {
            t.write(t.paint("left alone: the ledger of a live run (\(header.file), pid \(header.pid), started \(header.start))", .dim) + "\n")
        }
        if report.failedCount > 0 {
            t.error(
                t.paint("warning: ", .yellow)
                    + "\(report.failedCount) thing\(report.failedCount == 1 ? "" : "s") could not be undone and stay in the ledger; run faultline recover again"
            )
            throw ExitCode(1)
        }
    }
}
