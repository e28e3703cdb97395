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
            let pods = PodDirectory.all(try globals.settings())
            if output == .json || output == .yaml {
                let list: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("List"), "items": .array(pods.map(\.object))])
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
            Out.out(Out.table(rows))
        }
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
            let pods = try globals.pods(pod, selector)
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
