import GRPCCore

// Containers: create, start, stop, remove, status, list, resources, log reopening
// (cri-semantics.md §3). To be translated to HuskPod's runtime service; until then each
// answers UNIMPLEMENTED.
extension RuntimeService {
    func createContainer(request: Runtime_V1_CreateContainerRequest, context: ServerContext) async throws -> Runtime_V1_CreateContainerResponse {
        throw CRIError.notImplemented("CreateContainer")
    }

    func startContainer(request: Runtime_V1_StartContainerRequest, context: ServerContext) async throws -> Runtime_V1_StartContainerResponse {
        throw CRIError.notImplemented("StartContainer")
    }

    func stopContainer(request: Runtime_V1_StopContainerRequest, context: ServerContext) async throws -> Runtime_V1_StopContainerResponse {
        throw CRIError.notImplemented("StopContainer")
    }

    func removeContainer(request: Runtime_V1_RemoveContainerRequest, context: ServerContext) async throws -> Runtime_V1_RemoveContainerResponse {
        throw CRIError.notImplemented("RemoveContainer")
    }

    func listContainers(request: Runtime_V1_ListContainersRequest, context: ServerContext) async throws -> Runtime_V1_ListContainersResponse {
        throw CRIError.notImplemented("ListContainers")
    }

    func streamContainers(
        request: Runtime_V1_StreamContainersRequest, response: RPCWriter<Runtime_V1_StreamContainersResponse>, context: ServerContext
    ) async throws {
        throw CRIError.notImplemented("StreamContainers")
    }

    func containerStatus(request: Runtime_V1_ContainerStatusRequest, context: ServerContext) async throws -> Runtime_V1_ContainerStatusResponse {
        throw CRIError.notImplemented("ContainerStatus")
    }

    func updateContainerResources(
        request: Runtime_V1_UpdateContainerResourcesRequest, context: ServerContext
    ) async throws -> Runtime_V1_UpdateContainerResourcesResponse {
        throw CRIError.notImplemented("UpdateContainerResources")
    }

    func reopenContainerLog(
        request: Runtime_V1_ReopenContainerLogRequest, context: ServerContext
    ) async throws -> Runtime_V1_ReopenContainerLogResponse {
        throw CRIError.notImplemented("ReopenContainerLog")
    }
}
