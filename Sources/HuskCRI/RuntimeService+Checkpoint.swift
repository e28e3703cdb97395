import GRPCCore

// Checkpoint/restore: Husk cannot checkpoint (no CRIU integration), so each answers
// UNIMPLEMENTED with that said.
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
}
