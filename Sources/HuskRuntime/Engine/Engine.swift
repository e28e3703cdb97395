import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The container engine: the one implementation of a container's life on this host (DESIGN
/// §2) — create (to the start gate), start, signal, stop, exec, wait, delete, update, stats.
/// husk-runc's `Container` (state on disk, runc's command line) and the pod runtime service
/// (containers joined to a sandbox) both call it; neither writes a cgroup file, spawns a
/// container process or escalates a stop by itself.
///
/// The engine takes an OCI `Spec` plus what the caller injects (`EngineRequest`): the cgroup
/// the container goes in, namespaces to join by fd, stdio or a console socket, the kind of
/// start gate, extra mounts prepared as fds, an overlay rootfs.
public enum Engine {}

/// How a created container's process waits before it execs its program.
public enum StartGate: Sendable {
    /// A FIFO at this path: another process opens it later (husk-runc `start`).
    case fifo(path: String)
    /// A pipe whose write end the creator keeps (a pod's supervisor).
    case pipe
}

/// What a caller hands the engine besides the spec.
public struct EngineRequest: Sendable {
    public var id: String
    public var spec: Spec
    /// Relative paths of the spec (its root) are relative to this directory.
    public var bundle: String
    /// The container's cgroup, inside the cgroup2 hierarchy (`/husk/<pod>/<name>`).
    public var cgroupPath: String
    /// A group at `cgroupPath` left by an earlier instance is removed (a pod restarting a
    /// container); otherwise a group with processes in it is refused (runc).
    public var replaceStaleCgroup = false
    /// Groups above the container's that this caller may hand controllers down through and
    /// remove when empty, besides the ones `create` makes (Husk's own subtree).
    public var mayWriteCgroup: @Sendable (String) -> Bool = { $0 == "/husk" || $0.hasPrefix("/husk/") }
    /// Whether the empty ancestors `mayWriteCgroup` allows are removed too when `create`
    /// fails (runc's); otherwise only the groups `create` made go with the container's.
    public var pruneAncestorsOnFailure = true
    /// Prefixed to the warnings about the spec's own fields (husk-runc: the config.json path);
    /// resource warnings come as they are.
    public var warningPrefix = ""
    /// Namespaces joined through fds the caller holds (a pod's pause pidfd).
    public var joins: [SpawnPlan.NamespaceJoin] = []
    /// The pid namespace to create the process in, by an fd the caller holds.
    public var pidNamespace: FD? = nil
    public var stdio: [FD?] = [nil, nil, nil]
    /// With `process.terminal`: the pty master goes over this socket.
    public var consoleSocket: FD? = nil
    public var gate: StartGate = .pipe
    /// Mounts prepared by the caller (volumes resolved to fds), merged with the spec's, parents
    /// before children.
    public var extraMounts: [SpawnPlan.MountEntry] = []
    /// An overlay mounted as the root in the child: lower dirs lowest first, upper, work.
    public var overlay: (lower: [String], upper: String, work: String)? = nil
    /// With `overlay`: the user namespace (a pidfd of a process in it, or a /proc/PID/ns/user
    /// fd) whose mapping the layers are seen through (an idmapped mount each), so that the
    /// image's root-owned files are the namespace's root's. The overlay is then mounted by a
    /// helper, with the runtime's credentials, and attached by the child.
    public var overlayUserNamespace: FD? = nil
    public var preserveFDs: [FD] = []
    /// A new session keyring of this name (runc's default), or the caller's.
    public var sessionKeyring: String? = nil
    /// A limit whose controller the host lacks is skipped with a warning instead of refused.
    public var ignoreMissingControllers = false
    /// Receives warnings (fields accepted but not applied).
    public var warn: @Sendable (String) -> Void = { _ in }
    /// Hooks that run in the child (createContainer, startContainer), and the runtime's own
    /// (prestart, createRuntime) run by `atHooks` while the child waits before pivot_root.
    public var childHooks: (create: [SpawnPlan.Hook], start: [SpawnPlan.Hook])? = nil
    public var atHooks: (@Sendable (pid_t, FD) -> SpawnError?)? = nil
    /// Called once the cgroup exists and before anything runs in it (husk-runc records it).
    public var onCgroup: (@Sendable (Cgroup2Group, _ created: [String]) throws(HuskError) -> Void)? = nil

    public init(id: String, spec: Spec, bundle: String, cgroupPath: String) {
        self.id = id
        self.spec = spec
        self.bundle = bundle
        self.cgroupPath = cgroupPath
    }
}

