import Foundation
import HuskSystem
import Testing

extension Host {
    static var canRunPods: Bool { canRunContainers && umoci }
    static var podSkipReason: Comment {
        if !canRunContainers { return skipReason }
        return "needs umoci to make the busybox image (Scripts/install-deps.sh installs it)"
    }
}

/// A one-layer busybox image (`busybox:1.36`, also tagged `latest`) in an OCI layout made by
/// umoci, built once per test process and shared read-only by the pod tests.
enum BusyboxLayout {
    static let path: String = {
        let dir = NSTemporaryDirectory() + "husk-test-busybox-layout-\(getpid())"
        let layout = dir + "/layout"
        let work = dir + "/work"
        func sh(_ script: String) {
            let r = run(["/bin/sh", "-ec", script])
            precondition(r.status == 0, "busybox layout: \(r.stderr)")
        }
        try? FileManager.default.removeItem(atPath: dir)
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        sh("umoci init --layout \(layout) && umoci new --image \(layout):base && umoci unpack --image \(layout):base \(work) >/dev/null")
        try! FileManager.default.removeItem(atPath: work + "/rootfs")
        try! TestBundle.makeBusyboxRootfs(work + "/rootfs")
        try! FileManager.default.createDirectory(atPath: work + "/rootfs/www", withIntermediateDirectories: true)
        sh("""
            umoci repack --image \(layout):base \(work)
            umoci config --image \(layout):base --config.cmd /bin/sh --config.env PATH=/bin:/sbin --tag 1.36
            umoci tag --image \(layout):1.36 latest
            umoci config --image \(layout):1.36 --config.stopsignal SIGQUIT --tag quit
            rm -rf \(work)
            """)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "husk-test-busybox-layout-\(getpid())") }
        return layout
    }()
}

/// `husk` with its own roots (data, state, logs) inside a scratch directory and the busybox
/// image as its source. `cleanup()` removes every pod and checks nothing of them is left.
struct PodHusk {
    let scratch: Scratch
    var extra: [String] = []

    init(_ scratch: Scratch, extra: [String] = []) {
        self.scratch = scratch
        self.extra = extra
    }

    var root: String { scratch.path + "/root" }
    var state: String { scratch.path + "/state" }
    var logDir: String { scratch.path + "/logs" }

    /// Registry pulls: off unless a test serves a registry (no test reaches the network).
    var registries = false

    var globals: [String] {
        ["--root", root, "--state", state, "--log-dir", logDir, "--image-source", "busybox=" + BusyboxLayout.path,
         "--cni-conf-dir", scratch.path + "/no-cni"] + (registries ? [] : ["--no-registries"]) + extra
    }

    @discardableResult
    func callAsFunction(_ args: String..., timeout: TimeInterval = 120) -> RunResult {
        run(args, timeout: timeout)
    }

    func run(_ args: [String], timeout: TimeInterval = 120) -> RunResult {
        IntegrationTests.run([huskPath] + globals + args, timeout: timeout)
    }

    /// Writes the manifest into the scratch dir and runs `husk run -d` on it.
    func start(_ yaml: String, name: String = "pod.yaml", sourceLocation: SourceLocation = #_sourceLocation) -> RunResult {
        let path = scratch.path + "/" + name
        try! yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return run(["run", "-d", path])
    }

