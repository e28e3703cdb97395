import HuskImage
import HuskJSON
import HuskSystem

/// One run of a container (a CRI container): what Husk records about it.
public struct Instance: Sendable, Equatable {
    public enum State: String, Sendable { case created, running, exited }

    public var attempt: Int
    public var id: String
    public var state: State = .created
    public var pid: Int32 = 0
    /// The start time of `pid` (/proc/<pid>/stat field 22): with it a new supervisor knows the
    /// process it finds under that pid is this container's.
    public var pidStart: UInt64 = 0
    public var createdAt: String
    public var startedAt: String? = nil
    public var finishedAt: String? = nil
    public var finishedMono: Double? = nil
    public var startedMono: Double? = nil
    public var exitCode: Int32? = nil
    public var reason: TerminatedReason? = nil
    public var message: String? = nil
    /// postStart returned (or there is none): only then is the container reported Running.
    public var postStartDone = false
    /// The startup probe succeeded (or there is none): kubelet's `started`.
    public var startupDone = true
    public var logPath: String
    /// A stop under way, on the monotonic clock (the same across supervisors): when its
    /// preStop hook started, and once the stop signal was sent, when SIGKILL is due. A new
    /// supervisor continues the stop from here; it runs neither again (issue 16 #10).
    public var preStopMono: Double? = nil
    public var killAtMono: Double? = nil
    /// When the stop's SIGKILL went out (RFC 3339, ns): what `Scripts/bench.sh stop` measures.
    public var sigkillAt: String? = nil

    var json: JSONValue {
        var o: [String: JSONValue] = [
            "attempt": .number(Double(attempt)), "id": .string(id), "state": .string(state.rawValue),
            "pid": .number(Double(pid)), "createdAt": .string(createdAt), "postStartDone": .bool(postStartDone),
            "startupDone": .bool(startupDone), "logPath": .string(logPath),
        ]
        if pidStart != 0 { o["pidStart"] = .number(Double(pidStart)) }
        if let v = startedMono { o["startedMono"] = .number(v) }
        if let v = finishedMono { o["finishedMono"] = .number(v) }
        if let v = startedAt { o["startedAt"] = .string(v) }
        if let v = finishedAt { o["finishedAt"] = .string(v) }
        if let v = exitCode { o["exitCode"] = .number(Double(v)) }
        if let v = reason { o["reason"] = .string(v.rawValue) }
        if let v = message { o["message"] = .string(v) }
        if let v = preStopMono { o["preStopMono"] = .number(v) }
        if let v = killAtMono { o["killAtMono"] = .number(v) }
        if let v = sigkillAt { o["sigkillAt"] = .string(v) }
        return .object(o)
    }

    init(attempt: Int, id: String, createdAt: String, logPath: String) {
        self.attempt = attempt
        self.id = id
        self.createdAt = createdAt
        self.logPath = logPath
    }

    init(json r: JSONReader) throws(FieldError) {
        attempt = Int(try r.int("attempt"))
        id = try r.string("id")
        state = State(rawValue: try r.string("state")) ?? .exited
        pid = Int32(try r.optInt("pid") ?? 0)
        pidStart = UInt64(try r.optInt("pidStart") ?? 0)
        startedMono = try r.optDouble("startedMono")
        finishedMono = try r.optDouble("finishedMono")
        createdAt = try r.string("createdAt")
        startedAt = try r.optString("startedAt")
        finishedAt = try r.optString("finishedAt")
        let code = try r.optInt("exitCode").map { Int32($0) }
        exitCode = code
        reason = try r.optString("reason").map { TerminatedReason(stored: $0, exitCode: code ?? 0) }
        message = try r.optString("message")
        postStartDone = try r.optBool("postStartDone") ?? false
        startupDone = try r.optBool("startupDone") ?? true
        logPath = try r.string("logPath")
        preStopMono = try r.optDouble("preStopMono")
        killAtMono = try r.optDouble("killAtMono")
        sigkillAt = try r.optString("sigkillAt")
    }
}

/// Everything known about one container of the pod.
public struct ContainerState: Sendable, Equatable {
    public enum Kind: String, Sendable { case initContainer = "init", sidecar, app }

    public var name: String
    public var kind: Kind
    public var image: String
    public var imageID: String = ""
    /// Newest last; only the last two are kept (state and lastState).
    public var instances: [Instance] = []
    public var restartCount = 0
    /// Why the container is not running now, when it will be (CrashLoopBackOff, ErrImagePull,
    /// CreateContainerConfigError, ...).
    public var waiting: (reason: WaitingReason, message: String)? = nil
    public var ready = false
    /// No further start will happen (pod ends, restartPolicy says no).
    public var done = false

    public static func == (a: ContainerState, b: ContainerState) -> Bool {
        a.name == b.name && a.instances == b.instances && a.restartCount == b.restartCount
            && a.waiting?.reason == b.waiting?.reason && a.waiting?.message == b.waiting?.message && a.ready == b.ready
            && a.done == b.done && a.imageID == b.imageID
    }

    public var latest: Instance? { instances.last }
    public var previous: Instance? { instances.count > 1 ? instances[instances.count - 2] : nil }
    public var isRunning: Bool { latest?.state == .running }
}

