import FaultlineKit

/// The HTTP plugin: the `http` provider (probe and action) and the `http.load` probe.
public enum HTTPPlugin: FaultlinePlugin {
    public static let name = "http"

    public static func register(into registry: inout PluginRegistry) {
        registry.register(probe: HTTPProvider())
        registry.register(action: HTTPProvider())
        registry.register(probe: LoadProbe())
    }
}
