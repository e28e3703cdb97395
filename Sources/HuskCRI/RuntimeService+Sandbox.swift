import GRPCCore
import HuskJSON
import HuskPod
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

// Pod sandboxes: run, stop, remove, status, list (cri-semantics.md §2, §8). Translation only:
// each sandbox is a keeper + supervisor pair running HuskPod's runtime service
// (`SandboxClient`, `SandboxHost`); lists and statuses come from the records on disk.
extension RuntimeService {
    func runPodSandbox(request: Runtime_V1_RunPodSandboxRequest, context: ServerContext) async throws -> Runtime_V1_RunPodSandboxResponse {
        let c = request.config
        guard c.hasMetadata, !c.metadata.name.isEmpty, !c.metadata.namespace.isEmpty, !c.metadata.uid.isEmpty else {
            throw CRIError.invalidArgument("config.metadata", "name, namespace and uid are required")
        }
        guard request.runtimeHandler.isEmpty || request.runtimeHandler == "runc" else {
            throw RPCError(code: .notFound, message: "no runtime for \"\(request.runtimeHandler)\" is configured")
        }
        let sandbox = try Self.sandboxConfig(c, cgroupParentRoots: config.cgroupParentRoots)
        let settings = config.settings
        let supervisor = config.supervisorCommand
        let handler = request.runtimeHandler
        let name = "\(c.metadata.name)_\(c.metadata.namespace)_\(c.metadata.uid)_\(c.metadata.attempt)"
        let id = PodRuntimeService.newID()
        // containerd reserves `name_namespace_uid_attempt`: a second sandbox of that name is refused.
        try names.reserve(name, for: id, taken: { [settings] in
            SandboxClient.ids(settings).first { other in
                guard let m = try? SandboxClient(settings: settings, id: other).record().config.metadata else { return false }
                return "\(m.name)_\(m.namespace)_\(m.uid)_\(m.attempt)" == name
            }
        })
        defer { names.release(name) }
        try await Blocking.run {
            do {
                _ = try SandboxClient.run(sandbox, id: id, settings: settings, runtimeHandler: handler, supervisor: supervisor)
            } catch {
                throw CRIError.from(error)
            }
        }
        var r = Runtime_V1_RunPodSandboxResponse()
        r.podSandboxID = id
        return r
    }

    /// kubelet's PodSandboxConfig as HuskPod's typed one.
    static func sandboxConfig(_ c: Runtime_V1_PodSandboxConfig, cgroupParentRoots: [String]) throws -> PodSandboxConfig {
        let m = c.metadata
        var s = PodSandboxConfig(metadata: .init(name: m.name, namespace: m.namespace, uid: m.uid, attempt: Int(m.attempt)),
                                 hostname: c.hostname, logDirectory: c.logDirectory)
        if c.hasDnsConfig {
            s.dns = .init(servers: c.dnsConfig.servers, searches: c.dnsConfig.searches, options: c.dnsConfig.options)
        }
        s.portMappings = c.portMappings.map { p in
            let proto: String
            switch p.protocol {
            case .udp: proto = "UDP"
            case .sctp: proto = "SCTP"
            default: proto = "TCP"
            }
            return .init(proto: proto, containerPort: p.containerPort, hostPort: p.hostPort, hostIP: p.hostIp)
        }
        s.labels = c.labels
        s.annotations = c.annotations
        let ns = c.linux.securityContext.namespaceOptions
        func mode(_ field: String, _ m: Runtime_V1_NamespaceMode, allowed: [PodSandboxConfig.NamespaceMode]) throws -> PodSandboxConfig.NamespaceMode {
            let mapped: PodSandboxConfig.NamespaceMode?
            switch m {
            case .pod: mapped = .pod
            case .container: mapped = .container
            case .node: mapped = .node
            default: mapped = nil
            }
            guard let mapped, allowed.contains(mapped) else {
                throw CRIError.invalidArgument("config.linux.security_context.namespace_options.\(field)", "\(m) is not supported for a sandbox")
            }
            return mapped
        }
        s.namespaces = .init(
            network: try mode("network", ns.network, allowed: [.pod, .node]),
            // A sandbox's pid mode CONTAINER means each container its own (kubelet's default).
            pid: try mode("pid", ns.pid, allowed: [.pod, .container, .node]),
            ipc: try mode("ipc", ns.ipc, allowed: [.pod, .node]))
        if ns.hasUsernsOptions {
            s.userNamespace = try Self.userNamespace(ns.usernsOptions, field: "config.linux.security_context.namespace_options.userns_options")
        }
        s.sysctls = c.linux.sysctls
        s.cgroupParent = try CgroupParent.check(c.linux.cgroupParent, roots: cgroupParentRoots, field: "config.linux.cgroup_parent")
        // The pod's limits (kubelet puts them on its pod cgroup, which Husk makes itself).
        if c.linux.hasResources {
            s.resources = try LinuxResources(c.linux.resources).spec()
        }
        return s
    }

