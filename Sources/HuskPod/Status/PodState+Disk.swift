import HuskJSON
import HuskSystem

extension PodState {
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
            if let w = c.waiting { o["waiting"] = .object(["reason": .string(w.reason.rawValue), "message": .string(w.message)]) }
            cs.append(.object(o))
        }
        var husk: [String: JSONValue] = [
            "supervisorPid": .number(Double(supervisorPid)), "sandboxReady": .bool(sandboxReady),
            "initialized": .bool(initialized), "terminating": .bool(terminating), "finished": .bool(finished),
            "containers": .array(cs), "phase": .string(phase.rawValue),
            "transitions": .object(transitions.mapValues { .string($0) }),
        ]
        if pausePid != 0 {
            husk["pausePid"] = .number(Double(pausePid))
            husk["pauseStart"] = .number(Double(pauseStart))
        }
        if let g = stopGrace { husk["stopGrace"] = .number(Double(g)) }
        if let t = stopStartedMono { husk["stopStartedMono"] = .number(t) }
        if let t = killByMono { husk["killByMono"] = .number(t) }
        if let t = startMono { husk["startMono"] = .number(t) }
        if let s = sandboxCreatedAt { husk["sandboxCreatedAt"] = .string(s) }
        if let s = sandboxError { husk["sandboxError"] = .string(s) }
        if let r = reason { husk["reason"] = .string(r.rawValue) }
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
        s.phase = try h.optString("phase").flatMap(PodPhase.init(rawValue:)) ?? .pending
        s.reason = try h.optString("reason").flatMap(PodReason.init(rawValue:))
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
        s.killByMono = try h.optDouble("killByMono")
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
            if let w = c.child("waiting") { x.waiting = (WaitingReason(stored: try w.string("reason")), try w.optString("message") ?? "") }
            return x
        } ?? []
        return (s, Int32(try h.optInt("supervisorPid") ?? 0))
    }
}
