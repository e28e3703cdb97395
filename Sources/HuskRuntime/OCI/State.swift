import HuskSystem

/// The state of a container as the runtime-spec defines it (runtime.md, "State"), plus the
/// fields runc prints (`rootfs`, `created`, `owner`).
public struct OCIState: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable {
        case creating, created, running, stopped, paused
    }

    public var ociVersion: String
    public var id: String
    public var pid: Int32
    public var status: Status
    public var bundle: String
    public var rootfs: String
    public var created: String
    public var owner: String
    public var annotations: [String: String]?

    enum CodingKeys: String, CodingKey {
        case ociVersion, id, pid, status, bundle, rootfs, created, owner, annotations
    }
}
