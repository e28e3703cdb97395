import HuskJSON
import HuskSystem

/// The parts of the OCI runtime-spec 1.x `config.json` that Husk honours. Fields Husk does not
/// model are kept in `RuntimeBundle.raw` and survive a round trip (`RuntimeBundle.encoded()`).
public struct Spec: Codable, Sendable, Equatable {
    public var ociVersion: String
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var domainname: String?
    public var mounts: [Mount]?
    public var hooks: Hooks?
    public var annotations: [String: String]?
    public var linux: Linux?

    public init(ociVersion: String = Spec.version) {
        self.ociVersion = ociVersion
    }

    /// The runtime-spec version Husk writes and implements.
    public static let version = "1.2.0"

    public struct Process: Codable, Sendable, Equatable {
        public var terminal: Bool?
        public var consoleSize: ConsoleSize?
        public var user: User
        public var args: [String]?
        public var commandLine: String?
        public var env: [String]?
        public var cwd: String
        public var capabilities: CapabilitySet?
        public var rlimits: [Rlimit]?
        public var noNewPrivileges: Bool?
        public var apparmorProfile: String?
        public var oomScoreAdj: Int?
        public var selinuxLabel: String?
        public var ioPriority: JSONValue?
        public var scheduler: JSONValue?
        public var execCPUAffinity: JSONValue?

        public init(user: User = User(), args: [String], env: [String]? = nil, cwd: String = "/") {
            self.user = user
            self.args = args
            self.env = env
            self.cwd = cwd
        }
    }

    public struct ConsoleSize: Codable, Sendable, Equatable {
        public var height: UInt32
        public var width: UInt32

        public init(height: UInt32, width: UInt32) {
            self.height = height
            self.width = width
        }
    }

    public struct User: Codable, Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32
        public var umask: UInt32?
        public var additionalGids: [UInt32]?
        public var username: String?

