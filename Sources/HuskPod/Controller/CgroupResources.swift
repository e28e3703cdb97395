import HuskRuntime
import HuskSystem

/// kubelet's resource config (pkg/kubelet/cm: MilliCPUToShares, MilliCPUToQuota,
/// ResourceConfigForPod; kuberuntime generateLinuxContainerResources) turned into cgroup v2
/// files the way runc/containerd write them (cpu.shares → cpu.weight with runc's conversion).
public enum CgroupResources {
    public static let minShares: Int64 = 2
    public static let maxShares: Int64 = 262_144
    public static let quotaPeriod: Int64 = 100_000
    public static let minQuota: Int64 = 1000

    /// MilliCPUToShares: 0 → 2; milli × 1024 / 1000, within 2 ... 262144.
    public static func shares(milli: Int64) -> Int64 {
        if milli == 0 { return minShares }
        return min(max(milli * 1024 / 1000, minShares), maxShares)
    }

    /// runc's ConvertCPUSharesToCgroupV2Value: 1 + ((shares - 2) × 9999) / 262142.
    public static func weight(shares: Int64) -> Int64 {
        shares == 0 ? 0 : 1 + ((shares - 2) * 9999) / 262_142
    }

    /// MilliCPUToQuota: milli × period / 1000, at least 1000 µs.
    public static func quota(milli: Int64) -> Int64 {
        max(milli * quotaPeriod / 1000, minQuota)
    }

    /// `hugepages-2Mi` → `2MB` (the hugetlb file's size name).
    static func hugetlbSize(_ resource: String) -> String? {
        let size = resource.dropFirst("hugepages-".count)
        guard resource.hasPrefix("hugepages-"), let bytes = Quantity.bytes(String(size)) else { return nil }
        if bytes >= 1 << 30 { return "\(bytes >> 30)GB" }
        if bytes >= 1 << 20 { return "\(bytes >> 20)MB" }
        return "\(bytes >> 10)KB"
    }

    /// The files of a container's cgroup. `path` is its field path (`spec.containers[0]`).
    public static func container(_ c: ContainerSpec, path: String, memoryQoS: Bool = false, pageSize: Int64 = 4096) -> [CgroupLimit] {
        let r = c.resources
        var out: [CgroupLimit] = []
        let requestMilli = r.requests["cpu"].flatMap { Quantity.milli($0) } ?? 0
        out.append(CgroupLimit(
            file: "cpu.weight", value: String(weight(shares: shares(milli: requestMilli))), controller: "cpu",
            field: r.requests["cpu"] == nil ? nil : path + ".resources.requests.cpu"))
        if let l = r.limits["cpu"], let milli = Quantity.milli(l) {
            out.append(CgroupLimit(file: "cpu.max", value: "\(quota(milli: milli)) \(quotaPeriod)", controller: "cpu",
                                   field: path + ".resources.limits.cpu"))
        }
        if let l = r.limits["memory"], let limit = Quantity.bytes(l) {
            out.append(CgroupLimit(file: "memory.max", value: String(limit), controller: "memory",
                                   field: path + ".resources.limits.memory"))
            // MemoryQoS (KEP-2570): memory.high = request + 0.9 × (limit - request), whole pages;
            // not for a request equal to the limit.
            let request = r.requests["memory"].flatMap { Quantity.bytes($0) } ?? 0
            if memoryQoS && request < limit {
                let high = Int64((Double(request) + 0.9 * Double(limit - request)) / Double(pageSize)) * pageSize
                out.append(CgroupLimit(file: "memory.high", value: String(high), controller: "memory",
                                       field: path + ".resources.limits.memory"))
            }
        }
        for (name, q) in r.limits.sorted(by: { $0.key < $1.key }) {
            guard let size = hugetlbSize(name), let bytes = Quantity.bytes(q) else { continue }
            out.append(CgroupLimit(file: "hugetlb.\(size).max", value: String(bytes), controller: "hugetlb",
                                   field: path + ".resources.limits.\(name)"))
        }
        return out
    }

