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
    public let process: SpawnedProcess
    public let cgroup: Cgroup2Group
    public let instanceDir: String
    public let terminationLog: String?
    public let stopSignal: Int32
    /// What an exec inside this container runs as (user, capabilities, seccomp, env, cwd).
    let exec: SpawnPlan
    let log: CRILogWriter
    /// The output pipes not yet at EOF, by stream (loop thread only).
    var outputs: [String: FD] = [:]
    /// The write end of the start gate, until the container is started.
    var gate: FD? = nil
    public var exit: ExitStatus? = nil
    /// The container's stdin (spec `stdin`): the pty master with `tty`, else a pipe's write
    /// end. Under `attachLock`.
    var input: FD? = nil
    /// The container has a terminal: its output is the pty master's (one stream, stdout).
    var tty = false
    /// The output fds the keeper holds besides stdin's, for when stdin closes.
    var keptOutputs: [FD] = []
    /// Clients of `husk attach`, each getting the output as it comes. Under `attachLock`.
    var attached: [AttachClient] = []
    let attachLock = Monitor()

    init(name: String, attempt: Int, id: String, process: SpawnedProcess, cgroup: Cgroup2Group, instanceDir: String,
         terminationLog: String?, stopSignal: Int32, exec: SpawnPlan, log: CRILogWriter) {
        self.name = name
        self.attempt = attempt
        self.id = id
        self.process = process
        self.cgroup = cgroup
        self.instanceDir = instanceDir
        self.terminationLog = terminationLog
        self.stopSignal = stopSignal
        self.exec = exec
        self.log = log
    }

    public var pid: pid_t { process.pid }
}

/// A failure to start a container (CRI CreateContainer/StartContainer failed), with the
/// reason kubelet and containerd report for it.
public struct StartFailure: Error, CustomStringConvertible, Sendable {
    /// Waiting reason: CreateContainerConfigError, CreateContainerError, RunContainerError.
    public var waitingReason: WaitingReason
    public var message: String
    /// The instance ended before it ran: Terminated StartError, exit 128 (containerd).
    public var startError: Bool
    public var description: String { message }
}

/// The container half of the runtime service (CRI CreateContainer, StartContainer,
/// StopContainer, RemoveContainer, Exec): mechanics only, the controller decides.
public final class ContainerRuntime: @unchecked Sendable {  // immutable after init
    let sandbox: Sandbox
    let loop: EventLoop
    /// Holds a copy of every container's output pipes while the container lives.
    let keeper: KeeperLink?

    init(sandbox: Sandbox, loop: EventLoop, keeper: KeeperLink?) {
        self.sandbox = sandbox
        self.loop = loop
        self.keeper = keeper
    }

    var paths: PodPaths { sandbox.paths }

