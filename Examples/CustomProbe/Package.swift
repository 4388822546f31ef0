// swift-tools-version: 6.1
// A chaos binary of your own: Faultline's built-in plugins plus one probe written here.
import PackageDescription

let package = Package(
    name: "CustomProbe",
    platforms: [.macOS(.v15)],
    dependencies: [
        // In your project: .package(url: "https://github.com/<you>/faultline", from: "…")
        .package(name: "Faultline", path: "../..")
    ],
    targets: [
        // Edit 1 of 3: the probe's module.
        .target(name: "DNSProbe", dependencies: [.product(name: "FaultlineKit", package: "Faultline")]),
        .executableTarget(
            name: "my-chaos",
            dependencies: [
                .product(name: "FaultlineCLI", package: "Faultline"),
                // Edit 2 of 3: the binary depends on it.
                "DNSProbe",
            ],
            path: "Sources/MyChaos"
        ),
    ],
    swiftLanguageModes: [.v6]
)
