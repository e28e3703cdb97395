import Foundation
import HuskSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension Host {
    /// The controllers Husk's subtree gets from this host's cgroup2 (what `husk run` checks).
    static var huskControllers: Set<String> {
        guard let m = cgroup2 else { return [] }
        if FileManager.default.fileExists(atPath: m.path + "/husk") {
            return Set(((try? String(contentsOfFile: m.path + "/husk/cgroup.controllers", encoding: .utf8)) ?? "").split(whereSeparator: \.isWhitespace).map(String.init))
        }
        return Set(((try? String(contentsOfFile: m.path + "/cgroup.subtree_control", encoding: .utf8)) ?? "").split(whereSeparator: \.isWhitespace).map(String.init))
    }
    static var hasResourceControllers: Bool { canRunPods && huskControllers.isSuperset(of: ["cpu", "memory", "pids"]) }
    static var lacksMemoryController: Bool { canRunPods && !huskControllers.contains("memory") }
    static var controllersNote: Comment {
        "needs the cpu, memory and pids controllers in Husk's cgroup2 subtree; this host gives it: \(huskControllers.sorted()) (a pure cgroup v2 host has them)"
    }
}

/// cgroup v2 resources (issue 6, DESIGN §7): limits read back as computed, OOMKilled, the pid
/// limit, cgroup.kill, `husk stats`, and the missing-controller check of this hybrid host.
@Suite("Pods: cgroup resources", .enabled(if: Host.canRunPods, Host.podSkipReason))
struct PodResourceTests {
    func group(_ husk: PodHusk, _ container: String? = nil) -> String {
        (Host.cgroup2?.path ?? "") + "/husk/" + (husk.podUIDs.first ?? "") + (container.map { "/" + $0 } ?? "")
    }

    func read(_ path: String) -> String { readText(path).trimmingCharacters(in: .whitespacesAndNewlines) }

