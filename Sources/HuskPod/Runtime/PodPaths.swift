import HuskJSON
import HuskSystem

/// Where a pod's things live (DESIGN §4): `--root` for data (images, emptyDirs, upper dirs),
/// `--state` for runtime state (status, events, sockets), `--log-dir` for container logs.
public struct HuskSettings: Sendable, Equatable {
    public var root = "/var/lib/husk"
    public var state = "/run/husk"
    public var logDir = "/var/log/pods"
    public var imageSources: [String] = []
    public var maxLayerSize: UInt64? = nil
    /// CNI: a config here gives pods an address on a bridge (DESIGN §6). None: loopback only.
    public var cniConfDir = "/etc/cni/net.d"
    public var cniBinDirs = ["/usr/lib/cni", "/opt/cni/bin"]
    /// Where Localhost seccomp profiles are (kubelet's default).
    public var seccompDir = "/var/lib/kubelet/seccomp"
    /// Multiplies kubelet's back-off constants (10 s doubling to 300 s, reset after 600 s):
    /// tests run them faster. 1 is Kubernetes.
    public var backoffScale = 1.0
    /// pids.max of every pod's cgroup (kubelet's podPidsLimit); nil: none.
    public var podPidsLimit: Int64? = nil
    /// memory.high as kubelet's MemoryQoS sets it.
    public var memoryQoS = false
    /// Limits whose controller the host lacks are warned about and skipped, not refused.
    public var ignoreMissingControllers = false
    /// Images that no layout serves are pulled from their registries (through `husk-pull`).
    public var registries = true
    /// containerd's per-host registry configuration (`<dir>/<host>/hosts.toml`).
    public var registryConfigDir: String? = "/etc/husk/certs.d"
    /// docker's config.json with registry credentials; nil: $REGISTRY_AUTH_FILE, then
    /// ~/.docker/config.json.
    public var authFile: String? = nil
    /// A pod's imagePullSecrets, as Secret manifests (PullSecrets).
    public var secretsDir = "/etc/husk/secrets"

    public init() {}


    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "root": .string(root), "state": .string(state), "logDir": .string(logDir),
            "imageSources": .array(imageSources.map { .string($0) }), "cniConfDir": .string(cniConfDir),
            "cniBinDirs": .array(cniBinDirs.map { .string($0) }), "seccompDir": .string(seccompDir),
        ]
        if let m = maxLayerSize { o["maxLayerSize"] = .number(Double(m)) }
        if backoffScale != 1 { o["backoffScale"] = .number(backoffScale) }
        if let p = podPidsLimit { o["podPidsLimit"] = .number(Double(p)) }
        if memoryQoS { o["memoryQoS"] = .bool(true) }
        if ignoreMissingControllers { o["ignoreMissingControllers"] = .bool(true) }
        if !registries { o["registries"] = .bool(false) }
        if let d = registryConfigDir { o["registryConfigDir"] = .string(d) }
        if let f = authFile { o["authFile"] = .string(f) }
        if secretsDir != "/etc/husk/secrets" { o["secretsDir"] = .string(secretsDir) }
        return .object(o)
    }

    public init(json r: JSONReader) throws(FieldError) {
        root = try r.optString("root") ?? root
        state = try r.optString("state") ?? state
        logDir = try r.optString("logDir") ?? logDir
        imageSources = try r.optStringArray("imageSources") ?? []
        maxLayerSize = try r.optInt("maxLayerSize").map { UInt64($0) }
        cniConfDir = try r.optString("cniConfDir") ?? cniConfDir
        cniBinDirs = try r.optStringArray("cniBinDirs") ?? cniBinDirs
        seccompDir = try r.optString("seccompDir") ?? seccompDir
        backoffScale = try r.optDouble("backoffScale") ?? 1
        podPidsLimit = try r.optInt("podPidsLimit")
        memoryQoS = try r.optBool("memoryQoS") ?? false
        ignoreMissingControllers = try r.optBool("ignoreMissingControllers") ?? false
        registries = try r.optBool("registries") ?? true
        registryConfigDir = try r.optString("registryConfigDir")
        authFile = try r.optString("authFile")
        secretsDir = try r.optString("secretsDir") ?? secretsDir
    }
}

