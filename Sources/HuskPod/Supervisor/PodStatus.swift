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
    public var reason: String? = nil
    public var message: String? = nil
    /// postStart returned (or there is none): only then is the container reported Running.
    public var postStartDone = false
    /// The startup probe succeeded (or there is none): kubelet's `started`.
    public var startupDone = true
    public var logPath: String

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
        if let v = reason { o["reason"] = .string(v) }
        if let v = message { o["message"] = .string(v) }
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
        exitCode = try r.optInt("exitCode").map { Int32($0) }
        reason = try r.optString("reason")
        message = try r.optString("message")
        postStartDone = try r.optBool("postStartDone") ?? false
        startupDone = try r.optBool("startupDone") ?? true
        logPath = try r.string("logPath")
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
    public var waiting: (reason: String, message: String)? = nil
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
    public var phase = "Pending"
    public var reason: String? = nil
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
    /// `startTime` on the monotonic clock (for activeDeadlineSeconds across restarts).
    public var startMono: Double? = nil
    /// The supervisor has stopped everything and written its last status.
    public var finished = false
    public var containers: [ContainerState] = []
    var transitions: [String: String] = [:]

    public func index(_ name: String) -> Int? { containers.firstIndex { $0.name == name } }

    // MARK: - Kubernetes' view

    /// kubelet's convertToAPIContainerStatuses for one container (pod-semantics §2).
    func apiStatus(_ c: ContainerState, podHasInit: Bool) -> JSONValue {
        func terminated(_ i: Instance) -> JSONValue {
            var t: [String: JSONValue] = [
                "exitCode": .number(Double(i.exitCode ?? 0)), "signal": .number(0),
                "reason": .string(i.reason ?? ((i.exitCode ?? 0) == 0 ? "Completed" : "Error")),
                "containerID": .string("husk://" + i.id),
            ]
            if let m = i.message, !m.isEmpty { t["message"] = .string(m) }
            if let s = i.startedAt { t["startedAt"] = .string(Clock.seconds(of: s)) }
            if let f = i.finishedAt { t["finishedAt"] = .string(Clock.seconds(of: f)) }
            return .object(["terminated": .object(t)])
        }
        func waiting(_ reason: String, _ message: String?) -> JSONValue {
            var w: [String: JSONValue] = [:]
            if !reason.isEmpty { w["reason"] = .string(reason) }
            if let message, !message.isEmpty { w["message"] = .string(message) }
            return .object(["waiting": .object(w)])
        }
        // kubelet's default for a container without a record, in the init and the app list
        // alike (convertToAPIContainerStatuses is given hasInitContainers for both).
        let defaultWaiting = podHasInit ? "PodInitializing" : "ContainerCreating"
        var state: JSONValue
        var last: JSONValue = .object([:])
        if let w = c.waiting {
            state = waiting(w.reason, w.message)
            if let l = c.latest, l.state == .exited { last = terminated(l) } else if let p = c.previous { last = terminated(p) }
        } else if let l = c.latest {
            switch l.state {
            case .created:
                // CRI CONTAINER_CREATED: waiting without a reason.
                state = waiting("", nil)
            case .running where !l.postStartDone:
                state = waiting(defaultWaiting, nil)
            case .running:
                state = .object(["running": .object(["startedAt": .string(Clock.seconds(of: l.startedAt ?? l.createdAt))])])
            case .exited:
                state = terminated(l)
            }
            if let p = c.previous { last = terminated(p) }
        } else {
            state = waiting(defaultWaiting, nil)
        }
        let running = c.isRunning && (c.latest?.postStartDone ?? false)
        // kubelet: started once the startup probe succeeded; ready only when started (§9).
        let started = running && (c.latest?.startupDone ?? false)
        var o: [String: JSONValue] = [
            "name": .string(c.name), "state": state, "lastState": last, "ready": .bool(c.ready && started),
            "restartCount": .number(Double(c.restartCount)), "image": .string(c.image), "imageID": .string(c.imageID),
            "started": .bool(started),
        ]
        if let l = c.latest { o["containerID"] = .string("husk://" + l.id) }
        return .object(o)
    }

    /// kubelet's getPhase (pod-semantics §1), from the API statuses.
    func computePhase(restartPolicy: RestartPolicy, statuses: [(ContainerState, JSONValue)]) -> String {
        var pendingInit = 0, failedInit = 0, unknown = 0, running = 0, waiting = 0, stopped = 0, succeeded = 0
        let anyAppStarted = statuses.contains { $0.0.kind == .app && !$0.0.instances.isEmpty }
        for (c, s) in statuses {
            let st = s["state"]
            let lastTerminated = s["lastState"]?["terminated"]
            switch c.kind {
            case .initContainer:
                if let t = st?["terminated"] {
                    if t["exitCode"] != .number(0) { failedInit += 1 }
                } else if st?["waiting"] != nil, let lt = lastTerminated, lt["exitCode"] != .number(0) {
                    failedInit += 1
                } else if st?["waiting"] != nil && lastTerminated?["exitCode"] == .number(0) {
                    // done
                } else {
                    pendingInit += 1
                }
            case .sidecar:
                if st?["running"] != nil {
                    running += 1
                    if s["started"] != .bool(true) { pendingInit += 1 }
                } else if st?["terminated"] != nil || lastTerminated != nil {
                    // ignored
                } else if st?["waiting"] != nil {
                    pendingInit += 1
                    waiting += 1
                } else {
                    unknown += 1
                }
            case .app:
                if st?["running"] != nil {
                    running += 1
                } else if let t = st?["terminated"] {
                    stopped += 1
                    if t["exitCode"] == .number(0) { succeeded += 1 }
                } else if st?["waiting"] != nil {
                    if lastTerminated != nil { stopped += 1 } else { waiting += 1 }
                } else {
                    unknown += 1
                }
            }
        }
        if failedInit > 0 && restartPolicy == .never { return "Failed" }
        if pendingInit > 0 && !anyAppStarted { return "Pending" }
        if waiting > 0 { return "Pending" }
        if running > 0 && unknown == 0 { return "Running" }
        if running == 0 && stopped > 0 && unknown == 0 {
            if terminating || finished { return stopped == succeeded ? "Succeeded" : "Failed" }
            if restartPolicy == .always { return "Running" }
            if stopped == succeeded { return "Succeeded" }
            if restartPolicy == .never { return "Failed" }
            return "Running"
        }
        return "Pending"
    }

    /// Recomputes the phase (terminal phases stick) and condition times. Call under the lock.
    mutating func refresh(pod: Pod, now: String) {
        let hasInit = !pod.spec.initContainers.isEmpty
        let statuses = containers.map { ($0, apiStatus($0, podHasInit: hasInit)) }
        if phase != "Succeeded" && phase != "Failed" {
            phase = computePhase(restartPolicy: pod.spec.restartPolicy, statuses: statuses)
        }
        let apps = statuses.filter { $0.0.kind != .initContainer }
        let ready = !apps.isEmpty && apps.allSatisfy { $0.1["ready"] == .bool(true) || ($0.0.kind == .sidecar && $0.0.done) }
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
        let hasInit = !pod.spec.initContainers.isEmpty
        var o: [String: JSONValue] = [
            "phase": .string(phase), "conditions": conditions(),
            "containerStatuses": .array(containers.filter { $0.kind == .app }.map { apiStatus($0, podHasInit: hasInit) }),
            "qosClass": .string("BestEffort"),
        ]
        let inits = containers.filter { $0.kind != .app }
        if !inits.isEmpty { o["initContainerStatuses"] = .array(inits.map { apiStatus($0, podHasInit: hasInit) }) }
        if let r = reason { o["reason"] = .string(r) }
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

    // MARK: - On disk

    /// status.json: Kubernetes' status plus what Husk needs to find things again.
    func document(pod: Pod, supervisorPid: Int32) -> JSONValue {
        var cs: [JSONValue] = []
        for c in containers {
            var o: [String: JSONValue] = [
                "name": .string(c.name), "kind": .string(c.kind.rawValue), "image": .string(c.image),
                "imageID": .string(c.imageID), "restartCount": .number(Double(c.restartCount)),
                "ready": .bool(c.ready), "done": .bool(c.done), "instances": .array(c.instances.map(\.json)),
            ]
            if let w = c.waiting { o["waiting"] = .object(["reason": .string(w.reason), "message": .string(w.message)]) }
            cs.append(.object(o))
        }
        var husk: [String: JSONValue] = [
            "supervisorPid": .number(Double(supervisorPid)), "sandboxReady": .bool(sandboxReady),
            "initialized": .bool(initialized), "terminating": .bool(terminating), "finished": .bool(finished),
            "containers": .array(cs), "phase": .string(phase),
            "transitions": .object(transitions.mapValues { .string($0) }),
        ]
        if pausePid != 0 {
            husk["pausePid"] = .number(Double(pausePid))
            husk["pauseStart"] = .number(Double(pauseStart))
        }
        if let g = stopGrace { husk["stopGrace"] = .number(Double(g)) }
        if let t = stopStartedMono { husk["stopStartedMono"] = .number(t) }
        if let t = startMono { husk["startMono"] = .number(t) }
        if let s = sandboxCreatedAt { husk["sandboxCreatedAt"] = .string(s) }
        if let s = sandboxError { husk["sandboxError"] = .string(s) }
        if let r = reason { husk["reason"] = .string(r) }
        if let m = message { husk["message"] = .string(m) }
        if let s = startTime { husk["startTime"] = .string(s) }
        if let ip = podIP { husk["podIP"] = .string(ip) }
        if let ip = hostIP { husk["hostIP"] = .string(ip) }
        return .object(["status": podStatus(pod: pod), "husk": .object(husk)])
    }

    /// Reads status.json back (for the command line and for recovery).
    public static func read(_ json: JSONValue) throws(FieldError) -> (PodState, supervisorPid: Int32) {
        let r = JSONReader(json)
        guard let h = r.child("husk") else { throw FieldError(path: "husk", message: "missing") }
        var s = PodState()
        s.phase = try h.optString("phase") ?? "Pending"
        s.reason = try h.optString("reason")
        s.message = try h.optString("message")
        s.startTime = try h.optString("startTime")
        s.podIP = try h.optString("podIP")
        s.hostIP = try h.optString("hostIP")
        s.sandboxReady = try h.optBool("sandboxReady") ?? false
        s.sandboxCreatedAt = try h.optString("sandboxCreatedAt")
        s.sandboxError = try h.optString("sandboxError")
        s.initialized = try h.optBool("initialized") ?? false
        s.terminating = try h.optBool("terminating") ?? false
        s.finished = try h.optBool("finished") ?? false
        s.pausePid = Int32(try h.optInt("pausePid") ?? 0)
        s.pauseStart = UInt64(try h.optInt("pauseStart") ?? 0)
        s.stopGrace = try h.optInt("stopGrace")
        s.stopStartedMono = try h.optDouble("stopStartedMono")
        s.startMono = try h.optDouble("startMono")
        s.transitions = try h.optStringMap("transitions") ?? [:]
        s.containers = try h.optArray("containers") { (c) throws(FieldError) -> ContainerState in
            var x = ContainerState(
                name: try c.string("name"), kind: ContainerState.Kind(rawValue: try c.string("kind")) ?? .app,
                image: try c.optString("image") ?? "")
            x.imageID = try c.optString("imageID") ?? ""
            x.restartCount = Int(try c.optInt("restartCount") ?? 0)
            x.ready = try c.optBool("ready") ?? false
            x.done = try c.optBool("done") ?? false
            x.instances = try c.optArray("instances") { (i) throws(FieldError) in try Instance(json: i) } ?? []
            if let w = c.child("waiting") { x.waiting = (try w.string("reason"), try w.optString("message") ?? "") }
            return x
        } ?? []
        return (s, Int32(try h.optInt("supervisorPid") ?? 0))
    }
}