/// A container the engine created: its process waits at the start gate.
public struct EngineContainer: Sendable {
    public let id: String
    public let process: SpawnedProcess
    public let cgroup: Cgroup2Group
    /// Ancestor groups `create` made, removed with the container when empty.
    public let createdCgroups: [String]
    /// What a process exec'd into this container runs with (user, groups, umask,
    /// capabilities, no_new_privs, seccomp, AppArmor profile, env, cwd; not rlimits or oom_score_adj): the
    /// container's own, as created.
    public let execTemplate: SpawnPlan
    /// The pipe gate (nil for a FIFO gate: its path opens it).
    public let gate: PipeGate?
    /// A container without a mount namespace of its own: the bind of its rootfs in the
    /// runtime's mount namespace (path, mount id), for `releaseHostRoot` at delete.
    public let hostRoot: (path: String, mountID: Int)?

    public var pid: pid_t { process.pid }

    public init(id: String, process: SpawnedProcess, cgroup: Cgroup2Group, createdCgroups: [String], execTemplate: SpawnPlan,
                gate: PipeGate?, hostRoot: (path: String, mountID: Int)? = nil) {
        self.hostRoot = hostRoot
        self.id = id
        self.process = process
        self.cgroup = cgroup
        self.createdCgroups = createdCgroups
        self.execTemplate = execTemplate
        self.gate = gate
    }
}

/// The write end of a pipe start gate: written once, then closed.
public final class PipeGate: @unchecked Sendable {  // opened once, by the thread that starts the container
    private var fd: FD?
    init(_ fd: FD) { self.fd = fd }

    /// Whether the gate was opened (the byte written).
    public var isOpen: Bool { fd == nil }

    func open() throws(SystemCallError) {
        guard let fd else { return }
        try fd.writeAll([1])
        self.fd = nil
    }
}

extension Engine {
    /// Creates a container: its cgroup (with the spec's resources and device rules), and its
    /// process, set up completely and waiting at the start gate. On failure nothing is left:
    /// no process, no cgroup this call made.
    public static func create(_ r: EngineRequest) throws(HuskError) -> EngineContainer {
        guard let mount = (try? Cgroup2Mount.discover()) ?? nil else {
            throw HuskError(.unsupported, "no cgroup2 hierarchy is mounted (see /proc/self/mountinfo)")
        }
        let group = mount.group(r.cgroupPath)
        if group.exists && !group.processes().isEmpty {
            guard r.replaceStaleCgroup else {
                throw HuskError(.alreadyExists, "cgroup \(group.directory) is in use by other processes")
            }
        }
        if r.replaceStaleCgroup && group.exists {
            do { try group.remove(timeout: 5) } catch { throw HuskError(.system, "cannot remove the stale cgroup \(group.directory)", cause: error) }
        }
        let created: [String]
        do {
            created = try group.create()
        } catch {
            throw HuskError(.system, "cannot create cgroup \(group.directory)", cause: error)
        }
        let mayWrite: @Sendable (String) -> Bool = { [mayWriteCgroup = r.mayWriteCgroup] in created.contains($0) || mayWriteCgroup($0) }
        var process: SpawnedProcess? = nil
        var hostRootBefore: (path: String, mountID: Int?)? = nil
        do throws(HuskError) {
            try r.onCgroup?(group, created)
            for w in try applyResources(r.spec.linux?.resources, to: group, mayWrite: mayWrite, ignoreMissing: r.ignoreMissingControllers) {
                r.warn(w)
            }
            var (plan, gateWriter) = try plan(r, group: group)
            if plan.rootfsChroot, let rootfs = plan.rootfs { hostRootBefore = (rootfs, MountInfo.topMount(at: rootfs)) }
            do {
                process = try Spawner.spawn(plan, atHooks: r.atHooks.flatMap { f in plan.hooksPeerFD.map { peer in { pid in f(pid, peer) } } })
            } catch {
                throw HuskError(.invalidArgument, "cannot create container \(r.id)", cause: error)
            }
            plan.hooksFD = nil
            plan.hooksPeerFD = nil
            var hostRoot: (path: String, mountID: Int)? = nil
            if let (path, before) = hostRootBefore, let top = MountInfo.topMount(at: path), top != before {
                hostRoot = (path, top)
            }
            return EngineContainer(
                id: r.id, process: process!, cgroup: group, createdCgroups: created, execTemplate: execTemplate(plan),
                gate: gateWriter.map(PipeGate.init), hostRoot: hostRoot)
        } catch {
            if let process {
                try? process.pidfd.signal(SIGKILL)
                _ = try? process.pidfd.wait()
            }
            // The child's bind of the rootfs in the runtime's mount namespace, if it got that far.
            if let (path, before) = hostRootBefore, let top = MountInfo.topMount(at: path), top != before {
                releaseHostRoot(path: path, mountID: top)
            }
            let pruneAll = r.pruneAncestorsOnFailure
            let prune: (String) -> Bool = { pruneAll ? mayWrite($0) : created.contains($0) }
            // A group that existed before (outside Husk's subtree) is emptied, never removed.
            if mayWrite(group.path) { try? group.remove(prune: prune) } else { try? group.drain() }
            throw error
        }
    }

