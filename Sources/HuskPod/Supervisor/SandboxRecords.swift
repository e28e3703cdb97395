import HuskJSON
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

// What a `husk serve` sandbox keeps on disk, in its state directory (`<state>/pods/<id>`):
// `sandbox.json` (what the daemon asked for), `sandbox-state.json` and `containers/<id>.json`
// (what the sandbox's supervisor did). The daemon answers the list and status calls from
// these files alone, and a new daemon or supervisor goes on from them (DESIGN "CRI mode").

/// `sandbox.json`: the sandbox the daemon asked for.
public struct SandboxRecord: Sendable {
    /// The sandbox id: 64 hex digits, also the name of its directories.
    public var id: String
    public var config: PodSandboxConfig
    public var settings: HuskSettings
    /// The runtime handler asked for ("" is the default).
    public var runtimeHandler: String

    public init(id: String, config: PodSandboxConfig, settings: HuskSettings, runtimeHandler: String = "") {
        self.id = id
        self.config = config
        self.settings = settings
        self.runtimeHandler = runtimeHandler
    }

    public var paths: PodPaths {
        PodPaths(settings: settings, uid: id, namespace: config.metadata.namespace, name: config.metadata.name,
                 cgroupParent: config.cgroupParent)
    }

    public var json: JSONValue {
        .object(["id": .string(id), "config": config.json, "settings": settings.json, "runtimeHandler": .string(runtimeHandler)])
    }

    public static func file(_ stateDirectory: String) -> String { stateDirectory + "/sandbox.json" }

    public static func read(_ stateDirectory: String) throws(HuskError) -> SandboxRecord {
        let doc = try readJSON(file(stateDirectory))
        do {
            let r = JSONReader(doc)
            guard let c = r.child("config"), let s = r.child("settings") else { throw r.error(nil, "config or settings missing") }
            return SandboxRecord(id: try r.string("id"), config: try PodSandboxConfig(json: c), settings: try HuskSettings(json: s),
                                 runtimeHandler: try r.optString("runtimeHandler") ?? "")
        } catch {
            throw HuskError(.invalidArgument, "\(file(stateDirectory)): \(error)")
        }
    }
}

/// `sandbox-state.json`: what became of the sandbox.
public struct SandboxState: Sendable, Equatable {
    public enum Phase: String, Sendable {
        /// RunPodSandbox is under way.
        case creating
        /// pause runs (CRI SANDBOX_READY).
        case ready
        /// Stopped, or pause died (SANDBOX_NOTREADY).
        case notReady = "notready"
        /// RunPodSandbox failed: `error` says why; nothing of it is left.
        case failed
    }
    public var phase = Phase.creating
    public var error: String? = nil
    /// When RunPodSandbox was asked (CRI created_at), RFC 3339 with nanoseconds.
    public var createdAt: String
    public var ip: String? = nil
    public var pausePid: Int32 = 0
    public var pauseStart: UInt64 = 0
    /// StopPodSandbox released the address (CNI DEL succeeded, or there was no network):
    /// RemovePodSandbox need not run DEL again.
    public var networkReleased = false

    public init(createdAt: String) { self.createdAt = createdAt }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "phase": .string(phase.rawValue), "createdAt": .string(createdAt), "pausePid": .number(Double(pausePid)),
            "pauseStart": .number(Double(pauseStart)),
        ]
        if let error { o["error"] = .string(error) }
        if let ip { o["ip"] = .string(ip) }
        if networkReleased { o["networkReleased"] = .bool(true) }
        return .object(o)
    }

    public static func file(_ stateDirectory: String) -> String { stateDirectory + "/sandbox-state.json" }

    public static func read(_ stateDirectory: String) throws(HuskError) -> SandboxState {
        let doc = try readJSON(file(stateDirectory))
        do {
            let r = JSONReader(doc)
            var s = SandboxState(createdAt: try r.string("createdAt"))
            guard let p = Phase(rawValue: try r.string("phase")) else { throw r.error("phase", "unknown phase") }
            s.phase = p
            s.error = try r.optString("error")
            s.ip = try r.optString("ip")
            s.pausePid = Int32(clamping: try r.optInt("pausePid") ?? 0)
            s.pauseStart = UInt64(clamping: try r.optInt("pauseStart") ?? 0)
            s.networkReleased = try r.optBool("networkReleased") ?? false
            return s
        } catch {
            throw HuskError(.invalidArgument, "\(file(stateDirectory)): \(error)")
        }
    }

    func write(_ stateDirectory: String) {
        try? Files.writeAtomically(Self.file(stateDirectory), Array(json.serialized().utf8), mode: 0o600, durable: false)
    }
}

/// `containers/<id>.json`: one container of a sandbox, its config and what became of it
/// (CRI ContainerStatus).
public struct SandboxContainer: Sendable {
    public var id: String
    /// The ContainerConfig as the daemon gave it (`ContainerConfig.json`).
    public var config: JSONValue
    public var state: ContainerRuntimeStatus.State = .created
    public var createdAt: String
    public var startedAt: String? = nil
    public var finishedAt: String? = nil
    public var exitCode: Int32? = nil
    public var reason: String? = nil
    public var message: String? = nil
    public var pid: Int32 = 0
    public var pidStart: UInt64 = 0

