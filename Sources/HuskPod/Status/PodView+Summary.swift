/// What the command line concludes from a pod's status: typed, so that it needs no root to test.
extension PodView {
    /// Every app container (after the init containers) has been started and its postStart
    /// returned (a container without one counts as soon as it started, even if it has
    /// exited since; one whose postStart failed never does).
    public var allStarted: Bool {
        state.initialized && state.containers.filter { $0.kind == .app }.allSatisfy { c in
            guard let l = c.latest, l.startedAt != nil else { return false }
            if let w = c.waiting, w.reason.isError { return false }
            return l.postStartDone
        }
    }

    /// A container waiting on an error, if one is.
    public var stuck: (container: String, reason: WaitingReason, message: String)? {
        for c in state.containers {
            if let w = c.waiting, w.reason.isError { return (c.name, w.reason, w.message) }
        }
        return nil
    }

    /// `husk run -d` can return: the pod started, finished, failed, is stuck, or is lost.
    public var isSettled: Bool {
        state.finished || !supervisorAlive || state.phase.isTerminal || allStarted || stuck != nil || state.sandboxError != nil
    }

    /// What ended a failed pod: the first container that did not exit 0.
    public var failureDetail: String {
        for c in state.containers {
            if let l = c.latest, l.state == .exited, let code = l.exitCode, code != 0 {
                return ": container \(c.name) exited with \(code) (\((l.reason ?? .error).rawValue))"
            }
        }
        if let m = state.message { return ": \(m)" }
        return ""
    }

    /// The STATUS column (kubectl printPod): the pod's reason or phase, refined by the init
    /// and app containers' states.
    public var statusColumn: String {
        if !state.finished && !supervisorAlive { return PodPhase.unknown.rawValue }
        var reason = state.reason?.rawValue ?? phase.rawValue
        let inits = state.containers.filter { $0.kind != .app }
        var initializing = false
        for (i, c) in inits.enumerated() {
            if let l = c.latest, l.state == .exited, l.exitCode == 0, c.waiting == nil { continue }
            if c.kind == .sidecar, c.isRunning { continue }
            if let l = c.latest, l.state == .exited, c.waiting == nil {
                reason = "Init:" + (l.reason?.rawValue ?? "ExitCode:\(l.exitCode ?? 0)")
            } else if let w = c.waiting, w.reason != .podInitializing {
                reason = "Init:" + w.reason.rawValue
            } else {
                reason = "Init:\(i)/\(inits.count)"
            }
            initializing = true
            break
        }
        if !initializing || state.initialized {
            var hasRunning = false
            for c in state.containers.reversed() where c.kind == .app {
                if let w = c.waiting {
                    reason = w.reason.rawValue
                } else if let l = c.latest, l.state == .exited {
                    reason = l.reason?.rawValue ?? "ExitCode:\(l.exitCode ?? 0)"
                } else if c.isRunning, c.latest?.postStartDone == true {
                    hasRunning = true
                } else if c.latest != nil || !state.initialized {
                    reason = state.initialized ? WaitingReason.containerCreating.rawValue : reason
                }
            }
            if reason == TerminatedReason.completed.rawValue && hasRunning { reason = PodPhase.running.rawValue }
        }
        if state.terminating && !state.finished { reason = "Terminating" }
        return reason
    }
}
