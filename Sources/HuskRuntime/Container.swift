import FoundationEssentials
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One container of a runtime root: the OCI lifecycle (runtime-spec runtime.md) — create
/// (set up, stop at the start gate), start (open the gate), state, kill, delete.
public struct Container: Sendable {
    public let root: RuntimeRoot
    public private(set) var record: ContainerRecord

    public var id: String { record.id }
    public var directory: String { root.directory(of: id) }
    var fifoPath: String { directory + "/exec.fifo" }

    /// Options of `create`.
    public struct CreateOptions: Sendable {
        /// Where to write the pid of the container process.
        public var pidFile: String? = nil
        /// Streams for the container (nil: inherit the caller's).
        public var stdio: [FD?] = [nil, nil, nil]
        /// A unix socket connected to the caller's console socket (runc --console-socket):
        /// with process.terminal, the pty master goes there.
        public var consoleSocket: FD? = nil
        /// For a caller that stays in the foreground: when the spec asks for a terminal and no
        /// console socket is given, create makes a socket pair and leaves it here (the caller
        /// takes the pty master from it and relays it).
        public var foregroundConsole: ForegroundConsole? = nil
        /// Fds kept open in the container as 3, 4, ... (runc --preserve-fds).
        public var preserveFDs: [FD] = []
        /// Give the container a session keyring of its own (runc's default; --no-new-keyring).
        public var newKeyring = true
        /// Base of the cgroup used when the spec has no cgroupsPath: `<base>/<id>`.
        public var defaultCgroupParent = "/husk/runc"
        /// Run even when the host's cgroup v2 lacks a controller a limit of `linux.resources`
        /// needs (the limit is then skipped with a warning).
        public var ignoreMissingControllers = false
        /// Receives warnings (fields accepted but not applied).
        public var warn: @Sendable (String) -> Void = { _ in }

        public init() {}
    }

    /// Loads an existing container.
    public static func load(_ id: String, root: RuntimeRoot) throws(HuskError) -> Container {
        Container(root: root, record: try root.loadRecord(id))
    }

