import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension PodSupervisor {
    // MARK: - Stopping (kubelet's killContainer and KillPod, §6)

    /// Asks the pod to stop; returns at once. The smallest grace asked for wins: a shorter
    /// one during a stop moves every container's SIGKILL to at most that grace (at least 2 s)
    /// from now, as kubelet's pod workers do (issue 16 #4).
    public func requestStop(grace: Int64?) {
        let first = m.locked { () -> Bool in
            if let g = grace, stopRequested, g < (stopGrace ?? pod.spec.terminationGracePeriodSeconds) {
                let by = Clock.monotonicSeconds() + Double(max(g, 2))
                state.killByMono = min(state.killByMono ?? by, by)
                killBy.withLock { $0 = state.killByMono }
                changed()
            }
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
                    runtime.killContainer(h)
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
    /// Every wait ends early when a shorter grace moves the pod's kill deadline. The progress
    /// is recorded with the instance: a stop a dead supervisor began goes on where it was.
    func killContainer(_ h: ContainerHandle, _ c: ContainerSpec, grace: Int64, message: String?, ordered: Bool = false) {
        let (st, begun) = m.locked { () -> (ContainerState?, Instance?) in
            let i = state.index(h.name)
            let inst = i.flatMap { i in instanceIndex(i, h.id).map { state.containers[i].instances[$0] } }
            return (i.map { state.containers[$0] }, inst?.preStopMono != nil || inst?.killAtMono != nil ? inst : nil)
        }
        let start = Clock.monotonicSeconds()
        if let killAt = begun?.killAtMono {
            // The stop signal went out before this supervisor took over: only SIGKILL is left.
            if !exitWait(h, until: killAt) {
                runtime.killContainer(h)
                _ = m.wait(for: { h.exit != nil }, until: Clock.monotonicSeconds() + 10)
            }
            return
        }
        if begun == nil { events.normal("Killing", message ?? "Stopping container \(c.name)", st) }
        if !h.started {
            // Created but never started: nothing to stop gracefully.
            runtime.killContainer(h)
            _ = m.wait(for: { h.exit != nil }, until: Clock.monotonicSeconds() + 10)
            return
        }
        var grace = grace
        // A preStop a dead supervisor started is not run again (its process may still run).
        if let pre = c.lifecycle?.preStop, grace > 0, begun == nil, m.locked({ h.exit == nil }) {
            final class Result: @unchecked Sendable {  // guarded by `m`
                var done = false
                var failure: String? = nil
            }
            let result = Result()
            let deadline = start + Double(grace)
            recordStop(h) { $0.preStopMono = start }
            Threads.spawn("prestop") { [self] in
                let failure = Hooks.run(pre, in: h, runtime: runtime, container: c, deadline: deadline) { false }
                m.locked {
                    result.done = true
                    result.failure = failure
                    m.broadcast()
                }
            }
            _ = stopWait({ result.done }, until: deadline)
            if m.locked({ result.failure }) != nil {
                events.warning("FailedPreStopHook", "PreStopHook failed", st)
            }
            grace -= Int64(Clock.monotonicSeconds() - start)
        }
        if ordered, grace > 0, let i = m.locked({ state.index(h.name) }), m.locked({ state.containers[i].kind == .sidecar }) {
            let waitStart = Clock.monotonicSeconds()
            _ = stopWait({ [self] in
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
        // StopContainer(timeout: grace), with SIGKILL no later than a shorter grace's deadline.
        if let by = m.locked({ state.killByMono }) { grace = min(grace, max(0, Int64((by - Clock.monotonicSeconds()).rounded(.up)))) }
        if grace <= 0 {
            runtime.killContainer(h)
            _ = m.wait(for: { h.exit != nil }, until: Clock.monotonicSeconds() + 10)
            return
        }
        var signalled = false
        runtime.stopContainer(h, timeout: Double(grace)) { [self] deadline in
            guard !signalled else {
                // Called right after the SIGKILL: note when, then wait for the exit, whatever
                // the deadlines say.
                let at = Clock.rfc3339Nano()
                Threads.spawn("stop-record") { [self] in recordStop(h) { $0.sigkillAt = at } }
                return m.wait(for: { h.exit != nil }, until: deadline)
            }
            signalled = true
            // Recorded on the side: the SIGKILL's timing never waits for `m` or the disk.
            Threads.spawn("stop-record") { [self] in recordStop(h) { $0.killAtMono = deadline } }
            return exitWait(h, until: deadline)
        }
    }

    /// Waits for the container's init to end, polling its pidfd (no lock, no I/O), until
    /// `deadline` or, when a shorter grace came meanwhile, the pod's kill deadline. Once it
    /// ended, waits (at most 2 s) for the loop to record the exit. Returns whether it ended.
    func exitWait(_ h: ContainerHandle, until deadline: Double) -> Bool {
        while true {
            let end = min(deadline, killBy.withLock { $0 } ?? .infinity)
            let now = Clock.monotonicSeconds()
            let ended = h.process.pidfd.waitForExit(timeout: max(0, min(end - now, 0.1)))
            if ended {
                _ = m.wait(for: { h.exit != nil }, until: Clock.monotonicSeconds() + 2)
                return true
            }
            if Clock.monotonicSeconds() >= end { return false }
        }
    }

    /// Records stop progress in the container's instance (and status.json).
    func recordStop(_ h: ContainerHandle, _ update: (inout Instance) -> Void) {
        m.locked {
            guard let i = state.index(h.name), let j = instanceIndex(i, h.id) else { return }
            update(&state.containers[i].instances[j])
            changed()
        }
    }

    /// Waits until `condition` (checked under `m`) holds or `deadline` passes, and no later
    /// than the pod's kill deadline when a shorter grace set one meanwhile. Returns whether
    /// the condition holds.
    func stopWait(_ condition: () -> Bool, until deadline: Double) -> Bool {
        while true {
            let (done, end) = m.locked { (condition(), min(deadline, state.killByMono ?? .infinity)) }
            if done { return true }
            if Clock.monotonicSeconds() >= end { return false }
            // Woken by the condition, or by a kill deadline earlier than `end`.
            _ = m.wait(for: { condition() || (state.killByMono ?? .infinity) < end }, until: end)
        }
    }

    /// StopPodSandbox and RemoveContainer for all: container cgroups, pause, the address,
    /// the pod's mounts and cgroup; then the volumes.
    func teardown() {
        runtime.removePodSandbox(containerNames: state.containers.map(\.name))
        volumes.teardown()
    }
}