    @Test("§7 a limit whose controller the host lacks: husk run refuses the pod before creating anything, naming the field, file and controller; --ignore-missing-controllers runs it with a warning per limit",
          .enabled(if: Host.lacksMemoryController, "the host gives Husk the memory controller: nothing is missing"))
    func missingController() throws {
        let scratch = Scratch("resMissing")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let yaml = """
            apiVersion: v1
            kind: Pod
            metadata: {name: limited}
            spec:
              containers:
              - name: c
                image: "busybox:1.36"
                command: [sleep, "1000"]
                resources: {limits: {memory: 64Mi}}
            """
        let r = husk.start(yaml)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.contains("spec.containers[0].resources.limits.memory: memory.max needs the cgroup v2 controller \"memory\""), "\(r.stderr)")
        #expect(r.stderr.contains("--ignore-missing-controllers"))
        #expect(husk.podUIDs.isEmpty, "nothing created")
        let ok = husk.run(["--ignore-missing-controllers", "run", "-d", scratch.path + "/pod.yaml"])
        #expect(ok.status == 0, "\(ok)")
        let warnings = ok.stderr.split(separator: "\n").filter { $0.hasPrefix("Warning: spec.containers[0].resources.limits.memory: memory.max") }
        #expect(warnings.count == 1, "\(ok.stderr)")
        #expect(husk.inspect("limited")?.stateKind("c") == "running")
    }

    @Test("§7 husk stats: the cgroup's own numbers (cpu.stat usage, memory and pids when the host has them), as crictl stats -o json shapes them")
    func stats() throws {
        let scratch = Scratch("resStats")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: busy}
            spec:
              containers:
              - {name: spin, image: "busybox:1.36", command: [sh, -c, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 1000"]}
            """).status == 0)
        Thread.sleep(forTimeInterval: 1)
        let r = husk("stats", "-o", "json")
        #expect(r.status == 0, "\(r)")
        let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let item = (doc?["stats"] as? [[String: Any]])?.first
        #expect(((item?["attributes"] as? [String: Any])?["metadata"] as? [String: Any])?["name"] as? String == "spin")
        let usage = Int64((((item?["cpu"] as? [String: Any])?["usageCoreNanoSeconds"] as? [String: Any])?["value"] as? String) ?? "") ?? -1
        let file = read(group(husk, "spin") + "/cpu.stat").split(separator: "\n").first { $0.hasPrefix("usage_usec ") }
        let after = Int64(file?.split(separator: " ").last ?? "") ?? -1
        #expect(usage > 0 && usage <= after * 1000, "stats \(usage) ns, cpu.stat afterwards \(after) µs")
        #expect(after * 1000 - usage < 500_000_000, "the same counter: \(usage) ns vs \(after) µs")
        if FileManager.default.fileExists(atPath: group(husk, "spin") + "/memory.current") {
            let usage = Int64((((item?["memory"] as? [String: Any])?["usageBytes"] as? [String: Any])?["value"] as? String) ?? "") ?? -1
            let current = Int64(read(group(husk, "spin") + "/memory.current")) ?? 0
            #expect(usage > 0 && abs(usage - current) < 1 << 20, "memory \(usage) vs memory.current \(current)")
            let pids = Int64((((item?["pids"] as? [String: Any])?["current"] as? [String: Any])?["value"] as? String) ?? "") ?? -1
            #expect(pids == Int64(read(group(husk, "spin") + "/pids.current")), "pids \(pids)")
        } else {
            #expect(item?["memory"] == nil, "no memory controller: no memory numbers")
        }
        let table = husk("stats", "busy")
        #expect(table.stdout.contains("spin"), "\(table.stdout)")
    }

    @Test("§7 stop with cgroup.kill: children of the container's PID 1 that ignore SIGTERM are gone after the grace period, and the group is removed")
    func cgroupKill() throws {
        let scratch = Scratch("resKill")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: stubborn}
            spec:
              terminationGracePeriodSeconds: 2
              containers:
              - name: c
                image: "busybox:1.36"
                command: [sh, -c, "for i in 1 2 3; do (trap '' TERM; exec sleep 1000) & done; trap 'exit 0' TERM; while true; do sleep 0.1; done"]
            """).status == 0)
        Thread.sleep(forTimeInterval: 0.5)
        let procs = read(group(husk, "c") + "/cgroup.procs").split(separator: "\n").compactMap { Int32($0) }
        #expect(procs.count >= 4, "PID 1 and its three children: \(procs)")
        let stop = husk("stop", "stubborn")
        #expect(stop.status == 0)
        #expect(procs.allSatisfy { !processExists($0) }, "left: \(procs.filter { processExists($0) })")
        #expect(!FileManager.default.fileExists(atPath: group(husk, "c")))
    }

    @Test("§7 cpu.max, cpu.weight, memory.max, pids.max, hugetlb.2MB.max read back exactly as computed, on the pod and its containers",
          .enabled(if: Host.hasResourceControllers, Host.controllersNote))
    func limitsReadBack() throws {
        let scratch = Scratch("resLimits")
        let husk = PodHusk(scratch, extra: ["--pod-pids-limit", "64"])
        defer { husk.cleanup() }
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: limits}
            spec:
              containers:
              - name: a
                image: "busybox:1.36"
                command: [sleep, "1000"]
                resources: {limits: {cpu: 500m, memory: 64Mi}, requests: {cpu: 250m, memory: 32Mi}}
              - name: b
                image: "busybox:1.36"
                command: [sleep, "1000"]
                resources: {limits: {cpu: "1", memory: 128Mi, hugepages-2Mi: 4Mi}}
            """).status == 0)
        #expect(read(group(husk, "a") + "/cpu.max") == "50000 100000")
        #expect(read(group(husk, "a") + "/cpu.weight") == "10")
        #expect(read(group(husk, "a") + "/memory.max") == "67108864")
        #expect(read(group(husk, "b") + "/cpu.max") == "100000 100000")
        #expect(read(group(husk, "b") + "/cpu.weight") == "39")
        #expect(read(group(husk, "b") + "/memory.max") == "134217728")
        #expect(read(group(husk) + "/cpu.max") == "150000 100000")
        #expect(read(group(husk) + "/memory.max") == String(192 * 1024 * 1024))
        #expect(read(group(husk) + "/cpu.weight") == "49", "shares of 1250m = 1280")
        #expect(read(group(husk) + "/pids.max") == "64")
        #expect(read(group(husk, "b") + "/hugetlb.2MB.max") == "4194304")
        #expect(read(group(husk) + "/hugetlb.2MB.max") == "4194304")
        #expect(read(group(husk, "a") + "/hugetlb.2MB.max") == "max", "no hugepages asked: no limit")
    }

    @Test("§7 a memory hog over its limit is OOMKilled, exit 137, in an app and in an init container; a fork bomb stops at pids.max and the node goes on",
          .enabled(if: Host.hasResourceControllers, Host.controllersNote))
    func oomAndForkBomb() throws {
        let scratch = Scratch("resOOM")
        let husk = PodHusk(scratch, extra: ["--pod-pids-limit", "40"])
        defer { husk.cleanup() }
        let hog = "x=$(head -c 200000000 /dev/zero | tr '\\\\0' a); echo survived"
        _ = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: hog}
            spec:
              restartPolicy: Never
              initContainers:
              - {name: ihog, image: "busybox:1.36", command: [sh, -c, "\(hog)"], resources: {limits: {memory: 32Mi}}}
              containers:
              - {name: c, image: "busybox:1.36", command: ["true"]}
            """)
        let failed = husk.wait("hog", timeout: 60) { $0.phase == "Failed" }
        #expect(failed?.terminated("ihog")?["reason"] as? String == "OOMKilled", "\(String(describing: failed?.terminated("ihog")))")
        #expect(failed?.exitCode("ihog") == 137)
        _ = husk("rm", "hog")
        _ = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: apphog}
            spec:
              restartPolicy: Never
              containers:
              - {name: hog, image: "busybox:1.36", command: [sh, -c, "\(hog)"], resources: {limits: {memory: 32Mi}}}
              - name: bomb
                image: "busybox:1.36"
                command: [sh, -c, "(n=0; while [ $n -lt 200 ]; do sleep 100 & n=$((n+1)); done) 2>/dev/null & exec sleep 1000"]
            """, name: "app.yaml")
        let ended = husk.wait("apphog", timeout: 60) { $0.terminated("hog") != nil }
        #expect(ended?.terminated("hog")?["reason"] as? String == "OOMKilled", "\(String(describing: ended?.terminated("hog")))")
        #expect(ended?.exitCode("hog") == 137)
        // The fork bomb runs into the pod's pids.max; its container's PID 1 goes on.
        // Refused forks count in pids.events of the pod's group (Linux 6.2+) or, before, of the
        // group the fork was tried in.
        var events = ""
        for _ in 0..<200 where !(events.contains("max ") && !events.contains("max 0\n") && !events.hasSuffix("max 0")) {
            Thread.sleep(forTimeInterval: 0.1)
            let pod = read(group(husk) + "/pids.events"), bomb = read(group(husk, "bomb") + "/pids.events")
            events = pod.contains("max 0") ? bomb : pod
        }
        let current = Int(read(group(husk) + "/pids.current")) ?? 0
        #expect(current <= 40 && current > 10, "pids.current \(current) of 40")
        #expect(husk.inspect("apphog")?.stateKind("bomb") == "running")
        #expect(events.contains("max ") && !events.hasSuffix("max 0") && !events.contains("max 0\n"), "pids.events: \(events)")
        #expect(husk("stop", "--grace", "0", "apphog").status == 0)
    }
}
