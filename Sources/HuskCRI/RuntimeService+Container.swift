import GRPCCore
import HuskImage
import HuskJSON
import HuskPod
import HuskRuntime
import HuskSystem

// Containers: create, start, stop, remove, status, list, resources, log reopening
// (cri-semantics.md §3, §8). Translation only: each call goes to the container's sandbox
// supervisor (`SandboxClient.call`); lists and statuses come from the records on disk.
extension RuntimeService {
    func createContainer(request: Runtime_V1_CreateContainerRequest, context: ServerContext) async throws -> Runtime_V1_CreateContainerResponse {
        guard !request.podSandboxID.isEmpty else { throw CRIError.invalidArgument("pod_sandbox_id", "is empty") }
        let c = request.config
        guard c.hasMetadata, !c.metadata.name.isEmpty else { throw CRIError.invalidArgument("config.metadata.name", "is empty") }
        guard !c.image.image.isEmpty else { throw CRIError.invalidArgument("config.image.image", "is empty") }
        let client = try sandbox(request.podSandboxID)
        guard let record = try? client.record() else { throw CRIError.notFound("sandbox \(request.podSandboxID) not found") }
        let settings = config.settings
        let id = PodRuntimeService.newID()
        let body = try await Blocking.run { () throws -> JSONValue in
            let store: ImageStore
            let image: ImageRecord
            do {
                store = try ImageStore(root: settings.root)
                guard let found = try store.image(matching: c.image.image) else {
                    throw RPCError(code: .notFound, message: "failed to get image \"\(c.image.image)\": not found (pull it first)")
                }
                image = found
            } catch let e as RPCError {
                throw e
            } catch {
                throw CRIError.from(error)
            }
            var config = ContainerConfig(
                name: c.metadata.name, attempt: Int(c.metadata.attempt), image: image, layers: [],
                logPath: c.logPath.isEmpty ? "/dev/null" : Files.absolute(c.logPath, relativeTo: record.config.logDirectory))
            try Self.fill(&config, from: c, sandbox: record.config)
            var json = config.json
            // What the status reports of the image: as kubelet gave it, and the digest it is.
            if case .object(var o) = json {
                o["criImage"] = .string(c.image.image)
                o["criImageRef"] = .string(image.repoDigests.first ?? image.id.description)
                o["criLogPath"] = .string(c.logPath)
                json = .object(o)
            }
            do {
                try client.call("createContainer", .object(["id": .string(id), "config": json]))
            } catch {
                throw CRIError.from(error)
            }
            return json
        }
        _ = body
        var r = Runtime_V1_CreateContainerResponse()
        r.containerID = id
        return r
    }

