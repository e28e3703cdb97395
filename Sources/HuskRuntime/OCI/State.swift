import HuskJSON
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

extension OCIState {
    /// The JSON runc prints: keys in runc's order (`ociVersion, id, pid, status, bundle,
    /// rootfs, created, annotations, owner`), annotations left out when empty.
    public func json(indent: Int? = 2) -> String {
        var m: [(String, String)] = [
            ("ociVersion", JSONText.string(ociVersion)), ("id", JSONText.string(id)), ("pid", "\(pid)"),
            ("status", JSONText.string(status.rawValue)), ("bundle", JSONText.string(bundle)),
            ("rootfs", JSONText.string(rootfs)), ("created", JSONText.string(created)),
        ]
        if let a = annotations, !a.isEmpty { m.append(("annotations", JSONText.stringMap(a, indent: indent, level: 1))) }
        m.append(("owner", JSONText.string(owner)))
        return JSONText.object(m, indent: indent)
    }
}