    /// runc's rule for ids: letters, digits and `_ + - .`, not `.` or `..`.
    public static func isValidID(_ id: String) -> Bool {
        guard !id.isEmpty, id != ".", id != "..", id.utf8.count <= 1024 else { return false }
        return id.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "_+-.".unicodeScalars.contains($0)
        }
    }

    // MARK: - create

    /// Creates a container from a bundle: its process is set up completely and waits at the
    /// start gate. On failure nothing is left (no state dir, no cgroup, no process).
    /// Returns the container and its process (whose pidfd the caller may wait on when it is
    /// the parent).
    public static func create(
        id: String, bundle bundlePath: String, root: RuntimeRoot, options: CreateOptions = CreateOptions()
    ) throws(HuskError) -> (Container, SpawnedProcess) {
        guard isValidID(id) else {
            throw HuskError(.invalidArgument, "invalid container ID format: \"\(id)\" (use letters, digits and _ + - .)")
        }
        let bundle = try RuntimeBundle.load(bundlePath)
        let problems = bundle.spec.validate(bundle: bundle.path)
        if !problems.errors.isEmpty {
            throw HuskError(.invalidArgument, "\(bundle.configPath): " + problems.errors.joined(separator: "; "))
        }
        for w in problems.warnings { options.warn("\(bundle.configPath): \(w)") }
        var consoleSocket = options.consoleSocket
        if let sink = options.foregroundConsole, consoleSocket == nil, bundle.spec.process?.terminal == true {
            let pair = try ConsolePair()
            sink.pair = pair
            consoleSocket = pair.theirs
        }
        try checkTerminal(bundle.spec.process?.terminal ?? false, consoleSocket: consoleSocket != nil, detached: true)

        try root.ensure()
        let dir = root.directory(of: id)
        if mkdir(dir, 0o700) != 0 {
            if currentErrno == .fileExists {
                throw HuskError(.alreadyExists, "container with given ID already exists: \(id)")
            }
            throw HuskError(.system, "cannot create the state directory", cause: SystemCallError("mkdir", dir, currentErrno))
        }

        var record = ContainerRecord(
            // While creating, the record names the creating process itself: the container is
            // `creating` while it lives, `stopped` if it died half-way (runtime.md).
            ociVersion: bundle.spec.ociVersion, id: id, phase: .creating, pid: getpid(),
            pidStartTime: ProcessInfo.stat(getpid())?.startTime ?? 0, bundle: bundle.path,
            rootfs: bundle.rootfs ?? "", created: Clock.rfc3339Nano(), owner: "", annotations: bundle.spec.annotations,
            cgroupMount: nil, cgroupPath: nil, cgroupCreated: [])
        var group: Cgroup2Group? = nil
        var process: SpawnedProcess? = nil
        let hooks = bundle.spec.hooks.flatMap { $0.isEmpty ? nil : $0 }
        var hookFailed = false
        do throws(HuskError) {
            // The cgroup: found in mountinfo, created before the clone that lands in it.
            guard let mount = try? Cgroup2Mount.discover() else {
                throw HuskError(.unsupported, "no cgroup2 hierarchy is mounted (see /proc/self/mountinfo)")
            }
            let cgPath = try cgroupPath(spec: bundle.spec, id: id, defaultParent: options.defaultCgroupParent)
            let g = mount.group(cgPath)
            record.cgroupMount = mount.path
            record.cgroupPath = g.path
            if g.exists && !g.processes().isEmpty {
                throw HuskError(.alreadyExists, "cgroup \(g.directory) is in use by other processes")
            }
            do {
                record.cgroupCreated = try g.create()
            } catch {
                throw HuskError(.system, "cannot create cgroup \(g.directory)", cause: error)
            }
            group = g
            try root.saveRecord(record)
            if let hooks { try Container(root: root, record: record).saveHooks(hooks) }
            try applyResources(bundle.spec.linux?.resources, to: g, record: record,
                               ignoreMissing: options.ignoreMissingControllers, warn: options.warn)

            var planned = try SpawnPlanner.plan(spec: bundle.spec, bundle: bundle.path, cgroupDirectory: g.directory)
            for w in planned.warnings { options.warn("\(bundle.configPath): \(w)") }
            if let sc = bundle.spec.linux?.seccomp {
                let (program, warnings) = try SeccompProfile.compile(sc)
                planned.plan.seccomp = program
                for w in warnings { options.warn("\(bundle.configPath): \(w)") }
            }
            for j in planned.joins {
                planned.plan.joins.append(.init(fd: try openNamespace(j.path, type: j.type, field: j.field), type: j.type))
            }
            if let p = planned.pidNamespacePath {
                planned.plan.pidNamespace = try openNamespace(p, type: .pid, field: "linux.namespaces (pid)")
            }
            do {
                planned.plan.cgroup = try g.open()
            } catch {
                throw HuskError(.system, "cannot open cgroup \(g.directory)", cause: error)
            }
            let filter = DeviceFilter.build(
                resources: bundle.spec.linux?.resources?.devices, devices: bundle.spec.linux?.devices)
            try filter.attach(to: planned.plan.cgroup!, path: g.directory)
            planned.plan.gate = try makeGate(dir + "/exec.fifo")
            planned.plan.stdio = options.stdio
            if bundle.spec.process?.terminal == true { planned.plan.consoleSocket = consoleSocket }
            planned.plan.preserveFDs = options.preserveFDs
            if options.newKeyring { planned.plan.sessionKeyring = "_ses.\(id)" }

            // Hooks that need the process stopped before pivot_root: the runtime's own run
            // then, and the child gets its states over a pipe.
            var atHooks: ((pid_t) -> SpawnError?)? = nil
            if let hooks, !(hooks.prestart ?? []).isEmpty || !(hooks.createRuntime ?? []).isEmpty
                || !(hooks.createContainer ?? []).isEmpty || !(hooks.startContainer ?? []).isEmpty
            {
                let (reader, writer): (FD, FD)
                do {
                    (reader, writer) = try makePipe()
                } catch {
                    throw HuskError(.system, "cannot make the hooks pipe", cause: error)
                }
                planned.plan.hooksFD = reader
                planned.plan.hooksPeerFD = writer
                planned.plan.createContainerHooks = (hooks.createContainer ?? []).map(\.plan)
                planned.plan.startContainerHooks = (hooks.startContainer ?? []).map(\.plan)
                let container = Container(root: root, record: record)
                let warn = options.warn
                atHooks = { pid in
                    let creating = container.ociState(.creating, pid: pid)
                    for (kind, list) in [("prestart", hooks.prestart ?? []), ("createRuntime", hooks.createRuntime ?? [])] {
                        if let f = runHooks(kind, list, state: creating, stopAtFailure: true, warn: warn) {
                            return SpawnError(stage: .hook, errno: .invalidArgument, detail: f)
                        }
                    }
                    var bytes: [UInt8] = []
                    for text in [creating.json(indent: nil), container.ociState(.created, pid: pid).json(indent: nil)] {
                        var n = UInt32(text.utf8.count).littleEndian
                        withUnsafeBytes(of: &n) { bytes += $0 }
                        bytes += Array(text.utf8)
                    }
                    do {
                        try writer.writeAll(bytes)
                    } catch {
                        return SpawnError(stage: .hook, errno: .brokenPipe, detail: "cannot pass the hook states: \(error)")
                    }
                    return nil
                }
            }
            let p: SpawnedProcess
            do {
                p = try Spawner.spawn(planned.plan, atHooks: atHooks)
            } catch {
                hookFailed = error.stage == .hook
                throw HuskError(.invalidArgument, "cannot create container \(id): \(error)", cause: nil)
            }
            planned.plan.hooksFD = nil
            planned.plan.hooksPeerFD = nil
            process = p
            guard let st = ProcessInfo.stat(p.pid) else {
                throw HuskError(.system, "the container process \(p.pid) vanished during create")
            }
            record.pid = p.pid
            record.pidStartTime = st.startTime
            record.phase = .created
            try root.saveRecord(record)
            if let pidFile = options.pidFile {
                do {
                    try Files.writeAtomically(Files.absolute(pidFile), Array("\(p.pid)".utf8))
                } catch {
                    throw HuskError(.system, "cannot write the pid file", cause: error)
                }
            }
            return (Container(root: root, record: record), p)
        } catch {
            if let process {
                try? process.pidfd.signal(SIGKILL)
                _ = try? process.pidfd.wait()
            }
            if let group { try? group.remove(prune: record.mayPrune) }
            try? Files.removeTree(dir)
            // runtime.md: a failed prestart, createRuntime or createContainer hook stops the
            // container and the lifecycle goes on with the poststop hooks.
            if hookFailed, let hooks {
                _ = runHooks("poststop", hooks.poststop ?? [], state: Container(root: root, record: record).ociState(.stopped, pid: 0),
                             stopAtFailure: false, warn: options.warn)
            }
            throw error
        }
    }

    /// runc's checks: a terminal of a detached process needs a console socket, and a console
    /// socket needs a terminal.
    static func checkTerminal(_ terminal: Bool, consoleSocket: Bool, detached: Bool) throws(HuskError) {
        if terminal && detached && !consoleSocket {
            throw HuskError(.invalidArgument, "process.terminal is true but no --console-socket was given: a detached process cannot get a terminal without one")
        }
        if consoleSocket && !terminal {
            throw HuskError(.invalidArgument, "--console-socket was given but process.terminal is false: set it to true or drop the socket")
        }
    }

    /// The cgroup of a container: `linux.cgroupsPath` when given (absolute: inside the cgroup2
    /// hierarchy; relative: below the parent of this process's own group, as runc, since a group
    /// with processes cannot hand controllers down), else `<defaultParent>/<id>`.
    static func cgroupPath(spec: Spec, id: String, defaultParent: String) throws(HuskError) -> String {
        guard let p = spec.linux?.cgroupsPath, !p.isEmpty else { return Files.clean(defaultParent + "/" + id) }
        if p.contains(":") && !p.hasPrefix("/") {
            throw HuskError(
                .unsupported, "linux.cgroupsPath: \"\(p)\" looks like a systemd slice; the systemd cgroup driver is not supported")
        }
        if p.split(separator: "/").contains("..") {
            throw HuskError(.invalidArgument, "linux.cgroupsPath: \"\(p)\" must not contain ..")
        }
        if p.hasPrefix("/") { return Files.clean(p) }
        let own = Cgroup2Mount.ownGroup()
        let parent = own == "/" ? "/" : String(own[..<(own.lastIndex(of: "/") ?? own.startIndex)])
        return Files.clean(parent + "/" + p)
    }

    /// Writes `linux.resources` into the container's group, handing the controllers it needs
    /// down from the ancestors this container created (or Husk's own subtree).
    static func applyResources(
        _ r: Spec.Resources?, to g: Cgroup2Group, record: ContainerRecord, ignoreMissing: Bool,
        warn: (String) -> Void
    ) throws(HuskError) {
        var p = SpecProblems()
        var limits = OCIResources.limits(r, into: &p)
        guard !limits.isEmpty else { return }
        OCIResources.delegate(OCIResources.controllers(limits), to: g, mayWrite: record.mayPrune)
        if Files.exists(g.directory + "/io.bfq.weight") {
            limits = OCIResources.limits(r, hasBFQ: true, into: &p)
        }
        if !p.errors.isEmpty { throw HuskError(.invalidArgument, p.errors.joined(separator: "; ")) }
        for w in try OCIResources.apply(limits, to: g, ignoreMissing: ignoreMissing) { warn(w) }
    }

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

    /// The start gate: a FIFO the child reads one byte from. Opened O_RDWR so that the read
    /// blocks until `start` writes, and so that this open does not wait for a peer.
    static func makeGate(_ path: String) throws(HuskError) -> FD {
        guard mkfifo(path, 0o600) == 0 else {
            throw HuskError(.system, "cannot create the start gate", cause: SystemCallError("mkfifo", path, currentErrno))
        }
        do {
            return try FD.open(path, O_RDWR)
        } catch {
            throw HuskError(.system, "cannot open the start gate", cause: error)
        }
    }

    // MARK: - state

    /// Whether the container's process is the one we started and still alive.
    public var isProcessAlive: Bool {
        record.pid > 0 && ProcessInfo.isAlive(record.pid, startTime: record.pidStartTime)
    }

    /// The live status (runtime.md): created while the process waits at the gate, running
    /// after start, paused when its cgroup is frozen, stopped once the process has exited.
    public var status: OCIState.Status {
        if record.phase == .creating { return isProcessAlive ? .creating : .stopped }
        guard isProcessAlive else { return .stopped }
        if Files.exists(fifoPath) { return .created }
        if let g = record.cgroup, let ev = g.read("cgroup.events"), ev.contains("frozen 1") { return .paused }
        return .running
    }

    public func state() -> OCIState {
        let s = status
        return OCIState(
            ociVersion: record.ociVersion, id: id, pid: s == .stopped || s == .creating ? 0 : record.pid, status: s,
            bundle: record.bundle, rootfs: record.rootfs, created: record.created, owner: record.owner,
            annotations: record.annotations)
    }

    // MARK: - start

    /// Opens the start gate: the process execs the user program.
    public func start(warn: (String) -> Void = { _ in }) throws(HuskError) {
        switch status {
        case .created: break
        case .creating: throw HuskError(.invalidState, "cannot start a container that is still being created")
        case .running: throw HuskError(.invalidState, "cannot start an already running container")
        case .paused: throw HuskError(.invalidState, "cannot start a container in the paused state")
        case .stopped: throw HuskError(.invalidState, "cannot start a container that has stopped")
        }
        // The process holds the gate FIFO open until it execs (or dies). A reader opened here
        // before our writer sees POLLHUP once no writer is left: the program runs, so start
        // returns after the startContainer hooks and the exec, as runtime.md wants, and
        // poststart runs after the program started.
        let pidfd: PidFD
        do {
            pidfd = try PidFD.open(record.pid)
        } catch {
            throw HuskError(.invalidState, "cannot start container \(id): its process is gone", cause: error)
        }
        let r = Glibc.open(fifoPath, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard r >= 0 else {
            let e = currentErrno
            if e == .noSuchFileOrDirectory { throw HuskError(.invalidState, "cannot start an already running container") }
            throw HuskError(.system, "cannot start container \(id)", cause: SystemCallError("open", fifoPath, e))
        }
        let watcher = FD(adopting: r)
        let fd = Glibc.open(fifoPath, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw HuskError(.system, "cannot start container \(id)", cause: SystemCallError("open", fifoPath, currentErrno))
        }
        do {
            try FD(adopting: fd).writeAll([UInt8(ascii: "0")])
        } catch {
            throw HuskError(.system, "cannot start container \(id)", cause: error)
        }
        unlink(fifoPath)
        while true {
            var fds = [pollfd(fd: watcher.raw, events: Int16(POLLIN), revents: 0), pollfd(fd: pidfd.fd.raw, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, 1000)  // wakes at once on POLLHUP, POLLIN or the exit
            if fds[0].revents & Int16(POLLHUP) != 0 || fds[1].revents != 0 { break }
            if fds[0].revents & Int16(POLLIN) != 0 { usleep(200) }  // the byte is not read yet
        }
        // What is left in the FIFO: nothing once the program runs; the child's 'E' when a
        // startContainer hook, seccomp or the exec failed; our own byte if it died first.
        var left = [UInt8](repeating: 0, count: 8)
        let n = read(watcher.raw, &left, left.count)
        if n > 0 {
            throw HuskError(
                .invalidState,
                "container \(id) stopped during start before its program ran (a startContainer hook or the exec failed; its stderr says which)")
        }
        // poststart: after the program was started, before start returns; a failure warns.
        if let hooks = savedHooks(), let post = hooks.poststart, !post.isEmpty {
            _ = Self.runHooks("poststart", post, state: ociState(.running), stopAtFailure: false, warn: warn)
        }
    }

    // MARK: - kill

    /// Sends a signal to the container process (or, with `all`, to every process in its
    /// cgroup), through pidfds so that a recycled pid is never hit.
    public func kill(_ signal: Int32, all: Bool = false) throws(HuskError) {
        let s = status
        if s == .stopped && !all { throw HuskError(.invalidState, "container not running") }
        if s == .creating { throw HuskError(.invalidState, "container \(id) is still being created") }
        if all, let g = record.cgroup {
            if signal == SIGKILL, g.exists {
                do { try g.kill() } catch { throw HuskError(.system, "cannot kill container \(id)", cause: error) }
                return
            }
            for pid in g.processes() {
                guard let pfd = try? PidFD.open(pid) else { continue }
                try? pfd.signal(signal)
            }
            return
        }
        try signalInit(signal)
    }

    func signalInit(_ signal: Int32) throws(HuskError) {
        let pfd: PidFD
        do {
            pfd = try PidFD.open(record.pid)
        } catch {
            throw HuskError(.invalidState, "container not running", cause: error)
        }
        // The pidfd pins the pid: if it is still the process we started, it stays so.
        guard ProcessInfo.isAlive(record.pid, startTime: record.pidStartTime) else {
            throw HuskError(.invalidState, "container not running")
        }
        do {
            try pfd.signal(signal)
        } catch {
            if error.errno == .noSuchProcess { throw HuskError(.invalidState, "container not running") }
            throw HuskError(.system, "cannot signal container \(id)", cause: error)
        }
    }

    // MARK: - pause, resume, ps

    /// Freezes every process of a running container (cgroup.freeze) and returns once the
    /// kernel reports the group frozen.
    public func pause() throws(HuskError) {
        switch status {
        case .running: break
        case .paused: throw HuskError(.invalidState, "container \(id) is already paused")
        default: throw HuskError(.invalidState, "container \(id) is not running")
        }
        try setFrozen(true)
    }

    /// Thaws a paused container.
    public func resume() throws(HuskError) {
        guard status == .paused else { throw HuskError(.invalidState, "container \(id) is not paused") }
        try setFrozen(false)
    }

    func setFrozen(_ on: Bool) throws(HuskError) {
        guard let g = record.cgroup, g.exists else { throw HuskError(.invalidState, "container \(id) has no cgroup") }
        do {
            try g.freeze(on)
        } catch {
            throw HuskError(.system, "cannot \(on ? "freeze" : "thaw") container \(id)", cause: error)
        }
        // cgroup.events says "frozen 1" once every task has stopped.
        let deadline = Clock.monotonicSeconds() + 10
        while (g.read("cgroup.events") ?? "").contains("frozen 1") != on {
            if Clock.monotonicSeconds() >= deadline {
                throw HuskError(.system, "container \(id): the cgroup did not become \(on ? "frozen" : "thawed") within 10 s")
            }
            usleep(1000)
        }
    }

    /// The pids of the container's processes (its cgroup and below), init first.
    public func processes() -> [Int32] {
        guard let g = record.cgroup, g.exists else { return isProcessAlive ? [record.pid] : [] }
        var pids: [Int32] = []
        func walk(_ dir: String) {
            pids += ((try? Files.readString(dir + "/cgroup.procs")) ?? nil ?? "").split(separator: "\n").compactMap { Int32($0) }
            for name in Files.list(dir) ?? [] where Files.isDirectory(dir + "/" + name) { walk(dir + "/" + name) }
        }
        walk(g.directory)
        return pids.sorted { a, b in a == record.pid || (b != record.pid && a < b) }
    }

    // MARK: - delete

    /// Removes a stopped (or created) container; with `force`, kills a running one first.
    /// Leaves no process, cgroup or state directory.
    public func delete(force: Bool = false, warn: (String) -> Void = { _ in }) throws(HuskError) {
        let s = status
        switch s {
        case .stopped:
            break
        case .created:
            try? signalInit(SIGKILL)
        case .creating:
            // The record's process is the creating runtime: it is stopped only on --force.
            guard force else {
                throw HuskError(.invalidState, "cannot delete container \(id) that is not stopped: creating")
            }
            try? signalInit(SIGKILL)
        case .running, .paused:
            guard force else {
                throw HuskError(.invalidState, "cannot delete container \(id) that is not stopped: \(s.rawValue)")
            }
            if let g = record.cgroup, g.exists { try? g.kill() }
            try? signalInit(SIGKILL)
        }
        if s != .stopped, let pfd = try? PidFD.open(record.pid),
            ProcessInfo.isAlive(record.pid, startTime: record.pidStartTime) || ProcessInfo.stat(record.pid)?.state == "Z"
        {
            if s == .paused, let g = record.cgroup { try? g.freeze(false) }
            _ = pfd.waitForExit(timeout: 10)
        }
        let hooks = savedHooks()
        try cleanup()
        // poststop: after the container is deleted, before delete returns; a failure warns.
        if let post = hooks?.poststop, !post.isEmpty {
            _ = Self.runHooks("poststop", post, state: ociState(.stopped, pid: 0), stopAtFailure: false, warn: warn)
        }
    }

    /// Removes the cgroup (killing stragglers) and the state directory.
    func cleanup() throws(HuskError) {
        if let g = record.cgroup {
            do {
                try g.remove(prune: record.mayPrune)
            } catch {
                throw HuskError(.system, "cannot remove the cgroup of container \(id)", cause: error)
            }
        }
        do {
            try Files.removeTree(directory)
        } catch {
            throw HuskError(.system, "cannot remove the state of container \(id)", cause: error)
        }
    }
}

extension Container {
    /// The cgroup a spec puts a container in (exposed for tests).
    public static func cgroupPathForTesting(spec: Spec, id: String) throws(HuskError) -> String {
        try cgroupPath(spec: spec, id: id, defaultParent: CreateOptions().defaultCgroupParent)
    }
}
