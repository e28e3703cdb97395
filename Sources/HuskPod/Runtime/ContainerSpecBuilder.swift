import FoundationEssentials
import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The runtime's half of creating a container: a `ContainerConfig` and its image turned into
/// an OCI spec as containerd's CRI plugin builds one (image config merged, default mounts,
/// capabilities, seccomp), for the sandbox the container joins.
public struct ContainerSpecBuilder {
    let config: ContainerConfig
    let sandbox: Sandbox

    /// containerd's default capabilities (pkg/cri/config, oci.WithDefaultCapabilities).
    public static let defaultCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    /// The resolved process: what runs, as whom.
    public struct Process: Sendable {
        public var defaults: ProcessDefaults
        public var stopSignal: Int32
    }

    /// containerd's merge of the image config with the container's (entrypoint and cmd,
    /// env, working dir, user and its groups, stop signal).
    public func process() throws(StartFailure) -> Process {
        let defaults: ProcessDefaults
        do {
            defaults = try ProcessDefaults.resolve(
                image: config.image.config.config, command: config.command, args: config.args, env: config.envs,
                workingDir: config.workingDir, runAsUser: config.security.runAsUser, runAsGroup: config.security.runAsGroup,
                runAsUsername: config.security.runAsUsername, fs: ImageFS(layers: config.layers))
        } catch {
            throw StartFailure(.config, error.message)
        }
        // The container's stop signal > the image's STOPSIGNAL > SIGTERM (pod-semantics §6).
        let stop = config.stopSignal ?? defaults.stopSignal ?? SIGTERM
        var d = defaults
        // containerd's WithAdditionalGIDs puts the primary gid first among the supplementary
        // groups (ensureAdditionalGids, CVE-2023-25173), then WithSupplementalGroups appends the pod's.
        if !d.additionalGids.contains(d.gid) { d.additionalGids.insert(d.gid, at: 0) }
        for g in config.security.supplementalGroups.map({ UInt32(clamping: $0) }) where !d.additionalGids.contains(g) {
            d.additionalGids.append(g)
        }
        if !d.env.contains(where: { $0.hasPrefix("PATH=") }) {
            d.env.insert("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", at: 0)
        }
        if !d.env.contains(where: { $0.hasPrefix("HOSTNAME=") }) { d.env.append("HOSTNAME=\(sandbox.hostname)") }
        return Process(defaults: d, stopSignal: stop)
    }

    /// The capabilities of the container as containerd computes them: "all" is what this
    /// process holds (oci.WithAllCurrentCapabilities, criService.allCaps), not every
    /// capability of the kernel, which a process with a reduced bounding set could not grant;
    /// privileged gets all; otherwise the defaults, then add ALL, drop ALL, the single adds,
    /// the single drops, in that order (customopts.WithCapabilities).
    func capabilities() -> [String] {
        // "All" is what this process holds (containerd's WithAllCurrentCapabilities).
        func all() -> [String] {
            let current = Capabilities.current().effective
            return Capabilities.names.prefix(Capabilities.lastCap + 1).enumerated()
                .filter { current & (UInt64(1) << UInt64($0.offset)) != 0 }.map(\.element)
        }
        let sec = config.security
        if sec.privileged { return all() }
        func norm(_ c: String) -> String { c.uppercased().hasPrefix("CAP_") ? c.uppercased() : "CAP_" + c.uppercased() }
        var caps = Self.defaultCapabilities
        let add = sec.capabilitiesAdd.map(norm)
        let drop = sec.capabilitiesDrop.map(norm)
        if add.contains("CAP_ALL") { caps = all() }
        if drop.contains("CAP_ALL") { caps = [] }
        for a in add where a != "CAP_ALL" && !caps.contains(a) && Capabilities.number(a) != nil { caps.append(a) }
        caps.removeAll { drop.contains($0) }
        return caps
    }

