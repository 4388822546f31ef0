import FaultlineKit

/// The in-process proxy plugin: Toxiproxy's toxics (registered through the same ``Toxic`` door as
/// any plugin's), the `inprocess` toxic backend, registered as the default (a profile's
/// `toxics: {backend: …}` names another), and the run extension that brings the backend and the
/// suite's `proxies:` up.
public enum ProxyPlugin: FaultlinePlugin {
    public static let name = "proxy"

    /// The built-in toxic types, Toxiproxy's names and units.
    public static let toxics: [any Toxic.Type] =
        [
            LatencyToxic.self, BandwidthToxic.self, SlowCloseToxic.self, TimeoutToxic.self, ResetPeerToxic.self, SlicerToxic.self,
            LimitDataToxic.self, NoopToxic.self,
        ] + httpToxics

    /// The HTTP toxics: Faultline's own, run by the in-process proxy only (a Toxiproxy server has none).
    public static let httpToxics: [any Toxic.Type] = [
        HTTPAbortToxic.self, HTTPLatencyToxic.self, HTTPResetToxic.self, HTTPHeadersToxic.self, HTTPBodyToxic.self, HTTPRewriteToxic.self,
        HTTPBandwidthToxic.self,
    ]

    public static func register(into registry: inout PluginRegistry) {
        for toxic in toxics { registry.register(toxic: toxic) }
        registry.register(toxicBackend: InProcessBackendFactory(), isDefault: true)
        registry.register(extension: ToxicBackendExtension())
    }
}
