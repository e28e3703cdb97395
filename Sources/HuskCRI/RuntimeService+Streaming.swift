import GRPCCore

// ExecSync, and the streaming RPCs that answer with a URL on the streaming server
// (cri-semantics.md §4-§5). Until they are written each answers UNIMPLEMENTED.
extension RuntimeService {
    func execSync(request: Runtime_V1_ExecSyncRequest, context: ServerContext) async throws -> Runtime_V1_ExecSyncResponse {
        throw CRIError.notImplemented("ExecSync")
    }

    func exec(request: Runtime_V1_ExecRequest, context: ServerContext) async throws -> Runtime_V1_ExecResponse {
        throw CRIError.notImplemented("Exec")
    }

    func attach(request: Runtime_V1_AttachRequest, context: ServerContext) async throws -> Runtime_V1_AttachResponse {
        throw CRIError.notImplemented("Attach")
    }

    func portForward(request: Runtime_V1_PortForwardRequest, context: ServerContext) async throws -> Runtime_V1_PortForwardResponse {
        throw CRIError.notImplemented("PortForward")
    }
}
