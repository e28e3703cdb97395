import HuskJSON
import HuskRuntime
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// `husk serve`'s side of its sandboxes: RunPodSandbox starts a sandbox's keeper and
/// supervisor (`SandboxHost`) and waits for the outcome; every later call goes over the
/// sandbox's control socket; lists and statuses come from the records on disk.
public struct SandboxClient: Sendable {
    public let settings: HuskSettings
    public let id: String

    public init(settings: HuskSettings, id: String) {
        self.settings = settings
        self.id = id
    }

    public var stateDirectory: String { settings.state + "/pods/" + id }
    public var socket: String { stateDirectory + "/control.sock" }
    public var dataDirectory: String { settings.root + "/pods/" + id }

    /// The sandboxes under `settings` (their ids), made by `husk serve`.
    public static func ids(_ settings: HuskSettings) -> [String] {
        (Files.list(settings.state + "/pods") ?? []).filter { Files.exists(SandboxRecord.file(settings.state + "/pods/" + $0)) }.sorted()
    }

    /// Whether the sandbox's keeper (and so a supervisor, or the next one) still runs.
    public var supervisorAlive: Bool {
        guard let text = (try? Files.readString(stateDirectory + "/keeper.pid")) ?? nil, let pid = Int32(text.trimmed()) else { return false }
        return kill(pid, 0) == 0
    }

    public func record() throws(HuskError) -> SandboxRecord { try SandboxRecord.read(stateDirectory) }
    /// The sandbox's pod cgroup (`/husk/<id>`, or `<cgroup_parent>/<id>`).
    public var cgroup: String { (try? record())?.paths.cgroup ?? "/husk/" + id }
    public func state() throws(HuskError) -> SandboxState { try SandboxState.read(stateDirectory) }
    public func containers() -> [SandboxContainer] { SandboxContainer.all(stateDirectory) }

    /// CRI RunPodSandbox: records the sandbox and starts its keeper and supervisor
    /// (`supervisor + [STATE_DIR]`), then waits until the sandbox is ready. A failure leaves
    /// nothing behind and is thrown with the supervisor's reason.
    public static func run(
        _ config: PodSandboxConfig, id: String, settings: HuskSettings, runtimeHandler: String = "", supervisor: [String],
        timeout: Double = 120
    ) throws(HuskError) -> SandboxClient {
        let client = SandboxClient(settings: settings, id: id)
        let record = SandboxRecord(id: id, config: config, settings: settings, runtimeHandler: runtimeHandler)
        let paths = record.paths
        do {
            for dir in [settings.state, settings.state + "/pods"] { try Files.makeDirectories(dir, mode: 0o700) }
        } catch {
            throw HuskError(.system, "cannot create \(settings.state)", cause: error)
        }
        guard mkdir(paths.state, 0o700) == 0 else {
            throw HuskError(currentErrno == .fileExists ? .alreadyExists : .system, "cannot create \(paths.state): \(currentErrno.text)")
        }
        let keeper: SpawnedProcess
        do {
            try Files.writeAtomically(SandboxRecord.file(paths.state), Array(record.json.serialized().utf8), mode: 0o600, durable: false)
            keeper = try PodDirectory.startKeeper(paths, supervisor: supervisor)
            KeeperReaper.shared.watch(keeper.pidfd)
        } catch {
            try? Files.removeTree(paths.state)
            throw HuskError(.system, "cannot start the sandbox's supervisor", cause: error)
        }
        // The outcome: sandbox-state.json says ready or failed, or the keeper ends. The wake-up
        // is the supervisor's control socket: it listens before it makes the sandbox and
        // accepts only after (SupervisorMain.runSandbox), so a status request sent at once is
        // answered, or the connection dropped by a failing supervisor, the moment the outcome
        // is written. Until the socket is there (the supervisor starting, ~3 ms) the file is
        // read every 0.5 ms; a polling back-off made the reply up to 2 ms late.
        let deadline = Clock.monotonicSeconds() + timeout
        var waiter: FD? = nil
        while true {
            if let s = try? client.state(), s.phase != .creating {
                if s.phase == .failed {
                    _ = keeper.pidfd.waitForExit(timeout: 10)
                    client.discard()
                    throw HuskError(.system, s.error ?? "the sandbox could not be made")
                }
                return client
            }
            if keeper.pidfd.hasExited || Clock.monotonicSeconds() > deadline {
                let log = ((try? Files.readString(paths.supervisorLog)) ?? nil)?.trimmed() ?? ""
                try? keeper.pidfd.signal(SIGKILL)
                client.discard()
                throw HuskError(.system, "the sandbox's supervisor ended before the sandbox was ready" + (log.isEmpty ? "" : ": " + log))
            }
            if waiter == nil, let conn = try? UnixSocket.connect(paths.socket) {
                if (try? UnixSocket.send(conn, ControlRequest.runtime(call: "podSandboxStatus", body: .object([:])).line, fds: [])) != nil {
                    waiter = conn
                }
            }
            if let conn = waiter {
                var fds = [pollfd(fd: conn.raw, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: keeper.pidfd.fd.raw, events: Int16(POLLIN), revents: 0)]
                if poll(&fds, 2, 100) > 0 && fds[0].revents != 0 {
                    // Answered (read whole, so the supervisor's reply is not cut) or dropped.
                    _ = try? PodClient.next(conn)
                    waiter = nil
                    if let s = try? client.state(), s.phase == .creating { usleep(500) }
                }
            } else {
                usleep(500)
            }
        }
    }

