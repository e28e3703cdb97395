import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// kubelet's half of a pod sandbox (kuberuntime generatePodSandboxConfig, GeneratePodHostNameAndDomain,
/// dns.GetPodDNS, managedHostsFileContent, ResourceConfigForPod): a manifest pod turned into
/// the runtime service's `PodSandboxConfig`, and the hosts file kubelet manages.
struct SandboxConfigBuilder {
    let pod: Pod
    let paths: PodPaths

    var spec: PodSpec { pod.spec }

    func config() -> PodSandboxConfig {
        var c = PodSandboxConfig(
            metadata: .init(name: pod.metadata.name, namespace: pod.metadata.namespace, uid: pod.metadata.uid),
            hostname: Self.hostname(for: pod), logDirectory: paths.logs)
        c.dns = dns()
        c.labels = pod.metadata.labels
        c.annotations = pod.metadata.annotations
        c.namespaces = .init(
            network: spec.hostNetwork ? .node : .pod,
            pid: spec.hostPID ? .node : spec.shareProcessNamespace ? .pod : .container,
            ipc: spec.hostIPC ? .node : .pod)
        c.sysctls = Dictionary(spec.securityContext.sysctls.map { ($0.name, $0.value) }, uniquingKeysWith: { _, b in b })
        // kubelet's makePortMappings: every container port that names a host port.
        c.portMappings = spec.containers.flatMap(\.ports).compactMap { p in
            guard let h = p.hostPort, h > 0 else { return nil }
            return .init(proto: p.protocol, containerPort: Int32(clamping: p.containerPort), hostPort: Int32(clamping: h))
        }
        c.resources = CgroupResources.spec(CgroupResources.pod(pod, pidsLimit: paths.settings.pidsLimit(for: pod)))
        if !spec.hostUsers {
            // The range `husk run` recorded; none (or a bad record) leaves empty maps, which
            // the sandbox refuses: such a pod never runs with the node's ids.
            c.userNamespace = (try? UserNamespaces.read(paths.userNamespace)) ?? .init(uids: [], gids: [])
        }
        return c
    }

    /// kubelet's GeneratePodHostNameAndDomain: spec.hostname, else the pod name cut to 63
    /// characters with trailing '-' and '.' removed; the FQDN with setHostnameAsFQDN. With
    /// hostNetwork, the node's name.
    static func hostname(for pod: Pod) -> String {
        if pod.spec.hostNetwork { return Sandbox.nodeName() }
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

    /// The resolver settings of dnsPolicy (pod-semantics §10): Default copies the node's;
    /// ClusterFirst falls back to Default (Husk has no cluster DNS); None uses only
    /// dnsConfig; dnsConfig is merged into the others. At most 3 servers and 32 searches.
    func dns(hostResolvConf: String? = nil) -> PodSandboxConfig.DNS {
        var servers: [String] = []
        var searches: [String] = []
        var options: [(String, String?)] = []
        if spec.dnsPolicy != .none {
            let host = hostResolvConf ?? (try? Files.readString("/etc/resolv.conf")).flatMap { $0 } ?? ""
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
        let rendered: [String] = options.map { (name: String, value: String?) -> String in
            guard let value else { return name }
            return name + ":" + value
        }
        return .init(servers: Array(servers.prefix(3)), searches: Array(searches.prefix(32)), options: rendered)
    }

    /// kubelet's managedHostsFileContent, for the pod's address (nil: none yet).
    func hostsFile(podIP: String?) -> String {
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
            // The whole hostname, dots included.
            let name = Self.hostname(for: pod)
            if let ip = podIP {
                if let d = Self.domain(for: pod) {
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

    /// Writes the managed hosts file once the sandbox has its address; every container
    /// mounts it (kubelet's makeMounts). A Husk pod without a CNI config has only loopback:
    /// it gets the file too, without a pod-IP line, so that `localhost` resolves.
    func writeHostsFile(podIP: String?) throws(HuskError) {
        do {
            try Files.writeAtomically(paths.etcHosts, Array(hostsFile(podIP: podIP).utf8), mode: 0o644, durable: false)
        } catch {
            throw HuskError(.system, "cannot write the pod's /etc/hosts", cause: error)
        }
    }
}

extension PodPaths {
    /// The directories of a manifest pod.
    public init(settings: HuskSettings, pod: Pod) {
        self.init(settings: settings, uid: pod.metadata.uid, namespace: pod.metadata.namespace, name: pod.metadata.name)
    }
}

extension HuskSettings {
    /// The pid limit of `pod`: its annotation husk.io/pod-pids-limit, else the default.
    public func pidsLimit(for pod: Pod) -> Int64? {
        if let a = pod.metadata.annotations["husk.io/pod-pids-limit"], let v = Int64(a), v > 0 { return v }
        return podPidsLimit
    }
}
