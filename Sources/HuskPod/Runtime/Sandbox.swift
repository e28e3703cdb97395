import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// A pod's sandbox: the pause process holding the pod's namespaces, its address, the
/// /etc files every container gets, the pod's /dev/shm and its volumes (pod-semantics §10,
/// §11; CRI RunPodSandbox). No policy here: the controller decides when.
public final class Sandbox: @unchecked Sendable {  // built once by one thread, then read-only
    public let pod: Pod
    public let paths: PodPaths
    public private(set) var pause: PidFD? = nil
    public private(set) var podIP: String? = nil
    public let hostIP: String?
    public let hostname: String
    var cni: CNI? = nil
    var shmMounted = false
    var memoryVolumes: [String] = []
    var cgroup: Cgroup2Group? = nil
    var cgroupCreated = false

    public init(pod: Pod, paths: PodPaths) {
        self.pod = pod
        self.paths = paths
        hostIP = Sandbox.nodeIP()
        hostname = Sandbox.hostname(for: pod)
    }

    var spec: PodSpec { pod.spec }
    /// Whether the pod has its own network (and UTS) namespace.
    var ownNetwork: Bool { !spec.hostNetwork }

    /// kubelet's GeneratePodHostNameAndDomain: spec.hostname, else the pod name cut to 63
    /// characters with trailing '-' and '.' removed; the FQDN with setHostnameAsFQDN.
    public static func hostname(for pod: Pod) -> String {
        if pod.spec.hostNetwork {
            var u = utsname()
            uname(&u)
            return withUnsafeBytes(of: u.nodename) { String.fromCBytes($0) }
        }
        var h = pod.spec.hostname ?? pod.metadata.name
        if h.count > 63 {
            h = String(h.prefix(63))
            while h.hasSuffix("-") || h.hasSuffix(".") { h.removeLast() }
        }
        if pod.spec.setHostnameAsFQDN, let d = domain(for: pod) { return h + "." + d }
        return h
    }

