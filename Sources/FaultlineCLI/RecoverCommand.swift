import ArgumentParser
import FaultlineKit
import FaultlineToxiproxy
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
            for its suite's runs on this machine and on their ssh hosts, and for every dead run's leftovers on the Toxiproxy servers and \
            agents it uses. A suite's agents are reached with the token read where the run read it (the variable of \
            `token: {type: env, key}` or of a secret read from the environment, the file of `{type: file, path}`; run \
            `recover` with the run's environment), else TOXIPROXY_AUTH_TOKEN. A token the run was given as a string \
            (a secret written in the suite, a var file or --var) is not recorded: give it with --token AGENT=env:VARIABLE \
            or --token AGENT=file:PATH.
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

    @Option(
        help: ArgumentHelp(
            "An agent's API token, by agent name (or server URL): NAME=env:VARIABLE or NAME=file:PATH, never the token itself (a command line is readable by every user); repeatable.",
            valueName: "name=source"))
    var token: [String] = []

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
        let tokens = try Self.tokens(token, environment: environment)
        let report = await Recovery(
            registry: CommandEnvironment.registry, directory: directory, context: RecoveryContext(environment: environment, tokens: tokens)
        )
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

    /// Reads each `--token NAME=env:VARIABLE` or `NAME=file:PATH`.
    /// - Throws: a `ValidationError` naming the option for a malformed one, an unset variable or an
    ///   unreadable file; the token itself is never in a message.
    static func tokens(_ options: [String], environment: [String: String]) throws -> [String: String] {
        var tokens: [String: String] = [:]
        for option in options {
            guard let equals = option.firstIndex(of: "="), equals != option.startIndex else {
                throw ValidationError("--token takes NAME=env:VARIABLE or NAME=file:PATH (NAME: the agent, or the server's URL)")
            }
            let name = String(option[..<equals])
            let written = String(option[option.index(after: equals)...])
            let source: TokenSource
            if written.hasPrefix("env:") {
                source = .environment(String(written.dropFirst(4)))
            } else if written.hasPrefix("file:") {
                source = .file(String(written.dropFirst(5)))
            } else {
                throw ValidationError(
                    "--token \(name)=…: give where the token is, env:VARIABLE or file:PATH, not the token itself (every user of this machine can read a command line)"
                )
            }
            let token: String
            do {
                token = try source.read(environment: environment)
            } catch {
                switch error {
                case .unsetVariable(let variable):
                    throw ValidationError("--token \(name)=\(written): the environment variable \(variable) is not set (or empty)")
                case .unreadableFile(let path): throw ValidationError("--token \(name)=\(written): cannot read \(path)")
                case .emptyFile: throw ValidationError("--token \(name)=\(written): the file is empty")
                }
            }
            // Agent names hold no ":", URLs do.
            tokens[name.contains(":") ? RecoveryScope.normalizedServer(name) : name] = token
        }
        return tokens
    }
}
