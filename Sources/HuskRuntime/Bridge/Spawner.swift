import CShim
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where in the child a spawn failed.
public enum SpawnStage: Int32, Sendable {
    case none = 0, pipe, clone, pidNamespace, setup, stdio, setns, cgroupNamespace, oomScoreAdj, rootPropagation,
        rootfs, mount, devices, maskedPaths, readonlyPaths, pivotRoot, readonlyRoot, hostname, rlimits, closeFDs,
        seccomp, capabilities, user, cwd, noNewPrivs, lookup, gate, exec, sysctl, console, keyring, loopback, hook,
        userNamespace, apparmor

    public var name: String {
        switch self {
        case .none: return "spawn"
        case .pipe: return "pipe"
        case .clone: return "clone3"
        case .pidNamespace: return "pid namespace"
        case .setup: return "process setup"
        case .stdio: return "stdio"
        case .setns: return "joining namespaces"
        case .cgroupNamespace: return "cgroup namespace"
        case .oomScoreAdj: return "oom_score_adj"
        case .rootPropagation: return "root propagation"
        case .rootfs: return "rootfs"
        case .mount: return "mount"
        case .devices: return "devices"
        case .maskedPaths: return "masked paths"
        case .readonlyPaths: return "readonly paths"
        case .pivotRoot: return "pivot_root"
        case .readonlyRoot: return "readonly root"
        case .hostname: return "hostname"
        case .rlimits: return "rlimits"
        case .closeFDs: return "closing fds"
        case .seccomp: return "seccomp"
        case .capabilities: return "capabilities"
        case .user: return "user"
        case .cwd: return "cwd"
        case .noNewPrivs: return "no_new_privs"
        case .lookup: return "exec"
        case .gate: return "start gate"
        case .exec: return "exec"
        case .sysctl: return "sysctl"
        case .console: return "console"
        case .keyring: return "session keyring"
        case .loopback: return "loopback"
        case .hook: return "hook"
        case .userNamespace: return "user namespace"
        case .apparmor: return "apparmor"
        }
    }
}

/// A failure reported by the child: the stage, the errno and what it worked on.
public struct SpawnError: Error, CustomStringConvertible, Sendable, Equatable {
    public var stage: SpawnStage
    public var errno: Errno
    public var detail: String

    /// `exec: /bin/nope: No such file or directory`; a PATH search that found nothing reads
    /// like runc: `exec: "nope": executable file not found in $PATH`.
    public var description: String {
        if stage == .lookup && errno == .noSuchFileOrDirectory {
            return "exec: \"\(detail)\": executable file not found in $PATH"
        }
        if stage == .hook { return detail }
        if stage == .devices && errno == .fileExists {
            return "devices: \(detail): a file that is not this device is already there (config-linux.md: the runtime must refuse it)"
        }
        if stage == .mount && errno == .tooManySymbolicLinkLevels {
            return "mount: \(detail): must be mounted on an ordinary directory, not a symlink"
        }
        let what = detail.isEmpty ? "" : "\(detail): "
        return "\(stage.name): \(what)\(errno.text)"
    }
}

/// A child started from a plan.
public struct SpawnedProcess: Sendable {
    public let pidfd: PidFD
    /// Open while the child waits at its gate: `waitExec()` after opening the gate.
    let report: FD?

    public var pid: pid_t { pidfd.pid }

    /// A process that already runs (found again by pid): nothing to wait for at a gate.
    public init(adopting pidfd: PidFD) {
        self.pidfd = pidfd
        self.report = nil
    }

    init(pidfd: PidFD, report: FD?) {
        self.pidfd = pidfd
        self.report = report
    }

    /// After the gate is opened: returns once the child has exec'd, or throws its failure (the
    /// child is then exiting; reap it with `pidfd.wait()`).
    public func waitExec() throws(SpawnError) {
        guard let report else { return }
        var result = cshim_spawn_result()
        result.report_fd = dup(report.raw)
        result.pidfd = -1
        let r = cshim_spawn_wait_exec(&result)
        if r != 0 { throw SpawnError(result) }
    }
}

