import GRPCCore

// Pod sandboxes: run, stop, remove, status, list (cri-semantics.md §2). To be translated to
// HuskPod's runtime service; until then each answers UNIMPLEMENTED.
extension RuntimeService {
    func runPodSandbox(request: Runtime_V1_RunPodSandboxRequest, context: ServerContext) async throws -> Runtime_V1_RunPodSandboxResponse {
        throw CRIError.notImplemented("RunPodSandbox")
    }

    func stopPodSandbox(request: Runtime_V1_StopPodSandboxRequest, context: ServerContext) async throws -> Runtime_V1_StopPodSandboxResponse {
        throw CRIError.notImplemented("StopPodSandbox")
    }

    func removePodSandbox(
        request: Runtime_V1_RemovePodSandboxRequest, context: ServerContext
    ) async throws -> Runtime_V1_RemovePodSandboxResponse {
        throw CRIError.notImplemented("RemovePodSandbox")
    }

    func podSandboxStatus(
        request: Runtime_V1_PodSandboxStatusRequest, context: ServerContext
    ) async throws -> Runtime_V1_PodSandboxStatusResponse {
        throw CRIError.notImplemented("PodSandboxStatus")
    }

    func listPodSandbox(request: Runtime_V1_ListPodSandboxRequest, context: ServerContext) async throws -> Runtime_V1_ListPodSandboxResponse {
        throw CRIError.notImplemented("ListPodSandbox")
    }

    func streamPodSandboxes(
        request: Runtime_V1_StreamPodSandboxesRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxesResponse>,
        context: ServerContext
    ) async throws {
        throw CRIError.notImplemented("StreamPodSandboxes")
    }

    func updatePodSandboxResources(
        request: Runtime_V1_UpdatePodSandboxResourcesRequest, context: ServerContext
    ) async throws -> Runtime_V1_UpdatePodSandboxResourcesResponse {
        throw CRIError.notImplemented("UpdatePodSandboxResources")
    }
}
