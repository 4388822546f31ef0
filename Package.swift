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
        .library(name: "FaultlineNetwork", targets: ["FaultlineNetwork"]),
        .library(name: "FaultlineProxy", targets: ["FaultlineProxy"]),
        .library(name: "FaultlineHTTP", targets: ["FaultlineHTTP"]),
        .library(name: "FaultlineToxiproxy", targets: ["FaultlineToxiproxy"]),
        .library(name: "FaultlineDemo", targets: ["FaultlineDemo"]),
        .executable(name: "faultline-demo", targets: ["faultline-demo"]),
        .library(name: "FaultlineReports", targets: ["FaultlineReports"]),
        .library(name: "FaultlineMetrics", targets: ["FaultlineMetrics"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // The in-process proxy's self-signed TLS certificates (a CA and a leaf made at start).
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
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
                "FaultlineNetwork",
                "FaultlineReports",
                "FaultlineProxy",
                "FaultlineHTTP",
                "FaultlineToxiproxy",
                "FaultlineMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "faultline",
            dependencies: ["FaultlineCLI"]
        ),
        // libFuzzer targets for the loader and the admin API parser (scripts/fuzz); an ordinary
        // build replays inputs.
        .executableTarget(
            name: "faultline-fuzz",
            dependencies: ["FaultlineCLI", "FaultlineKit", "FaultlineProxy"]
        ),
        .target(name: "FaultlineTesting", dependencies: ["FaultlineKit"]),

        // Run-time plugin modules (see Plugins/README.md).
        .target(name: "FaultlineProcess", dependencies: ["FaultlineKit", "CFaultlineSystem"], path: "Plugins/FaultlineProcess"),
        .target(
            name: "FaultlineNetwork",
            dependencies: ["FaultlineKit", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            path: "Plugins/FaultlineNetwork"
        ),
        .target(name: "FaultlineReports", dependencies: ["FaultlineKit"], path: "Plugins/FaultlineReports"),
        // `faultline run --metrics-listen`: the run's live metrics for Prometheus, fed by run events and loads.
        .target(
            name: "FaultlineMetrics",
            dependencies: [
                "FaultlineKit", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Plugins/FaultlineMetrics"
        ),
        .target(
            name: "FaultlineProxy",
            dependencies: [
                "FaultlineKit", "CFaultlineSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            path: "Plugins/FaultlineProxy"
        ),
        .target(
            name: "FaultlineHTTP",
            dependencies: [
                "FaultlineKit", "CFaultlineSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Plugins/FaultlineHTTP"
        ),
        .target(
            name: "FaultlineToxiproxy",
            dependencies: [
                "FaultlineKit",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Plugins/FaultlineToxiproxy"
        ),
        // Thin C wrappers for system calls Swift's Glibc module does not expose.
        .target(name: "CFaultlineSystem"),

        // The demo order system the suite breaks: a RESP store, an order API and a notifier. It
        // reads host:port with the kernel's `HostPort`, so it accepts what the suite's addresses accept.
        .target(
            name: "FaultlineDemo",
            dependencies: [
                "FaultlineKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "faultline-demo",
            dependencies: [
                "FaultlineDemo",
                // The kernel's SignalPipe (FaultlineDemo already depends on the kernel).
                "FaultlineKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),

        // What every test target shares (like swift-nio's NIOTestUtils): waiting, the binary runner,
        // test sockets and servers, scoped fixtures. Test-only, not a product: plugin authors get
        // FaultlineTesting, which depends on the kernel only.
        .target(
            name: "FaultlineTestSupport",
            dependencies: [
                "FaultlineKit", "FaultlineTesting", "FaultlineProcess", "FaultlineNetwork",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Tests/FaultlineTestSupport"
        ),

        .testTarget(name: "FaultlineKitTests", dependencies: ["FaultlineKit", "FaultlineTesting"]),
        .testTarget(
            name: "FaultlineProcessTests",
            dependencies: ["FaultlineProcess", "FaultlineKit", "FaultlineNetwork", "FaultlineTesting", "FaultlineTestSupport", "faultline"]
        ),
        .testTarget(
            name: "FaultlineNetworkTests",
            dependencies: [
                "FaultlineNetwork", "FaultlineKit", "FaultlineTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FaultlineHTTPTests",
            dependencies: [
                "FaultlineHTTP", "FaultlineNetwork", "FaultlineKit", "FaultlineTesting", "FaultlineTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "FaultlineToxiproxyTests",
            // Depends on the executable so that `swift test` builds the `faultline proxy` these tests drive.
            dependencies: [
                "FaultlineToxiproxy", "FaultlineProxy", "FaultlineNetwork", "FaultlineKit", "FaultlineTesting", "FaultlineTestSupport", "faultline",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "FaultlineProxyTests",
            // The compatibility test drives the built `faultline proxy`.
            dependencies: [
                "FaultlineProxy", "FaultlineNetwork", "FaultlineKit", "FaultlineProcess", "FaultlineTesting", "FaultlineTestSupport", "faultline",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            // The chaostoolkit-toxiproxy driver and its venv setup, run by the compatibility test and .ci/run.
            exclude: ["Resources"]
        ),
        .testTarget(
            name: "FaultlineReportsTests",
            dependencies: ["FaultlineReports", "FaultlineCLI", "FaultlineProcess", "FaultlineKit", "FaultlineTesting", "FaultlineTestSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "FaultlineCLITests",
            // Depends on the executables so that `swift test` builds the binaries these tests run.
            dependencies: [
                "FaultlineCLI", "FaultlineKit", "FaultlineNetwork", "FaultlineTesting", "FaultlineTestSupport", "faultline", "faultline-fuzz",
                "FaultlineMetrics", "FaultlineHTTP",
            ],
            // Inputs the fuzz targets once crashed or hung on, replayed by FuzzRegressionTests.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "FaultlineDemoTests",
            // Depends on the executable so that `swift test` builds the binary these tests run.
            dependencies: [
                "FaultlineDemo", "faultline-demo", "faultline", "FaultlineProcess", "FaultlineNetwork", "FaultlineKit", "FaultlineTesting",
                "FaultlineTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),

        // Benchmarks: programs that print measurements beside a reference measured in the same run.
        // Runs the shipped `faultline proxy` as a child process (build both with `swift build -c release`).
        .executableTarget(name: "ProxyBenchmark", path: "Benchmarks/proxy"),
        .executableTarget(
            name: "FaultlineLoadBenchmark",
            dependencies: [
                "FaultlineHTTP", "FaultlineKit", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/load",
            exclude: ["run.sh"]
        ),
        // What writing the journal costs a run of many records (Benchmarks/journal/run.sh).
        .executableTarget(name: "JournalBenchmark", dependencies: ["FaultlineKit"], path: "Benchmarks/journal", exclude: ["run.sh"]),
    ],
    swiftLanguageModes: [.v6]
)

// scripts/fuzz builds with FAULTLINE_FUZZ=1: libFuzzer's coverage instrumentation for this
// package's own Swift modules, and the fuzz binary linked with libFuzzer (through lld: gold fails
// on libFuzzer's debug information). The dependencies compile exactly as in an ordinary debug
// build, so a fuzz build in the same build directory (CI's) reuses them.
if Context.environment["FAULTLINE_FUZZ"] == "1" {
    for target in package.targets where [.regular, .executable].contains(target.type) && target.name != "CFaultlineSystem" {
        target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-sanitize=fuzzer"]), .define("FAULTLINE_FUZZING")]
    }
    for target in package.targets where target.name == "faultline-fuzz" {
        target.linkerSettings = (target.linkerSettings ?? []) + [.unsafeFlags(["-sanitize=fuzzer", "-Xclang-linker", "-fuse-ld=lld"])]
    }
}