    /// The spawn plan of `r`: the spec's, with what the caller injects and the fds the
    /// engine opens (cgroup, namespaces by path, gate, device filter attached).
    static func plan(_ r: EngineRequest, group: Cgroup2Group) throws(HuskError) -> (SpawnPlan, gateWriter: FD?) {
        let planned = try SpawnPlanner.plan(spec: r.spec, bundle: r.bundle, cgroupDirectory: group.directory)
        for w in planned.warnings { r.warn(r.warningPrefix + w) }
        var plan = planned.plan
        if !r.extraMounts.isEmpty {
            // Deeper targets after their parents (volumes may sit inside each other or /etc).
            plan.mounts = (plan.mounts + r.extraMounts).enumerated().sorted {
                let a = $0.element.target.split(separator: "/").count, b = $1.element.target.split(separator: "/").count
                return a == b ? $0.offset < $1.offset : a < b
            }.map(\.element)
        }
        if let sc = r.spec.linux?.seccomp {
            let (program, warnings) = try SeccompProfile.compile(sc)
            plan.seccomp = program
            for w in warnings { r.warn(r.warningPrefix + w) }
        }
        // Idmapped binds: a detached copy of the source, mapped here, attached by the child.
        for i in plan.mounts.indices {
            guard let idmap = plan.mounts[i].idmap, let source = plan.mounts[i].source else { continue }
            plan.mounts[i].sourceFD = try idmappedTree(source, recursiveBind: plan.mounts[i].flags.contains(.recursive), idmap: idmap,
                                                       target: plan.mounts[i].target)
        }
        for j in planned.joins {
            plan.joins.append(.init(fd: try openNamespace(j.path, type: j.type, field: j.field), type: j.type))
        }
        if r.joins.contains(where: { $0.type.contains(.user) }) {
            // A user namespace joined through a pidfd (a pod's, pause's) is entered first
            // and owns the new namespaces, as for one joined by path.
            plan.joins = r.joins + plan.joins
            plan.unshareNamespaces.formUnion(plan.newNamespaces.subtracting(.pid))
            plan.newNamespaces.formIntersection(.pid)
        } else {
            plan.joins += r.joins
        }
        if let p = planned.pidNamespacePath {
            plan.pidNamespace = try openNamespace(p, type: .pid, field: "linux.namespaces (pid)")
        }
        if let fd = r.pidNamespace { plan.pidNamespace = fd }
        if plan.newNamespaces.contains(.pid), plan.joins.contains(where: { $0.type.contains(.user) }) {
            // A new pid namespace must belong to the joined user namespace (its root mounts
            // /proc for it): the child unshares it after the join and forks the container.
            plan.newNamespaces.remove(.pid)
            plan.unshareNamespaces.insert(.pid)
        }
        do {
            plan.cgroup = try group.open()
        } catch {
            throw HuskError(.system, "cannot open cgroup \(group.directory)", cause: error)
        }
        let filter = DeviceFilter.build(resources: r.spec.linux?.resources?.devices)
        try filter.attach(to: plan.cgroup!, path: group.directory)
        if let overlay = r.overlay {
            if let userns = r.overlayUserNamespace {
                do {
                    plan.rootfsMount = try Spawner.idmappedOverlay(lower: overlay.lower, upper: overlay.upper, work: overlay.work,
                                                                   userNamespace: userns)
                } catch {
                    throw HuskError(.system, "cannot mount the container's root from id-mapped layers", cause: error)
                }
            } else {
                plan.overlay = overlay
            }
        }
        plan.stdio = r.stdio
        if r.spec.process?.terminal == true, let socket = r.consoleSocket {
            plan.consoleSocket = socket
            plan.setsid = true
        }
        plan.preserveFDs = r.preserveFDs
        plan.sessionKeyring = r.sessionKeyring
        if let hooks = r.childHooks {
            let (reader, writer): (FD, FD)
            do {
                (reader, writer) = try makePipe()
            } catch {
                throw HuskError(.system, "cannot make the hooks pipe", cause: error)
            }
            plan.hooksFD = reader
            plan.hooksPeerFD = writer
            plan.createContainerHooks = hooks.create
            plan.startContainerHooks = hooks.start
        }
        switch r.gate {
        case .fifo(let path):
            plan.gate = try makeFIFOGate(path)
            return (plan, nil)
        case .pipe:
            let gate: (read: FD, write: FD)
            do { gate = try makePipe() } catch { throw HuskError(.system, "cannot make the start gate", cause: error) }
            plan.gate = gate.read
            return (plan, gate.write)
        }
    }

