import GRPCCore
import HuskJSON
import HuskPod
import HuskSystem

/// CRI's RuntimeService: translation only, CRI messages <-> Husk's runtime service (DESIGN §2).
/// This file has what needs no pod: Version, Status, RuntimeConfig, UpdateRuntimeConfig. The
/// pod RPCs are in one file per area (`RuntimeService+Sandbox.swift`, `+Container.swift`,
/// `+Streaming.swift`, `+Stats.swift`, `+Checkpoint.swift`).
final class RuntimeService: Runtime_V1_RuntimeService.SimpleServiceProtocol {
    let config: CRIConfiguration
    /// Sandbox names being reserved by RunPodSandbox calls under way.
    let names = NameReservations()
    /// The last cpu sample of each cgroup (ContainerStats' usage_nano_cores).
    let cpuSamples = CPUSamples()
    /// Exec, Attach and PortForward hand out URLs on it.
    let streams: StreamServer
    /// GetContainerEvents' source: the records' changes.
    let events: ContainerEvents
    /// The container records, parsed once per change of their files.
    let records = ContainerRecordCache()

    init(config: CRIConfiguration, streams: StreamServer) {
        self.config = config
        self.streams = streams
        events = ContainerEvents(settings: config.settings)
    }

    // MARK: - GetContainerEvents

    /// The events of every sandbox and container from now on, until the client goes.
    func getContainerEvents(
        request: Runtime_V1_GetEventsRequest, response: RPCWriter<Runtime_V1_ContainerEventResponse>, context: ServerContext
    ) async throws {
        let (id, stream) = events.subscribe()
        let events = self.events
        // gRPC does not cancel the handler's task when the client goes or the server stops: it
        // calls this handler, which ends the stream.
        try await withRPCCancellationHandler {
            for await event in stream {
                try await response.write(event)
            }
        } onCancelRPC: {
            events.unsubscribe(id)
        }
    }

    // MARK: - Version

    /// The CRI version kubelet insists on (it refuses to start on any other).
    static let criVersion = "0.1.0"

    func version(request: Runtime_V1_VersionRequest, context: ServerContext) async throws -> Runtime_V1_VersionResponse {
        var r = Runtime_V1_VersionResponse()
        r.version = Self.criVersion
        r.runtimeName = "husk"
        r.runtimeVersion = config.runtimeVersion
        // Also for calls that came in as runtime.v1alpha2: the messages are the same.
        r.runtimeApiVersion = "v1"
        return r
    }

    // MARK: - Status

    func status(request: Runtime_V1_StatusRequest, context: ServerContext) async throws -> Runtime_V1_StatusResponse {
        let settings = config.settings
        let cni = try await Blocking.run { () -> Result<CNI?, HuskError> in
            do throws(HuskError) { return .success(try CNI.load(settings: settings)) } catch { return .failure(error) }
        }
        var runtimeReady = Runtime_V1_RuntimeCondition()
        runtimeReady.type = "RuntimeReady"
        runtimeReady.status = true
        // As containerd: ready once a CNI network config loads from the conf dir. Without one
        // pods would get loopback only, which kubelet must not take for a pod network.
        var networkReady = Runtime_V1_RuntimeCondition()
        networkReady.type = "NetworkReady"
        let cniStatus: String
        switch cni {
        case .success(.some):
            networkReady.status = true
            cniStatus = "OK"
        case .success(.none):
            networkReady.reason = "NetworkPluginNotReady"
            networkReady.message = "Network plugin returns error: cni plugin not initialized"
            cniStatus = "cni plugin not initialized: no network config in \(settings.cniConfDir)"
        case .failure(let e):
            networkReady.reason = "NetworkPluginNotReady"
            networkReady.message = "Network plugin returns error: \(e)"
            cniStatus = "\(e)"
        }
        var r = Runtime_V1_StatusResponse()
        r.status.conditions = [runtimeReady, networkReady]
        // The default handler (""), and nothing claimed that Husk does not do.
        var handler = Runtime_V1_RuntimeHandler()
        handler.name = ""
        handler.features = Runtime_V1_RuntimeHandlerFeatures()
        // Pods with their own user namespace (mode POD, idmapped mounts): kubelet asks first.
        handler.features.userNamespaces = true
        r.runtimeHandlers = [handler]
        r.features = Runtime_V1_RuntimeFeatures()
        if request.verbose {
            // Every value is a JSON document, as `crictl info` expects.
            var settingsJSON = settings.json
            if case .object(var o) = settingsJSON {
                o["listen"] = .string(config.socketPath)
                settingsJSON = .object(o)
            }
            var cniConfig = JSONValue.null
            if case .success(let loaded?) = cni {
                cniConfig = .object(["file": .string(loaded.file), "config": loaded.config, "binDirs": .array(loaded.binDirs.map { JSONValue.string($0) })])
            }
            r.info = [
                "config": settingsJSON.serialized(),
                "cniconfig": cniConfig.serialized(),
                "lastCNILoadStatus": JSONValue.string(cniStatus).serialized(),
            ]
        }
        return r
    }

    // MARK: - Runtime configuration

    func runtimeConfig(request: Runtime_V1_RuntimeConfigRequest, context: ServerContext) async throws -> Runtime_V1_RuntimeConfigResponse {
        // Husk writes cgroup files itself (no systemd units): kubelet must use cgroupfs too.
        var r = Runtime_V1_RuntimeConfigResponse()
        r.linux.cgroupDriver = .cgroupfs
        return r
    }

    func updateRuntimeConfig(
        request: Runtime_V1_UpdateRuntimeConfigRequest, context: ServerContext
    ) async throws -> Runtime_V1_UpdateRuntimeConfigResponse {
        // kubelet sends the node's pod CIDR here. Husk does nothing with it: pod addresses come
        // from the CNI config in --cni-conf-dir as written (containerd likewise ignores the
        // CIDR unless a CNI config template is configured, and Husk has no templates). Nothing
        // is stored, so nothing claims otherwise; the CIDR is only logged.
        let cidr = request.runtimeConfig.networkConfig.podCidr
        if !cidr.isEmpty {
            CRILog.info("UpdateRuntimeConfig: pod CIDR \(cidr) received; unused (pod addresses come from the CNI config)")
        }
        return Runtime_V1_UpdateRuntimeConfigResponse()
    }
}