    /// `<subdomain>.<namespace>.svc.cluster.local` when the pod has a subdomain.
    static func domain(for pod: Pod) -> String? {
        guard let s = pod.spec.subdomain, !s.isEmpty else { return nil }
        return "\(s).\(pod.metadata.namespace).svc.cluster.local"
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
            try prepareVolumes()
        } catch {
            teardown()
            throw error
        }
    }

    func prepareDirectories() throws(HuskError) {
        do {
            try Files.makeDirectories(paths.pauseRoot, mode: 0o755)
            try Files.makeDirectories(paths.data + "/containers", mode: 0o750)
            chmod(paths.data, 0o750)
            // A copy of the record beside the data: `husk gc` knows whose it is when the state
            // is lost.
            let record = PodRecord(pod: pod, settings: paths.settings)
            try Files.writeAtomically(paths.data + "/pod.json", Array(record.json.serialized().utf8), mode: 0o600)
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
        // The pod's limits, and the controllers handed down to its containers' groups.
        CgroupResources.delegate(mount.group("/husk"))
        // The engine's one cgroup writer; `husk run` checked the controllers beforehand.
        do {
            _ = try Engine.setResources(
                CgroupResources.spec(CgroupResources.pod(pod, pidsLimit: paths.settings.pidsLimit(for: pod))), on: podGroup,
                ignoreMissing: true)
        } catch {
            throw HuskError(.system, "cannot set the limits of cgroup \(podGroup.directory)", cause: error)
        }
        CgroupResources.delegate(podGroup)
        var plan = SpawnPlan()
        plan.newNamespaces = .mount
        if ownNetwork { plan.newNamespaces.formUnion([.network, .uts]) }
        if !spec.hostIPC { plan.newNamespaces.insert(.ipc) }
        if spec.shareProcessNamespace { plan.newNamespaces.insert(.pid) }
        plan.loopbackUp = ownNetwork
        if ownNetwork { plan.hostname = hostname }
        // pause sees nothing: an empty read-only root, uid/gid 65535, no capabilities (§11).
        plan.rootfs = paths.pauseRoot
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
        if spec.hostNetwork {
            podIP = hostIP
            return
        }
        cni = try CNI.load(settings: paths.settings)
        guard let cni, let pause else { return }
        podIP = try cni.add(containerID: pod.metadata.uid, netns: "/proc/\(pause.pid)/ns/net", pod: pod)
    }

    /// /etc/hostname, /etc/hosts (kubelet's managedHostsFileContent) and /etc/resolv.conf.
    func writeEtcFiles() throws(HuskError) {
        do {
            try Files.writeAtomically(paths.etcHostname, Array((hostname + "\n").utf8), mode: 0o644)
            try Files.writeAtomically(paths.etcHosts, Array(hostsFile().utf8), mode: 0o644)
            try Files.writeAtomically(paths.resolvConf, Array(resolvConf().utf8), mode: 0o644)
        } catch {
            throw HuskError(.system, "cannot write the pod's /etc files", cause: error)
        }
    }

    /// Whether containers get the managed /etc/hosts. kubelet mounts it once the pod has an
    /// address (makeMounts), and a kubelet pod always has one. A Husk pod without a CNI
    /// config has only loopback: it gets the file too, without a pod-IP line, so that
    /// `localhost` resolves.
    var mountsHostsFile: Bool { true }

    public func hostsFile() -> String {
        var b: String
        if spec.hostNetwork {
            b = "# Kubernetes-managed hosts file (host network).\n"
            b += (try? Files.readString("/etc/hosts")).flatMap { $0 } ?? ""
        } else {
            b = "# Kubernetes-managed hosts file.\n"
            b += "127.0.0.1\tlocalhost\n"
            b += "::1\tlocalhost ip6-localhost ip6-loopback\n"
            b += "fe00::0\tip6-localnet\n"
            b += "fe00::0\tip6-mcastprefix\n"
            b += "fe00::1\tip6-allnodes\n"
            b += "fe00::2\tip6-allrouters\n"
            // The whole hostname, dots included (kubelet's managedHostsFileContent).
            let name = hostname
            for ip in [podIP].compactMap({ $0 }) {
                if let d = Sandbox.domain(for: pod) {
                    b += "\(ip)\t\(name).\(d)\t\(name)\n"
                } else {
                    b += "\(ip)\t\(name)\n"
                }
            }
        }
        if !spec.hostAliases.isEmpty {
            b += "\n# Entries added by HostAliases.\n"
            for a in spec.hostAliases { b += "\(a.ip)\t\(a.hostnames.joined(separator: "\t"))\n" }
        }
        return b
    }

    /// The resolver config of dnsPolicy (pod-semantics §10): Default copies the node's;
    /// ClusterFirst falls back to Default (Husk has no cluster DNS); None uses only dnsConfig;
    /// dnsConfig is merged into the others. Written as containerd does: search, nameservers,
    /// options.
    public func resolvConf() -> String {
        var servers: [String] = []
        var searches: [String] = []
        var options: [(String, String?)] = []
        if spec.dnsPolicy != .none {
            let host = (try? Files.readString("/etc/resolv.conf")).flatMap { $0 } ?? ""
            for line in host.split(separator: "\n") {
                let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard let key = f.first, !key.hasPrefix("#"), !key.hasPrefix(";") else { continue }
                switch key {
                case "nameserver": if f.count > 1 { servers.append(String(f[1])) }
                case "search", "domain": searches = f.dropFirst().map(String.init)
                case "options":
                    for o in f.dropFirst() {
                        let kv = o.split(separator: ":", maxSplits: 1)
                        options.append((String(kv[0]), kv.count > 1 ? String(kv[1]) : nil))
                    }
                default: break
                }
            }
        }
        if let c = spec.dnsConfig {
            for s in c.nameservers where !servers.contains(s) { servers.append(s) }
            for s in c.searches where !searches.contains(s) { searches.append(s) }
            for o in c.options {
                options.removeAll { $0.0 == o.name }
                options.append((o.name, o.value))
            }
        }
        servers = Array(servers.prefix(3))
        searches = Array(searches.prefix(32))
        var out = ""
        if !searches.isEmpty { out += "search " + searches.joined(separator: " ") + "\n" }
        for s in servers { out += "nameserver \(s)\n" }
        if !options.isEmpty {
            let rendered: [String] = options.map { (name: String, value: String?) -> String in
                guard let value else { return name }
                return name + ":" + value
            }
            out += "options " + rendered.joined(separator: " ") + "\n"
        }
        return out
    }

    /// The pod's /dev/shm: a 64 MiB tmpfs shared by its containers (as containerd's), unless
    /// the pod uses the host's IPC namespace.
    func prepareShm() throws(HuskError) {
        guard !spec.hostIPC else { return }
        do {
            try Files.makeDirectories(paths.shm, mode: 0o755)
            try Mount.mount("shm", on: paths.shm, type: "tmpfs", flags: [.noSetID, .noDevices, .noExec], data: "mode=1777,size=65536k")
            shmMounted = true
        } catch {
            throw HuskError(.system, "cannot mount the pod's /dev/shm", cause: error)
        }
    }

    /// emptyDirs are created (mode 0777; medium Memory is a tmpfs of sizeLimit); hostPaths are
    /// checked or created as their type says.
    func prepareVolumes() throws(HuskError) {
        for v in spec.volumes {
            switch v.source {
            case .emptyDir(let medium, let limit):
                let dir = paths.emptyDir(v.name)
                do {
                    try Files.makeDirectories(dir, mode: 0o777)
                    chmod(dir, 0o777)
                    if medium == "Memory" {
                        var data = "mode=1777"
                        if let limit { data += ",size=\(limit)" }
                        try Mount.mount("tmpfs", on: dir, type: "tmpfs", flags: [.noSetID, .noDevices], data: data)
                        memoryVolumes.append(dir)
                    }
                } catch {
                    throw HuskError(.system, "volume \(v.name): cannot create the emptyDir \(dir)", cause: error)
                }
            case .hostPath(let path, let type):
                try checkHostPath(volume: v.name, path: path, type: type)
            }
        }
    }

    func checkHostPath(volume: String, path: String, type: String) throws(HuskError) {
        var st = stat()
        let exists = stat(path, &st) == 0
        let kind = st.st_mode & S_IFMT
        func fail(_ what: String) -> HuskError {
            // kubelet's GenerateError ("%v for volume %q %v" with ": <err>") and hostpath's checkTypeInternal.
            HuskError(.invalidArgument, "MountVolume.SetUp failed for volume \"\(volume)\" : hostPath type check failed: \(path) is not \(what)")
        }
        switch type {
        case "DirectoryOrCreate":
            if !exists {
                do {
                    try Files.makeDirectories(path, mode: 0o755)
                } catch {
                    throw HuskError(.system, "volume \(volume): cannot create \(path)", cause: error)
                }
            } else if kind != S_IFDIR {
                throw fail("a directory")
            }
        case "Directory": if !exists || kind != S_IFDIR { throw fail("a directory") }
        case "FileOrCreate":
            if !exists {
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
                if fd < 0 { throw HuskError(.system, "volume \(volume): cannot create \(path): \(currentErrno.text)") }
                close(fd)
            } else if kind != S_IFREG {
                throw fail("a file")
            }
        case "File": if !exists || kind != S_IFREG { throw fail("a file") }
        case "Socket": if !exists || kind != S_IFSOCK { throw fail("a socket file") }
        case "CharDevice": if !exists || kind != S_IFCHR { throw fail("a character device") }
        case "BlockDevice": if !exists || kind != S_IFBLK { throw fail("a block device") }
        default:  // "": no check; a missing path is made a directory when a container mounts it (containerd)
            break
        }
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
        memoryVolumes = spec.volumes.map { paths.emptyDir($0.name) }.filter { mounted.contains($0) }
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
        if let pause {
            try? pause.signal(SIGKILL)
            _ = pause.waitForExit(timeout: 5)
        }
        if let cni, ownNetwork {
            try? cni.del(containerID: pod.metadata.uid, netns: "", pod: pod)
            self.cni = nil
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
        for dir in memoryVolumes { try? Mount.unmount(dir, detach: true) }
        memoryVolumes.removeAll()
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
