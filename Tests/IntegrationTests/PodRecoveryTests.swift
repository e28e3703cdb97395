import Foundation
import HuskSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Recovery (issue 5 §6, DESIGN §3: a crash of a supervisor never kills a pod's containers and
/// never loses an exit code): `kill -9` of a pod's supervisor at five moments of the pod's life
/// (pulling, an init container, a postStart, running, a stop); the keeper starts a new
/// supervisor, which adopts what runs and reports what ended meanwhile; each case ends with a
/// correct status and a clean `husk rm`. Then pods whose processes are all gone (Unknown,
/// ContainerStatusUnknown as pod-semantics §2) and a lost `--state` (`husk gc`).
@Suite("Pods: recovery after a supervisor's crash", .enabled(if: Host.canRunPods, Host.podSkipReason))
struct PodRecoveryTests {
    func uid(_ husk: PodHusk) -> String { husk.podUIDs.first ?? "" }

    func pidFile(_ husk: PodHusk, _ name: String) -> Int32? {
        (try? String(contentsOfFile: husk.state + "/pods/\(uid(husk))/\(name)", encoding: .utf8)).flatMap { Int32($0.trimmed) }
    }

    /// `kill -9` of the pod's supervisor; returns once its keeper has started a new one.
    func killSupervisor(_ husk: PodHusk, sourceLocation: SourceLocation = #_sourceLocation) -> Int32? {
        guard let old = pidFile(husk, "supervisor.pid") else {
            Issue.record("no supervisor.pid", sourceLocation: sourceLocation)
            return nil
        }
        #expect(kill(old, SIGKILL) == 0, sourceLocation: sourceLocation)
        let end = Date().addingTimeInterval(10)
        while Date() < end {
            if let new = pidFile(husk, "supervisor.pid"), new != old, processExists(new) { return new }
            usleep(5000)
        }
        Issue.record("no new supervisor after kill -9 of \(old)", sourceLocation: sourceLocation)
        return nil
    }

    /// Waits until the pod has an event with `reason` (for `container`).
    func waitForEvent(_ husk: PodHusk, _ pod: String, _ reason: String, _ container: String? = nil, count: Int = 1) -> Bool {
        let end = Date().addingTimeInterval(30)
        while Date() < end {
            if events(husk.events(pod), reason, container).count >= count { return true }
            usleep(5000)
        }
        return false
    }

    /// `husk ARGS` started and left running.
    func launch(_ husk: PodHusk, _ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: huskPath)
        p.arguments = husk.globals + args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    func finish(_ p: Process, timeout: TimeInterval = 30) -> Int32? {
        let end = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < end { usleep(10_000) }
        if p.isRunning {
            p.terminate()
            return nil
        }
        return p.terminationStatus
    }

    /// The busybox image's layer (diff_id hex): its unpack lock is the store's per-layer flock.
    func busyboxLayer() throws -> String {
        func json(_ path: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
        }
        let layout = BusyboxLayout.path
        let index = try json(layout + "/index.json")
        let manifests = index["manifests"] as? [[String: Any]] ?? []
        let entry = manifests.first { (($0["annotations"] as? [String: String])?["org.opencontainers.image.ref.name"]) == "1.36" }
        let digest = try #require(entry?["digest"] as? String)
        let manifest = try json(layout + "/blobs/sha256/" + digest.dropFirst(7))
        let config = try #require((manifest["config"] as? [String: Any])?["digest"] as? String)
        let rootfs = try json(layout + "/blobs/sha256/" + config.dropFirst(7))["rootfs"] as? [String: Any]
        let diff = try #require((rootfs?["diff_ids"] as? [String])?.first)
        return String(diff.dropFirst(7))
    }

    @Test("kill -9 while pulling (held at the layer's unpack lock): the new supervisor pulls again; Running, restartCount 0")
    func whilePulling() throws {
        let scratch = Scratch("recPull")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        // Another puller holds the layer: the pod's pull waits at the lock.
        try FileManager.default.createDirectory(atPath: husk.root + "/images/snapshots", withIntermediateDirectories: true)
        let lock = open(husk.root + "/images/snapshots/.lock-" + (try busyboxLayer()), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        #expect(lock >= 0 && flock(lock, LOCK_EX) == 0)
        let yaml = scratch.path + "/pod.yaml"
        try """
            apiVersion: v1
            kind: Pod
            metadata: {name: pulling}
            spec:
              containers:
              - {name: c, image: "busybox:1.36", command: [sleep, "1000"]}
            """.write(toFile: yaml, atomically: true, encoding: .utf8)
        let runner = try launch(husk, ["run", "-d", yaml])
        #expect(waitForEvent(husk, "pulling", "Pulling", "c"))
        usleep(100_000)
        _ = killSupervisor(husk)
        // The new one pulls again and waits at the same lock.
        #expect(waitForEvent(husk, "pulling", "Pulling", "c", count: 2))
        let waiting = husk.inspect("pulling")
        #expect(waiting?.phase == "Pending", "\(waiting?.status ?? [:])")
        #expect(waiting?.waitingReason("c") == "ContainerCreating")
        flock(lock, LOCK_UN)
        close(lock)
        #expect(finish(runner) == 0, "husk run -d ends once the pod runs")
        let pod = husk.wait("pulling") { $0.stateKind("c") == "running" }
        #expect(pod?.phase == "Running")
        #expect(pod?.container("c")?["restartCount"] as? Int == 0)
        #expect(events(husk.events("pulling"), "Started", "c").count == 1)
        #expect(events(husk.events("pulling"), "SupervisorRestarted").count == 1)
        #expect(husk("rm", "--force", "pulling").status == 0)
    }

    @Test("kill -9 during an init container: it is adopted, its exit 0 is kept, the app starts once")
    func duringInit() throws {
        let scratch = Scratch("recInit")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let runner = try launch(husk, ["run", "-d", try manifest(scratch, """
            apiVersion: v1
            kind: Pod
            metadata: {name: initpod}
            spec:
              initContainers:
              - {name: init, image: "busybox:1.36", command: [sh, -c, "sleep 1.5; echo init done"]}
              containers:
              - {name: app, image: "busybox:1.36", command: [sleep, "1000"]}
            """)])
        #expect(waitForEvent(husk, "initpod", "Started", "init"))
        _ = killSupervisor(husk)
        #expect(finish(runner) == 0)
        let pod = husk.wait("initpod") { $0.stateKind("app") == "running" }
        #expect(pod?.phase == "Running", "\(pod?.status ?? [:])")
        let initState = pod?.terminated("init")
        #expect(initState?["exitCode"] as? Int == 0, "\(String(describing: initState))")
        #expect(initState?["reason"] as? String == "Completed")
        #expect(events(husk.events("initpod"), "Started", "init").count == 1, "the init container ran once")
        #expect(events(husk.events("initpod"), "Started", "app").count == 1)
        // Its output went on through the keeper's copy of the pipe.
        #expect(husk("logs", "initpod", "-c", "init").stdout == "init done\n")
        #expect(husk("rm", "--force", "initpod").status == 0)
    }

    @Test("kill -9 during a postStart: the hook is not run again, the container is Running and ready, the next one starts")
    func duringPostStart() throws {
        let scratch = Scratch("recHook")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let runner = try launch(husk, ["run", "-d", try manifest(scratch, """
            apiVersion: v1
            kind: Pod
            metadata: {name: hookpod}
            spec:
              containers:
              - name: c1
                image: "busybox:1.36"
                command: [sleep, "1000"]
                lifecycle:
                  postStart:
                    exec: {command: [sh, -c, "echo x >> /tmp/hook-runs; sleep 1.5; echo done > /tmp/hook-done"]}
              - {name: c2, image: "busybox:1.36", command: [sleep, "1000"]}
            """)])
        #expect(waitForEvent(husk, "hookpod", "Started", "c1"))
        usleep(300_000)
        #expect(events(husk.events("hookpod"), "Started", "c2").isEmpty, "c2 waits for c1's postStart")
        _ = killSupervisor(husk)
        #expect(finish(runner) == 0)
        let pod = husk.wait("hookpod") { $0.stateKind("c2") == "running" && ($0.container("c1")?["ready"] as? Bool ?? false) }
        #expect(pod?.phase == "Running", "\(pod?.status ?? [:])")
        #expect(pod?.container("c1")?["restartCount"] as? Int == 0)
        // The hook that was running finished inside the container, once.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(sh(husk, "hookpod", "c1", "cat /tmp/hook-done; wc -l < /tmp/hook-runs").stdout == "done\n1\n")
        #expect(events(husk.events("hookpod"), "FailedPostStartHook").isEmpty)
        #expect(husk("rm", "--force", "hookpod").status == 0)
    }

    @Test("kill -9 while running: no output lost, a later exit code recorded, exec and stop work")
    func whileRunning() throws {
        let scratch = Scratch("recRun")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: runpod}
            spec:
              restartPolicy: Never
              terminationGracePeriodSeconds: 5
              containers:
              - name: counter
                image: "busybox:1.36"
                command: [sh, -c, "trap 'exit 0' TERM; i=0; while true; do echo $i; i=$((i+1)); sleep 0.02; done"]
              - {name: ender, image: "busybox:1.36", command: [sh, -c, "sleep 2; exit 3"]}
            """).status == 0)
        usleep(300_000)
        guard let supervisor = killSupervisor(husk) else { return }
        // The counter goes on writing while no supervisor reads.
        let ended = husk.wait("runpod", timeout: 10) { $0.terminated("ender") != nil }
        #expect(ended?.exitCode("ender") == 3, "the exit after the crash is the real one: \(String(describing: ended?.terminated("ender")))")
        #expect(ended?.terminated("ender")?["reason"] as? String == "Error")
        #expect(sh(husk, "runpod", "counter", "exit 7").status == 7, "exec in an adopted container")
        let stop = husk("stop", "runpod")
        #expect(stop.status == 0, "\(stop.stderr)")
        let pod = husk.inspect("runpod")
        #expect(pod?.exitCode("counter") == 0, "the adopted container's own exit status: \(String(describing: pod?.terminated("counter")))")
        // Every number once, in order: nothing lost while no supervisor read the pipe.
        let numbers = husk("logs", "runpod", "-c", "counter").stdout.split(separator: "\n").compactMap { Int($0) }
        #expect(numbers.count > 50)
        #expect(numbers == Array(0..<numbers.count), "gaps in the log")
        #expect(!processExists(supervisor), "the new supervisor exited with the pod")
        #expect(husk("rm", "runpod").status == 0)
    }

    @Test("kill -9 during a stop: the stop goes on (preStop, stop signal) and the pod finishes with the real exit codes")
    func duringStop() throws {
        let scratch = Scratch("recStop")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: stoppod}
            spec:
              terminationGracePeriodSeconds: 20
              containers:
              - name: c
                image: "busybox:1.36"
                command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.05; done"]
                lifecycle:
                  preStop:
                    exec: {command: [sleep, "1"]}
            """).status == 0)
        let stopper = try launch(husk, ["stop", "stoppod"])
        #expect(waitForEvent(husk, "stoppod", "Killing", "c"))
        usleep(300_000)
        _ = killSupervisor(husk)
        #expect(finish(stopper) == 0, "husk stop returns when the new supervisor has finished the pod")
        let pod = husk.inspect("stoppod")
        #expect(pod?.exitCode("c") == 0, "\(String(describing: pod?.terminated("c")))")
        #expect(pod?.terminated("c")?["reason"] as? String == "Completed")
        // As the same stop without a crash ends: every container exited 0 → Succeeded.
        #expect(pod?.phase == "Succeeded", "\(pod?.status ?? [:])")
        #expect(husk("rm", "stoppod").status == 0)
    }

    @Test("kill -9 after the stop signal went out: the new supervisor sends neither preStop nor SIGTERM again (issue 16 #10)")
    func duringStopSignalSent() throws {
        let scratch = Scratch("recStop2")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        // A 4 s TERM handler: run twice, the stop would take over 8 s and log two lines.
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: trap4}
            spec:
              terminationGracePeriodSeconds: 30
              containers:
              - name: c
                image: "busybox:1.36"
                command: [sh, -c, "trap 'echo term; sleep 4; exit 0' TERM; echo up; while true; do sleep 0.05; done"]
                lifecycle:
                  preStop:
                    exec: {command: [sh, -c, "echo prestop >> /proc/1/fd/1"]}
            """).status == 0)
        #expect(husk.wait("trap4") { $0.stateKind("c") == "running" } != nil)
        let began = Date()
        let stopper = try launch(husk, ["stop", "trap4"])
        let end = Date().addingTimeInterval(10)
        while Date() < end, !husk("logs", "trap4").stdout.contains("term") { usleep(20_000) }
        usleep(500_000)
        _ = killSupervisor(husk)
        #expect(finish(stopper) == 0)
        let took = Date().timeIntervalSince(began)
        #expect(took < 7, "the stop took \(took) s: its TERM handler ran again")
        let logs = husk("logs", "trap4").stdout
        #expect(logs == "up\nprestop\nterm\n", "\(logs)")
        #expect(husk.inspect("trap4")?.exitCode("c") == 0)
    }

    @Test("§2: supervisor, keeper and containers all gone: Unknown, ContainerStatusUnknown 137, and husk rm removes everything")
    func allGone() throws {
        let scratch = Scratch("recGone")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        _ = try startThenKillEverything(husk, "gone")
        let pod = husk.wait("gone", timeout: 10) { $0.phase == "Unknown" && $0.terminated("c") != nil }
        #expect(pod?.phase == "Unknown")
        #expect(pod?.terminated("c")?["reason"] as? String == "ContainerStatusUnknown")
        #expect(pod?.exitCode("c") == 137)
        // The killed supervisor left no log: the message says so, not "see <empty file>".
        let message = pod?.status["message"] as? String ?? ""
        #expect(message.contains("is empty") && message.contains("husk rm"), "\(message)")
        #expect(husk("pods").stdout.contains("0/1"))
        let rm = husk("rm", "gone")
        #expect(rm.status == 0, "\(rm.stderr)")
    }

    @Test("a lost --state with the processes gone: husk gc removes the cgroup, mounts, data, logs and leases, and says so")
    func lostState() throws {
        let scratch = Scratch("recGC")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let id = try startThenKillEverything(husk, "lost")
        try FileManager.default.removeItem(atPath: husk.state)
        #expect(husk("pods").stdout.split(separator: "\n").count <= 1, "the pod is unknown now")
        let gc = husk("gc")
        #expect(gc.status == 0, "\(gc.stderr)")
        #expect(gc.stdout.contains("removed cgroup /husk/\(id)"), "\(gc.stdout)")
        #expect(gc.stdout.contains("unmounted \(husk.root)/pods/\(id)/shm"))
        #expect(gc.stdout.contains("released image lease pod-\(id)-c"))
        #expect(gc.stdout.contains("removed logs"))
        #expect(gc.stdout.contains("removed data \(husk.root)/pods/\(id)"))
        if let m = Host.cgroup2 { #expect(!FileManager.default.fileExists(atPath: m.path + "/husk/\(id)")) }
        #expect(!readText("/proc/self/mountinfo").contains(husk.root + "/pods/"))
        #expect(!FileManager.default.fileExists(atPath: husk.root + "/pods/\(id)"))
        // A second gc finds nothing of pods.
        #expect(!husk("gc").stdout.contains(id))
    }

    /// Starts a one-container pod `name`, then SIGKILLs its keeper, its supervisor and (through
    /// the pod's cgroup.kill) every process of it. Returns the pod's uid.
    func startThenKillEverything(_ husk: PodHusk, _ name: String) throws -> String {
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: \(name)}
            spec:
              containers:
              - {name: c, image: "busybox:1.36", command: [sleep, "1000"]}
            """).status == 0)
        let id = uid(husk)
        for file in ["keeper.pid", "supervisor.pid"] {
            if let pid = pidFile(husk, file) { kill(pid, SIGKILL) }
        }
        if let m = Host.cgroup2 { try "1".write(toFile: m.path + "/husk/\(id)/cgroup.kill", atomically: false, encoding: .utf8) }
        return id
    }

    func manifest(_ scratch: Scratch, _ yaml: String) throws -> String {
        let path = scratch.path + "/pod.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
