import HuskJSON
import HuskOptions
import HuskPod
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

// The pods `husk serve` runs for kubelet (CRI sandboxes), for the commands that take a pod:
// ps, logs, exec, attach and inspect find them by name after husk run's own pods, so an
// operator debugging a node reaches both with one tool (as crictl reaches CRI's).

/// A CRI sandbox and its records.
struct CRIPod {
    let client: SandboxClient
    let view: CRISandboxView

    static func all(_ settings: HuskSettings) -> [CRIPod] {
        SandboxClient.ids(settings).compactMap { id in
            let c = SandboxClient(settings: settings, id: id)
            guard let record = try? c.record(), let state = try? c.state(), state.phase != .failed else { return nil }
            return CRIPod(client: c, view: CRISandboxView(record: record, state: state, containers: c.containers()))
        }
    }

    /// The sandbox `ref` names: its CRI name in `namespace`, its id, or a prefix of its id (6
    /// characters at least). Of several attempts with the name, the ready one, else the newest.
    static func find(_ settings: HuskSettings, _ ref: String, namespace: String) -> CRIPod? {
        let found = all(settings).filter { p in
            let m = p.view.record.config.metadata
            return (m.name == ref && m.namespace == namespace) || p.client.id == ref || (ref.count >= 6 && p.client.id.hasPrefix(ref))
        }
        return found.max { a, b in
            (a.view.ready ? 1 : 0, a.view.state.createdAt) < (b.view.ready ? 1 : 0, b.view.state.createdAt)
        }
    }

    /// The containers by name, each name's instances oldest first (CRI attempts).
    var instances: [(name: String, all: [SandboxContainer])] {
        var order: [String] = []
        var by: [String: [SandboxContainer]] = [:]
        for c in view.containers.sorted(by: { $0.createdAt < $1.createdAt }) {
            if by[c.name] == nil { order.append(c.name) }
            by[c.name, default: []].append(c)
        }
        return order.map { ($0, by[$0]!) }
    }

    /// The instance of container `requested` (default: the first container, said on stderr
    /// when there was a choice): the newest, or the one before with `previous`.
    func container(_ requested: String?, previous: Bool = false) throws(HuskError) -> SandboxContainer {
        let named = instances
        guard let first = named.first else {
            throw HuskError(.notFound, "pod \(view.record.config.metadata.name) (CRI sandbox \(client.id.prefix(13))) has no containers")
        }
        let name = requested ?? first.name
        guard let chosen = named.first(where: { $0.name == name }) else {
            throw HuskError(.notFound, "container \(name) is not in pod \(view.record.config.metadata.name): it has \(named.map(\.name).joined(separator: ", "))")
        }
        if requested == nil && named.count > 1 {
            Out.err("Defaulted container \"\(name)\" out of: \(named.map(\.name).joined(separator: ", "))\n")
        }
        if previous {
            guard chosen.all.count > 1 else { throw HuskError(.notFound, "container \(name) has no previous instance") }
            return chosen.all[chosen.all.count - 2]
        }
        return chosen.all[chosen.all.count - 1]
    }
}

/// A pod of either kind.
enum AnyPod {
    case husk(PodView)
    case cri(CRIPod)

    /// husk run's pod `ref`, else husk serve's; not found names husk run's lookup.
    static func find(_ globals: GlobalOptions, _ ref: String, namespace: String) throws -> AnyPod {
        let settings = try globals.settings()
        do {
            return .husk(try PodDirectory.find(settings, ref, namespace: namespace))
        } catch let e where e.code == .notFound {
            if let p = CRIPod.find(settings, ref, namespace: namespace) { return .cri(p) }
            throw e
        }
    }
}

/// `husk logs` of a CRI container: its CRI log file, to the end, or with `follow` until the
/// container has ended.
func criLogs(_ pod: CRIPod, container: String?, follow: Bool, previous: Bool) throws {
    let c = try pod.container(container, previous: previous)
    guard let path = c.config["logPath"]?.stringValue, path != "/dev/null" else {
        throw HuskError(.notFound, "container \(c.name) has no log file (CreateContainer gave no log_path)")
    }
    let follower = LogFollower(prefix: false)
    follower.follow(path, container: c.name)
    guard follow && !previous else { return }
    while true {
        let now = SandboxContainer.all(pod.client.stateDirectory).first { $0.id == c.id }
        follower.follow(path, container: c.name)
        guard let now, now.state == .running || now.state == .created else { return }
        usleep(100_000)
    }
}