    /// containerd's half of CreateContainer that is not the image's: the container's own
    /// settings from CRI's config into HuskPod's typed one.
    static func fill(_ config: inout ContainerConfig, from c: Runtime_V1_ContainerConfig, sandbox: PodSandboxConfig) throws {
        config.command = c.command.isEmpty ? nil : c.command
        config.args = c.args.isEmpty ? nil : c.args
        config.workingDir = c.workingDir.isEmpty ? nil : c.workingDir
        config.envs = c.envs.map { EnvVar($0.key, String(decoding: $0.value, as: UTF8.self)) }
        config.mounts = try c.mounts.enumerated().map { i, m in
            guard m.containerPath.hasPrefix("/") else {
                throw CRIError.invalidArgument("config.mounts[\(i)].container_path", "must be absolute: \"\(m.containerPath)\"")
            }
            var x = ContainerConfig.Mount(containerPath: m.containerPath, hostPath: m.hostPath, readonly: m.readonly)
            switch m.propagation {
            case .propagationHostToContainer: x.propagation = .hostToContainer
            case .propagationBidirectional: x.propagation = .bidirectional
            default: x.propagation = .private
            }
            // containerd makes a missing host path a directory.
            x.createIfMissing = true
            // kubelet's maps for an idmapped mount (every mount of a hostUsers: false pod).
            x.uidMappings = m.uidMappings.map { .init(containerID: $0.containerID, hostID: $0.hostID, size: $0.length) }
            x.gidMappings = m.gidMappings.map { .init(containerID: $0.containerID, hostID: $0.hostID, size: $0.length) }
            return x
        }
        // The container's user namespace is its pod's (containerd refuses any other).
        let ns = c.linux.securityContext.namespaceOptions
        let field = "config.linux.security_context.namespace_options.userns_options"
        let asked = ns.hasUsernsOptions ? try RuntimeService.userNamespace(ns.usernsOptions, field: field) : nil
        if ns.hasUsernsOptions, asked != sandbox.userNamespace {
            throw CRIError.invalidArgument(field, "user namespace config for sandbox is different from container's")
        }
        config.stdin = c.stdin
        config.stdinOnce = c.stdinOnce
        config.tty = c.tty
        config.labels = c.labels
        config.annotations = c.annotations
        if c.linux.hasResources { config.resources = try LinuxResources(c.linux.resources).spec() }
        let sc = c.linux.securityContext
        var sec = ContainerConfig.Security()
        sec.privileged = sc.privileged
        sec.capabilitiesAdd = sc.capabilities.addCapabilities
        sec.capabilitiesDrop = sc.capabilities.dropCapabilities
        if sc.hasRunAsUser { sec.runAsUser = sc.runAsUser.value }
        if sc.hasRunAsGroup {
            // containerd's generateUserString: a group needs a user.
            guard sc.hasRunAsUser || !sc.runAsUsername.isEmpty else {
                throw CRIError.invalidArgument("config.linux.security_context.run_as_group", "user group \"\(sc.runAsGroup.value)\" is specified without user")
            }
            sec.runAsGroup = sc.runAsGroup.value
        }
        // containerd's generateUserString: a user name wins over the uid; it is resolved in
        // the image's /etc/passwd.
        if !sc.runAsUsername.isEmpty { sec.runAsUsername = sc.runAsUsername }
        sec.supplementalGroups = sc.supplementalGroups
        sec.readonlyRootfs = sc.readonlyRootfs
        sec.noNewPrivileges = sc.noNewPrivs
        // Empty lists keep containerd's defaults (kubelet sends them explicitly).
        if !sec.privileged {
            sec.maskedPaths = sc.maskedPaths.isEmpty ? Self.defaultMaskedPaths : sc.maskedPaths
            sec.readonlyPaths = sc.readonlyPaths.isEmpty ? Self.defaultReadonlyPaths : sc.readonlyPaths
        }
        // containerd's generateSeccompSpecOpts: a privileged container has no seccomp filter.
        if sc.privileged {
            sec.seccomp = .unconfined
        } else if sc.hasSeccomp {
            switch sc.seccomp.profileType {
            case .runtimeDefault: sec.seccomp = .runtimeDefault
            case .localhost: sec.seccomp = .localhost(path: sc.seccomp.localhostRef)
            default: sec.seccomp = .unconfined
            }
        } else {
            switch sc.seccompProfilePath {
            case "", "unconfined": sec.seccomp = .unconfined
            case "runtime/default", "docker/default": sec.seccomp = .runtimeDefault
            case let p where p.hasPrefix("localhost/"): sec.seccomp = .localhost(path: String(p.dropFirst("localhost/".count)))
            case let p:
                throw CRIError.invalidArgument("config.linux.security_context.seccomp_profile_path", "unsupported seccomp profile \"\(p)\"")
            }
        }
        // AppArmor: the profile field, else the deprecated path string (containerd).
        if sc.hasApparmor {
            switch sc.apparmor.profileType {
            case .runtimeDefault: sec.apparmor = .runtimeDefault
            case .localhost: sec.apparmor = .localhost(name: String(sc.apparmor.localhostRef.trimmingPrefix("localhost/")))
            default: sec.apparmor = .unconfined
            }
        } else {
            switch sc.apparmorProfile {
            case "": sec.apparmor = .unset
            case "unconfined": sec.apparmor = .unconfined
            case "runtime/default": sec.apparmor = .runtimeDefault
            case let p where p.hasPrefix("localhost/"): sec.apparmor = .localhost(name: String(p.dropFirst("localhost/".count)))
            case let p:
                throw CRIError.invalidArgument("config.linux.security_context.apparmor_profile", "unsupported AppArmor profile \"\(p)\"")
            }
        }
        switch sc.namespaceOptions.pid {
        case .pod:
            guard sandbox.sharedPID else {
                throw CRIError.invalidArgument("config.linux.security_context.namespace_options.pid", "POD, but the sandbox's pid namespace is not shared")
            }
            sec.ownPIDNamespace = false
        case .node: sec.ownPIDNamespace = false
        case .container: sec.ownPIDNamespace = true
        case .target:
            // Another container's pid namespace (containerd's WithPodNamespaces + getTaskPid);
            // the sandbox checks that it runs there.
            guard !sc.namespaceOptions.targetID.isEmpty else {
                throw CRIError.invalidArgument("config.linux.security_context.namespace_options.target_id", "is empty, but pid is TARGET")
            }
            sec.ownPIDNamespace = false
            sec.pidTarget = sc.namespaceOptions.targetID
        default:
            throw CRIError.invalidArgument("config.linux.security_context.namespace_options.pid", "unknown mode \(sc.namespaceOptions.pid.rawValue)")
        }
        config.security = sec
        for (i, d) in c.devices.enumerated() {
            guard d.containerPath.hasPrefix("/"), d.hostPath.hasPrefix("/") else {
                throw CRIError.invalidArgument("config.devices[\(i)]", "container_path and host_path must be absolute")
            }
            guard d.permissions.allSatisfy({ "rwm".contains($0) }) else {
                throw CRIError.invalidArgument("config.devices[\(i)].permissions", "\"\(d.permissions)\" may only contain r, w and m")
            }
            config.devices.append(.init(containerPath: d.containerPath, hostPath: d.hostPath, permissions: d.permissions.isEmpty ? "rwm" : d.permissions))
        }
    }

