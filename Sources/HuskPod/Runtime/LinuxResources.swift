import HuskRuntime
import HuskSystem

/// CRI's `LinuxContainerResources` as kubelet sends them (CreateContainer,
/// UpdateContainerResources), and their cgroup v2 files: runc's conversion
/// (libcontainer/cgroups: ConvertCPUSharesToCgroupV2Value, ConvertMemorySwapToCgroupV2Value),
/// which containerd's CRI plugin relies on. `unified` entries win over the converted ones.
public struct LinuxResources: Sendable, Equatable {
    public var cpuPeriod: Int64 = 0
    public var cpuQuota: Int64 = 0
    public var cpuShares: Int64 = 0
    public var memoryLimitInBytes: Int64 = 0
    public var memorySwapLimitInBytes: Int64 = 0
    public var cpusetCPUs = ""
    public var cpusetMems = ""
    /// Page size as CRI writes it ("2MB", "1GB") and the limit in bytes.
    public var hugepageLimits: [String: UInt64] = [:]
    public var unified: [String: String] = [:]

    public init() {}

    /// The cgroup v2 files; throws for a combination runc refuses.
    public func cgroupV2() throws(HuskError) -> [String: String] {
        var out: [String: String] = [:]
        if cpuShares > 0 {
            // runc: 1 + ((shares - 2) * 9999) / 262142, shares clamped to [2, 262144].
            let shares = min(max(cpuShares, 2), 262_144)
            out["cpu.weight"] = String(1 + ((shares - 2) * 9999) / 262_142)
        }
        if cpuQuota > 0 || cpuPeriod > 0 {
            let period = cpuPeriod > 0 ? cpuPeriod : 100_000
            out["cpu.max"] = (cpuQuota > 0 ? String(cpuQuota) : "max") + " \(period)"
        }
        if memoryLimitInBytes > 0 { out["memory.max"] = String(memoryLimitInBytes) }
        if memorySwapLimitInBytes != 0 {
            // v1's memory+swap becomes v2's swap alone.
            if memorySwapLimitInBytes == -1 {
                out["memory.swap.max"] = "max"
            } else {
                guard memoryLimitInBytes > 0 else {
                    throw HuskError(.invalidArgument, "memory_swap_limit_in_bytes needs memory_limit_in_bytes (cgroup v2 sets swap apart from memory)")
                }
                guard memorySwapLimitInBytes >= memoryLimitInBytes else {
                    throw HuskError(.invalidArgument, "memory_swap_limit_in_bytes (\(memorySwapLimitInBytes)) is less than memory_limit_in_bytes (\(memoryLimitInBytes))")
                }
                out["memory.swap.max"] = String(memorySwapLimitInBytes - memoryLimitInBytes)
            }
        }
        if !cpusetCPUs.isEmpty { out["cpuset.cpus"] = cpusetCPUs }
        if !cpusetMems.isEmpty { out["cpuset.mems"] = cpusetMems }
        for (size, limit) in hugepageLimits { out["hugetlb.\(size).max"] = String(limit) }
        for (file, value) in unified { out[file] = value }
        return out
    }

    /// The resources of a runtime spec (nil when there are none).
    public func spec() throws(HuskError) -> Spec.Resources? {
        let files = try cgroupV2()
        guard !files.isEmpty else { return nil }
        var r = Spec.Resources()
        r.unified = files
        return r
    }
}
