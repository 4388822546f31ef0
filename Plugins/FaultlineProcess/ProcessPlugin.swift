import FaultlineKit

/// The process plugin: the Chaos Toolkit `process` provider, process chaos (`process.kill`,
/// `process.signal`, `process.running`) and the services a run needs (`services:` in a suite,
/// `process.start`, `process.stop`, `process.restart`), and the Python standard-library functions
/// Chaos Toolkit experiments call (`os.path.exists`, `os.remove`, …) without Python.
public enum ProcessPlugin: FaultlinePlugin {
    public static let name = "process"

    public static func register(into registry: inout PluginRegistry) {
        registry.register(probe: ProcessProvider())
        registry.register(action: ProcessProvider())
        registry.register(action: ProcessKill())
        registry.register(action: ProcessSignal())
        registry.register(probe: ProcessRunning())
        registry.register(action: ProcessStart())
        registry.register(action: ProcessStop())
        registry.register(action: ProcessRestart())
        registry.register(extension: ServicesExtension())
        PythonStandardLibrary.register(into: &registry)
        registry.register(recovery: StoppedProcess.Recovery())
        registry.register(recovery: MarkedProcesses.Recovery())
        registry.register(recovery: RemoteProcesses.Recovery())
        registry.register(recovery: RemoteStoppedProcess.Recovery())
    }
}
