import HuskPod

#if canImport(Glibc)
import Glibc
#endif

/// What `husk serve` runs with: Husk's settings (the global flags and config file, the same
/// as every husk command's), where to listen, and what to report as the runtime's version.
public struct CRIConfiguration: Sendable {
    public var settings: HuskSettings
    /// The unix socket kubelet and crictl dial (`--listen`).
    public var socketPath: String
    /// Husk's version (`husk --version`): VersionResponse.runtime_version.
    public var runtimeVersion: String
    /// How a sandbox's supervisor is started: `husk supervise` (the husk binary beside
    /// husk-serve), with the sandbox's state directory added.
    public var supervisorCommand: [String]
    /// Where the streaming server for Exec, Attach and PortForward listens (`--stream-address`,
    /// host:port; port 0 picks a free one, as containerd's default does).
    public var streamAddress = CRIConfiguration.defaultStreamAddress
    /// A streaming connection with no data either way for this long is closed
    /// (`--stream-idle-timeout`, seconds; containerd's stream_idle_timeout, 4 h).
    public var streamIdleTimeout: Double = 4 * 3600
    /// Where a sandbox's `cgroup_parent` may be (`--allow-cgroup-parent`, besides Husk's own
    /// `/husk`): kubelet's pod groups under its cgroupfs root, `/kubepods` by default.
    public var cgroupParentRoots = ["/kubepods"]

    public static let defaultSocketPath = "/run/husk/cri.sock"
    public static let defaultStreamAddress = "127.0.0.1:0"

    public init(settings: HuskSettings, socketPath: String = CRIConfiguration.defaultSocketPath, runtimeVersion: String) {
        self.settings = settings
        self.socketPath = socketPath
        self.runtimeVersion = runtimeVersion
        supervisorCommand = [CRIConfiguration.siblingExecutable("husk"), "supervise"]
    }

    /// `name` in the directory of the running executable.
    public static func siblingExecutable(_ name: String) -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return name }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)]) + "/" + name
    }
}
