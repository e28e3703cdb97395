import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

extension PodSupervisor {
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
            do throws(HuskError) {
                // kubelet mounts the volumes before it asks for the sandbox; the record beside
                // the data tells `husk gc` whose it is when the state is lost.
                try writeDataRecord()
                try volumes.prepare()
                try runtime.runPodSandbox(onPauseExit: { [self] status in pauseExited(status, attempt: attempt) })
                do {
                    try SandboxConfigBuilder(pod: pod, paths: paths).writeHostsFile(podIP: sandbox.podIP)
                } catch {
                    runtime.removePodSandbox(containerNames: [])
                    throw error
                }
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

    /// A copy of the pod record in the pod's data directory.
    func writeDataRecord() throws(HuskError) {
        do {
            try Files.makeDirectories(paths.data, mode: 0o750)
            let record = PodRecord(pod: pod, settings: settings)
            try Files.writeAtomically(paths.data + "/pod.json", Array(record.json.serialized().utf8), mode: 0o600)
        } catch {
            throw HuskError(.system, "cannot create the pod's directories", cause: error)
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
                    // A status.json that could not be written is tried again each second.
                    m.wait(until: publishFailing ? min(until ?? now + 1, now + 1) : until)
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
}
