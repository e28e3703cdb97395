import HuskImage
import HuskSystem

/// A Kubernetes Pod (core/v1), the parts Husk runs. Read from YAML or JSON by `PodManifest`,
/// with Kubernetes' defaults filled in.
public struct Pod: Sendable, Equatable {
    public var metadata: ObjectMeta
    public var spec: PodSpec
}

public struct ObjectMeta: Sendable, Equatable {
    public var name: String
    public var namespace: String = "default"
    public var uid: String = ""
    public var labels: [String: String] = [:]
    public var annotations: [String: String] = [:]
    public var creationTimestamp: String? = nil
}

public enum RestartPolicy: String, Sendable, CaseIterable {
    case always = "Always", onFailure = "OnFailure", never = "Never"
}

public enum DNSPolicy: String, Sendable, CaseIterable {
    case clusterFirst = "ClusterFirst", clusterFirstWithHostNet = "ClusterFirstWithHostNet", defaultPolicy = "Default",
        none = "None"
}

public struct PodSpec: Sendable, Equatable {
    public var initContainers: [ContainerSpec] = []
    public var containers: [ContainerSpec] = []
    public var volumes: [Volume] = []
    public var restartPolicy: RestartPolicy = .always
    public var terminationGracePeriodSeconds: Int64 = 30
    public var activeDeadlineSeconds: Int64? = nil
    public var hostname: String? = nil
    public var subdomain: String? = nil
    public var setHostnameAsFQDN = false
    public var hostNetwork = false
    public var hostPID = false
    public var hostIPC = false
    /// false: the pod gets a user namespace of its own (KEP-127), with a 65536-id range of
    /// the node's that no other pod has.
    public var hostUsers = true
    public var shareProcessNamespace = false
    /// Names of Secrets with registry credentials, read from files in `--secrets-dir`
    /// (PullSecrets): Husk has no API server.
    public var imagePullSecrets: [String] = []
    public var dnsPolicy: DNSPolicy = .clusterFirst
    public var dnsConfig: DNSConfig? = nil
    public var hostAliases: [HostAlias] = []
    public var securityContext = PodSecurityContext()

    /// Every container, init containers first, with where it is in the spec.
    public var allContainers: [(field: String, index: Int, spec: ContainerSpec)] {
        initContainers.enumerated().map { ("initContainers", $0.offset, $0.element) }
            + containers.enumerated().map { ("containers", $0.offset, $0.element) }
    }
}

public struct DNSConfig: Sendable, Equatable {
    public var nameservers: [String] = []
    public var searches: [String] = []
    public var options: [(name: String, value: String?)] = []

    public static func == (a: DNSConfig, b: DNSConfig) -> Bool {
        a.nameservers == b.nameservers && a.searches == b.searches
            && a.options.map { "\($0.name)=\($0.value ?? "")" } == b.options.map { "\($0.name)=\($0.value ?? "")" }
    }
}

public struct HostAlias: Sendable, Equatable {
    public var ip: String
    public var hostnames: [String]
}

public struct PodSecurityContext: Sendable, Equatable {
    public var runAsUser: Int64? = nil
    public var runAsGroup: Int64? = nil
    public var runAsNonRoot: Bool? = nil
    public var supplementalGroups: [Int64] = []
    public var sysctls: [(name: String, value: String)] = []
    public var seccompProfile: SeccompProfileSpec? = nil
    /// Same shape as seccompProfile (type RuntimeDefault, Unconfined or Localhost with
    /// localhostProfile: a loaded profile's name).
    public var appArmorProfile: SeccompProfileSpec? = nil

    public static func == (a: PodSecurityContext, b: PodSecurityContext) -> Bool {
        a.runAsUser == b.runAsUser && a.runAsGroup == b.runAsGroup && a.runAsNonRoot == b.runAsNonRoot
            && a.supplementalGroups == b.supplementalGroups && a.seccompProfile == b.seccompProfile
            && a.appArmorProfile == b.appArmorProfile
            && a.sysctls.map { $0.name + "=" + $0.value } == b.sysctls.map { $0.name + "=" + $0.value }
    }
}

public struct SeccompProfileSpec: Sendable, Equatable {
    public enum Kind: String, Sendable { case runtimeDefault = "RuntimeDefault", unconfined = "Unconfined", localhost = "Localhost" }
    public var type: Kind
    public var localhostProfile: String?
}

