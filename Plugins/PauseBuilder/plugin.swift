import Foundation
import PackagePlugin

/// Builds the pod's pause process (Sources/HuskPod/pause/pause.c) as a tiny static executable
/// with musl (13 KB; glibc's static one is ~700 KB) and embeds it in HuskPod as base64: the
/// supervisor runs it from a sealed memfd, so it is never a writable file on the host.
/// SwiftPM cannot link a C executable without the Swift runtime, hence this plugin.
@main
struct PauseBuilder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let source = target.directoryURL.appending(path: "pause/pause.c")
        let elf = context.pluginWorkDirectoryURL.appending(path: "pause")
        let swift = context.pluginWorkDirectoryURL.appending(path: "PauseBinary.swift")
        let script = """
            set -e
            if command -v musl-gcc >/dev/null 2>&1; then cc=musl-gcc; else cc=cc; fi
            $cc -static -Os -s -Wall -Werror -o "$1" "$2"
            { printf '/// The pause executable (pause.c, built by Plugins/PauseBuilder), base64.\\n'
              printf 'let pauseExecutableBase64 = "'; base64 -w0 "$1"; printf '"\\n'; } > "$3"
            """
        return [
            .buildCommand(
                displayName: "Building the pause executable",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script, "sh", elf.path, source.path, swift.path],
                inputFiles: [source],
                outputFiles: [swift])
        ]
    }
}
