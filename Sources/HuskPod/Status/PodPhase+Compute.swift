extension PodPhase {
    /// kubelet's getPhase (pod-semantics §1) from the API statuses of every init and app
    /// container. `terminating`: the pod is being stopped or has been ("terminal" in §1 rule 5).
    public static func compute(restartPolicy: RestartPolicy, statuses: [ContainerStatus], terminating: Bool) -> PodPhase {
        var pendingInit = 0, failedInit = 0, unknown = 0, running = 0, waiting = 0, stopped = 0, succeeded = 0
        let anyAppStarted = statuses.contains { $0.kind == .app && $0.containerID != nil }
        for s in statuses {
            let lastExit = s.lastState?.exitCode
            switch s.kind {
            case .initContainer:
                if let t = s.state.terminated {
                    if t.exitCode != 0 { failedInit += 1 }
                } else if s.state.isWaiting, let lastExit, lastExit != 0 {
                    failedInit += 1
                } else if s.state.isWaiting && lastExit == 0 {
                    // done
                } else {
                    pendingInit += 1
                }
            case .sidecar:
                if s.state.isRunning {
                    running += 1
                    if !s.started { pendingInit += 1 }
                } else if s.state.terminated != nil || s.lastState != nil {
                    // ignored
                } else {
                    pendingInit += 1
                    waiting += 1
                }
            case .app:
                if s.state.isRunning {
                    running += 1
                } else if let t = s.state.terminated {
                    stopped += 1
                    if t.exitCode == 0 { succeeded += 1 }
                } else if s.lastState != nil {
                    stopped += 1
                } else {
                    waiting += 1
                }
            }
        }
        if failedInit > 0 && restartPolicy == .never { return .failed }
        if pendingInit > 0 && !anyAppStarted { return .pending }
        if waiting > 0 { return .pending }
        if running > 0 && unknown == 0 { return .running }
        if running == 0 && stopped > 0 && unknown == 0 {
            if terminating { return stopped == succeeded ? .succeeded : .failed }
            if restartPolicy == .always { return .running }
            if stopped == succeeded { return .succeeded }
            if restartPolicy == .never { return .failed }
            return .running
        }
        return .pending
    }
}