    /// A random container id (64 hex digits, as containerd's).
    static func newID() -> String {
        (0..<32).map { _ in let b = UInt8.random(in: 0...255); return (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
    }

    /// Creates an instance: everything is set up and the process waits at its start gate.
    func create(
        _ c: ContainerSpec, image: ImageRecord, layers: [String], attempt: Int, id: String, logPath: String,
        onExit: @escaping @Sendable (ContainerHandle, ExitStatus) -> Void
    ) throws(StartFailure) -> ContainerHandle {
        let pod = sandbox.pod
        let builder = ContainerBuilder(pod: pod, container: c, sandbox: sandbox, image: image, layers: layers)
        let dir = paths.instance(c.name, attempt: attempt)
        func failure(_ reason: WaitingReason, _ message: String, startError: Bool = false) -> StartFailure {
            StartFailure(waitingReason: reason, message: message, startError: startError)
        }
        let process: ContainerBuilder.Process
        let spec: Spec
        var volumeMounts: [SpawnPlan.MountEntry]
        do {
            process = try builder.process()
            do {
                try Files.makeDirectories(dir + "/upper", mode: 0o755)
                try Files.makeDirectories(dir + "/work", mode: 0o700)
                try Files.makeDirectories(dir + "/rootfs", mode: 0o755)
            } catch {
                throw ContainerConfigError(reason: .createContainerError, message: "cannot create \(dir): \(error)")
            }
            var termLog: String? = nil
            if !c.terminationMessagePath.isEmpty {
                termLog = dir + "/termination-log"
                let fd = open(termLog!, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
                if fd >= 0 { fchmod(fd, 0o666); close(fd) }
            }
            spec = try builder.spec(process: process, instance: dir, terminationLog: termLog)
            volumeMounts = try builder.volumeMounts()
        } catch let e as ContainerConfigError {
            throw failure(e.reason, e.message)
        } catch {
            throw failure(.createContainerError, "\(error)")
        }
        // The cgroup of this instance, with its device rules, before the clone lands in it.
        guard let mount = try? Cgroup2Mount.discover() else {
            throw failure(.createContainerError, "no cgroup2 hierarchy is mounted")
        }
        let group = mount.group(paths.cgroup + "/" + c.name)
        var plan: SpawnPlan
        do {
            if group.exists { try group.remove(timeout: 5) }
            try group.create()
            try CgroupResources.apply(CgroupResources.container(c, path: "", memoryQoS: paths.settings.memoryQoS), to: group)
            var planned = try SpawnPlanner.plan(spec: spec, bundle: dir, cgroupDirectory: group.directory)
            plan = planned.plan
            plan.mounts += volumeMounts
            volumeMounts = []
            // Deeper targets after their parents (volumes may sit inside each other or /etc).
            plan.mounts = plan.mounts.enumerated().sorted {
                let a = $0.element.target.split(separator: "/").count, b = $1.element.target.split(separator: "/").count
                return a == b ? $0.offset < $1.offset : a < b
            }.map(\.element)
            if let sc = spec.linux?.seccomp {
                let (program, _) = try SeccompProfile.compile(sc)
                plan.seccomp = program
            }
            let filter = DeviceFilter.build(resources: spec.linux?.resources?.devices, devices: nil)
            let cgfd = try group.open()
            try filter.attach(to: cgfd, path: group.directory)
            plan.cgroup = cgfd
            planned.warnings = []
        } catch {
            try? group.remove(timeout: 5)
            throw failure(.createContainerError, "\(error)")
        }
        // The rootfs: the image's layers under a private upper dir, mounted in the child.
        plan.overlay = (layers, dir + "/upper", dir + "/work")
        // Join the sandbox: network, IPC and UTS through pause's pidfd (not with hostNetwork /
        // hostIPC), and its pid namespace when the pod shares one.
        guard let pause = sandbox.pause else { throw failure(.createContainerError, "the pod sandbox is not running") }
        var joinFlags: Namespaces = []
        if !pod.spec.hostNetwork { joinFlags.formUnion([.network, .uts]) }
        if !pod.spec.hostIPC { joinFlags.insert(.ipc) }
        if !joinFlags.isEmpty { plan.joins.append(.init(fd: pause.fd, type: joinFlags)) }
        if pod.spec.shareProcessNamespace { plan.pidNamespace = pause.fd }
        // Output into pipes read by the supervisor (CRI logs), or a terminal of the
        // container's own with `tty` (its master read the same way); stdin a pipe with `stdin`.
        var out: (read: FD, write: FD)? = nil, err: (read: FD, write: FD)? = nil, input: (read: FD, write: FD)? = nil
        var console: FD? = nil
        let log: CRILogWriter
        do {
            if c.tty {
                let pair = try UnixSocket.seqpacketPair()
                console = pair.0
                plan.consoleSocket = pair.1
                plan.setsid = true
            } else {
                out = try makePipe()
                err = try makePipe()
                if c.stdin { input = try makePipe() }
                plan.stdio = [try input?.read ?? FD.open("/dev/null", O_RDONLY), out!.write, err!.write]
            }
            plan.gate = nil
            log = try CRILogWriter(path: logPath)
        } catch let e as HuskError {
            try? group.remove(timeout: 5)
            throw failure(.createContainerError, "\(e)")
        } catch {
            try? group.remove(timeout: 5)
            throw failure(.createContainerError, "\(error)")
        }
        let gate: (read: FD, write: FD)
        do { gate = try makePipe() } catch { throw failure(.createContainerError, "\(error)") }
        plan.gate = gate.read
        plan.sessionKeyring = "_ses." + String(id.prefix(12))
        let spawned: SpawnedProcess
        do {
            spawned = try Spawner.spawn(plan)
        } catch {
            try? group.remove(timeout: 5)
            // containerd reports a container that could not be set up or exec'd as StartError.
            throw failure(.runContainerError, "failed to create containerd task: failed to create shim task: OCI runtime create failed: \(error)", startError: true)
        }
        let exec = Self.execPlan(plan)
        // The terminal's master, which the child sent before it stopped at its gate.
        var master: FD? = nil
        if let console {
            plan.consoleSocket = nil
            master = Self.receiveMaster(console)
            if master == nil {
                try? spawned.pidfd.signal(SIGKILL)
                _ = try? spawned.pidfd.wait()
                try? group.remove(timeout: 5)
                throw failure(.runContainerError, "failed to create containerd task: no terminal came back from the container", startError: true)
            }
        }
        let handle = ContainerHandle(
            name: c.name, attempt: attempt, id: id, process: spawned, cgroup: group, instanceDir: dir,
            terminationLog: c.terminationMessagePath.isEmpty ? nil : dir + "/termination-log", stopSignal: process.stopSignal,
            exec: exec, log: log)
        handle.gate = gate.write
        if let master {
            handle.tty = true
            if c.stdin { handle.input = try? master.duplicate() }
            keeper?.hold(id, [master])
            watchOutput(handle, master, "stdout")
        } else if let out, let err {
            handle.input = input?.write
            handle.keptOutputs = [out.read, err.read]
            keeper?.hold(id, [out.read, err.read] + (input.map { [$0.write] } ?? []))
            watchOutput(handle, out.read, "stdout")
            watchOutput(handle, err.read, "stderr")
        }
        loop.watch(spawned.pidfd) { status in onExit(handle, status) }
        return handle
    }

    /// The pty master a child sent over its console socket (waits up to 5 s).
    static func receiveMaster(_ sock: FD) -> FD? { ConsolePair.receiveMaster(from: sock) }

    /// Closes the container's stdin for good (stdinOnce): our end and the keeper's copy.
    func closeInput(_ h: ContainerHandle) {
        h.attachLock.locked { h.input = nil }
        if !h.tty { keeper?.hold(h.id, h.keptOutputs) }
    }

    /// What an exec in a container created from `plan` runs with.
    static func execPlan(_ plan: SpawnPlan) -> SpawnPlan {
        var exec = SpawnPlan()
        exec.uid = plan.uid
        exec.gid = plan.gid
        exec.groups = plan.groups
        exec.umask = plan.umask
        exec.bounding = plan.bounding
        exec.effective = plan.effective
        exec.permitted = plan.permitted
        exec.inheritable = plan.inheritable
        exec.ambient = plan.ambient
        exec.noNewPrivileges = plan.noNewPrivileges
        exec.seccomp = plan.seccomp
        exec.env = plan.env
        exec.cwd = plan.cwd
        return exec
    }

    /// Takes over a running instance a dead supervisor left (pid and start time from its
    /// status, output pipes from the keeper): its exec settings are worked out again from the
    /// spec and the image as at create, its output goes on into the same log, and its exit is
    /// watched (as the keeper records it: nil when not known). Throws when the process is not
    /// the instance any more.
    func adopt(
        _ c: ContainerSpec, image: ImageRecord, layers: [String], attempt: Int, id: String, logPath: String,
        pid: Int32, start: UInt64, outputs: [FD],
        onExit: @escaping @Sendable (ContainerHandle, ExitStatus?) -> Void
    ) throws(HuskError) -> ContainerHandle {
        let pidfd: PidFD
        do {
            pidfd = try PidFD.open(pid)
        } catch {
            throw HuskError(.notFound, "container \(c.name) (pid \(pid)) is gone")
        }
        guard ProcessInfo.isAlive(pid, startTime: start) else {
            throw HuskError(.notFound, "container \(c.name) (pid \(pid)) is gone")
        }
        let builder = ContainerBuilder(pod: sandbox.pod, container: c, sandbox: sandbox, image: image, layers: layers)
        let dir = paths.instance(c.name, attempt: attempt)
        let termLog = c.terminationMessagePath.isEmpty ? nil : dir + "/termination-log"
        guard let mount = try? Cgroup2Mount.discover() else { throw HuskError(.unsupported, "no cgroup2 hierarchy is mounted") }
        let group = mount.group(paths.cgroup + "/" + c.name)
        let process: ContainerBuilder.Process
        var plan: SpawnPlan
        do {
            process = try builder.process()
            let spec = try builder.spec(process: process, instance: dir, terminationLog: termLog)
            plan = try SpawnPlanner.plan(spec: spec, bundle: dir, cgroupDirectory: group.directory).plan
            if let sc = spec.linux?.seccomp { plan.seccomp = try SeccompProfile.compile(sc).0 }
        } catch {
            throw HuskError(.invalidArgument, "cannot work out container \(c.name)'s settings again: \(error)")
        }
        let log = try CRILogWriter(path: logPath)
        let handle = ContainerHandle(
            name: c.name, attempt: attempt, id: id, process: SpawnedProcess(adopting: pidfd), cgroup: group, instanceDir: dir,
            terminationLog: termLog, stopSignal: process.stopSignal, exec: Self.execPlan(plan), log: log)
        // What the keeper held: the pty master (tty), or the output pipes and stdin's.
        if c.tty, outputs.count == 1 {
            handle.tty = true
            if c.stdin { handle.input = try? outputs[0].duplicate() }
            watchOutput(handle, outputs[0], "stdout")
        } else if outputs.count >= 2 {
            watchOutput(handle, outputs[0], "stdout")
            watchOutput(handle, outputs[1], "stderr")
            if outputs.count >= 3 { handle.input = outputs[2] }
            handle.keptOutputs = Array(outputs.prefix(2))
        }
        loop.watchAdopted(pidfd, start: start, stateDirectory: paths.state) { status in onExit(handle, status) }
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

    /// Opens the gate: the container's program runs. Throws when exec failed.
    func start(_ h: ContainerHandle) throws(StartFailure) {
        do {
            try h.gate?.writeAll([1])
            h.gate = nil
            try h.process.waitExec()
        } catch let e as SpawnError {
            throw StartFailure(waitingReason: .runContainerError, message: "failed to start containerd task: OCI runtime start failed: \(e)", startError: true)
        } catch {
            throw StartFailure(waitingReason: .runContainerError, message: "\(error)", startError: true)
        }
    }

    func signal(_ h: ContainerHandle, _ sig: Int32) {
        try? h.process.pidfd.signal(sig)
    }

    /// SIGKILL to every process of the instance (cgroup.kill), then its init.
    func kill(_ h: ContainerHandle) {
        try? h.cgroup.kill()
        try? h.process.pidfd.signal(SIGKILL)
    }

    /// Runs a process inside the container: all its namespaces (through its init's pidfd), its
    /// cgroup, its user, capabilities, seccomp, environment and working directory.
    /// With `tty`, the process gets a terminal of the container's own (a pty from its
    /// /dev/pts) and the master comes back with it.
    func exec(_ h: ContainerHandle, argv: [String], stdio: [FD?], env extra: [String] = [], tty: Bool = false) throws(HuskError) -> (SpawnedProcess, master: FD?) {
        var p = h.exec
        p.argv = argv
        p.env = h.exec.env + extra
        p.stdio = stdio
        var pair: (FD, FD)? = nil
        if tty {
            do { pair = try UnixSocket.seqpacketPair() } catch { throw HuskError(.system, "socketpair: \(error.errno.text)") }
            p.consoleSocket = pair?.1
            p.setsid = true
        }
        let ours = pair?.0
        p.joins = [.init(fd: h.process.pidfd.fd, type: [.mount, .uts, .ipc, .network, .cgroup])]
        p.pidNamespace = h.process.pidfd.fd
        do {
            p.cgroup = try h.cgroup.open()
        } catch {
            throw HuskError(.system, "cannot open the cgroup of container \(h.name)", cause: error)
        }
        let spawned: SpawnedProcess
        do {
            spawned = try Spawner.spawn(p)
        } catch {
            throw HuskError(.invalidArgument, "exec in container \(h.name) failed: \(error)")
        }
        guard let ours else { return (spawned, nil) }
        // The child sent the master before it exec'd.
        guard let master = Self.receiveMaster(ours) else {
            try? spawned.pidfd.signal(SIGKILL)
            _ = try? spawned.pidfd.wait()
            throw HuskError(.system, "exec in container \(h.name): no terminal came back from the process")
        }
        return (spawned, master)
    }

    /// Removes what the instance held on the host: its cgroup and its upper dir.
    func remove(_ h: ContainerHandle) {
        try? h.cgroup.remove(timeout: 10)
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
