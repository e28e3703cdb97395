import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor of a `husk serve` sandbox (DESIGN "CRI mode"): the pod runtime service
/// with no lifecycle controller. kubelet is the controller; `husk serve` passes its calls on
/// over the control socket (`ControlRequest.runtime`), and this host carries them out and
/// records every change on disk (`SandboxRecords`), so that the daemon can answer lists and
/// statuses from the files, and a new supervisor can take over (`recover`).
final class SandboxHost: ControlHandler, @unchecked Sendable {  // mutable state only under `m`
    let record: SandboxRecord
    let paths: PodPaths
    let loop: EventLoop
    let service: PodRuntimeService
    let keeper: KeeperLink?
    let m = Monitor()
    // Under m.
    var state: SandboxState
    var containers: [String: SandboxContainer] = [:]
    var handles: [String: ContainerHandle] = [:]

    init(record: SandboxRecord, loop: EventLoop, keeper: KeeperLink?) {
        self.record = record
        paths = record.paths
        self.loop = loop
        self.keeper = keeper
        service = PodRuntimeService(config: record.config, paths: paths, loop: loop, keeper: keeper) { name, message in
            // CRI has no events of the runtime's own: the sandbox's supervisor log says it.
            Output.writeAll(2, Array("husk supervise: container \(name): \(message)\n".utf8))
        }
        state = SandboxState(createdAt: Clock.rfc3339Nano())
    }

    var stateDirectory: String { paths.state }

    // MARK: - RunPodSandbox

    /// Makes the sandbox (the first supervisor of it) and records the outcome; a failure
    /// leaves nothing of it and ends the supervisor with status 1.
    func runSandbox() {
        m.locked { state.write(stateDirectory) }
        do {
            try Files.makeDirectories(SandboxContainer.directory(stateDirectory), mode: 0o700)
            try service.runPodSandbox(onPauseExit: { [self] _ in pauseExited() })
        } catch {
            m.locked {
                state.phase = .failed
                state.error = "\(error)"
                state.write(stateDirectory)
            }
            try? Files.removeTree(paths.data)
            exit(1)
        }
        m.locked {
            state.phase = .ready
            state.ip = service.sandbox.podIP
            if let pause = service.sandbox.pause {
                state.pausePid = pause.pid
                state.pauseStart = ProcessInfo.stat(pause.pid)?.startTime ?? 0
            }
            if let at = service.sandbox.createdAt { state.createdAt = at }
            state.write(stateDirectory)
            m.broadcast()
        }
    }

    /// pause ended: the sandbox is NOTREADY (containerd's rule); its containers stay as they
    /// are until kubelet stops them.
    func pauseExited() {
        m.locked {
            guard state.phase == .ready else { return }
            state.phase = .notReady
            state.write(stateDirectory)
        }
    }

    // MARK: - Takeover after a supervisor's death

    /// Takes over from a dead supervisor: pause and the running containers are adopted
    /// (their output pipes come from the keeper); a container that was running and is gone
    /// is UNKNOWN (its exit was not seen); one still waiting at its start gate cannot be
    /// started any more (the gate died with the supervisor) and is killed.
    func recover(_ previous: SandboxState) {
        let held = keeper?.takeInherited() ?? [:]
        m.locked { state = previous }
        if previous.phase == .ready {
            let alive = service.adoptSandbox(pausePid: previous.pausePid, pauseStart: previous.pauseStart, podIP: previous.ip,
                                             createdAt: previous.createdAt, onPauseExit: { [self] _ in pauseExited() })
            if !alive { pauseExited() }
        }
        let store = try? ImageStore(root: record.settings.root)
        for var c in SandboxContainer.all(stateDirectory) {
            if c.state == .running {
                do throws(HuskError) {
                    guard let store else { throw HuskError(.system, "the image store cannot be opened") }
                    let config = try ContainerConfig(json: JSONReader(c.config)) { (id) throws(HuskError) in try Self.image(id, store) }
                    let h = try service.adoptContainer(config, id: c.id, pid: c.pid, start: c.pidStart, outputs: held[c.id] ?? []) {
                        [self] h, status in containerExited(h, status)
                    }
                    m.locked { handles[c.id] = h }
                } catch {
                    c.state = .unknown
                    c.finishedAt = Clock.rfc3339Nano()
                    c.reason = "Unknown"
                    c.message = "the container was lost while no supervisor ran: \(error)"
                    c.write(stateDirectory)
                }
            } else if c.state == .created {
                if let mount = try? Cgroup2Mount.discover() { try? mount.group(paths.cgroup + "/" + c.name).kill() }
                c.state = .exited
                c.exitCode = 255
                c.finishedAt = Clock.rfc3339Nano()
                c.reason = "Error"
                c.message = "the container's supervisor died before it was started"
                c.write(stateDirectory)
            }
            m.locked { containers[c.id] = c }
        }
    }