    /// A call of the runtime service in the sandbox (`SandboxHost.dispatch`).
    @discardableResult
    public func call(_ name: String, _ body: JSONValue = .object([:]), patience: Double = 5) throws(HuskError) -> JSONValue {
        switch try PodClient(socket: socket, patience: patience).request(.runtime(call: name, body: body)) {
        case .value(let v): return v
        case .failed(let code, let message): throw HuskError(HuskError.Code(named: code) ?? .system, message)
        case .error(let message): throw HuskError(.system, message)
        case let other: throw HuskError(.system, "a bad reply from the sandbox's supervisor: \(other.json.serialized())")
        }
    }

    /// CRI RemovePodSandbox: the supervisor removes everything and ends; then its state
    /// directory goes. A sandbox whose supervisor cannot be reached is cleaned up from here
    /// (its cgroups killed and removed, its address released, its mounts and files removed).
    public func remove() throws(HuskError) {
        let keeperPid = ((try? Files.readString(stateDirectory + "/keeper.pid")) ?? nil).flatMap { Int32($0.trimmed()) }
        let keeper = keeperPid.flatMap { try? PidFD.open($0) }
        var removed = false
        do {
            try call("removePodSandbox", patience: 2)
            removed = true
        } catch {
            // The supervisor is gone (or does not answer): take it all down from here.
            if let keeper { try? keeper.signal(SIGKILL) }
        }
        if let keeper { _ = keeper.waitForExit(timeout: 10) }
        // The supervisor released the address itself (CNI DEL, ~17 ms of plugin runs with
        // bridge + portmap): a second DEL only when it could not.
        let released = removed && ((try? state())?.networkReleased ?? false)
        discard(releaseNetwork: !released)
    }

    /// Removes whatever is left of the sandbox: cgroups (processes killed), address (unless
    /// released already), mounts, data and state.
    func discard(releaseNetwork: Bool = true) {
        let record = try? record()
        if let mount = try? Cgroup2Mount.discover() { _ = PodDirectory.removeCgroupTree(mount, record?.paths.cgroup ?? "/husk/" + id) }
        if releaseNetwork, let record, record.config.ownNetwork, let cni = try? CNI.load(settings: settings) {
            try? cni.del(containerID: id, netns: "", sandbox: record.config)
        }
        let mounts = ((try? MountInfo.read()) ?? []).filter { $0.mountPoint.hasPrefix(dataDirectory + "/") }
        for m in mounts.sorted(by: { $0.mountPoint.count > $1.mountPoint.count }) { try? Mount.unmount(m.mountPoint, detach: true) }
        try? Files.removeTree(dataDirectory)
        try? Files.removeTree(stateDirectory)
    }
}

/// A sandbox's keeper is a child of whoever ran the sandbox. `husk run -d` exits at once (the
/// keeper goes to init), but `husk serve` lives on: when a sandbox is removed its keeper ends
/// and stays a zombie of the daemon unless reaped. One thread watches every keeper's pidfd
/// (epoll) and reaps each as it ends.
final class KeeperReaper: @unchecked Sendable {  // `watched` under `m`; `epoll` is thread-safe
    static let shared = KeeperReaper()
    private let m = Monitor()
    private var watched: [CInt: PidFD] = [:]
    private let epoll = try? Epoll()
    private var started = false

    /// Reaps `keeper` once it ends.
    func watch(_ keeper: PidFD) {
        guard let epoll else { return }
        let start = m.locked { () -> Bool in
            watched[keeper.fd.raw] = keeper
            defer { started = true }
            return !started
        }
        try? epoll.add(keeper.fd.raw)
        if start { Threads.spawn("husk-keeper-reaper") { [self] in loop(epoll) } }
    }

    private func loop(_ epoll: Epoll) {
        var ready = [Epoll.Event](repeating: Epoll.Event(), count: 16)
        while true {
            let n = (try? epoll.wait(into: &ready, timeoutMilliseconds: -1)) ?? 0
            for e in ready.prefix(n) {
                guard let p = m.locked({ watched[e.fd] }) else { continue }
                let done: Bool
                do { done = try p.tryWait() != nil } catch { done = true }  // not ours to reap after all
                guard done else { continue }
                try? epoll.remove(e.fd)
                m.locked { _ = watched.removeValue(forKey: e.fd) }
            }
        }
    }
}
