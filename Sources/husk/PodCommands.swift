import ArgumentParser
import HuskImage
import HuskJSON
import HuskPod
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// Which pod a command is about: a name in a namespace, or a UID.
struct PodSelector: ParsableArguments {
    @Option(name: .shortAndLong, help: "The pod's namespace.")
    var namespace: String = "default"
}

extension GlobalOptions {
    func findPod(_ ref: String, _ selector: PodSelector) throws -> PodView {
        try PodDirectory.find(try settings(), ref, namespace: selector.namespace)
    }
}

/// The executable of this process.
func selfExecutable() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
}

/// How a pod's supervisor is started: `husk supervise STATE_DIR`.
func supervisorCommand() -> [String] {
    [selfExecutable(), "supervise"]
}

// MARK: - run

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a pod from a Kubernetes Pod manifest (YAML or JSON).",
        discussion: """
            In the foreground the containers' output is streamed and SIGINT/SIGTERM stop the pod \
            gracefully; the exit status is 0 when the pod Succeeded and 1 when it Failed. With -d \
            the pod's UID is printed and husk returns once every container has started (0), the \
            pod failed (1), or a container is stuck waiting on an error (2, the reason on stderr). \
            The pod's supervisor keeps running it either way.
            """)

    @OptionGroup var globals: GlobalOptions
    @Flag(name: .shortAndLong, help: "Detach: print the pod's UID and return once every container has started.")
    var detach = false
    @Argument(help: "The Pod manifest.")
    var manifest: String

    func run() throws {
        try runReporting {
            let (pod, warnings) = try PodManifest.load(manifest)
            for w in warnings { Out.err("Warning: \(w)\n") }
            let settings = try globals.settings()
            // Everything that can be checked is checked before anything is created.
            for s in settings.imageSources { _ = try LayoutSource.parse(s) }
            guard let mount = (try? Cgroup2Mount.discover()) ?? nil else {
                throw HuskError(.unsupported, "no cgroup2 hierarchy is mounted (see /proc/self/mountinfo): Husk puts every container in one")
            }
            // Limits the host cannot enforce (a controller missing from Husk's cgroup2
            // subtree): refused, or with --ignore-missing-controllers a warning each.
            let available = CgroupResources.available(mount)
            let missing = CgroupResources.missing(pod, available: available, pidsLimit: settings.pidsLimit(for: pod), memoryQoS: settings.memoryQoS)
            if !missing.isEmpty {
                let offered = available.isEmpty ? "none" : available.sorted().joined(separator: " ")
                let lines = missing.map {
                    "\($0.field!): \($0.file) needs the cgroup v2 controller \"\($0.controller)\", which the cgroup2 hierarchy at \(mount.path) does not give Husk (it offers: \(offered))"
                }
                if !settings.ignoreMissingControllers {
                    throw HuskError(
                        .unsupported,
                        "pod \(pod.metadata.namespace)/\(pod.metadata.name) asks for limits this host cannot enforce, so nothing was started:\n  "
                            + lines.joined(separator: "\n  ")
                            + "\nRun it where those controllers are enabled for Husk's subtree (cgroup.subtree_control above \(mount.path)/husk), or pass --ignore-missing-controllers to run it without them")
                }
                for l in lines { Out.err("Warning: \(l); it is not enforced (--ignore-missing-controllers)\n") }
            }
            // Signals are read from a signalfd from before the supervisor exists.
            let sfd = detach ? nil : (try? SignalFD([SIGINT, SIGTERM]))
            let (view, supervisor) = try PodDirectory.launch(pod, settings: settings, supervisor: supervisorCommand())
            if detach {
                throw ExitCode(detached(view))
            } else {
                throw ExitCode(foreground(view, supervisor, sfd))
            }
        }
    }

    func detached(_ view: PodView) -> Int32 {
        Out.out(view.uid + "\n")
        let v = PodDirectory.wait(view) { $0.isSettled }
        if v.state.phase == .failed {
            Out.err("husk: pod \(v.qualifiedName) failed\(v.failureDetail)\n")
            return 1
        }
        if v.state.phase == .succeeded || v.allStarted { return 0 }
        if !v.supervisorAlive {
            Out.err("husk: the supervisor of pod \(v.qualifiedName) exited; see \(v.paths.supervisorLog)\n")
            return 1
        }
        if let (c, reason, message) = v.stuck {
            Out.err("husk: pod \(v.qualifiedName): container \(c) is waiting: \(reason.rawValue): \(message)\n")
            return 2
        }
        if let e = v.state.sandboxError {
            Out.err("husk: pod \(v.qualifiedName): \(e)\n")
            return 2
        }
        return 0
    }

    func foreground(_ view: PodView, _ supervisor: SpawnedProcess, _ sfd: SignalFD?) -> Int32 {
        let tail = LogFollower(prefix: view.pod.spec.initContainers.count + view.pod.spec.containers.count > 1)
        var v = view
        var stops = 0
        while true {
            tail.poll(v)
            if v.state.finished { break }
            if !v.supervisorAlive && supervisor.pidfd.waitForExit(timeout: 0) {
                tail.poll(v)
                Out.err("husk: the supervisor of pod \(v.qualifiedName) exited before the pod finished; see \(v.paths.supervisorLog)\n")
                return 1
            }
            var p = pollfd(fd: sfd?.fd.raw ?? -1, events: Int16(POLLIN), revents: 0)
            if let sfd, poll(&p, 1, 20) > 0 {
                while sfd.next() != nil {
                    stops += 1
                    // A second signal: stop without waiting for the grace period (2 s floor).
                    try? PodClient(v).stop(grace: stops > 1 ? 0 : nil)
                }
            } else if sfd == nil {
                usleep(20_000)
            }
            if let fresh = PodDirectory.read(v.settings, uid: v.uid) { v = fresh }
        }
        _ = supervisor.pidfd.waitForExit(timeout: 30)
        _ = try? supervisor.pidfd.wait()
        tail.poll(v)
        return v.state.phase == .succeeded ? 0 : 1
    }
}

