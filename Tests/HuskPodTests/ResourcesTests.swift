import HuskJSON
import HuskPod
import HuskSystem
import Testing

/// Container and pod resources → cgroup v2 files (issue 6): kubelet's MilliCPUToShares,
/// MilliCPUToQuota and ResourceConfigForPod, runc's shares → weight conversion, MemoryQoS's
/// memory.high, hugetlb; and the manifest's `resources` validation.
struct ResourcesTests {
    func pod(_ containers: String, initContainers: String = "") throws -> Pod {
        try accept("""
            apiVersion: v1
            kind: Pod
            metadata: {name: r}
            spec:
            \(initContainers.isEmpty ? "" : "  initContainers:\n" + initContainers)
              containers:
            \(containers)
            """).0
    }

    func files(_ limits: [CgroupLimit]) -> [String: String] {
        Dictionary(limits.map { ($0.file, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    @Test("kubelet's conversions: shares from millicores (2 ... 262144), runc's weight from shares, quota per 100 ms period (at least 1 ms)")
    func conversions() {
        #expect(CgroupResources.shares(milli: 0) == 2)
        #expect(CgroupResources.shares(milli: 1) == 2)
        #expect(CgroupResources.shares(milli: 250) == 256)
        #expect(CgroupResources.shares(milli: 1000) == 1024)
        #expect(CgroupResources.shares(milli: 1_000_000) == 262_144)
        #expect(CgroupResources.weight(shares: 2) == 1)
        #expect(CgroupResources.weight(shares: 256) == 10)
        #expect(CgroupResources.weight(shares: 1024) == 39)
        #expect(CgroupResources.weight(shares: 262_144) == 10_000)
        #expect(CgroupResources.quota(milli: 500) == 50_000)
        #expect(CgroupResources.quota(milli: 2500) == 250_000)
        #expect(CgroupResources.quota(milli: 5) == 1000)
    }

    @Test("a container's files: cpu.weight from its request, cpu.max and memory.max from its limits, memory.high with MemoryQoS, hugetlb from hugepages-2Mi")
    func containerFiles() throws {
        let p = try pod("""
              - name: c
                image: busybox
                resources:
                  limits: {cpu: 500m, memory: 64Mi, hugepages-2Mi: 4Mi}
                  requests: {cpu: 250m, memory: 32Mi}
            """)
        let c = p.spec.containers[0]
        let f = files(CgroupResources.container(c, path: "spec.containers[0]"))
        #expect(f == ["cpu.weight": "10", "cpu.max": "50000 100000", "memory.max": "67108864", "hugetlb.2MB.max": "4194304"])
        // 32 MiB + 0.9 × 32 MiB = 63753420.8, down to whole 4 KiB pages.
        let qos = files(CgroupResources.container(c, path: "spec.containers[0]", memoryQoS: true))
        #expect(qos["memory.high"] == "63750144")
        // Without resources: only kubelet's default weight (shares 2), asked for by nobody.
        let bare = try pod("  - {name: c, image: busybox}").spec.containers[0]
        let b = CgroupResources.container(bare, path: "spec.containers[0]")
        #expect(b == [CgroupLimit(file: "cpu.weight", value: "1", controller: "cpu", field: nil)])
    }

    @Test("the pod's files: sums when every container has the limit, the largest init container when it is larger, pids.max from the pid limit")
    func podFiles() throws {
        let p = try pod("""
              - {name: a, image: busybox, resources: {limits: {cpu: "1", memory: 100Mi}}}
              - {name: b, image: busybox, resources: {limits: {cpu: 500m, memory: 50Mi}}}
            """, initContainers: """
              - {name: i, image: busybox, resources: {limits: {cpu: "2", memory: 10Mi}}}
            """)
        let f = files(CgroupResources.pod(p, pidsLimit: 1024))
        #expect(f["cpu.max"] == "200000 100000", "max(1 + 0.5, 2) cores")
        #expect(f["memory.max"] == String(150 * 1024 * 1024), "max(100Mi + 50Mi, 10Mi)")
        #expect(f["cpu.weight"] == String(CgroupResources.weight(shares: 2048)))
        #expect(f["pids.max"] == "1024")
        // One container without a memory limit: no pod memory.max (kubelet's memoryLimitsDeclared).
        let q = try pod("""
              - {name: a, image: busybox, resources: {limits: {memory: 100Mi}}}
              - {name: b, image: busybox}
            """)
        #expect(files(CgroupResources.pod(q, pidsLimit: nil))["memory.max"] == nil)
    }

    @Test("missing controllers: every limit asked for whose controller is unavailable, with its field; defaults nobody asked for are not reported")
    func missingControllers() throws {
        let p = try pod("""
              - {name: a, image: busybox, resources: {limits: {memory: 64Mi}}}
              - {name: b, image: busybox}
            """)
        let m = CgroupResources.missing(p, available: ["hugetlb"], pidsLimit: 50, memoryQoS: false)
        #expect(m.map { "\($0.field!) \($0.file) \($0.controller)" } == [
            "the pod's pid limit (--pod-pids-limit, or its annotation husk.io/pod-pids-limit) pids.max pids",
            "spec.containers[0].resources.limits.memory memory.max memory",
        ])
        #expect(CgroupResources.missing(p, available: ["cpu", "memory", "pids"], pidsLimit: 50, memoryQoS: true).isEmpty)
    }

    @Test("the check before a pod starts: limits the host cannot enforce refuse it, every one named, or are warnings with --ignore-missing-controllers")
    func checkBeforeStart() throws {
        let p = try pod("""
              - {name: a, image: busybox, resources: {limits: {memory: 64Mi}}}
            """)
        var settings = HuskSettings()
        #expect(try CgroupResources.check(p, settings: settings, available: ["cpu", "memory"], mountPath: "/sys/fs/cgroup").isEmpty)
        let line = #"spec.containers[0].resources.limits.memory: memory.max needs the cgroup v2 controller "memory", which the cgroup2 hierarchy at /sys/fs/cgroup does not give Husk (it offers: cpu pids)"#
        do {
            _ = try CgroupResources.check(p, settings: settings, available: ["pids", "cpu"], mountPath: "/sys/fs/cgroup")
            Issue.record("not refused")
        } catch {
            #expect(error.code == .unsupported)
            #expect(error.message == """
                pod default/r asks for limits this host cannot enforce, so nothing was started:
                  \(line)
                Run it where those controllers are enabled for Husk's subtree (cgroup.subtree_control above /sys/fs/cgroup/husk), or pass --ignore-missing-controllers to run it without them
                """)
        }
        settings.ignoreMissingControllers = true
        #expect(try CgroupResources.check(p, settings: settings, available: ["pids", "cpu"], mountPath: "/sys/fs/cgroup")
            == [line + "; it is not enforced (--ignore-missing-controllers)"])
        let none = try CgroupResources.check(p, settings: settings, available: [], mountPath: "/x")
        #expect(none.count == 1 && none[0].contains("(it offers: none)"))
    }

    @Test("resources in the manifest: requests default to limits, a request above its limit and a bad quantity are refused at their paths, extended resources warned")
    func manifest() throws {
        let (p, w) = try accept("""
            apiVersion: v1
            kind: Pod
            metadata: {name: r}
            spec:
              containers:
              - name: c
                image: busybox
                resources:
                  limits: {cpu: 1, memory: 1Gi, example.com/gpu: 1}
            """)
        #expect(p.spec.containers[0].resources.requests["cpu"] == "1")
        #expect(p.spec.containers[0].resources.requests["memory"] == "1Gi")
        #expect(w == ["spec.containers[0].resources.limits.example.com/gpu: is not enforced by Husk and is ignored"])
        let over = problems("""
            apiVersion: v1
            kind: Pod
            metadata: {name: r}
            spec:
              containers:
              - name: c
                image: busybox
                resources: {limits: {cpu: 500m}, requests: {cpu: "1"}}
            """)
        #expect(over?.first?.path == "spec.containers[0].resources.requests")
        #expect(over?.first?.message.contains("must be less than or equal to cpu limit of 500m") == true, "\(String(describing: over))")
        let bad = problems("""
            apiVersion: v1
            kind: Pod
            metadata: {name: r}
            spec:
              containers:
              - {name: c, image: busybox, resources: {limits: {memory: lots}}}
            """)
        #expect(bad?.first?.path == "spec.containers[0].resources.limits.memory", "\(String(describing: bad))")
        #expect(Quantity.milli("250m") == 250 && Quantity.milli("0.5") == 500 && Quantity.milli("2") == 2000)
    }
}

/// CRI's LinuxContainerResources into cgroup v2 files (runc's conversion, which containerd uses).
@Suite("CRI resources to cgroup v2")
struct LinuxResourcesTests {
    @Test("cpu shares to weight, quota and period to cpu.max, memory, cpusets, hugepages, unified wins")
    func conversion() throws {
        var r = LinuxResources()
        #expect(try r.cgroupV2().isEmpty)
        r.cpuShares = 1024
        r.cpuQuota = 50_000
        r.cpuPeriod = 100_000
        r.memoryLimitInBytes = 64 << 20
        r.cpusetCPUs = "0-1"
        r.hugepageLimits = ["2MB": 4 << 20]
        r.unified = ["memory.high": "50000000", "cpu.weight": "77"]
        #expect(try r.cgroupV2() == [
            "cpu.weight": "77", "cpu.max": "50000 100000", "memory.max": String(64 << 20), "cpuset.cpus": "0-1",
            "hugetlb.2MB.max": String(4 << 20), "memory.high": "50000000",
        ])
        r.unified = [:]
        #expect(try r.cgroupV2()["cpu.weight"] == "39", "runc: 1 + (1022 * 9999) / 262142")
        r.cpuShares = 2
        #expect(try r.cgroupV2()["cpu.weight"] == "1")
        r.cpuShares = 262_144
        #expect(try r.cgroupV2()["cpu.weight"] == "10000")
        var p = LinuxResources()
        p.cpuPeriod = 50_000
        #expect(try p.cgroupV2() == ["cpu.max": "max 50000"])
    }

    @Test("swap: v1's memory+swap becomes v2's swap alone; -1 is max; less than memory is refused")
    func swap() throws {
        var r = LinuxResources()
        r.memoryLimitInBytes = 100
        r.memorySwapLimitInBytes = 100
        #expect(try r.cgroupV2()["memory.swap.max"] == "0")
        r.memorySwapLimitInBytes = 300
        #expect(try r.cgroupV2()["memory.swap.max"] == "200")
        r.memorySwapLimitInBytes = -1
        #expect(try r.cgroupV2()["memory.swap.max"] == "max")
        r.memorySwapLimitInBytes = 50
        #expect(throws: HuskError.self) { try r.cgroupV2() }
        var s = LinuxResources()
        s.memorySwapLimitInBytes = 10
        #expect(throws: HuskError.self) { try s.cgroupV2() }
    }
}
