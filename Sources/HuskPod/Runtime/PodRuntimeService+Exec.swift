import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// What CRI ExecSync gives back.
public struct ExecSyncResult: Sendable {
    /// nil: the command did not finish within the timeout (it was killed).
    public var exitCode: Int32?
    /// stdout and stderr as they came, in one stream, up to the limit asked for.
    public var output: [UInt8]
    public var timedOut: Bool { exitCode == nil }
}

extension PodRuntimeService {
    /// CRI ExecSync: runs `argv` in the container with /dev/null as stdin, waits at most
    /// `timeout` seconds (nil: no limit) and returns its exit code and up to `outputLimit`
    /// bytes of its output. A command past its timeout is killed.
    func execSync(_ h: ContainerHandle, argv: [String], timeout: Double?, outputLimit: Int = 0) throws(HuskError) -> ExecSyncResult {
        let null: FD
        do { null = try FD.open("/dev/null", O_RDWR) } catch { throw HuskError(.system, "cannot open /dev/null", cause: error) }
        guard outputLimit > 0 else {
            let p = try exec(h, argv: argv, stdio: [null, null, null]).0
            return ExecSyncResult(exitCode: wait(p, timeout: timeout), output: [])
        }
        let p: SpawnedProcess
        let r: FD
        do {
            // The write end lives only in this scope: once the child has it, EOF on `r` means
            // the command (and whatever it started) is done writing.
            let (pr, pw) = try makePipe()
            p = try exec(h, argv: argv, stdio: [null, pw, pw]).0
            r = pr
        } catch let e as HuskError {
            throw e
        } catch {
            throw HuskError(.system, "cannot make the output pipe", cause: error as? SystemCallError)
        }
        final class Box: @unchecked Sendable {  // guarded by `done`
            var bytes: [UInt8] = []
            var finished = false
        }
        let box = Box()
        let done = Monitor()
        Threads.spawn("exec-out") {
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buf.withUnsafeMutableBytes { Glibc.read(r.raw, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                if out.count < outputLimit { out += buf[0..<min(n, outputLimit - out.count)] }
            }
            done.locked {
                box.bytes = out
                box.finished = true
                done.broadcast()
            }
        }
        guard let code = wait(p, timeout: timeout) else { return ExecSyncResult(exitCode: nil, output: []) }
        _ = done.wait(for: { box.finished }, until: Clock.monotonicSeconds() + 1)
        return ExecSyncResult(exitCode: code, output: done.locked { box.bytes })
    }

    /// Waits for an exec'd process; past `timeout` it is killed and nil returned.
    func wait(_ p: SpawnedProcess, timeout: Double?) -> Int32? {
        if !p.pidfd.waitForExit(timeout: timeout) {
            try? p.pidfd.signal(SIGKILL)
            _ = try? p.pidfd.wait()
            return nil
        }
        return ((try? p.pidfd.wait()) ?? .exited(255)).code
    }

    /// Whether the OOM killer struck in the container (containerd's OOMKilled).
    func oomKilled(_ h: ContainerHandle) -> Bool {
        Engine.oomKills(h.cgroup) > 0
    }

    /// After the container's init ended: what is left of it goes (cgroup.kill).
    func killRemaining(_ h: ContainerHandle) {
        try? h.cgroup.kill()
    }

    /// RemoveContainer for containers no handle is known for (a stop after a lost
    /// supervisor): their cgroups go, with whatever is left in them.
    func removeGroups(of names: [String]) {
        guard let mount = try? Cgroup2Mount.discover() else { return }
        for name in names { try? Engine.delete(mount.group(paths.cgroup + "/" + name), timeout: 10) }
    }
}