public struct ContainerSpec: Sendable, Equatable {
    public var name: String
    public var image: String
    public var imagePullPolicy: PullPolicy
    public var command: [String]? = nil
    public var args: [String]? = nil
    public var workingDir: String? = nil
    public var env: [EnvVarSpec] = []
    public var ports: [ContainerPort] = []
    public var volumeMounts: [VolumeMount] = []
    public var lifecycle: Lifecycle? = nil
    public var livenessProbe: Probe? = nil
    public var readinessProbe: Probe? = nil
    public var startupProbe: Probe? = nil
    public var terminationMessagePath = "/dev/termination-log"
    public var terminationMessagePolicy = "File"
    public var securityContext: ContainerSecurityContext? = nil
    /// Only `Always`, only on init containers: a sidecar (pod-semantics §4).
    public var restartPolicy: String? = nil
    public var resources = ResourceRequirements()
    public var stdin = false
    /// stdin is closed when the first attached client detaches (kubelet/CRI StdinOnce).
    public var stdinOnce = false
    public var tty = false
}

/// `resources`: quantities as written (validated); requests default to limits (API defaulting).
public struct ResourceRequirements: Sendable, Equatable {
    public var limits: [String: String] = [:]
    public var requests: [String: String] = [:]
    public var isEmpty: Bool { limits.isEmpty && requests.isEmpty }
    public init() {}
}

public struct ContainerPort: Sendable, Equatable {
    public var name: String?
    public var containerPort: Int64
    public var hostPort: Int64?
    public var `protocol`: String
}

public struct EnvVarSpec: Sendable, Equatable {
    public var name: String
    public var value: String?
    /// `metadata.name`, `metadata.namespace`, `metadata.uid`, `status.podIP`, ...
    public var fieldRef: String?
}

public struct VolumeMount: Sendable, Equatable {
    public var name: String
    public var mountPath: String
    public var readOnly = false
    public var subPath: String? = nil
    /// None, HostToContainer or Bidirectional.
    public var mountPropagation: String? = nil
}

public struct Volume: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        case emptyDir(medium: String, sizeLimit: Int64?)
        case hostPath(path: String, type: String)
    }

    public var name: String
    public var source: Source
}

public struct Lifecycle: Sendable, Equatable {
    public var postStart: Handler? = nil
    public var preStop: Handler? = nil
    /// lifecycle.stopSignal (Kubernetes 1.33+): wins over the image's STOPSIGNAL.
    public var stopSignal: String? = nil
}

/// A lifecycle hook or probe action.
public enum Handler: Sendable, Equatable {
    case exec(command: [String])
    case httpGet(HTTPGet)
    case tcpSocket(host: String?, port: PortRef)
    case sleep(seconds: Int64)
    case grpc(port: Int64, service: String?)
}

public struct HTTPGet: Sendable, Equatable {
    public var path: String
    public var port: PortRef
    public var host: String?
    public var scheme: String
    public var headers: [(name: String, value: String)]

    public static func == (a: HTTPGet, b: HTTPGet) -> Bool {
        a.path == b.path && a.port == b.port && a.host == b.host && a.scheme == b.scheme
            && a.headers.map { $0.name + ":" + $0.value } == b.headers.map { $0.name + ":" + $0.value }
    }
}

/// A port by number or by the name of a container port.
public enum PortRef: Sendable, Equatable {
    case number(Int64)
    case name(String)
}

public struct Probe: Sendable, Equatable {
    public var handler: Handler
    public var initialDelaySeconds: Int64 = 0
    public var timeoutSeconds: Int64 = 1
    public var periodSeconds: Int64 = 10
    public var successThreshold: Int64 = 1
    public var failureThreshold: Int64 = 3
    public var terminationGracePeriodSeconds: Int64? = nil
}

public struct ContainerSecurityContext: Sendable, Equatable {
    public var runAsUser: Int64? = nil
    public var runAsGroup: Int64? = nil
    public var runAsNonRoot: Bool? = nil
    public var privileged = false
    public var capabilitiesAdd: [String] = []
    public var capabilitiesDrop: [String] = []
    public var readOnlyRootFilesystem = false
    public var allowPrivilegeEscalation: Bool? = nil
    public var seccompProfile: SeccompProfileSpec? = nil
    public var appArmorProfile: SeccompProfileSpec? = nil
    public var procMount: String? = nil
}
