import HuskRuntime

/// What the runtime service needs to run a pod sandbox (CRI's `PodSandboxConfig`), resolved by
/// the caller: the hostname already chosen, the DNS settings already derived from the pod's
/// dnsPolicy, the pod cgroup's limits already summed. The lifecycle controller (kubelet's
/// role) builds it from a pod manifest; under CRI, kubelet sends it. No manifest type here.
public struct PodSandboxConfig: Sendable, Equatable {
    /// CRI `PodSandboxMetadata`.
    public struct Metadata: Sendable, Equatable {
        public var name: String
        public var namespace: String
        public var uid: String
        public var attempt: Int

        public init(name: String, namespace: String, uid: String, attempt: Int = 0) {
            self.name = name
            self.namespace = namespace
            self.uid = uid
            self.attempt = attempt
        }
    }

    /// CRI `NamespaceMode`: the pod's own namespace, the container's own, or the node's.
    public enum NamespaceMode: Int, Sendable, Equatable {
        case pod = 0
        case container = 1
        case node = 2
    }

    /// CRI `NamespaceOption` of the sandbox: network and IPC are the pod's or the node's; the
    /// pid namespace is the pod's (shareProcessNamespace), each container's, or the node's.
    public struct Namespaces: Sendable, Equatable {
        public var network = NamespaceMode.pod
        public var pid = NamespaceMode.container
        public var ipc = NamespaceMode.pod

        public init(network: NamespaceMode = .pod, pid: NamespaceMode = .container, ipc: NamespaceMode = .pod) {
            self.network = network
            self.pid = pid
            self.ipc = ipc
        }
    }

    /// CRI `DNSConfig`: what the sandbox's resolv.conf says.
    public struct DNS: Sendable, Equatable {
        public var servers: [String]
        public var searches: [String]
        /// `name` or `name:value`.
        public var options: [String]

        public init(servers: [String] = [], searches: [String] = [], options: [String] = []) {
            self.servers = servers
            self.searches = searches
            self.options = options
        }
    }

    /// CRI `PortMapping`, handed to CNI's `portMappings` capability.
    public struct PortMapping: Sendable, Equatable {
        public var proto: String
        public var containerPort: Int32
        public var hostPort: Int32
        public var hostIP: String

        public init(proto: String = "TCP", containerPort: Int32, hostPort: Int32 = 0, hostIP: String = "") {
            self.proto = proto
            self.containerPort = containerPort
            self.hostPort = hostPort
            self.hostIP = hostIP
        }
    }

    public var metadata: Metadata
    /// Empty: the node's hostname (containerd's behaviour).
    public var hostname: String
    /// kubelet's pod log directory (`<log-dir>/<namespace>_<name>_<uid>`).
    public var logDirectory: String
    /// nil: the node's /etc/resolv.conf is copied (containerd's behaviour).
    public var dns: DNS? = nil
    public var portMappings: [PortMapping] = []
    public var labels: [String: String] = [:]
    public var annotations: [String: String] = [:]
    public var namespaces = Namespaces()
    /// Namespaced sysctls, set by every container of the pod (containerd gives them to each).
    public var sysctls: [String: String] = [:]
    /// The limits of the pod's cgroup (kubelet's ResourceConfigForPod).
    public var resources: Spec.Resources? = nil
    /// CRI `UserNamespace` with mode POD: the pod's own user namespace with these maps (one
    /// range each, container id 0, as kubelet allocates them); nil: the node's.
    public var userNamespace: UserNamespace? = nil
    /// CRI `cgroup_parent` (kubelet's pod cgroup, cgroupfs form): the sandbox's group is
    /// `<parent>/<sandbox id>` there, as containerd places it; nil: `/husk/<id>`.
    public var cgroupParent: String? = nil

    /// The maps of a pod's user namespace.
    public struct UserNamespace: Sendable, Equatable {
        public var uids: [Spec.IDMapping]
        public var gids: [Spec.IDMapping]

        public init(uids: [Spec.IDMapping], gids: [Spec.IDMapping]) {
            self.uids = uids
            self.gids = gids
        }

        /// The host ids of the namespace's root (its uid and gid 0).
        public var hostRoot: (uid: UInt32, gid: UInt32)? {
            guard let u = uids.first(where: { $0.containerID == 0 }), let g = gids.first(where: { $0.containerID == 0 }) else { return nil }
            return (u.hostID, g.hostID)
        }
    }

    public init(metadata: Metadata, hostname: String, logDirectory: String) {
        self.metadata = metadata
        self.hostname = hostname
        self.logDirectory = logDirectory
    }

    /// Whether the pod has a network (and UTS) namespace of its own.
    public var ownNetwork: Bool { namespaces.network != .node }
    /// Whether the pod has an IPC namespace (and /dev/shm) of its own.
    public var ownIPC: Bool { namespaces.ipc != .node }
    /// Whether the pod's containers share one pid namespace, pause's.
    public var sharedPID: Bool { namespaces.pid == .pod }
}