/// Follows the log files of a pod's container instances and copies new complete records to
/// stdout/stderr.
final class LogFollower {
    let prefix: Bool
    var offsets: [String: Int] = [:]

    init(prefix: Bool) { self.prefix = prefix }

    func poll(_ v: PodView) {
        for c in v.state.containers {
            for inst in c.instances {
                follow(inst.logPath, container: c.name)
            }
        }
    }

    func follow(_ path: String, container: String) {
        let offset = offsets[path] ?? 0
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        var at = off_t(offset)
        while true {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, at) }
            if n <= 0 { break }
            bytes += buf[0..<n]
            at += off_t(n)
        }
        guard !bytes.isEmpty else { return }
        let (lines, consumed) = CRILogReader.parse(bytes)
        offsets[path] = offset + consumed
        for l in lines {
            let text = (prefix ? Array("[\(container)] ".utf8) : []) + l.content
            let fd: Int32 = l.stream == "stderr" ? 2 : 1
            var done = 0
            while done < text.count {
                let n = text.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
                if n <= 0 { break }
                done += n
            }
        }
    }
}

// MARK: - pods, ps

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
                Out.out(output == .json ? list.serialized(indent: 2) + "\n" : YAMLText.render(list))
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
            let settings = try globals.settings()
            let pods = try pod.map { [try PodDirectory.find(settings, $0, namespace: selector.namespace)] } ?? PodDirectory.all(settings)
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
                        "labels": .object([
                            "io.kubernetes.container.name": .string(c.name), "io.kubernetes.pod.name": .string(p.pod.metadata.name),
                            "io.kubernetes.pod.namespace": .string(p.pod.metadata.namespace), "io.kubernetes.pod.uid": .string(p.uid),
                        ]),
                        "pid": .number(Double(i.pid)), "logPath": .string(i.logPath),
                    ])
                })])
                Out.out(output == .json ? list.serialized(indent: 2) + "\n" : YAMLText.render(list))
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

    static func criState(_ i: Instance, _ p: PodView) -> String {
        switch i.state {
        case .created: return "CONTAINER_CREATED"
        case .running: return p.supervisorAlive ? "CONTAINER_RUNNING" : "CONTAINER_UNKNOWN"
        case .exited: return "CONTAINER_EXITED"
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resource usage of running containers, from their cgroup files (as crictl stats).",
        discussion: """
            CPU is cpu.stat usage_usec (seconds used so far); MEM memory.current, PEAK memory.peak, WS the \
            working set (memory.current less inactive_file), PIDS pids.current. A file the host's cgroup2 \
            lacks (its controller is not enabled for Husk) shows as - and is left out of the JSON.
            """)

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Option(name: .shortAndLong, help: "table or json (crictl's ListContainerStats shape, plus pids).")
    var output: OutputFormat = .table
    @Argument(help: "Only this pod (name or UID).")
    var pod: String?

    func run() throws {
        try runReporting {
            let settings = try globals.settings()
            let pods = try pod.map { [try PodDirectory.find(settings, $0, namespace: selector.namespace)] } ?? PodDirectory.all(settings)
            guard let mount = (try? Cgroup2Mount.discover()) ?? nil else { throw HuskError(.unsupported, "no cgroup2 hierarchy is mounted") }
            var rows = [["CONTAINER", "NAME", "CPU(s)", "MEM", "WS", "PEAK", "PIDS", "POD"]]
            var items: [JSONValue] = []
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            // int64 and uint64 as strings, as protobuf's JSON mapping (crictl -o json) writes them.
            let nanos = JSONValue.string(String(Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)))
            func value(_ v: Int64) -> JSONValue { .object(["value": .string(String(v))]) }
            for p in pods where p.supervisorAlive && !p.state.finished {
                for c in p.state.containers {
                    guard let i = c.latest, i.state == .running else { continue }
                    let g = mount.group(p.paths.cgroup + "/" + c.name)
                    func number(_ file: String, _ key: String? = nil) -> Int64? {
                        guard let text = g.read(file) else { return nil }
                        guard let key else { return Int64(text.trimmed()) }
                        for line in text.split(separator: "\n") where line.hasPrefix(key + " ") {
                            return Int64(line.dropFirst(key.count + 1))
                        }
                        return nil
                    }
                    let usage = number("cpu.stat", "usage_usec")
                    let current = number("memory.current")
                    let peak = number("memory.peak")
                    let inactive = number("memory.stat", "inactive_file")
                    let ws = current.map { max(0, $0 - (inactive ?? 0)) }
                    let pids = number("pids.current")
                    func show(_ v: Int64?, bytes: Bool = true) -> String { v.map { bytes ? Out.size($0) : String($0) } ?? "-" }
                    rows.append([
                        String(i.id.prefix(13)), c.name, usage.map { "\($0 / 1_000_000).\(String(($0 % 1_000_000) / 10_000 + 100).dropFirst())" } ?? "-",
                        show(current), show(ws), show(peak), show(pids, bytes: false), p.pod.metadata.name,
                    ])
                    var o: [String: JSONValue] = [
                        "attributes": .object([
                            "id": .string(i.id),
                            "metadata": .object(["name": .string(c.name), "attempt": .number(Double(i.attempt))]),
                            "labels": .object([
                                "io.kubernetes.container.name": .string(c.name), "io.kubernetes.pod.name": .string(p.pod.metadata.name),
                                "io.kubernetes.pod.namespace": .string(p.pod.metadata.namespace), "io.kubernetes.pod.uid": .string(p.uid),
                            ]),
                        ]),
                    ]
                    if let usage {
                        o["cpu"] = .object(["timestamp": nanos, "usageCoreNanoSeconds": value(usage * 1000)])
                    }
                    if let current {
                        var m: [String: JSONValue] = ["timestamp": nanos, "usageBytes": value(current)]
                        if let ws { m["workingSetBytes"] = value(ws) }
                        if let peak { m["peakBytes"] = value(peak) }
                        o["memory"] = .object(m)
                    }
                    if let pids { o["pids"] = .object(["timestamp": nanos, "current": value(pids)]) }
                    items.append(.object(o))
                }
            }
            if output != .table {
                let doc: JSONValue = .object(["stats": .array(items)])
                Out.out(output == .json ? doc.serialized(indent: 2) + "\n" : YAMLText.render(doc))
                return
            }
            Out.out(Out.table(rows))
        }
    }
}

