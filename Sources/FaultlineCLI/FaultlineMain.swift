import ArgumentParser
import FaultlineHTTP
import FaultlineKit
import FaultlineNetwork
import FaultlineProcess
import FaultlineReports
import FaultlineProxy
import FaultlineToxiproxy
import Foundation
import Logging
import Synchronization

/// The plugins Faultline ships with, for `faultline` itself and for custom binaries:
/// `static let plugins = Faultline.builtins + [MyPlugin.self]`.
public enum Faultline {
    public static let builtins: [any FaultlinePlugin.Type] = [
        ToxicActionsPlugin.self,
        ProxyPlugin.self,
        ToxiproxyPlugin.self,
        ProcessPlugin.self,
        HTTPPlugin.self,
        NetworkPlugin.self,
        ReportsPlugin.self,
    ]
}

/// The entry point of a Faultline binary: list the plugins, and `main` does the rest.
///
/// ```swift
/// import FaultlineCLI
///
/// @main
/// struct MyChaos: FaultlineMain {
///     static let plugins = Faultline.builtins + [MyProbePlugin.self]
/// }
/// ```
public protocol FaultlineMain {
    /// The plugins to register, in order (a later registration of a name replaces an earlier one).
    static var plugins: [any FaultlinePlugin.Type] { get }
}

extension FaultlineMain {
    /// Builds the registry once, bootstraps logging, and runs the command line.
    public static func main() async {
        // A closed stdout (`faultline run | head`) must not kill the run before its teardown.
        signal(SIGPIPE, SIG_IGN)
        CommandEnvironment.bootstrap(plugins: plugins)
        do {
            var command = try FaultlineCommand.parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            // A malformed command line is invalid input like a malformed experiment: exit 2, as the
            // README's table says, not ArgumentParser's EX_USAGE (64).
            if FaultlineCommand.exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((FaultlineCommand.fullMessage(for: error) + "\n").utf8))
                exit(2)
            }
            FaultlineCommand.exit(withError: error)
        }
    }
}

/// What the commands share, built once at startup by ``FaultlineMain/main()``.
enum CommandEnvironment {
    private static let state = Mutex<PluginRegistry>(PluginRegistry())

    static var registry: PluginRegistry { state.withLock { $0 } }

    static func bootstrap(plugins: [any FaultlinePlugin.Type]) {
        state.withLock { $0 = PluginRegistry(plugins: plugins) }
        LoggingSystem.bootstrap { label in ConsoleLogHandler(label: label) }
    }
}

/// `faultline`: the root command.
struct FaultlineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "faultline",
        abstract: "Chaos experiments: inject faults, drive load, judge a steady-state hypothesis, always clean up.",
        discussion: """
            Run the suite in ./experiments.yaml on its default profile with `faultline run`.
            Exit codes: 0 completed, 1 deviated/failed/aborted, 2 invalid input, 130 interrupted.
            """,
        version: "faultline \(Engine.version)",
        subcommands: [RunCommand.self, ValidateCommand.self, PluginsCommand.self, ReportCommand.self, ProxyCommand.self, RecoverCommand.self],
        defaultSubcommand: nil
    )
}
