import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// husk-runc's linux.resources on a host whose cgroup v2 has the controllers (the VM tier,
/// Scripts/vm-test.sh; pure v2 hosts): what create writes, what update changes, and the
/// controllers handed down only through Husk's own groups (config-linux.md "Control groups").
@Suite("husk-runc: resources on cgroup v2", .enabled(if: Host.canRunContainers && Host.huskControllers.isSuperset(of: ["cpu", "memory", "pids"]),
                                                     "needs the cpu, memory and pids controllers for Husk's cgroup2 subtree; this host gives it: \(Host.huskControllers.sorted()) (Scripts/vm-test.sh runs this on a pure cgroup v2 kernel)"))
struct RuncResourceTests {
    @Test("create writes cpu.weight, cpu.max, memory.max, memory.swap.max, memory.low and pids.max; update changes only what it is given")
    func createAndUpdate() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sleep", "1000"])
        var r = Spec.Resources()
        var cpu = Spec.Resources.CPU()
        cpu.shares = 512
        cpu.quota = 50_000
        cpu.period = 100_000
        r.cpu = cpu
        var mem = Spec.Resources.Memory()
        mem.limit = 64 << 20
        mem.reservation = 16 << 20
        r.memory = mem
        var pids = Spec.Resources.Pids()
        pids.limit = 32
        r.pids = pids
        bundle.spec.linux?.resources = r
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let c = runc.create(id, bundle: bundle.path)
        #expect(c.status == 0, "\(c.stderr)")
        let dir = Host.cgroup2!.path + "/husk/runc/\(id)"
        func file(_ name: String) -> String { readText(dir + "/" + name).trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(file("cpu.weight") == "20")  // 1 + (512 - 2) × 9999 / 262142
        #expect(file("cpu.max") == "50000 100000")
        #expect(file("memory.max") == "67108864")
        #expect(file("memory.low") == "16777216")
        #expect(file("pids.max") == "32")
        // Handed down through Husk's own groups only.
        #expect(readText(Host.cgroup2!.path + "/husk/runc/cgroup.subtree_control").contains("memory"))
        #expect(runc("start", id).status == 0)

        #expect(runc("update", "--memory", "128m", "--memory-swap", "192m", "--pids-limit", "40", id).status == 0)
        #expect(file("memory.max") == "134217728")
        #expect(file("memory.swap.max") == "67108864" || !FileManager.default.fileExists(atPath: dir + "/memory.swap.max"))
        #expect(file("pids.max") == "40")
        #expect(file("cpu.max") == "50000 100000", "untouched")
        let json = scratch.path + "/r.json"
        try #"{"cpu": {"quota": 20000}}"#.write(toFile: json, atomically: false, encoding: .utf8)
        #expect(runc("update", "--resources", json, id).status == 0)
        #expect(file("cpu.max") == "20000 100000", "period kept from the resources in force")
        // The pids limit holds: a fork bomb stops at 40.
        let bomb = run([huskRuncPath, "--root", runc.root, "exec", id, "sh", "-c", "for i in $(seq 60); do sleep 100 & done 2>/dev/null; sleep 0.2; cat /sys/fs/cgroup/pids.current 2>/dev/null || true"])
        #expect(Int(file("pids.current")) ?? 99 <= 40, "pids.current \(file("pids.current")); \(bomb.stderr)")
        let stats = runc("events", "--stats", id)
        let data = ((try? JSONSerialization.jsonObject(with: Data(stats.stdout.utf8))) as? [String: Any])?["data"] as? [String: Any]
        let memory = (data?["memory"] as? [String: Any])?["usage"] as? [String: Any]
        #expect((memory?["limit"] as? NSNumber)?.int64Value == 134_217_728, "\(stats.stdout)")
        #expect(((data?["pids"] as? [String: Any])?["limit"] as? NSNumber)?.intValue == 40)
        #expect(runc("delete", "--force", id).status == 0)
        expectGone(id, runc: runc)
    }
}

