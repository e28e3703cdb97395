import Foundation
import Testing

/// Probes (pod-semantics §9): startup gating, liveness restarting, readiness flipping `ready`
/// without restarts; exec, httpGet and tcpSocket. Probe periods of 1 s keep each test short.
@Suite("Pods: probes", .enabled(if: Host.canRunPods, Host.podSkipReason))
struct PodProbeTests {
    /// Polls `husk inspect` and keeps every object seen until `done` holds.
    func observe(_ husk: PodHusk, _ pod: String, timeout: TimeInterval, until done: ([String: Any]) -> Bool) -> [[String: Any]] {
        var seen: [[String: Any]] = []
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if let p = husk.inspect(pod) {
                seen.append(p)
                if done(p) { break }
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return seen
    }

    func condition(_ pod: [String: Any], _ type: String) -> String? {
        (pod.status["conditions"] as? [[String: Any]])?.first { $0["type"] as? String == type }?["status"] as? String
    }

    @Test("§9 liveness: after failureThreshold (2) failed exec probes the container is killed through the normal path and restarted; Unhealthy events carry the probe's output")
    func livenessRestarts() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: live
            spec:
              containers:
              - name: c
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 0' TERM; (sleep 1; touch /tmp/dead) & while true; do sleep 0.1; done"]
                livenessProbe:
                  exec: {command: ["sh", "-c", "if [ -e /tmp/dead ]; then echo dead-now; exit 1; fi"]}
                  periodSeconds: 1
                  failureThreshold: 2
            """)
        #expect(r.status == 0, "\(r.stderr)")
        let seen = observe(husk, "live", timeout: 15) { ($0.container("c")?["restartCount"] as? Int ?? 0) >= 1 }
        let last = try #require(seen.last)
        #expect((last.container("c")?["restartCount"] as? Int ?? 0) >= 1, "§9: not restarted: \(last.container("c") ?? [:])")
        let ev = husk.events("live")
        let unhealthy = events(ev, "Unhealthy", "c")
        #expect(unhealthy.count >= 2, "§9: one Unhealthy event per failed probe: \(unhealthy.count)")
        #expect(unhealthy.first?["type"] as? String == "Warning")
        #expect((unhealthy.first?["message"] as? String)?.hasPrefix("Liveness probe failed: dead-now") == true,
                "\(unhealthy.first?["message"] ?? "")")
        let killing = events(ev, "Killing", "c")
        #expect(killing.first?["message"] as? String == "Container c failed liveness probe, will be restarted", "\(killing)")
        // The kill went through SIGTERM (the trap exits 0), not SIGKILL.
        let lastState = (last.container("c")?["lastState"] as? [String: Any])?["terminated"] as? [String: Any]
        #expect(lastState?["exitCode"] as? Int == 0, "lastState: \(String(describing: lastState))")
        // Two failures a second apart after the file came at ~1 s: not before ~2 s. (The probe
        // fails on a file the container makes, not on one it removes: kubelet's first probe
        // comes right after the start and may run before the shell has done anything.)
        if let started = events(ev, "Started", "c").first.flatMap(eventTime), let killed = killing.first.flatMap(eventTime) {
            #expect(killed - started >= 1.9 && killed - started <= 4.5, "§9: killed \(killed - started) s after the start")
        }
    }

    @Test("§9 readiness: `ready` and the pod's Ready condition follow the probe, with no restart")
    func readinessFlips() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: ready
            spec:
              containers:
              - name: c
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1.5; touch /tmp/ready; sleep 3; rm /tmp/ready; while true; do sleep 0.1; done"]
                readinessProbe:
                  exec: {command: ["test", "-f", "/tmp/ready"]}
                  periodSeconds: 1
                  failureThreshold: 1
            """)
        #expect(r.status == 0, "\(r.stderr)")
        var sawReady = false
        let seen = observe(husk, "ready", timeout: 15) { p in
            let ready = p.container("c")?["ready"] as? Bool ?? false
            if ready { sawReady = true }
            return sawReady && !ready
        }
        let readies = seen.map { $0.container("c")?["ready"] as? Bool ?? false }
        // false (initial) ... true ... false
        #expect(readies.first == false, "§9: readiness starts as Failure")
        #expect(readies.contains(true), "§9: never ready: \(readies)")
        #expect(readies.last == false, "§9: not ready again after the file went: \(readies)")
        if let firstReady = seen.first(where: { $0.container("c")?["ready"] as? Bool == true }) {
            #expect(condition(firstReady, "Ready") == "True" && condition(firstReady, "ContainersReady") == "True")
        }
        if let last = seen.last {
            #expect(condition(last, "Ready") == "False", "§9: the pod is not Ready")
            #expect(last.container("c")?["restartCount"] as? Int == 0, "§9: readiness never restarts")
            #expect(last.stateKind("c") == "running")
            #expect(last.container("c")?["started"] as? Bool == true, "started does not depend on readiness")
        }
        #expect(events(husk.events("ready"), "Killing").isEmpty)
    }

    @Test("§9 startup: until it succeeds the container is not started and liveness does not run; then liveness takes over")
    func startupGates() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: startup
            spec:
              containers:
              - name: c
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2.5; touch /tmp/up; while true; do sleep 0.1; done"]
                startupProbe:
                  exec: {command: ["test", "-f", "/tmp/up"]}
                  periodSeconds: 1
                  failureThreshold: 10
                livenessProbe:
                  exec: {command: ["test", "-f", "/tmp/up"]}
                  periodSeconds: 1
                  failureThreshold: 1
            """)
        #expect(r.status == 0, "\(r.stderr)")
        let seen = observe(husk, "startup", timeout: 15) { $0.container("c")?["started"] as? Bool == true }
        let last = try #require(seen.last)
        #expect(last.container("c")?["started"] as? Bool == true, "§9: never started: \(last.container("c") ?? [:])")
        #expect(seen.first?.container("c")?["started"] as? Bool == false, "§9: started before the startup probe passed")
        #expect(last.container("c")?["ready"] as? Bool == true, "no readiness probe: ready once started")
        // Liveness would have killed it (failureThreshold 1) had it run before the start.
        Thread.sleep(forTimeInterval: 1.5)
        let ev = husk.events("startup")
        #expect(events(ev, "Killing").isEmpty, "§9: liveness ran before startup succeeded")
        let startupFailures = events(ev, "Unhealthy", "c").compactMap { $0["message"] as? String }
        #expect(!startupFailures.isEmpty && startupFailures.allSatisfy { $0.hasPrefix("Startup probe failed") }, "\(startupFailures)")
        #expect(husk.inspect("startup")?.container("c")?["restartCount"] as? Int == 0)
    }

    @Test("§9 httpGet and tcpSocket: a 2xx makes the container ready, a 404 does not; a closed port fails liveness (startup failure kills with its own message)")
    func httpAndTcp() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: net
            spec:
              restartPolicy: Never
              terminationGracePeriodSeconds: 2
              containers:
              - name: web
                image: busybox:1.36
                command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
                ports: [{name: http, containerPort: 8080}]
                readinessProbe:
                  httpGet: {path: /index.html, port: http}
                  periodSeconds: 1
                livenessProbe:
                  tcpSocket: {port: 8080}
                  periodSeconds: 1
              - name: missing
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
                readinessProbe:
                  httpGet: {path: /nope, port: 8080}
                  periodSeconds: 1
                  failureThreshold: 1
              - name: closed
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
                startupProbe:
                  tcpSocket: {port: 9999}
                  periodSeconds: 1
                  failureThreshold: 2
            """)
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        let seen = observe(husk, "net", timeout: 15) { p in
            p.container("web")?["ready"] as? Bool == true && p.stateKind("closed") == "terminated"
        }
        let last = try #require(seen.last)
        #expect(last.container("web")?["ready"] as? Bool == true, "§9: httpGet 200 → ready: \(last.container("web") ?? [:])")
        #expect(last.container("missing")?["ready"] as? Bool == false, "§9: httpGet 404 → not ready")
        #expect(last.stateKind("closed") == "terminated", "§9: startup tcpSocket on a closed port kills: \(last.container("closed") ?? [:])")
        let ev = husk.events("net")
        let killing = events(ev, "Killing", "closed")
        #expect(killing.first?["message"] as? String == "Container closed failed startup probe", "restartPolicy Never: no 'will be restarted': \(killing)")
        let msgs = events(ev, "Unhealthy").compactMap { $0["message"] as? String }
        #expect(msgs.contains { $0 == "Readiness probe failed: HTTP probe failed with statuscode: 404" }, "\(msgs)")
        #expect(msgs.contains { $0.hasPrefix("Startup probe failed: dial tcp 127.0.0.1:9999: connect: connection refused") }, "\(msgs)")
        #expect(events(ev, "Killing", "web").isEmpty, "§9: the open port passes liveness")
    }
}
