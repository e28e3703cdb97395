import ArgumentParser
import HuskJSON
import HuskOptions
import HuskPod
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

struct Pods: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the pods.")

    @OptionGroup var globals: GlobalOptions
    @Option(name: .shortAndLong, help: "table or json (a v1 List of Pod objects).")
    var output: OutputFormat = .table

    func run() throws {
        try runReporting {
            let settings = try globals.settings()
            let pods = PodDirectory.all(settings)
            // Sandboxes of `husk serve` (kubelet's pods over CRI), marked as such.
            let sandboxes = SandboxClient.ids(settings).map { SandboxClient(settings: settings, id: $0) }.compactMap { c -> CRISandboxView? in
                guard let record = try? c.record(), let state = try? c.state(), state.phase != .failed else { return nil }
                return CRISandboxView(record: record, state: state, containers: c.containers())
            }
            if output == .json || output == .yaml {
                let list: JSONValue = .object([
                    "apiVersion": .string("v1"), "kind": .string("List"),
                    "items": .array(pods.map(\.object) + sandboxes.map(\.object)),
                ])
                Out.document(list, as: output)
                return
            }
            var rows = [["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "UID"]]
            for p in pods {
                let apps = p.reported.containers.filter { $0.kind != .initContainer }
                let ready = apps.filter { $0.ready && $0.isRunning }.count
                let restarts = p.state.containers.reduce(0) { $0 + $1.restartCount }
                rows.append([
                    p.pod.metadata.namespace, p.pod.metadata.name, "\(ready)/\(apps.count)", PodPrinter.status(p), String(restarts),
                    PodPrinter.age(p.pod.metadata.creationTimestamp), p.state.podIP ?? "<none>", p.uid,
                ])
            }
            for v in sandboxes {
                let running = v.containers.filter { $0.state == .running }.count
                rows.append([
                    v.record.config.metadata.namespace, v.record.config.metadata.name, "\(running)/\(v.containers.count)",
                    v.status + " (CRI)", "-", PodPrinter.age(v.state.createdAt), v.state.ip.flatMap { $0.isEmpty ? nil : $0 } ?? "<none>",
                    v.record.id,
                ])
            }
            Out.out(Out.table(rows))
        }
    }
}

/// A `husk serve` sandbox as `husk pods` shows it: its CRI metadata and containers.
struct CRISandboxView {
    let record: SandboxRecord
    let state: SandboxState
    let containers: [SandboxContainer]

    var ready: Bool {
        state.phase == .ready && state.pausePid > 0 && ProcessInfo.isAlive(state.pausePid, startTime: state.pauseStart)
    }

    /// Ready or NotReady, as crictl pods says it.
    var status: String { ready ? "Ready" : "NotReady" }

    /// A Pod object with what CRI told: metadata, the sandbox id as an annotation, the
    /// address, and each container's CRI state.
    var object: JSONValue {
        let m = record.config.metadata
        var annotations = record.config.annotations.mapValues { JSONValue.string($0) }
        annotations["husk.io/cri-sandbox-id"] = .string(record.id)
        let statuses: [JSONValue] = containers.map { c in
            var st: [String: JSONValue] = ["name": .string(c.name), "containerID": .string("husk://" + c.id)]
            switch c.state {
            case .running: st["state"] = .object(["running": .object(["startedAt": .string(Clock.seconds(of: c.startedAt ?? c.createdAt))])])
            case .created: st["state"] = .object(["waiting": .object([:])])
            case .exited, .unknown:
                var t: [String: JSONValue] = ["exitCode": .number(Double(c.exitCode ?? 0))]
                if let r = c.reason { t["reason"] = .string(r) }
                st["state"] = .object(["terminated": .object(t)])
            }
            return .object(st)
        }
        return .object([
            "apiVersion": .string("v1"), "kind": .string("Pod"),
            "metadata": .object([
                "name": .string(m.name), "namespace": .string(m.namespace), "uid": .string(m.uid),
                "labels": .object(record.config.labels.mapValues { .string($0) }), "annotations": .object(annotations),
                "creationTimestamp": .string(Clock.seconds(of: state.createdAt)),
            ]),
            "status": .object([
                "phase": .string(ready ? "Running" : "Unknown"), "podIP": state.ip.map { .string($0) } ?? .null,
                "containerStatuses": .array(statuses),
            ]),
        ])
    }
}

/// kubectl's printPod columns.
enum PodPrinter {
    static func status(_ p: PodView) -> String { p.statusColumn }

    /// kubectl's AGE: 5s, 3m, 2h, 4d.
    static func age(_ timestamp: String?) -> String {
        guard let t = timestamp, let then = parseRFC3339(t) else { return "<unknown>" }
        let secs = max(0, Clock.now().sec - then)
        if secs < 120 { return "\(secs)s" }
        if secs < 7200 { return "\(secs / 60)m" }
        if secs < 172_800 { return "\(secs / 3600)h" }
        return "\(secs / 86400)d"
    }

    /// Seconds since the epoch of `2026-11-23T14:10:18Z` (fraction ignored).
    static func parseRFC3339(_ s: String) -> Int? {
        let u = Array(s.utf8)
        guard u.count >= 20 else { return nil }
        func num(_ a: Int, _ b: Int) -> Int? { Int(String(decoding: u[a..<b], as: UTF8.self)) }
        guard let y = num(0, 4), let mo = num(5, 7), let d = num(8, 10), let h = num(11, 13), let mi = num(14, 16),
              let se = num(17, 19) else { return nil }
        var tm = tm()
        tm.tm_year = Int32(y - 1900)
        tm.tm_mon = Int32(mo - 1)
        tm.tm_mday = Int32(d)
        tm.tm_hour = Int32(h)
        tm.tm_min = Int32(mi)
        tm.tm_sec = Int32(se)
        return Int(timegm(&tm))
    }
}

struct PS: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers (as crictl ps does).")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Flag(name: .shortAndLong, help: "Show every container instance, not only running ones.")
    var all = false
    @Option(name: .shortAndLong, help: "table or json (crictl's ListContainers shape).")
    var output: OutputFormat = .table
    @Argument(help: "Only this pod (name or UID).")
    var pod: String?

    func run() throws {
        try runReporting {
            var pods: [PodView] = []
            var cri: [CRIPod] = []
            if let pod {
                switch try AnyPod.find(globals, pod, namespace: selector.namespace) {
                case .husk(let v): pods = [v]
                case .cri(let p): cri = [p]
                }
            } else {
                pods = try globals.pods(nil, selector)
                cri = CRIPod.all(try globals.settings())
            }
            // husk serve's containers, as CRI reports them.
            let criItems = cri.flatMap { p in
                p.view.containers.filter { all || $0.state == .running }.sorted { $0.createdAt < $1.createdAt }.map { (p, $0) }
            }
            var items: [(PodView, ContainerState, Instance)] = []
            for p in pods {
                for c in p.state.containers {
                    for inst in c.instances where all || (inst.state == .running && p.supervisorAlive) {
                        items.append((p, c, inst))
                    }
                }
            }
            if output != .table {
                let list: JSONValue = .object(["containers": .array(items.map { p, c, i in
                    .object([
                        "id": .string(i.id), "podSandboxId": .string(p.uid),
                        "metadata": .object(["name": .string(c.name), "attempt": .number(Double(i.attempt))]),
                        "image": .object(["image": .string(c.image)]), "imageRef": .string(c.imageID),
                        "state": .string(PS.criState(i, p)), "createdAt": .string(i.createdAt),
                        "labels": PS.labels(p, c),
                        "pid": .number(Double(i.pid)), "logPath": .string(i.logPath),
                    ])
                } + criItems.map { p, c in
                    .object([
                        "id": .string(c.id), "podSandboxId": .string(p.client.id),
                        "metadata": .object(["name": .string(c.name), "attempt": .number(Double(criAttempt(c)))]),
                        "image": .object(["image": .string(c.config["criImage"]?.stringValue ?? "")]),
                        "imageRef": .string(c.config["criImageRef"]?.stringValue ?? ""),
                        "state": .string("CONTAINER_" + SandboxContainer.name(c.state).uppercased()),
                        "createdAt": .string(c.createdAt), "labels": c.config["labels"] ?? .object([:]),
                        "pid": .number(Double(c.pid)), "logPath": .string(c.config["logPath"]?.stringValue ?? ""),
                    ])
                })])
                Out.document(list, as: output)
                return
            }
            var rows = [["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"]]
            for (p, c, i) in items {
                rows.append([
                    String(i.id.prefix(13)), c.image, PodPrinter.age(i.createdAt) + " ago", PS.criState(i, p).replacingPrefix("CONTAINER_", ""),
                    c.name, String(i.attempt), String(p.uid.prefix(13)), p.pod.metadata.name,
                ])
            }
            for (p, c) in criItems {
                rows.append([
                    String(c.id.prefix(13)), c.config["criImage"]?.stringValue ?? "", PodPrinter.age(c.createdAt) + " ago",
                    criStateColumn(c), c.name, String(criAttempt(c)),
                    String(p.client.id.prefix(13)), p.view.record.config.metadata.name + " (CRI)",
                ])
            }
            Out.out(Out.table(rows))
        }
    }

    /// The labels CRI puts on a container.
    static func labels(_ p: PodView, _ c: ContainerState) -> JSONValue {
        .object([
            "io.kubernetes.container.name": .string(c.name), "io.kubernetes.pod.name": .string(p.pod.metadata.name),
            "io.kubernetes.pod.namespace": .string(p.pod.metadata.namespace), "io.kubernetes.pod.uid": .string(p.uid),
        ])
    }

    static func criState(_ i: Instance, _ p: PodView) -> String {
        switch i.state {
        case .created: return "CONTAINER_CREATED"
        case .running: return p.supervisorAlive ? "CONTAINER_RUNNING" : "CONTAINER_UNKNOWN"
        case .exited: return "CONTAINER_EXITED"
        }
    }
}