    /// CRI `UserNamespace`: NODE is the node's; POD is the pod's own, with kubelet's maps,
    /// which containerd takes as exactly one range each for uids and gids.
    static func userNamespace(_ u: Runtime_V1_UserNamespace, field: String) throws -> PodSandboxConfig.UserNamespace? {
        switch u.mode {
        case .node:
            guard u.uids.isEmpty && u.gids.isEmpty else { throw CRIError.invalidArgument(field, "mode NODE takes no mappings") }
            return nil
        case .pod:
            guard u.uids.count == 1, u.gids.count == 1 else {
                throw CRIError.invalidArgument(field, "mode POD needs exactly one uid and one gid mapping, got \(u.uids.count) and \(u.gids.count)")
            }
            func map(_ m: Runtime_V1_IDMapping) -> Spec.IDMapping { .init(containerID: m.containerID, hostID: m.hostID, size: m.length) }
            let ns = PodSandboxConfig.UserNamespace(uids: u.uids.map(map), gids: u.gids.map(map))
            guard ns.hostRoot != nil else { throw CRIError.invalidArgument(field, "the mappings must map container id 0") }
            for m in ns.uids + ns.gids where m.size == 0 || UInt64(m.hostID) + UInt64(m.size) > UInt64(UInt32.max) {
                throw CRIError.invalidArgument(field, "mapping \(m.containerID) \(m.hostID) \(m.size) is empty or passes the last id")
            }
            return ns
        default:
            throw CRIError.invalidArgument(field, "mode \(u.mode) is not supported for a user namespace (POD or NODE)")
        }
    }

    func stopPodSandbox(request: Runtime_V1_StopPodSandboxRequest, context: ServerContext) async throws -> Runtime_V1_StopPodSandboxResponse {
        guard !request.podSandboxID.isEmpty else { throw CRIError.invalidArgument("pod_sandbox_id", "is empty") }
        // Absent: nothing to stop (containerd and CRI-O answer OK).
        guard let client = try? sandbox(request.podSandboxID) else { return Runtime_V1_StopPodSandboxResponse() }
        try await Blocking.run {
            guard let s = try? client.state(), s.phase != .failed else { return }
            do {
                try client.call("stopPodSandbox", patience: 2)
            } catch {
                // A supervisor that is gone has nothing left running (its keeper gave up);
                // anything else is an error.
                if client.supervisorAlive { throw CRIError.from(error) }
            }
        }
        return Runtime_V1_StopPodSandboxResponse()
    }

    func removePodSandbox(
        request: Runtime_V1_RemovePodSandboxRequest, context: ServerContext
    ) async throws -> Runtime_V1_RemovePodSandboxResponse {
        guard !request.podSandboxID.isEmpty else { throw CRIError.invalidArgument("pod_sandbox_id", "is empty") }
        guard let client = try? sandbox(request.podSandboxID) else { return Runtime_V1_RemovePodSandboxResponse() }
        try await Blocking.run {
            do { try client.remove() } catch { throw CRIError.from(error) }
        }
        return Runtime_V1_RemovePodSandboxResponse()
    }