    // MARK: - Calls

    func perform(_ request: ControlRequest, on conn: FD, fds: [FD], pending: [UInt8]) -> ControlReply? {
        let call: String, body: JSONValue
        switch request {
        case .runtime(let c, let b):
            (call, body) = (c, b)
        case .exec(let id, let argv, let tty):
            // CRI Exec through the streaming server: stdio passed in, or a terminal passed back.
            do {
                let h = try running(id ?? "")
                let stdio: [FD?] = tty ? [nil, nil, nil] : (0..<3).map { $0 < fds.count ? fds[$0] : nil }
                let (p, master) = try service.exec(h, argv: argv, stdio: stdio, tty: tty)
                if let master { try? UnixSocket.send(conn, ControlReply.terminal.line, fds: [master.raw]) }
                return .exitCode(((try? p.pidfd.wait()) ?? .exited(255)).code)
            } catch {
                return .error(error.message)
            }
        case .attach(let id, let stdin):
            // CRI Attach through the streaming server: output frames out, stdin in.
            do {
                let h = try running(id ?? "")
                let stdinOnce = m.locked { containers[id ?? ""]?.config["stdinOnce"]?.boolValue ?? false }
                try service.attach(h, conn: conn, stdin: stdin, stdinOnce: stdinOnce, pending: pending) { tty in
                    try? conn.writeAll(ControlReply.attached(tty: tty).line)
                }
                return nil
            } catch {
                return .error(error.message)
            }
        case .stop:
            return .error("this sandbox is run by husk serve: stop it with StopPodSandbox on its CRI socket")
        }
        if call == "removePodSandbox" {
            // The supervisor ends once the reply is out (its keeper with it, status 0).
            let v = removeSandbox()
            try? conn.writeAll(ControlReply.value(v).line)
            exit(0)
        }
        do {
            return .value(try dispatch(call, JSONReader(body)))
        } catch {
            return .failed(code: error.code.description, message: error.message)
        }
    }

    func dispatch(_ call: String, _ r: JSONReader) throws(HuskError) -> JSONValue {
        func field<T>(_ body: () throws(FieldError) -> T) throws(HuskError) -> T {
            do {
                return try body()
            } catch {
                throw HuskError(.invalidArgument, "\(call): \(error)")
            }
        }
        switch call {
        case "podSandboxStatus": return podSandboxStatus()
        case "stopPodSandbox": return stopSandbox()
        case "removePodSandbox": return removeSandbox()
        case "createContainer":
            let id = try field { () throws(FieldError) in try r.string("id") }
            guard let config = r.child("config")?.value else { throw HuskError(.invalidArgument, "createContainer: no config") }
            return try createContainer(id: id, config: config)
        case "startContainer": return try startContainer(try field { () throws(FieldError) in try r.string("id") })
        case "stopContainer":
            let (id, timeout) = try field { () throws(FieldError) in (try r.string("id"), try r.optInt("timeout") ?? 0) }
            return try stopContainer(id, timeout: max(0, timeout))
        case "removeContainer": return try removeContainer(try field { () throws(FieldError) in try r.string("id") })
        case "resizeTerminal":
            let (id, width, height) = try field { () throws(FieldError) in (try r.string("id"), try r.int("width"), try r.int("height")) }
            guard (0...65535).contains(width), (0...65535).contains(height) else {
                throw HuskError(.invalidArgument, "resizeTerminal: \(width)x\(height) is not a window size")
            }
            try service.resizeTerminal(try running(id), rows: UInt16(height), columns: UInt16(width))
            return .object([:])
        case "execSync":
            let (id, argv, timeout) = try field { () throws(FieldError) in
                (try r.string("id"), try r.optStringArray("argv") ?? [], try r.optInt("timeout") ?? 0)
            }
            return try execSync(id, argv: argv, timeout: timeout)
        case "updateContainerResources":
            let id = try field { () throws(FieldError) in try r.string("id") }
            var res = Spec.Resources()
            res.unified = try field { () throws(FieldError) in try r.child("resources")?.optStringMap("unified") ?? [:] }
            let h = try running(id)
            let warnings = try service.updateContainerResources(h, res)
            return .object(["warnings": .array(warnings.map { .string($0) })])
        case "reopenContainerLog":
            let id = try field { () throws(FieldError) in try r.string("id") }
            guard let h = m.locked({ handles[id] }) else { throw notFound(id) }
            try service.reopenContainerLog(h)
            return .object([:])
        default:
            throw HuskError(.unsupported, "unknown runtime call \(call)")
        }
    }

