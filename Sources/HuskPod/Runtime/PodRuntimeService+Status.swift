import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// What the runtime knows of one container instance (CRI `ContainerStatus` without the
/// parts of its config: image, labels and mounts are the caller's).
public struct ContainerRuntimeStatus: Sendable, Equatable {
    /// CRI `ContainerState`.
    public enum State: Sendable, Equatable { case created, running, exited, unknown }
    public var id: String
    public var name: String
    public var attempt: Int
    public var state: State
    /// RFC 3339 with nanoseconds.
    public var createdAt: String
    public var startedAt: String?
    public var finishedAt: String?
    /// 128+signal for a signal (containerd's exit status of a task).
    public var exitCode: Int32?
    /// containerd's reason of an exited container: `OOMKilled`, `Completed` (0) or `Error`.
    public var reason: String?
    public var pid: Int32?
    public var logPath: String
}

extension PodRuntimeService {
    /// CRI ContainerStatus, the runtime's part.
    public func containerStatus(_ h: ContainerHandle) -> ContainerRuntimeStatus {
        let (startedAt, finished) = h.attachLock.locked { (h.startedAt, h.finished) }
        var s = ContainerRuntimeStatus(
            id: h.id, name: h.name, attempt: h.attempt, state: .created, createdAt: h.createdAt, startedAt: startedAt,
            logPath: h.logPath)
        if let finished {
            // An exit not known (the process ended while no supervisor ran): UNKNOWN.
            s.state = finished.status == nil ? .unknown : .exited
            s.finishedAt = finished.at
            if let status = finished.status {
                s.exitCode = status.code
                s.reason = oomKilled(h) ? "OOMKilled" : status.code == 0 ? "Completed" : "Error"
            }
        } else if h.started {
            s.state = .running
            s.pid = h.pid
        }
        return s
    }

    /// CRI ContainerStats: the figures of the container's cgroup.
    public func containerStats(_ h: ContainerHandle) -> CgroupStats {
        Engine.stats(h.cgroup)
    }

    /// CRI UpdateContainerResources: the container's cgroup gets `resources` (the whole
    /// set, as kubelet sends it). Returns warnings for limits whose controller is missing.
    @discardableResult
    public func updateContainerResources(_ h: ContainerHandle, _ resources: Spec.Resources) throws(HuskError) -> [String] {
        if h.attachLock.locked({ h.finished != nil }) {
            throw HuskError(.invalidState, "container \(h.name) (\(h.id)) is not running: its resources cannot be updated")
        }
        return try Engine.setResources(resources, on: h.cgroup, ignoreMissing: true, mayWrite: { [paths] in paths.mayWriteCgroup($0) })
    }

    /// CRI ReopenContainerLog: kubelet renamed the log to rotate it; the output goes on into
    /// a new file at the same path from now on (containerd refuses it for a container that
    /// does not run).
    public func reopenContainerLog(_ h: ContainerHandle) throws(HuskError) {
        guard h.started, h.attachLock.locked({ h.finished == nil }) else {
            throw HuskError(.invalidState, "container is not running")
        }
        let writer = try logWriter(h.logPath, container: h.name)
        let done = Monitor()
        var swapped = false
        loop.post {
            writer.takePending(from: h.log)
            h.log = writer
            done.locked {
                swapped = true
                done.broadcast()
            }
        }
        // The swap happens on the loop thread; wait for it so that what comes after the call
        // goes to the new file.
        _ = done.wait(for: { swapped }, until: Clock.monotonicSeconds() + 5)
    }
}
