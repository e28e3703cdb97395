import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// What `husk run` hands the supervisor (`pod.json`): the pod with its uid, and the settings.
public struct PodRecord: Sendable {
    public var pod: Pod
    public var settings: HuskSettings

    public init(pod: Pod, settings: HuskSettings) {
        self.pod = pod
        self.settings = settings
    }

    public var json: JSONValue { .object(["pod": pod.json, "settings": settings.json]) }

    public static func read(_ path: String) throws(HuskError) -> PodRecord {
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
            let doc = try JSONParser.parse(bytes)
            guard let p = doc["pod"], let s = doc["settings"] else { throw FieldError(path: "", message: "pod or settings missing") }
            return PodRecord(pod: try PodManifest.stored(p), settings: try HuskSettings(json: JSONReader(s)))
        } catch let e as FieldError {
            throw HuskError(.invalidArgument, "\(path): \(e)")
        } catch {
            throw HuskError(.invalidArgument, "\(path): \(error)")
        }
    }
}

/// One pod's supervisor: kubelet's pod worker for a single pod (pod-semantics §1-§8) over
/// the runtime service (`Sandbox`, `ContainerRuntime`). The controller thread makes one
/// decision at a time, as kubelet's SyncPod does; container exits arrive on the event loop;
/// a stop runs on its own thread. All shared state is under `m`, and every change is written
/// to status.json at once.
public final class PodSupervisor: @unchecked Sendable {  // mutable state only under `m`
    public let pod: Pod
    let settings: HuskSettings
    let paths: PodPaths
    let loop: EventLoop
    let sandbox: Sandbox
    let runtime: ContainerRuntime
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
        sandbox = Sandbox(pod: record.pod, paths: paths)
        runtime = ContainerRuntime(sandbox: sandbox, loop: loop, keeper: keeper)
        self.keeper = keeper
        events = EventRecorder(pod: record.pod, path: paths.events)
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

    /// `name_namespace(uid)`, kubelet's format.Pod.
    var podDescription: String { "\(pod.metadata.name)_\(pod.metadata.namespace)(\(pod.metadata.uid))" }

    // MARK: - Status

    /// Writes status.json when something changed. Call under `m`.
    func publish() {
        guard dirty else { return }
        dirty = false
        state.refresh(pod: pod, now: Clock.rfc3339Nano())
        let doc = state.document(pod: pod, supervisorPid: getpid())
        try? Files.writeAtomically(paths.statusJSON, Array(doc.serialized().utf8), mode: 0o600)
    }

    /// Marks the state changed, writes it and wakes every waiter. Call under `m`.
    func changed() {
        dirty = true
        publish()
        m.broadcast()
    }

    // MARK: - Taking over from a dead supervisor

    static let statusUnknownMessage = TerminatedReason.statusUnknownMessage

