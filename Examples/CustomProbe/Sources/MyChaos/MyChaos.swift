import DNSProbe
import FaultlineCLI

@main
struct MyChaos: FaultlineMain {
    // Edit 3 of 3: the probe joins the built-in list (a ProbePlugin is its own plugin).
    static let plugins = Faultline.builtins + [DNSResolveProbe.self]
}
