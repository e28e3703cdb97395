import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// A pod's sandbox: the pause process holding the pod's namespaces, its address, the
/// /etc files every container gets and the pod's /dev/shm (pod-semantics §10,
/// §11; CRI RunPodSandbox). No policy here: the controller decides when.
public final class Sandbox: @unchecked Sendable {  // built once by one thread, then read-only
    public let config: PodSandboxConfig
    public let paths: PodPaths
    public private(set) var pause: PidFD? = nil
    public private(set) var podIP: String? = nil
    /// The address is released (CNI DEL succeeded at stop), or there was none to release.
    public private(set) var networkReleased = false
    public let hostIP: String?
    public let hostname: String
    /// When RunPodSandbox finished (RFC 3339, nanoseconds).
    public internal(set) var createdAt: String? = nil
    var cni: CNI? = nil
    var shmMounted = false
    var cgroup: Cgroup2Group? = nil
    var cgroupCreated = false

    public init(config: PodSandboxConfig, paths: PodPaths) {
        self.config = config
        self.paths = paths
        hostIP = Sandbox.nodeIP()
        hostname = config.hostname.isEmpty ? Sandbox.nodeName() : config.hostname
    }

    /// Whether the pod has its own network (and UTS) namespace.
    var ownNetwork: Bool { config.ownNetwork }

