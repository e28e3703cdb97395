import HuskJSON
import HuskSystem

/// `linux.resources` of a runtime spec (config-linux.md "Control groups") turned into cgroup v2
/// interface files the way runc's fs2 driver writes them: cpu.shares → cpu.weight with runc's
/// conversion, quota/period → cpu.max, memory swap as memory+swap less memory, blkio weight →
/// io.bfq.weight (or io.weight converted), throttles → io.max, `unified` written as given.
public enum OCIResources {
    /// runc's ConvertMemorySwapToCgroupV2Value: the OCI swap is memory+swap; v2 wants swap alone.
    /// Returns nil when nothing is to be written.
    static func swapValue(swap: Int64?, limit: Int64?, field: String, into p: inout SpecProblems) -> String? {
        let memory = limit ?? 0
        let swap = swap ?? 0
        if memory == -1 && swap == 0 { return "max" }  // unlimited memory, swap not given: unlimited too
        if swap == -1 { return "max" }
        if swap == 0 { return nil }
        if memory == 0 || memory == -1 {
            p.error(field + ".swap", "\(swap): a swap limit needs a memory limit (linux.resources.memory.limit)")
            return nil
        }
        if swap < memory {
            p.error(field + ".swap", "\(swap) is below memory.limit \(memory): swap is memory+swap and must be >= the memory limit")
            return nil
        }
        return String(swap - memory)
    }

    /// runc's ConvertBlkIOToIOWeightValue: blkio weight 10...1000 → io.weight 1...10000.
    public static func ioWeight(blkio: UInt16) -> UInt64 {
        1 + (UInt64(blkio) - 10) * 9999 / 990
    }

    /// The files for `r`, in the order they are written. `hasBFQ` says whether the group has
    /// io.bfq.weight (BFQ scheduler); errors and warnings name the JSON field.
    public static func limits(_ r: Spec.Resources?, field: String = "linux.resources", hasBFQ: Bool = false,
                              into p: inout SpecProblems) -> [CgroupLimit] {
        guard let r else { return [] }
        var out: [CgroupLimit] = []
        func add(_ file: String, _ value: String, _ controller: String, _ f: String) {
            out.append(CgroupLimit(file: file, value: value, controller: controller, field: field + "." + f))
        }
        func num(_ v: Int64) -> String { v < 0 ? "max" : String(v) }

        if let m = r.memory {
            if let l = m.limit, l < -1 { p.error(field + ".memory.limit", "\(l) is not a limit (-1 for none)") }
            if let s = swapValue(swap: m.swap, limit: m.limit, field: field + ".memory", into: &p) {
                add("memory.swap.max", s, "memory", "memory.swap")
            }
            if let l = m.limit, l != 0 { add("memory.max", num(l), "memory", "memory.limit") }
            if let l = m.reservation, l != 0 { add("memory.low", num(l), "memory", "memory.reservation") }
            if m.kernel != nil || m.kernelTCP != nil {
                p.warn(field + ".memory.kernel", "kernel memory limits do not exist in cgroup v2; not applied (as runc)")
            }
            if m.swappiness != nil { p.warn(field + ".memory.swappiness", "cgroup v2 has no per-group swappiness; not applied") }
            if m.disableOOMKiller == true {
                p.error(field + ".memory.disableOOMKiller", "cgroup v2 cannot turn the OOM killer off for a group")
            }
        }
        if let c = r.cpu {
            if let s = c.shares, s != 0 {
                if s < 2 || s > 262_144 { p.error(field + ".cpu.shares", "\(s) is outside 2...262144") }
                add("cpu.weight", String(1 + ((Int64(s) - 2) * 9999) / 262_142), "cpu", "cpu.shares")
            }
            if let i = c.idle, i != 0 { add("cpu.idle", String(i), "cpu", "cpu.idle") }
            if (c.quota ?? 0) != 0 || (c.period ?? 0) != 0 {
                var v = "max"
                if let q = c.quota, q > 0 { v = String(q) }
                if let period = c.period, period != 0 { v += " \(period)" }
                add("cpu.max", v, "cpu", c.quota != nil ? "cpu.quota" : "cpu.period")
            }
            if let b = c.burst { add("cpu.max.burst", String(b), "cpu", "cpu.burst") }
            if (c.realtimeRuntime ?? 0) != 0 || (c.realtimePeriod ?? 0) != 0 {
                p.error(field + ".cpu.realtimeRuntime", "real-time cpu limits do not exist in cgroup v2")
            }
            if let s = c.cpus, !s.isEmpty { add("cpuset.cpus", s, "cpuset", "cpu.cpus") }
            if let s = c.mems, !s.isEmpty { add("cpuset.mems", s, "cpuset", "cpu.mems") }
        }
        if let l = r.pids?.limit { add("pids.max", l <= 0 ? "max" : String(l), "pids", "pids.limit") }
        for (i, h) in (r.hugepageLimits ?? []).enumerated() {
            let size = h.pageSize
            if size.isEmpty || !size.allSatisfy({ $0.isNumber || $0.isLetter }) {
                p.error(field + ".hugepageLimits[\(i)].pageSize", "\"\(size)\" is not a page size such as 2MB or 1GB")
                continue
            }
            add("hugetlb.\(size).max", String(h.limit), "hugetlb", "hugepageLimits[\(i)]")
        }
        if let b = r.blockIO {
            if let w = b.weight, w != 0 {
                if w < 10 || w > 1000 { p.error(field + ".blockIO.weight", "\(w) is outside 10...1000") }
                else if hasBFQ { add("io.bfq.weight", String(w), "io", "blockIO.weight") }
                else { add("io.weight", String(ioWeight(blkio: w)), "io", "blockIO.weight") }
            }
            if b.leafWeight != nil { p.warn(field + ".blockIO.leafWeight", "does not exist in cgroup v2; not applied") }
            for (i, d) in (b.weightDevice ?? []).enumerated() {
                guard let w = d.weight, w != 0 else { continue }
                if hasBFQ {
                    add("io.bfq.weight", "\(d.major):\(d.minor) \(w)", "io", "blockIO.weightDevice[\(i)]")
                } else {
                    add("io.weight", "\(d.major):\(d.minor) \(ioWeight(blkio: w))", "io", "blockIO.weightDevice[\(i)]")
                }
            }
            let throttles: [(String, [Spec.Resources.BlockIO.ThrottleDevice]?, String)] = [
                ("rbps", b.throttleReadBpsDevice, "throttleReadBpsDevice"),
                ("wbps", b.throttleWriteBpsDevice, "throttleWriteBpsDevice"),
                ("riops", b.throttleReadIOPSDevice, "throttleReadIOPSDevice"),
                ("wiops", b.throttleWriteIOPSDevice, "throttleWriteIOPSDevice"),
            ]
            for (key, list, name) in throttles {
                for (i, d) in (list ?? []).enumerated() {
                    add("io.max", "\(d.major):\(d.minor) \(key)=\(d.rate == 0 ? "max" : String(d.rate))", "io", "blockIO.\(name)[\(i)]")
                }
            }
        }
        if let n = r.network, n != .null, n != .object([:]) {
            p.error(field + ".network", "classID and priorities are cgroup v1 controllers (net_cls, net_prio); cgroup v2 has none")
        }
        for (dev, limit) in (r.rdma ?? [:]).sorted(by: { $0.key < $1.key }) {
            var parts = [dev]
            if let h = limit.hcaHandles { parts.append("hca_handle=\(h)") }
            if let o = limit.hcaObjects { parts.append("hca_object=\(o)") }
            if parts.count > 1 { add("rdma.max", parts.joined(separator: " "), "rdma", "rdma.\(dev)") }
        }
        for (key, value) in (r.unified ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard !key.contains("/"), let dot = key.firstIndex(of: "."), dot != key.startIndex else {
                p.error(field + ".unified.\(key)", "\"\(key)\" is not a cgroup v2 interface file name (controller.name)")
                continue
            }
            let controller = String(key[..<dot])
            add(key, value, controller == "cgroup" ? "" : controller, "unified.\(key)")
        }
        return out
    }

