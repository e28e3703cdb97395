import HuskImage
import HuskRuntime
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One running container instance.
public final class ContainerHandle: @unchecked Sendable {  // set up once; mutable fields under the supervisor's monitor
    public let name: String
    public let attempt: Int
    public let id: String
    /// The engine's container: process, cgroup, exec template, start gate.
    public let engine: EngineContainer
    public var process: SpawnedProcess { engine.process }
    public var cgroup: Cgroup2Group { engine.cgroup }
    public let instanceDir: String
    public let terminationLog: String?
    public let stopSignal: Int32
    /// The CRI log writer; replaced by ReopenContainerLog (loop thread only).
    var log: CRILogWriter
    public let logPath: String
    /// When CreateContainer made it, StartContainer started it, and its init's exit came
    /// (RFC 3339, nanoseconds); the exit as the runtime saw it (nil status: not known, the
    /// process ended while no supervisor ran). Under `attachLock`.
    public let createdAt = Clock.rfc3339Nano()
    var startedAt: String? = nil
    var finished: (status: ExitStatus?, at: String)? = nil
    /// The output pipes not yet at EOF, by stream (loop thread only).
    var outputs: [String: FD] = [:]
    /// The container was started (its gate opened); before that it waits at its gate.
    var started = false
    public var exit: ExitStatus? = nil
    /// The container's stdin (spec `stdin`): the pty master with `tty`, else a pipe's write
    /// end. Under `attachLock`.
    var input: FD? = nil
    /// The container has a terminal: its output is the pty master's (one stream, stdout).
    var tty = false
    /// That terminal's master, for its window size. Under `attachLock`.
    var terminal: FD? = nil
    /// The output fds the keeper holds besides stdin's, for when stdin closes.
    var keptOutputs: [FD] = []
    /// Clients of `husk attach`, each getting the output as it comes. Under `attachLock`.
    var attached: [AttachClient] = []
    let attachLock = Monitor()

    init(name: String, attempt: Int, id: String, engine: EngineContainer, instanceDir: String,
         terminationLog: String?, stopSignal: Int32, log: CRILogWriter, logPath: String) {
        self.name = name
        self.attempt = attempt
        self.id = id
        self.engine = engine
        self.instanceDir = instanceDir
        self.terminationLog = terminationLog
        self.stopSignal = stopSignal
        self.log = log
        self.logPath = logPath
    }

    public var pid: pid_t { process.pid }
}

/// A failure to create or start a container (CRI CreateContainer/StartContainer failed);
/// the controller turns its kind into kubelet's waiting reason.
public struct StartFailure: Error, CustomStringConvertible, Sendable {
    /// What failed, as CRI tells it: the container's configuration (its image config, user or
    /// seccomp profile), its creation, or its start. The caller names the reason.
    public enum Kind: Sendable, Equatable { case config, create, run }
    public var kind: Kind
    public var message: String
    /// The instance ended before it ran: Terminated StartError, exit 128 (containerd).
    public var startError: Bool
    public var description: String { message }

    public init(_ kind: Kind, _ message: String, startError: Bool = false) {
        self.kind = kind
        self.message = message
        self.startError = startError
    }
}

/// The pod runtime service: CRI's RuntimeService verbs for one pod sandbox and its
/// containers (RunPodSandbox ... ReopenContainerLog), taking resolved, typed configs
/// (`PodSandboxConfig`, `ContainerConfig`). Mechanics only, no policy: no restarts, probes,
/// hooks or ordering. The lifecycle controller (kubelet's role, `PodSupervisor`) calls it;
/// under CRI, kubelet does, through `husk serve`. Sandbox verbs are in +Sandbox, status and
/// resources in +Status, ExecSync in +Exec.
public final class PodRuntimeService: @unchecked Sendable {  // immutable after init
    public let sandbox: Sandbox
    let loop: EventLoop
    /// Holds a copy of every container's output pipes while the container lives.
    let keeper: KeeperLink?
    /// Told (container name, what happened) when a container's output cannot be written to
    /// its log, and when it can again (on the event loop).
    let outputLost: (@Sendable (String, String) -> Void)?