extension SpawnError {
    init(_ r: cshim_spawn_result) {
        let detail = withUnsafeBytes(of: r.detail) { raw in String.fromCBytes(raw) }
        self.init(stage: SpawnStage(rawValue: r.stage) ?? .none, errno: Errno(rawValue: r.error), detail: detail)
    }
}

/// Runs a `SpawnPlan`: lays it out as C memory (an arena freed after the call; the child has
/// its own copy) and calls `cshim_spawn`.
public enum Spawner {
    /// - Parameter atHooks: with `plan.hooksFD`, called with the child's pid once it stops
    ///   for hooks: runs the runtime's hooks and writes the child's states; a failure it
    ///   returns kills the child and is thrown.
    public static func spawn(_ plan: SpawnPlan, atHooks: ((pid_t) -> SpawnError?)? = nil) throws(SpawnError) -> SpawnedProcess {
        let arena = Arena()
        defer { arena.release() }
        var c = cshim_spawn_plan()
        c.clone_flags = plan.newNamespaces.rawValue
        c.unshare_cgroupns = plan.unshareCgroupNamespace ? 1 : 0
        let joins = plan.joins.map { cshim_ns_join(fd: $0.fd.raw, nstype: Int32(truncatingIfNeeded: $0.type.rawValue)) }
        c.joins = arena.array(joins)
        c.njoins = joins.count
        c.pid_ns_fd = plan.pidNamespace?.raw ?? -1
        c.uid_map = plan.uidMap.map { arena.string($0) }
        c.gid_map = plan.gidMap.map { arena.string($0) }
        c.unshare_flags = plan.unshareNamespaces.rawValue
        c.cgroup_fd = plan.cgroup?.raw ?? -1
        c.stdio = (plan.stdio[0]?.raw ?? -1, plan.stdio[1]?.raw ?? -1, plan.stdio[2]?.raw ?? -1)
        c.setsid = plan.setsid ? 1 : 0
        c.console_fd = plan.console?.raw ?? -1
        c.console_socket = plan.consoleSocket?.raw ?? -1
        c.console_rows = plan.consoleSize?.rows ?? 0
        c.console_cols = plan.consoleSize?.cols ?? 0
        c.oom_score_adj = Int32(plan.oomScoreAdj ?? 0)
        c.set_oom_score_adj = plan.oomScoreAdj == nil ? 0 : 1
        c.rootfs = plan.rootfs.map { arena.string($0) }
        c.root_propagation = plan.rootPropagation.rawValue
        if let o = plan.overlay {
            c.overlay_lower = arena.stringArray(o.lower.reversed(), terminated: false)
            c.noverlay_lower = o.lower.count
            c.overlay_upper = arena.string(o.upper)
            c.overlay_work = arena.string(o.work)
        }
        c.rootfs_mount_fd = plan.rootfsMount?.raw ?? -1
        c.rootfs_readonly = plan.rootfsReadonly ? 1 : 0
        c.rootfs_chroot = plan.rootfsChroot ? 1 : 0
        c.enter_root_fd = plan.enterRoot?.raw ?? -1
        let mounts = plan.mounts.map {
            cshim_mount(
                source: $0.source.map { arena.string($0) }, target: arena.string($0.target),
                fstype: $0.fstype.map { arena.string($0) }, data: $0.data.map { arena.string($0) }, flags: $0.flags.rawValue,
                propagation: $0.propagation.rawValue, options: $0.options.rawValue, source_fd: $0.sourceFD?.raw ?? -1)
        }
        c.mounts = arena.array(mounts)
        c.nmounts = mounts.count
        c.setup_dev = plan.setupDev ? 1 : 0
        let devices = plan.devices.map {
            cshim_device(path: arena.string($0.path), mode: $0.mode, major: $0.major, minor: $0.minor, uid: $0.uid,
                         gid: $0.gid, must_match: $0.mustMatch ? 1 : 0)
        }
        c.devices = arena.array(devices)
        c.ndevices = devices.count
        let links = plan.symlinks.map { cshim_symlink(target: arena.string($0.target), path: arena.string($0.path)) }
        c.symlinks = arena.array(links)
        c.nsymlinks = links.count
        c.masked_paths = arena.stringArray(plan.maskedPaths, terminated: false)
        c.nmasked = plan.maskedPaths.count
        c.readonly_paths = arena.stringArray(plan.readonlyPaths, terminated: false)
        c.nreadonly = plan.readonlyPaths.count
        c.hostname = plan.hostname.map { arena.string($0) }
        c.domainname = plan.domainname.map { arena.string($0) }
        let sysctls = plan.sysctls.map {
            cshim_sysctl(path: arena.string($0.key.replacingDots()), value: arena.string($0.value))
        }
        c.sysctls = arena.array(sysctls)
        c.nsysctls = sysctls.count
        let rlimits = plan.rlimits.map { cshim_rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard) }
        c.rlimits = arena.array(rlimits)
        c.nrlimits = rlimits.count
        c.uid = plan.uid
        c.gid = plan.gid
        c.groups = arena.array(plan.groups)
        c.ngroups = plan.groups.count
        c.umask = plan.umask ?? -1
        c.cap_last = Int32(Capabilities.lastCap)
        c.cap_bounding = plan.bounding
        c.cap_effective = plan.effective
        c.cap_permitted = plan.permitted
        c.cap_inheritable = plan.inheritable
        c.cap_ambient = plan.ambient
        c.no_new_privs = plan.noNewPrivileges ? 1 : 0
        c.apparmor_profile = plan.apparmorProfile.map { arena.string($0) }
        if let sc = plan.seccomp {
            c.seccomp_filter = UnsafeRawPointer(arena.array(sc.instructions))
            c.seccomp_len = sc.count
            c.seccomp_flags = sc.flags
        }
        c.session_keyring = plan.sessionKeyring.map { arena.string($0) }
        let preserve = plan.preserveFDs.map(\.raw)
        c.preserve_fds = arena.array(preserve)
        c.npreserve = preserve.count
        c.cwd = arena.string(plan.cwd)
        c.argv = arena.stringArray(plan.argv, terminated: true)
        c.envp = arena.stringArray(plan.env, terminated: true)
        c.path_env = plan.pathEnv.map { arena.string($0) }
        c.gate_fd = plan.gate?.raw ?? -1
        c.exec_fd = plan.executable?.raw ?? -1
        c.loopback_up = plan.loopbackUp ? 1 : 0

