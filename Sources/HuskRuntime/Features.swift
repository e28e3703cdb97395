import HuskSystem

/// What this runtime supports, in the shape of runtime-spec features.md (`husk-runc features`).
/// Only what Husk really implements is listed.
public struct Features: Codable, Sendable {
    public struct Linux: Codable, Sendable {
        public struct Cgroup: Codable, Sendable {
            public var v1: Bool
            public var v2: Bool
            public var systemd: Bool
            public var systemdUser: Bool
            public var rdma: Bool
        }
        public struct SeccompFeatures: Codable, Sendable {
            public var enabled: Bool
            public var actions: [String]
            public var operators: [String]
            public var archs: [String]
            public var knownFlags: [String]
            public var supportedFlags: [String]
        }
        public struct Enabled: Codable, Sendable {
            public var enabled: Bool
        }
        public struct MountExtensions: Codable, Sendable {
            public var idmap: Enabled
        }

        public var namespaces: [String]
        public var capabilities: [String]
        public var cgroup: Cgroup
        public var seccomp: SeccompFeatures
        public var apparmor: Enabled
        public var selinux: Enabled
        public var intelRdt: Enabled
        public var mountExtensions: MountExtensions
    }

    public var ociVersionMin: String
    public var ociVersionMax: String
    public var hooks: [String]
    public var mountOptions: [String]
    public var linux: Linux
    public var annotations: [String: String]

    public static func current() -> Features {
        let flagNames = SeccompProfile.flagValues.keys.sorted()
        let supported = flagNames.filter(SeccompProfile.isFlagSupported)
        let actions = SeccompProfile.actions.subtracting(["SCMP_ACT_NOTIFY"]).sorted()
        let mountOptions =
            MountOptions.flagTable.keys.sorted() + MountOptions.propagation.keys.sorted() + ["bind", "rbind", "rro", "remount", "idmap", "ridmap"]
        return Features(
            ociVersionMin: "1.0.0", ociVersionMax: Spec.version,
            hooks: ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"], mountOptions: mountOptions,
            linux: Linux(
                namespaces: ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
                capabilities: Array(Capabilities.names.prefix(Capabilities.lastCap + 1)),
                cgroup: .init(v1: false, v2: true, systemd: false, systemdUser: false, rdma: false),
                seccomp: .init(
                    enabled: true, actions: actions, operators: SeccompProfile.operators.keys.sorted(),
                    archs: SeccompProfile.architectures.keys.sorted(), knownFlags: flagNames, supportedFlags: supported),
                apparmor: .init(enabled: AppArmor.isEnabled), selinux: .init(enabled: false), intelRdt: .init(enabled: false),
                mountExtensions: .init(idmap: .init(enabled: true))),
            annotations: ["io.husk.version": "0.1.0", "io.github.seccomp.libseccomp.version": "2.5"])
    }
}