/// The directories of one pod.
public struct PodPaths: Sendable {
    public let settings: HuskSettings
    public let uid: String
    public let namespace: String
    public let name: String
    /// The cgroup the pod's group is made in (a CRI sandbox's `cgroup_parent`); nil: `/husk`.
    public let cgroupParent: String?

    public init(settings: HuskSettings, uid: String, namespace: String, name: String, cgroupParent: String? = nil) {
        self.settings = settings
        self.uid = uid
        self.namespace = namespace
        self.name = name
        self.cgroupParent = cgroupParent
    }

    /// `<state>/pods/<uid>`, 0700: pod.json, status.json, events, the control socket.
    public var state: String { settings.state + "/pods/" + uid }
    public var podJSON: String { state + "/pod.json" }
    public var statusJSON: String { state + "/status.json" }
    public var events: String { state + "/events.jsonl" }
    public var socket: String { state + "/control.sock" }
    public var supervisorLog: String { state + "/supervisor.log" }
    public var supervisorPid: String { state + "/supervisor.pid" }
    /// The keeper: the supervisor's parent, which starts a new supervisor when one dies.
    public var keeperPid: String { state + "/keeper.pid" }
    /// `<pid>.<starttime>`: how the keeper saw orphaned processes of the pod end.
    public var exits: String { state + "/exits" }
    /// kubelet's `userns` file: the ids of a `hostUsers: false` pod's user namespace.
    public var userNamespace: String { state + "/userns" }
    /// An empty read-only directory: the pause process's root.
    public var pauseRoot: String { state + "/pause-root" }

    /// `<root>/pods/<uid>`: emptyDirs, /etc files, containers' upper dirs.
    public var data: String { settings.root + "/pods/" + uid }
    /// kubelet's managed hosts file, which the controller writes and mounts.
    public var etcHosts: String { data + "/etc-hosts" }
    /// The sandbox's copy of the node's hosts file (containerd's), mounted when the
    /// container config mounts nothing at /etc/hosts.
    public var sandboxHosts: String { data + "/hosts" }
    public var etcHostname: String { data + "/hostname" }
    public var resolvConf: String { data + "/resolv.conf" }
    public var shm: String { data + "/shm" }
    public func emptyDir(_ volume: String) -> String { data + "/volumes/kubernetes.io~empty-dir/" + volume }
    public func instance(_ container: String, attempt: Int) -> String { data + "/containers/\(container)/\(attempt)" }

    /// `<log-dir>/<namespace>_<name>_<uid>`
    public var logs: String { settings.logDir + "/\(namespace)_\(name)_\(uid)" }
    public func log(_ container: String, attempt: Int) -> String { logs + "/\(container)/\(attempt).log" }

    /// The pod's cgroup: inside Husk's subtree, `/husk/<uid>` (DESIGN §7), or for a CRI
    /// sandbox with a `cgroup_parent`, `<parent>/<uid>` (containerd's cgroupfs path).
    public var cgroup: String { (cgroupParent ?? "/husk") + "/" + uid }

    /// Whether Husk may write the cgroup `path` of this pod: its own subtree, and the pod's
    /// group and below (a parent kubelet made gets only the controllers handed down).
    public func mayWriteCgroup(_ path: String) -> Bool {
        path == "/husk" || path.hasPrefix("/husk/") || path == cgroup || path.hasPrefix(cgroup + "/")
    }

    /// `<state>/names/<namespace>_<name>`: the uid of the pod with that name.
    public static func nameFile(_ settings: HuskSettings, namespace: String, name: String) -> String {
        settings.state + "/names/\(namespace)_\(name)"
    }
}
