import CShim
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
        for f in ["apparmor", "process-label"] where cl.value(f) != nil {
            throw HuskError(.unsupported, "--\(f): \(f == "apparmor" ? "AppArmor" : "SELinux") is not applied by Husk")
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
        var rows: UInt16 = 0, cols: UInt16 = 0
        let isTTY = isatty(0) == 1
        if isTTY, cshim_get_winsize(0, &rows, &cols) == 0 { _ = cshim_set_winsize(master.raw, rows, cols) }
        var saved = [UInt8](repeating: 0, count: Int(cshim_termios_size()))
        let raw = isTTY && saved.withUnsafeMutableBytes { cshim_tty_raw(0, $0.baseAddress!) } == 0
        defer { if raw { _ = saved.withUnsafeBytes { cshim_tty_restore(0, $0.baseAddress!) } } }
        var buf = [UInt8](repeating: 0, count: 65536)
        var stdinOpen = true
        var masterOpen = true
        var exited = false
        while masterOpen {
            var fds = [
                pollfd(fd: master.raw, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stdinOpen ? 0 : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: exited ? -1 : process.pidfd.fd.raw, events: Int16(POLLIN), revents: 0),
                pollfd(fd: signals?.fd.raw ?? -1, events: Int16(POLLIN), revents: 0),
            ]
            // Once the process is gone, what is left in the pty is read without waiting.
            let r = poll(&fds, 4, exited ? 100 : -1)
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { break }
            if fds[0].revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(master.raw, $0.baseAddress, $0.count) }
                if n > 0 {
                    _ = buf.withUnsafeBytes { FileHandleOut.writeAll(1, $0.baseAddress!, n) }
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    masterOpen = false  // EIO: every holder of the slave has gone
                }
            }
            if fds[1].revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n > 0 {
                    _ = buf.withUnsafeBytes { FileHandleOut.writeAll(master.raw, $0.baseAddress!, n) }
                } else {
                    stdinOpen = false
                    if n == 0 { _ = [UInt8(4)].withUnsafeBytes { write(master.raw, $0.baseAddress, 1) } }  // EOF as ^D
                }
            }
            if fds[2].revents != 0 { exited = true }
            if fds[3].revents != 0, let signals {
                while true {
                    let sig = cshim_signalfd_read(signals.fd.raw)
                    if sig <= 0 { break }
                    if sig == SIGWINCH {
                        if isTTY, cshim_get_winsize(0, &rows, &cols) == 0 { _ = cshim_set_winsize(master.raw, rows, cols) }
                    } else {
                        try? process.pidfd.signal(sig)
                    }
                }
            }
        }
        do {
            return try process.pidfd.wait()
        } catch {
            return .exited(255)
        }
    }
}
