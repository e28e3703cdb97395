import HuskSystem

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

/// How `husk run -d` ends once the pod has settled (`isSettled`).
public enum StartOutcome: Equatable, Sendable {
    /// Every app container started, the pod succeeded, or nothing is known to be wrong.
    case started
    /// The pod failed or its supervisor is gone: why.
    case failed(String)
    /// A container (or the sandbox) is stuck on an error: which and why.
    case waiting(String)
}

extension PodView {
    /// What became of the pod's start, from a settled view.
    public var startOutcome: StartOutcome {
        if state.phase == .failed { return .failed("pod \(qualifiedName) failed\(failureDetail)") }
        if state.phase == .succeeded || allStarted { return .started }
        if !supervisorAlive { return .failed("the supervisor of pod \(qualifiedName) exited; see \(paths.supervisorLog)") }
        if let (c, reason, message) = stuck {
            return .waiting("pod \(qualifiedName): container \(c) is waiting: \(reason.rawValue): \(message)")
        }
        if let e = state.sandboxError { return .waiting("pod \(qualifiedName): \(e)") }
        return .started
    }

    /// The container a command means: `requested`, which must be one of the pod's, or as
    /// kubectl defaults, the first app container; then `note` is what kubectl says about the
    /// choice when there was one to make.
    public func pickContainer(_ requested: String?) throws(HuskError) -> (name: String, note: String?) {
        let all = pod.spec.initContainers.map(\.name) + pod.spec.containers.map(\.name)
        if let requested {
            guard all.contains(requested) else {
                throw HuskError(.notFound, "container \(requested) is not valid for pod \(pod.metadata.name): choose one of: [\(all.joined(separator: " "))]")
            }
            return (requested, nil)
        }
        let first = pod.spec.containers[0].name
        guard all.count > 1 else { return (first, nil) }
        let others = pod.spec.containers.map(\.name) + pod.spec.initContainers.map { "\($0.name) (init)" }
        return (first, "Defaulted container \"\(first)\" out of: \(others.joined(separator: ", "))")
    }

    /// Throws unless the pod runs (its supervisor is alive and it has not finished): exec and
    /// attach need it to.
    public func requireRunning() throws(HuskError) {
        guard supervisorAlive, !state.finished else { throw HuskError(.invalidState, "pod \(qualifiedName) is not running") }
    }

    /// The instance of container `name` whose log `husk logs` shows: the latest, or with
    /// `previous` the one before it (after a restart).
    public func logInstance(container name: String, previous: Bool) throws(HuskError) -> Instance {
        guard let c = state.containers.first(where: { $0.name == name }) else {
            throw HuskError(.notFound, "container \(name) is not in pod \(qualifiedName)")
        }
        if previous {
            guard let p = c.previous else {
                throw HuskError(.notFound, "previous terminated container \"\(name)\" in pod \"\(pod.metadata.name)\" not found")
            }
            return p
        }
        guard let l = c.latest else {
            let reason = (c.waiting?.reason ?? (pod.spec.initContainers.isEmpty ? .containerCreating : .podInitializing)).rawValue
            throw HuskError(.invalidState, "container \"\(name)\" in pod \"\(pod.metadata.name)\" is waiting to start: \(reason)")
        }
        return l
    }

    /// Instance `id` of container `name` has exited or is gone, or the pod has stopped: its
    /// log grows no more.
    public func hasEnded(container name: String, instance id: String) -> Bool {
        let inst = state.containers.first { $0.name == name }?.instances.first { $0.id == id }
        return inst == nil || inst?.state == .exited || isStopped
    }
}
