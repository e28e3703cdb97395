import HuskImage
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

/// kubelet's half of creating a container (kuberuntime generateContainerConfig, makeMounts,
/// makeEnvironmentVariables, verifyRunAsNonRoot): a manifest container turned into the
/// runtime service's `ContainerConfig`.
struct ContainerConfigBuilder {
    let pod: Pod
    let container: ContainerSpec
    let sandbox: Sandbox

    static let maskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi",
    ]
    static let readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

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

    /// The config of one instance. `prepareVolumes` false: what a new supervisor works out
    /// again for a container that runs (no subPath is opened, no file created).
    func config(attempt: Int, image: ImageRecord, layers: [String], logPath: String, prepareVolumes: Bool = true)
        throws(ContainerConfigError) -> ContainerConfig
    {
        var c = ContainerConfig(name: container.name, attempt: attempt, image: image, layers: layers, logPath: logPath)
        c.envs = environment()
        let vars = Dictionary(c.envs.map { ($0.name, $0.value) }, uniquingKeysWith: { _, b in b })
        c.command = container.command?.map { Self.expand($0, vars) }
        c.args = container.args?.map { Self.expand($0, vars) }
        c.workingDir = container.workingDir
        c.stdin = container.stdin
        c.stdinOnce = container.stdinOnce
        c.tty = container.tty
        if let s = container.lifecycle?.stopSignal { c.stopSignal = Signals.parse(s) }
        c.resources = CgroupResources.spec(CgroupResources.container(container, path: "", memoryQoS: sandbox.paths.settings.memoryQoS))
        let sc = container.securityContext
        let psc = pod.spec.securityContext
        var sec = ContainerConfig.Security()
        sec.privileged = sc?.privileged == true
        sec.capabilitiesAdd = sc?.capabilitiesAdd ?? []
        sec.capabilitiesDrop = sc?.capabilitiesDrop ?? []
        sec.runAsUser = sc?.runAsUser ?? psc.runAsUser
        sec.runAsGroup = sc?.runAsGroup ?? psc.runAsGroup
        sec.supplementalGroups = psc.supplementalGroups
        sec.readonlyRootfs = sc?.readOnlyRootFilesystem ?? false
        sec.noNewPrivileges = !sec.privileged && sc?.allowPrivilegeEscalation == false
        let unmasked = sec.privileged || sc?.procMount == "Unmasked"
        sec.maskedPaths = unmasked ? [] : Self.maskedPaths
        sec.readonlyPaths = unmasked ? [] : Self.readonlyPaths
        sec.ownPIDNamespace = !pod.spec.shareProcessNamespace && !pod.spec.hostPID
        sec.seccomp = try seccomp()
        sec.apparmor = try appArmor()
        c.security = sec
        try verifyRunAsNonRoot(c)

        let dir = sandbox.paths.instance(container.name, attempt: attempt)
        let userTargets = Set(container.volumeMounts.map { Files.clean($0.mountPath) })
        if !userTargets.contains("/etc/hosts") {
            c.mounts.append(.init(containerPath: "/etc/hosts", hostPath: sandbox.paths.etcHosts))
        }
        if !container.terminationMessagePath.isEmpty && !userTargets.contains(Files.clean(container.terminationMessagePath)) {
            let path = dir + "/termination-log"
            if prepareVolumes {
                do {
                    try Files.makeDirectories(dir, mode: 0o755)
                } catch {
                    throw ContainerConfigError(reason: .createContainerError, message: "cannot create \(dir): \(error)")
                }
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
                if fd >= 0 { fchmod(fd, 0o666); close(fd) }
            }
            c.terminationLog = path
            c.mounts.append(.init(containerPath: container.terminationMessagePath, hostPath: path))
        }
        c.mounts += try volumeMounts(open: prepareVolumes)
        if let userns = sandbox.config.userNamespace {
            // kubelet's applyPlatformSpecificContainerConfig: every mount gets the pod's maps.
            for i in c.mounts.indices {
                c.mounts[i].uidMappings = userns.uids
                c.mounts[i].gidMappings = userns.gids
            }
        }
        c.labels = [
            "io.kubernetes.container.name": container.name, "io.kubernetes.pod.name": pod.metadata.name,
            "io.kubernetes.pod.namespace": pod.metadata.namespace, "io.kubernetes.pod.uid": pod.metadata.uid,
        ]
        return c
    }

    /// kubelet's verifyRunAsNonRoot: an explicit runAsUser 0 and an image user 0 are told apart.
    func verifyRunAsNonRoot(_ c: ContainerConfig) throws(ContainerConfigError) {
        guard (container.securityContext?.runAsNonRoot ?? pod.spec.securityContext.runAsNonRoot) == true else { return }
        let podRef = "\(pod.metadata.name)_\(pod.metadata.namespace)(\(pod.metadata.uid))"
        if let u = c.security.runAsUser {
            if u == 0 {
                throw ContainerConfigError(
                    reason: .createContainerConfigError,
                    message: "container's runAsUser breaks non-root policy (pod: \"\(podRef)\", container: \(container.name))")
            }
            return
        }
        let defaults: ProcessDefaults
        do {
            defaults = try ProcessDefaults.resolve(
                image: c.image.config.config, command: c.command, args: c.args, env: c.envs, workingDir: c.workingDir,
                runAsUser: nil, runAsGroup: c.security.runAsGroup, fs: ImageFS(layers: c.layers))
        } catch {
            throw ContainerConfigError(reason: .createContainerConfigError, message: error.message)
        }
        if defaults.uid == 0 {
            throw ContainerConfigError(
                reason: .createContainerConfigError,
                message: "container has runAsNonRoot and image will run as root (pod: \"\(podRef)\", container: \(container.name))")
        }
    }

    /// The AppArmor profile: the container's field, else the pod's, else the deprecated
    /// annotation `container.apparmor.security.beta.kubernetes.io/<name>` (runtime/default,
    /// localhost/<profile>, unconfined), as kubelet reads them. A profile other than
    /// Unconfined on a node without AppArmor is refused, with kubelet's admission message.
    func appArmor() throws(ContainerConfigError) -> ContainerConfig.AppArmor {
        var profile: ContainerConfig.AppArmor = .unset
        if let p = container.securityContext?.appArmorProfile ?? pod.spec.securityContext.appArmorProfile {
            switch p.type {
            case .runtimeDefault: profile = .runtimeDefault
            case .unconfined: profile = .unconfined
            case .localhost: profile = .localhost(name: p.localhostProfile ?? "")
            }
        } else if let a = pod.metadata.annotations["container.apparmor.security.beta.kubernetes.io/\(container.name)"] {
            switch a {
            case "runtime/default": profile = .runtimeDefault
            case "unconfined": profile = .unconfined
            case let x where x.hasPrefix("localhost/") && x.count > "localhost/".count: profile = .localhost(name: String(x.dropFirst("localhost/".count)))
            default:
                throw ContainerConfigError(
                    reason: .createContainerConfigError,
                    message: "invalid AppArmor profile \"\(a)\" in annotation container.apparmor.security.beta.kubernetes.io/\(container.name): runtime/default, localhost/<profile> or unconfined")
            }
        }
        if profile != .unset && profile != .unconfined && !AppArmor.isEnabled {
            throw ContainerConfigError(reason: .createContainerConfigError, message: "Cannot enforce AppArmor: AppArmor is not enabled on the host")
        }
        return profile
    }

    /// The seccomp profile: privileged has none; the container's, else the pod's; Localhost
    /// is a file under the seccomp root, which the runtime reads.
    func seccomp() throws(ContainerConfigError) -> ContainerConfig.Seccomp {
        guard container.securityContext?.privileged != true else { return .unconfined }
        guard let profile = container.securityContext?.seccompProfile ?? pod.spec.securityContext.seccompProfile else { return .unconfined }
        switch profile.type {
        case .unconfined: return .unconfined
        case .runtimeDefault: return .runtimeDefault
        case .localhost:
            let root = sandbox.paths.settings.seccompDir
            let path = Files.absolute(profile.localhostProfile ?? "", relativeTo: root)
            guard path.hasPrefix(root + "/") else {
                throw ContainerConfigError(reason: .createContainerError, message: "cannot load seccomp profile \"\(path)\": outside \(root)")
            }
            return .localhost(path: path)
        }
    }

    /// The volume mounts of the container (kubelet's makeMounts), with subPaths resolved
    /// inside their volume (never by string: a symlink in the volume cannot lead the bind out
    /// of it, CVE-2017-1002101).
    func volumeMounts(open: Bool) throws(ContainerConfigError) -> [ContainerConfig.Mount] {
        var out: [ContainerConfig.Mount] = []
        for m in container.volumeMounts {
            guard let v = pod.spec.volumes.first(where: { $0.name == m.name }) else { continue }
            let base: String
            var untypedHostPath = false
            switch v.source {
            case .emptyDir: base = sandbox.paths.emptyDir(v.name)
            case .hostPath(let path, let type):
                base = path
                untypedHostPath = type.isEmpty
            }
            let propagation: ContainerConfig.Mount.Propagation
            switch m.mountPropagation ?? "None" {
            case "HostToContainer": propagation = .hostToContainer
            case "Bidirectional": propagation = .bidirectional
            default: propagation = .private
            }
            var mount = ContainerConfig.Mount(
                containerPath: Files.clean(m.mountPath), hostPath: base, readonly: m.readOnly, propagation: propagation)
            // No type: kubelet checks nothing, and containerd creates a missing host path as a
            // directory (0755) when it makes the container (WithMounts).
            mount.createIfMissing = untypedHostPath
            if let sub = m.subPath, !sub.isEmpty {
                mount.hostPath = base + "/" + sub
                if open {
                    if untypedHostPath {
                        var st = stat()
                        if lstat(base, &st) != 0 && currentErrno == .noSuchFileOrDirectory {
                            do {
                                try Files.makeDirectories(base, mode: 0o755)
                            } catch {
                                throw ContainerConfigError(reason: .createContainerError, message: "failed to mkdir \"\(base)\": \(error)")
                            }
                        }
                    }
                    do {
                        mount.opened = try Self.openSubPath(sub, in: base)
                    } catch {
                        throw ContainerConfigError(
                            reason: .createContainerConfigError, message: "failed to prepare subPath \"\(sub)\" of volume \"\(m.name)\": \(error)")
                    }
                }
            }
            out.append(mount)
        }
        return out
    }

    /// Resolves `sub` inside the volume at `base` (creating missing directories inside it, as
    /// kubelet does) and returns a detached copy of what it names, for the child to attach: it
    /// cannot bind a mount of this mount namespace from its own new one.
    static func openSubPath(_ sub: String, in base: String) throws(SystemCallError) -> FD {
        let root = try FD.open(base, O_PATH | O_DIRECTORY)
        let clean = Files.clean("/" + sub).dropFirst()
        var fd: FD
        do {
            fd = try root.openat2(String(clean), O_PATH, resolve: [.inRoot, .noMagicLinks])
        } catch {
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
        do { return try Mount.cloneTree(at: fd) } catch { throw SystemCallError("open_tree", base + "/" + sub, error.errno) }
    }
}
