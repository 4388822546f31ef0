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
        .library(name: "FaultlineHTTP", targets: ["FaultlineHTTP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
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
                "FaultlineHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "faultline",
            dependencies: ["FaultlineCLI", "FaultlineKit", "FaultlineProcess", "FaultlineHTTP"]
        ),
        .target(name: "FaultlineTesting", dependencies: ["FaultlineKit"]),

        // Run-time plugin modules (see Plugins/README.md).
        .target(name: "FaultlineProcess", dependencies: ["FaultlineKit", "CFaultlineSystem"], path: "Plugins/FaultlineProcess"),
        .target(
            name: "FaultlineHTTP",
            dependencies: [
                "FaultlineKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Plugins/FaultlineHTTP"
        ),
        // Thin C wrappers for system calls Swift's Glibc module does not expose.
        .target(name: "CFaultlineSystem"),

        .testTarget(name: "FaultlineKitTests", dependencies: ["FaultlineKit", "FaultlineTesting"]),
        .testTarget(name: "FaultlineProcessTests", dependencies: ["FaultlineProcess", "FaultlineKit", "FaultlineTesting"]),
        .testTarget(
            name: "FaultlineHTTPTests",
            dependencies: [
                "FaultlineHTTP", "FaultlineKit", "FaultlineTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "FaultlineCLITests",
            dependencies: ["FaultlineCLI", "FaultlineKit", "FaultlineTesting"]
        ),

        // Benchmarks: programs that print ratios against a reference measured in the same run.
        .executableTarget(
            name: "FaultlineLoadBenchmark",
            dependencies: ["FaultlineHTTP", "FaultlineKit", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            path: "Benchmarks/load",
            exclude: ["run.sh"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
