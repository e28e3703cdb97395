import HuskPod

/// What `husk serve` runs with: Husk's settings (the global flags and config file, the same
/// as every husk command's), where to listen, and what to report as the runtime's version.
public struct CRIConfiguration: Sendable {
    public var settings: HuskSettings
    /// The unix socket kubelet and crictl dial (`--listen`).
    public var socketPath: String
    /// Husk's version (`husk --version`): VersionResponse.runtime_version.
    public var runtimeVersion: String

    public static let defaultSocketPath = "/run/husk/cri.sock"

    public init(settings: HuskSettings, socketPath: String = CRIConfiguration.defaultSocketPath, runtimeVersion: String) {
        self.settings = settings
        self.socketPath = socketPath
        self.runtimeVersion = runtimeVersion
    }
}
