import Foundation
import GRPCCore
import HuskJSON
import HuskPod

// ExecSync, and the streaming RPCs that answer with a URL on the streaming server
// (cri-semantics.md §4-§5). The streaming server is not written yet: Exec, Attach and
// PortForward answer UNIMPLEMENTED.
extension RuntimeService {
    /// ExecSync in the container's sandbox supervisor: stdout and stderr apart (16 MiB each
    /// at most), a non-zero exit is a normal reply; past the timeout the command is killed and
    /// the call fails with DEADLINE_EXCEEDED, as containerd's.
    func execSync(request: Runtime_V1_ExecSyncRequest, context: ServerContext) async throws -> Runtime_V1_ExecSyncResponse {
        guard !request.cmd.isEmpty else { throw CRIError.invalidArgument("cmd", "is empty") }
        let (client, c) = try container(request.containerID)
        guard c.state == .running else {
            throw RPCError(code: .failedPrecondition, message: "container \(c.id) is not running")
        }
        let v = try await call(client, "execSync", [
            "id": .string(c.id), "argv": .array(request.cmd.map { .string($0) }), "timeout": .number(Double(max(0, request.timeout))),
        ])
        if v["timedOut"]?.boolValue == true {
            throw RPCError(code: .deadlineExceeded, message: "timeout \(request.timeout)s exceeded: context deadline exceeded")
        }
        var r = Runtime_V1_ExecSyncResponse()
        r.stdout = Data(v["stdout"]?.stringValue.flatMap(Base64.decode) ?? [])
        r.stderr = Data(v["stderr"]?.stringValue.flatMap(Base64.decode) ?? [])
        if case .number(let n)? = v["exitCode"] { r.exitCode = Int32(n) }
        return r
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