        c.hooks_fd = plan.hooksFD?.raw ?? -1
        c.hooks_peer_fd = plan.hooksPeerFD?.raw ?? -1
        func hooks(_ list: [SpawnPlan.Hook]) -> UnsafePointer<cshim_hook>? {
            arena.array(list.map {
                cshim_hook(path: arena.string($0.path), argv: $0.args.isEmpty ? nil : arena.stringArray($0.args, terminated: true),
                           envp: arena.stringArray($0.env, terminated: true), timeout: Int32(clamping: $0.timeout))
            })
        }
        c.create_container_hooks = hooks(plan.createContainerHooks)
        c.ncreate_container_hooks = plan.createContainerHooks.count
        c.start_container_hooks = hooks(plan.startContainerHooks)
        c.nstart_container_hooks = plan.startContainerHooks.count

        var result = cshim_spawn_result()
        Children.willSpawn()
        let r = withExtendedLifetime(plan) { cshim_spawn(&c, &result) }
        Children.spawned(r == 0 ? result.pid : nil)
        if r != 0 { throw SpawnError(result) }
        if result.at_hooks != 0 {
            let failure: SpawnError? =
                if let atHooks { atHooks(result.pid) } else { SpawnError(stage: .hook, errno: .invalidArgument, detail: "the child stopped for hooks nobody runs") }
            if let failure {
                _ = cshim_pidfd_send_signal(result.pidfd, SIGKILL, 0)
                var info = siginfo_t()
                while waitid(P_PIDFD, id_t(result.pidfd), &info, WEXITED) < 0 && errno == EINTR {}
                close(result.pidfd)
                close(result.report_fd)
                throw failure
            }
            if cshim_spawn_continue(&c, &result) != 0 { throw SpawnError(result) }
        }
        let pidfd = PidFD(adopting: result.pidfd, pid: result.pid)
        return SpawnedProcess(pidfd: pidfd, report: result.report_fd >= 0 ? FD(adopting: result.report_fd) : nil)
    }
}

