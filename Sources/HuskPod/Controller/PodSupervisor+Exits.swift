import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

extension PodSupervisor {
    // MARK: - Exits

    /// A container's init process ended (loop thread): what is left of the container is
    /// killed, its output drained into the log, and the exit recorded.
    /// `status` nil: the process was adopted from a dead supervisor and how it ended is not
    /// known (kubelet's ContainerStatusUnknown, pod-semantics §2).
    func containerExited(_ h: ContainerHandle, _ status: ExitStatus?) {
        // The exit's time is when it was seen, before its output is drained and its message
        // read (which may wait on the disk).
        let finishedAt = Clock.rfc3339Nano()
        let finishedMono = Clock.monotonicSeconds()
        let oomKilled = runtime.finishExit(h)
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
                inst.finishedAt = finishedAt
                inst.finishedMono = finishedMono
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
}
