import CShim
import HuskSystem

/// Everything the child does between clone3 and execve, as plain data (DESIGN §3). Built by
/// `SpawnPlanner` from a spec; fds (cgroup, namespaces, gate, stdio) are filled in by the
/// caller that owns them. `Spawner` lays it out as C memory and runs it.
public struct SpawnPlan: Sendable {
    public struct MountEntry: Sendable {
        public var source: String?
        public var target: String
        public var fstype: String?
        public var data: String?
        public var flags: MountFlags = []
        public var propagation: MountFlags = []
        public var options: Options = []
        /// For binds: the source already opened (O_PATH) by the caller, e.g. a subPath resolved
        /// inside its volume.
        public var sourceFD: FD? = nil
        /// A bind shown through an idmapped mount (runtime-spec mounts[].uidMappings): its id
        /// maps, and whether the mapping covers the mounts below it (ridmap). The engine makes
        /// the `sourceFD` from it.
        public var idmap: (uidMap: String, gidMap: String, recursive: Bool)? = nil

        public init(source: String?, target: String, fstype: String?, data: String? = nil, flags: MountFlags = [],
                    propagation: MountFlags = [], options: Options = []) {
            self.source = source
            self.target = target
            self.fstype = fstype
            self.data = data
            self.flags = flags
            self.propagation = propagation
            self.options = options
        }

        /// What the child does beyond mount(2) for an entry (CSHIM_MOUNT_*, cshim_spawn.h).
        public struct Options: OptionSet, Sendable, Hashable {
            public let rawValue: UInt32
            public init(rawValue: UInt32) { self.rawValue = rawValue }

            /// The source is a host path (or `sourceFD`) bound at the target.
            public static let bind = Options(rawValue: UInt32(CSHIM_MOUNT_BIND))
            /// Refuse a target that is a symlink (proc, sysfs).
            public static let noSymlink = Options(rawValue: UInt32(CSHIM_MOUNT_NO_SYMLINK))
            /// A bind is remounted with `flags` afterwards (ro, nosuid, ...).
            public static let remount = Options(rawValue: UInt32(CSHIM_MOUNT_REMOUNT))
            /// Read-only all the way down (MOUNT_ATTR_RDONLY on every mount below: rro).
            public static let recursiveReadOnly = Options(rawValue: UInt32(CSHIM_MOUNT_RECURSIVE_RO))
            /// The target is created as a file, not a directory.
            public static let targetFile = Options(rawValue: UInt32(CSHIM_MOUNT_TARGET_FILE))
        }
    }

    public struct DeviceNode: Sendable, Equatable {
        public var path: String
        public var mode: UInt32  // S_IF* | permissions
        public var major: UInt32
        public var minor: UInt32
        public var uid: UInt32 = 0
        public var gid: UInt32 = 0
        /// A device the spec asked for (linux.devices): a file already at its path must be this
        /// device (config-linux.md). The runtime's default nodes leave an existing file alone.
        public var mustMatch = false
    }

    public struct NamespaceJoin: Sendable {
        public var fd: FD
        public var type: Namespaces

        public init(fd: FD, type: Namespaces) {
            self.fd = fd
            self.type = type
        }
    }

    // Namespaces.
    public var newNamespaces: Namespaces = []
    public var unshareCgroupNamespace = false
    public var joins: [NamespaceJoin] = []
    public var pidNamespace: FD? = nil
    /// A new user namespace's maps ("inside outside count" lines), written by the parent.
    public var uidMap: String? = nil
    public var gidMap: String? = nil
    /// Namespaces unshared after the joins (owned by a user namespace joined by path).
    public var unshareNamespaces: Namespaces = []
    /// The AppArmor profile the program runs under from its execve (nil: the runtime's).
    public var apparmorProfile: String? = nil
    public var cgroup: FD? = nil

