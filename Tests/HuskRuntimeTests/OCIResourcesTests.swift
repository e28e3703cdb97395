import HuskJSON
import HuskRuntime
import HuskSystem
import Testing

/// linux.resources → cgroup v2 files, as runc's fs2 driver writes them (config-linux.md
/// "Control groups"; runc libcontainer/cgroups/fs2 and ConvertCPUSharesToCgroupV2Value,
/// ConvertMemorySwapToCgroupV2Value, ConvertBlkIOToIOWeightValue).
@Suite("OCI resources on cgroup v2")
struct OCIResourcesTests {
    static func files(_ r: Spec.Resources, bfq: Bool = false) -> ([String: String], SpecProblems) {
        var p = SpecProblems()
        var out: [String: String] = [:]
        for l in OCIResources.limits(r, hasBFQ: bfq, into: &p) {
            out[l.file] = out[l.file].map { $0 + "\n" + l.value } ?? l.value
        }
        return (out, p)
    }

    @Test("cpu: shares to weight (runc's formula), quota and period to cpu.max, cpuset, idle, burst")
    func cpu() {
        var r = Spec.Resources()
        var c = Spec.Resources.CPU()
        c.shares = 1024
        c.quota = 50_000
        c.period = 100_000
        c.cpus = "0-1"
        c.mems = "0"
        c.idle = 1
        c.burst = 1000
        r.cpu = c
        let (f, p) = Self.files(r)
        #expect(p.errors.isEmpty)
        #expect(f == ["cpu.weight": "39", "cpu.max": "50000 100000", "cpuset.cpus": "0-1", "cpuset.mems": "0", "cpu.idle": "1", "cpu.max.burst": "1000"])
        c = Spec.Resources.CPU()
        c.shares = 2
        c.quota = -1
        r.cpu = c
        #expect(Self.files(r).0 == ["cpu.weight": "1", "cpu.max": "max"])
        c.shares = 262_144
        c.quota = nil
        c.period = 250_000
        r.cpu = c
        #expect(Self.files(r).0 == ["cpu.weight": "10000", "cpu.max": "max 250000"])
        c.realtimeRuntime = 950
        r.cpu = c
        #expect(Self.files(r).1.errors == ["linux.resources.cpu.realtimeRuntime: real-time cpu limits do not exist in cgroup v2"])
    }

    @Test("memory: limit, reservation, swap as memory+swap less memory; -1 is max; swap below the limit is refused")
    func memory() {
        var r = Spec.Resources()
        var m = Spec.Resources.Memory()
        m.limit = 64 << 20
        m.reservation = 32 << 20
        m.swap = 96 << 20
        r.memory = m
        #expect(Self.files(r).0 == ["memory.max": "67108864", "memory.low": "33554432", "memory.swap.max": "33554432"])
        m.swap = -1
        r.memory = m
        #expect(Self.files(r).0["memory.swap.max"] == "max")
        m = Spec.Resources.Memory()
        m.limit = -1
        r.memory = m
        #expect(Self.files(r).0 == ["memory.max": "max", "memory.swap.max": "max"])
        m.limit = 64 << 20
        m.swap = 32 << 20
        r.memory = m
        #expect(Self.files(r).1.errors.first?.contains("linux.resources.memory.swap: 33554432 is below memory.limit") == true)
        m.limit = nil
        r.memory = m
        #expect(Self.files(r).1.errors.first?.contains("a swap limit needs a memory limit") == true)
        m = Spec.Resources.Memory()
        m.disableOOMKiller = true
        r.memory = m
        #expect(Self.files(r).1.errors == ["linux.resources.memory.disableOOMKiller: cgroup v2 cannot turn the OOM killer off for a group"])
    }

    @Test("pids, hugetlb, io (bfq or converted io.weight, throttles), rdma, unified; network is refused")
    func others() {
        var r = Spec.Resources()
        var pids = Spec.Resources.Pids()
        pids.limit = 64
        r.pids = pids
        r.hugepageLimits = [.init(pageSize: "2MB", limit: 4 << 21)]
        var b = Spec.Resources.BlockIO()
        b.weight = 500
        b.throttleReadBpsDevice = [.init(major: 8, minor: 0, rate: 1_048_576)]
        b.throttleWriteIOPSDevice = [.init(major: 8, minor: 0, rate: 100)]
        r.blockIO = b
        r.rdma = ["mlx5_0": .init(hcaHandles: 3, hcaObjects: 10)]
        r.unified = ["memory.oom.group": "1", "cgroup.freeze": "0"]
        let (f, p) = Self.files(r)
        #expect(p.errors.isEmpty)
        #expect(f["pids.max"] == "64")
        #expect(f["hugetlb.2MB.max"] == "8388608")
        #expect(f["io.weight"] == "4950")  // 1 + (500 - 10) × 9999 / 990
        #expect(f["io.max"] == "8:0 rbps=1048576\n8:0 wiops=100")
        #expect(f["rdma.max"] == "mlx5_0 hca_handle=3 hca_object=10")
        #expect(f["memory.oom.group"] == "1" && f["cgroup.freeze"] == "0")
        #expect(Self.files(r, bfq: true).0["io.bfq.weight"] == "500")
        pids.limit = -1
        r = Spec.Resources()
        r.pids = pids
        #expect(Self.files(r).0 == ["pids.max": "max"])
        r.network = .object(["classID": .number(1)])
        r.unified = ["../x": "1"]
        let errors = Self.files(r).1.errors
        #expect(errors.contains { $0.hasPrefix("linux.resources.network: ") })
        #expect(errors.contains { $0.hasPrefix("linux.resources.unified.../x: ") })
        var q = SpecProblems()
        #expect(OCIResources.controllers(OCIResources.limits(r, into: &q)) == ["pids"])
    }

    @Test("update lays only the given fields over the resources in force")
    func overlay() {
        var base = Spec.Resources()
        var m = Spec.Resources.Memory()
        m.limit = 100
        m.swap = 200
        base.memory = m
        var c = Spec.Resources.CPU()
        c.shares = 512
        base.cpu = c
        var change = Spec.Resources()
        var m2 = Spec.Resources.Memory()
        m2.limit = 150
        change.memory = m2
        let merged = base.overlaid(with: change)
        #expect(merged.memory?.limit == 150 && merged.memory?.swap == 200 && merged.cpu?.shares == 512)
    }
}
