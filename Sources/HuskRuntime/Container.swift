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
        let hooks = bundle.spec.hooks.flatMap { $0.isEmpty ? nil : $0 }
        var request: EngineRequest
        do throws(HuskError) {
            request = EngineRequest(
                id: id, spec: bundle.spec, bundle: bundle.path,
                cgroupPath: try cgroupPath(spec: bundle.spec, id: id, defaultParent: options.defaultCgroupParent))
        } catch {
            try? Files.removeTree(dir)
            throw error
        }
        // Only groups this container creates (and Husk's own subtree) are written or pruned.
        request.mayWriteCgroup = { $0 == "/husk" || $0.hasPrefix("/husk/") }
        request.stdio = options.stdio
        request.consoleSocket = consoleSocket
        request.gate = .fifo(path: dir + "/exec.fifo")
        request.preserveFDs = options.preserveFDs
        if options.newKeyring { request.sessionKeyring = "_ses.\(id)" }
        request.ignoreMissingControllers = options.ignoreMissingControllers
        let warn = options.warn
        request.warn = warn
        request.warningPrefix = bundle.configPath + ": "
        let recordBox = RecordBox(record)
        request.onCgroup = { group, created throws(HuskError) in
            recordBox.record.cgroupMount = group.mount.path
            recordBox.record.cgroupPath = group.path
            recordBox.record.cgroupCreated = created
            try root.saveRecord(recordBox.record)
            if let hooks { try Container(root: root, record: recordBox.record).saveHooks(hooks) }
        }
        // Hooks that need the process stopped before pivot_root: the runtime's own run then,
        // and the child gets its states over a pipe.
        let hookFailed = HookFailure()
        if let hooks, !(hooks.prestart ?? []).isEmpty || !(hooks.createRuntime ?? []).isEmpty
            || !(hooks.createContainer ?? []).isEmpty || !(hooks.startContainer ?? []).isEmpty
        {
            request.childHooks = ((hooks.createContainer ?? []).map(\.plan), (hooks.startContainer ?? []).map(\.plan))
            request.atHooks = { pid, writer in
                let container = Container(root: root, record: recordBox.record)
                // The hooks of the create step see `created` with the container's pid, as crun
                // gives them and runtime-tools' hooks_stdin asserts (runc says `creating`): the
                // environment is made, the program has not run. `state` still says `creating`
                // until create returns.
                let created = container.ociState(.created, pid: pid)
                for (kind, list) in [("prestart", hooks.prestart ?? []), ("createRuntime", hooks.createRuntime ?? [])] {
                    if let f = runHooks(kind, list, state: created, stopAtFailure: true, warn: warn) {
                        hookFailed.failed = true
                        return SpawnError(stage: .hook, errno: .invalidArgument, detail: f)
                    }
                }
                var bytes: [UInt8] = []
                for text in [created.json(indent: nil), created.json(indent: nil)] {
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
        let created: EngineContainer
        do throws(HuskError) {
            created = try Engine.create(request)
            record = recordBox.record
            do throws(HuskError) {
                guard let st = ProcessInfo.stat(created.pid) else {
                    throw HuskError(.system, "the container process \(created.pid) vanished during create")
                }
                record.pid = created.pid
                record.pidStartTime = st.startTime
                record.hostRootMount = created.hostRoot?.mountID
                if let h = created.hostRoot { record.rootfs = h.path }
                record.phase = .created
                try root.saveRecord(record)
                if let pidFile = options.pidFile {
                    do {
                        try Files.writeAtomically(Files.absolute(pidFile), Array("\(created.pid)".utf8), durable: false)
                    } catch {
                        throw HuskError(.system, "cannot write the pid file", cause: error)
                    }
                }
            } catch {
                Engine.kill(created.process.pidfd, cgroup: created.cgroup)
                _ = try? created.process.pidfd.wait()
                if let h = created.hostRoot { Engine.releaseHostRoot(path: h.path, mountID: h.mountID) }
                try? Engine.delete(created.cgroup, keepGroup: !record.mayPrune(created.cgroup.path), prune: record.mayPrune)
                throw error
            }
            return (Container(root: root, record: record), created.process)
        } catch {
            try? Files.removeTree(dir)
            // runtime.md: a failed prestart, createRuntime or createContainer hook stops the
            // container and the lifecycle goes on with the poststop hooks.
            if hookFailed.failed || (error.cause as? SpawnError)?.stage == .hook, let hooks {
                _ = runHooks("poststop", hooks.poststop ?? [], state: Container(root: root, record: recordBox.record).ociState(.stopped, pid: 0),
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
        let pidfd: PidFD
        do {
            pidfd = try PidFD.open(record.pid)
        } catch {
            throw HuskError(.invalidState, "cannot start container \(id): its process is gone", cause: error)
        }
        let ran: Bool
        do {
            ran = try Engine.openFIFOGate(fifoPath, process: pidfd)
        } catch {
            if error.code == .invalidState { throw error }
            throw HuskError(.system, "cannot start container \(id)", cause: error.cause)
        }
        guard ran else {
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
            if signal == SIGKILL && !g.exists { return }
            do { try Engine.signalAll(g, signal) } catch { throw HuskError(.system, "cannot kill container \(id)", cause: error) }
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
            try Engine.signal(pfd, signal)
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
        try Engine.setFrozen(g, on, id: id)
    }

    /// The pids of the container's processes (its cgroup and below), init first.
    public func processes() -> [Int32] {
        guard let g = record.cgroup, g.exists else { return isProcessAlive ? [record.pid] : [] }
        return Engine.processes(g, first: record.pid)
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
            if let g = record.cgroup, g.exists { try? Engine.signalAll(g, SIGKILL) }
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
        if let m = record.hostRootMount { Engine.releaseHostRoot(path: record.rootfs, mountID: m) }
        if let g = record.cgroup {
            do {
                try Engine.delete(g, keepGroup: !record.mayPrune(g.path), prune: record.mayPrune)
            } catch {
                throw HuskError(.system, "cannot remove the cgroup of container \(id)", cause: error.cause)
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

/// The record while `create` fills it in (from the engine's cgroup callback).
final class RecordBox: @unchecked Sendable {  // used by one create at a time, on its thread
    var record: ContainerRecord
    init(_ record: ContainerRecord) { self.record = record }
}

/// Whether a runtime hook failed during `create`.
final class HookFailure: @unchecked Sendable {  // set by the hook callback on create's thread
    var failed = false
}
