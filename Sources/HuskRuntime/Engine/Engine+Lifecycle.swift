import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension Engine {
    // MARK: - start

    /// Opens a pipe gate: the program runs. `opened` is called once the gate is open (the
    /// container counts as started from then). Returns once the program has exec'd; throws the
    /// child's failure (a startContainer hook, seccomp or the exec) otherwise.
    public static func start(_ c: EngineContainer, opened: () -> Void = {}) throws(SpawnError) {
        if let gate = c.gate {
            do {
                try gate.open()
            } catch {
                throw SpawnError(stage: .gate, errno: error.errno, detail: "the container's process is gone")
            }
        }
        opened()
        try c.process.waitExec()
    }

    /// Opens a FIFO gate from any process (husk-runc `start`): writes the byte, then waits
    /// until the child has exec'd or failed. The child holds the FIFO open until exec; a
    /// reader opened before our writer sees POLLHUP once no writer is left. What is left in
    /// the FIFO tells a failure: the child's 'E', or our own byte if it died first.
    /// - Returns: false when the program never ran.
    public static func openFIFOGate(_ path: String, process pidfd: PidFD) throws(HuskError) -> Bool {
        let r = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard r >= 0 else {
            let e = currentErrno
            if e == .noSuchFileOrDirectory { throw HuskError(.invalidState, "cannot start an already running container") }
            throw HuskError(.system, "cannot open the start gate", cause: SystemCallError("open", path, e))
        }
        let watcher = FD(adopting: r)
        let fd = Glibc.open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw HuskError(.system, "cannot open the start gate", cause: SystemCallError("open", path, currentErrno))
        }
        do {
            try FD(adopting: fd).writeAll([UInt8(ascii: "0")])
        } catch {
            throw HuskError(.system, "cannot write the start gate", cause: error)
        }
        unlink(path)
        while true {
            var fds = [pollfd(fd: watcher.raw, events: Int16(POLLIN), revents: 0), pollfd(fd: pidfd.fd.raw, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, 1000)  // wakes at once on POLLHUP, POLLIN or the exit
            if fds[0].revents & Int16(POLLHUP) != 0 || fds[1].revents != 0 { break }
            if fds[0].revents & Int16(POLLIN) != 0 { usleep(200) }  // the byte is not read yet
        }
        var left = [UInt8](repeating: 0, count: 8)
        return read(watcher.raw, &left, left.count) <= 0
    }

    // MARK: - signal, stop, kill, wait

    /// Sends `signal` to the container's init through its pidfd (never a recycled pid).
    public static func signal(_ pidfd: PidFD, _ signal: Int32) throws(SystemCallError) {
        try pidfd.signal(signal)
    }

    /// Sends `signal` to every process of the container's cgroup (runc kill --all).
    public static func signalAll(_ group: Cgroup2Group, _ signal: Int32) throws(SystemCallError) {
        if signal == SIGKILL {
            try group.kill()
            return
        }
        for pid in group.processes() {
            guard let pfd = try? PidFD.open(pid) else { continue }
            try? pfd.signal(signal)
        }
    }

    /// SIGKILL to every process of the container (cgroup.kill), then to its init.
    public static func kill(_ pidfd: PidFD, cgroup: Cgroup2Group) {
        try? cgroup.kill()
        try? pidfd.signal(SIGKILL)
    }

    /// CRI StopContainer: the stop signal, then SIGKILL to the whole container when it has
    /// not exited within `timeout` seconds (0: SIGKILL at once). `exited` says whether the
    /// process has ended (a caller that reaps it elsewhere passes its own knowledge);
    /// by default the pidfd is polled. Returns whether it exited on the stop signal.
    @discardableResult
    public static func stop(
        _ pidfd: PidFD, cgroup: Cgroup2Group, signal: Int32, timeout: Double,
        waitExit: (Double) -> Bool
    ) -> Bool {
        if timeout > 0 {
            try? pidfd.signal(signal)
            if waitExit(Clock.monotonicSeconds() + timeout) { return true }
        }
        kill(pidfd, cgroup: cgroup)
        _ = waitExit(Clock.monotonicSeconds() + 10)
        return false
    }

    /// Waits until the process has exited (without reaping it), at most until `deadline`.
    public static func waitExit(_ pidfd: PidFD, until deadline: Double) -> Bool {
        pidfd.waitForExit(timeout: max(0, deadline - Clock.monotonicSeconds()))
    }

    /// How many times the OOM killer struck in the group (memory.events oom_kill; 0 without
    /// the memory controller). One file, for the exit path.
    public static func oomKills(_ group: Cgroup2Group) -> UInt64 {
        for line in (group.read("memory.events") ?? "").split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return UInt64(line.dropFirst("oom_kill ".count)) ?? 0
        }
        return 0
    }

    // MARK: - pause and resume

    /// Freezes (or thaws) every process of the container and returns once the kernel reports
    /// the group frozen (thawed).
    public static func setFrozen(_ group: Cgroup2Group, _ on: Bool, id: String) throws(HuskError) {
        do {
            try group.freeze(on)
        } catch {
            throw HuskError(.system, "cannot \(on ? "freeze" : "thaw") container \(id)", cause: error)
        }
        let deadline = Clock.monotonicSeconds() + 10
        while (group.read("cgroup.events") ?? "").contains("frozen 1") != on {
            if Clock.monotonicSeconds() >= deadline {
                throw HuskError(.system, "container \(id): the cgroup did not become \(on ? "frozen" : "thawed") within 10 s")
            }
            usleep(1000)
        }
    }

    /// The pids of the container's processes (its cgroup and below), `first` first.
    public static func processes(_ group: Cgroup2Group, first: pid_t) -> [pid_t] {
        var pids: [pid_t] = []
        func walk(_ dir: String) {
            pids += ((try? Files.readString(dir + "/cgroup.procs")) ?? nil ?? "").split(separator: "\n").compactMap { pid_t($0) }
            for name in Files.list(dir) ?? [] where Files.isDirectory(dir + "/" + name) { walk(dir + "/" + name) }
        }
        walk(group.directory)
        return pids.sorted { a, b in a == first || (b != first && a < b) }
    }

    // MARK: - delete

    /// Removes the container's cgroup (killing what is left in it) and the empty ancestors
    /// `prune` allows. With `keepGroup` (a group that existed before the container, outside
    /// Husk's subtree) the group is only emptied.
    public static func delete(
        _ group: Cgroup2Group, timeout: Double = 10, keepGroup: Bool = false, prune: (String) -> Bool = { _ in false }
    ) throws(HuskError) {
        do {
            if keepGroup { return try group.drain(timeout: timeout) }
            try group.remove(timeout: timeout, prune: prune)
        } catch {
            throw HuskError(.system, "cannot remove cgroup \(group.directory)", cause: error)
        }
    }

    // MARK: - namespaces

    /// Opens a namespace by path and checks its type.
    static func openNamespace(_ path: String, type: Namespaces, field: String) throws(HuskError) -> FD {
        let fd: FD
        do {
            fd = try FD.open(path, O_RDONLY)
        } catch {
            throw HuskError(.invalidArgument, "\(field): cannot open \(path)", cause: error)
        }
        guard (try? Namespaces.type(of: fd)) == type else {
            throw HuskError(.invalidArgument, "\(field): \(path) is not a \(type) namespace")
        }
        return fd
    }
}
