import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// CRI `PodSandboxStatus`: what the runtime knows of its sandbox.
public struct PodSandboxStatus: Sendable, Equatable {
    public enum State: Sendable, Equatable { case ready, notReady }
    /// The sandbox's id: the pod's uid (one sandbox per pod directory).
    public var id: String
    public var metadata: PodSandboxConfig.Metadata
    public var state: State
    /// RFC 3339 with nanoseconds; nil before RunPodSandbox finished.
    public var createdAt: String?
    /// The pod's address; "" for the node's network or no address.
    public var ip: String
    public var namespaces: PodSandboxConfig.Namespaces
    public var labels: [String: String]
    public var annotations: [String: String]
    /// The pause process, while it runs.
    public var pausePid: Int32?
}

extension PodRuntimeService {
    /// CRI RunPodSandbox: the pod's directories, the pause process with the pod's namespaces
    /// and cgroup, the address (CNI ADD), the /etc files, /dev/shm. On failure what was made
    /// is taken down again. `onPauseExit` comes on the event loop when pause ends.
    public func runPodSandbox(onPauseExit: @escaping @Sendable (ExitStatus) -> Void) throws(HuskError) {
        try sandbox.start(onPauseExit: onPauseExit, loop: loop)
        sandbox.createdAt = Clock.rfc3339Nano()
    }

    /// CRI StopPodSandbox: every container still running is killed (StopContainer with
    /// timeout 0, as containerd does: kubelet stopped them with their grace already), then
    /// pause, and the address is released.
    public func stopPodSandbox(containers: [ContainerHandle]) {
        for h in containers { killContainer(h) }
        sandbox.stopPause()
    }

    /// CRI RemovePodSandbox: what StopPodSandbox leaves, and the containers' cgroups (of
    /// the names given, handles or not), the mounts and the pod's cgroup.
    public func removePodSandbox(containerNames: [String]) {
        removeGroups(of: containerNames)
        sandbox.teardown()
    }

    /// Takes over the sandbox a dead supervisor left (see `Sandbox.adopt`).
    public func adoptSandbox(pausePid: Int32, pauseStart: UInt64, podIP: String?, createdAt: String?,
                             onPauseExit: @escaping @Sendable (ExitStatus?) -> Void) -> Bool {
        sandbox.createdAt = createdAt
        return sandbox.adopt(pausePid: pausePid, pauseStart: pauseStart, podIP: podIP, stateDirectory: sandbox.paths.state,
                             onPauseExit: onPauseExit, loop: loop)
    }

    /// Takes down a sandbox a dead supervisor was making (whatever of it exists).
    public func discardPartialSandbox() {
        sandbox.discardPartial()
    }

    /// CRI PodSandboxStatus. READY only while pause runs after a RunPodSandbox that
    /// succeeded (containerd's rule).
    public func podSandboxStatus() -> PodSandboxStatus {
        let config = sandbox.config
        let pause = sandbox.pause
        let alive = pause.map { !$0.hasExited } ?? false
        return PodSandboxStatus(
            id: config.metadata.uid, metadata: config.metadata, state: alive ? .ready : .notReady,
            createdAt: sandbox.createdAt, ip: config.ownNetwork ? (sandbox.podIP ?? "") : "",
            namespaces: config.namespaces, labels: config.labels, annotations: config.annotations,
            pausePid: alive ? pause?.pid : nil)
    }
}