    /// Writes resources into a group that holds containers (a pod's), handing the controllers
    /// down through Husk's own subtree only. Returns warnings.
    public static func setResources(_ r: Spec.Resources?, on g: Cgroup2Group, ignoreMissing: Bool,
                                    mayWrite: (String) -> Bool = { $0 == "/husk" || $0.hasPrefix("/husk/") }) throws(HuskError) -> [String] {
        try applyResources(r, to: g, mayWrite: mayWrite, ignoreMissing: ignoreMissing)
    }

    /// Writes `linux.resources` into `group` (the one cgroup writer of Husk), handing the
    /// controllers it needs down through the ancestors `mayWrite` allows. Returns warnings.
    static func applyResources(
        _ r: Spec.Resources?, to g: Cgroup2Group, mayWrite: (String) -> Bool, ignoreMissing: Bool
    ) throws(HuskError) -> [String] {
        var p = SpecProblems()
        var limits = OCIResources.limits(r, into: &p)
        if limits.isEmpty && p.errors.isEmpty { return [] }
        OCIResources.delegate(OCIResources.controllers(limits), to: g, mayWrite: mayWrite)
        if Files.exists(g.directory + "/io.bfq.weight") {
            p = SpecProblems()
            limits = OCIResources.limits(r, hasBFQ: true, into: &p)
        }
        if !p.errors.isEmpty { throw HuskError(.invalidArgument, p.errors.joined(separator: "; ")) }
        return try OCIResources.apply(limits, to: g, ignoreMissing: ignoreMissing)
    }

    /// What an exec runs with in a container created from `spec`, worked out again (a
    /// supervisor that took over a running container).
    public static func execTemplate(spec: Spec, bundle: String, cgroupDirectory: String) throws(HuskError) -> SpawnPlan {
        var plan = try SpawnPlanner.plan(spec: spec, bundle: bundle, cgroupDirectory: cgroupDirectory).plan
        if let sc = spec.linux?.seccomp { plan.seccomp = try SeccompProfile.compile(sc).0 }
        return execTemplate(plan)
    }

    /// A detached copy of `source` (its submounts too for an rbind) shown through an idmapped
    /// mount with `idmap`'s maps (MOUNT_ATTR_IDMAP through a user namespace made for it).
    static func idmappedTree(
        _ source: String, recursiveBind: Bool, idmap: (uidMap: String, gidMap: String, recursive: Bool), target: String
    ) throws(HuskError) -> FD {
        let tree: FD
        do {
            let fd = try FD.open(source, O_PATH | O_CLOEXEC)
            tree = try Mount.cloneTree(at: fd, recursive: recursiveBind)
        } catch {
            throw HuskError(.invalidArgument, "mount \(target): cannot open \(source)", cause: error)
        }
        do {
            try Spawner.idmap(tree, recursive: idmap.recursive, uidMap: idmap.uidMap, gidMap: idmap.gidMap)
        } catch {
            throw HuskError(.invalidArgument, "mount \(target): cannot make \(source) an id-mapped mount", cause: error)
        }
        return tree
    }

    /// Unmounts the bind of a container's rootfs made in the runtime's mount namespace (a
    /// container without one of its own), with everything mounted below it, when `mountID`
    /// is still the topmost mount there. Returns whether it was there.
    @discardableResult
    public static func releaseHostRoot(path: String, mountID: Int) -> Bool {
        guard MountInfo.topMount(at: path) == mountID else { return false }
        try? Mount.unmount(path, detach: true)
        return true
    }

    /// What an exec in a container created from `plan` runs with.
    static func execTemplate(_ plan: SpawnPlan) -> SpawnPlan {
        var exec = SpawnPlan()
        exec.rootfsChroot = plan.rootfsChroot
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
        exec.apparmorProfile = plan.apparmorProfile
        exec.seccomp = plan.seccomp
        exec.env = plan.env
        exec.cwd = plan.cwd
        return exec
    }

    /// The FIFO gate: the child reads one byte from it. Opened O_RDWR so that the read blocks
    /// until `start` writes, and so that this open does not wait for a peer.
    static func makeFIFOGate(_ path: String) throws(HuskError) -> FD {
        guard mkfifo(path, 0o600) == 0 else {
            throw HuskError(.system, "cannot create the start gate", cause: SystemCallError("mkfifo", path, currentErrno))
        }
        do {
            return try FD.open(path, O_RDWR)
        } catch {
            throw HuskError(.system, "cannot open the start gate", cause: error)
        }
    }
}
