import HuskJSON
import HuskSystem

/// A Terminated state as the API shows it (pod-semantics §2).
public struct TerminatedState: Sendable, Equatable {
    public var exitCode: Int32
    public var reason: TerminatedReason
    public var message: String? = nil
    public var startedAt: String? = nil
    public var finishedAt: String? = nil
    public var containerID: String

    public init(exitCode: Int32, reason: TerminatedReason, message: String? = nil, startedAt: String? = nil,
                finishedAt: String? = nil, containerID: String) {
        self.exitCode = exitCode
        self.reason = reason
        self.message = message
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.containerID = containerID
    }

    /// An exited instance as kubelet reports it.
    init(_ i: Instance) {
        let code = i.exitCode ?? 0
        self.init(exitCode: code, reason: i.reason ?? .exited(code: code), message: i.message, startedAt: i.startedAt,
                  finishedAt: i.finishedAt, containerID: "husk://" + i.id)
    }

    var json: JSONValue {
        var t: [String: JSONValue] = [
            "exitCode": .number(Double(exitCode)), "signal": .number(0), "reason": .string(reason.rawValue),
            "containerID": .string(containerID),
        ]
        if let m = message, !m.isEmpty { t["message"] = .string(m) }
        if let s = startedAt { t["startedAt"] = .string(Clock.seconds(of: s)) }
        if let f = finishedAt { t["finishedAt"] = .string(Clock.seconds(of: f)) }
        return .object(["terminated": .object(t)])
    }
}

/// Exactly one of waiting, running and terminated (pod-semantics §2).
public enum APIContainerState: Sendable, Equatable {
    /// `reason` nil: CRI CONTAINER_CREATED, waiting without a reason.
    case waiting(WaitingReason?, message: String? = nil)
    case running(startedAt: String)
    case terminated(TerminatedState)

    public var isRunning: Bool { if case .running = self { return true } else { return false } }
    public var isWaiting: Bool { if case .waiting = self { return true } else { return false } }
    public var terminated: TerminatedState? { if case .terminated(let t) = self { return t } else { return nil } }

    var json: JSONValue {
        switch self {
        case .waiting(let reason, let message):
            var w: [String: JSONValue] = [:]
            if let reason { w["reason"] = .string(reason.rawValue) }
            if let message, !message.isEmpty { w["message"] = .string(message) }
            return .object(["waiting": .object(w)])
        case .running(let startedAt):
            return .object(["running": .object(["startedAt": .string(Clock.seconds(of: startedAt))])])
        case .terminated(let t):
            return t.json
        }
    }
}

/// One container's status as kubelet reports it (convertToAPIContainerStatuses).
public struct ContainerStatus: Sendable, Equatable {
    public var name: String
    public var kind: ContainerState.Kind
    public var state: APIContainerState
    public var lastState: TerminatedState?
    public var ready: Bool
    public var started: Bool
    public var restartCount: Int
    public var image: String
    public var imageID: String
    public var containerID: String?

    /// kubelet's mapping from the runtime's records to the API (§2).
    public init(_ c: ContainerState, podHasInit: Bool) {
        // kubelet's default for a container without a record, in the init and the app list
        // alike (convertToAPIContainerStatuses is given hasInitContainers for both).
        let defaultWaiting: WaitingReason = podHasInit ? .podInitializing : .containerCreating
        var last: TerminatedState? = nil
        if let w = c.waiting {
            state = .waiting(w.reason, message: w.message)
            if let l = c.latest, l.state == .exited { last = TerminatedState(l) } else if let p = c.previous { last = TerminatedState(p) }
        } else if let l = c.latest {
            switch l.state {
            case .created: state = .waiting(nil)
            case .running where !l.postStartDone: state = .waiting(defaultWaiting)
            case .running: state = .running(startedAt: l.startedAt ?? l.createdAt)
            case .exited: state = .terminated(TerminatedState(l))
            }
            if let p = c.previous { last = TerminatedState(p) }
        } else {
            state = .waiting(defaultWaiting)
        }
        lastState = last
        name = c.name
        kind = c.kind
        let running = c.isRunning && (c.latest?.postStartDone ?? false)
        // kubelet: started once the startup probe succeeded; ready only when started (§9).
        started = running && (c.latest?.startupDone ?? false)
        ready = c.ready && started
        restartCount = c.restartCount
        image = c.image
        imageID = c.imageID
        containerID = c.latest.map { "husk://" + $0.id }
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(name), "state": state.json, "lastState": lastState?.json ?? .object([:]),
            "ready": .bool(ready), "restartCount": .number(Double(restartCount)), "image": .string(image),
            "imageID": .string(imageID), "started": .bool(started),
        ]
        if let containerID { o["containerID"] = .string(containerID) }
        return .object(o)
    }
}