extension String {
    func replacingPrefix(_ prefix: String, _ with: String) -> String {
        hasPrefix(prefix) ? with + dropFirst(prefix.count) : self
    }
}

// MARK: - inspect, events

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a pod as a Kubernetes Pod object (metadata, spec, status).")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Option(name: .shortAndLong, help: "json or yaml.")
    var output: OutputFormat = .json
    @Argument(help: "The pod (name or UID).")
    var pod: String

    func run() throws {
        try runReporting {
            let v = try globals.findPod(pod, selector)
            Out.out(output == .yaml ? YAMLText.render(v.object) : v.object.serialized(indent: 2) + "\n")
        }
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a pod's events (Kubernetes core/v1 Events, oldest first).")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Option(name: .shortAndLong, help: "table or json (a v1 EventList).")
    var output: OutputFormat = .table
    @Argument(help: "The pod (name or UID).")
    var pod: String

    func run() throws {
        try runReporting {
            let v = try globals.findPod(pod, selector)
            let events = PodDirectory.events(v)
            if output != .table {
                let list: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("EventList"), "items": .array(events)])
                Out.out(output == .json ? list.serialized(indent: 2) + "\n" : YAMLText.render(list))
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
}

// MARK: - logs

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a container's output (decoded from its CRI log file).")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Option(name: .shortAndLong, help: "The container (default: the only one, else the first app container).")
    var container: String?
    @Flag(name: .shortAndLong, help: "Keep printing output as it comes, until the container ends.")
    var follow = false
    @Flag(name: .shortAndLong, help: "The previous instance of the container (after a restart).")
    var previous = false
    @Argument(help: "The pod (name or UID).")
    var pod: String

    func run() throws {
        try runReporting {
            var v = try globals.findPod(pod, selector)
            let name = try Logs.pickContainer(v, container)
            guard let c = v.state.containers.first(where: { $0.name == name }) else {
                throw HuskError(.notFound, "container \(name) is not in pod \(v.qualifiedName)")
            }
            let instance: Instance
            if previous {
                guard let p = c.previous else {
                    throw HuskError(.notFound, "previous terminated container \"\(name)\" in pod \"\(v.pod.metadata.name)\" not found")
                }
                instance = p
            } else {
                guard let l = c.latest else {
                    let reason = (c.waiting?.reason ?? (v.pod.spec.initContainers.isEmpty ? .containerCreating : .podInitializing)).rawValue
                    throw HuskError(.invalidState, "container \"\(name)\" in pod \"\(v.pod.metadata.name)\" is waiting to start: \(reason)")
                }
                instance = l
            }
            let follower = LogFollower(prefix: false)
            follower.follow(instance.logPath, container: name)
            guard follow && !previous else { return }
            // Until this instance has ended (or the pod is gone) and its log is read to the end.
            while true {
                guard let fresh = PodDirectory.read(v.settings, uid: v.uid) else { return }
                v = fresh
                let inst = v.state.containers.first { $0.name == name }?.instances.first { $0.id == instance.id }
                let over = inst == nil || inst?.state == .exited || v.isStopped
                follower.follow(instance.logPath, container: name)
                if over { return }
                usleep(50_000)
            }
        }
    }

    /// -c, or the only container, or the first app container (as kubectl defaults, saying so).
    static func pickContainer(_ v: PodView, _ requested: String?) throws -> String {
        let all = v.pod.spec.initContainers.map(\.name) + v.pod.spec.containers.map(\.name)
        if let requested {
            guard all.contains(requested) else {
                throw HuskError(.notFound, "container \(requested) is not valid for pod \(v.pod.metadata.name): choose one of: [\(all.joined(separator: " "))]")
            }
            return requested
        }
        let first = v.pod.spec.containers[0].name
        if all.count > 1 {
            let others = v.pod.spec.containers.map(\.name) + v.pod.spec.initContainers.map { "\($0.name) (init)" }
            Out.err("Defaulted container \"\(first)\" out of: \(others.joined(separator: ", "))\n")
        }
        return first
    }
}

