import FoundationEssentials
import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

extension Runc {
    /// The process an exec runs: `--process FILE` as given, else the container's own process
    /// with the command and the flags' changes (runc's getProcess).
    static func execProcess(_ cl: ParsedCommandLine, container: Container) throws(HuskError) -> Spec.Process {
        if let file = cl.value("process") {
            guard let bytes = try? Files.read(file) else {
                throw HuskError(.invalidArgument, "--process: \(file): No such file or directory")
            }
            do {
                return try JSONDecoder().decode(Spec.Process.self, from: Data(bytes))
            } catch {
                throw HuskError(.invalidArgument, "--process \(file): \(JSONPath.describe(error))")
            }
        }
        guard cl.args.count > 1 else {
            throw HuskError(.invalidArgument, "exec: no command given (usage: husk-runc exec [flags] ID COMMAND [ARGS...], or --process FILE)")
        }
        if cl.value("process-label") != nil {
            throw HuskError(.unsupported, "--process-label: SELinux is not applied by Husk")
        }
        guard var p = try container.spec().process else {
            throw HuskError(.invalidArgument, "the container's config.json has no process to start from")
        }
        p.args = Array(cl.args.dropFirst())
        p.terminal = cl.flag("tty")
        p.env = (p.env ?? []) + cl.values("env")
        if let cwd = cl.value("cwd") { p.cwd = cwd }
        if let u = cl.value("user") {
            let parts = u.split(separator: ":", maxSplits: 1).map(String.init)
            guard let uid = UInt32(parts[0]), parts.count == 1 || UInt32(parts[1]) != nil else {
                throw HuskError(.invalidArgument, "--user: \"\(u)\" is not UID[:GID] (numbers)")
            }
            p.user.uid = uid
            p.user.gid = parts.count > 1 ? UInt32(parts[1])! : 0
        }
        for g in cl.values("additional-gids") {
            guard let gid = UInt32(g) else { throw HuskError(.invalidArgument, "--additional-gids: \"\(g)\" is not a number") }
            p.user.additionalGids = (p.user.additionalGids ?? []) + [gid]
        }
        let caps = cl.values("cap")
        if !caps.isEmpty {
            var set = p.capabilities ?? Spec.CapabilitySet()
            for c in caps {
                let name = c.uppercased().hasPrefix("CAP_") ? c.uppercased() : "CAP_" + c.uppercased()
                guard Capabilities.number(name) != nil else { throw HuskError(.invalidArgument, "--cap: unknown capability \"\(c)\"") }
                set.bounding = (set.bounding ?? []) + [name]
                set.effective = (set.effective ?? []) + [name]
                set.permitted = (set.permitted ?? []) + [name]
                // CVE-2022-29162: never inheritable; ambient only when the spec already has
                // inheritable ones (as runc 1.1.2).
                if set.inheritable != nil { set.ambient = (set.ambient ?? []) + [name] }
            }
            p.capabilities = set
        }
        if cl.flag("no-new-privs") { p.noNewPrivileges = true }
        if let profile = cl.value("apparmor") { p.apparmorProfile = profile }
        return p
    }

    static func exec(_ cl: ParsedCommandLine, _ root: RuntimeRoot) throws(HuskError) -> Int32 {
        let container = try Container.load(cl.args[0], root: root)
        var o = Container.ExecOptions(process: try execProcess(cl, container: container))
        o.detached = cl.flag("detach")
        o.pidFile = cl.value("pid-file")
        o.ignorePaused = cl.flag("ignore-paused")
        o.subCgroup = cl.value("cgroup")
        o.preserveFDs = try preservedFDs(cl)
        o.warn = { Log.shared.warn($0) }
        if let path = cl.value("console-socket") { o.consoleSocket = try connectConsole(path) }
        // A foreground process with a terminal and no socket: the pty is relayed here.
        var pair: ConsolePair? = nil
        if o.process.terminal == true && o.consoleSocket == nil && !o.detached {
            pair = try ConsolePair()
            o.consoleSocket = pair!.theirs
        }
        let process = try container.exec(o)
        if o.detached { return 0 }
        if let pair {
            guard let master = pair.receiveMaster() else {
                try? process.pidfd.signal(SIGKILL)
                _ = try? process.pidfd.wait()
                throw HuskError(.system, "exec: no terminal came back from the process")
            }
            return relayTerminal(master: master, process: process, signals: RuncSignals.forwarding).code
        }
        return Container.waitForwarding(process.pidfd, signals: RuncSignals.forwarding).code
    }

    /// Relays a pty master with this process's terminal (raw mode while it runs; window size
    /// passed on, SIGWINCH included) and forwards other signals, until the process exits.
    static func relayTerminal(master: FD, process: SpawnedProcess, signals: SignalFD?) -> ExitStatus {
        TerminalRelay.run(
            master: master, input: true, end: process.pidfd.fd, drainMilliseconds: 100, signals: signals,
            onSignal: { try? process.pidfd.signal($0) })
        do {
            return try process.pidfd.wait()
        } catch {
            return .exited(255)
        }
    }
}
