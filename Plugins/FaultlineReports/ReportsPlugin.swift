import FaultlineKit

/// The built-in reporters: `md` (GitHub Markdown), `html` (one self-contained page with inline SVG
/// charts) and `junit` (JUnit XML for CI). `md` and `html` also render before/after comparisons.
public enum ReportsPlugin: FaultlinePlugin {
    public static let name = "reports"

    public static func register(into registry: inout PluginRegistry) {
        registry.register(reporter: MarkdownReporter())
        registry.register(reporter: HTMLReporter())
        registry.register(reporter: JUnitReporter())
    }
}