    /// The files of the pod's cgroup (ResourceConfigForPod): the cpu weight of the effective
    /// requests; cpu.max and memory.max only when every container declares that limit, as
    /// their sum; hugetlb sums; pids.max from the pid limit. Effective: the larger of the app
    /// containers and sidecars together and the largest init container (pod-semantics §3).
    public static func pod(_ pod: Pod, pidsLimit: Int64?) -> [CgroupLimit] {
        let apps = pod.spec.containers + pod.spec.initContainers.filter { $0.restartPolicy == "Always" }
        let inits = pod.spec.initContainers.filter { $0.restartPolicy != "Always" }
        let all = apps + inits
        func effective(_ pick: (ContainerSpec) -> Int64?) -> Int64 {
            let sum = apps.reduce(Int64(0)) { $0 + (pick($1) ?? 0) }
            return inits.reduce(sum) { max($0, pick($1) ?? 0) }
        }
        var out: [CgroupLimit] = []
        let request = effective { $0.resources.requests["cpu"].flatMap { Quantity.milli($0) } }
        let anyCPURequest = all.contains { $0.resources.requests["cpu"] != nil }
        out.append(CgroupLimit(file: "cpu.weight", value: String(weight(shares: shares(milli: request))), controller: "cpu",
                               field: anyCPURequest ? "spec.containers[*].resources.requests.cpu" : nil))
        if !all.isEmpty && all.allSatisfy({ $0.resources.limits["cpu"] != nil }) {
            let milli = effective { $0.resources.limits["cpu"].flatMap { Quantity.milli($0) } }
            out.append(CgroupLimit(file: "cpu.max", value: "\(quota(milli: milli)) \(quotaPeriod)", controller: "cpu",
                                   field: "spec.containers[*].resources.limits.cpu"))
        }
        if !all.isEmpty && all.allSatisfy({ $0.resources.limits["memory"] != nil }) {
            let bytes = effective { $0.resources.limits["memory"].flatMap { Quantity.bytes($0) } }
            out.append(CgroupLimit(file: "memory.max", value: String(bytes), controller: "memory",
                                   field: "spec.containers[*].resources.limits.memory"))
        }
        let huge = Set(all.flatMap { $0.resources.limits.keys.filter { $0.hasPrefix("hugepages-") } })
        for name in huge.sorted() {
            guard let size = hugetlbSize(name) else { continue }
            let bytes = effective { $0.resources.limits[name].flatMap { Quantity.bytes($0) } }
            out.append(CgroupLimit(file: "hugetlb.\(size).max", value: String(bytes), controller: "hugetlb",
                                   field: "spec.containers[*].resources.limits.\(name)"))
        }
        if let pidsLimit, pidsLimit > 0 {
            out.append(CgroupLimit(file: "pids.max", value: String(pidsLimit), controller: "pids",
                                   field: "the pod's pid limit (--pod-pids-limit, or its annotation husk.io/pod-pids-limit)"))
        }
        return out
    }

    /// Every limit of the pod (pod and containers) that needs a controller not in
    /// `available`, and was asked for.
    public static func missing(_ pod: Pod, available: Set<String>, pidsLimit: Int64?, memoryQoS: Bool) -> [CgroupLimit] {
        // The pod's own totals come from its containers' limits, reported there; only its pid
        // limit is its own.
        var all = self.pod(pod, pidsLimit: pidsLimit).filter { $0.controller == "pids" }
        for (i, c) in pod.spec.initContainers.enumerated() { all += container(c, path: "spec.initContainers[\(i)]", memoryQoS: memoryQoS) }
        for (i, c) in pod.spec.containers.enumerated() { all += container(c, path: "spec.containers[\(i)]", memoryQoS: memoryQoS) }
        var seen: Set<String> = []
        return all.filter { $0.field != nil && !available.contains($0.controller) && seen.insert($0.field! + $0.file).inserted }
    }

    /// Before a pod is started: the limits it asks for that this host cannot enforce (their
    /// controller is missing from Husk's subtree of the cgroup2 hierarchy) refuse it, every
    /// one named, or with `settings.ignoreMissingControllers` are returned as warnings, one
    /// each. No cgroup2 hierarchy at all refuses every pod.
    public static func check(_ pod: Pod, settings: HuskSettings) throws(HuskError) -> [String] {
        guard let mount = (try? Cgroup2Mount.discover()) ?? nil else {
            throw HuskError(.unsupported, "no cgroup2 hierarchy is mounted (see /proc/self/mountinfo): Husk puts every container in one")
        }
        return try check(pod, settings: settings, available: available(mount), mountPath: mount.path)
    }

    /// `check` against a hierarchy mounted at `mountPath` that gives Husk the controllers
    /// `available`.
    public static func check(_ pod: Pod, settings: HuskSettings, available: Set<String>, mountPath: String) throws(HuskError) -> [String] {
        let missing = missing(pod, available: available, pidsLimit: settings.pidsLimit(for: pod), memoryQoS: settings.memoryQoS)
        if missing.isEmpty { return [] }
        let offered = available.isEmpty ? "none" : available.sorted().joined(separator: " ")
        let lines = missing.map {
            "\($0.field!): \($0.file) needs the cgroup v2 controller \"\($0.controller)\", which the cgroup2 hierarchy at \(mountPath) does not give Husk (it offers: \(offered))"
        }
        if !settings.ignoreMissingControllers {
            throw HuskError(
                .unsupported,
                "pod \(pod.metadata.namespace)/\(pod.metadata.name) asks for limits this host cannot enforce, so nothing was started:\n  "
                    + lines.joined(separator: "\n  ")
                    + "\nRun it where those controllers are enabled for Husk's subtree (cgroup.subtree_control above \(mountPath)/husk), or pass --ignore-missing-controllers to run it without them")
        }
        return lines.map { "\($0); it is not enforced (--ignore-missing-controllers)" }
    }

    /// What Husk's subtree may use: the controllers its top group has, or, before it exists,
    /// what the hierarchy's root hands down (cgroup.subtree_control).
    public static func available(_ mount: Cgroup2Mount) -> Set<String> {
        let top = mount.group("/husk")
        if top.exists { return top.controllers() }
        let root = mount.group("/")
        return Set((root.read("cgroup.subtree_control") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    }
}

extension CgroupResources {
    /// kubelet's figures as the resources of a runtime spec, so that the engine's one cgroup
    /// writer (`OCIResources`) writes them. Each is the cgroup v2 file kubelet's conversion
    /// gives (containerd puts memory.high for MemoryQoS in `unified` the same way).
    public static func spec(_ limits: [CgroupLimit]) -> Spec.Resources? {
        guard !limits.isEmpty else { return nil }
        var r = Spec.Resources()
        r.unified = Dictionary(limits.map { ($0.file, $0.value) }, uniquingKeysWith: { _, b in b })
        return r
    }
}
