/// husk-runc's command line, parsed by hand: it is exec'd once per container operation (by
/// containerd's shim, by conformance suites), and swift-argument-parser's reflection-based
/// set-up costs about 1.5 ms per start — a fifth of a whole `run` (measured with perf). The
/// shape follows runc: `husk-runc [global flags] COMMAND [flags] ARGS...`.
struct FlagSpec {
    let long: String
    let short: Character?
    let takesValue: Bool
    let help: String
}

struct CommandSpec {
    let name: String
    let usage: String
    let summary: String
    let flags: [FlagSpec]
    let minArgs: Int
    let maxArgs: Int
}

struct ParsedCommandLine {
    var globals: [String: String] = [:]
    var command: String?
    var flags: [String: String] = [:]
    var args: [String] = []
    var wantsHelp = false
    var wantsVersion = false

    func flag(_ name: String) -> Bool { flags[name] != nil }
    /// Every value of a repeatable flag, in order.
    func values(_ name: String) -> [String] { flags[name].map { $0.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init) } ?? [] }
    func value(_ name: String) -> String? { flags[name] }
    func global(_ name: String) -> String? { globals[name] }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
}

enum RuncCLI {
    static let globalFlags: [FlagSpec] = [
        FlagSpec(long: "root", short: nil, takesValue: true, help: "root directory for container state (default /run/husk-runc)"),
        FlagSpec(long: "log", short: nil, takesValue: true, help: "also write errors and warnings to this file"),
        FlagSpec(long: "log-format", short: nil, takesValue: true, help: "log file format: text (default) or json"),
        FlagSpec(long: "debug", short: nil, takesValue: false, help: "log debug messages"),
        FlagSpec(long: "systemd-cgroup", short: nil, takesValue: false, help: "not supported: Husk manages cgroupfs directly"),
        FlagSpec(long: "rootless", short: nil, takesValue: true, help: "accepted for runc compatibility; only false/auto"),
        FlagSpec(long: "criu", short: nil, takesValue: true, help: "accepted for runc compatibility; ignored"),
        FlagSpec(long: "ignore-missing-controllers", short: nil, takesValue: false,
                 help: "run when cgroup2 lacks a controller a limit needs (the limit is skipped, with a warning); also HUSK_RUNC_IGNORE_MISSING_CONTROLLERS=1"),
        FlagSpec(long: "help", short: "h", takesValue: false, help: "show help"),
        FlagSpec(long: "version", short: "v", takesValue: false, help: "print the version"),
    ]

    static let updateFlags: [FlagSpec] = [
        FlagSpec(long: "resources", short: "r", takesValue: true, help: "JSON file of linux.resources (- for stdin); flags are then ignored"),
        FlagSpec(long: "blkio-weight", short: nil, takesValue: true, help: "block IO weight, 10 to 1000"),
        FlagSpec(long: "cpu-period", short: nil, takesValue: true, help: "CPU CFS period (microseconds)"),
        FlagSpec(long: "cpu-quota", short: nil, takesValue: true, help: "CPU CFS quota (microseconds per period, -1 for none)"),
        FlagSpec(long: "cpu-share", short: nil, takesValue: true, help: "CPU shares (relative weight)"),
        FlagSpec(long: "cpu-rt-period", short: nil, takesValue: true, help: "not in cgroup v2 (refused)"),
        FlagSpec(long: "cpu-rt-runtime", short: nil, takesValue: true, help: "not in cgroup v2 (refused)"),
        FlagSpec(long: "cpuset-cpus", short: nil, takesValue: true, help: "CPUs to run on (0-3, 0,1)"),
        FlagSpec(long: "cpuset-mems", short: nil, takesValue: true, help: "memory nodes (0-3, 0,1)"),
        FlagSpec(long: "memory", short: nil, takesValue: true, help: "memory limit (100m, 1g; -1 for none)"),
        FlagSpec(long: "memory-reservation", short: nil, takesValue: true, help: "memory soft limit (memory.low)"),
        FlagSpec(long: "memory-swap", short: nil, takesValue: true, help: "memory plus swap limit (-1 for none)"),
        FlagSpec(long: "kernel-memory", short: nil, takesValue: true, help: "not in cgroup v2 (ignored, as runc)"),
        FlagSpec(long: "kernel-memory-tcp", short: nil, takesValue: true, help: "not in cgroup v2 (ignored, as runc)"),
        FlagSpec(long: "pids-limit", short: nil, takesValue: true, help: "largest number of processes (-1 for none)"),
        FlagSpec(long: "l3-cache-schema", short: nil, takesValue: true, help: "Intel RDT is not supported (refused)"),
        FlagSpec(long: "mem-bw-schema", short: nil, takesValue: true, help: "Intel RDT is not supported (refused)"),
    ]