    /// The OCI spec of one instance (its mounts from `config.mounts` come separately, as
    /// `mountEntries`).
    public func spec(process p: Process, instance dir: String) throws(StartFailure) -> Spec {
        let sec = config.security
        let privileged = sec.privileged
        var s = Spec.runtimeDefault(rootfs: dir + "/rootfs", args: p.defaults.argv)
        s.hostname = nil
        var proc = Spec.Process(
            user: Spec.User(uid: p.defaults.uid, gid: p.defaults.gid, additionalGids: p.defaults.additionalGids),
            args: p.defaults.argv, env: p.defaults.env, cwd: p.defaults.workingDir)
        let caps = capabilities()
        proc.capabilities = Spec.CapabilitySet(bounding: caps, effective: caps, permitted: caps)
        proc.noNewPrivileges = sec.noNewPrivileges
        proc.oomScoreAdj = 1000  // BestEffort (no resources): kubelet's oom_score_adj
        proc.terminal = config.tty
        proc.apparmorProfile = try apparmorProfile()
        s.process = proc
        s.root = Spec.Root(path: dir + "/rootfs", readonly: sec.readonlyRootfs)

        // Mounts, as containerd's CRI plugin makes them; a container mount at the same place
        // replaces a default one.
        var mounts: [Spec.Mount] = [
            Spec.Mount(destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"]),
            privileged
                ? Spec.Mount(destination: "/dev", type: "bind", source: "/dev", options: ["rbind", "nosuid"])
                : Spec.Mount(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            Spec.Mount(destination: "/dev/pts", type: "devpts", source: "devpts",
                       options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
            Spec.Mount(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
            Spec.Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", privileged ? "rw" : "ro"]),
            Spec.Mount(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
                       options: ["nosuid", "noexec", "nodev", "relatime", privileged ? "rw" : "ro"]),
        ]
        // The sandbox's files (containerd's WithHostname/resolv.conf/shm mounts); the
        // container's own mounts replace a default one at the same place.
        let userTargets = Set(config.mounts.map { Files.clean($0.containerPath) })
        mounts.append(Spec.Mount(destination: "/etc/hostname", type: "bind", source: sandbox.paths.etcHostname, options: ["rbind", "rprivate", "rw"]))
        if !userTargets.contains("/etc/hosts") {
            let hosts: String
            do {
                hosts = try sandbox.hostsCopy()
            } catch {
                throw StartFailure(.create, "\(error)")
            }
            mounts.append(Spec.Mount(destination: "/etc/hosts", type: "bind", source: hosts, options: ["rbind", "rprivate", "rw"]))
        }
        mounts.append(Spec.Mount(destination: "/etc/resolv.conf", type: "bind", source: sandbox.paths.resolvConf, options: ["rbind", "rprivate", "rw"]))
        let shmSource = sandbox.config.ownIPC ? sandbox.paths.shm : "/dev/shm"
        mounts.append(Spec.Mount(destination: "/dev/shm", type: "bind", source: shmSource, options: ["rbind", "rprivate", "rw"]))
        mounts.removeAll { userTargets.contains(Files.clean($0.destination)) }
        if let userns = sandbox.config.userNamespace {
            // containerd gives its sandbox files the pod's maps too (not /dev/shm).
            for i in mounts.indices where ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"].contains(mounts[i].destination) {
                mounts[i].uidMappings = userns.uids
                mounts[i].gidMappings = userns.gids
                mounts[i].options = (mounts[i].options ?? []) + ["idmap"]
            }
        }
        // Parents before children (containerd's sortMounts).
        s.mounts = mounts.enumerated().sorted {
            let a = $0.element.destination.split(separator: "/").count, b = $1.element.destination.split(separator: "/").count
            return a == b ? $0.offset < $1.offset : a < b
        }.map(\.element)

        var linux = Spec.Linux()
        var ns = [Spec.Namespace(type: "mount"), Spec.Namespace(type: "cgroup")]
        if sec.ownPIDNamespace { ns.append(Spec.Namespace(type: "pid")) }
        linux.namespaces = ns
        // A bidirectional volume needs the root's mounts shared while it is bound (containerd
        // sets rootfsPropagation rshared for one); otherwise the root stays rslave.
        if config.mounts.contains(where: { $0.propagation == .bidirectional }) { linux.rootfsPropagation = "rshared" }
        linux.maskedPaths = sec.maskedPaths
        linux.readonlyPaths = sec.readonlyPaths
        var resources = config.resources ?? Spec.Resources()
        resources.devices = privileged ? [Spec.DeviceRule(allow: true, access: "rwm")] : [Spec.DeviceRule(allow: false, access: "rwm")]
        // CRI devices (containerd's WithDevices): each node made in the container, and allowed.
        var nodes: [Spec.Device] = []
        for d in config.devices {
            for node in try Self.devices(d) {
                nodes.append(node)
                resources.devices?.append(Spec.DeviceRule(allow: true, type: node.type, major: node.major, minor: node.minor, access: d.permissions))
            }
        }
        if !nodes.isEmpty { linux.devices = nodes }
        linux.resources = resources
        if !sandbox.config.sysctls.isEmpty { linux.sysctl = sandbox.config.sysctls }
        linux.seccomp = try seccomp(capabilities: Set(caps))
        s.linux = linux
        return s
    }

    /// The AppArmor profile of the process (containerd's generateApparmorSpecOpts): none where
    /// AppArmor is off (asking for one there is refused) or for Unconfined; the runtime's
    /// default (loaded on first use) when unset or RuntimeDefault, except for a privileged
    /// container left unset; a Localhost profile must be loaded.
    func apparmorProfile() throws(StartFailure) -> String? {
        let asked = config.security.apparmor
        guard AppArmor.isEnabled else {
            if asked == .unset || asked == .unconfined { return nil }
            throw StartFailure(.create, "apparmor is not supported")
        }
        switch asked {
        case .unconfined: return nil
        case .unset where config.security.privileged: return nil
        case .unset, .runtimeDefault:
            do {
                try AppArmorDefault.ensureLoaded()
            } catch {
                throw StartFailure(.create, "cannot load the default AppArmor profile \(AppArmorDefault.name): \(error.message)")
            }
            return AppArmorDefault.name
        case .localhost(let name):
            guard AppArmor.loadedProfiles()?.contains(name) == true else {
                throw StartFailure(.create, "apparmor profile not found \(name)")
            }
            return name
        }
    }

    /// The profile `config.security.seccomp` names (containerd's WithSeccompProfile): a
    /// Localhost file that cannot be read fails CreateContainer.
    func seccomp(capabilities: Set<String>) throws(StartFailure) -> Spec.Seccomp? {
        // A privileged container runs without a filter, whatever it names (containerd).
        if config.security.privileged { return nil }
        switch config.security.seccomp {
        case .unconfined: return nil
        case .runtimeDefault: return SeccompDefault.profile(capabilities: capabilities)
        case .localhost(let path):
            let read: [UInt8]?
            do {
                read = try Files.read(path)
            } catch {
                throw StartFailure(.create, "cannot load seccomp profile \"\(path)\": \(error)")
            }
            guard let bytes = read else {
                throw StartFailure(.create, "cannot load seccomp profile \"\(path)\": open \(path): no such file or directory")
            }
            do {
                return try JSONDecoder().decode(Spec.Seccomp.self, from: Data(bytes))
            } catch {
                throw StartFailure(.create, "decoding seccomp profile failed \"\(path)\": \(JSONPath.describe(error))")
            }
        }
    }

    /// `config.mounts` as the child mounts them: binds, recursive, read-only remounts and
    /// propagation; a missing host path is made a directory where the mount asks for it
    /// (containerd's WithMounts), a subPath comes already opened.
    func mountEntries() throws(StartFailure) -> [SpawnPlan.MountEntry] {
        var out: [SpawnPlan.MountEntry] = []
        for m in config.mounts {
            if m.createIfMissing && m.opened == nil {
                var st = stat()
                if lstat(m.hostPath, &st) != 0 && currentErrno == .noSuchFileOrDirectory {
                    do {
                        try Files.makeDirectories(m.hostPath, mode: 0o755)
                    } catch {
                        throw StartFailure(.create, "failed to mkdir \"\(m.hostPath)\": \(error)")
                    }
                }
            }
            var entry = SpawnPlan.MountEntry(source: m.hostPath, target: Files.clean(m.containerPath), fstype: nil)
            entry.options = .bind
            entry.flags = .recursive
            if m.readonly {
                entry.flags.insert(.readOnly)
                entry.options.formUnion([.remount, .recursiveReadOnly])
            }
            switch m.propagation {
            case .hostToContainer: entry.propagation = [.slave, .recursive]
            case .bidirectional: entry.propagation = [.shared, .recursive]
            case .private: entry.propagation = [.private, .recursive]
            }
            entry.sourceFD = m.opened
            if !m.uidMappings.isEmpty || !m.gidMappings.isEmpty {
                // CRI Mount uid/gid mappings: an idmapped bind (runc's `idmap`: the mount
                // itself, not what is mounted below it).
                guard !m.uidMappings.isEmpty, !m.gidMappings.isEmpty else {
                    throw StartFailure(.create, "mount \(m.containerPath): uid and gid mappings go together")
                }
                let maps = (Spec.IDMapping.mapText(m.uidMappings), Spec.IDMapping.mapText(m.gidMappings))
                if let opened = m.opened {
                    do {
                        try Spawner.idmap(opened, recursive: false, uidMap: maps.0, gidMap: maps.1)
                    } catch {
                        throw StartFailure(.create, "mount \(m.containerPath): cannot make \(m.hostPath) an id-mapped mount: \(error)")
                    }
                } else {
                    entry.idmap = (maps.0, maps.1, false)
                }
            }
            out.append(entry)
        }
        return out
    }
}

extension ContainerSpecBuilder {
    /// glibc's major() and minor() (macros Swift cannot call).
    static func major(_ dev: UInt64) -> UInt64 { ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff)) }
    static func minor(_ dev: UInt64) -> UInt64 { (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff)) }