    static let defaultMaskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi",
    ]
    static let defaultReadonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

    func startContainer(request: Runtime_V1_StartContainerRequest, context: ServerContext) async throws -> Runtime_V1_StartContainerResponse {
        let (client, c) = try container(request.containerID)
        try await call(client, "startContainer", ["id": .string(c.id)])
        return Runtime_V1_StartContainerResponse()
    }

    func stopContainer(request: Runtime_V1_StopContainerRequest, context: ServerContext) async throws -> Runtime_V1_StopContainerResponse {
        let (client, c) = try container(request.containerID)
        guard c.state == .running || c.state == .created else { return Runtime_V1_StopContainerResponse() }
        try await call(client, "stopContainer", ["id": .string(c.id), "timeout": .number(Double(max(0, request.timeout)))])
        return Runtime_V1_StopContainerResponse()
    }

    func removeContainer(request: Runtime_V1_RemoveContainerRequest, context: ServerContext) async throws -> Runtime_V1_RemoveContainerResponse {
        guard !request.containerID.isEmpty else { throw CRIError.invalidArgument("container_id", "is empty") }
        // Absent: already removed (containerd answers OK).
        guard let (client, c) = try? container(request.containerID) else { return Runtime_V1_RemoveContainerResponse() }
        try await call(client, "removeContainer", ["id": .string(c.id)])
        return Runtime_V1_RemoveContainerResponse()
    }

    func listContainers(request: Runtime_V1_ListContainersRequest, context: ServerContext) async throws -> Runtime_V1_ListContainersResponse {
        let f = request.filter
        var r = Runtime_V1_ListContainersResponse()
        let ids = SandboxClient.ids(config.settings)
        records.retain(sandboxes: Set(ids.map { SandboxClient(settings: config.settings, id: $0).stateDirectory }))
        for sid in ids {
            if request.hasFilter, !f.podSandboxID.isEmpty, !sid.hasPrefix(f.podSandboxID) { continue }
            for c in records.all(SandboxClient(settings: config.settings, id: sid).stateDirectory) {
                var x = Runtime_V1_Container()
                x.id = c.id
                x.podSandboxID = sid
                x.metadata = Self.metadata(c)
                x.image.image = c.config["criImage"]?.stringValue ?? ""
                x.imageRef = c.config["criImageRef"]?.stringValue ?? ""
                x.imageID = c.config["image"]?.stringValue ?? ""
                x.state = Self.state(c.state)
                x.createdAt = CRITime.nanoseconds(c.createdAt)
                x.labels = Self.strings(c.config["labels"])
                x.annotations = Self.strings(c.config["annotations"])
                if request.hasFilter {
                    if !f.id.isEmpty, !c.id.hasPrefix(f.id) { continue }
                    if f.hasState, f.state.state != x.state { continue }
                    if !f.labelSelector.allSatisfy({ x.labels[$0.key] == $0.value }) { continue }
                }
                r.containers.append(x)
            }
        }
        return r
    }

    func streamContainers(
        request: Runtime_V1_StreamContainersRequest, response: RPCWriter<Runtime_V1_StreamContainersResponse>, context: ServerContext
    ) async throws {
        var list = Runtime_V1_ListContainersRequest()
        if request.hasFilter { list.filter = request.filter }
        let all = try await listContainers(request: list, context: context).containers
        try await Paging.write(all, to: response) { part in
            var m = Runtime_V1_StreamContainersResponse()
            m.containers = part
            return m
        }
    }

    func containerStatus(request: Runtime_V1_ContainerStatusRequest, context: ServerContext) async throws -> Runtime_V1_ContainerStatusResponse {
        guard !request.containerID.isEmpty else { throw CRIError.invalidArgument("container_id", "is empty") }
        let (client, c) = try container(request.containerID)
        var r = Runtime_V1_ContainerStatusResponse()
        r.status = Self.containerStatus(c)
        if request.verbose {
            let info: JSONValue = .object([
                "sandboxID": .string(client.id), "pid": .number(Double(c.pid)), "config": c.config,
            ])
            r.info = ["info": info.serialized()]
        }
        return r
    }

    func updateContainerResources(
        request: Runtime_V1_UpdateContainerResourcesRequest, context: ServerContext
    ) async throws -> Runtime_V1_UpdateContainerResourcesResponse {
        let (client, c) = try container(request.containerID)
        let files = try LinuxResources(request.linux).cgroupV2()
        try await call(client, "updateContainerResources", [
            "id": .string(c.id), "resources": .object(["unified": .object(files.mapValues { .string($0) })]),
        ])
        return Runtime_V1_UpdateContainerResourcesResponse()
    }

    func reopenContainerLog(
        request: Runtime_V1_ReopenContainerLogRequest, context: ServerContext
    ) async throws -> Runtime_V1_ReopenContainerLogResponse {
        let (client, c) = try container(request.containerID)
        try await call(client, "reopenContainerLog", ["id": .string(c.id)])
        return Runtime_V1_ReopenContainerLogResponse()
    }

    // MARK: - Helpers

    /// The container of `id` (or of the one container id it is a prefix of) and its sandbox.
    func container(_ id: String) throws -> (SandboxClient, SandboxContainer) {
        guard !id.isEmpty else { throw CRIError.invalidArgument("container_id", "is empty") }
        var found: [(SandboxClient, SandboxContainer)] = []
        for sid in SandboxClient.ids(config.settings) {
            let client = SandboxClient(settings: config.settings, id: sid)
            for c in records.all(client.stateDirectory) where c.id.hasPrefix(id) {
                if c.id == id { return (client, c) }
                found.append((client, c))
            }
        }
        guard found.count == 1 else {
            if found.count > 1 { throw CRIError.invalidArgument("container_id", "\(id) is ambiguous: it is a prefix of \(found.count) containers") }
            throw CRIError.notFound("an error occurred when try to find container \"\(id)\": not found")
        }
        return found[0]
    }

    /// A call on a sandbox's supervisor, off the cooperative pool, its errors as gRPC's.
    @discardableResult
    func call(_ client: SandboxClient, _ name: String, _ body: [String: JSONValue]) async throws -> JSONValue {
        try await Blocking.run {
            do {
                return try client.call(name, .object(body))
            } catch {
                throw CRIError.from(error)
            }
        }
    }

    static func metadata(_ c: SandboxContainer) -> Runtime_V1_ContainerMetadata {
        var m = Runtime_V1_ContainerMetadata()
        m.name = c.name
        m.attempt = UInt32(clamping: attempt(c))
        return m
    }

    static func attempt(_ c: SandboxContainer) -> Int {
        guard case .number(let n)? = c.config["attempt"], let i = Int(exactly: n) else { return 0 }
        return i
    }

    /// ContainerStatus's status, from the container's record (also for GetContainerEvents).
    static func containerStatus(_ c: SandboxContainer) -> Runtime_V1_ContainerStatus {
        var s = Runtime_V1_ContainerStatus()
        s.id = c.id
        s.metadata = Self.metadata(c)
        s.state = Self.state(c.state)
        s.createdAt = CRITime.nanoseconds(c.createdAt)
        s.startedAt = CRITime.nanoseconds(c.startedAt)
        s.finishedAt = CRITime.nanoseconds(c.finishedAt)
        s.exitCode = c.exitCode ?? 0
        s.image.image = c.config["criImage"]?.stringValue ?? ""
        s.imageRef = c.config["criImageRef"]?.stringValue ?? ""
        s.imageID = c.config["image"]?.stringValue ?? ""
        s.reason = c.reason ?? ""
        s.message = c.message ?? ""
        s.labels = Self.strings(c.config["labels"])
        s.annotations = Self.strings(c.config["annotations"])
        s.logPath = c.config["logPath"]?.stringValue.flatMap { $0 == "/dev/null" ? nil : $0 } ?? ""
        if case .array(let mounts)? = c.config["mounts"] {
            s.mounts = mounts.map { m in
                var x = Runtime_V1_Mount()
                x.containerPath = m["containerPath"]?.stringValue ?? ""
                x.hostPath = m["hostPath"]?.stringValue ?? ""
                x.readonly = m["readonly"]?.boolValue ?? false
                switch m["propagation"]?.stringValue {
                case "hostToContainer"?: x.propagation = .propagationHostToContainer
                case "bidirectional"?: x.propagation = .propagationBidirectional
                default: x.propagation = .propagationPrivate
                }
                return x
            }
        }
        return s
    }

    static func state(_ s: ContainerRuntimeStatus.State) -> Runtime_V1_ContainerState {
        switch s {
        case .created: return .containerCreated
        case .running: return .containerRunning
        case .exited: return .containerExited
        case .unknown: return .containerUnknown
        }
    }

    static func strings(_ v: JSONValue?) -> [String: String] {
        guard case .object(let o)? = v else { return [:] }
        return o.compactMapValues(\.stringValue)
    }
}
