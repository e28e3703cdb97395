import FoundationEssentials
import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A container that cannot be created from its configuration (kubelet's
/// CreateContainerConfigError), or whose creation failed (CreateContainerError).
public struct ContainerConfigError: Error, CustomStringConvertible, Sendable {
    public var reason: WaitingReason
    public var message: String
    public var description: String { "\(reason.rawValue): \(message)" }
}

/// What one container instance runs and how: a spawn plan built from the pod, the container
/// and its image, as containerd's CRI plugin builds an OCI spec (defaults, mounts,
/// capabilities, seccomp), joined to the sandbox's namespaces.
public struct ContainerBuilder {
    let pod: Pod
    let container: ContainerSpec
    let sandbox: Sandbox
    let image: ImageRecord
    let layers: [String]

    /// containerd's default capabilities (pkg/cri/config, oci.WithDefaultCapabilities).
    public static let defaultCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    static let maskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi",
    ]
    static let readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

    /// The resolved process: what runs, as whom.
    public struct Process: Sendable {
        public var defaults: ProcessDefaults
        public var stopSignal: Int32
    }

    /// Kubernetes' `$(VAR)` expansion (third_party/forked/golang/expansion): `$(NAME)` becomes
    /// the value when NAME is defined, `$$` a single `$`, anything else stays as written.
    static func expand(_ s: String, _ vars: [String: String]) -> String {
        guard s.contains("$") else { return s }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            let next = s.index(after: i)
            guard c == "$", next < s.endIndex else {
                out.append(c)
                i = next
                continue
            }
            if s[next] == "$" {
                out.append("$")
                i = s.index(after: next)
            } else if s[next] == "(", let close = s[next...].firstIndex(of: ")") {
                let name = String(s[s.index(after: next)..<close])
                if let v = vars[name] { out += v } else { out += String(s[i...close]) }
                i = s.index(after: close)
            } else {
                out.append(c)
                i = next
            }
        }
        return out
    }

    /// The environment of the container: fieldRefs resolved, `$(VAR)` expanded in order.
    func environment() -> [EnvVar] {
        var vars: [String: String] = [:]
        var out: [EnvVar] = []
        for e in container.env {
            var value = ""
            if let f = e.fieldRef {
                switch f {
                case "metadata.name": value = pod.metadata.name
                case "metadata.namespace": value = pod.metadata.namespace
                case "metadata.uid": value = pod.metadata.uid
                case "status.podIP", "status.podIPs": value = sandbox.podIP ?? ""
                case "status.hostIP", "status.hostIPs": value = sandbox.hostIP ?? ""
                case "spec.nodeName":
                    var u = utsname()
                    uname(&u)
                    value = withUnsafeBytes(of: u.nodename) { String.fromCBytes($0) }
                default: value = ""
                }
            } else {
                value = Self.expand(e.value ?? "", vars)
            }
            vars[e.name] = value
            out.append(EnvVar(e.name, value))
        }
        return out
    }

    public func process() throws(ContainerConfigError) -> Process {
        let env = environment()
        let vars = Dictionary(env.map { ($0.name, $0.value) }, uniquingKeysWith: { _, b in b })
        let sc = container.securityContext
        let psc = pod.spec.securityContext
        let defaults: ProcessDefaults
        do {
            defaults = try ProcessDefaults.resolve(
                image: image.config.config, command: container.command?.map { Self.expand($0, vars) },
                args: container.args?.map { Self.expand($0, vars) }, env: env, workingDir: container.workingDir,
                runAsUser: sc?.runAsUser ?? psc.runAsUser, runAsGroup: sc?.runAsGroup ?? psc.runAsGroup,
                fs: ImageFS(layers: layers))
        } catch {
            throw ContainerConfigError(reason: .createContainerConfigError, message: error.message)
        }
        // kubelet's verifyRunAsNonRoot: an explicit runAsUser 0 and an image user 0 are told apart.
        if (sc?.runAsNonRoot ?? psc.runAsNonRoot) == true {
            let podRef = "\(pod.metadata.name)_\(pod.metadata.namespace)(\(pod.metadata.uid))"
            if let u = sc?.runAsUser ?? psc.runAsUser {
                if u == 0 {
                    throw ContainerConfigError(
                        reason: .createContainerConfigError,
                        message: "container's runAsUser breaks non-root policy (pod: \"\(podRef)\", container: \(container.name))")
                }
            } else if defaults.uid == 0 {
                throw ContainerConfigError(
                    reason: .createContainerConfigError,
                    message: "container has runAsNonRoot and image will run as root (pod: \"\(podRef)\", container: \(container.name))")
            }
        }
        // lifecycle.stopSignal > the image's STOPSIGNAL > SIGTERM (pod-semantics §6).
        var stop = SIGTERM
        if let s = container.lifecycle?.stopSignal, let n = Signals.parse(s) {
            stop = n
        } else if let n = defaults.stopSignal {
            stop = n
        }
        var d = defaults
        // containerd's WithAdditionalGIDs puts the primary gid first among the supplementary
        // groups (ensureAdditionalGids, CVE-2023-25173), then WithSupplementalGroups appends the pod's.
        if !d.additionalGids.contains(d.gid) { d.additionalGids.insert(d.gid, at: 0) }
        for g in pod.spec.securityContext.supplementalGroups.map({ UInt32(clamping: $0) }) where !d.additionalGids.contains(g) {
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
        let sc = container.securityContext
        if sc?.privileged == true { return all() }
        func norm(_ c: String) -> String { c.uppercased().hasPrefix("CAP_") ? c.uppercased() : "CAP_" + c.uppercased() }
        var caps = Self.defaultCapabilities
        let add = (sc?.capabilitiesAdd ?? []).map(norm)
        let drop = (sc?.capabilitiesDrop ?? []).map(norm)
        if add.contains("CAP_ALL") { caps = all() }
        if drop.contains("CAP_ALL") { caps = [] }
        for a in add where a != "CAP_ALL" && !caps.contains(a) && Capabilities.number(a) != nil { caps.append(a) }
        caps.removeAll { drop.contains($0) }
        return caps
    }

    /// The spawn plan of one instance (everything but the fds the runtime adds).
    public func spec(process p: Process, instance dir: String, terminationLog: String?) throws(ContainerConfigError) -> Spec {
        let sc = container.securityContext
        let privileged = sc?.privileged == true
        var s = Spec.runtimeDefault(rootfs: dir + "/rootfs", args: p.defaults.argv)
        s.hostname = nil
        var proc = Spec.Process(
            user: Spec.User(uid: p.defaults.uid, gid: p.defaults.gid, additionalGids: p.defaults.additionalGids),
            args: p.defaults.argv, env: p.defaults.env, cwd: p.defaults.workingDir)
        let caps = capabilities()
        proc.capabilities = Spec.CapabilitySet(bounding: caps, effective: caps, permitted: caps)
        proc.noNewPrivileges = !privileged && sc?.allowPrivilegeEscalation == false
        proc.oomScoreAdj = 1000  // BestEffort (no resources): kubelet's oom_score_adj
        s.process = proc
        s.root = Spec.Root(path: dir + "/rootfs", readonly: sc?.readOnlyRootFilesystem ?? false)

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
        let userTargets = Set(container.volumeMounts.map { Files.clean($0.mountPath) })
        mounts.append(Spec.Mount(destination: "/etc/hostname", type: "bind", source: sandbox.paths.etcHostname, options: ["rbind", "rprivate", "rw"]))
        if sandbox.mountsHostsFile && !userTargets.contains("/etc/hosts") {
            mounts.append(Spec.Mount(destination: "/etc/hosts", type: "bind", source: sandbox.paths.etcHosts, options: ["rbind", "rprivate", "rw"]))
        }
        mounts.append(Spec.Mount(destination: "/etc/resolv.conf", type: "bind", source: sandbox.paths.resolvConf, options: ["rbind", "rprivate", "rw"]))
        let shmSource = pod.spec.hostIPC ? "/dev/shm" : sandbox.paths.shm
        mounts.append(Spec.Mount(destination: "/dev/shm", type: "bind", source: shmSource, options: ["rbind", "rprivate", "rw"]))
        if let terminationLog, !container.terminationMessagePath.isEmpty {
            mounts.append(Spec.Mount(destination: container.terminationMessagePath, type: "bind", source: terminationLog, options: ["rbind", "rprivate", "rw"]))
        }
        mounts.removeAll { userTargets.contains(Files.clean($0.destination)) }
        // Parents before children (containerd's sortMounts).
        s.mounts = mounts.enumerated().sorted {
            let a = $0.element.destination.split(separator: "/").count, b = $1.element.destination.split(separator: "/").count
            return a == b ? $0.offset < $1.offset : a < b
        }.map(\.element)

        var linux = Spec.Linux()
        var ns = [Spec.Namespace(type: "mount"), Spec.Namespace(type: "cgroup")]
        if !pod.spec.shareProcessNamespace && !pod.spec.hostPID { ns.append(Spec.Namespace(type: "pid")) }
        linux.namespaces = ns
        let unmasked = privileged || sc?.procMount == "Unmasked"
        linux.maskedPaths = unmasked ? [] : Self.maskedPaths
        linux.readonlyPaths = unmasked ? [] : Self.readonlyPaths
        var resources = Spec.Resources()
        resources.devices = privileged ? [Spec.DeviceRule(allow: true, access: "rwm")] : [Spec.DeviceRule(allow: false, access: "rwm")]
        linux.resources = resources
        if !pod.spec.securityContext.sysctls.isEmpty {
            linux.sysctl = Dictionary(pod.spec.securityContext.sysctls.map { ($0.name, $0.value) }, uniquingKeysWith: { _, b in b })
        }
        linux.seccomp = try seccomp(capabilities: Set(caps))
        s.linux = linux
        return s
    }

    func seccomp(capabilities: Set<String>) throws(ContainerConfigError) -> Spec.Seccomp? {
        guard container.securityContext?.privileged != true else { return nil }
        guard let profile = container.securityContext?.seccompProfile ?? pod.spec.securityContext.seccompProfile else { return nil }
        switch profile.type {
        case .unconfined: return nil
        case .runtimeDefault: return SeccompDefault.profile(capabilities: capabilities)
        case .localhost:
            // kubelet hands the runtime <seccomp root>/<localhostProfile>; containerd's
            // seccomp.WithProfile reads it, and a failure fails CRI CreateContainer.
            let name = profile.localhostProfile ?? ""
            let path = Files.absolute(name, relativeTo: sandbox.paths.settings.seccompDir)
            guard path.hasPrefix(sandbox.paths.settings.seccompDir + "/") else {
                throw ContainerConfigError(reason: .createContainerError, message: "cannot load seccomp profile \"\(path)\": outside \(sandbox.paths.settings.seccompDir)")
            }
            let read: [UInt8]?
            do {
                read = try Files.read(path)
            } catch {
                throw ContainerConfigError(reason: .createContainerError, message: "cannot load seccomp profile \"\(path)\": \(error)")
            }
            guard let bytes = read else {
                throw ContainerConfigError(
                    reason: .createContainerError, message: "cannot load seccomp profile \"\(path)\": open \(path): no such file or directory")
            }
            do {
                return try JSONDecoder().decode(Spec.Seccomp.self, from: Data(bytes))
            } catch {
                throw ContainerConfigError(reason: .createContainerError, message: "decoding seccomp profile failed \"\(path)\": \(JSONPath.describe(error))")
            }
        }
    }

    /// The volume mounts of the container, with subPaths resolved inside their volume (never
    /// by string: a symlink in the volume cannot lead the bind out of it, CVE-2017-1002101).
    func volumeMounts() throws(ContainerConfigError) -> [SpawnPlan.MountEntry] {
        var out: [SpawnPlan.MountEntry] = []
        for m in container.volumeMounts {
            guard let v = pod.spec.volumes.first(where: { $0.name == m.name }) else { continue }
            let base: String
            switch v.source {
            case .emptyDir: base = sandbox.paths.emptyDir(v.name)
            case .hostPath(let path, let type):
                base = path
                // No type: kubelet checks nothing, and containerd creates a missing host path
                // as a directory (0755) when it makes the container (WithMounts).
                var st = stat()
                if type.isEmpty && lstat(path, &st) != 0 && currentErrno == .noSuchFileOrDirectory {
                    do {
                        try Files.makeDirectories(path, mode: 0o755)
                    } catch {
                        throw ContainerConfigError(reason: .createContainerError, message: "failed to mkdir \"\(path)\": \(error)")
                    }
                }
            }
            var entry = SpawnPlan.MountEntry(source: base, target: Files.clean(m.mountPath), fstype: nil)
            entry.options = .bind
            entry.flags = .recursive
            if m.readOnly {
                entry.flags.insert(.readOnly)
                entry.options.formUnion([.remount, .recursiveReadOnly])
            }
            switch m.mountPropagation ?? "None" {
            case "HostToContainer": entry.propagation = [.slave, .recursive]
            case "Bidirectional": entry.propagation = [.shared, .recursive]
            default: entry.propagation = [.private, .recursive]
            }
            if let sub = m.subPath, !sub.isEmpty {
                do {
                    let root = try FD.open(base, O_PATH | O_DIRECTORY)
                    let clean = Files.clean("/" + sub).dropFirst()
                    var fd: FD
                    do {
                        fd = try root.openat2(String(clean), O_PATH, resolve: [.inRoot, .noMagicLinks])
                    } catch {
                        // kubelet creates a missing subPath as a directory, inside the volume.
                        guard error.errno == .noSuchFileOrDirectory else { throw error }
                        var prefix = ""
                        for comp in clean.split(separator: "/") {
                            let parent = prefix.isEmpty ? root : try root.openat2(prefix, O_PATH | O_DIRECTORY, resolve: [.inRoot, .noMagicLinks])
                            prefix += (prefix.isEmpty ? "" : "/") + comp
                            if mkdirat(parent.raw, String(comp), 0o755) != 0 && currentErrno != .fileExists {
                                throw SystemCallError("mkdirat", prefix, currentErrno)
                            }
                        }
                        fd = try root.openat2(String(clean), O_PATH, resolve: [.inRoot, .noMagicLinks])
                    }
                    // A detached copy of what was resolved, for the child to attach: it cannot
                    // bind a mount of this mount namespace from its own new one.
                    do { entry.sourceFD = try Mount.cloneTree(at: fd) } catch { throw SystemCallError("open_tree", base + "/" + sub, error.errno) }
                    entry.source = base + "/" + sub
                } catch {
                    throw ContainerConfigError(reason: .createContainerConfigError, message: "failed to prepare subPath \"\(sub)\" of volume \"\(m.name)\": \(error)")
                }
            }
            out.append(entry)
        }
        return out
    }
}
