import ArgumentParser
import FoundationEssentials
import HuskImage
import HuskJSON
import HuskPod
import HuskSystem

/// Husk's version, as `husk --version` prints it and `husk serve` reports it over CRI.
public enum HuskVersion {
    public static let current = "0.1.0"
}

/// Flags every command takes (DESIGN §4-§5).
public struct GlobalOptions: ParsableArguments {
    public init() {}

    @Option(name: .long, help: "Husk's data directory (images, pods).")
    public var root: String = "/var/lib/husk"

    @Option(name: .customLong("image-source"), help: "An OCI image layout (directory or .tar) to pull from, as [REPO=]PATH. Repeatable; searched in order, before the config file's.")
    public var imageSources: [String] = []

    @Option(name: .long, help: "Runtime state: pod records, status, events, control sockets.")
    public var state: String = "/run/husk"

    @Option(name: .customLong("log-dir"), help: "Container logs: <log-dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log.")
    public var logDir: String = "/var/log/pods"

    @Option(name: .customLong("cni-conf-dir"), help: "CNI network configurations; none there: pods get loopback only.")
    public var cniConfDir: String = "/etc/cni/net.d"

    @Option(name: .customLong("cni-bin-dir"), help: "Where CNI plugins are (repeatable).")
    public var cniBinDirs: [String] = []

    @Option(name: .customLong("backoff-scale"), help: ArgumentHelp("Multiplies kubelet's back-off times (tests).", visibility: .hidden))
    public var backoffScale: Double = 1

    @Option(name: .long, help: "Configuration file (JSON). Default: /etc/husk/config.json when it exists.")
    public var config: String?

    @Option(name: .customLong("pod-pids-limit"), help: "pids.max of every pod's cgroup (kubelet's podPidsLimit); a pod's annotation husk.io/pod-pids-limit overrides it. Default: none.")
    public var podPidsLimit: Int64?

    @Flag(name: .customLong("memory-qos"), help: "Set memory.high of containers with a memory limit above their request (kubelet's MemoryQoS: request + 0.9 × (limit - request)).")
    public var memoryQoS = false

    @Flag(name: .customLong("ignore-missing-controllers"), help: "Run pods whose limits need a cgroup v2 controller this host lacks, with a warning per limit, instead of refusing them.")
    public var ignoreMissingControllers = false

    @Option(name: .customLong("max-layer-size"), help: "Refuse a layer that unpacks to more bytes than this (decompression bombs). Default 64 GiB.")
    public var maxLayerSize: UInt64?

    @Option(name: .customLong("registry-config"), help: "Registry hosts configuration, containerd's layout: DIR/<host>/hosts.toml (mirrors, server, ca, client, skip_verify). Default: /etc/husk/certs.d.")
    public var registryConfig: String?

    @Option(name: .customLong("auth-file"), help: "docker's config.json with registry credentials. Default: $REGISTRY_AUTH_FILE, then ~/.docker/config.json.")
    public var authFile: String?

    @Option(name: .customLong("secrets-dir"), help: "Where a pod's imagePullSecrets are: Kubernetes Secret manifests (type kubernetes.io/dockerconfigjson or dockercfg) at DIR/<namespace>/<name>.yaml or DIR/<name>.yaml (.yml, .json). Default: /etc/husk/secrets.")
    public var secretsDir: String?

    @Flag(name: .customLong("no-registries"), help: "Pull only from the image sources (OCI layouts), never from a registry.")
    public var noRegistries = false

    /// The config file: `imageSources` ([REPO=]PATH strings) and `maxLayerSize` (bytes).
    public struct ConfigFile: Decodable {
        public var imageSources: [String]?
        public var maxLayerSize: UInt64?
    }

    public func loadConfig() throws -> ConfigFile {
        let path = config ?? "/etc/husk/config.json"
        guard let bytes = try Files.read(path) else {
            if config != nil { throw HuskError(.notFound, "\(path): no such file") }
            return ConfigFile()
        }
        do {
            return try JSONDecoder().decode(ConfigFile.self, from: Data(bytes))
        } catch {
            throw HuskError(.invalidArgument, "\(path): \(JSONPath.describe(error))")
        }
    }

    public func sources() throws -> [LayoutSource] {
        let specs = imageSources + (try loadConfig().imageSources ?? [])
        return try specs.map { try LayoutSource.parse($0) }
    }

    /// The settings a pod is run with (recorded with it).
    public func settings() throws -> HuskSettings {
        var s = HuskSettings()
        s.root = Files.absolute(root)
        s.state = Files.absolute(state)
        s.logDir = Files.absolute(logDir)
        s.cniConfDir = Files.absolute(cniConfDir)
        if !cniBinDirs.isEmpty { s.cniBinDirs = cniBinDirs.map { Files.absolute($0) } }
        let config = try loadConfig()
        s.imageSources = (imageSources + (config.imageSources ?? [])).map { spec in
            // Sources as absolute paths: the supervisor runs from /.
            guard let eq = spec.firstIndex(of: "="), !spec.hasPrefix("/") || !spec[..<eq].contains("/") else { return Files.absolute(spec) }
            return String(spec[...eq]) + Files.absolute(String(spec[spec.index(after: eq)...]))
        }
        s.maxLayerSize = maxLayerSize ?? config.maxLayerSize
        guard backoffScale > 0, backoffScale <= 1 else {
            throw HuskError(.invalidArgument, "--backoff-scale must be greater than 0 and at most 1")
        }
        s.backoffScale = backoffScale
        if let p = podPidsLimit, p <= 0 { throw HuskError(.invalidArgument, "--pod-pids-limit must be a positive number") }
        s.podPidsLimit = podPidsLimit
        s.memoryQoS = memoryQoS
        s.ignoreMissingControllers = ignoreMissingControllers
        s.registries = !noRegistries
        if let d = registryConfig { s.registryConfigDir = Files.absolute(d) }
        s.authFile = authFile.map { Files.absolute($0) }
        if let d = secretsDir { s.secretsDir = Files.absolute(d) }
        return s
    }

    public func store() throws -> ImageStore {
        var options = ImageStoreOptions()
        if let cap = try maxLayerSize ?? loadConfig().maxLayerSize { options.maxLayerBytes = cap }
        return try ImageStore(root: root, options: options)
    }
}