    /// The node's hostname (uname's nodename).
    public static func nodeName() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: u.nodename) { String.fromCBytes($0) }
    }

    /// This node's first non-loopback IPv4 address (status.hostIP).
    static func nodeIP() -> String? {
        var ifap: UnsafeMutablePointer<ifaddrs>? = nil
        guard getifaddrs(&ifap) == 0 else { return nil }
        defer { freeifaddrs(ifap) }
        var p = ifap
        while let cur = p {
            defer { p = cur.pointee.ifa_next }
            guard let sa = cur.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            let flags = Int32(cur.pointee.ifa_flags)
            if flags & Int32(IFF_LOOPBACK) != 0 || flags & Int32(IFF_UP) == 0 { continue }
            var buf = [CChar](repeating: 0, count: 64)
            let ok = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin -> Bool in
                var addr = sin.pointee.sin_addr
                return inet_ntop(AF_INET, &addr, &buf, 64) != nil
            }
            if ok { return buf.withUnsafeBytes { String.fromCBytes($0) } }
        }
        return nil
    }

    // MARK: - Start

    /// Creates everything; on failure what was made is taken down again (`teardown`).
    public func start(onPauseExit: @escaping @Sendable (ExitStatus) -> Void, loop: EventLoop) throws(HuskError) {
        do {
            try prepareDirectories()
            try startPause(onExit: onPauseExit, loop: loop)
            try network()
            try writeEtcFiles()
            try prepareShm()
        } catch {
            teardown()
            throw error
        }
    }

    /// pause's root: an empty directory. In a user namespace of the pod's own it is under the
    /// pod's data, which its root (a host id without rights over host root's 0700
    /// directories) must be able to walk through, as the containers' roots.
    var pauseRoot: String { config.userNamespace == nil ? paths.pauseRoot : paths.data + "/pause-root" }

    func prepareDirectories() throws(HuskError) {
        if let userns = config.userNamespace, userns.uids.isEmpty || userns.gids.isEmpty || userns.hostRoot == nil {
            throw HuskError(.invalidArgument, "the pod asks for a user namespace of its own but has no id range (\(paths.userNamespace) is missing or invalid)")
        }
        if config.userNamespace != nil {
            // The roots are entered by the namespace's root: every directory above them must
            // be searchable by others. Husk's own (--root and its pods/) are made so, as
            // containerd makes its root and state directories 0711; those above are checked.
            let root = paths.settings.root
            for dir in [root, root + "/pods"] {
                var st = stat()
                if stat(dir, &st) == 0, st.st_mode & 0o011 != 0o011 { chmod(dir, (st.st_mode & 0o7777) | 0o011) }
            }
            var dir = ""
            for part in root.split(separator: "/").dropLast() {
                dir += "/" + part
                var st = stat()
                if stat(dir, &st) == 0, st.st_mode & 0o001 == 0 {
                    throw HuskError(
                        .invalidArgument,
                        "spec.hostUsers: false: the pod's root user (host uid \(config.userNamespace?.hostRoot?.uid ?? 0)) cannot reach \(paths.data): \(dir) is mode \(String(st.st_mode & 0o7777, radix: 8)); make it searchable by others (chmod o+x \(dir)) or use another --root")
                }
            }
        }
        let mode: mode_t = config.userNamespace == nil ? 0o750 : 0o711
        do {
            try Files.makeDirectories(pauseRoot, mode: 0o755)
            try Files.makeDirectories(paths.data + "/containers", mode: mode)
            chmod(paths.data, mode)
            chmod(paths.data + "/containers", mode)
        } catch {
            throw HuskError(.system, "cannot create the pod's directories", cause: error)
        }
    }

    func startPause(onExit: @escaping @Sendable (ExitStatus) -> Void, loop: EventLoop) throws(HuskError) {
        guard let mount = try? Cgroup2Mount.discover() else {
            throw HuskError(.unsupported, "no cgroup2 hierarchy is mounted (see /proc/self/mountinfo)")
        }
        let podGroup = mount.group(paths.cgroup)
        let pauseGroup = mount.group(paths.cgroup + "/pause")
        do {
            try pauseGroup.create()
        } catch {
            throw HuskError(.system, "cannot create cgroup \(pauseGroup.directory)", cause: error)
        }
        cgroup = podGroup
        cgroupCreated = true
        // The pod's limits, and the controllers handed down to its containers' groups (from
        // kubelet's pod group too, as runc does when it makes a group in it).
        Sandbox.delegate(mount.group(paths.cgroupParent ?? "/husk"))
        // The engine's one cgroup writer; `husk run` checked the controllers beforehand.
        do {
            if let resources = config.resources {
                _ = try Engine.setResources(resources, on: podGroup, ignoreMissing: true, mayWrite: { [paths] in paths.mayWriteCgroup($0) })
            }
        } catch {
            throw HuskError(.system, "cannot set the limits of cgroup \(podGroup.directory)", cause: error)
        }
        Sandbox.delegate(podGroup)
        var plan = SpawnPlan()
        plan.newNamespaces = .mount
        if ownNetwork { plan.newNamespaces.formUnion([.network, .uts]) }
        if config.ownIPC { plan.newNamespaces.insert(.ipc) }
        if config.sharedPID { plan.newNamespaces.insert(.pid) }
        plan.loopbackUp = ownNetwork
        if ownNetwork { plan.hostname = hostname }
        if let userns = config.userNamespace {
            // The pod's user namespace, made with pause (containerd makes it with the pod's
            // network namespace): every namespace of the pod belongs to it.
            plan.newNamespaces.insert(.user)
            plan.uidMap = Spec.IDMapping.mapText(userns.uids)
            plan.gidMap = Spec.IDMapping.mapText(userns.gids)
        }
        // pause sees nothing: an empty read-only root, uid/gid 65535, no capabilities (§11).
        plan.rootfs = pauseRoot
        plan.rootfsReadonly = true
        plan.uid = 65535
        plan.gid = 65535
        plan.noNewPrivileges = true
        plan.argv = ["/pause"]
        plan.env = []
        do {
            plan.executable = try PauseExecutable.open()
            let null = try FD.open("/dev/null", O_RDWR)
            plan.stdio = [null, null, null]
            plan.cgroup = try pauseGroup.open()
        } catch let e as HuskError {
            throw e
        } catch {
            throw HuskError(.system, "cannot prepare the pause process", cause: error)
        }
        let p: SpawnedProcess
        do {
            p = try Spawner.spawn(plan)
        } catch {
            throw HuskError(.system, "cannot start the pause process: \(error)")
        }
        pause = p.pidfd
        loop.watch(p.pidfd, onExit)
    }

    func network() throws(HuskError) {
        if !ownNetwork {
            podIP = hostIP
            return
        }
        cni = try CNI.load(settings: paths.settings)
        guard let cni, let pause else { return }
        podIP = try cni.add(containerID: paths.uid, netns: "/proc/\(pause.pid)/ns/net", sandbox: config)
    }

    /// /etc/hostname and /etc/resolv.conf, as containerd writes them: the hostname and a
    /// newline; the DNS config, or a copy of the node's resolv.conf without one. The copy of
    /// the node's hosts file is made when a container first needs it (`hostsCopy`).
    func writeEtcFiles() throws(HuskError) {
        do {
            try Files.writeAtomically(paths.etcHostname, Array((hostname + "\n").utf8), mode: 0o644, durable: false)
            let resolv = config.dns.map(Sandbox.resolvConf) ?? ""
            let host = resolv.isEmpty ? ((try? Files.read("/etc/resolv.conf")) ?? []) : Array(resolv.utf8)
            try Files.writeAtomically(paths.resolvConf, host, mode: 0o644, durable: false)
        } catch {
            throw HuskError(.system, "cannot write the pod's /etc files", cause: error)
        }
    }

    /// The sandbox's copy of the node's hosts file (containerd's), for a container whose
    /// config mounts nothing at /etc/hosts: made on first use (kubelet mounts its own, so a
    /// `husk run` pod never needs it). Returns its path.
    func hostsCopy() throws(HuskError) -> String {
        guard !Files.exists(paths.sandboxHosts) else { return paths.sandboxHosts }
        do {
            try Files.writeAtomically(paths.sandboxHosts, (try? Files.read("/etc/hosts")) ?? [], mode: 0o644, durable: false)
        } catch {
            throw HuskError(.system, "cannot write the sandbox's hosts file", cause: error)
        }
        return paths.sandboxHosts
    }

    /// containerd's parseDNSOptions: `search`, one `nameserver` line each, `options`; each
    /// only when it has something. Empty when the config says nothing.
    public static func resolvConf(_ dns: PodSandboxConfig.DNS) -> String {
        var out = ""
        if !dns.searches.isEmpty { out += "search " + dns.searches.joined(separator: " ") + "\n" }
        for s in dns.servers { out += "nameserver \(s)\n" }
        if !dns.options.isEmpty { out += "options " + dns.options.joined(separator: " ") + "\n" }
        return out
    }

    /// The pod's /dev/shm: a 64 MiB tmpfs shared by its containers (as containerd's), unless
    /// the pod uses the host's IPC namespace.
    func prepareShm() throws(HuskError) {
        guard config.ownIPC else { return }
        do {
            try Files.makeDirectories(paths.shm, mode: 0o755)
            try Mount.mount("shm", on: paths.shm, type: "tmpfs", flags: [.noSetID, .noDevices, .noExec], data: "mode=1777,size=65536k")
            shmMounted = true
        } catch {
            throw HuskError(.system, "cannot mount the pod's /dev/shm", cause: error)
        }
    }

    /// Hands the available controllers Husk uses down to `group`'s children (its
    /// cgroup.subtree_control), so that limits can be set on them.
    static func delegate(_ group: Cgroup2Group) {
        let wanted = group.controllers().intersection(["cpu", "memory", "pids", "hugetlb"])
        guard !wanted.isEmpty else { return }
        try? group.write("cgroup.subtree_control", wanted.sorted().map { "+" + $0 }.joined(separator: " "))
    }

    // MARK: - Adoption (a new supervisor after the last one died)

    /// Finds the sandbox a dead supervisor left: the pause process (by pid and start time,
    /// watched for its exit) and what `start` set up (address, mounts, cgroup), so that
    /// containers can join it and `teardown` takes it down. Returns false when pause is gone.
    public func adopt(pausePid: Int32, pauseStart: UInt64, podIP: String?, stateDirectory: String,
                      onPauseExit: @escaping @Sendable (ExitStatus?) -> Void, loop: EventLoop) -> Bool {
        self.podIP = podIP
        if ownNetwork { cni = try? CNI.load(settings: paths.settings) }
        let mounted = Set(((try? MountInfo.read()) ?? []).map(\.mountPoint))
        shmMounted = mounted.contains(paths.shm)
        if let mount = try? Cgroup2Mount.discover() {
            let g = mount.group(paths.cgroup)
            cgroup = g
            cgroupCreated = g.exists
        }
        guard pausePid > 0, let fd = try? PidFD.open(pausePid), ProcessInfo.isAlive(pausePid, startTime: pauseStart) else {
            return false
        }
        pause = fd
        loop.watchAdopted(fd, start: pauseStart, stateDirectory: stateDirectory, onPauseExit)
        return true
    }

    // MARK: - Stop

    /// Kills pause (SIGKILL, as containerd does at StopPodSandbox) and releases the address.
    public func stopPause() {
        // DEL while pause still holds the network namespace: the bridge plugin removes its
        // ipMasq rules only when it finds the pod's address inside it (with no netns it
        // releases the address alone).
        if let cni, ownNetwork {
            let netns = pause.flatMap { $0.hasExited ? nil : "/proc/\($0.pid)/ns/net" } ?? ""
            networkReleased = (try? cni.del(containerID: paths.uid, netns: netns, sandbox: config)) != nil
            self.cni = nil
        } else if !ownNetwork || cni == nil && podIP == nil {
            networkReleased = true
        }
        if let pause {
            try? pause.signal(SIGKILL)
            _ = pause.waitForExit(timeout: 5)
        }
    }

    /// Takes down a sandbox that was being made when its supervisor was lost: whatever runs
    /// in pause's group is killed first, then everything goes.
    public func discardPartial() {
        if let mount = try? Cgroup2Mount.discover() { try? mount.group(paths.cgroup + "/pause").kill() }
        teardown()
    }

    /// Takes everything down: pause, address, mounts, cgroups. Safe to call twice.
    public func teardown() {
        stopPause()
        if shmMounted {
            try? Mount.unmount(paths.shm, detach: true)
            shmMounted = false
        }
        if let g = cgroup, cgroupCreated {
            if let mount = try? Cgroup2Mount.discover() {
                try? mount.group(paths.cgroup + "/pause").remove(timeout: 5)
            }
            try? g.remove(timeout: 10, prune: { $0 == "/husk" })
            cgroupCreated = false
        }
    }
}
