import HuskImage

/// Kubernetes' pod phase (pod-semantics §1). kubelet's getPhase never returns `unknown`;
/// Husk reports it only when a pod's state cannot be obtained (its supervisor is lost).
public enum PodPhase: String, Sendable, CaseIterable {
    case pending = "Pending"
    case running = "Running"
    case succeeded = "Succeeded"
    case failed = "Failed"
    case unknown = "Unknown"

    /// Succeeded and Failed stick: later computations never move a pod back (§1).
    public var isTerminal: Bool { self == .succeeded || self == .failed }
}

/// Why a container is Waiting (pod-semantics §2): kubelet's and containerd's reason strings.
public enum WaitingReason: String, Sendable, CaseIterable {
    case containerCreating = "ContainerCreating"
    case podInitializing = "PodInitializing"
    case crashLoopBackOff = "CrashLoopBackOff"
    case errImagePull = "ErrImagePull"
    case imagePullBackOff = "ImagePullBackOff"
    case errImageNeverPull = "ErrImageNeverPull"
    case invalidImageName = "InvalidImageName"
    case imageInspectError = "ImageInspectError"
    case createContainerConfigError = "CreateContainerConfigError"
    case createContainerError = "CreateContainerError"
    case runContainerError = "RunContainerError"
    case postStartHookError = "PostStartHookError"

    /// A failed attempt before a container existed (a pull, a create): the controller tries
    /// again on a timer (§7, §8).
    public var isRetried: Bool {
        switch self {
        case .errImagePull, .imagePullBackOff, .errImageNeverPull, .invalidImageName, .imageInspectError,
            .createContainerConfigError, .createContainerError:
            return true
        case .containerCreating, .podInitializing, .crashLoopBackOff, .runContainerError, .postStartHookError:
            return false
        }
    }

    /// The container is stuck on an error: `husk run -d` reports it (exit 2) instead of
    /// waiting for the pod to start.
    public var isError: Bool { isRetried || self == .crashLoopBackOff || self == .runContainerError || self == .postStartHookError }

    /// Meaningless once the pod has terminated (nothing restarts any more): cleared then.
    public var clearedWhenPodFinishes: Bool { self == .crashLoopBackOff || self == .postStartHookError }

    /// An app container that exited and waits with this reason may still be restarted (its
    /// restart policy decides): the reasons a failed postStart or no reason at all leave.
    public var restartPolicyApplies: Bool { self == .postStartHookError }

    /// kubelet's waiting reason for an image failure.
    public init?(_ image: ImageError.Reason) {
        self.init(rawValue: image.rawValue)
    }

    /// kubelet's reason for a failed CreateContainer or StartContainer.
    public init(_ failure: StartFailure.Kind) {
        switch failure {
        case .config: self = .createContainerConfigError
        case .create: self = .createContainerError
        case .run: self = .runContainerError
        }
    }

    /// A reason read back from status.json; one this Husk does not know stays a create error.
    public init(stored: String) {
        self = WaitingReason(rawValue: stored) ?? .createContainerError
    }
}

/// Why a container instance Terminated (pod-semantics §2): the runtime's reasons, and
/// kubelet's synthesised ContainerStatusUnknown.
public enum TerminatedReason: String, Sendable, CaseIterable {
    case completed = "Completed"
    case error = "Error"
    case oomKilled = "OOMKilled"
    /// The entrypoint never ran (exec failed, or the container could not be created): 128.
    case startError = "StartError"
    /// kubelet: the container could not be located when the pod was terminated: 137.
    case containerStatusUnknown = "ContainerStatusUnknown"

    /// The runtime's reason for a process that exited with `code` (containerd).
    public static func exited(code: Int32, oomKilled: Bool = false) -> TerminatedReason {
        code == 0 ? .completed : (oomKilled ? .oomKilled : .error)
    }

    /// The exit code the reason implies when no process told one.
    public var impliedExitCode: Int32? {
        switch self {
        case .startError: return 128
        case .containerStatusUnknown: return 137
        case .completed: return 0
        case .error, .oomKilled: return nil
        }
    }

    /// kubelet's message for ContainerStatusUnknown.
    public static let statusUnknownMessage = "The container could not be located when the pod was terminated"

    /// A reason read back from status.json.
    public init(stored: String, exitCode: Int32) {
        self = TerminatedReason(rawValue: stored) ?? .exited(code: exitCode)
    }
}

/// Why a pod is in its phase (`status.reason`).
public enum PodReason: String, Sendable, CaseIterable {
    /// activeDeadlineSeconds passed (§10): Failed.
    case deadlineExceeded = "DeadlineExceeded"
    /// The pause process ended; Husk stops the pod rather than re-create the sandbox.
    case sandboxChanged = "SandboxChanged"
    /// Husk's own: the supervisor and keeper are gone before the pod finished (Unknown).
    case supervisorLost = "SupervisorLost"
}

// Interpolated, each is Kubernetes' own string.
extension PodPhase: CustomStringConvertible { public var description: String { rawValue } }
extension WaitingReason: CustomStringConvertible { public var description: String { rawValue } }
extension TerminatedReason: CustomStringConvertible { public var description: String { rawValue } }
extension PodReason: CustomStringConvertible { public var description: String { rawValue } }
