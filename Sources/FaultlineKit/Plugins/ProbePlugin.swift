/// A probe that is its own plugin: list its type where plugins are listed, with no
/// ``FaultlinePlugin`` of its own to write.
///
/// ```swift
/// public struct DNSResolveProbe: ProbePlugin {
///     public static let type = "dns.resolve"
///     …
///     public init() {}
/// }
///
/// @main
/// struct MyChaos: FaultlineMain {
///     static let plugins = Faultline.builtins + [DNSResolveProbe.self]
/// }
/// ```
///
/// It registers one instance made with ``init()`` under its ``Provider/type``, and `faultline
/// plugins` names the plugin after that type. A module that brings several providers, a toxic or a
/// run extension writes a ``FaultlinePlugin`` instead.
public protocol ProbePlugin: Probe, FaultlinePlugin {
    /// The probe the plugin registers.
    init()
}

extension ProbePlugin {
    public static var name: String { type }

    public static func register(into registry: inout PluginRegistry) {
        registry.register(probe: Self())
    }
}