    func notFound(_ id: String) -> HuskError {
        HuskError(.notFound, "container \"\(id)\" not found in sandbox \(record.id)")
    }

    func running(_ id: String) throws(HuskError) -> ContainerHandle {
        let (h, c) = m.locked { (handles[id], containers[id]) }
        guard let c else { throw notFound(id) }
        guard let h, c.state == .running else { throw HuskError(.invalidState, "container \(id) is not running (\(SandboxContainer.name(c.state)))") }
        return h
    }

    func podSandboxStatus() -> JSONValue {
        m.locked { state.json }
    }

    // MARK: - Containers

    func createContainer(id: String, config json: JSONValue) throws(HuskError) -> JSONValue {
        guard m.locked({ state.phase == .ready }) else {
            throw HuskError(.invalidState, "sandbox \(record.id) is not ready: a container cannot be created in it")
        }
        let store: ImageStore
        do {
            store = try ImageStore(root: record.settings.root)
        } catch {
            throw HuskError(.system, "cannot open the image store", cause: error)
        }
        let config = try ContainerConfig(json: JSONReader(json)) { (image) throws(HuskError) in try Self.image(image, store) }
        let taken = m.locked { () -> Bool in
            if containers[id] != nil { return true }
            // CRI container names are unique in a sandbox by name and attempt (containerd reserves them).
            return containers.values.contains { $0.name == config.name && ($0.config["attempt"]?.intValue ?? 0) == config.attempt }
        }
        if taken { throw HuskError(.alreadyExists, "container \(config.name) (attempt \(config.attempt)) already exists in sandbox \(record.id)") }
        var c = SandboxContainer(id: id, config: json, createdAt: Clock.rfc3339Nano())
        // pid TARGET: the target must run in this sandbox (containerd: "failed to get target container").
        var target: ContainerHandle? = nil
        if let t = config.security.pidTarget {
            do {
                target = try running(t)
            } catch {
                throw HuskError(error.code == .notFound ? .notFound : .invalidState, "pid namespace target: \(error.message)")
            }
        }
        let h: ContainerHandle
        do {
            h = try service.createContainer(config, id: id, pidNamespaceOf: target) { [self] h, status in containerExited(h, status) }
        } catch {
            throw HuskError(error.kind == .config ? .invalidArgument : .system, error.message)
        }
        c.createdAt = h.createdAt
        c.pid = h.pid
        c.pidStart = ProcessInfo.stat(h.pid)?.startTime ?? 0
        try? store.lease("sandbox-\(record.id)-\(id)", image: config.image.id)
        m.locked {
            containers[id] = c
            handles[id] = h
            c.write(stateDirectory)
        }
        return .object(["id": .string(id)])
    }

    /// The image record of `id` (the image's config digest, `sha256:...`) and its snapshots.
    static func image(_ id: String, _ store: ImageStore) throws(HuskError) -> (ImageRecord, [String]) {
        do {
            guard let image = try store.image(matching: id) else { throw HuskError(.notFound, "image \(id) is not in the store") }
            return (image, try store.snapshotPaths(image))
        } catch let e as HuskError {
            throw e
        } catch {
            throw HuskError(.notFound, "image \(id): \(error)")
        }
    }

    func startContainer(_ id: String) throws(HuskError) -> JSONValue {
        let (h, c) = m.locked { (handles[id], containers[id]) }
        guard let c else { throw notFound(id) }
        guard let h, c.state == .created else {
            throw HuskError(.invalidState, "container \(id) is \(SandboxContainer.name(c.state)), not created: it cannot be started")
        }
        do {
            try service.startContainer(h)
        } catch {
            throw HuskError(.system, error.message)
        }
        let started = service.containerStatus(h).startedAt ?? Clock.rfc3339Nano()
        m.locked {
            // The exit may have come already (a command that ends at once).
            guard var now = containers[id], now.state == .created else { return }
            now.state = .running
            now.startedAt = started
            containers[id] = now
            now.write(stateDirectory)
        }
        return .object([:])
    }

    /// A container's init ended (loop thread): the runtime finishes it, and the record
    /// gets the exit (containerd's reasons: OOMKilled, Completed, Error).
    func containerExited(_ h: ContainerHandle, _ status: ExitStatus?) {
        let oomKilled = service.finishExit(h)
        h.detachAll(exitCode: status?.code ?? 137)
        m.locked {
            guard var c = containers[h.id] else { return }
            if c.startedAt == nil, c.state == .running { c.startedAt = c.createdAt }
            c.finishedAt = Clock.rfc3339Nano()
            if let status {
                c.state = .exited
                c.exitCode = status.code
                c.reason = oomKilled ? "OOMKilled" : status.code == 0 ? "Completed" : "Error"
            } else {
                c.state = .unknown
                c.reason = "Unknown"
            }
            containers[h.id] = c
            c.write(stateDirectory)
            m.broadcast()
        }
    }

