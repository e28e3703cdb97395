import GRPCCore

// Checkpoint/restore and the container event stream. Until they are written each answers
// UNIMPLEMENTED (kubelet treats an unimplemented GetContainerEvents as "no evented PLEG").
extension RuntimeService {
    func checkpointContainer(
        request: Runtime_V1_CheckpointContainerRequest, context: ServerContext
    ) async throws -> Runtime_V1_CheckpointContainerResponse {
        throw CRIError.notImplemented("CheckpointContainer")
    }

    func checkpointPod(request: Runtime_V1_CheckpointPodRequest, context: ServerContext) async throws -> Runtime_V1_CheckpointPodResponse {
        throw CRIError.notImplemented("CheckpointPod")
    }

    func restorePod(request: Runtime_V1_RestorePodRequest, context: ServerContext) async throws -> Runtime_V1_RestorePodResponse {
        throw CRIError.notImplemented("RestorePod")
    }

    func getContainerEvents(
        request: Runtime_V1_GetEventsRequest, response: RPCWriter<Runtime_V1_ContainerEventResponse>, context: ServerContext
    ) async throws {
        throw CRIError.notImplemented("GetContainerEvents")
    }
}