    static let createFlags: [FlagSpec] = [
        FlagSpec(long: "bundle", short: "b", takesValue: true, help: "path to the bundle directory (default .)"),
        FlagSpec(long: "pid-file", short: nil, takesValue: true, help: "write the container process's pid to this file"),
        FlagSpec(long: "console-socket", short: nil, takesValue: true, help: "unix socket the pty master is sent to (process.terminal)"),
        FlagSpec(long: "preserve-fds", short: nil, takesValue: true, help: "pass N more fds (from 3) to the container"),
        FlagSpec(long: "no-pivot", short: nil, takesValue: false, help: "not supported: the root always gets pivot_root"),
        FlagSpec(long: "no-new-keyring", short: nil, takesValue: false, help: "keep the caller's session keyring"),
    ]
    /// Flags that may be given more than once.
    static let repeatable: Set<String> = ["env", "cap", "additional-gids"]
    static let help = FlagSpec(long: "help", short: "h", takesValue: false, help: "show help")

    static let commands: [CommandSpec] = [
        CommandSpec(name: "create", usage: "create [flags] ID", summary: "create a container, stopped before its program runs",
                    flags: createFlags + [help], minArgs: 1, maxArgs: 1),
        CommandSpec(name: "start", usage: "start ID", summary: "run the program of a created container",
                    flags: [help], minArgs: 1, maxArgs: 1),
        CommandSpec(name: "state", usage: "state ID", summary: "print the state of a container as JSON",
                    flags: [help], minArgs: 1, maxArgs: 1),
        CommandSpec(name: "kill", usage: "kill [--all] ID [SIGNAL]", summary: "send a signal (default SIGTERM) to a container",
                    flags: [FlagSpec(long: "all", short: "a", takesValue: false, help: "signal every process of the container"), help],
                    minArgs: 1, maxArgs: 2),
        CommandSpec(name: "delete", usage: "delete [--force] ID", summary: "delete a stopped container and everything it held",
                    flags: [FlagSpec(long: "force", short: "f", takesValue: false, help: "kill the container first if it runs"), help],
                    minArgs: 1, maxArgs: 1),
        CommandSpec(name: "run", usage: "run [flags] ID", summary: "create and start a container; wait for it unless --detach",
                    flags: createFlags + [
                        FlagSpec(long: "detach", short: "d", takesValue: false, help: "return once the container runs"),
                        FlagSpec(long: "keep", short: nil, takesValue: false, help: "do not delete the container when it exits"),
                        help,
                    ], minArgs: 1, maxArgs: 1),
        CommandSpec(name: "list", usage: "list [--format table|json] [--quiet]", summary: "list the containers of --root",
                    flags: [
                        FlagSpec(long: "format", short: "f", takesValue: true, help: "table (default) or json"),
                        FlagSpec(long: "quiet", short: "q", takesValue: false, help: "print the ids only"), help,
                    ], minArgs: 0, maxArgs: 0),
        CommandSpec(name: "spec", usage: "spec [--bundle DIR]", summary: "write a default config.json",
                    flags: [
                        FlagSpec(long: "bundle", short: "b", takesValue: true, help: "directory to write config.json into"),
                        FlagSpec(long: "rootless", short: nil, takesValue: false, help: "not supported"), help,
                    ], minArgs: 0, maxArgs: 0),
        CommandSpec(name: "features", usage: "features", summary: "print what this runtime supports (JSON)",
                    flags: [help], minArgs: 0, maxArgs: 0),
        CommandSpec(name: "pause", usage: "pause ID", summary: "freeze every process of a running container (cgroup.freeze)",
                    flags: [help], minArgs: 1, maxArgs: 1),
        CommandSpec(name: "resume", usage: "resume ID", summary: "thaw a paused container",
                    flags: [help], minArgs: 1, maxArgs: 1),
        CommandSpec(name: "exec", usage: "exec [flags] ID [COMMAND [ARGS...]]", summary: "run a new process in a running container",
                    flags: [
                        FlagSpec(long: "process", short: "p", takesValue: true, help: "JSON file of the process (runtime-spec process); replaces the flags below"),
                        FlagSpec(long: "tty", short: "t", takesValue: false, help: "give the process a terminal"),
                        FlagSpec(long: "cwd", short: nil, takesValue: true, help: "working directory in the container"),
                        FlagSpec(long: "env", short: "e", takesValue: true, help: "set NAME=value (repeatable)"),
                        FlagSpec(long: "user", short: "u", takesValue: true, help: "UID[:GID] to run as"),
                        FlagSpec(long: "additional-gids", short: "g", takesValue: true, help: "more group ids (repeatable)"),
                        FlagSpec(long: "cap", short: "c", takesValue: true, help: "add a capability (bounding, effective, permitted; repeatable)"),
                        FlagSpec(long: "no-new-privs", short: nil, takesValue: false, help: "set no_new_privs"),
                        FlagSpec(long: "detach", short: "d", takesValue: false, help: "return once the process runs"),
                        FlagSpec(long: "pid-file", short: nil, takesValue: true, help: "write the process's pid to this file"),
                        FlagSpec(long: "console-socket", short: nil, takesValue: true, help: "unix socket the pty master is sent to"),
                        FlagSpec(long: "preserve-fds", short: nil, takesValue: true, help: "pass N more fds (from 3) to the process"),
                        FlagSpec(long: "ignore-paused", short: nil, takesValue: false, help: "exec in a paused container too"),
                        FlagSpec(long: "cgroup", short: nil, takesValue: true, help: "sub-cgroup of the container to put the process in"),
                        FlagSpec(long: "apparmor", short: nil, takesValue: true, help: "AppArmor profile of the process (default: the container's)"),
                        FlagSpec(long: "process-label", short: nil, takesValue: true, help: "not supported (refused)"),
                        help,
                    ], minArgs: 1, maxArgs: 4096),
        CommandSpec(name: "update", usage: "update [--resources FILE | flags] ID", summary: "change the cgroup limits of a container",
                    flags: updateFlags + [help], minArgs: 1, maxArgs: 1),
        CommandSpec(name: "events", usage: "events [--stats] [--interval 5s] ID", summary: "print resource usage (and oom) events as JSON",
                    flags: [
                        FlagSpec(long: "stats", short: nil, takesValue: false, help: "print the figures once and exit"),
                        FlagSpec(long: "interval", short: nil, takesValue: true, help: "time between stats events (default 5s)"), help,
                    ], minArgs: 1, maxArgs: 1),
        CommandSpec(name: "ps", usage: "ps [--format table|json] ID [PS OPTIONS]", summary: "list the processes of a container (ps -ef by default)",
                    flags: [FlagSpec(long: "format", short: "f", takesValue: true, help: "table (default) or json"), help],
                    minArgs: 1, maxArgs: 64),
    ]