    func podSandboxStatus(
        request: Runtime_V1_PodSandboxStatusRequest, context: ServerContext
    ) async throws -> Runtime_V1_PodSandboxStatusResponse {
        guard !request.podSandboxID.isEmpty else { throw CRIError.invalidArgument("pod_sandbox_id", "is empty") }
        let client = try sandbox(request.podSandboxID)
        guard let record = try? client.record(), let state = try? client.state() else {
            throw CRIError.notFound("an error occurred when try to find sandbox: not found: \(request.podSandboxID)")
        }
        var r = Runtime_V1_PodSandboxStatusResponse()
        r.status = Self.sandboxStatus(client, record, state)
        if request.verbose {
            let info: JSONValue = .object([
                "pid": .number(Double(state.pausePid)), "phase": .string(state.phase.rawValue),
                "error": state.error.map { .string($0) } ?? .null, "config": record.config.json,
                "stateDirectory": .string(client.stateDirectory),
            ])
            r.info = ["info": info.serialized()]
        }
        return r
    }

    func listPodSandbox(request: Runtime_V1_ListPodSandboxRequest, context: ServerContext) async throws -> Runtime_V1_ListPodSandboxResponse {
        let f = request.filter
        var r = Runtime_V1_ListPodSandboxResponse()
        for id in SandboxClient.ids(config.settings) {
            if request.hasFilter, !f.id.isEmpty, !id.hasPrefix(f.id) { continue }
            let client = SandboxClient(settings: config.settings, id: id)
            guard let record = try? client.record(), let state = try? client.state(), state.phase != .failed else { continue }
            var p = Runtime_V1_PodSandbox()
            p.id = id
            p.metadata = Self.metadata(record.config.metadata)
            p.state = Self.ready(state, client) ? .sandboxReady : .sandboxNotready
            p.createdAt = CRITime.nanoseconds(state.createdAt)
            p.labels = record.config.labels
            p.annotations = record.config.annotations
            p.runtimeHandler = record.runtimeHandler
            if request.hasFilter {
                if f.hasState, f.state.state != p.state { continue }
                if !f.labelSelector.allSatisfy({ p.labels[$0.key] == $0.value }) { continue }
            }
            r.items.append(p)
        }
        return r
    }

    func streamPodSandboxes(
        request: Runtime_V1_StreamPodSandboxesRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxesResponse>,
        context: ServerContext
    ) async throws {
        var list = Runtime_V1_ListPodSandboxRequest()
        if request.hasFilter { list.filter = request.filter }
        let all = try await listPodSandbox(request: list, context: context).items
        try await Paging.write(all, to: response) { part in
            var m = Runtime_V1_StreamPodSandboxesResponse()
            m.podSandboxes = part
            return m
        }
    }

    func updatePodSandboxResources(
        request: Runtime_V1_UpdatePodSandboxResourcesRequest, context: ServerContext
    ) async throws -> Runtime_V1_UpdatePodSandboxResourcesResponse {
        throw CRIError.notImplemented("UpdatePodSandboxResources")
    }

    // MARK: - Helpers

    /// The sandbox of `id`, or of the one sandbox id it is a prefix of (containerd's truncindex).
    func sandbox(_ id: String) throws -> SandboxClient {
        let ids = SandboxClient.ids(config.settings)
        if ids.contains(id) { return SandboxClient(settings: config.settings, id: id) }
        let matches = id.isEmpty ? [] : ids.filter { $0.hasPrefix(id) }
        guard matches.count == 1 else {
            if matches.count > 1 { throw CRIError.invalidArgument("pod_sandbox_id", "\(id) is ambiguous: it is a prefix of \(matches.count) sandboxes") }
            throw CRIError.notFound("an error occurred when try to find sandbox: not found: \(id)")
        }
        return SandboxClient(settings: config.settings, id: matches[0])
    }

    /// READY only while pause runs after a RunPodSandbox that succeeded.
    /// PodSandboxStatus's status, from the records on disk (also for GetContainerEvents).
    static func sandboxStatus(_ client: SandboxClient, _ record: SandboxRecord, _ state: SandboxState) -> Runtime_V1_PodSandboxStatus {
        var s = Runtime_V1_PodSandboxStatus()
        s.id = record.id
        s.metadata = Self.metadata(record.config.metadata)
        s.state = Self.ready(state, client) ? .sandboxReady : .sandboxNotready
        s.createdAt = CRITime.nanoseconds(state.createdAt)
        var net = Runtime_V1_PodSandboxNetworkStatus()
        net.ip = record.config.ownNetwork && state.phase == .ready ? (state.ip ?? "") : ""
        s.network = net
        var options = Runtime_V1_NamespaceOption()
        options.network = Self.mode(record.config.namespaces.network)
        options.pid = Self.mode(record.config.namespaces.pid)
        options.ipc = Self.mode(record.config.namespaces.ipc)
        s.linux.namespaces.options = options
        s.labels = record.config.labels
        s.annotations = record.config.annotations
        s.runtimeHandler = record.runtimeHandler
        return s
    }

