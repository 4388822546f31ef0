import DNSProbe
import FaultlineCLI

@main
struct MyChaos: FaultlineMain {
    // Edit 3 of 3: the plugin joins the built-in list.
    static let plugins = Faultline.builtins + [DNSPlugin.self]
}
