// swift-tools-version: 6.2
import PackageDescription

// One set of Swift settings for every target (STYLE §6.1).
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Husk",
    products: [
        .executable(name: "husk-runc", targets: ["husk-runc"]),
        .library(name: "HuskRuntime", targets: ["HuskRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // The C core: syscall wrappers and the child-side executor (DESIGN §3).
        .target(
            name: "CShim",
            path: "CShim",
            exclude: ["README.md"],
            cSettings: [.define("_GNU_SOURCE"), .unsafeFlags(["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"])],
            linkerSettings: [.linkedLibrary("seccomp")]
        ),
        .target(
            name: "HuskSystem",
            dependencies: ["CShim", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HuskRuntime",
            dependencies: ["HuskSystem", "CShim"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "husk-runc",
            dependencies: ["HuskRuntime", "HuskSystem"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HuskSystemTests",
            dependencies: ["HuskSystem", "CShim"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HuskRuntimeTests",
            dependencies: ["HuskRuntime", "HuskSystem"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["HuskRuntime", "HuskSystem", "husk-runc"],
            swiftSettings: swiftSettings
        ),
    ]
)
