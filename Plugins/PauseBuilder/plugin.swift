import Foundation
import PackagePlugin

/// Builds the pod's pause process (Sources/HuskPod/pause/pause.c) and its keeper
/// (Sources/HuskPod/keeper/keeper.c) as tiny static executables
/// with musl (13 KB; glibc's static one is ~700 KB) and embeds it in HuskPod as base64: the
/// supervisor runs it from a sealed memfd, so it is never a writable file on the host.
/// SwiftPM cannot link a C executable without the Swift runtime, hence this plugin.
@main
struct PauseBuilder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        var commands: [Command] = []
        // pause.c → PauseBinary.swift (pauseExecutableBase64), keeper.c → KeeperBinary.swift.
        for (name, dir, variable) in [("pause", "pause", "pauseExecutableBase64"), ("keeper", "keeper", "keeperExecutableBase64")] {
            let source = target.directoryURL.appending(path: "\(dir)/\(name).c")
            let elf = context.pluginWorkDirectoryURL.appending(path: name)
            let swift = context.pluginWorkDirectoryURL.appending(path: name.prefix(1).uppercased() + name.dropFirst() + "Binary.swift")
            let script = """
                set -e
                if command -v musl-gcc >/dev/null 2>&1; then cc=musl-gcc; else cc=cc; fi
                $cc -static -Os -s -Wall -Wextra -Werror -o "$1" "$2"
                { printf '/// The %s executable (%s.c, built by Plugins/PauseBuilder), base64.\\n' "$4" "$4"
                  printf 'let %s = "' "$5"; base64 -w0 "$1"; printf '"\\n'; } > "$3"
                """
            commands.append(
                .buildCommand(
                    displayName: "Building the \(name) executable",
                    executable: URL(fileURLWithPath: "/bin/sh"),
                    arguments: ["-c", script, "sh", elf.path, source.path, swift.path, name, variable],
                    inputFiles: [source],
                    outputFiles: [swift]))
        }
        return commands
    }
}