/// The pod as the supervisor knows it; rendered into Kubernetes' PodStatus.
public struct PodState: Sendable {
    public var phase = PodPhase.pending
    public var reason: PodReason? = nil
    public var message: String? = nil
    public var startTime: String? = nil
    public var podIP: String? = nil
    public var hostIP: String? = nil
    public var sandboxReady = false
    public var sandboxCreatedAt: String? = nil
    /// Why the sandbox could not be created (retried with back-off).
    public var sandboxError: String? = nil
    public var initialized = false
    public var terminating = false
    /// The pause process (pid and start time), for a new supervisor to find it again.
    public var pausePid: Int32 = 0
    public var pauseStart: UInt64 = 0
    /// A stop in progress: the grace asked for and when it began (monotonic seconds, which
    /// survive a supervisor's restart).
    public var stopGrace: Int64? = nil
    public var stopStartedMono: Double? = nil
    /// When a shorter grace arrived during a stop: the time by which every container is
    /// killed (monotonic seconds).
    public var killByMono: Double? = nil
    /// `startTime` on the monotonic clock (for activeDeadlineSeconds across restarts).
    public var startMono: Double? = nil
    /// The supervisor has stopped everything and written its last status.
    public var finished = false
    public var containers: [ContainerState] = []
    var transitions: [String: String] = [:]

    public func index(_ name: String) -> Int? { containers.firstIndex { $0.name == name } }

    // MARK: - Kubernetes' view

    /// The API status of every container, init containers first.
    public func apiStatuses(podHasInit: Bool) -> [ContainerStatus] {
        containers.map { ContainerStatus($0, podHasInit: podHasInit) }
    }

    /// Recomputes the phase (terminal phases stick) and condition times. Call under the lock.
    mutating func refresh(pod: Pod, now: String) {
        let statuses = apiStatuses(podHasInit: !pod.spec.initContainers.isEmpty)
        if !phase.isTerminal {
            phase = .compute(restartPolicy: pod.spec.restartPolicy, statuses: statuses, terminating: terminating || finished)
        }
        let apps = zip(containers, statuses).filter { $0.0.kind != .initContainer }
        let ready = !apps.isEmpty && apps.allSatisfy { $0.1.ready || ($0.0.kind == .sidecar && $0.0.done) }
        let conds: [(String, Bool)] = [
            ("PodReadyToStartContainers", sandboxReady), ("Initialized", initialized),
            ("ContainersReady", ready), ("Ready", ready), ("PodScheduled", true),
        ]
        for (type, value) in conds {
            let key = type + "=" + (value ? "True" : "False")
            if transitions[key] == nil {
                transitions[type + "=" + (value ? "False" : "True")] = nil
                transitions[key] = now
            }
        }
    }

    func conditions() -> JSONValue {
        var out: [JSONValue] = []
        for type in ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"] {
            let value = transitions[type + "=True"] != nil ? "True" : "False"
            var c: [String: JSONValue] = ["type": .string(type), "status": .string(value)]
            if let t = transitions[type + "=" + value] { c["lastTransitionTime"] = .string(Clock.seconds(of: t)) }
            if value == "False" {
                switch type {
                case "Ready", "ContainersReady":
                    let notReady = containers.filter { $0.kind != .initContainer && !($0.ready && $0.isRunning) }.map(\.name)
                    c["reason"] = .string(type == "Ready" ? "ContainersNotReady" : "ContainersNotReady")
                    c["message"] = .string("containers with unready status: [\(notReady.joined(separator: " "))]")
                case "Initialized":
                    let pending = containers.filter { $0.kind != .app && !($0.latest?.exitCode == 0 && $0.latest?.state == .exited) && !$0.isRunning }.map(\.name)
                    c["reason"] = .string("ContainersNotInitialized")
                    c["message"] = .string("containers with incomplete status: [\(pending.joined(separator: " "))]")
                default: break
                }
            }
            out.append(.object(c))
        }
        return .array(out)
    }

    /// Kubernetes' PodStatus.
    public func podStatus(pod: Pod) -> JSONValue {
        let statuses = apiStatuses(podHasInit: !pod.spec.initContainers.isEmpty)
        var o: [String: JSONValue] = [
            "phase": .string(phase.rawValue), "conditions": conditions(),
            "containerStatuses": .array(statuses.filter { $0.kind == .app }.map(\.json)),
            "qosClass": .string("BestEffort"),
        ]
        let inits = statuses.filter { $0.kind != .app }
        if !inits.isEmpty { o["initContainerStatuses"] = .array(inits.map(\.json)) }
        if let r = reason { o["reason"] = .string(r.rawValue) }
        if let m = message { o["message"] = .string(m) }
        if let s = startTime { o["startTime"] = .string(Clock.seconds(of: s)) }
        if let ip = podIP {
            o["podIP"] = .string(ip)
            o["podIPs"] = .array([.object(["ip": .string(ip)])])
        }
        if let ip = hostIP {
            o["hostIP"] = .string(ip)
            o["hostIPs"] = .array([.object(["ip": .string(ip)])])
        }
        return .object(o)
    }
}