        public init(uid: UInt32 = 0, gid: UInt32 = 0, additionalGids: [UInt32]? = nil) {
            self.uid = uid
            self.gid = gid
            self.additionalGids = additionalGids
        }
    }

    public struct CapabilitySet: Codable, Sendable, Equatable {
        public var bounding: [String]?
        public var effective: [String]?
        public var inheritable: [String]?
        public var permitted: [String]?
        public var ambient: [String]?

        public init(
            bounding: [String]? = nil, effective: [String]? = nil, inheritable: [String]? = nil,
            permitted: [String]? = nil, ambient: [String]? = nil
        ) {
            self.bounding = bounding
            self.effective = effective
            self.inheritable = inheritable
            self.permitted = permitted
            self.ambient = ambient
        }
    }

    public struct Rlimit: Codable, Sendable, Equatable {
        public var type: String
        public var hard: UInt64
        public var soft: UInt64

        public init(type: String, hard: UInt64, soft: UInt64) {
            self.type = type
            self.hard = hard
            self.soft = soft
        }
    }

    public struct Root: Codable, Sendable, Equatable {
        public var path: String
        public var readonly: Bool?

        public init(path: String, readonly: Bool? = nil) {
            self.path = path
            self.readonly = readonly
        }
    }

    public struct Mount: Codable, Sendable, Equatable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String]?
        public var uidMappings: [IDMapping]?
        public var gidMappings: [IDMapping]?

        public init(destination: String, type: String? = nil, source: String? = nil, options: [String]? = nil) {
            self.destination = destination
            self.type = type
            self.source = source
            self.options = options
        }
    }

    public struct Linux: Codable, Sendable, Equatable {
        public var namespaces: [Namespace]?
        public var uidMappings: [IDMapping]?
        public var gidMappings: [IDMapping]?
        public var timeOffsets: JSONValue?
        public var devices: [Device]?
        public var cgroupsPath: String?
        public var resources: Resources?
        public var rootfsPropagation: String?
        public var seccomp: Seccomp?
        public var sysctl: [String: String]?
        public var maskedPaths: [String]?
        public var readonlyPaths: [String]?
        public var mountLabel: String?
        public var intelRdt: JSONValue?
        public var personality: JSONValue?
        /// runtime-spec 1.3: network devices moved into the container; a NUMA memory policy.
        public var netDevices: JSONValue?
        public var memoryPolicy: JSONValue?

        public init() {}
    }

    /// One line of a user namespace's uid_map or gid_map.
    public struct IDMapping: Codable, Sendable, Equatable {
        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32

        public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
            self.containerID = containerID
            self.hostID = hostID
            self.size = size
        }

        /// The maps as /proc/PID/uid_map takes them: "inside outside count" lines.
        public static func mapText(_ maps: [IDMapping]) -> String {
            maps.map { "\($0.containerID) \($0.hostID) \($0.size)\n" }.joined()
        }
    }

    public struct Namespace: Codable, Sendable, Equatable {
        public var type: String
        public var path: String?

        public init(type: String, path: String? = nil) {
            self.type = type
            self.path = path
        }
    }

    public struct Device: Codable, Sendable, Equatable {
        public var type: String
        public var path: String
        public var major: Int64?
        public var minor: Int64?
        public var fileMode: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?

        public init(type: String, path: String, major: Int64?, minor: Int64?, fileMode: UInt32? = nil) {
            self.type = type
            self.path = path
            self.major = major
            self.minor = minor
            self.fileMode = fileMode
        }
    }

    /// runtime-spec config.md "POSIX-platform Hooks".
    public struct Hooks: Codable, Sendable, Equatable {
        public var prestart: [Hook]?
        public var createRuntime: [Hook]?
        public var createContainer: [Hook]?
        public var startContainer: [Hook]?
        public var poststart: [Hook]?
        public var poststop: [Hook]?

        public init() {}

        /// Every hook list with its name, in lifecycle order.
        public var all: [(name: String, hooks: [Hook])] {
            [("prestart", prestart ?? []), ("createRuntime", createRuntime ?? []), ("createContainer", createContainer ?? []),
             ("startContainer", startContainer ?? []), ("poststart", poststart ?? []), ("poststop", poststop ?? [])]
        }

        public var isEmpty: Bool { all.allSatisfy { $0.hooks.isEmpty } }
    }

    public struct Hook: Codable, Sendable, Equatable {
        public var path: String
        public var args: [String]?
        public var env: [String]?
        public var timeout: Int?

        public init(path: String, args: [String]? = nil, env: [String]? = nil, timeout: Int? = nil) {
            self.path = path
            self.args = args
            self.env = env
            self.timeout = timeout
        }

        var plan: SpawnPlan.Hook { SpawnPlan.Hook(path: path, args: args ?? [], env: env ?? [], timeout: timeout ?? 0) }
    }

    public struct Resources: Codable, Sendable, Equatable {
        public var devices: [DeviceRule]?
        public var memory: Memory?
        public var cpu: CPU?
        public var pids: Pids?
        public var blockIO: BlockIO?
        public var hugepageLimits: [HugepageLimit]?
        public var network: JSONValue?
        public var rdma: [String: RDMA]?
        public var unified: [String: String]?

        public init() {}

        public struct Memory: Codable, Sendable, Equatable {
            public var limit: Int64?
            public var reservation: Int64?
            public var swap: Int64?
            public var kernel: Int64?
            public var kernelTCP: Int64?
            public var swappiness: UInt64?
            public var disableOOMKiller: Bool?
            public var useHierarchy: Bool?
            public var checkBeforeUpdate: Bool?
            public init() {}
        }

        public struct CPU: Codable, Sendable, Equatable {
            public var shares: UInt64?
            public var quota: Int64?
            public var burst: UInt64?
            public var period: UInt64?
            public var realtimeRuntime: Int64?
            public var realtimePeriod: UInt64?
            public var cpus: String?
            public var mems: String?
            public var idle: Int64?
            public init() {}
        }

        public struct Pids: Codable, Sendable, Equatable {
            public var limit: Int64?
            public init() {}
        }

        public struct BlockIO: Codable, Sendable, Equatable {
            public struct WeightDevice: Codable, Sendable, Equatable {
                public var major: Int64
                public var minor: Int64
                public var weight: UInt16?
                public var leafWeight: UInt16?
            }
            public struct ThrottleDevice: Codable, Sendable, Equatable {
                public var major: Int64
                public var minor: Int64
                public var rate: UInt64

                public init(major: Int64, minor: Int64, rate: UInt64) {
                    self.major = major
                    self.minor = minor
                    self.rate = rate
                }
            }
            public var weight: UInt16?
            public var leafWeight: UInt16?
            public var weightDevice: [WeightDevice]?
            public var throttleReadBpsDevice: [ThrottleDevice]?
            public var throttleWriteBpsDevice: [ThrottleDevice]?
            public var throttleReadIOPSDevice: [ThrottleDevice]?
            public var throttleWriteIOPSDevice: [ThrottleDevice]?
            public init() {}
        }

        public struct HugepageLimit: Codable, Sendable, Equatable {
            public var pageSize: String
            public var limit: UInt64

            public init(pageSize: String, limit: UInt64) {
                self.pageSize = pageSize
                self.limit = limit
            }
        }

        public struct RDMA: Codable, Sendable, Equatable {
            public var hcaHandles: UInt32?
            public var hcaObjects: UInt32?

            public init(hcaHandles: UInt32? = nil, hcaObjects: UInt32? = nil) {
                self.hcaHandles = hcaHandles
                self.hcaObjects = hcaObjects
            }
        }
    }

    public struct DeviceRule: Codable, Sendable, Equatable {
        public var allow: Bool
        public var type: String?
        public var major: Int64?
        public var minor: Int64?
        public var access: String?

        public init(allow: Bool, type: String? = nil, major: Int64? = nil, minor: Int64? = nil, access: String? = nil) {
            self.allow = allow
            self.type = type
            self.major = major
            self.minor = minor
            self.access = access
        }
    }

    public struct Seccomp: Codable, Sendable, Equatable {
        public var defaultAction: String
        public var defaultErrnoRet: UInt32?
        public var architectures: [String]?
        public var flags: [String]?
        public var listenerPath: String?
        public var listenerMetadata: String?
        public var syscalls: [Syscall]?

        public init(defaultAction: String, syscalls: [Syscall]? = nil) {
            self.defaultAction = defaultAction
            self.syscalls = syscalls
        }
    }

    public struct Syscall: Codable, Sendable, Equatable {
        public var names: [String]
        public var action: String
        public var errnoRet: UInt32?
        public var args: [SeccompArg]?

        public init(names: [String], action: String, errnoRet: UInt32? = nil, args: [SeccompArg]? = nil) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
        }
    }

    public struct SeccompArg: Codable, Sendable, Equatable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64?
        public var op: String

        public init(index: UInt32, value: UInt64, valueTwo: UInt64? = nil, op: String) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }
    }
}