    static func ready(_ state: SandboxState, _ client: SandboxClient) -> Bool {
        state.phase == .ready && state.pausePid > 0 && ProcessInfo.isAlive(state.pausePid, startTime: state.pauseStart)
    }

    static func metadata(_ m: PodSandboxConfig.Metadata) -> Runtime_V1_PodSandboxMetadata {
        var x = Runtime_V1_PodSandboxMetadata()
        x.name = m.name
        x.namespace = m.namespace
        x.uid = m.uid
        x.attempt = UInt32(clamping: m.attempt)
        return x
    }

    static func mode(_ m: PodSandboxConfig.NamespaceMode) -> Runtime_V1_NamespaceMode {
        switch m {
        case .pod: return .pod
        case .container: return .container
        case .node: return .node
        }
    }
}

extension LinuxResources {
    /// CRI's message as HuskPod's plain value.
    init(_ r: Runtime_V1_LinuxContainerResources) {
        self.init()
        cpuPeriod = r.cpuPeriod
        cpuQuota = r.cpuQuota
        cpuShares = r.cpuShares
        memoryLimitInBytes = r.memoryLimitInBytes
        memorySwapLimitInBytes = r.memorySwapLimitInBytes
        cpusetCPUs = r.cpusetCpus
        cpusetMems = r.cpusetMems
        for h in r.hugepageLimits { hugepageLimits[h.pageSize] = h.limit }
        unified = r.unified
    }
}

/// Names being reserved by RunPodSandbox calls under way (the records on disk hold the rest).
final class NameReservations: @unchecked Sendable {  // `reserved` only under `m`
    let m = Monitor()
    var reserved: [String: String] = [:]

    func reserve(_ name: String, for id: String, taken: () -> String?) throws {
        try m.locked {
            if let other = reserved[name] ?? taken() {
                throw RPCError(code: .alreadyExists, message: "failed to reserve sandbox name \"\(name)\": name \"\(name)\" is reserved for \"\(other)\"")
            }
            reserved[name] = id
        }
    }

    func release(_ name: String) {
        m.locked { reserved[name] = nil }
    }
}

/// CRI's times: nanoseconds since the epoch.
enum CRITime {
    static func now() -> Int64 {
        let t = Clock.now()
        return Int64(t.sec) * 1_000_000_000 + Int64(t.nsec)
    }

    /// `2026-12-06T16:21:44.123456789Z` (Husk's records) as nanoseconds; 0 for nil or bad text.
    static func nanoseconds(_ text: String?) -> Int64 {
        guard let text, text.count >= 20 else { return 0 }
        let u = Array(text.utf8)
        func num(_ a: Int, _ n: Int) -> Int? {
            var v = 0
            for i in a..<(a + n) {
                guard i < u.count, u[i] >= 48, u[i] <= 57 else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return v
        }
        guard let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2), let h = num(11, 2), let mi = num(14, 2), let s = num(17, 2) else { return 0 }
        var tmv = tm()
        tmv.tm_year = Int32(y - 1900)
        tmv.tm_mon = Int32(mo - 1)
        tmv.tm_mday = Int32(d)
        tmv.tm_hour = Int32(h)
        tmv.tm_min = Int32(mi)
        tmv.tm_sec = Int32(s)
        let secs = Int64(timegm(&tmv))
        var nanos: Int64 = 0
        if u.count > 20, u[19] == UInt8(ascii: ".") {
            var digits = 0
            var i = 20
            while i < u.count, u[i] >= 48, u[i] <= 57, digits < 9 {
                nanos = nanos * 10 + Int64(u[i] - 48)
                digits += 1
                i += 1
            }
            while digits < 9 {
                nanos *= 10
                digits += 1
            }
        }
        return secs * 1_000_000_000 + nanos
    }
}
