import GRPCCore
import HuskPod
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// GetContainerEvents (the stream kubelet's evented PLEG reads): the changes of the sandbox
/// and container records on disk, as containerd's generateAndSendContainerEvent reports them.
/// A sandbox is a container with its own id: CREATED and STARTED when it becomes ready,
/// STOPPED when it is not, DELETED when it is gone; a container CREATED, STARTED, STOPPED
/// (its exit), DELETED. Each event carries the sandbox's status and its containers'.
///
/// The records are what the sandboxes' supervisors write, so exits are seen whoever caused
/// them, and nothing is held that is not on disk. While someone subscribes, a thread checks
/// the records' stat stamps every 100 ms and reads only the sandboxes that changed; with no
/// subscriber nothing runs. As containerd, a subscriber that falls 1000 events behind loses
/// the oldest ones.
final class ContainerEvents: @unchecked Sendable {  // `subscribers`, `watching` under `m`
    typealias Event = Runtime_V1_ContainerEventResponse
    static let interval: UInt32 = 100_000
    static let buffer = 1000

    let settings: HuskSettings
    private let m = Monitor()
    private var subscribers: [Int: AsyncStream<Event>.Continuation] = [:]
    private var nextID = 0
    private var watching = false

    init(settings: HuskSettings) {
        self.settings = settings
    }

    /// A new subscriber's stream and its id for `unsubscribe`.
    func subscribe() -> (Int, AsyncStream<Event>) {
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .bufferingNewest(Self.buffer))
        let (id, start) = m.locked { () -> (Int, Bool) in
            nextID += 1
            subscribers[nextID] = continuation
            defer { watching = true }
            return (nextID, !watching)
        }
        continuation.onTermination = { [weak self] _ in
            self?.m.locked { _ = self?.subscribers.removeValue(forKey: id) }
        }
        if start {
            // The state as it is now is the baseline: events are changes from here on.
            let baseline = scan(previous: [:], emit: false)
            Threads.spawn("husk-serve-events") { [self] in watch(baseline) }
        }
        return (id, stream)
    }

    /// Ends a subscriber's stream (its RPC was cancelled, or the server is stopping).
    func unsubscribe(_ id: Int) {
        m.locked { subscribers.removeValue(forKey: id) }?.finish()
    }

    private func watch(_ baseline: [String: Seen]) {
        var seen = baseline
        while true {
            usleep(Self.interval)
            let stop = m.locked { () -> Bool in
                if subscribers.isEmpty { watching = false }
                return subscribers.isEmpty
            }
            if stop { return }
            seen = scan(previous: seen, emit: true)
        }
    }

    /// What was last seen of a sandbox: its stat stamps and the states derived from them.
    struct Seen {
        var stamps: [String: [Int]] = [:]
        var ready = false
        var containers: [String: ContainerRuntimeStatus.State] = [:]
    }

    static func stamp(_ path: String) -> [Int] {
        var st = stat()
        guard lstat(path, &st) == 0 else { return [] }
        return [Int(st.st_ino), Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec), Int(st.st_size)]
    }

    /// Reads the sandboxes whose stamps changed (and checks each one's pause), sends the
    /// events their changes make, and returns what is seen now.
    private func scan(previous: [String: Seen], emit: Bool) -> [String: Seen] {
        var now: [String: Seen] = [:]
        for id in SandboxClient.ids(settings) {
            let client = SandboxClient(settings: settings, id: id)
            let dir = client.stateDirectory
            var stamps = ["state": Self.stamp(SandboxState.file(dir))]
            let containersDir = dir + "/containers"
            for name in Files.list(containersDir) ?? [] where name.hasSuffix(".json") {
                stamps[name] = Self.stamp(containersDir + "/" + name)
            }
            let old = previous[id]
            var s = Seen(stamps: stamps)
            let state = try? client.state()
            s.ready = state.map { RuntimeService.ready($0, client) } ?? false
            if let old, old.stamps == stamps, old.ready == s.ready {
                now[id] = old
                continue
            }
            let containers = client.containers()
            for c in containers { s.containers[c.id] = c.state }
            now[id] = s
            guard emit else { continue }
            var events: [(String, Runtime_V1_ContainerEventType)] = []
            let before = old ?? Seen()
            if s.ready && !before.ready {
                events += [(id, .containerCreatedEvent), (id, .containerStartedEvent)]
            } else if !s.ready && before.ready {
                events.append((id, .containerStoppedEvent))
            }
            for c in containers {
                let was = before.containers[c.id]
                if was == nil { events.append((c.id, .containerCreatedEvent)) }
                if c.state == .running || c.state == .exited, was == nil || was == .created {
                    if c.startedAt != nil { events.append((c.id, .containerStartedEvent)) }
                }
                if c.state == .exited && was != .exited { events.append((c.id, .containerStoppedEvent)) }
            }
            for gone in before.containers.keys where s.containers[gone] == nil {
                events.append((gone, .containerDeletedEvent))
            }
            if !events.isEmpty {
                send(events, sandbox: id, client: client, state: state, containers: containers)
            }
        }
        // Sandboxes that are gone: their containers and then they are deleted.
        for (id, old) in previous where now[id] == nil {
            guard emit else { continue }
            var events = old.containers.keys.sorted().map { ($0, Runtime_V1_ContainerEventType.containerDeletedEvent) }
            if old.ready { events.append((id, .containerStoppedEvent)) }
            events.append((id, .containerDeletedEvent))
            send(events, sandbox: id, client: nil, state: nil, containers: [])
        }
        return now
    }

    private func send(_ events: [(String, Runtime_V1_ContainerEventType)], sandbox: String, client: SandboxClient?,
                      state: SandboxState?, containers: [SandboxContainer]) {
        var pod: Runtime_V1_PodSandboxStatus? = nil
        if let client, let state, let record = try? client.record() {
            pod = RuntimeService.sandboxStatus(client, record, state)
        }
        let statuses = containers.map { RuntimeService.containerStatus($0) }
        let targets = m.locked { Array(subscribers.values) }
        for (id, type) in events {
            var e = Event()
            e.containerID = id
            e.containerEventType = type
            let t = Clock.now()
            e.createdAt = Int64(t.sec) * 1_000_000_000 + Int64(t.nsec)
            if let pod { e.podSandboxStatus = pod }
            e.containersStatuses = statuses
            for t in targets { t.yield(e) }
        }
    }
}
