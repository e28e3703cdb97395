// swift-tools-version: 6.2
import PackageDescription

// One set of Swift settings for every target (STYLE §6.1).
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// Scripts/fuzz.sh builds husk-fuzz with HUSK_FUZZ=1 and libFuzzer: its entry point is then
// libFuzzer's main, so the target's own (a corpus replayer) goes.
let fuzzing = Context.environment["HUSK_FUZZ"] == "1"

// One set of C settings for both C targets (CShim, CArchive).
let cSettings: [CSetting] = [.define("_GNU_SOURCE"), .unsafeFlags(["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"])]

let package = Package(
    name: "Husk",
    products: [
        .executable(name: "husk", targets: ["husk"]),
        .executable(name: "husk-runc", targets: ["husk-runc"]),
        .executable(name: "husk-serve", targets: ["husk-serve"]),
        .executable(name: "husk-pull", targets: ["husk-pull"]),
        .library(name: "HuskRuntime", targets: ["HuskRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // CRI v1 over gRPC: only HuskCRI and husk-serve use these (DESIGN §3, CRI mode).
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        // The streaming server's HTTP (upgrade to SPDY/3.1): SwiftNIO, which gRPC runs on already.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        // Without its default traits: they pull Foundation in for stream helpers we do not use.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0", traits: []),
        // Registry pulls (HuskRegistry, husk-pull only): an HTTP/TLS client and TOML for
        // containerd's hosts.toml.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // The C core: syscall wrappers and the child-side executor (DESIGN §3).
        .target(
            name: "CShim",
            path: "CShim",
            exclude: ["README.md"],
            cSettings: cSettings,
            linkerSettings: [.linkedLibrary("seccomp")]
        ),
        // The image layer's C: SHA-256 (libcrypto) and the layer unpacker (tar, gzip, zstd).
        // Only HuskImage links it, so the runtime's binaries stay free of those libraries.
        .target(
            name: "CArchive",
            exclude: ["README.md"],
            cSettings: cSettings,
            linkerSettings: [.linkedLibrary("crypto"), .linkedLibrary("z"), .linkedLibrary("zstd"), .linkedLibrary("dl")]
        ),
        // zlib with a preset dictionary, flushed per block: SPDY's header compression.
        .target(name: "CZlib", cSettings: cSettings),
        // SPDY/3.1 framing, written by hand (no maintained Swift library speaks it): the CRI
        // streaming server's wire format, a module of its own so the fuzz target needs no gRPC.
        .target(name: "HuskSPDY", dependencies: ["CZlib"], swiftSettings: swiftSettings),
        // The JSON reader, writer and field-path errors: a leaf every layer may use.
        .target(name: "HuskJSON", swiftSettings: swiftSettings),
        .target(
            name: "HuskSystem",
            dependencies: ["CShim", .product(name: "SystemPackage", package: "swift-system")],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HuskImage",
            dependencies: ["CArchive", "HuskJSON", "HuskSystem"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HuskRuntime",
            dependencies: ["HuskJSON", "HuskSystem", "CShim"],
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HuskPod",
            dependencies: ["HuskImage", "HuskJSON", "HuskRuntime", "HuskSystem", .product(name: "Yams", package: "Yams")],
            exclude: ["pause", "keeper", "README.md"],
            swiftSettings: swiftSettings,
            plugins: ["PauseBuilder"]
        ),
        .plugin(name: "PauseBuilder", capability: .buildTool()),
        // The flags every command line of Husk shares (--root, --state, --image-source, ...).
        .target(
            name: "HuskOptions",
            dependencies: [
                "HuskPod", "HuskImage", "HuskJSON", "HuskSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // The CRI v1 gRPC server (`husk serve`): generated code from Proto/api.proto
        // (Scripts/gen-cri.sh, committed) and the translation CRI <-> Husk. Only husk-serve links
        // it: husk, husk-runc and the pod supervisor stay free of gRPC and SwiftNIO.
        .target(
            name: "HuskCRI",
            dependencies: [
                "HuskImage", "HuskJSON", "HuskPod", "HuskSPDY", "HuskSystem",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            exclude: ["Proto"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "husk",
            dependencies: [
                "HuskOptions", "HuskPod", "HuskImage", "HuskJSON", "HuskRuntime", "HuskSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // The CRI daemon, started as `husk serve` (husk execs it) or directly.
        .executableTarget(
            name: "husk-serve",
            dependencies: [
                "HuskCRI", "HuskOptions", "HuskPod", "HuskSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // The registry client (OCI distribution API, auth, hosts.toml), linked only into husk-pull.
        .target(
            name: "HuskRegistry",
            dependencies: [
                "HuskImage", "HuskJSON", "HuskSystem",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: swiftSettings
        ),
        // The pull helper `husk`, the supervisors and `husk serve` run for registry images.
        .executableTarget(
            name: "husk-pull",
            dependencies: ["HuskImage", "HuskJSON", "HuskRegistry", "HuskSystem"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "husk-runc",
            dependencies: ["HuskJSON", "HuskRuntime", "HuskSystem"],
            swiftSettings: swiftSettings
        ),
        // Fuzz targets for every parser of outside input (Scripts/fuzz.sh); built normally, a
        // replayer of corpora and past crashes.
        .executableTarget(
            name: "husk-fuzz",
            dependencies: [
                "CArchive", "HuskImage", "HuskJSON", "HuskPod", "HuskSPDY", "HuskSystem",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings + (fuzzing ? [.define("HUSK_LIBFUZZER"), .unsafeFlags(["-parse-as-library"])] : [])
        ),
        .testTarget(
            name: "HuskSystemTests",
            dependencies: ["HuskJSON", "HuskSystem", "CShim"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HuskJSONTests",
            dependencies: ["HuskJSON", "HuskSystem"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HuskRuntimeTests",
            dependencies: ["HuskJSON", "HuskRuntime", "HuskSystem"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HuskImageTests",
            dependencies: ["HuskImage", "HuskSystem"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HuskPodTests",
            dependencies: ["HuskPod", "HuskImage", "HuskJSON", "HuskRuntime", "HuskSystem"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HuskCRITests",
            dependencies: ["HuskCRI", "HuskSPDY"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["HuskImage", "HuskJSON", "HuskPod", "HuskRuntime", "HuskSystem", "CShim", "husk-runc", "husk", "husk-fuzz", "husk-pull", "HuskRegistry"],
            swiftSettings: swiftSettings
        ),
    ]
)