// MARK: - exec, stop, rm

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command in a running container; its exit status is husk's.",
        discussion: """
            Output goes to husk's stdout and stderr. -i passes husk's stdin on (without it the command's \
            stdin is /dev/null). -t gives the command a terminal of the container's own (a pty from its \
            /dev/pts, stdout and stderr merged as on any terminal); husk's own terminal is put in raw mode \
            meanwhile and its size follows.
            """)

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Option(name: .shortAndLong, help: "The container (default: the first app container).")
    var container: String?
    @Flag(name: .shortAndLong, help: "Pass stdin on to the command.")
    var interactive = false
    @Flag(name: .shortAndLong, help: "Give the command a terminal.")
    var tty = false
    @Argument(help: "The pod (name or UID).")
    var pod: String
    @Argument(parsing: .postTerminator, help: "The command, after --.")
    var command: [String] = []

    func run() throws {
        try runReporting {
            guard !command.isEmpty else { throw HuskError(.invalidArgument, "no command: husk exec POD -- COMMAND...") }
            let v = try globals.findPod(pod, selector)
            let name = try Logs.pickContainer(v, container)
            guard v.supervisorAlive, !v.state.finished else { throw HuskError(.invalidState, "pod \(v.qualifiedName) is not running") }
            let client = PodClient(v)
            if tty {
                let session = try client.execTerminal(container: name, argv: command)
                // The exit status comes on the connection when the process has ended.
                var code: Int32? = nil
                TerminalRelay.run(master: session.master, input: interactive, end: session.connection, drainMilliseconds: 200, ended: {
                    code = session.exitCode()
                })
                throw ExitCode(code ?? 255)
            }
            let null = try FD.open("/dev/null", O_RDONLY)
            throw ExitCode(try client.exec(container: name, argv: command, stdio: [interactive ? 0 : null.raw, 1, 2]))
        }
    }
}

struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach to a running container's own streams: its output from now on, and with -i its stdin.",
        discussion: """
            -i needs stdin: true in the container's spec; with tty: true the container has a terminal and \
            -t puts husk's terminal in raw mode meanwhile. Ends when the container ends (with its exit \
            status) or when husk is interrupted. With stdinOnce the container's stdin closes when the first \
            attached input ends.
            """)

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Option(name: .shortAndLong, help: "The container (default: the first app container).")
    var container: String?
    @Flag(name: .shortAndLong, help: "Pass stdin on to the container.")
    var interactive = false
    @Flag(name: .shortAndLong, help: "The container's stdin is a terminal (tty: true): put husk's terminal in raw mode.")
    var tty = false
    @Argument(help: "The pod (name or UID).")
    var pod: String

    func run() throws {
        try runReporting {
            let v = try globals.findPod(pod, selector)
            let name = try Logs.pickContainer(v, container)
            guard v.supervisorAlive, !v.state.finished else { throw HuskError(.invalidState, "pod \(v.qualifiedName) is not running") }
            let attachment = try PodClient(v).attach(container: name, stdin: interactive)
            if tty && !attachment.tty {
                Out.err("Unable to use a TTY - container \(name) did not allocate one\n")
            }
            let saved = tty && attachment.tty && interactive && Terminal.isTerminal(0) ? (try? Terminal.makeRaw(0)) : nil
            defer { try? saved?.restore() }
            throw ExitCode(attachment.relay(stdin: interactive))
        }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a pod gracefully: preStop hooks, the stop signal, SIGKILL after the grace period; then the sandbox.",
        discussion: "Returns when every container has terminated and the sandbox is gone.")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Option(name: .long, help: "Grace period in seconds (default: the pod's terminationGracePeriodSeconds; at least 2 s).")
    var grace: Int64?
    @Argument(help: "The pod (name or UID).")
    var pod: String

    func run() throws {
        try runReporting {
            let v = try globals.findPod(pod, selector)
            let done = try Stop.stop(v, grace: grace)
            Out.out("\(done.qualifiedName) \(done.phase.rawValue)\n")
        }
    }

    /// Asks the supervisor to stop the pod and waits until it has finished and exited.
    static func stop(_ v: PodView, grace: Int64?) throws -> PodView {
        if let g = grace, g < 0 { throw HuskError(.invalidArgument, "--grace must not be negative") }
        if v.isStopped { return v }
        try PodClient(v).stop(grace: grace)
        // The supervisor exits right after it wrote the final status, and its keeper with it.
        let pidfd = try? PidFD.open(v.keeperPid > 0 ? v.keeperPid : v.supervisorPid)
        let done = PodDirectory.wait(v) { $0.isStopped }
        _ = pidfd?.waitForExit(timeout: 10)
        if !done.state.finished {
            throw HuskError(.system, "the supervisor of pod \(v.qualifiedName) exited before the pod finished; see \(v.paths.supervisorLog)")
        }
        return done
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove a stopped pod: its state, logs, emptyDirs and everything else of it.")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Flag(name: .shortAndLong, help: "Stop a running pod first (grace 0: SIGKILL after the 2 s minimum).")
    var force = false
    @Argument(help: "The pods (names or UIDs).")
    var pods: [String]

    func run() throws {
        try runReporting {
            var failed = false
            for ref in pods {
                do {
                    var v = try globals.findPod(ref, selector)
                    if !v.isStopped {
                        guard force else {
                            throw HuskError(.invalidState, "pod \(v.qualifiedName) is running: stop it first (husk stop \(ref)), or use husk rm --force")
                        }
                        v = try Stop.stop(v, grace: 0)
                    }
                    try PodDirectory.remove(v)
                    Out.out("\(v.uid)\n")
                } catch let e as HuskError {
                    Out.err("husk: \(e)\n")
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}
