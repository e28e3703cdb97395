import GRPCCore
import HuskJSON
import HuskPod
import HuskRuntime
import HuskSystem

// Container and sandbox stats (cri-semantics.md §3): read from the cgroups and the upper dirs
// directly, no supervisor is asked. The metrics RPCs are in +Metrics.
extension RuntimeService {
    func containerStats(request: Runtime_V1_ContainerStatsRequest, context: ServerContext) async throws -> Runtime_V1_ContainerStatsResponse {
        let (client, c) = try container(request.containerID)
        let stats = try await Blocking.run { [self] in self.stats(of: c, in: client) }
        var r = Runtime_V1_ContainerStatsResponse()
        r.stats = stats
        return r
    }

    func listContainerStats(
        request: Runtime_V1_ListContainerStatsRequest, context: ServerContext
    ) async throws -> Runtime_V1_ListContainerStatsResponse {
        let f = request.filter
        let settings = config.settings
        let all = try await Blocking.run { [self] () -> [Runtime_V1_ContainerStats] in
            var out: [Runtime_V1_ContainerStats] = []
            for sid in SandboxClient.ids(settings) {
                if request.hasFilter, !f.podSandboxID.isEmpty, !sid.hasPrefix(f.podSandboxID) { continue }
                let client = SandboxClient(settings: settings, id: sid)
                // As containerd: the containers that run (their cgroups exist).
                for c in self.records.all(client.stateDirectory) where c.state == .running {
                    if request.hasFilter, !f.id.isEmpty, !c.id.hasPrefix(f.id) { continue }
                    let labels = Self.strings(c.config["labels"])
                    if request.hasFilter, !f.labelSelector.allSatisfy({ labels[$0.key] == $0.value }) { continue }
                    out.append(self.stats(of: c, in: client))
                }
            }
            return out
        }
        var r = Runtime_V1_ListContainerStatsResponse()
        r.stats = all
        return r
    }

    func streamContainerStats(
        request: Runtime_V1_StreamContainerStatsRequest, response: RPCWriter<Runtime_V1_StreamContainerStatsResponse>,
        context: ServerContext
    ) async throws {
        var list = Runtime_V1_ListContainerStatsRequest()
        if request.hasFilter { list.filter = request.filter }
        let all = try await listContainerStats(request: list, context: context).stats
        try await Paging.write(all, to: response) { part in
            var m = Runtime_V1_StreamContainerStatsResponse()
            m.containerStats = part
            return m
        }
    }

    func podSandboxStats(request: Runtime_V1_PodSandboxStatsRequest, context: ServerContext) async throws -> Runtime_V1_PodSandboxStatsResponse {
        guard !request.podSandboxID.isEmpty else { throw CRIError.invalidArgument("pod_sandbox_id", "is empty") }
        let client = try sandbox(request.podSandboxID)
        let stats = try await Blocking.run { [self] in try self.stats(of: client) }
        var r = Runtime_V1_PodSandboxStatsResponse()
        r.stats = stats
        return r
    }

    func listPodSandboxStats(
        request: Runtime_V1_ListPodSandboxStatsRequest, context: ServerContext
    ) async throws -> Runtime_V1_ListPodSandboxStatsResponse {
        let f = request.filter
        let settings = config.settings
        let all = try await Blocking.run { [self] () -> [Runtime_V1_PodSandboxStats] in
            SandboxClient.ids(settings).compactMap { sid in
                if request.hasFilter, !f.id.isEmpty, !sid.hasPrefix(f.id) { return nil }
                let client = SandboxClient(settings: settings, id: sid)
                guard let record = try? client.record(), let state = try? client.state(), Self.ready(state, client) else { return nil }
                if request.hasFilter, !f.labelSelector.allSatisfy({ record.config.labels[$0.key] == $0.value }) { return nil }
                return try? self.stats(of: client)
            }
        }
        var r = Runtime_V1_ListPodSandboxStatsResponse()
        r.stats = all
        return r
    }

    func streamPodSandboxStats(
        request: Runtime_V1_StreamPodSandboxStatsRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxStatsResponse>,
        context: ServerContext
    ) async throws {
        var list = Runtime_V1_ListPodSandboxStatsRequest()
        if request.hasFilter { list.filter = request.filter }
        let all = try await listPodSandboxStats(request: list, context: context).stats
        try await Paging.write(all, to: response) { part in
            var m = Runtime_V1_StreamPodSandboxStatsResponse()
            m.podSandboxStats = part
            return m
        }
    }
}