extension Spawner {
    /// Makes the detached tree `tree` an idmapped mount (MOUNT_ATTR_IDMAP) through a user
    /// namespace with these maps, made for the purpose by a short-lived child.
    public static func idmap(_ tree: FD, recursive: Bool, uidMap: String, gidMap: String) throws(SystemCallError) {
        var what: UnsafePointer<CChar>? = nil
        let e = cshim_mount_idmap(tree.raw, recursive ? 1 : 0, uidMap, gidMap, &what)
        if e != 0 { throw SystemCallError(what.map { String(cString: $0) } ?? "mount_setattr", "", Errno(rawValue: e)) }
    }
}

extension Spawner {
    /// A container's overlay root in the user namespace `userNamespace` (a /proc/PID/ns/user fd
    /// or a pidfd): its layers (lowest first) idmapped through it, mounted by a short-lived
    /// child, returned detached for the container's child to attach.
    public static func idmappedOverlay(lower: [String], upper: String, work: String, userNamespace: FD) throws(SystemCallError) -> FD {
        let arena = Arena()
        defer { arena.release() }
        let layers = arena.stringArray(lower.reversed(), terminated: false)
        var what: UnsafePointer<CChar>? = nil
        var fd: Int32 = -1
        let e = cshim_overlay_idmapped(layers!, lower.count, upper, work, userNamespace.raw, &fd, &what)
        if e != 0 { throw SystemCallError(what.map { String(cString: $0) } ?? "overlay", upper, Errno(rawValue: e)) }
        return FD(adopting: fd)
    }

}

extension String {
    /// "net.ipv4.ip_forward" -> "net/ipv4/ip_forward" (sysctl keys may use / already).
    fileprivate func replacingDots() -> String {
        String(self.map { $0 == "." ? "/" : $0 })
    }
}

/// Memory for the C plan, allocated with malloc and freed together.
final class Arena {
    private var blocks: [UnsafeMutableRawPointer] = []

    func string(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        blocks.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    func array<T>(_ items: [T]) -> UnsafePointer<T>? {
        guard !items.isEmpty else { return nil }
        let raw = malloc(MemoryLayout<T>.stride * items.count)!
        blocks.append(raw)
        let p = raw.bindMemory(to: T.self, capacity: items.count)
        p.initialize(from: items, count: items.count)
        return UnsafePointer(p)
    }

    func stringArray(_ items: [String], terminated: Bool) -> UnsafePointer<UnsafePointer<CChar>?>? {
        if items.isEmpty && !terminated { return nil }
        let raw = malloc(MemoryLayout<UnsafePointer<CChar>?>.stride * (items.count + 1))!
        blocks.append(raw)
        let p = raw.bindMemory(to: UnsafePointer<CChar>?.self, capacity: items.count + 1)
        for (i, s) in items.enumerated() { (p + i).initialize(to: string(s)) }
        (p + items.count).initialize(to: nil)
        return UnsafePointer(p)
    }

    func release() {
        for b in blocks { free(b) }
        blocks.removeAll()
    }
}
