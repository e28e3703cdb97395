import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One pod's supervisor: kubelet's pod worker for a single pod (pod-semantics §1-§8) over
/// the pod runtime service (`PodRuntimeService`). The controller thread makes one
/// decision at a time, as kubelet's SyncPod does; container exits arrive on the event loop;
/// a stop runs on its own thread. All shared state is under `m`, and every change is written
/// to status.json at once.
public final class PodSupervisor: @unchecked Sendable {  // mutable state only under `m`
    public let pod: Pod
    let settings: HuskSettings
    let paths: PodPaths
    let loop: EventLoop
    /// The pod runtime service (CRI's verbs): the controller's only way to the sandbox and
    /// the containers.
    let runtime: PodRuntimeService
    var sandbox: Sandbox { runtime.sandbox }
    let events: EventRecorder
    let m = Monitor()
    let scale: Double

    // Under m.
    var state = PodState()
    var handles: [String: ContainerHandle] = [:]
    var stopRequested = false
    var stopGrace: Int64? = nil
    var terminationStarted = false
    var controllerStopped = false
    var dirty = true
    /// The last status.json write failed (said once in the supervisor's log).
    var publishFailing = false
    /// `state.killByMono`, readable without `m` by a stop's final wait.
    let killBy = Mutex<Double?>(nil)
    /// A container waiting on an error that is retried (pull, create): when to try again.
    var retryAt: [String: Double] = [:]
    var pullFailedAt: [String: Double] = [:]
    /// kubelet's back-off entries: crash restarts per container, pulls per image (§7, §8).
    var crashBackoff: [String: (delay: Double, stamp: Double)] = [:]
    var pullBackoff: [String: (delay: Double, stamp: Double)] = [:]
    var sandboxBackoff = 0.0
    /// Which RunPodSandbox attempt the pause process being watched belongs to (under `m`): a
    /// failed attempt kills its own pause, and that exit is not the pod's sandbox dying.
    var sandboxAttempt = 0
    /// This supervisor took over a pod from a dead one (`recover`); the sandbox it found.
    var recovered = false
    var sandboxAdopted = false
    let keeper: KeeperLink?

    public convenience init(record: PodRecord, loop: EventLoop) {
        self.init(record: record, loop: loop, keeper: nil)
    }

    init(record: PodRecord, loop: EventLoop, keeper: KeeperLink?) {
        pod = record.pod
        settings = record.settings
        paths = PodPaths(settings: record.settings, pod: record.pod)
        self.loop = loop
        let events = EventRecorder(pod: record.pod, path: paths.events)
        let pod = record.pod
        runtime = PodRuntimeService(
            config: SandboxConfigBuilder(pod: record.pod, paths: paths).config(), paths: paths, loop: loop, keeper: keeper,
            outputLost: { name, message in
                // A full disk under the logs: the pod's events say what was lost (issue 16 #5).
                let kind: ContainerState.Kind = pod.spec.containers.contains { $0.name == name } ? .app : .initContainer
                events.warning("OutputLost", "container \(name): \(message)", ContainerState(name: name, kind: kind, image: ""))
            })
        self.keeper = keeper
        self.events = events
        scale = record.settings.backoffScale
        for c in pod.spec.initContainers {
            state.containers.append(ContainerState(name: c.name, kind: c.restartPolicy == "Always" ? .sidecar : .initContainer, image: c.image))
        }
        for c in pod.spec.containers {
            state.containers.append(ContainerState(name: c.name, kind: .app, image: c.image))
        }
    }

    func spec(_ i: Int) -> ContainerSpec {
        let n = pod.spec.initContainers.count
        return i < n ? pod.spec.initContainers[i] : pod.spec.containers[i - n]
    }

    /// The pod's volumes (kubelet's volume manager).
    var volumes: PodVolumes { PodVolumes(pod: pod, paths: paths) }

    /// `name_namespace(uid)`, kubelet's format.Pod.
    var podDescription: String { "\(pod.metadata.name)_\(pod.metadata.namespace)(\(pod.metadata.uid))" }

    // MARK: - Status

    /// Writes status.json when something changed. Call under `m`.
    func publish() {
        guard dirty else { return }
        state.refresh(pod: pod, now: Clock.rfc3339Nano())
        let doc = state.document(pod: pod, supervisorPid: getpid())
        do {
            // Not fsync'd: it is written under `m` on every change, and a stop's SIGKILL must
            // never wait for the disk; status.json does not outlive a reboot anyway (the pods
            // do not either), and a crashed supervisor's successor reads it from the page cache.
            try Files.writeAtomically(paths.statusJSON, Array(doc.serialized().utf8), mode: 0o600, durable: false)
            dirty = false
        } catch {
            // A full disk: the last good status.json stays (the write is atomic), and stays
            // dirty, so the next change or tick writes the whole state again (issue 16 #5).
            if !publishFailing { Output.writeAll(2, Array("husk supervise: cannot write \(paths.statusJSON): \(error)\n".utf8)) }
            publishFailing = true
            return
        }
        publishFailing = false
    }

    /// Marks the state changed, writes it and wakes every waiter. Call under `m`.
    func changed() {
        dirty = true
        publish()
        m.broadcast()
    }
}