extension String {
    func replacingPrefix(_ prefix: String, _ with: String) -> String {
        hasPrefix(prefix) ? with + dropFirst(prefix.count) : self
    }
}

// MARK: - inspect, events

struct Inspect: PodCommand {
    static let configuration = CommandConfiguration(abstract: "Show a pod as a Kubernetes Pod object (metadata, spec, status).")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var target: PodArgument
    @Option(name: .shortAndLong, help: "json or yaml.")
    var output: OutputFormat = .json

    func run() throws {
        try runReporting {
            switch try AnyPod.find(globals, target.pod, namespace: target.namespace) {
            case .husk(let v): try run(pod: v)
            case .cri(let p): Out.document(p.view.object, as: output)
            }
        }
    }

    func run(pod v: PodView) throws {
        Out.document(v.object, as: output)
    }
}

struct Events: PodCommand {
    static let configuration = CommandConfiguration(abstract: "Show a pod's events (Kubernetes core/v1 Events, oldest first).")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var target: PodArgument
    @Option(name: .shortAndLong, help: "table or json (a v1 EventList).")
    var output: OutputFormat = .table

    func run(pod v: PodView) throws {
        let events = PodDirectory.events(v)
        if output != .table {
            let list: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("EventList"), "items": .array(events)])
            Out.document(list, as: output)
            return
        }
        var rows = [["TIME", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
        for e in events {
            let object = e["involvedObject"]?["fieldPath"]?.stringValue ?? "pod/\(v.pod.metadata.name)"
            rows.append([
                e["eventTime"]?.stringValue ?? "", e["type"]?.stringValue ?? "", e["reason"]?.stringValue ?? "", object,
                e["message"]?.stringValue ?? "",
            ])
        }
        Out.out(Out.table(rows))
    }
}

/// A CRI container's attempt (its restart count, as kubelet numbers them).
func criAttempt(_ c: SandboxContainer) -> Int {
    if case .number(let n)? = c.config["attempt"] { return Int(n) }
    return 0
}

/// crictl ps's STATE column: Running, Exited, Created, Unknown.
func criStateColumn(_ c: SandboxContainer) -> String {
    let s = SandboxContainer.name(c.state)
    return s.prefix(1).uppercased() + s.dropFirst()
}
