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

// How `faultline plugins` names the argument types that take more than one form.
extension RequestTimeout: SchemaTypeNamed {
    public static var schemaTypeName: String { "seconds or [connect, read]" }
}

extension ExpectedStatus: SchemaTypeNamed {
    public static var schemaTypeName: String { "status, list, range or class" }
}

extension ThinkTime: SchemaTypeNamed {
    public static var schemaTypeName: String { "seconds or [min, max]" }
}
