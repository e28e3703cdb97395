import HuskJSON
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// The kubelet's event recorder for one pod: core/v1 Events, one JSON object per line in
/// `events.jsonl` (read by `husk events`). Each line is written with one append, so readers
/// never see half an event.
final class EventRecorder: @unchecked Sendable {  // the fd is only written with whole lines
    let pod: Pod
    let fd: FD?
    let host: String
    let lock = Monitor()
    private var counter = 0
    /// Events that could not be written since the last one that could (under `lock`).
    private var lost = 0
    let path: String

    init(pod: Pod, path: String) {
        self.pod = pod
        self.path = path
        fd = try? FD.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode: 0o600)
        var u = utsname()
        uname(&u)
        host = withUnsafeBytes(of: u.nodename) { String.fromCBytes($0) }
    }

    /// `spec.containers{web}` / `spec.initContainers{init}`, as kubelet's ref manager writes.
    static func fieldPath(_ c: ContainerState) -> String {
        c.kind == .app ? "spec.containers{\(c.name)}" : "spec.initContainers{\(c.name)}"
    }

    /// `at`: when it happened, if that was before now (a step's time, not the time its
    /// bookkeeping was done).
    func normal(_ reason: String, _ message: String, _ c: ContainerState? = nil, at: (sec: Int, nsec: Int)? = nil) {
        record("Normal", reason, message, fieldPath: c.map(Self.fieldPath), at: at)
    }

    func warning(_ reason: String, _ message: String, _ c: ContainerState? = nil) {
        record("Warning", reason, message, fieldPath: c.map(Self.fieldPath))
    }

    func record(_ type: String, _ reason: String, _ message: String, fieldPath: String?, at: (sec: Int, nsec: Int)? = nil) {
        let t = at ?? Clock.now()
        let nano = Clock.rfc3339Nano(t)
        let seconds = Clock.rfc3339(t)
        let n = lock.locked { () -> Int in
            counter += 1
            return counter
        }
        var involved: [String: JSONValue] = [
            "apiVersion": .string("v1"), "kind": .string("Pod"), "name": .string(pod.metadata.name),
            "namespace": .string(pod.metadata.namespace), "uid": .string(pod.metadata.uid),
        ]
        if let fieldPath { involved["fieldPath"] = .string(fieldPath) }
        // Event names are <pod>.<unique hex>, as client-go's recorder makes them.
        let unique = String(UInt64(t.sec) &* 1_000_000_000 &+ UInt64(t.nsec) &+ UInt64(n), radix: 16)
        let event: JSONValue = .object([
            "apiVersion": .string("v1"), "kind": .string("Event"),
            "metadata": .object([
                "name": .string("\(pod.metadata.name).\(unique)"), "namespace": .string(pod.metadata.namespace),
                "creationTimestamp": .string(seconds),
            ]),
            "involvedObject": .object(involved), "type": .string(type), "reason": .string(reason), "message": .string(message),
            "source": .object(["component": .string("kubelet"), "host": .string(host)]),
            "reportingComponent": .string("kubelet"), "reportingInstance": .string(host),
            "firstTimestamp": .string(seconds), "lastTimestamp": .string(seconds), "eventTime": .string(nano),
            "count": .number(1),
        ])
        let line = Array((event.serialized() + "\n").utf8)
        let lostBefore = lock.locked { () -> Int in
            do {
                try fd?.appendWhole(line)
            } catch {
                lost += 1
                return 0
            }
            defer { lost = 0 }
            return lost
        }
        // Written again after a full disk: say how many were lost meanwhile (whole lines only:
        // readers never see half an event).
        if lostBefore > 0 {
            record("Warning", "EventsLost", "\(lostBefore) event(s) could not be recorded: the disk holding \(path) was full", fieldPath: nil)
        }
    }

    /// Reads the events of a pod back, oldest first.
    static func read(_ path: String) -> [JSONValue] {
        guard let bytes = (try? Files.read(path)) ?? nil else { return [] }
        return bytes.split(separator: 10).compactMap { try? JSONParser.parse($0) }
    }
}

/// Go's time.Duration formatting, as kubelet's messages print durations: `10s`, `1m20s`,
/// `5m0s`, `36.142771ms`.
func goDuration(_ seconds: Double) -> String {
    let ns = Int64((seconds * 1e9).rounded())
    if ns <= 0 { return "0s" }
    func fraction(_ v: Int64, _ unit: Int64) -> String {
        let whole = v / unit
        var frac = String(v % unit)
        let digits = String(unit).count - 1
        frac = String(repeating: "0", count: digits - frac.count) + frac
        while frac.hasSuffix("0") { frac.removeLast() }
        return frac.isEmpty ? String(whole) : "\(whole).\(frac)"
    }
    if ns < 1000 { return "\(ns)ns" }
    if ns < 1_000_000 { return fraction(ns, 1000) + "µs" }
    if ns < 1_000_000_000 { return fraction(ns, 1_000_000) + "ms" }
    let h = ns / 3_600_000_000_000
    let m = (ns / 60_000_000_000) % 60
    let s = ns % 60_000_000_000
    var out = ""
    if h > 0 { out += "\(h)h" }
    if h > 0 || m > 0 { out += "\(m)m" }
    return out + fraction(s, 1_000_000_000) + "s"
}