    // Streams.
    public var stdio: [FD?] = [nil, nil, nil]
    public var setsid = true
    public var console: FD? = nil
    /// A unix socket: the child opens a pty in its own /dev/pts and sends the master here
    /// (the slave becomes its controlling terminal and stdio; needs `setsid`).
    public var consoleSocket: FD? = nil
    public var preserveFDs: [FD] = []
    /// Rows and columns of the pty made for `consoleSocket` (process.consoleSize).
    public var consoleSize: (rows: UInt16, cols: UInt16)? = nil
    /// Join a new session keyring of this name (nil: keep the caller's).
    public var sessionKeyring: String? = nil

    public var oomScoreAdj: Int? = nil

    // Root filesystem.
    public var rootfs: String? = nil
    /// An overlay mounted at `rootfs` in the child: lower dirs lowest first, upper, work.
    public var overlay: (lower: [String], upper: String, work: String)? = nil
    /// A root mounted beforehand (an overlay of idmapped layers), attached at `rootfs`
    /// instead of `overlay`.
    public var rootfsMount: FD? = nil
    public var rootPropagation: MountFlags = []
    public var rootfsReadonly = false
    /// No mount namespace of its own: the rootfs is bound (rprivate) in the runtime's mount
    /// namespace and entered with chroot; the caller unmounts it when the container goes.
    public var rootfsChroot = false
    /// An exec into such a container: chroot here (/proc/<init>/root) after joining.
    public var enterRoot: FD? = nil
    public var mounts: [MountEntry] = []
    public var setupDev = false
    public var devices: [DeviceNode] = []
    public var symlinks: [(target: String, path: String)] = []
    public var maskedPaths: [String] = []
    public var readonlyPaths: [String] = []

    public var hostname: String? = nil
    public var domainname: String? = nil
    public var sysctls: [(key: String, value: String)] = []
    public var rlimits: [(resource: Int32, soft: UInt64, hard: UInt64)] = []

    // Identity and privileges.
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var groups: [UInt32] = []
    public var umask: Int32? = nil
    public var bounding: UInt64 = 0
    public var effective: UInt64 = 0
    public var permitted: UInt64 = 0
    public var inheritable: UInt64 = 0
    public var ambient: UInt64 = 0
    public var noNewPrivileges = false
    public var seccomp: SeccompProgram? = nil

    // What to run.
    public var cwd = "/"
    public var argv: [String] = []
    public var env: [String] = []
    /// An open executable to run (a sealed memfd) instead of finding argv[0].
    public var executable: FD? = nil
    /// Bring `lo` of the new network namespace up.
    public var loopbackUp = false
    /// Hooks run in the child: createContainer (after the mounts, before pivot_root) and
    /// startContainer (after the gate, before exec). With `hooksFD` set the child stops
    /// before pivot_root until it gets its states (see `Spawner.spawn(_:hooks:)`).
    public var createContainerHooks: [Hook] = []
    public var startContainerHooks: [Hook] = []
    public var hooksFD: FD? = nil
    public var hooksPeerFD: FD? = nil

    public struct Hook: Sendable, Equatable {
        public var path: String
        public var args: [String]
        public var env: [String]
        public var timeout: Int

        public init(path: String, args: [String], env: [String], timeout: Int) {
            self.path = path
            self.args = args
            self.env = env
            self.timeout = timeout
        }
    }

    /// Wait for one byte on this fd after setup, before exec (the start gate).
    public var gate: FD? = nil

    public init() {}

    /// A plain host process (a CNI plugin, a helper): no namespaces, no root change, the caller's
    /// capabilities, the caller's cgroup.
    public static func host(argv: [String], env: [String]) -> SpawnPlan {
        var p = SpawnPlan()
        p.argv = argv
        p.env = env
        let caps = Capabilities.current()
        p.bounding = caps.bounding
        p.effective = caps.effective
        p.permitted = caps.permitted
        p.inheritable = 0
        return p
    }

    /// PATH from the environment, used to find argv[0].
    public var pathEnv: String? {
        env.last(where: { $0.hasPrefix("PATH=") }).map { String($0.dropFirst(5)) }
    }
}