    func exited(_ id: String) -> Bool {
        guard let c = containers[id] else { return true }
        return c.state == .exited || c.state == .unknown
    }

    /// CRI StopContainer: the stop signal, SIGKILL after `timeout` seconds (0: at once). A
    /// container that is not running is left as it is (containerd returns at once).
    func stopContainer(_ id: String, timeout: Int64) throws(HuskError) -> JSONValue {
        let (h, c) = m.locked { (handles[id], containers[id]) }
        guard let c else { throw notFound(id) }
        guard let h, c.state == .running || c.state == .created else { return .object([:]) }
        if c.state == .created {
            service.killContainer(h)
        } else {
            service.stopContainer(h, timeout: Double(timeout)) { deadline in m.wait(for: { exited(id) }, until: deadline) }
        }
        // The exit is recorded on the loop thread; the reply waits for it.
        _ = m.wait(for: { exited(id) }, until: Clock.monotonicSeconds() + 10)
        return .object([:])
    }

    /// CRI RemoveContainer: a container still running is killed first (containerd); absent
    /// is not an error.
    func removeContainer(_ id: String) throws(HuskError) -> JSONValue {
        let (h, c) = m.locked { (handles[id], containers[id]) }
        guard c != nil else { return .object([:]) }
        if let h {
            if !m.locked({ exited(id) }) {
                service.killContainer(h)
                _ = m.wait(for: { exited(id) }, until: Clock.monotonicSeconds() + 10)
            }
            service.removeContainer(h)
        } else if let c, let mount = try? Cgroup2Mount.discover() {
            try? Engine.delete(mount.group(paths.cgroup + "/" + c.name), timeout: 10)
            try? Files.removeTree(paths.instance(c.name, attempt: c.config["attempt"]?.intValue ?? 0))
        }
        keeper?.drop(id)
        if let store = try? ImageStore(root: record.settings.root) { store.release("sandbox-\(record.id)-\(id)") }
        m.locked {
            containers[id] = nil
            handles[id] = nil
        }
        unlink(SandboxContainer.file(stateDirectory, id))
        return .object([:])
    }

    /// CRI ExecSync: stdout and stderr apart, base64 (they may be any bytes); timeout 0 is
    /// none. At most 16 MiB of each (gRPC's message limit kubelet sets).
    func execSync(_ id: String, argv: [String], timeout: Int64) throws(HuskError) -> JSONValue {
        guard !argv.isEmpty else { throw HuskError(.invalidArgument, "execSync: cmd is empty") }
        let h = try running(id)
        let r = try service.execSync(h, argv: argv, timeout: timeout > 0 ? Double(timeout) : nil, outputLimit: 16 << 20, separateStderr: true)
        var o: [String: JSONValue] = ["stdout": .string(Base64.encode(r.output)), "stderr": .string(Base64.encode(r.stderr))]
        if let code = r.exitCode { o["exitCode"] = .number(Double(code)) } else { o["timedOut"] = .bool(true) }
        return .object(o)
    }

    // MARK: - Stop and remove

    /// CRI StopPodSandbox: containers killed (timeout 0), pause killed, the address released.
    func stopSandbox() -> JSONValue {
        let live = m.locked { handles.filter { !exited($0.key) }.map(\.value) }
        service.stopPodSandbox(containers: live)
        for h in live { _ = m.wait(for: { exited(h.id) }, until: Clock.monotonicSeconds() + 10) }
        m.locked {
            if state.phase == .ready || state.phase == .creating { state.phase = .notReady }
            state.networkReleased = service.sandbox.networkReleased
            state.write(stateDirectory)
        }
        return .object([:])
    }

    /// CRI RemovePodSandbox: stopped first, then every container and the sandbox's mounts,
    /// cgroups and data go; the supervisor ends once it has replied (the daemon removes its
    /// state directory).
    func removeSandbox() -> JSONValue {
        _ = stopSandbox()
        for id in m.locked({ Array(containers.keys) }) { _ = try? removeContainer(id) }
        service.removePodSandbox(containerNames: [])
        try? Files.removeTree(paths.data)
        return .object([:])
    }
}

extension JSONValue {
    var intValue: Int? {
        guard case .number(let n) = self, let i = Int(exactly: n) else { return nil }
        return i
    }
}
