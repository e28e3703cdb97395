import HuskSystem

/// A container's cgroup figures, as cgroup v2 files give them (runc's fs2 driver reads the
/// same). A file the host lacks (its controller is not enabled) leaves its figures nil.
public struct CgroupStats: Sendable, Equatable {
    /// cpu.stat: usage_usec, user_usec, system_usec, nr_periods, nr_throttled, throttled_usec.
    public var cpu: [String: UInt64] = [:]
    public var memoryCurrent: UInt64? = nil
    public var memoryPeak: UInt64? = nil
    /// memory.max (UInt64.max for "max").
    public var memoryMax: UInt64? = nil
    public var memoryStat: [String: UInt64] = [:]
    public var memoryEvents: [String: UInt64] = [:]
    public var swapCurrent: UInt64? = nil
    public var swapMax: UInt64? = nil
    public var pidsCurrent: UInt64? = nil
    public var pidsMax: UInt64? = nil
    /// Per huge page size ("2MB"): usage, limit, failures.
    public var hugetlb: [String: (usage: UInt64, max: UInt64, failcnt: UInt64)] = [:]

    /// The working set as kubelet and crictl count it: memory.current less inactive_file.
    public var workingSet: UInt64? {
        memoryCurrent.map { c in c - min(c, memoryStat["inactive_file"] ?? 0) }
    }

    /// How many times the OOM killer struck in the group (memory.events oom_kill).
    public var oomKills: UInt64 { memoryEvents["oom_kill"] ?? 0 }

    public static func == (a: CgroupStats, b: CgroupStats) -> Bool {
        a.cpu == b.cpu && a.memoryCurrent == b.memoryCurrent && a.memoryPeak == b.memoryPeak && a.memoryMax == b.memoryMax
            && a.memoryStat == b.memoryStat && a.memoryEvents == b.memoryEvents && a.swapCurrent == b.swapCurrent
            && a.swapMax == b.swapMax && a.pidsCurrent == b.pidsCurrent && a.pidsMax == b.pidsMax
            && a.hugetlb.mapValues { [$0.usage, $0.max, $0.failcnt] } == b.hugetlb.mapValues { [$0.usage, $0.max, $0.failcnt] }
    }
}

extension Engine {
    /// Reads the figures of a container's cgroup.
    public static func stats(_ g: Cgroup2Group) -> CgroupStats {
        func keyed(_ file: String) -> [String: UInt64] {
            var m: [String: UInt64] = [:]
            for line in (g.read(file) ?? "").split(separator: "\n") {
                let f = line.split(separator: " ")
                if f.count == 2, let v = UInt64(f[1]) { m[String(f[0])] = v }
            }
            return m
        }
        func single(_ file: String) -> UInt64? {
            guard let text = g.read(file) else { return nil }
            var s = Substring(text)
            while let l = s.last, l == "\n" || l == " " { s = s.dropLast() }
            return s == "max" ? UInt64.max : UInt64(s)
        }
        var s = CgroupStats()
        s.cpu = keyed("cpu.stat")
        s.memoryCurrent = single("memory.current")
        if s.memoryCurrent != nil {
            s.memoryPeak = single("memory.peak")
            s.memoryMax = single("memory.max")
            s.memoryStat = keyed("memory.stat")
            s.swapCurrent = single("memory.swap.current")
            s.swapMax = single("memory.swap.max")
        }
        s.memoryEvents = keyed("memory.events")
        s.pidsCurrent = single("pids.current")
        if s.pidsCurrent != nil { s.pidsMax = single("pids.max") }
        for name in Files.list(g.directory) ?? [] where name.hasPrefix("hugetlb.") && name.hasSuffix(".current") {
            let size = String(name.dropFirst("hugetlb.".count).dropLast(".current".count))
            if size.contains(".") { continue }  // hugetlb.2MB.rsvd.current
            s.hugetlb[size] = (single(name) ?? 0, single("hugetlb.\(size).max") ?? 0, keyed("hugetlb.\(size).events")["max"] ?? 0)
        }
        return s
    }

    /// runc update: lays `changes` over `current` (the resources in force) and writes the
    /// files of what `changes` gives into the group (the merged set gives them context: a
    /// swap limit needs the memory limit in force). Nothing is written when a value is
    /// invalid, or a controller is missing unless `ignoreMissing`.
    /// Returns the merged resources and the warnings.
    public static func update(
        _ g: Cgroup2Group, changes: Spec.Resources, current: Spec.Resources, mayWrite: (String) -> Bool, ignoreMissing: Bool
    ) throws(HuskError) -> (merged: Spec.Resources, warnings: [String]) {
        if changes.devices != nil {
            throw HuskError(.unsupported, "update: device rules cannot be changed after create (as runc)")
        }
        let merged = current.overlaid(with: changes)
        var given = merged.withoutDevices
        if changes.memory == nil { given.memory = nil }
        if changes.cpu == nil { given.cpu = nil }
        if changes.pids == nil { given.pids = nil }
        if changes.blockIO == nil { given.blockIO = nil }
        if changes.hugepageLimits == nil { given.hugepageLimits = nil }
        if changes.rdma == nil { given.rdma = nil }
        given.unified = changes.unified
        given.network = changes.network
        var p = SpecProblems()
        let limits = OCIResources.limits(given, hasBFQ: Files.exists(g.directory + "/io.bfq.weight"), into: &p)
        if !p.errors.isEmpty { throw HuskError(.invalidArgument, p.errors.joined(separator: "; ")) }
        if merged.memory?.checkBeforeUpdate == true, let max = limits.first(where: { $0.file == "memory.max" }),
            let want = UInt64(max.value), let inUse = stats(g).memoryCurrent, want < inUse
        {
            throw HuskError(.invalidArgument,
                            "linux.resources.memory.limit: \(want) is below the memory in use (\(inUse)); checkBeforeUpdate refuses it")
        }
        OCIResources.delegate(OCIResources.controllers(limits), to: g, mayWrite: mayWrite)
        return (merged, try OCIResources.apply(limits, to: g, ignoreMissing: ignoreMissing))
    }
}
