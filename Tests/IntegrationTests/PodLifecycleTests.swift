import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Pod lifecycle against /work/shared/spec/pod-semantics.md: phases (§1), container states (§2),
/// init containers (§3), postStart (§5), termination (§6), and the supervisor's independence
/// from the `husk` command that started it.
///
/// Times measured inside containers come from /proc/uptime (busybox's date has no %N): one
/// clock for every container of the host, 10 ms resolution. Event times are wall-clock times.
/// Serialized: most tests measure durations to ±0.3 s.
@Suite("Pods: lifecycle", .serialized, .enabled(if: Host.canRunPods, Host.podSkipReason))
struct PodLifecycleTests {
    /// A scratch directory with a short name: the pod's control socket is made below it, and
    /// its path must fit in sun_path (108 bytes).
    static func scratch(_ function: String = #function) -> Scratch { Scratch(String(function.prefix(14))) }

    /// A main process that has a SIGTERM handler and so stops at once (exit 0).
    static let quick = #"["sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"]"#

    /// A main process that logs when SIGTERM arrives (`term <uptime>`) and goes on: it ends
    /// only by SIGKILL.
    static let logsTerm = #"["sh", "-c", "trap 'read up rest < /proc/uptime; echo term $up' TERM; echo ready; while true; do sleep 0.1; done"]"#

    /// A preStop command that logs its start to the container's log (`prestop <uptime>`), then runs `then`.
    static func logPreStop(_ then: String) -> String {
        #"["sh", "-c", "read up rest < /proc/uptime; echo prestop $up > /proc/1/fd/1; "# + then + #""]"#
    }

    // MARK: - §3 init containers

    @Test("§3: init containers run one after another, to exit 0, before any app container; the app waits PodInitializing, the pod is Pending")
    func initOrdering() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let yaml = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: init-order
            spec:
              terminationGracePeriodSeconds: 2
              volumes:
              - name: shared
                emptyDir: {}
              initContainers:
              - name: a
                image: busybox:1.36
                command: ["sh", "-c", "sleep 2; read up rest < /proc/uptime; echo $up > /shared/a-end"]
                volumeMounts: [{name: shared, mountPath: /shared}]
              - name: b
                image: busybox:1.36
                command: ["sh", "-c", "read up rest < /proc/uptime; echo $up > /shared/b-start; sleep 0.3; read up rest < /proc/uptime; echo $up > /shared/b-end"]
                volumeMounts: [{name: shared, mountPath: /shared}]
              containers:
              - name: c
                image: busybox:1.36
                command: ["sh", "-c", "read up rest < /proc/uptime; echo $up > /shared/c-start; trap 'exit 0' TERM; while true; do sleep 0.1; done"]
                volumeMounts: [{name: shared, mountPath: /shared}]
            """
        let start = Background { husk.start(yaml) }
        // Watch the pod while `a` sleeps, until both init containers are done.
        let seen = husk.observe("init-order", timeout: 20) { $0.stateKind("b") == "terminated" && $0.stateKind("c") == "running" }
        let r = start.join()
        #expect(r.status == 0, "husk run -d: \(r.stderr)")

        let duringA = seen.filter { $0.stateKind("a") == "running" }
        #expect(!duringA.isEmpty, "never saw init container a running")
        expectEvery(duringA, "§1: phase Pending while init container a runs", { $0.phase == "Pending" }, { $0.phase })
        expectEvery(duringA, "§2: app c waits PodInitializing while a runs", { $0.waitingReason("c") == "PodInitializing" }, { $0.container("c") })
        expectEvery(duringA, "§3: b waits while a runs", { $0.stateKind("b") == "waiting" }, { $0.container("b") })
        // §2: a container without a record waits with PodInitializing in a pod with init
        // containers, in the init status list too (kubelet passes hasInitContainers for both).
        expectEvery(duringA, "§2: init container b, not started yet, waits PodInitializing", { $0.waitingReason("b") == "PodInitializing" }, { $0.container("b") })
        let beforeB = seen.filter { $0.stateKind("b") != "terminated" }
        expectEvery(beforeB, "§3: app c has no container before b exited", { $0.container("c")?["containerID"] == nil }, { $0.container("c") })
        expectEvery(beforeB, "§1: phase Pending before init is done", { $0.phase == "Pending" }, { $0.phase })

        let done = try #require(husk.inspect("init-order"))
        #expect(done.exitCode("a") == 0 && done.exitCode("b") == 0, "init containers: a \(done.container("a") ?? [:]), b \(done.container("b") ?? [:])")
        #expect(done.stateKind("c") == "running")
        #expect(done.phase == "Running")

        // Events: b is created only after a's 2 s (a's process starts after its Created event),
        // c only after b started.
        let ev = husk.events("init-order")
        let aCreated = try #require(events(ev, "Created", "a").first.flatMap(eventTime))
        let bCreated = try #require(events(ev, "Created", "b").first.flatMap(eventTime))
        let bStarted = try #require(events(ev, "Started", "b").first.flatMap(eventTime))
        let cCreated = try #require(events(ev, "Created", "c").first.flatMap(eventTime))
        #expect(bCreated - aCreated >= 2.0, "§3: b was created \(bCreated - aCreated) s after a, which sleeps 2 s")
        #expect(cCreated >= bStarted, "§3: c created before b started")
        #expect(events(ev, "Created", "c").count == 1 && events(ev, "Created", "b").count == 1 && events(ev, "Created", "a").count == 1)

        // The containers' own clocks: a ended before b started, b ended before c started.
        var files = ""
        #expect(poll(timeout: 10) {
            files = husk("exec", "init-order", "-c", "c", "--", "cat", "/shared/a-end", "/shared/b-start", "/shared/b-end", "/shared/c-start").stdout
            return files.split(separator: "\n").count == 4
        }, "files in the emptyDir: \(files)")
        let t = files.split(separator: "\n").compactMap { Double($0) }
        try #require(t.count == 4, "\(files)")
        #expect(t[1] >= t[0], "§3: b started (\(t[1])) before a finished (\(t[0]))")
        #expect(t[3] >= t[2], "§3: c started (\(t[3])) before b finished (\(t[2]))")
    }

    @Test("§3/§1: an init container exiting 1 under restartPolicy Never fails the pod; no app container is ever created; run -d exits 1")
    func initFailureNever() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: init-never
            spec:
              restartPolicy: Never
              terminationGracePeriodSeconds: 2
              initContainers:
              - name: bad
                image: busybox:1.36
                command: ["sh", "-c", "exit 1"]
              containers:
              - name: c
                image: busybox:1.36
                command: \(Self.quick)
            """)
        #expect(r.status == 1, "husk run -d must exit 1 for a failed pod: \(r.status) \(r.stderr)")
        let pod = try #require(husk.wait("init-never", timeout: 10) { $0.phase == "Failed" })
        #expect(pod.phase == "Failed", "§1 rule 1: \(pod.status)")
        #expect(pod.exitCode("bad") == 1)
        #expect(pod.terminated("bad")?["reason"] as? String == "Error")
        // Give a wrong implementation time to go on.
        Thread.sleep(forTimeInterval: 1)
        let later = try #require(husk.inspect("init-never"))
        #expect(later.phase == "Failed")
        #expect(later.stateKind("c") == "waiting", "§3: app c: \(later.container("c") ?? [:])")
        #expect(later.waitingReason("c") == "PodInitializing", "§2: app c: \(later.container("c") ?? [:])")
        #expect(later.container("c")?["containerID"] == nil, "§3: app c got a container")
        #expect(later.container("bad")?["restartCount"] as? Int == 0, "§3: the init container was re-run under Never")
        let ev = husk.events("init-never")
        #expect(events(ev, "Created", "c").isEmpty, "§3: app c was created: \(events(ev, "Created", "c"))")
        #expect(events(ev, "Created", "bad").count == 1)
        try expectPodFinishes(husk)
    }

    @Test("§3/§8: an init container failing under OnFailure is re-run with growing back-off; restartCount grows; the pod stays Pending")
    func initFailureOnFailure() throws {
        let scratch = Self.scratch()
        // Back-off 0.5 s, 1 s, 2 s ... instead of 10 s, 20 s, 40 s.
        let husk = PodHusk(scratch, extra: ["--backoff-scale", "0.05"])
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: init-onfailure
            spec:
              restartPolicy: OnFailure
              terminationGracePeriodSeconds: 2
              initContainers:
              - name: bad
                image: busybox:1.36
                command: ["sh", "-c", "exit 1"]
              containers:
              - name: c
                image: busybox:1.36
                command: \(Self.quick)
            """)
        #expect(r.status == 2, "husk run -d: a container stuck in CrashLoopBackOff is exit 2: \(r.status) \(r.stderr)")
        let seen = husk.observe("init-onfailure", timeout: 20) { ($0.container("bad")?["restartCount"] as? Int ?? 0) >= 3 }
        let last = try #require(seen.last)
        #expect((last.container("bad")?["restartCount"] as? Int ?? 0) >= 3, "§3: restartCount: \(last.container("bad") ?? [:])")
        expectEvery(seen, "§3: the pod stays Pending", { $0.phase == "Pending" }, { $0.phase })
        expectEvery(seen, "§3: app c waits PodInitializing", { $0.waitingReason("c") == "PodInitializing" }, { $0.container("c") })
        #expect(seen.contains { $0.waitingReason("bad") == "CrashLoopBackOff" }, "§8: never saw CrashLoopBackOff on the init container")
        let lastTerminated = (last.container("bad")?["lastState"] as? [String: Any])?["terminated"] as? [String: Any]
        #expect(lastTerminated?["exitCode"] as? Int == 1, "§2: lastState of the init container: \(last.container("bad") ?? [:])")

        let ev = husk.events("init-onfailure")
        #expect(events(ev, "Created", "c").isEmpty, "§3: app c was created")
        let starts = events(ev, "Started", "bad").compactMap(eventTime)
        try #require(starts.count >= 4, "Started events of bad: \(starts.count)")
        // §8: delays after successive crashes 0, 10, 20 s (×0.05), from the previous exit.
        let gaps = (1..<4).map { starts[$0] - starts[$0 - 1] }
        #expect(gaps[0] < 0.45, "§8: the first restart is immediate: \(gaps)")
        #expect(gaps[1] >= 0.5 && gaps[1] < 1.0, "§8: second restart after 0.5 s: \(gaps)")
        #expect(gaps[2] >= 1.0 && gaps[2] < 1.5, "§8: third restart after 1 s: \(gaps)")
        #expect(!events(ev, "BackOff", "bad").isEmpty, "§8: no BackOff event")
    }

    @Test("§3/§1: once app containers run, init containers are never re-run, even when an app container crash-loops; phase Running under Always")
    func initNotRerun() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch, extra: ["--backoff-scale", "0.05"])
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: init-once
            spec:
              restartPolicy: Always
              terminationGracePeriodSeconds: 2
              initContainers:
              - name: a
                image: busybox:1.36
                command: ["sh", "-c", "exit 0"]
              containers:
              - name: c
                image: busybox:1.36
                command: ["sh", "-c", "sleep 0.2; exit 1"]
            """)
        #expect(r.status != 1, "husk run -d: \(r.status) \(r.stderr)")
        let seen = husk.observe("init-once", timeout: 20) { ($0.container("c")?["restartCount"] as? Int ?? 0) >= 2 }
        let last = try #require(seen.last)
        #expect((last.container("c")?["restartCount"] as? Int ?? 0) >= 2, "§8: c was not restarted: \(last.container("c") ?? [:])")
        expectEvery(seen, "§1 rule 5: phase Running while c restarts under Always", { $0.phase == "Running" }, { $0.phase })
        expectEvery(seen, "§3: init container a stays Terminated/0", { $0.exitCode("a") == 0 && ($0.container("a")?["restartCount"] as? Int) == 0 }, { $0.container("a") })
        let ev = husk.events("init-once")
        #expect(events(ev, "Created", "a").count == 1, "§3: init container a re-run: \(events(ev, "Created", "a").count) Created events")
        #expect(events(ev, "Created", "c").count >= 3)
    }

    // MARK: - §5 postStart

    @Test("§5: postStart blocks: the next container is pulled and created only after it returned; Waiting ContainerCreating meanwhile; run -d waits for it")
    func postStartBlocks() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let yaml = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: poststart
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - name: c1
                image: busybox:1.36
                command: \(Self.quick)
                lifecycle:
                  postStart:
                    exec:
                      command: ["sleep", "2"]
              - name: c2
                image: busybox:1.36
                command: \(Self.quick)
            """
        let t0 = Date()
        let start = Background { (husk.start(yaml), Date()) }
        let seen = husk.observe("poststart", timeout: 20) { $0.stateKind("c1") == "running" && $0.stateKind("c2") == "running" }
        let (r, t1) = start.join()
        let took = t1.timeIntervalSince(t0)
        #expect(r.status == 0, "husk run -d: \(r.stderr)")
        #expect(took >= 2.0, "husk run -d returned after \(took) s, before c1's 2 s postStart returned")

        let hooked = seen.filter { $0.container("c1")?["containerID"] != nil && $0.stateKind("c1") != "running" }
        #expect(!hooked.isEmpty, "never saw c1 while its postStart ran")
        // Between CreateContainer and StartContainer c1 is `waiting: {}` (kubelet's status of a
        // created container, which has no reason); from its start until the hook returns,
        // ContainerCreating.
        expectEvery(hooked, "§5: c1 waits ContainerCreating during its postStart (or, created and not yet started, with no reason)",
                    { $0.waitingReason("c1") == "ContainerCreating" || ($0.waitingReason("c1") == nil && $0.stateKind("c1") == "waiting") },
                    { $0.container("c1") })
        #expect(hooked.contains { $0.waitingReason("c1") == "ContainerCreating" }, "§5: c1 never ContainerCreating during its postStart")
        if let first = hooked.firstIndex(where: { $0.waitingReason("c1") == "ContainerCreating" }) {
            #expect(!hooked[first...].contains { $0.waitingReason("c1") == nil }, "§5: c1 went back to `created` after ContainerCreating")
        }
        expectEvery(hooked, "§5: c2 is not created during c1's postStart", { $0.container("c2")?["containerID"] == nil }, { $0.container("c2") })
        expectEvery(hooked, "§1: phase Pending during postStart", { $0.phase == "Pending" }, { $0.phase })
        let final = try #require(seen.last)
        #expect(final.stateKind("c1") == "running", "§5: c1 after its postStart: \(final.container("c1") ?? [:])")
        #expect(final.phase == "Running")

        let ev = husk.events("poststart")
        let c1Started = try #require(events(ev, "Started", "c1").first.flatMap(eventTime))
        let c2Created = try #require(events(ev, "Created", "c2").first.flatMap(eventTime))
        let c2Pulled = try #require(events(ev, "Pulled", "c2").first.flatMap(eventTime))
        #expect(c2Created - c1Started >= 2.0, "§5: c2 created \(c2Created - c1Started) s after c1 started")
        #expect(c2Pulled - c1Started >= 2.0, "§5: c2's image resolved \(c2Pulled - c1Started) s after c1 started")
        // §2/§5: startedAt is the process start, not the end of the hook (API time, whole seconds).
        let running = try #require((final.container("c1")?["state"] as? [String: Any])?["running"] as? [String: Any])
        let startedAt = try #require((running["startedAt"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) })
        #expect(startedAt.timeIntervalSince1970 <= c1Started, "§5: c1's startedAt \(running["startedAt"] ?? "") is after its Started event: set when postStart returned?")
    }

    @Test("§5: a failing postStart under Never: FailedPostStartHook, Killing (through preStop), container Terminated and not restarted, pod Failed")
    func postStartFailureNever() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: poststart-fail
            spec:
              restartPolicy: Never
              terminationGracePeriodSeconds: 2
              containers:
              - name: c
                image: busybox:1.36
                command: ["sleep", "1000"]
                lifecycle:
                  postStart:
                    exec:
                      command: ["sh", "-c", "exit 1"]
                  preStop:
                    exec:
                      command: ["sh", "-c", "echo prestop ran > /proc/1/fd/1"]
            """)
        #expect(r.status == 1, "husk run -d on a pod that fails: \(r.status) \(r.stderr)")
        let pod = try #require(husk.wait("poststart-fail", timeout: 15) { $0.phase == "Failed" })
        #expect(pod.phase == "Failed")
        Thread.sleep(forTimeInterval: 1)
        let later = try #require(husk.inspect("poststart-fail"))
        #expect(later.stateKind("c") == "terminated", "§5: with Never the container stays Terminated: \(later.container("c") ?? [:])")
        // sleep as PID 1 ignores SIGTERM: SIGKILL after the grace.
        #expect(later.exitCode("c") == 137)
        #expect(later.container("c")?["restartCount"] as? Int == 0)
        let ev = husk.events("poststart-fail")
        let failed = events(ev, "FailedPostStartHook", "c")
        #expect(failed.count == 1 && failed.first?["type"] as? String == "Warning", "§5: \(failed)")
        let killing = events(ev, "Killing", "c")
        #expect(killing.count == 1, "§5/§6: Killing events: \(killing)")
        #expect(killing.first?["message"] as? String == "FailedPostStartHook", "§5: the kill's message: \(killing)")
        if let f = failed.first.flatMap(eventTime), let k = killing.first.flatMap(eventTime) {
            #expect(k >= f, "§5: Killing before FailedPostStartHook")
        }
        #expect(events(ev, "Created", "c").count == 1, "§5: restarted under Never")
        #expect(husk("logs", "poststart-fail").stdout.contains("prestop ran"), "§5: the kill after a failed postStart runs preStop")
        try expectPodFinishes(husk)
    }

    @Test("§5/§8: a failing postStart under Always: the container is killed and restarted, shows PostStartHookError or CrashLoopBackOff; run -d exits 2")
    func postStartFailureAlways() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch, extra: ["--backoff-scale", "0.05"])
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: poststart-always
            spec:
              restartPolicy: Always
              terminationGracePeriodSeconds: 2
              containers:
              - name: c
                image: busybox:1.36
                command: \(Self.quick)
                lifecycle:
                  postStart:
                    exec:
                      command: ["sh", "-c", "exit 1"]
            """)
        #expect(r.status == 2, "husk run -d: a container waiting on PostStartHookError is exit 2: \(r.status) \(r.stderr)")
        let seen = husk.observe("poststart-always", timeout: 20) { ($0.container("c")?["restartCount"] as? Int ?? 0) >= 2 }
        let last = try #require(seen.last)
        #expect((last.container("c")?["restartCount"] as? Int ?? 0) >= 2, "§5: not restarted: \(last.container("c") ?? [:])")
        let reasons = Set(seen.compactMap { $0.waitingReason("c") })
        #expect(reasons.contains("PostStartHookError") || reasons.contains("CrashLoopBackOff"), "§5: waiting reasons seen: \(reasons)")
        expectEvery(seen, "§5: c is never Running, its postStart never succeeds", { $0.stateKind("c") != "running" }, { $0.container("c") })
        let ev = husk.events("poststart-always")
        #expect(events(ev, "FailedPostStartHook", "c").count >= 2)
        #expect(events(ev, "Killing", "c").count >= 2)
        #expect(events(ev, "Started", "c").count >= 3)
    }

    // MARK: - §6 termination

    @Test("§4: on stop, app containers get SIGTERM first, then sidecars in reverse declaration order, each after the ones it waits for exited; sidecar preStops start at once")
    func sidecarStopOrder() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        // Each container logs when SIGTERM arrives, takes 0.5 s to exit, and logs that too.
        func term(_ name: String) -> String {
            #"["sh", "-c", "trap 'read up rest < /proc/uptime; echo \#(name) term $up >> /shared/order; sleep 0.5; read up rest < /proc/uptime; echo \#(name) exit $up >> /shared/order; exit 0' TERM; while true; do sleep 0.1; done"]"#
        }
        let preStop = #"["sh", "-c", "read up rest < /proc/uptime; echo s1 prestop $up >> /shared/order"]"#
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: sidecars
            spec:
              terminationGracePeriodSeconds: 10
              volumes:
              - name: shared
                emptyDir: {}
              initContainers:
              - name: s1
                image: busybox:1.36
                restartPolicy: Always
                command: \(term("s1"))
                volumeMounts: [{name: shared, mountPath: /shared}]
                lifecycle:
                  preStop:
                    exec:
                      command: \(preStop)
              - name: s2
                image: busybox:1.36
                restartPolicy: Always
                command: \(term("s2"))
                volumeMounts: [{name: shared, mountPath: /shared}]
              containers:
              - name: app
                image: busybox:1.36
                command: \(term("app"))
                volumeMounts: [{name: shared, mountPath: /shared}]
            """)
        #expect(r.status == 0, "\(r.stderr)")
        let uid = r.stdout.trimmed
        let (stop, took) = timed { husk("stop", "sidecars") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(took < 4, "§4: three 0.5 s exits in a row, not the 10 s grace: \(took) s")
        let text = readText(husk.root + "/pods/\(uid)/volumes/kubernetes.io~empty-dir/shared/order")
        var at: [String: Double] = [:]
        var order: [String] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 3, let t = Double(f[2]) else { continue }
            at["\(f[0]) \(f[1])"] = t
            order.append("\(f[0]) \(f[1])")
        }
        let terms = order.filter { $0.hasSuffix(" term") }
        #expect(terms == ["app term", "s2 term", "s1 term"], "§4: SIGTERM order: \(text)")
        if let a = at["app exit"], let s2 = at["s2 term"], let s2x = at["s2 exit"], let s1 = at["s1 term"], let p = at["s1 prestop"], let at0 = at["app term"] {
            #expect(s2 >= a, "§4: s2 got SIGTERM (\(s2)) before app exited (\(a))")
            #expect(s1 >= s2x, "§4: s1 got SIGTERM (\(s1)) before s2 exited (\(s2x))")
            #expect(p <= at0 + 0.3, "§4: s1's preStop (\(p)) starts at once, with the app's SIGTERM (\(at0))")
        } else {
            Issue.record("missing lines: \(text)")
        }
        let pod = husk.inspect("sidecars")
        #expect(pod?.phase == "Succeeded", "\(pod?.status ?? [:])")
    }

    @Test("§10: activeDeadlineSeconds 2 counts init time: the pod is Failed with DeadlineExceeded, its containers stopped with the grace")
    func activeDeadline() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let (r, _) = timed { husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: deadline
            spec:
              activeDeadlineSeconds: 2
              terminationGracePeriodSeconds: 5
              initContainers:
              - name: init
                image: busybox:1.36
                command: ["sleep", "1"]
              containers:
              - name: main
                image: busybox:1.36
                command: \(Self.quick)
            """) }
        #expect(r.status == 0, "\(r.stderr)")
        let started = Date()
        let done = husk.wait("deadline", timeout: 15) { ($0.status["reason"] as? String) == "DeadlineExceeded" && $0.stateKind("main") == "terminated" }
        let pod = try #require(done)
        #expect(pod.phase == "Failed")
        #expect(pod.status["message"] as? String == "Pod was active on the node longer than the specified deadline")
        // The deadline runs from startTime, 1 s of which the init container took.
        let took = Date().timeIntervalSince(started)
        #expect(took < 2.5, "§10: the deadline (2 s from startTime, 1 s of it init) hit \(took) s after run -d returned")
        // main traps SIGTERM and exits 0: stopped with the normal kill path, not SIGKILL.
        #expect(pod.exitCode("main") == 0, "\(pod.container("main") ?? [:])")
        let ev = husk.events("deadline")
        let dl = events(ev, "DeadlineExceeded")
        #expect(dl.count == 1 && dl.first?["type"] as? String == "Normal", "\(dl)")
        #expect(events(ev, "Killing", "main").count == 1)
        // It stays so once the pod has finished (husk stop returns then).
        #expect(husk("stop", "deadline").status == 0)
        let end = husk.inspect("deadline")
        #expect(end?.phase == "Failed" && end?.status["reason"] as? String == "DeadlineExceeded", "\(end?.status ?? [:])")
    }

    @Test("§6: a process ignoring SIGTERM is SIGKILLed after the grace (3 s): 137, Error, pod Failed")
    func stopIgnoringTerm() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: stop-ignore
            spec:
              terminationGracePeriodSeconds: 3
              containers:
              - name: main
                image: busybox:1.36
                command: ["sleep", "1000"]
            """)
        #expect(r.status == 0, "\(r.stderr)")
        let (stop, took) = timed { husk("stop", "stop-ignore") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(abs(took - 3) <= 0.3, "§6: stop took \(took) s, grace 3")
        let pod = try #require(husk.inspect("stop-ignore"))
        #expect(pod.exitCode("main") == 137)
        #expect(pod.terminated("main")?["reason"] as? String == "Error")
        #expect(pod.phase == "Failed")
    }

    @Test("§6: a SIGTERM handler's exit code is recorded (7), and the stop returns at once")
    func stopWithHandler() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: stop-trap
            spec:
              terminationGracePeriodSeconds: 30
              containers:
              - name: main
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done"]
            """)
        #expect(r.status == 0, "\(r.stderr)")
        try husk.waitForLog("stop-trap", "main", "ready")
        let (stop, took) = timed { husk("stop", "stop-trap") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(took < 1.5, "§6: stop took \(took) s for a process that exits on SIGTERM")
        let pod = try #require(husk.inspect("stop-trap"))
        #expect(pod.exitCode("main") == 7)
        #expect(pod.terminated("main")?["reason"] as? String == "Error")
        #expect(pod.phase == "Failed", "§1: a stopped pod whose container exited 7")
    }

    @Test("§6/§10: with shareProcessNamespace the main process is not PID 1 and dies of SIGTERM: 143, quick")
    func stopDefaultTerm() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: stop-143
            spec:
              shareProcessNamespace: true
              terminationGracePeriodSeconds: 30
              containers:
              - name: main
                image: busybox:1.36
                command: ["sleep", "1000"]
            """)
        #expect(r.status == 0, "\(r.stderr)")
        let (stop, took) = timed { husk("stop", "stop-143") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(took < 1.5, "§6: stop took \(took) s for a process that dies of SIGTERM")
        let pod = try #require(husk.inspect("stop-143"))
        #expect(pod.exitCode("main") == 143, "§2: \(pod.container("main") ?? [:])")
        #expect(pod.terminated("main")?["reason"] as? String == "Error")
        #expect(pod.phase == "Failed", "§1: a stopped pod whose container died of SIGTERM fails")
    }

    @Test("§6: preStop time counts against the grace: grace 6, preStop 2 s, SIGTERM after the hook, SIGKILL at 6 s (not 8)")
    func preStopCountsAgainstGrace() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: prestop
            spec:
              terminationGracePeriodSeconds: 6
              containers:
              - name: main
                image: busybox:1.36
                command: \(Self.logsTerm)
                lifecycle:
                  preStop:
                    exec:
                      command: \(Self.logPreStop("sleep 2"))
            """)
        #expect(r.status == 0, "\(r.stderr)")
        try husk.waitForLog("prestop", "main", "ready")
        let (stop, took) = timed { husk("stop", "prestop") }
        #expect(stop.status == 0, "\(stop.stderr)")
        let pod = try #require(husk.inspect("prestop"))
        #expect(pod.exitCode("main") == 137)
        let log = husk("logs", "prestop").stdout
        let pre = try #require(uptime(log, "prestop"), "no preStop in the log: \(log)")
        let term = try #require(uptime(log, "term"), "no SIGTERM in the log: \(log)")
        #expect(term - pre >= 2.0 && term - pre <= 2.5, "§6: SIGTERM \(term - pre) s after the preStop began, which takes 2 s")
        // kubelet takes the hook's whole seconds off the grace (int64 of its duration): the
        // SIGKILL comes 6 s plus the hook's fraction of a second after the stop began.
        let hook = term - pre
        let expected = 6 + (hook - hook.rounded(.down))
        #expect(abs(took - expected) <= 0.3, "§6: stop took \(took) s, expected \(expected) s: grace 6 includes the \(hook) s preStop")
    }

    @Test("§6: a preStop that hangs is given the grace (3 s), then SIGTERM, then SIGKILL after the 2 s floor")
    func preStopHangs() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: prestop-hang
            spec:
              terminationGracePeriodSeconds: 3
              containers:
              - name: main
                image: busybox:1.36
                command: \(Self.logsTerm)
                lifecycle:
                  preStop:
                    exec:
                      command: \(Self.logPreStop("sleep 100"))
            """)
        #expect(r.status == 0, "\(r.stderr)")
        try husk.waitForLog("prestop-hang", "main", "ready")
        let (stop, took) = timed { husk("stop", "prestop-hang") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(abs(took - 5) <= 0.3, "§6: stop took \(took) s; expected grace 3 + the 2 s minimum")
        let pod = try #require(husk.inspect("prestop-hang"))
        #expect(pod.exitCode("main") == 137)
        let log = husk("logs", "prestop-hang").stdout
        let pre = try #require(uptime(log, "prestop"), "no preStop in the log: \(log)")
        let term = try #require(uptime(log, "term"), "no SIGTERM in the log: \(log)")
        #expect(term - pre >= 2.9 && term - pre <= 3.5, "§6: SIGTERM \(term - pre) s after the hung preStop began; grace 3")
    }

    @Test("§6: a failing preStop gives a FailedPreStopHook warning and the stop goes on")
    func preStopFails() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: prestop-fail
            spec:
              terminationGracePeriodSeconds: 10
              containers:
              - name: main
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done"]
                lifecycle:
                  preStop:
                    exec:
                      command: ["sh", "-c", "exit 1"]
            """)
        #expect(r.status == 0, "\(r.stderr)")
        try husk.waitForLog("prestop-fail", "main", "ready")
        let (stop, took) = timed { husk("stop", "prestop-fail") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(took < 1.5, "§6: stop took \(took) s")
        let pod = try #require(husk.inspect("prestop-fail"))
        #expect(pod.exitCode("main") == 7, "§6: the stop signal still came: \(pod.container("main") ?? [:])")
        let ev = husk.events("prestop-fail")
        let failed = events(ev, "FailedPreStopHook", "main")
        #expect(failed.count == 1 && failed.first?["type"] as? String == "Warning", "§6: \(failed)")
        #expect(events(ev, "Killing", "main").count == 1)
    }

    @Test("§6: terminationGracePeriodSeconds 0 still gives SIGTERM and SIGKILL 2 s later")
    func graceZeroFloor() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: grace0
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - name: main
                image: busybox:1.36
                command: \(Self.logsTerm)
            """)
        #expect(r.status == 0, "\(r.stderr)")
        try husk.waitForLog("grace0", "main", "ready")
        let (stop, took) = timed { husk("stop", "grace0") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(abs(took - 2) <= 0.3, "§6: stop took \(took) s; grace 0 is raised to 2")
        let pod = try #require(husk.inspect("grace0"))
        #expect(pod.exitCode("main") == 137)
        #expect(husk("logs", "grace0").stdout.contains("term "), "§6: never an immediate SIGKILL: SIGTERM first")
    }

    @Test("§6: husk stop --grace 0 on a grace-30 pod takes the 2 s floor")
    func stopGraceZeroOverride() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: grace30
            spec:
              terminationGracePeriodSeconds: 30
              containers:
              - name: main
                image: busybox:1.36
                command: ["sleep", "1000"]
            """)
        #expect(r.status == 0, "\(r.stderr)")
        let (stop, took) = timed { husk("stop", "--grace", "0", "grace30") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(abs(took - 2) <= 0.3, "§6: stop --grace 0 took \(took) s")
        #expect(husk.inspect("grace30")?.exitCode("main") == 137)
    }

    @Test("§6: grace 0 with a hanging preStop: the hook gets 2 s, then SIGTERM, then SIGKILL 2 s later")
    func graceZeroPreStop() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: grace0-prestop
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - name: main
                image: busybox:1.36
                command: \(Self.logsTerm)
                lifecycle:
                  preStop:
                    exec:
                      command: \(Self.logPreStop("sleep 100"))
            """)
        #expect(r.status == 0, "\(r.stderr)")
        try husk.waitForLog("grace0-prestop", "main", "ready")
        let (stop, took) = timed { husk("stop", "grace0-prestop") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(abs(took - 4) <= 0.3, "§6: stop took \(took) s; expected 2 s of preStop and 2 s after SIGTERM")
        let log = husk("logs", "grace0-prestop").stdout
        let pre = try #require(uptime(log, "prestop"), "§6: preStop did not run with grace 0: \(log)")
        let term = try #require(uptime(log, "term"), "no SIGTERM in the log: \(log)")
        #expect(term - pre >= 1.9 && term - pre <= 2.5, "§6: SIGTERM \(term - pre) s after the preStop began")
        #expect(husk.inspect("grace0-prestop")?.exitCode("main") == 137)
    }

    @Test("§6: the image's STOPSIGNAL (SIGQUIT) is sent instead of SIGTERM")
    func imageStopSignal() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: stopsignal
            spec:
              terminationGracePeriodSeconds: 10
              containers:
              - name: main
                image: busybox:quit
                command: ["sh", "-c", "trap 'echo got QUIT; exit 3' QUIT; trap 'echo got TERM; exit 4' TERM; trap 'echo got USR1; exit 5' USR1; echo ready; while true; do sleep 0.1; done"]
            """)
        #expect(r.status == 0, "\(r.stderr)")
        try husk.waitForLog("stopsignal", "main", "ready")
        let (stop, took) = timed { husk("stop", "stopsignal") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(took < 1.5, "stop took \(took) s")
        #expect(husk.inspect("stopsignal")?.exitCode("main") == 3, "§6: \(husk.inspect("stopsignal")?.container("main") ?? [:])")
        let log = husk("logs", "stopsignal").stdout
        #expect(log.contains("got QUIT") && !log.contains("got TERM"), "§6: log: \(log)")
    }

    @Test("§6: lifecycle.stopSignal (SIGUSR1) wins over the image's STOPSIGNAL")
    func lifecycleStopSignal() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: stopsignal-lc
            spec:
              os:
                name: linux
              terminationGracePeriodSeconds: 10
              containers:
              - name: main
                image: busybox:quit
                command: ["sh", "-c", "trap 'echo got QUIT; exit 3' QUIT; trap 'echo got TERM; exit 4' TERM; trap 'echo got USR1; exit 5' USR1; echo ready; while true; do sleep 0.1; done"]
                lifecycle:
                  stopSignal: SIGUSR1
            """)
        #expect(r.status == 0, "\(r.stderr)")
        try husk.waitForLog("stopsignal-lc", "main", "ready")
        let (stop, took) = timed { husk("stop", "stopsignal-lc") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(took < 1.5, "stop took \(took) s")
        #expect(husk.inspect("stopsignal-lc")?.exitCode("main") == 5, "§6: \(husk.inspect("stopsignal-lc")?.container("main") ?? [:])")
        let log = husk("logs", "stopsignal-lc").stdout
        #expect(log.contains("got USR1") && !log.contains("got QUIT") && !log.contains("got TERM"), "§6: log: \(log)")
    }

    @Test("§6: all containers are stopped in parallel: two SIGTERM-ignoring containers with grace 2 take 2 s, not 4")
    func parallelStop() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: parallel
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - name: one
                image: busybox:1.36
                command: \(Self.logsTerm)
              - name: two
                image: busybox:1.36
                command: \(Self.logsTerm)
            """)
        #expect(r.status == 0, "\(r.stderr)")
        try husk.waitForLog("parallel", "one", "ready")
        try husk.waitForLog("parallel", "two", "ready")
        let (stop, took) = timed { husk("stop", "parallel") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(abs(took - 2) <= 0.3, "§6: stop took \(took) s")
        let pod = try #require(husk.inspect("parallel"))
        #expect(pod.exitCode("one") == 137 && pod.exitCode("two") == 137)
        let t1 = uptime(husk("logs", "parallel", "-c", "one").stdout, "term")
        let t2 = uptime(husk("logs", "parallel", "-c", "two").stdout, "term")
        if let t1, let t2 {
            #expect(abs(t1 - t2) <= 0.3, "§6: SIGTERM reached the containers \(abs(t1 - t2)) s apart")
        } else {
            Issue.record("§6: SIGTERM not logged by both containers: \(String(describing: t1)) \(String(describing: t2))")
        }
    }

    // MARK: - The supervisor outlives husk

    @Test("the pod outlives a SIGKILLed `husk run -d`: it finishes starting, runs, execs, stops, and records exit codes")
    func supervisorOutlivesDetachedRun() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let path = scratch.path + "/pod.yaml"
        // postStart keeps `husk run -d` waiting for 2 s: it is killed in the middle.
        try """
            apiVersion: v1
            kind: Pod
            metadata:
              name: orphan
            spec:
              terminationGracePeriodSeconds: 10
              containers:
              - name: main
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done"]
                lifecycle:
                  postStart:
                    exec:
                      command: ["sleep", "2"]
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let p = try LiveProcess([huskPath] + husk.globals + ["run", "-d", path])
        defer { p.stop() }  // also when an expectation below ends the test early
        #expect(p.waitForOutput("\n", timeout: 30), "husk run -d printed no UID: \(p.stdout) \(p.stderr)")
        kill(p.process.processIdentifier, SIGKILL)
        let status = p.wait(timeout: 10)
        #expect(status == 128 + SIGKILL, "husk run -d ended by itself before it was killed (the pod's postStart takes 2 s): status \(String(describing: status)), stderr: \(p.stderr)")
        let uid = p.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(uid.count == 36, "\(p.stdout)")
        try expectSupervisorAlive(husk)

        let pod = husk.wait("orphan", timeout: 15) { $0.stateKind("main") == "running" }
        #expect(pod?.stateKind("main") == "running", "the pod did not finish starting: \(pod?.status ?? [:]) \(husk.supervisorLog)")
        #expect(pod?.phase == "Running")
        let e = husk("exec", "orphan", "--", "echo", "hello")
        #expect(e.status == 0 && e.stdout == "hello\n", "exec: \(e.status) \(e.stdout) \(e.stderr)")
        #expect(husk("exec", "orphan", "--", "sh", "-c", "exit 3").status == 3, "exec's exit code")
        let (stop, took) = timed { husk("stop", "orphan") }
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(took < 1.5, "stop took \(took) s")
        let done = try #require(husk.inspect("orphan"))
        #expect(done.exitCode("main") == 7, "\(done.container("main") ?? [:])")
        #expect(done.phase == "Failed")
    }

    @Test("the pod outlives a SIGKILLed foreground `husk run`")
    func supervisorOutlivesForegroundRun() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let p = try husk.foreground("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: orphan-fg
            spec:
              terminationGracePeriodSeconds: 10
              containers:
              - name: main
                image: busybox:1.36
                command: ["sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done"]
            """)
        defer { p.stop() }  // also when an expectation below ends the test early
        #expect(p.waitForOutput("ready\n", timeout: 30), "the foreground run streamed no output: \(p.stdout) \(p.stderr) \(husk.supervisorLog)")
        kill(p.process.processIdentifier, SIGKILL)
        #expect(p.wait(timeout: 10) == 128 + SIGKILL)
        try expectSupervisorAlive(husk)
        Thread.sleep(forTimeInterval: 0.5)
        let pod = husk.wait("orphan-fg", timeout: 10) { $0.stateKind("main") == "running" }
        #expect(pod?.phase == "Running", "\(pod?.status ?? [:])")
        let e = husk("exec", "orphan-fg", "--", "sh", "-c", "echo hi; exit 4")
        #expect(e.status == 4 && e.stdout == "hi\n", "exec: \(e.status) \(e.stdout) \(e.stderr)")
        let stop = husk("stop", "orphan-fg")
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(husk.inspect("orphan-fg")?.exitCode("main") == 7)
    }

    // MARK: - Foreground husk run

    @Test("foreground run: the output is streamed and husk exits 0 when the pod Succeeded")
    func foregroundSucceeded() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let p = try husk.foreground("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: fg-ok
            spec:
              restartPolicy: Never
              containers:
              - name: main
                image: busybox:1.36
                command: ["sh", "-c", "echo one; echo two; echo three"]
            """)
        defer { p.stop() }  // also when an expectation below ends the test early
        let status = p.wait(timeout: 20)
        #expect(status == 0, "husk run: \(status.map { "exit \($0)" } ?? "still running after 20 s (killed)"); stderr: \(p.stderr); status.json: \(husk.statusJSON)")
        #expect(p.stdout.contains("one\ntwo\nthree\n"), "stdout: \(p.stdout)")
        let pod = husk.inspect("fg-ok")
        #expect(pod?.phase == "Succeeded")
        #expect(pod?.exitCode("main") == 0)
    }

    @Test("foreground run: husk exits 1 when the pod Failed")
    func foregroundFailed() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let p = try husk.foreground("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: fg-fail
            spec:
              restartPolicy: Never
              containers:
              - name: main
                image: busybox:1.36
                command: ["sh", "-c", "echo oops; exit 1"]
            """)
        defer { p.stop() }  // also when an expectation below ends the test early
        let status = p.wait(timeout: 20)
        #expect(status == 1, "husk run: \(status.map { "exit \($0)" } ?? "still running after 20 s (killed)"); stderr: \(p.stderr); status.json: \(husk.statusJSON)")
        #expect(p.stdout.contains("oops\n"), "stdout: \(p.stdout)")
        let pod = husk.inspect("fg-fail")
        #expect(pod?.phase == "Failed")
        #expect(pod?.exitCode("main") == 1)
    }

    @Test("foreground run: SIGTERM to husk stops the pod gracefully; a handler exiting 0 makes it Succeeded (exit 0)")
    func foregroundSigtermHandled() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let p = try husk.foreground("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: fg-term
            spec:
              terminationGracePeriodSeconds: 10
              containers:
              - name: main
                image: busybox:1.36
                command: ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"]
            """)
        defer { p.stop() }  // also when an expectation below ends the test early
        try #require(p.waitForOutput("ready\n", timeout: 30), "no output: \(p.stdout) \(p.stderr) \(husk.supervisorLog)")
        let t0 = Date()
        kill(p.process.processIdentifier, SIGTERM)
        let status = p.wait(timeout: 20)
        let took = Date().timeIntervalSince(t0)
        #expect(status == 0, "husk run after SIGTERM: \(String(describing: status)) \(p.stderr)")
        #expect(took < 1.5, "§6: the graceful stop took \(took) s")
        #expect(p.stdout.contains("bye\n"), "the handler's output: \(p.stdout)")
        let pod = husk.inspect("fg-term")
        #expect(pod?.exitCode("main") == 0)
        #expect(pod?.phase == "Succeeded", "§1: every app container exited 0 after the stop")
    }

    @Test("foreground run: SIGTERM to husk; a container dying of SIGTERM (143) makes the pod Failed (exit 1)")
    func foregroundSigtermKills() throws {
        let scratch = Self.scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let p = try husk.foreground("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: fg-143
            spec:
              shareProcessNamespace: true
              terminationGracePeriodSeconds: 10
              containers:
              - name: main
                image: busybox:1.36
                command: ["sh", "-c", "echo ready; exec sleep 1000"]
            """)
        defer { p.stop() }  // also when an expectation below ends the test early
        try #require(p.waitForOutput("ready\n", timeout: 30), "no output: \(p.stdout) \(p.stderr) \(husk.supervisorLog)")
        let t0 = Date()
        kill(p.process.processIdentifier, SIGTERM)
        let status = p.wait(timeout: 20)
        let took = Date().timeIntervalSince(t0)
        #expect(status == 1, "husk run after SIGTERM: \(String(describing: status)) \(p.stderr)")
        #expect(took < 1.5, "§6: the graceful stop took \(took) s")
        let pod = husk.inspect("fg-143")
        #expect(pod?.exitCode("main") == 143)
        #expect(pod?.phase == "Failed", "§1: a container killed by SIGTERM fails the pod")
    }

    // MARK: - Helpers

    /// The pod's supervisor (recorded by `husk run` in supervisor.pid) runs `husk supervise`.
    func expectSupervisorAlive(_ husk: PodHusk, sourceLocation: SourceLocation = #_sourceLocation) throws {
        // `husk run -d` prints the UID once it launched the pod; the supervisor records its pid
        // as it starts, which on a loaded machine may come a little later.
        _ = poll(timeout: 10) { husk.supervisorPid != nil }
        let pid = try #require(husk.supervisorPid, "no supervisor pid recorded", sourceLocation: sourceLocation)
        let ok = poll(timeout: 5) {
            let cmd = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return processExists(pid) && cmd.contains("supervise")
        }
        #expect(ok, "the supervisor \(pid) died with husk: \(husk.supervisorLog)", sourceLocation: sourceLocation)
    }

    /// §8: once no container runs and none will be started, the pod is killed and terminal:
    /// its supervisor (and with it the sandbox) ends by itself.
    func expectPodFinishes(_ husk: PodHusk, timeout: TimeInterval = 10, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let pid = try #require(husk.supervisorPid, "no supervisor pid recorded", sourceLocation: sourceLocation)
        #expect(poll(timeout: timeout) { !processExists(pid) },
                "§8: the pod has nothing left to run but its supervisor \(pid) still runs after \(timeout) s (status.json: \(husk.statusJSON))",
                sourceLocation: sourceLocation)
    }
}

// MARK: - Support

private extension PodHusk {
    /// The pod's directory under the state root (this husk runs one pod).
    var podDir: String? { podUIDs.first.map { state + "/pods/" + $0 } }

    /// The supervisor's pid: from status.json, or supervisor.pid (written by `husk run`).
    var supervisorPid: Int32? {
        guard let dir = podDir else { return nil }
        if let data = try? Data(contentsOf: URL(fileURLWithPath: dir + "/status.json")),
           let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let pid = (doc["husk"] as? [String: Any])?["supervisorPid"] as? Int {
            return Int32(pid)
        }
        let text = (try? String(contentsOfFile: dir + "/supervisor.pid", encoding: .utf8)) ?? ""
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// For failure messages.
    var supervisorLog: String {
        podDir.flatMap { try? String(contentsOfFile: $0 + "/supervisor.log", encoding: .utf8) } ?? "<no supervisor.log>"
    }

    var statusJSON: String {
        podDir.flatMap { try? String(contentsOfFile: $0 + "/status.json", encoding: .utf8) }.map { String($0.prefix(3000)) } ?? "<none>"
    }

    /// Polls `husk inspect` until `condition` holds or `timeout` passes; returns every object
    /// seen (the last one is the newest).
    func observe(_ pod: String, timeout: TimeInterval, interval: TimeInterval = 0.05,
                 until condition: ([String: Any]) -> Bool) -> [[String: Any]] {
        let end = Date().addingTimeInterval(timeout)
        var seen: [[String: Any]] = []
        while Date() < end {
            if let p = inspect(pod) {
                seen.append(p)
                if condition(p) { break }
            }
            Thread.sleep(forTimeInterval: interval)
        }
        return seen
    }

    /// Waits until the container's log contains `text`.
    func waitForLog(_ pod: String, _ container: String, _ text: String, timeout: TimeInterval = 15,
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
        var log = ""
        let ok = poll(timeout: timeout) {
            log = self("logs", pod, "-c", container).stdout
            return log.contains(text)
        }
        try #require(ok, "\(pod)/\(container) never logged \(text.debugDescription): \(log)", sourceLocation: sourceLocation)
    }

    /// Writes the manifest and starts `husk run` in the foreground.
    func foreground(_ yaml: String) throws -> LiveProcess {
        let path = scratch.path + "/pod.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return try LiveProcess([huskPath] + globals + ["run", path])
    }
}

/// Expects `ok` of every observed pod object; one issue names how many failed and shows the
/// first of them.
private func expectEvery(_ seen: [[String: Any]], _ what: String, _ ok: ([String: Any]) -> Bool, _ show: ([String: Any]) -> Any?,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    let bad = seen.filter { !ok($0) }
    guard let first = bad.first else { return }
    Issue.record("\(what): not so in \(bad.count) of \(seen.count) observations; the first: \(show(first).map { "\($0)" } ?? "nil")",
                 sourceLocation: sourceLocation)
}

/// The first `<tag> <seconds>` line of a log, as seconds.
private func uptime(_ log: String, _ tag: String) -> Double? {
    for line in log.split(separator: "\n") {
        let f = line.split(separator: " ")
        if f.count == 2, f[0] == tag, let v = Double(f[1]) { return v }
    }
    return nil
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
private func poll(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return condition()
}

/// How long `body` took, measured around it.
private func timed<T>(_ body: () -> T) -> (T, TimeInterval) {
    let t0 = Date()
    let v = body()
    return (v, Date().timeIntervalSince(t0))
}

/// Runs `body` on a thread of its own; `join()` waits for its result.
private final class Background<T: Sendable>: @unchecked Sendable {  // `value` is written before `done` is signalled
    private let done = DispatchSemaphore(value: 0)
    private var value: T? = nil

    init(_ body: @escaping @Sendable () -> T) {
        Thread.detachNewThread { [self] in
            value = body()
            done.signal()
        }
    }

    func join() -> T {
        done.wait()
        done.signal()
        return value!
    }
}

/// A process whose output is read as it comes, to act on it while it runs.
private final class LiveProcess: @unchecked Sendable {  // `out`/`err` only under `lock`
    let process = Process()
    private let lock = NSLock()
    private var out = Data()
    private var err = Data()

    init(_ argv: [String]) throws {
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        let o = Pipe()
        let e = Pipe()
        process.standardOutput = o
        process.standardError = e
        process.standardInput = FileHandle.nullDevice
        try process.run()
        for (handle, isErr) in [(o.fileHandleForReading, false), (e.fileHandleForReading, true)] {
            Thread.detachNewThread { [self] in
                while true {
                    let d = handle.availableData
                    if d.isEmpty { break }
                    lock.withLock {
                        if isErr { err.append(d) } else { out.append(d) }
                    }
                }
            }
        }
    }

    var stdout: String { lock.withLock { String(decoding: out, as: UTF8.self) } }
    var stderr: String { lock.withLock { String(decoding: err, as: UTF8.self) } }

    func waitForOutput(_ text: String, timeout: TimeInterval) -> Bool {
        poll(timeout: timeout) { stdout.contains(text) }
    }

    /// SIGKILLs the process if it still runs, and reaps it.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// The exit status (128+N for a signal), or nil (and SIGKILL) after `timeout`.
    func wait(timeout: TimeInterval) -> Int32? {
        if !poll(timeout: timeout, { !process.isRunning }) {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
    }
}