    public init(id: String, config: JSONValue, createdAt: String) {
        self.id = id
        self.config = config
        self.createdAt = createdAt
    }

    public var name: String { config["name"]?.stringValue ?? "" }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "id": .string(id), "config": config, "state": .string(Self.name(state)), "createdAt": .string(createdAt),
            "pid": .number(Double(pid)), "pidStart": .number(Double(pidStart)),
        ]
        if let startedAt { o["startedAt"] = .string(startedAt) }
        if let finishedAt { o["finishedAt"] = .string(finishedAt) }
        if let exitCode { o["exitCode"] = .number(Double(exitCode)) }
        if let reason { o["reason"] = .string(reason) }
        if let message { o["message"] = .string(message) }
        return .object(o)
    }

    public static func name(_ s: ContainerRuntimeStatus.State) -> String {
        switch s {
        case .created: return "created"
        case .running: return "running"
        case .exited: return "exited"
        case .unknown: return "unknown"
        }
    }

    public init(json doc: JSONValue) throws(FieldError) {
        let r = JSONReader(doc)
        guard let config = doc["config"] else { throw r.error("config", "is required") }
        self.init(id: try r.string("id"), config: config, createdAt: try r.string("createdAt"))
        switch try r.string("state") {
        case "created": state = .created
        case "running": state = .running
        case "exited": state = .exited
        default: state = .unknown
        }
        startedAt = try r.optString("startedAt")
        finishedAt = try r.optString("finishedAt")
        exitCode = try r.optInt("exitCode").map { Int32(clamping: $0) }
        reason = try r.optString("reason")
        message = try r.optString("message")
        pid = Int32(clamping: try r.optInt("pid") ?? 0)
        pidStart = UInt64(clamping: try r.optInt("pidStart") ?? 0)
    }

    public static func directory(_ stateDirectory: String) -> String { stateDirectory + "/containers" }
    public static func file(_ stateDirectory: String, _ id: String) -> String { directory(stateDirectory) + "/\(id).json" }

    /// Every container record of a sandbox (unreadable ones are left out).
    public static func all(_ stateDirectory: String) -> [SandboxContainer] {
        let dir = directory(stateDirectory)
        return (Files.list(dir) ?? []).sorted().compactMap { name in
            guard name.hasSuffix(".json"), let doc = try? readJSON(dir + "/" + name) else { return nil }
            return try? SandboxContainer(json: doc)
        }
    }

    func write(_ stateDirectory: String) {
        try? Files.writeAtomically(Self.file(stateDirectory, id), Array(json.serialized().utf8), mode: 0o600, durable: false)
    }
}

func readJSON(_ path: String) throws(HuskError) -> JSONValue {
    let bytes: [UInt8]
    do {
        guard let b = try Files.read(path) else { throw HuskError(.notFound, "\(path): no such file") }
        bytes = b
    } catch let e as HuskError {
        throw e
    } catch {
        throw HuskError(.system, "cannot read \(path)", cause: error)
    }
    do {
        return try JSONParser.parse(bytes)
    } catch {
        throw HuskError(.invalidArgument, "\(path): \(error)")
    }
}

/// Parsed container records kept by path while the file's stat stamp (inode, mtime, size) is
/// unchanged: a record is replaced by a rename, so a changed one is a new inode. `husk serve`
/// lists containers from it: a stat per record instead of a read and a parse (ListContainers
/// with 100 containers went from 5.2 ms to well under a millisecond). Nothing is held that is
/// not checked against the disk on every use.
public final class ContainerRecordCache: @unchecked Sendable {  // `entries` under `m`
    private let m = Monitor()
    private var entries: [String: (stamp: [Int], record: SandboxContainer)] = [:]

    public init() {}

    /// `SandboxContainer.all(stateDirectory)`, from the cache where the files did not change.
    public func all(_ stateDirectory: String) -> [SandboxContainer] {
        let dir = SandboxContainer.directory(stateDirectory)
        var out: [SandboxContainer] = []
        var seen: Set<String> = []
        for name in (Files.list(dir) ?? []).sorted() where name.hasSuffix(".json") {
            let path = dir + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            let stamp = [Int(st.st_ino), Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec), Int(st.st_size)]
            seen.insert(path)
            if let e = m.locked({ entries[path] }), e.stamp == stamp {
                out.append(e.record)
                continue
            }
            guard let doc = try? readJSON(path), let c = try? SandboxContainer(json: doc) else { continue }
            m.locked { entries[path] = (stamp, c) }
            out.append(c)
        }
        // Records that are gone leave the cache.
        m.locked {
            for path in entries.keys where path.hasPrefix(dir + "/") && !seen.contains(path) { entries[path] = nil }
        }
        return out
    }

    /// Forgets the sandboxes that are gone.
    public func retain(sandboxes stateDirectories: Set<String>) {
        m.locked {
            entries = entries.filter { path, _ in
                stateDirectories.contains { path.hasPrefix(SandboxContainer.directory($0) + "/") }
            }
        }
    }
}