    static func parse(_ argv: [String]) throws(UsageError) -> ParsedCommandLine {
        var out = ParsedCommandLine()
        var i = 0
        var spec: CommandSpec? = nil
        var onlyArgs = false
        while i < argv.count {
            let a = argv[i]
            i += 1
            if onlyArgs || !a.hasPrefix("-") || a == "-" {
                if spec == nil {
                    if a == "help" {
                        out.wantsHelp = true
                        continue
                    }
                    guard let s = commands.first(where: { $0.name == a }) else {
                        throw UsageError(description: "unknown command \"\(a)\" (see husk-runc --help)")
                    }
                    spec = s
                    out.command = a
                } else {
                    out.args.append(a)
                    // As runc (urfave/cli): for exec and ps, what follows the id is the
                    // command or the ps options, flags included.
                    if spec?.name == "exec" || spec?.name == "ps" { onlyArgs = true }
                }
                continue
            }
            if a == "--" {
                onlyArgs = true
                continue
            }
            // --name, --name=value, -n, -n value
            var name: String
            var inline: String? = nil
            var match: FlagSpec?
            let table = (spec?.flags ?? []) + globalFlags
            if a.hasPrefix("--") {
                name = String(a.dropFirst(2))
                if let eq = name.firstIndex(of: "=") {
                    inline = String(name[name.index(after: eq)...])
                    name = String(name[..<eq])
                }
                match = (spec?.flags ?? []).first { $0.long == name } ?? globalFlags.first { $0.long == name }
            } else {
                let ch = a.dropFirst().first!
                if a.count > 2 { inline = String(a.dropFirst(2)) }
                match = table.first { $0.short == ch }
                name = match?.long ?? String(ch)
            }
            guard let flag = match else {
                let ctx = spec.map { " for \($0.name)" } ?? ""
                throw UsageError(description: "unknown flag \(a)\(ctx) (see husk-runc \(spec?.name ?? "") --help)")
            }
            var value = ""
            if flag.takesValue {
                if let inline {
                    value = inline
                } else {
                    guard i < argv.count else { throw UsageError(description: "flag --\(flag.long) needs a value") }
                    value = argv[i]
                    i += 1
                }
            } else if let inline, !["true", "1", ""].contains(inline) {
                if ["false", "0"].contains(inline) { continue }
                throw UsageError(description: "flag --\(flag.long) takes no value")
            }
            let isGlobal = !(spec?.flags.contains { $0.long == flag.long } ?? false)
            if flag.long == "help" {
                out.wantsHelp = true
            } else if flag.long == "version" && isGlobal {
                out.wantsVersion = true
            } else if isGlobal {
                out.globals[flag.long] = value
            } else if let old = out.flags[flag.long], RuncCLI.repeatable.contains(flag.long) {
                out.flags[flag.long] = old + "\u{0}" + value
            } else {
                out.flags[flag.long] = value
            }
        }
        if out.wantsHelp || out.wantsVersion { return out }
        guard let spec else { throw UsageError(description: "no command given (see husk-runc --help)") }
        if out.args.count < spec.minArgs {
            throw UsageError(description: "\(spec.name): missing container id (usage: husk-runc \(spec.usage))")
        }
        if out.args.count > spec.maxArgs {
            throw UsageError(description: "\(spec.name): unexpected argument \"\(out.args[spec.maxArgs])\" (usage: husk-runc \(spec.usage))")
        }
        return out
    }

    static func helpText(for command: String?) -> String {
        func flagLines(_ flags: [FlagSpec]) -> String {
            flags.map { f in
                let names = (f.short.map { "-\($0), " } ?? "    ") + "--\(f.long)" + (f.takesValue ? " VALUE" : "")
                return "   " + names.padding(26) + f.help
            }.joined(separator: "\n")
        }
        if let command, let spec = commands.first(where: { $0.name == command }) {
            return "usage: husk-runc \(spec.usage)\n\n\(spec.summary)\n\nflags:\n\(flagLines(spec.flags))\n"
        }
        let list = commands.map { "   " + $0.name.padding(10) + $0.summary }.joined(separator: "\n")
        return """
            husk-runc — run OCI containers (a runc-compatible command line for Husk)

            usage: husk-runc [global flags] COMMAND [flags] ARGS...

            commands:
            \(list)

            global flags:
            \(flagLines(globalFlags))

            """
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