    public convenience init(config: PodSandboxConfig, paths: PodPaths, loop: EventLoop) {
        self.init(config: config, paths: paths, loop: loop, keeper: nil)
    }

    init(config: PodSandboxConfig, paths: PodPaths, loop: EventLoop, keeper: KeeperLink?,
         outputLost: (@Sendable (String, String) -> Void)? = nil) {
        sandbox = Sandbox(config: config, paths: paths)
        self.loop = loop
        self.keeper = keeper
        self.outputLost = outputLost
    }

    /// A log writer for container `name` whose losses are reported.
    func logWriter(_ path: String, container name: String) throws(HuskError) -> CRILogWriter {
        let writer = try CRILogWriter(path: path)
        if let report = outputLost { writer.onLoss = { report(name, $0) } }
        return writer
    }

    var paths: PodPaths { sandbox.paths }

    /// A random container id (64 hex digits, as containerd's).
    public static func newID() -> String {
        (0..<32).map { _ in let b = UInt8.random(in: 0...255); return (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
    }

    /// CRI CreateContainer: everything is set up and the process waits at its start gate.
    /// `onExit` comes on the event loop when the container's init ends.
    public func createContainer(
        _ config: ContainerConfig, id: String, pidNamespaceOf target: ContainerHandle? = nil,
        onExit: @escaping @Sendable (ContainerHandle, ExitStatus) -> Void
    ) throws(StartFailure) -> ContainerHandle {
        let builder = ContainerSpecBuilder(config: config, sandbox: sandbox)
        let dir = paths.instance(config.name, attempt: config.attempt)
        func failure(_ kind: StartFailure.Kind, _ message: String, startError: Bool = false) -> StartFailure {
            StartFailure(kind, message, startError: startError)
        }
        let process: ContainerSpecBuilder.Process
        let spec: Spec
        var volumeMounts: [SpawnPlan.MountEntry]
        do {
            process = try builder.process()
            do {
                try Files.makeDirectories(dir + "/upper", mode: 0o755)
                try Files.makeDirectories(dir + "/work", mode: 0o700)
                try Files.makeDirectories(dir + "/rootfs", mode: 0o755)
            } catch {
                throw StartFailure(.create, "cannot create \(dir): \(error)")
            }
            spec = try builder.spec(process: process, instance: dir)
            volumeMounts = try builder.mountEntries()
        } catch let e as StartFailure {
            throw e
        } catch {
            throw failure(.create, "\(error)")
        }
        // Join the sandbox: network, IPC and UTS through pause's pidfd (not with hostNetwork /
        // hostIPC), and its pid namespace when the pod shares one.
        guard let pause = sandbox.pause else { throw failure(.create, "the pod sandbox is not running") }
        var request = EngineRequest(id: id, spec: spec, bundle: dir, cgroupPath: paths.cgroup + "/" + config.name)
        request.replaceStaleCgroup = true
        // The pod's own groups are the sandbox's to remove.
        request.pruneAncestorsOnFailure = false
        request.mayWriteCgroup = { [paths] in paths.mayWriteCgroup($0) }
        // `husk run` checked the controllers before the pod started (refused or warned).
        request.ignoreMissingControllers = true
        request.extraMounts = volumeMounts
        volumeMounts = []
        // The rootfs: the image's layers under a private upper dir, mounted in the child.
        request.overlay = (config.layers, dir + "/upper", dir + "/work")
        var joinFlags: Namespaces = []
        if sandbox.config.ownNetwork { joinFlags.formUnion([.network, .uts]) }
        if sandbox.config.ownIPC { joinFlags.insert(.ipc) }
        if let userns = sandbox.config.userNamespace {
            // The pod's user namespace first (pause's); the layers are seen through its maps
            // (idmapped, never chowned) and the upper dir's root is its root's, as
            // containerd's overlay snapshotter does with remapped ids.
            joinFlags.insert(.user)
            do {
                request.overlayUserNamespace = try FD.open("/proc/\(pause.pid)/ns/user", O_RDONLY)
                if let root = userns.hostRoot, chown(dir + "/upper", root.uid, root.gid) != 0 {
                    throw SystemCallError("chown", dir + "/upper", currentErrno)
                }
            } catch {
                throw failure(.create, "cannot prepare the root of container \(config.name) for the pod's user namespace: \(error)")
            }
        }
        if !joinFlags.isEmpty { request.joins.append(.init(fd: pause.fd, type: joinFlags)) }
        if let target {
            // CRI TARGET: the other container's pid namespace.
            request.pidNamespace = target.process.pidfd.fd
        } else if sandbox.config.sharedPID && !config.security.ownPIDNamespace {
            // Not for a container with a pid namespace of its own: CLONE_NEWPID needs the
            // thread's pid_for_children to be its own namespace (copy_pid_ns: EINVAL).
            request.pidNamespace = pause.fd
        }
        request.sessionKeyring = "_ses." + String(id.prefix(12))
        request.gate = .pipe
        // Output into pipes read by the supervisor (CRI logs), or a terminal of the
        // container's own with `tty` (its master read the same way); stdin a pipe with `stdin`.
        var out: (read: FD, write: FD)? = nil, err: (read: FD, write: FD)? = nil, input: (read: FD, write: FD)? = nil
        var console: ConsolePair? = nil
        let log: CRILogWriter
        do {
            if config.tty {
                console = try ConsolePair()
                request.consoleSocket = console!.theirs
            } else {
                out = try makePipe()
                err = try makePipe()
                if config.stdin { input = try makePipe() }
                request.stdio = [try input?.read ?? FD.open("/dev/null", O_RDONLY), out!.write, err!.write]
            }
            log = try logWriter(config.logPath, container: config.name)
        } catch let e as HuskError {
            throw failure(.create, "\(e)")
        } catch {
            throw failure(.create, "\(error)")
        }
        let created: EngineContainer
        do throws(HuskError) {
            created = try Engine.create(request)
        } catch {
            if let spawn = error.cause as? SpawnError {
                // containerd reports a container that could not be set up or exec'd as StartError.
                throw failure(.run, "failed to create containerd task: failed to create shim task: OCI runtime create failed: \(spawn)", startError: true)
            }
            throw failure(.create, "\(error)")
        }
        // The terminal's master, which the child sent before it stopped at its gate.
        var master: FD? = nil
        if let console {
            master = console.receiveMaster()
            if master == nil {
                Engine.kill(created.process.pidfd, cgroup: created.cgroup)
                _ = try? created.process.pidfd.wait()
                try? Engine.delete(created.cgroup, timeout: 5)
                throw failure(.run, "failed to create containerd task: no terminal came back from the container", startError: true)
            }
        }
        let handle = ContainerHandle(
            name: config.name, attempt: config.attempt, id: id, engine: created, instanceDir: dir,
            terminationLog: config.terminationLog, stopSignal: process.stopSignal, log: log, logPath: config.logPath)
        if let master {
            handle.tty = true
            handle.terminal = master
            if config.stdin { handle.input = try? master.duplicate() }
            keeper?.hold(id, [master])
            watchOutput(handle, master, "stdout")
        } else if let out, let err {
            handle.input = input?.write
            handle.keptOutputs = [out.read, err.read]
            keeper?.hold(id, [out.read, err.read] + (input.map { [$0.write] } ?? []))
            watchOutput(handle, out.read, "stdout")
            watchOutput(handle, err.read, "stderr")
        }
        loop.watch(created.process.pidfd) { status in
            handle.attachLock.locked { handle.finished = (status, Clock.rfc3339Nano()) }
            onExit(handle, status)
        }
        return handle
    }

    /// Closes the container's stdin for good (stdinOnce): our end and the keeper's copy.
    func closeInput(_ h: ContainerHandle) {
        h.attachLock.locked { h.input = nil }
        if !h.tty { keeper?.hold(h.id, h.keptOutputs) }
    }

    /// Takes over a running instance a dead supervisor left (pid and start time from its
    /// status, output pipes from the keeper): its exec settings are worked out again from the
    /// spec and the image as at create, its output goes on into the same log, and its exit is
    /// watched (as the keeper records it: nil when not known). Throws when the process is not
    /// the instance any more.
    public func adoptContainer(
        _ config: ContainerConfig, id: String, pid: Int32, start: UInt64, outputs: [FD],
        onExit: @escaping @Sendable (ContainerHandle, ExitStatus?) -> Void
    ) throws(HuskError) -> ContainerHandle {
        let c = config
        let pidfd: PidFD
        do {
            pidfd = try PidFD.open(pid)
        } catch {
            throw HuskError(.notFound, "container \(c.name) (pid \(pid)) is gone")
        }
        guard ProcessInfo.isAlive(pid, startTime: start) else {
            throw HuskError(.notFound, "container \(c.name) (pid \(pid)) is gone")
        }
        let builder = ContainerSpecBuilder(config: c, sandbox: sandbox)
        let dir = paths.instance(c.name, attempt: c.attempt)
        guard let mount = try? Cgroup2Mount.discover() else { throw HuskError(.unsupported, "no cgroup2 hierarchy is mounted") }
        let group = mount.group(paths.cgroup + "/" + c.name)
        let process: ContainerSpecBuilder.Process
        let template: SpawnPlan
        do {
            process = try builder.process()
            let spec = try builder.spec(process: process, instance: dir)
            template = try Engine.execTemplate(spec: spec, bundle: dir, cgroupDirectory: group.directory)
        } catch {
            throw HuskError(.invalidArgument, "cannot work out container \(c.name)'s settings again: \(error)")
        }
        let log = try logWriter(c.logPath, container: c.name)
        let engine = EngineContainer(id: id, process: SpawnedProcess(adopting: pidfd), cgroup: group, createdCgroups: [],
                                     execTemplate: template, gate: nil)
        let handle = ContainerHandle(
            name: c.name, attempt: c.attempt, id: id, engine: engine, instanceDir: dir,
            terminationLog: c.terminationLog, stopSignal: process.stopSignal, log: log, logPath: c.logPath)
        handle.started = true
        // What the keeper held: the pty master (tty), or the output pipes and stdin's.
        if c.tty, outputs.count == 1 {
            handle.tty = true
            handle.terminal = outputs[0]
            if c.stdin { handle.input = try? outputs[0].duplicate() }
            watchOutput(handle, outputs[0], "stdout")
        } else if outputs.count >= 2 {
            watchOutput(handle, outputs[0], "stdout")
            watchOutput(handle, outputs[1], "stderr")
            if outputs.count >= 3 { handle.input = outputs[2] }
            handle.keptOutputs = Array(outputs.prefix(2))
        }
        loop.watchAdopted(pidfd, start: start, stateDirectory: paths.state) { status in
            handle.attachLock.locked { handle.finished = (status, Clock.rfc3339Nano()) }
            onExit(handle, status)
        }
        return handle
    }

    /// Copies a container's output into its CRI log as it comes (on the loop thread).
    func watchOutput(_ h: ContainerHandle, _ fd: FD, _ stream: String) {
        loop.post { [loop] in
            h.outputs[stream] = fd
            var buf = [UInt8](repeating: 0, count: 65536)
            loop.add(fd.raw) { _ in
                // Closed by `drainOutput` already: the closure keeps the fd open until epoll lets go.
                guard h.outputs[stream] != nil else { return }
                let n = buf.withUnsafeMutableBytes { read(fd.raw, $0.baseAddress, $0.count) }
                if n > 0 {
                    h.log.append(stream, buf[0..<n])
                    h.fanOut(stream, buf[0..<n])
                    return
                }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
                h.log.flush(stream)
                h.outputs[stream] = nil
                loop.remove(fd.raw)
            }
        }
    }

    /// After the container's processes are gone: reads what is left in its pipes (until EOF,
    /// or 100 ms of silence when something else still holds a pipe) so that the log is
    /// complete before the exit is reported. Loop thread only.
    func drainOutput(_ h: ContainerHandle) {
        var buf = [UInt8](repeating: 0, count: 65536)
        for (stream, fd) in h.outputs.sorted(by: { $0.key < $1.key }) {
            while true {
                var p = pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 100) <= 0 { break }
                let n = buf.withUnsafeMutableBytes { read(fd.raw, $0.baseAddress, $0.count) }
                if n > 0 {
                    h.log.append(stream, buf[0..<n])
                    h.fanOut(stream, buf[0..<n])
                    continue
                }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                break
            }
            h.log.flush(stream)
            h.outputs[stream] = nil
            loop.remove(fd.raw)
        }
        keeper?.drop(h.id)
    }

    /// CRI StartContainer: opens the gate, the container's program runs. Throws when exec
    /// failed.
    public func startContainer(_ h: ContainerHandle) throws(StartFailure) {
        do {
            try Engine.start(h.engine) {
                h.started = true
                h.attachLock.locked { h.startedAt = Clock.rfc3339Nano() }
            }
        } catch {
            throw StartFailure(.run, "failed to start containerd task: OCI runtime start failed: \(error)", startError: true)
        }
    }

    /// CRI StopContainer: the container's stop signal, then SIGKILL to all of it once
    /// `timeout` seconds have passed (0: SIGKILL now). `exited(deadline)` waits for the
    /// exit the caller observes. Returns whether it ended on the stop signal.
    @discardableResult
    public func stopContainer(_ h: ContainerHandle, timeout: Double, exited: (Double) -> Bool) -> Bool {
        Engine.stop(h.process.pidfd, cgroup: h.cgroup, signal: h.stopSignal, timeout: timeout, waitExit: exited)
    }

    /// SIGKILL to every process of the instance (cgroup.kill), then its init.
    public func killContainer(_ h: ContainerHandle) {
        Engine.kill(h.process.pidfd, cgroup: h.cgroup)
    }

    /// Runs a process inside the container: all its namespaces (through its init's pidfd), its
    /// cgroup, its user, capabilities, seccomp, environment and working directory.
    /// With `tty`, the process gets a terminal of the container's own (a pty from its
    /// /dev/pts) and the master comes back with it.
    public func exec(_ h: ContainerHandle, argv: [String], stdio: [FD?], env extra: [String] = [], tty: Bool = false) throws(HuskError) -> (SpawnedProcess, master: FD?) {
        var p = h.engine.execTemplate
        p.argv = argv
        p.env = h.engine.execTemplate.env + extra
        p.stdio = stdio
        var all: Namespaces = [.mount, .uts, .ipc, .network, .cgroup]
        if sandbox.config.userNamespace != nil { all.insert(.user) }
        do {
            return try Engine.exec(p, into: h.process.pidfd, namespaces: all, joinPid: true, cgroup: h.cgroup, terminal: tty ? .returned : .none)
        } catch {
            throw HuskError(.invalidArgument, "exec in container \(h.name) failed: \(error.cause.map { "\($0)" } ?? error.message)")
        }
    }

    /// CRI RemoveContainer: removes what the instance held on the host, its cgroup and its
    /// upper dir. The caller stopped it.
    public func removeContainer(_ h: ContainerHandle) {
        try? Engine.delete(h.cgroup, timeout: 10)
        try? Files.removeTree(h.instanceDir)
    }

    /// The termination message (pod-semantics §10): the last 4096 bytes of the file; with
    /// FallbackToLogsOnError and a failure, the last 80 log lines capped to 2048 bytes.
    func terminationMessage(_ h: ContainerHandle, policy: String, exitCode: Int32, logPath: String) -> String? {
        if let path = h.terminationLog, let bytes = (try? Files.read(path)) ?? nil, !bytes.isEmpty {
            return String(decoding: bytes.suffix(4096), as: UTF8.self)
        }
        guard policy == "FallbackToLogsOnError", exitCode != 0, let log = (try? Files.read(logPath)) ?? nil else { return nil }
        let lines = CRILogReader.parse(log).lines
        let text = lines.suffix(80).flatMap(\.content)
        let capped = text.suffix(2048)
        return capped.isEmpty ? nil : String(decoding: capped, as: UTF8.self)
    }
}