    /// `husk inspect -o json` as a dictionary.
    func inspect(_ pod: String) -> [String: Any]? {
        let r = run(["inspect", pod])
        guard r.status == 0 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]
    }

    /// `husk events -o json` items.
    func events(_ pod: String) -> [[String: Any]] {
        let r = run(["events", "-o", "json", pod])
        let doc = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]
        return doc?["items"] as? [[String: Any]] ?? []
    }

    /// Polls `husk inspect` until `condition` holds; returns the last object.
    @discardableResult
    func wait(_ pod: String, timeout: TimeInterval = 30, interval: TimeInterval = 0.05,
              until condition: ([String: Any]) -> Bool) -> [String: Any]? {
        let end = Date().addingTimeInterval(timeout)
        var last: [String: Any]? = nil
        while Date() < end {
            last = inspect(pod)
            if let last, condition(last) { return last }
            Thread.sleep(forTimeInterval: interval)
        }
        return last
    }

    /// The uids of every pod under this state root.
    var podUIDs: [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: state + "/pods")) ?? []
    }

    /// Removes every pod (stopping it with grace 0 first) and checks nothing of them is left:
    /// no cgroup, no process of their supervisors, no mount, no state, data or log directory.
    func cleanup(sourceLocation: SourceLocation = #_sourceLocation) {
        let uids = podUIDs
        var supervisors: [Int32] = []
        for uid in uids {
            if let doc = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state + "/pods/\(uid)/status.json"))) as? [String: Any],
               let husk = doc["husk"] as? [String: Any], let pid = husk["supervisorPid"] as? Int {
                supervisors.append(Int32(pid))
            }
            for file in ["supervisor.pid", "keeper.pid"] {
                if let text = try? String(contentsOfFile: state + "/pods/\(uid)/\(file)", encoding: .utf8), let pid = Int32(text.trimmed) {
                    supervisors.append(pid)
                }
            }
            let r = run(["rm", "--force", uid], timeout: 60)
            #expect(r.status == 0, "husk rm --force \(uid): \(r.stderr)", sourceLocation: sourceLocation)
        }
        for uid in uids {
            if let m = Host.cgroup2 {
                #expect(!FileManager.default.fileExists(atPath: m.path + "/husk/\(uid)"), "cgroup of pod \(uid) left", sourceLocation: sourceLocation)
            }
            for dir in [state + "/pods/\(uid)", root + "/pods/\(uid)"] {
                #expect(!FileManager.default.fileExists(atPath: dir), "\(dir) left", sourceLocation: sourceLocation)
            }
            let logs = (try? FileManager.default.contentsOfDirectory(atPath: logDir)) ?? []
            #expect(!logs.contains { $0.hasSuffix("_" + uid) }, "log dir of pod \(uid) left", sourceLocation: sourceLocation)
        }
        for pid in supervisors {
            #expect(!processExists(pid), "supervisor or keeper \(pid) still runs", sourceLocation: sourceLocation)
        }
        scratch.cleanup(sourceLocation: sourceLocation)
    }
}

/// Reading Kubernetes objects in tests.
extension Dictionary where Key == String, Value == Any {
    var status: [String: Any] { self["status"] as? [String: Any] ?? [:] }
    var phase: String? { status["phase"] as? String }

    /// The status of container `name` (init or app).
    func container(_ name: String) -> [String: Any]? {
        let all = (status["initContainerStatuses"] as? [[String: Any]] ?? []) + (status["containerStatuses"] as? [[String: Any]] ?? [])
        return all.first { $0["name"] as? String == name }
    }

    /// "running", "waiting" or "terminated" for container `name`.
    func stateKind(_ name: String) -> String? {
        (container(name)?["state"] as? [String: Any])?.keys.first
    }

    func waitingReason(_ name: String) -> String? {
        ((container(name)?["state"] as? [String: Any])?["waiting"] as? [String: Any])?["reason"] as? String
    }

    func terminated(_ name: String) -> [String: Any]? {
        (container(name)?["state"] as? [String: Any])?["terminated"] as? [String: Any]
    }

    func exitCode(_ name: String) -> Int? { terminated(name)?["exitCode"] as? Int }
}

/// The message of container `container`'s waiting state.
func waitingMessage(_ pod: [String: Any], _ container: String) -> String? {
    ((pod.container(container)?["state"] as? [String: Any])?["waiting"] as? [String: Any])?["message"] as? String
}

/// An event's time (eventTime, RFC 3339 with nanoseconds) as seconds since the epoch.
func eventTime(_ e: [String: Any]) -> Double? {
    guard let s = e["eventTime"] as? String else { return nil }
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    // ISO8601DateFormatter reads at most milliseconds: cut the fraction to 3 digits.
    var t = s
    if let dot = t.firstIndex(of: "."), let z = t.lastIndex(of: "Z") {
        let frac = t[t.index(after: dot)..<z].prefix(3)
        t = String(t[..<dot]) + "." + frac + "Z"
    }
    return f.date(from: t)?.timeIntervalSince1970
}

/// The events of `pod` with `reason` for container field path `spec.containers{name}` (or
/// initContainers).
func events(_ all: [[String: Any]], _ reason: String, _ container: String? = nil) -> [[String: Any]] {
    all.filter { e in
        guard e["reason"] as? String == reason else { return false }
        guard let container else { return true }
        let fp = (e["involvedObject"] as? [String: Any])?["fieldPath"] as? String ?? ""
        return fp.hasSuffix("{\(container)}")
    }
}

// MARK: - Small helpers of the pod tests

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}

/// `husk exec POD -c C -- sh -c SCRIPT`.
func sh(_ husk: PodHusk, _ pod: String, _ container: String, _ script: String, timeout: TimeInterval = 60) -> RunResult {
    husk.run(["exec", pod, "-c", container, "--", "sh", "-c", script], timeout: timeout)
}

/// A file's text, "" when it cannot be read.
func readText(_ path: String) -> String {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? ""
}
