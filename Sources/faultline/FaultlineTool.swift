import FaultlineCLI

@main
struct FaultlineTool: FaultlineMain {
    static let plugins = Faultline.builtins
}