extension RuntimeService {
    /// The figures of a container: its cgroup (cpu, memory), its writable layer.
    func stats(of c: SandboxContainer, in client: SandboxClient) -> Runtime_V1_ContainerStats {
        var s = Runtime_V1_ContainerStats()
        s.attributes.id = c.id
        s.attributes.metadata = Self.metadata(c)
        s.attributes.labels = Self.strings(c.config["labels"])
        s.attributes.annotations = Self.strings(c.config["annotations"])
        let now = CRITime.now()
        if let mount = try? Cgroup2Mount.discover() {
            let g = mount.group(client.cgroup + "/" + c.name)
            if g.exists {
                var cpu = Runtime_V1_CpuUsage(), memory = Runtime_V1_MemoryUsage()
                fill(&cpu, &memory, Engine.stats(g), key: g.directory, now: now)
                s.cpu = cpu
                s.memory = memory
            }
        }
        let attempt = Self.attempt(c)
        let upper = client.dataDirectory + "/containers/\(c.name)/\(attempt)/upper"
        s.writableLayer.timestamp = now
        s.writableLayer.fsID.mountpoint = client.dataDirectory + "/containers"
        if let du = try? DiskUsage.of(upper) {
            s.writableLayer.usedBytes.value = du.bytes
            s.writableLayer.inodesUsed.value = du.inodes
        }
        return s
    }

    /// The figures of a sandbox: its pod cgroup, its processes, its running containers.
    func stats(of client: SandboxClient) throws -> Runtime_V1_PodSandboxStats {
        guard let record = try? client.record() else { throw CRIError.notFound("sandbox \(client.id) not found") }
        var s = Runtime_V1_PodSandboxStats()
        s.attributes.id = client.id
        s.attributes.metadata = Self.metadata(record.config.metadata)
        s.attributes.labels = record.config.labels
        s.attributes.annotations = record.config.annotations
        let now = CRITime.now()
        if let mount = try? Cgroup2Mount.discover() {
            let g = mount.group(record.paths.cgroup)
            if g.exists {
                let stats = Engine.stats(g)
                var cpu = Runtime_V1_CpuUsage(), memory = Runtime_V1_MemoryUsage()
                fill(&cpu, &memory, stats, key: g.directory, now: now)
                s.linux.cpu = cpu
                s.linux.memory = memory
                s.linux.process.timestamp = now
                s.linux.process.processCount.value = stats.pidsCurrent ?? UInt64(Self.processCount(g))
            }
        }
        s.linux.containers = records.all(client.stateDirectory).filter { $0.state == .running }.map { stats(of: $0, in: client) }
        return s
    }

    func fill(_ cpu: inout Runtime_V1_CpuUsage, _ memory: inout Runtime_V1_MemoryUsage, _ st: CgroupStats, key: String, now: Int64) {
        cpu.timestamp = now
        if let usec = st.cpu["usage_usec"] {
            let ns = usec * 1000
            cpu.usageCoreNanoSeconds.value = ns
            // nano cores: the usage since the last sample of this group over the time between.
            if let (t0, u0) = cpuSamples.swap(key, (now, ns)), now > t0, ns >= u0 {
                cpu.usageNanoCores.value = UInt64(Double(ns - u0) / Double(now - t0) * 1e9)
            }
        }
        memory.timestamp = now
        if let ws = st.workingSet { memory.workingSetBytes.value = ws }
        if let cur = st.memoryCurrent {
            memory.usageBytes.value = cur
            if let max = st.memoryMax, max != UInt64.max { memory.availableBytes.value = max > cur ? max - cur : 0 }
        }
        if let anon = st.memoryStat["anon"] { memory.rssBytes.value = anon }
        if let f = st.memoryStat["pgfault"] { memory.pageFaults.value = f }
        if let f = st.memoryStat["pgmajfault"] { memory.majorPageFaults.value = f }
    }

    /// Processes in `g` and every group below it.
    static func processCount(_ g: Cgroup2Group) -> Int {
        var n = (g.read("cgroup.procs") ?? "").split(separator: "\n").count
        for child in (Files.list(g.directory) ?? []) where Files.isDirectory(g.directory + "/" + child) {
            n += processCount(g.mount.group(g.path + "/" + child))
        }
        return n
    }
}

/// The last cpu sample of each cgroup, for CRI's usage_nano_cores (containerd keeps the same).
final class CPUSamples: @unchecked Sendable {  // `samples` only under `m`
    let m = Monitor()
    var samples: [String: (Int64, UInt64)] = [:]

    /// Stores `sample` and returns the one before.
    func swap(_ key: String, _ sample: (Int64, UInt64)) -> (Int64, UInt64)? {
        m.locked {
            let old = samples[key]
            samples[key] = sample
            return old
        }
    }
}
