import FoundationEssentials
import HuskJSON
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

extension Spec.Resources {
    /// `self` with every field `new` gives laid over it (runc update: only what is given
    /// changes).
    public func overlaid(with new: Spec.Resources) -> Spec.Resources {
        var r = self
        if let m = new.memory {
            r.memory = Self.laid(m, over: r.memory ?? .init(), \.limit, \.reservation, \.swap, \.kernel, \.kernelTCP,
                                 \.swappiness, \.disableOOMKiller, \.checkBeforeUpdate)
        }
        if let c = new.cpu {
            r.cpu = Self.laid(c, over: r.cpu ?? .init(), \.shares, \.quota, \.burst, \.period, \.realtimeRuntime,
                              \.realtimePeriod, \.cpus, \.mems, \.idle)
        }
        if let p = new.pids { r.pids = p }
        if let b = new.blockIO {
            r.blockIO = Self.laid(b, over: r.blockIO ?? .init(), \.weight, \.leafWeight, \.weightDevice,
                                  \.throttleReadBpsDevice, \.throttleWriteBpsDevice, \.throttleReadIOPSDevice,
                                  \.throttleWriteIOPSDevice)
        }
        if let h = new.hugepageLimits { r.hugepageLimits = h }
        if let x = new.rdma { r.rdma = x }
        if let u = new.unified { r.unified = (r.unified ?? [:]).merging(u) { $1 } }
        return r
    }

    /// `base` with each of `fields` that `new` sets laid over it (the others keep their value).
    private static func laid<Section, each Value>(
        _ new: Section, over base: Section, _ fields: repeat WritableKeyPath<Section, (each Value)?>
    ) -> Section {
        var r = base
        for field in repeat each fields {
            if let v = new[keyPath: field] { r[keyPath: field] = v }
        }
        return r
    }

    /// Only what `update` may change: no device rules (runc update leaves them too).
    var withoutDevices: Spec.Resources {
        var r = self
        r.devices = nil
        return r
    }
}

extension Container {
    var resourcesPath: String { directory + "/resources.json" }

    /// The resources in force: the last `update`'s, else the bundle's config.json's.
    public func currentResources() throws(HuskError) -> Spec.Resources {
        if let bytes = try? Files.read(resourcesPath) {
            do {
                return try JSONDecoder().decode(Spec.Resources.self, from: Data(bytes))
            } catch {
                throw HuskError(.internalError, "\(resourcesPath): \(JSONPath.describe(error))")
            }
        }
        let bundle = try RuntimeBundle.load(record.bundle)
        return bundle.spec.linux?.resources ?? .init()
    }

    /// `update`: lays `changes` over the resources in force and writes them into the
    /// container's cgroup. Refused for a stopped container; nothing is written when a value
    /// is invalid or a controller is missing (unless `ignoreMissing`). Returns warnings.
    @discardableResult
    public func update(_ changes: Spec.Resources, ignoreMissing: Bool = false) throws(HuskError) -> [String] {
        guard status != .stopped else { throw HuskError(.invalidState, "container \(id) is not running") }
        guard let g = record.cgroup, g.exists else { throw HuskError(.invalidState, "container \(id) has no cgroup") }
        let (merged, warnings) = try Engine.update(
            g, changes: changes, current: try currentResources(), mayWrite: record.mayPrune, ignoreMissing: ignoreMissing)
        do {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            try Files.writeAtomically(resourcesPath, Array(try e.encode(merged)), mode: 0o600)
        } catch {
            throw HuskError(.system, "cannot save the resources of container \(id)", cause: error)
        }
        return warnings
    }

    // MARK: - stats (runc events)

    /// The container's cgroup figures in runc's `events --stats` shape (libcontainer types.Stats,
    /// filled from cgroup v2 files as runc's fs2 driver does). Files the host lacks are left out.
    public func stats() throws(HuskError) -> JSONValue {
        guard let g = record.cgroup, g.exists else { throw HuskError(.invalidState, "container \(id) has no cgroup") }
        let s = Engine.stats(g)
        func n(_ v: UInt64?) -> JSONValue { .number(Double(v ?? 0)) }
        var data: [String: JSONValue] = [:]
        let cpu = s.cpu
        if !cpu.isEmpty {
            data["cpu"] = .object([
                "usage": .object([
                    "total": n(cpu["usage_usec"].map { $0 * 1000 }), "kernel": n(cpu["system_usec"].map { $0 * 1000 }),
                    "user": n(cpu["user_usec"].map { $0 * 1000 }),
                ]),
                "throttling": .object([
                    "periods": n(cpu["nr_periods"]), "throttled_periods": n(cpu["nr_throttled"]),
                    "throttled_time": n(cpu["throttled_usec"].map { $0 * 1000 }),
                ]),
            ])
        }
        if let current = s.memoryCurrent {
            var usage: [String: JSONValue] = ["usage": n(current), "failcnt": n(s.memoryEvents["max"])]
            if let l = s.memoryMax { usage["limit"] = n(l) }
            if let p = s.memoryPeak { usage["max"] = n(p) }
            var mem: [String: JSONValue] = ["usage": .object(usage), "cache": n(s.memoryStat["file"])]
            if let sw = s.swapCurrent {
                var swap: [String: JSONValue] = ["usage": n(sw + current)]
                if let l = s.swapMax, let m = s.memoryMax {
                    swap["limit"] = n(l == .max || m == .max ? .max : l + m)
                }
                mem["swap"] = .object(swap)
            }
            mem["raw"] = .object(s.memoryStat.mapValues { .number(Double($0)) })
            data["memory"] = .object(mem)
        }
        if let current = s.pidsCurrent {
            let limit = s.pidsMax
            data["pids"] = .object(["current": n(current), "limit": n(limit == .max ? 0 : limit)])
        }
        var huge: [String: JSONValue] = [:]
        for (size, h) in s.hugetlb {
            huge[size] = .object(["usage": n(h.usage), "max": n(h.max == .max ? 0 : h.max), "failcnt": n(h.failcnt)])
        }
        if !huge.isEmpty { data["hugetlb"] = .object(huge) }
        return .object(["type": .string("stats"), "id": .string(id), "data": .object(data)])
    }

    /// oom_kill of memory.events (0 without the memory controller).
    public var oomKills: UInt64 {
        guard let g = record.cgroup else { return 0 }
        return Engine.oomKills(g)
    }
}

extension String {
    var trimmed: String {
        var s = Substring(self)
        while let l = s.last, l == "\n" || l == " " { s = s.dropLast() }
        return String(s)
    }
}
