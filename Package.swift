// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Faultline",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "faultline", targets: ["faultline"]),
        .library(name: "FaultlineKit", targets: ["FaultlineKit"]),
        .library(name: "FaultlineCLI", targets: ["FaultlineCLI"]),
        .library(name: "FaultlineTesting", targets: ["FaultlineTesting"]),
        .library(name: "FaultlineProcess", targets: ["FaultlineProcess"]),
        .library(name: "FaultlineDemo", targets: ["FaultlineDemo"]),
        .executable(name: "faultline-demo", targets: ["faultline-demo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // The kernel: protocols, experiment model, loading, substitution, tolerances, engine, journal.
        .target(
            name: "FaultlineKit",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "FaultlineCLI",
            dependencies: [
                "FaultlineKit",
                "FaultlineProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "faultline",
            dependencies: ["FaultlineCLI", "FaultlineKit", "FaultlineProcess"]
        ),
        .target(name: "FaultlineTesting", dependencies: ["FaultlineKit"]),

        // Run-time plugin modules (see Plugins/README.md).
        .target(name: "FaultlineProcess", dependencies: ["FaultlineKit", "CFaultlineSystem"], path: "Plugins/FaultlineProcess"),
        // Thin C wrappers for system calls Swift's Glibc module does not expose.
        .target(name: "CFaultlineSystem"),

        // The demo order system the suite breaks: a RESP store, an order API and a notifier.
        .target(
            name: "FaultlineDemo",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "faultline-demo",
            dependencies: [
                "FaultlineDemo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        .testTarget(name: "FaultlineKitTests", dependencies: ["FaultlineKit", "FaultlineTesting"]),
        .testTarget(name: "FaultlineProcessTests", dependencies: ["FaultlineProcess", "FaultlineKit", "FaultlineTesting"]),
        .testTarget(
            name: "FaultlineCLITests",
            // Depends on the executable so that `swift test` builds the binary these tests run.
            dependencies: ["FaultlineCLI", "FaultlineKit", "FaultlineTesting", "faultline"]
        ),
        .testTarget(
            name: "FaultlineDemoTests",
            // Depends on the executable so that `swift test` builds the binary these tests run.
            dependencies: [
                "FaultlineDemo", "faultline-demo", "FaultlineProcess",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