    /// The device nodes a CRI device stands for (containerd's getDevices): the host path with
    /// its symlinks resolved is a block or character device, or a directory whose device nodes
    /// (recursively, /dev/pts and the like left out) go under the container path.
    static func devices(_ d: ContainerConfig.Device) throws(StartFailure) -> [Spec.Device] {
        guard let resolved = realpath(d.hostPath, nil) else {
            throw StartFailure(.config, "device \(d.hostPath): \(currentErrno.text)")
        }
        let real = String(cString: resolved)
        free(resolved)
        func node(_ path: String, at target: String) -> Spec.Device? {
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            let kind: String
            switch st.st_mode & S_IFMT {
            case S_IFCHR: kind = "c"
            case S_IFBLK: kind = "b"
            default: return nil
            }
            var dev = Spec.Device(type: kind, path: target, major: Int64(Self.major(UInt64(st.st_rdev))),
                                  minor: Int64(Self.minor(UInt64(st.st_rdev))),
                                  fileMode: UInt32(st.st_mode & 0o7777))
            dev.uid = st.st_uid
            dev.gid = st.st_gid
            return dev
        }
        if let one = node(real, at: d.containerPath) { return [one] }
        guard Files.isDirectory(real) else {
            throw StartFailure(.config, "device \(d.hostPath) is not a device node or a directory of them")
        }
        var out: [Spec.Device] = []
        func walk(_ dir: String, _ target: String) {
            for name in (Files.list(dir) ?? []).sorted() {
                let path = dir + "/" + name
                // As containerd: not the pty instance, not hidden or shm directories.
                if ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"].contains(name) && Files.isDirectory(path) { continue }
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }
                if st.st_mode & S_IFMT == S_IFDIR {
                    walk(path, target + "/" + name)
                } else if let n = node(path, at: target + "/" + name) {
                    out.append(n)
                }
            }
        }
        walk(real, d.containerPath)
        return out
    }
}
