import HuskImage
import HuskRuntime
import HuskSystem

/// What the runtime service needs to create a container (CRI's `ContainerConfig`), resolved
/// by the caller: the environment already expanded, the volumes already set up, the image
/// already in the store. The lifecycle controller (kubelet's role) builds it from a pod
/// manifest; under CRI, kubelet sends it. No manifest type appears here.
public struct ContainerConfig: Sendable {
    /// A mount of a host path into the container (CRI `Mount`).
    public struct Mount: Sendable {
        public enum Propagation: Sendable { case `private`, hostToContainer, bidirectional }
        public var containerPath: String
        public var hostPath: String
        public var readonly = false
        public var propagation = Propagation.private
        /// A missing host path is made a directory (containerd's WithMounts does so for a
        /// hostPath volume without a type).
        public var createIfMissing = false
        /// The host path already opened and detached (`open_tree`), for a subPath resolved
        /// inside its volume: the child attaches this, never the path (CVE-2017-1002101).
        public var opened: FD? = nil
        /// CRI Mount uid_mappings/gid_mappings: the mount is idmapped with them (kubelet sets
        /// the pod's user namespace maps on every mount of a `hostUsers: false` pod).
        public var uidMappings: [Spec.IDMapping] = []
        public var gidMappings: [Spec.IDMapping] = []

        public init(containerPath: String, hostPath: String, readonly: Bool = false, propagation: Propagation = .private) {
            self.containerPath = containerPath
            self.hostPath = hostPath
            self.readonly = readonly
            self.propagation = propagation
        }
    }

    /// The seccomp profile (CRI `SecurityProfile`).
    public enum Seccomp: Sendable, Equatable {
        case unconfined
        case runtimeDefault
        /// A profile file on the node (kubelet's `<seccomp root>/<localhostProfile>`).
        case localhost(path: String)
    }

    /// The AppArmor profile (CRI `SecurityProfile` apparmor).
    public enum AppArmor: Sendable, Equatable {
        /// Nothing asked: the runtime's default profile where AppArmor is enabled and the
        /// container is not privileged (containerd, after kubernetes#51746).
        case unset
        case runtimeDefault
        case unconfined
        /// A loaded profile of this name.
        case localhost(name: String)
    }

    /// CRI `LinuxContainerSecurityContext`.
    public struct Security: Sendable {
        public var privileged = false
        public var capabilitiesAdd: [String] = []
        public var capabilitiesDrop: [String] = []
        /// nil: the image's user.
        public var runAsUser: Int64? = nil
        /// CRI `run_as_username`: a name (or number) looked up in the image's /etc/passwd;
        /// over `runAsUser` when both are set.
        public var runAsUsername: String? = nil
        public var runAsGroup: Int64? = nil
        public var supplementalGroups: [Int64] = []
        public var readonlyRootfs = false
        public var noNewPrivileges = false
        /// Empty with procMount Unmasked or privileged.
        public var maskedPaths: [String] = []
        public var readonlyPaths: [String] = []
        public var seccomp = Seccomp.unconfined
        public var apparmor = AppArmor.unset
        /// The container has a pid namespace of its own (CRI NamespaceMode CONTAINER);
        /// otherwise it shares the sandbox's or the node's.
        public var ownPIDNamespace = true
        /// CRI NamespaceMode TARGET: the id of the running container in the same sandbox
        /// whose pid namespace this one joins (kubectl debug --target).
        public var pidTarget: String? = nil

        public init() {}
    }

    public var name: String
    /// CRI `metadata.attempt`: the restart count of this instance.
    public var attempt: Int
    public var image: ImageRecord
    /// The image's snapshot directories, lowest first.
    public var layers: [String]
    /// nil or empty: the image's entrypoint (and cmd).
    public var command: [String]? = nil
    public var args: [String]? = nil
    public var workingDir: String? = nil
    public var envs: [EnvVar] = []
    public var mounts: [Mount] = []
    public var stdin = false
    public var stdinOnce = false
    public var tty = false
    public var logPath: String
    /// nil: the image's STOPSIGNAL, else SIGTERM.
    public var stopSignal: Int32? = nil
    /// The cgroup v2 resources of the container.
    public var resources: Spec.Resources? = nil
    public var security = Security()
    /// The file kubelet mounts at the termination message path (or nil).
    public var terminationLog: String? = nil
    public var labels: [String: String] = [:]
    public var annotations: [String: String] = [:]
    /// CRI `devices`: host device nodes (or directories of them) made in the container.
    public var devices: [Device] = []

    /// A CRI `Device`: `hostPath` (a device node, or a directory whose device nodes are all
    /// taken) at `containerPath`, with cgroup access `permissions` (r, w, m).
    public struct Device: Sendable, Equatable {
        public var containerPath: String
        public var hostPath: String
        public var permissions: String

        public init(containerPath: String, hostPath: String, permissions: String) {
            self.containerPath = containerPath
            self.hostPath = hostPath
            self.permissions = permissions
        }
    }

    public init(name: String, attempt: Int, image: ImageRecord, layers: [String], logPath: String) {
        self.name = name
        self.attempt = attempt
        self.image = image
        self.layers = layers
        self.logPath = logPath
    }
}
