import FoundationEssentials
import HuskJSON
import HuskSystem

/// What Husk keeps on disk for one container: `<root>/<id>/state.json` (0600 in a 0700
/// directory). The OCI state is computed from it and from the live process.
public struct ContainerRecord: Codable, Sendable, Equatable {
    public enum Phase: String, Codable, Sendable {
        /// Set up is under way; no process may exist yet.
        case creating
        /// The process reached its start gate (it may have been started since).
        case created
    }

    public var ociVersion: String
    public var id: String
    public var phase: Phase
    public var pid: Int32
    /// Start time of the process (clock ticks, /proc/<pid>/stat field 22): guards against a
    /// recycled pid.
    public var pidStartTime: UInt64
    public var bundle: String
    public var rootfs: String
    public var created: String
    public var owner: String
    public var annotations: [String: String]?
    public var cgroupMount: String?
    public var cgroupPath: String?
    /// Cgroup directories (inside the hierarchy) this container created, outermost first.
    public var cgroupCreated: [String]
    /// Without a mount namespace of its own: the id of the rootfs's bind in the runtime's mount
    /// namespace (at `rootfs`), unmounted at delete.
    public var hostRootMount: Int? = nil

    /// Whether an empty ancestor of the container's cgroup may be removed with it: the ones it
    /// created, and anything inside Husk's own subtree (/husk).
    public func mayPrune(_ path: String) -> Bool {
        cgroupCreated.contains(path) || path == "/husk" || path.hasPrefix("/husk/")
    }

    /// The record as JSON, written by hand: it is saved twice per create, on the hot path, and
    /// JSONEncoder's first use costs more than the rest of the write (measured with perf).
    /// `JSONDecoder` reads it back (`CodingKeys` are the property names).
    func json() -> String {
        var m: [(String, String)] = [
            ("ociVersion", JSONText.string(ociVersion)), ("id", JSONText.string(id)),
            ("phase", JSONText.string(phase.rawValue)), ("pid", "\(pid)"), ("pidStartTime", "\(pidStartTime)"),
            ("bundle", JSONText.string(bundle)), ("rootfs", JSONText.string(rootfs)), ("created", JSONText.string(created)),
            ("owner", JSONText.string(owner)),
        ]
        if let a = annotations { m.append(("annotations", JSONText.stringMap(a))) }
        if let c = cgroupMount { m.append(("cgroupMount", JSONText.string(c))) }
        if let c = cgroupPath { m.append(("cgroupPath", JSONText.string(c))) }
        m.append(("cgroupCreated", JSONText.array(cgroupCreated.map(JSONText.string))))
        if let h = hostRootMount { m.append(("hostRootMount", "\(h)")) }
        return JSONText.object(m)
    }

    public var cgroup: Cgroup2Group? {
        guard let m = cgroupMount, let p = cgroupPath else { return nil }
        return Cgroup2Mount(path: m).group(p)
    }
}

/// The directory holding the state of every container of one runtime root (`--root`).
public struct RuntimeRoot: Sendable {
    public let path: String

    public init(_ path: String) {
        self.path = Files.absolute(path)
    }

    public func directory(of id: String) -> String { path + "/" + id }

    /// Creates the root (0700) when it does not exist.
    public func ensure() throws(HuskError) {
        do {
            let created = try Files.makeDirectories(path, mode: 0o700)
            if created.contains(path) { chmod(path, 0o700) }
        } catch {
            throw HuskError(.system, "cannot create the runtime root \(path)", cause: error)
        }
    }

    /// Ids of the containers that have a state file, sorted.
    public func ids() -> [String] {
        (Files.list(path) ?? []).filter { Files.exists(directory(of: $0) + "/state.json") }.sorted()
    }

    public func loadRecord(_ id: String) throws(HuskError) -> ContainerRecord {
        guard Container.isValidID(id) else { throw HuskError(.invalidArgument, "invalid container ID format: \"\(id)\"") }
        let file = directory(of: id) + "/state.json"
        let bytes: [UInt8]?
        do {
            bytes = try Files.read(file)
        } catch {
            throw HuskError(.system, "cannot read the state of container \(id)", cause: error)
        }
        guard let bytes else { throw HuskError(.notFound, "container does not exist: \(id)") }
        do {
            return try JSONDecoder().decode(ContainerRecord.self, from: Data(bytes))
        } catch {
            throw HuskError(.internalError, "\(file): \(JSONPath.describe(error))")
        }
    }

    public func saveRecord(_ record: ContainerRecord) throws(HuskError) {
        do {
            try Files.writeAtomically(directory(of: record.id) + "/state.json", Array(record.json().utf8), mode: 0o600, durable: false)
        } catch {
            throw HuskError(.system, "cannot save the state of container \(record.id)", cause: error)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