    /// The controllers `limits` need ("" is the core, always present).
    public static func controllers(_ limits: [CgroupLimit]) -> Set<String> {
        Set(limits.map(\.controller).filter { !$0.isEmpty })
    }

    /// Hands `wanted` controllers down along `group`'s ancestors, from the first one `mayWrite`
    /// allows (groups this runtime created, or its own subtree) to the group's parent: each of
    /// them gets `+controller` in cgroup.subtree_control for those it has. The hierarchy's root
    /// and groups of others are never written.
    public static func delegate(_ wanted: Set<String>, to group: Cgroup2Group, mayWrite: (String) -> Bool) {
        guard !wanted.isEmpty else { return }
        var chain: [Cgroup2Group] = []
        var g = group.parent
        while let cur = g, cur.path != "/" {
            chain.append(cur)
            g = cur.parent
        }
        for ancestor in chain.reversed() where mayWrite(ancestor.path) {
            let have = ancestor.controllers().intersection(wanted)
            let enabled = Set((ancestor.read("cgroup.subtree_control") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
            let add = have.subtracting(enabled)
            if add.isEmpty { continue }
            try? ancestor.write("cgroup.subtree_control", add.sorted().map { "+" + $0 }.joined(separator: " "))
        }
    }

    /// Writes `limits` into `group`. Limits whose controller the group lacks are refused (one
    /// line each, naming the field) unless `ignoreMissing`, in which case they are skipped and
    /// returned as warnings.
    public static func apply(_ limits: [CgroupLimit], to group: Cgroup2Group, ignoreMissing: Bool) throws(HuskError) -> [String] {
        let have = group.controllers()
        let missing = limits.filter { !$0.controller.isEmpty && !have.contains($0.controller) }
        var warnings: [String] = []
        if !missing.isEmpty {
            let lines = missing.map { "\($0.field ?? $0.file): needs the \($0.controller) controller (\($0.file))" }
            let offered = have.isEmpty ? "none" : have.sorted().joined(separator: " ")
            if !ignoreMissing {
                throw HuskError(
                    .unsupported,
                    "this host's cgroup v2 cannot enforce these limits (controllers of \(group.directory): \(offered)): "
                        + lines.joined(separator: "; ")
                        + ". Enable the controllers for this cgroup, or pass --ignore-missing-controllers "
                        + "(or set HUSK_RUNC_IGNORE_MISSING_CONTROLLERS=1) to run without them")
            }
            warnings = lines.map { $0 + ": not applied, the controller is missing (controllers here: \(offered))" }
        }
        for l in limits where l.controller.isEmpty || have.contains(l.controller) {
            do {
                try group.write(l.file, l.value)
            } catch {
                throw HuskError(.invalidArgument, "\(l.field ?? l.file): cannot write \"\(l.value)\" to \(l.file): \(error.errno.text)")
            }
        }
        return warnings
    }
}