    /// Takes over the pod a dead supervisor left (its last status.json): the pause process and
    /// every container that still runs are adopted (their output pipes come from the keeper),
    /// exits the keeper recorded while no supervisor ran are reported as they happened, and
    /// what ran but left no trace ends as ContainerStatusUnknown (137). A stop that was going
    /// on goes on, with what is left of its grace. Runs before the controller starts.
    func recover(_ previous: PodState) {
        let held = keeper?.takeInherited() ?? [:]
        var claimed: Set<String> = []
        var running = 0, exited = 0, lost = 0
        m.locked {
            let fresh = state.containers
            state = previous
            // The same pod.json: the containers are the same, in the same order.
            if state.containers.map(\.name) != fresh.map(\.name) { state.containers = fresh }
            recovered = true
            sandboxAttempt = 1
        }
        let pauseAlive = previous.sandboxReady && sandbox.adopt(
            pausePid: previous.pausePid, pauseStart: previous.pauseStart, podIP: previous.podIP,
            stateDirectory: paths.state, onPauseExit: { [self] status in pauseExited(status ?? .exited(255), attempt: 1) }, loop: loop)
        if !previous.sandboxReady {
            // Lost while the sandbox was being made: what exists of it is taken down and it is
            // made again.
            _ = sandbox.adopt(pausePid: previous.pausePid, pauseStart: previous.pauseStart, podIP: nil,
                              stateDirectory: paths.state, onPauseExit: { _ in }, loop: loop)
            if let mount = try? Cgroup2Mount.discover() { try? mount.group(paths.cgroup + "/pause").kill() }
            sandbox.teardown()
        }
        m.locked { sandboxAdopted = pauseAlive }
        let store = try? ImageStore(root: settings.root)
        for i in state.containers.indices {
            guard let l = m.locked({ state.containers[i].latest }), l.state != .exited else { continue }
            let c = spec(i)
            if l.state == .running, pauseAlive, let store, let ref = try? ImageReference(parsing: c.image),
               let image = (try? store.image(for: ref)) ?? nil, let layers = try? store.snapshotPaths(image) {
                do {
                    let h = try runtime.adopt(
                        c, image: image, layers: layers, attempt: l.attempt, id: l.id, logPath: l.logPath, pid: l.pid,
                        start: l.pidStart, outputs: held[l.id] ?? []
                    ) { [self] h, status in containerExited(h, status) }
                    claimed.insert(l.id)
                    running += 1
                    m.locked {
                        handles[c.name] = h
                        if let j = instanceIndex(i, l.id) {
                            // A postStart the dead supervisor was waiting for is not run again.
                            state.containers[i].instances[j].postStartDone = true
                            if Self.runnable(c.readinessProbe) == nil { state.containers[i].ready = true }
                        }
                    }
                    startProbes(i, h, c)
                    continue
                } catch {
                    // Gone: reported below from what the keeper recorded.
                }
            }
            let recorded = l.pid > 0 ? KeeperLink.recordedExit(stateDirectory: paths.state, pid: l.pid, start: l.pidStart, timeout: 0) : nil
            m.locked {
                guard let j = instanceIndex(i, l.id) else { return }
                var inst = state.containers[i].instances[j]
                inst.state = .exited
                inst.finishedAt = Clock.rfc3339Nano()
                inst.finishedMono = Clock.monotonicSeconds()
                if l.state == .created {
                    // It waited at its start gate, which closed with the supervisor.
                    inst.exitCode = 128
                    inst.reason = .startError
                    inst.message = "the pod's supervisor was lost before the container was started"
                    lost += 1
                } else if let recorded {
                    inst.exitCode = recorded.code
                    inst.reason = .exited(code: recorded.code)
                    exited += 1
                } else {
                    inst.exitCode = 137
                    inst.reason = .containerStatusUnknown
                    inst.message = Self.statusUnknownMessage
                    lost += 1
                }
                state.containers[i].instances[j] = inst
                state.containers[i].ready = false
            }
        }
        // Pipes of instances that are gone, and exits nobody asked for.
        for (id, _) in held where !claimed.contains(id) { keeper?.drop(id) }
        for name in Files.list(paths.exits) ?? [] { unlink(paths.exits + "/" + name) }
        let how = keeper?.lost ?? "lost"
        events.warning(
            "SupervisorRestarted",
            "The pod's supervisor was \(how); pid \(getpid()) took over: \(running) running container(s) adopted, \(exited) exited meanwhile, \(lost) lost")
        m.locked { changed() }
        if previous.terminating {
            // The stop goes on with what is left of its grace.
            let grace = previous.stopGrace ?? pod.spec.terminationGracePeriodSeconds
            let spent = previous.stopStartedMono.map { Int64(Clock.monotonicSeconds() - $0) } ?? 0
            requestStop(grace: max(0, grace - spent))
        } else if previous.sandboxReady && !pauseAlive {
            m.locked {
                state.sandboxReady = false
                state.reason = .sandboxChanged
                state.message = "the pod's sandbox (pause) ended while its supervisor was down; Husk does not re-create sandboxes, so the pod is stopped"
                changed()
            }
            events.warning("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            requestStop(grace: nil)
        }
    }

    // MARK: - The controller (kubelet's SyncPod, one step at a time)

    enum Step {
        case start(Int)
        case finish
    }

    enum Readiness {
        case go
        case later(Double)
        case never
    }

    /// Runs the pod until it is finished: sandbox, init containers, app containers, restarts;
    /// then stops whatever runs and takes the sandbox down.
    public func runController() {
        let (recovered, adopted, startMono) = m.locked { () -> (Bool, Bool, Double) in
            if !self.recovered {
                state.startTime = Clock.rfc3339Nano()
                state.startMono = Clock.monotonicSeconds()
                state.hostIP = sandbox.hostIP
                changed()
            }
            return (self.recovered, sandboxAdopted, state.startMono ?? Clock.monotonicSeconds())
        }
        // activeDeadlineSeconds counts from startTime, init containers included (§10).
        if let d = pod.spec.activeDeadlineSeconds {
            let left = max(0, startMono + Double(d) - Clock.monotonicSeconds())
            _ = loop.after(left) { [self] in deadlineExceeded() }
        }
        if (recovered && adopted) || createSandbox() {
            while case .start(let i) = nextStep() {
                startContainer(i)
            }
        }
        m.locked {
            controllerStopped = true
            m.broadcast()
        }
        terminate()
    }

    /// RunPodSandbox, retried with back-off while it fails (event FailedCreatePodSandBox).
    func createSandbox() -> Bool {
        while true {
            let attempt = m.locked { () -> Int in
                sandboxAttempt += 1
                return sandboxAttempt
            }
            if m.locked({ state.terminating }) { return false }
            do {
                try sandbox.start(onPauseExit: { [self] status in pauseExited(status, attempt: attempt) }, loop: loop)
                m.locked {
                    if let pause = sandbox.pause {
                        state.pausePid = pause.pid
                        state.pauseStart = ProcessInfo.stat(pause.pid)?.startTime ?? 0
                    }
                    state.sandboxReady = true
                    state.sandboxCreatedAt = Clock.rfc3339Nano()
                    state.podIP = sandbox.podIP
                    state.message = nil
                    changed()
                }
                return true
            } catch {
                // A volume that cannot be set up is kubelet's volume manager failing before any
                // sandbox exists: event FailedMount with the volume's error, no pod message.
                let mountFailure = error.message.hasPrefix("MountVolume.")
                let message = mountFailure ? "\(error)" : "Failed to create pod sandbox: \(error)"
                events.warning(mountFailure ? "FailedMount" : "FailedCreatePodSandBox", message)
                sandboxBackoff = sandboxBackoff == 0 ? 10 * scale : min(sandboxBackoff * 2, 300 * scale)
                let until = Clock.monotonicSeconds() + sandboxBackoff
                m.locked {
                    if !mountFailure { state.message = message }
                    state.sandboxError = message
                    changed()
                    while !state.terminating && Clock.monotonicSeconds() < until { m.wait(until: until) }
                }
            }
        }
    }

    func nextStep() -> Step {
        m.locked {
            while true {
                if state.terminating { return .finish }
                let now = Clock.monotonicSeconds()
                switch decide(now) {
                case .start(let i): return .start(i)
                case .finish: return .finish
                case .wait(let until):
                    publish()
                    m.wait(until: until)
                }
            }
        }
    }

    enum Decision {
        case start(Int)
        case wait(Double?)
        case finish
    }

    /// kubelet's computePodActions, for the next single action. Under `m`.
    func decide(_ now: Double) -> Decision {
        // Init containers: strictly one after another (§3); a sidecar counts as done once it
        // runs and its postStart returned (§4).
        if !state.initialized {
            for i in state.containers.indices where state.containers[i].kind != .app {
                let c = state.containers[i]
                if c.kind == .sidecar {
                    if let l = c.latest, l.state == .running {
                        // Running, its postStart returned and its startup probe passed (§4).
                        if l.postStartDone && l.startupDone { continue }
                        return .wait(nil)
                    }
                    if c.latest?.state == .created { return .wait(nil) }
                } else {
                    if let l = c.latest {
                        if l.state != .exited { return .wait(nil) }
                        if l.exitCode == 0 { continue }
                        if pod.spec.restartPolicy == .never {
                            // §3: the pod is killed and fails.
                            return .finish
                        }
                    }
                }
                switch readiness(i, now) {
                case .go: return .start(i)
                case .later(let t): return .wait(t)
                case .never: return .wait(nil)
                }
            }
            state.initialized = true
            dirty = true
        }
        // App containers in spec order (§5), restarted per restartPolicy (§8); sidecars are
        // restarted whatever the policy, while the pod runs (§4).
        var deadline: Double? = nil
        var appsDone = true
        for i in state.containers.indices where state.containers[i].kind != .initContainer {
            let c = state.containers[i]
            if c.kind == .app && c.done { continue }
            if let l = c.latest, l.state != .exited {
                if c.kind == .app { appsDone = false }
                continue
            }
            if c.kind == .app, let l = c.latest, l.state == .exited, c.waiting == nil || c.waiting?.reason.restartPolicyApplies == true {
                let restart: Bool
                switch pod.spec.restartPolicy {
                case .always: restart = true
                case .onFailure: restart = (l.exitCode ?? 1) != 0
                case .never: restart = false
                }
                if !restart {
                    state.containers[i].done = true
                    state.containers[i].waiting = nil
                    dirty = true
                    continue
                }
            }
            if c.kind == .app { appsDone = false }
            if c.kind == .sidecar && appsDoneForGood() { continue }
            switch readiness(i, now) {
            case .go: return .start(i)
            case .later(let t): deadline = min(deadline ?? t, t)
            case .never: break
            }
        }
        if appsDone { return .finish }
        return .wait(deadline)
    }

    /// Whether every app container has finished and none will be started again.
    func appsDoneForGood() -> Bool {
        state.containers.allSatisfy { $0.kind != .app || $0.done }
    }

    /// Whether container `i` may be started now (back-off, §7 and §8). Under `m`.
    func readiness(_ i: Int, _ now: Double) -> Readiness {
        let c = state.containers[i]
        if let w = c.waiting, w.reason.isRetried {
            guard let at = retryAt[c.name], at.isFinite else { return .never }
            if now >= at { return .go }
            if w.reason == .errImagePull, let failed = pullFailedAt[c.name] {
                // The next sync (kubelet's ~1 s) reports the back-off window.
                if now < failed + 1 { return .later(min(at, failed + 1)) }
                state.containers[i].waiting = (.imagePullBackOff, "Back-off pulling image \"\(c.image)\"")
                dirty = true
                events.normal("BackOff", "Back-off pulling image \"\(c.image)\"", c)
                events.warning("Failed", "Error: ImagePullBackOff", c)
            }
            return .later(at)
        }
        if let l = c.latest, l.state == .exited, let finished = l.finishedMono {
            if let e = crashBackoff[c.name], finished - e.stamp > 600 * scale { crashBackoff[c.name] = nil }
            if let e = crashBackoff[c.name], now - finished < e.delay {
                if c.waiting?.reason != .crashLoopBackOff {
                    state.containers[i].waiting = (
                        .crashLoopBackOff,
                        "back-off \(goDuration(e.delay / scale)) restarting failed container=\(c.name) pod=\(podDescription)"
                    )
                    dirty = true
                    events.warning("BackOff", "Back-off restarting failed container \(c.name) in pod \(podDescription)", c)
                }
                return .later(finished + e.delay)
            }
        }
        return .go
    }

    // MARK: - Starting a container (kubelet's startContainer)

    /// Pull, create, start, postStart; blocks until postStart returned.
    func startContainer(_ i: Int) {
        let c = spec(i)
        let now = Clock.monotonicSeconds()
        let st = m.locked { () -> ContainerState in
            // The restart is happening: advance the back-off (§8).
            if state.containers[i].latest?.state == .exited {
                let e = crashBackoff[c.name]
                crashBackoff[c.name] = (e == nil ? 10 * scale : min(e!.delay * 2, 300 * scale), now)
            }
            return state.containers[i]
        }
        guard let (image, layers) = ensureImage(i, c, st) else { return }
        if m.locked({ state.terminating }) { return }

        // CreateContainer.
        let attempt = (st.latest?.attempt).map { $0 + 1 } ?? 0
        let id = ContainerRuntime.newID()
        let logPath = paths.log(c.name, attempt: attempt)
        let handle: ContainerHandle
        do {
            handle = try runtime.create(c, image: image, layers: layers, attempt: attempt, id: id, logPath: logPath) {
                [self] h, status in containerExited(h, status)
            }
        } catch {
            if error.startError {
                // containerd: the task could not be created; the container ends as StartError.
                m.locked {
                    var inst = Instance(attempt: attempt, id: id, createdAt: Clock.rfc3339Nano(), logPath: logPath)
                    inst.state = .exited
                    inst.exitCode = 128
                    inst.reason = .startError
                    inst.message = error.message
                    inst.finishedAt = Clock.rfc3339Nano()
                    inst.finishedMono = Clock.monotonicSeconds()
                    addInstance(i, inst)
                    changed()
                }
            } else {
                m.locked {
                    state.containers[i].waiting = (error.waitingReason, error.message)
                    retryAt[c.name] = Clock.monotonicSeconds() + 10 * scale
                    changed()
                }
            }
            events.warning("Failed", "Error: \(error.message)", st)
            return
        }
        let terminating = m.locked { () -> Bool in
            var inst = Instance(attempt: attempt, id: id, createdAt: Clock.rfc3339Nano(), logPath: logPath)
            inst.pid = handle.pid
            inst.pidStart = ProcessInfo.stat(handle.pid)?.startTime ?? 0
            addInstance(i, inst)
            state.containers[i].waiting = nil
            state.containers[i].imageID = image.repoDigests.first ?? image.id.description
            retryAt[c.name] = nil
            handles[c.name] = handle
            changed()
            return state.terminating
        }
        events.normal("Created", "Created container: \(c.name)", st)
        if terminating { return }  // the stop sweeps it up

        // StartContainer.
        do {
            try runtime.start(handle)
        } catch {
            m.locked {
                if let j = instanceIndex(i, id) {
                    state.containers[i].instances[j].reason = .startError
                    state.containers[i].instances[j].exitCode = 128
                    state.containers[i].instances[j].message = error.message
                    changed()
                }
            }
            events.warning("Failed", "Error: \(error.message)", st)
            _ = m.wait(for: { handle.exit != nil }, until: Clock.monotonicSeconds() + 10)
            return
        }
        m.locked {
            if let j = instanceIndex(i, id) {
                if state.containers[i].instances[j].state == .created { state.containers[i].instances[j].state = .running }
                state.containers[i].instances[j].startedAt = Clock.rfc3339Nano()
                state.containers[i].instances[j].startedMono = Clock.monotonicSeconds()
                state.containers[i].instances[j].postStartDone = c.lifecycle?.postStart == nil
                state.containers[i].instances[j].startupDone = Self.runnable(c.startupProbe) == nil
                // Without a readiness probe a container is ready once it runs (§9); with one,
                // once the probe says so.
                state.containers[i].ready = false
                if c.lifecycle?.postStart == nil && Self.runnable(c.readinessProbe) == nil
                    && state.containers[i].instances[j].state == .running {
                    state.containers[i].ready = true
                }
            }
            changed()
        }
        events.normal("Started", "Started container \(c.name)", st)
        startProbes(i, handle, c)

        // postStart: awaited; the container is Waiting until it returns (§5).
        guard let hook = c.lifecycle?.postStart else { return }
        let failure = Hooks.run(hook, in: handle, runtime: runtime, container: c, deadline: nil) { [self] in
            m.locked { state.terminating || handle.exit != nil }
        }
        if let failure {
            let message = hookFailureMessage(hook, container: c, failure)
            events.warning("FailedPostStartHook", "PostStartHook failed", st)
            // The reason is set before the kill: no status may show the container exited
            // without it (`husk run -d` would take that for a container that ran and ended).
            m.locked {
                let willRestart = pod.spec.restartPolicy != .never || state.containers[i].kind == .sidecar
                if willRestart && !state.terminating { state.containers[i].waiting = (.postStartHookError, message) }
                changed()
            }
            killContainer(handle, c, grace: max(pod.spec.terminationGracePeriodSeconds, 0), message: "FailedPostStartHook")
            return
        }
        m.locked {
            if let j = instanceIndex(i, id) {
                state.containers[i].instances[j].postStartDone = true
                if state.containers[i].instances[j].state == .running && Self.runnable(c.readinessProbe) == nil {
                    state.containers[i].ready = true
                }
            }
            changed()
        }
    }

    /// kubelet's hook error messages (lifecycle/handlers.go).
    func hookFailureMessage(_ h: Handler, container c: ContainerSpec, _ failure: String) -> String {
        switch h {
        case .exec(let command):
            return "Exec lifecycle hook ([\(command.joined(separator: " "))]) for Container \"\(c.name)\" in Pod \"\(podDescription)\" failed - error: \(failure), message: \"\""
        case .httpGet(let g):
            return "HTTP lifecycle hook (\(g.path)) for Container \"\(c.name)\" in Pod \"\(podDescription)\" failed - error: \(failure)"
        case .sleep:
            return "Sleep lifecycle hook for Container \"\(c.name)\" in Pod \"\(podDescription)\" failed - error: \(failure)"
        case .tcpSocket, .grpc:
            return "Cannot run handler: \(failure)"
        }
    }

    func instanceIndex(_ i: Int, _ id: String) -> Int? {
        state.containers[i].instances.lastIndex { $0.id == id }
    }

    /// Records a new instance; only the newest two are kept (state and lastState).
    func addInstance(_ i: Int, _ inst: Instance) {
        state.containers[i].instances.append(inst)
        if state.containers[i].instances.count > 2 { state.containers[i].instances.removeFirst() }
        state.containers[i].restartCount = inst.attempt
    }

    /// EnsureImageExists (§7): the image and its layers, or nil with the container Waiting.
    func ensureImage(_ i: Int, _ c: ContainerSpec, _ st: ContainerState) -> (ImageRecord, [String])? {
        func fail(_ reason: WaitingReason, _ message: String, retry: Double) {
            m.locked {
                state.containers[i].waiting = (reason, message)
                retryAt[c.name] = retry
                changed()
            }
        }
        let store: ImageStore
        let sources: [LayoutSource]
        do {
            var options = ImageStoreOptions()
            if let cap = settings.maxLayerSize { options.maxLayerBytes = cap }
            store = try ImageStore(root: settings.root, options: options)
            sources = try settings.imageSources.map { (s) throws(ImageError) in try LayoutSource.parse(s) }
        } catch {
            fail(.imageInspectError, "Failed to inspect image \"\(c.image)\": \(error.message)", retry: Clock.monotonicSeconds() + 10 * scale)
            events.warning("InspectFailed", "Failed to inspect image \"\(c.image)\": \(error.message)", st)
            return nil
        }
        // Parse first: a malformed reference is InvalidImageName and is never retried.
        if (try? ImageReference(parsing: c.image)) == nil {
            let message = "Failed to apply default image tag \"\(c.image)\": couldn't parse image name \"\(c.image)\": invalid reference format"
            fail(.invalidImageName, message, retry: .infinity)
            events.warning("InspectFailed", message, st)
            events.warning("Failed", "Error: InvalidImageName", st)
            return nil
        }
        let present = (try? store.image(for: ImageReference(parsing: c.image))) ?? nil
        let willPull = c.imagePullPolicy == .always || (c.imagePullPolicy == .ifNotPresent && present == nil)
        if willPull {
            // Inside the image's back-off window nothing is tried (§7).
            let key = c.image
            if let e = m.locked({ pullBackoff[key] }), Clock.monotonicSeconds() - e.stamp < e.delay {
                fail(.imagePullBackOff, "Back-off pulling image \"\(c.image)\"", retry: e.stamp + e.delay)
                events.normal("BackOff", "Back-off pulling image \"\(c.image)\"", st)
                events.warning("Failed", "Error: ImagePullBackOff", st)
                return nil
            }
            events.normal("Pulling", "Pulling image \"\(c.image)\"", st)
        }
        let started = Clock.monotonicSeconds()
        do {
            let (image, pulled) = try store.ensure(c.image, policy: c.imagePullPolicy, sources: sources)
            let layers = try store.snapshotPaths(image)
            try store.lease("pod-\(pod.metadata.uid)-\(c.name)", image: image.id)
            if pulled {
                let took = goDuration(Clock.monotonicSeconds() - started)
                events.normal("Pulled", "Successfully pulled image \"\(c.image)\" in \(took) (\(took) including waiting). Image size: \(image.size) bytes.", st)
                m.locked { pullBackoff[c.image] = nil }
            } else {
                events.normal("Pulled", "Container image \"\(c.image)\" already present on machine", st)
            }
            return (image, layers)
        } catch {
            switch error.reason {
            case .errImageNeverPull:
                fail(.errImageNeverPull, error.message, retry: Clock.monotonicSeconds() + 10 * scale)
                events.warning("ErrImageNeverPull", error.message, st)
                events.warning("Failed", "Error: ErrImageNeverPull", st)
            case .invalidImageName:
                fail(.invalidImageName, error.message, retry: .infinity)
                events.warning("InspectFailed", error.message, st)
                events.warning("Failed", "Error: InvalidImageName", st)
            default:
                let now = Clock.monotonicSeconds()
                let entry = m.locked { () -> (delay: Double, stamp: Double) in
                    let e = pullBackoff[c.image]
                    let next = (delay: e == nil ? 10 * scale : min(e!.delay * 2, 300 * scale), stamp: now)
                    pullBackoff[c.image] = next
                    pullFailedAt[c.name] = now
                    return next
                }
                let message = error.message.hasPrefix("Failed to pull image") ? error.message : "Failed to pull image \"\(c.image)\": \(error.message)"
                fail(.errImagePull, message, retry: entry.stamp + entry.delay)
                events.warning("Failed", message, st)
                events.warning("Failed", "Error: ErrImagePull", st)
            }
            return nil
        }
    }

    // MARK: - Exits

    /// A container's init process ended (loop thread): what is left of the container is
    /// killed, its output drained into the log, and the exit recorded.
    /// `status` nil: the process was adopted from a dead supervisor and how it ended is not
    /// known (kubelet's ContainerStatusUnknown, pod-semantics §2).
    func containerExited(_ h: ContainerHandle, _ status: ExitStatus?) {
        // The OOM killer struck in the container's group (memory.events, DESIGN §7):
        // containerd's OOMKilled.
        let oomKilled = (h.cgroup.read("memory.events") ?? "").split(separator: "\n").contains {
            $0.hasPrefix("oom_kill ") && !$0.hasSuffix(" 0")
        }
        try? h.cgroup.kill()
        runtime.drainOutput(h)
        h.attachLock.locked { h.input = nil }
        let message = m.locked { () -> String? in
            guard let i = state.index(h.name), let j = instanceIndex(i, h.id) else { return nil }
            let inst = state.containers[i].instances[j]
            return inst.message
        }
        let code = status?.code ?? 137
        let policy = spec(m.locked { state.index(h.name) ?? 0 }).terminationMessagePolicy
        let termination = message == nil ? runtime.terminationMessage(h, policy: policy, exitCode: code, logPath: paths.log(h.name, attempt: h.attempt)) : nil
        m.locked {
            h.exit = status ?? .signaled(SIGKILL, coreDumped: false)
            if handles[h.name] === h { handles[h.name] = nil }
            if let i = state.index(h.name), let j = instanceIndex(i, h.id) {
                var inst = state.containers[i].instances[j]
                inst.state = .exited
                inst.finishedAt = Clock.rfc3339Nano()
                inst.finishedMono = Clock.monotonicSeconds()
                if status == nil {
                    inst.exitCode = 137
                    inst.reason = .containerStatusUnknown
                    inst.message = Self.statusUnknownMessage
                } else if inst.reason == nil {
                    inst.exitCode = code
                    inst.reason = .exited(code: code, oomKilled: oomKilled)
                }
                if inst.message == nil, let termination { inst.message = termination }
                state.containers[i].instances[j] = inst
                state.containers[i].ready = false
            }
            changed()
        }
        // Attached clients learn the exit once the status says it.
        h.detachAll(exitCode: status?.code ?? 137)
        let dir = h.instanceDir
        Threads.spawn("cleanup") { try? Files.removeTree(dir) }
    }

    /// The pause process died (loop thread). Husk does not re-create sandboxes (kubelet
    /// would, §3): the pod is stopped and reported with the reason.
    func pauseExited(_ status: ExitStatus, attempt: Int) {
        let unexpected = m.locked { () -> Bool in
            guard !terminationStarted, state.sandboxReady, attempt == sandboxAttempt else { return false }
            state.sandboxReady = false
            state.reason = .sandboxChanged
            state.message = "the pod's sandbox (pause) \(status); Husk does not re-create sandboxes, so the pod is stopped"
            changed()
            return true
        }
        if unexpected {
            events.warning("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            requestStop(grace: nil)
        }
    }

    /// kubelet's activeDeadlineHandler: the pod is Failed with DeadlineExceeded and killed
    /// with the normal grace (§10). Loop thread.
    func deadlineExceeded() {
        let message = "Pod was active on the node longer than the specified deadline"
        let hit = m.locked { () -> Bool in
            guard !state.finished, !stopRequested, !state.phase.isTerminal else { return false }
            state.phase = .failed
            state.reason = .deadlineExceeded
            state.message = message
            changed()
            return true
        }
        if hit {
            events.normal("DeadlineExceeded", message)
            requestStop(grace: nil)
        }
    }

    // MARK: - Stopping (kubelet's killContainer and KillPod, §6)

    /// Asks the pod to stop; returns at once. The smallest grace asked for wins.
    public func requestStop(grace: Int64?) {
        let first = m.locked { () -> Bool in
            if let g = grace { stopGrace = min(stopGrace ?? g, g) }
            state.stopGrace = stopGrace
            if stopRequested { return false }
            stopRequested = true
            state.terminating = true
            if state.stopStartedMono == nil { state.stopStartedMono = Clock.monotonicSeconds() }
            changed()
            return true
        }
        if first { Threads.spawn("stop") { [self] in terminate() } }
    }

    /// Kills every container in parallel, then the sandbox; returns when the pod is finished.
    /// Runs once; a second caller waits for the first.
    func terminate() {
        let mine = m.locked { () -> Bool in
            if terminationStarted { return false }
            terminationStarted = true
            state.terminating = true
            changed()
            return true
        }
        guard mine else {
            _ = m.wait(for: { state.finished })
            return
        }
        // Pod-level grace: the request's or the spec's, at least 1 (pod workers), then at
        // least 2 (KillPod's minimum).
        var grace = m.locked { stopGrace ?? pod.spec.terminationGracePeriodSeconds }
        if grace < 1 { grace = 1 }
        if grace < 2 { grace = 2 }
        killAll(grace: grace)
        // The controller may be in the middle of a step (a pull, a create): once it has
        // stopped, anything it started is killed at once.
        _ = m.wait(for: { controllerStopped })
        killAll(grace: 0)
        teardown()
        m.locked {
            state.finished = true
            state.sandboxReady = false
            state.terminating = false
            for i in state.containers.indices {
                if state.containers[i].waiting?.reason.clearedWhenPodFinishes == true {
                    state.containers[i].waiting = nil
                }
                state.containers[i].done = true
            }
            if !state.phase.isTerminal {
                state.phase = .compute(
                    restartPolicy: pod.spec.restartPolicy,
                    statuses: state.apiStatuses(podHasInit: !pod.spec.initContainers.isEmpty), terminating: true)
                if !state.phase.isTerminal {
                    // Nothing runs any more: a pod stopped before its containers ended fails.
                    state.phase = .failed
                }
            }
            changed()
        }
    }

    /// Kills every live container in parallel and waits for all; `grace` 0 means SIGKILL now.
    func killAll(grace: Int64) {
        let live = m.locked { handles.values.filter { $0.exit == nil } }
        guard !live.isEmpty else { return }
        let done = Monitor()
        final class Count: @unchecked Sendable { var n = 0 }  // guarded by `done`
        let count = Count()
        for h in live {
            let c = m.locked { state.index(h.name).map { spec($0) } }
            guard let c else { continue }
            Threads.spawn("kill") { [self] in
                if grace == 0 {
                    runtime.kill(h)
                    _ = m.wait(for: { h.exit != nil }, until: Clock.monotonicSeconds() + 10)
                } else {
                    killContainer(h, c, grace: grace, message: nil, ordered: true)
                }
                done.locked {
                    count.n += 1
                    done.broadcast()
                }
            }
        }
        _ = done.wait(for: { count.n == live.count })
    }

    /// killContainer: Killing event, preStop within the grace, the stop signal, SIGKILL when
    /// the rest of the grace (at least 2 s) is spent. Blocks until the container exited.
    /// `ordered` (the whole pod is being killed): a sidecar, after its preStop, waits for its
    /// turn: until every app container and every sidecar declared after it has terminated, at
    /// most the rest of its grace, which the wait uses up (§4, kubelet's terminationOrdering).
    func killContainer(_ h: ContainerHandle, _ c: ContainerSpec, grace: Int64, message: String?, ordered: Bool = false) {
        let st = m.locked { state.index(h.name).map { state.containers[$0] } }
        events.normal("Killing", message ?? "Stopping container \(c.name)", st)
        if h.gate != nil {
            // Created but never started: nothing to stop gracefully.
            runtime.kill(h)
            _ = m.wait(for: { h.exit != nil }, until: Clock.monotonicSeconds() + 10)
            return
        }
        var grace = grace
        let start = Clock.monotonicSeconds()
        if let pre = c.lifecycle?.preStop, grace > 0, m.locked({ h.exit == nil }) {
            let hookDone = Monitor()
            final class Result: @unchecked Sendable {  // guarded by `hookDone`
                var done = false
                var failure: String? = nil
            }
            let result = Result()
            let deadline = start + Double(grace)
            Threads.spawn("prestop") { [self] in
                let failure = Hooks.run(pre, in: h, runtime: runtime, container: c, deadline: deadline) { false }
                hookDone.locked {
                    result.done = true
                    result.failure = failure
                    hookDone.broadcast()
                }
            }
            _ = hookDone.wait(for: { result.done }, until: deadline)
            if let failure = hookDone.locked({ result.failure }) {
                _ = failure
                events.warning("FailedPreStopHook", "PreStopHook failed", st)
            }
            grace -= Int64(Clock.monotonicSeconds() - start)
        }
        if ordered, grace > 0, let i = m.locked({ state.index(h.name) }), m.locked({ state.containers[i].kind == .sidecar }) {
            let waitStart = Clock.monotonicSeconds()
            _ = m.wait(for: { [self] in
                state.containers.indices.allSatisfy { j in
                    let o = state.containers[j]
                    guard o.kind == .app || (o.kind == .sidecar && j > i), let other = handles[o.name] else { return true }
                    return other.exit != nil
                }
            }, until: waitStart + Double(grace))
            // Whole seconds, truncated, as kubelet counts them.
            grace -= Int64(Clock.monotonicSeconds() - waitStart)
        }
        if grace < 2 { grace = 2 }
        // StopContainer(timeout: grace).
        runtime.signal(h, h.stopSignal)
        if !m.wait(for: { h.exit != nil }, until: Clock.monotonicSeconds() + Double(grace)) {
            runtime.kill(h)
            _ = m.wait(for: { h.exit != nil }, until: Clock.monotonicSeconds() + 10)
        }
    }

    /// StopPodSandbox and RemoveContainer for all: container cgroups, pause, the address,
    /// the pod's mounts and cgroup.
    func teardown() {
        if let mount = try? Cgroup2Mount.discover() {
            for c in state.containers {
                try? mount.group(paths.cgroup + "/" + c.name).remove(timeout: 10)
            }
        }
        sandbox.teardown()
    }

    // MARK: - Attach (for husk attach and the control socket)

    /// Attaches `conn` to container `name`'s streams: `ready` gets whether it has a terminal,
    /// then the output goes to `conn` in frames (`AttachClient`); with `stdin`, what comes in
    /// on `conn` (after `pending`, read with the request) goes to the container's stdin, whose
    /// end closes it when the container has `stdinOnce`. Returns once the client is done.
    func attach(container name: String?, conn: FD, stdin: Bool, pending: [UInt8], ready: (Bool) -> Void) throws(HuskError) {
        let target = name ?? pod.spec.containers.first?.name ?? ""
        guard let i = m.locked({ state.index(target) }) else { throw HuskError(.notFound, "no container \(target) in pod \(pod.metadata.name)") }
        let c = spec(i)
        guard let h = m.locked({ handles[target] }), h.exit == nil, h.gate == nil else {
            throw HuskError(.invalidArgument, "container \(target) is not running")
        }
        if stdin && !c.stdin {
            throw HuskError(.invalidArgument, "container \(target) has no stdin to attach to: its spec does not set stdin: true")
        }
        ready(h.tty)
        let client = AttachClient(conn: conn)
        h.attachLock.locked { h.attached.append(client) }
        if stdin, let input = h.attachLock.locked({ h.input }) {
            var ok = pending.isEmpty || (try? input.writeAll(pending)) != nil
            var buf = [UInt8](repeating: 0, count: 65536)
            while ok {
                let n = buf.withUnsafeMutableBytes { read(conn.raw, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                ok = (try? input.writeAll(Array(buf[0..<n]))) != nil
            }
            if h.tty {
                _ = [UInt8(4)].withUnsafeBytes { write(input.raw, $0.baseAddress, 1) }  // ^D, as a terminal's EOF
            }
            if c.stdinOnce {
                // The first attached client ended its input: so does the container's stdin.
                runtime.closeInput(h)
            }
        } else {
            // Nothing comes from the client: the end of its side means it has gone.
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buf.withUnsafeMutableBytes { read(conn.raw, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
            }
            client.abandon()
        }
        client.waitDone()
    }

    // MARK: - Exec (for husk exec and the control socket)

    /// Runs `argv` in container `name` (nil: the first app container) with the given stdio;
    /// returns the exit code.
    /// With `tty` the process gets a terminal of the container's own and `started` gets the
    /// pty master (the caller relays it); `started` runs once the process runs.
    public func exec(container name: String?, argv: [String], stdio: [FD?], tty: Bool = false,
                     started: (FD?) -> Void = { _ in }) throws(HuskError) -> Int32 {
        let target = name ?? pod.spec.containers.first?.name ?? ""
        guard let h = m.locked({ handles[target] }), h.exit == nil, h.gate == nil else {
            throw HuskError(.invalidArgument, "container \(target) is not running")
        }
        let (p, master) = try runtime.exec(h, argv: argv, stdio: stdio, tty: tty)
        started(master)
        let status = (try? p.pidfd.wait()) ?? .exited(255)
        return status.code
    }
}
