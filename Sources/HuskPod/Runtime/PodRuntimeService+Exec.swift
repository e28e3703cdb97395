import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// What CRI ExecSync gives back.
public struct ExecSyncResult: Sendable {
    /// nil: the command did not finish within the timeout (it was killed).
    public var exitCode: Int32?
    /// stdout (and stderr as it came, unless asked apart), up to the limit asked for.
    public var output: [UInt8]
    /// stderr, when asked apart (CRI ExecSync); else empty.
    public var stderr: [UInt8] = []
    public var timedOut: Bool { exitCode == nil }
}

extension PodRuntimeService {
    /// CRI ExecSync: runs `argv` in the container with /dev/null as stdin, waits at most
    /// `timeout` seconds (nil: no limit) and returns its exit code and up to `outputLimit`
    /// bytes of each stream: stdout and stderr in one (kubelet's probes and hooks) or apart
    /// (`separateStderr`, CRI's reply). A command past its timeout is killed.
    public func execSync(
        _ h: ContainerHandle, argv: [String], timeout: Double?, outputLimit: Int = 0, separateStderr: Bool = false
    ) throws(HuskError) -> ExecSyncResult {
        let null: FD
        do { null = try FD.open("/dev/null", O_RDWR) } catch { throw HuskError(.system, "cannot open /dev/null", cause: error) }
        guard outputLimit > 0 else {
            let p = try exec(h, argv: argv, stdio: [null, null, null]).0
            return ExecSyncResult(exitCode: wait(p, timeout: timeout), output: [])
        }
        let p: SpawnedProcess
        var readers: [FD] = []
        do {
            // The write ends live only in this scope: once the child has them, EOF on the
            // read ends means the command (and whatever it started) is done writing.
            let (pr, pw) = try makePipe()
            readers.append(pr)
            if separateStderr {
                let (er, ew) = try makePipe()
                readers.append(er)
                p = try exec(h, argv: argv, stdio: [null, pw, ew]).0
            } else {
                p = try exec(h, argv: argv, stdio: [null, pw, pw]).0
            }
        } catch let e as HuskError {
            throw e
        } catch {
            throw HuskError(.system, "cannot make the output pipe", cause: error as? SystemCallError)
        }
        final class Box: @unchecked Sendable {  // guarded by `done`
            var bytes: [[UInt8]] = []
            var finished = false
        }
        let box = Box()
        let done = Monitor()
        let fds = readers
        Threads.spawn("exec-out") {
            var out = [[UInt8]](repeating: [], count: fds.count)
            var open = fds.map { pollfd(fd: $0.raw, events: Int16(POLLIN), revents: 0) }
            var buf = [UInt8](repeating: 0, count: 4096)
            while open.contains(where: { $0.fd >= 0 }) {
                if poll(&open, nfds_t(open.count), -1) < 0 {
                    if errno == EINTR { continue }
                    break
                }
                for i in open.indices where open[i].fd >= 0 && open[i].revents != 0 {
                    let n = buf.withUnsafeMutableBytes { Glibc.read(open[i].fd, $0.baseAddress, $0.count) }
                    if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                    if n <= 0 {
                        open[i].fd = -1
                        continue
                    }
                    if out[i].count < outputLimit { out[i] += buf[0..<min(n, outputLimit - out[i].count)] }
                }
            }
            withExtendedLifetime(fds) {}
            done.locked {
                box.bytes = out
                box.finished = true
                done.broadcast()
            }
        }
        guard let code = wait(p, timeout: timeout) else { return ExecSyncResult(exitCode: nil, output: []) }
        _ = done.wait(for: { box.finished }, until: Clock.monotonicSeconds() + 1)
        let got = done.locked { box.bytes }
        return ExecSyncResult(exitCode: code, output: got.first ?? [], stderr: got.count > 1 ? got[1] : [])
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
    public func oomKilled(_ h: ContainerHandle) -> Bool {
        Engine.oomKills(h.cgroup) > 0
    }

    /// After the container's init ended: what is left of it goes (cgroup.kill).
    public func killRemaining(_ h: ContainerHandle) {
        try? h.cgroup.kill()
    }

    /// What the runtime does when a container's init has ended (on the loop thread, from
    /// the `onExit` of create or adopt): the rest of its processes are killed, its output
    /// is drained into the log and its stdin closed. Returns whether the OOM killer struck.
    @discardableResult
    public func finishExit(_ h: ContainerHandle) -> Bool {
        // The OOM killer struck in the container's group (memory.events, DESIGN §7):
        // containerd's OOMKilled.
        let oomKilled = oomKilled(h)
        killRemaining(h)
        drainOutput(h)
        h.attachLock.locked { h.input = nil }
        return oomKilled
    }

    /// RemoveContainer for containers no handle is known for (a stop after a lost
    /// supervisor): their cgroups go, with whatever is left in them.
    func removeGroups(of names: [String]) {
        guard let mount = try? Cgroup2Mount.discover() else { return }
        for name in names { try? Engine.delete(mount.group(paths.cgroup + "/" + name), timeout: 10) }
    }
}
