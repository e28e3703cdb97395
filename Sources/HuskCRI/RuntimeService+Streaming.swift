import Foundation
import GRPCCore
import HuskJSON
import HuskPod

// ExecSync, and the streaming RPCs that answer with a one-time URL on the streaming server
// (cri-semantics.md §4-§5, Streaming/).
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

    /// Exec: a URL for kubelet's remotecommand protocol, for a running container.
    func exec(request: Runtime_V1_ExecRequest, context: ServerContext) async throws -> Runtime_V1_ExecResponse {
        guard !request.cmd.isEmpty else { throw CRIError.invalidArgument("cmd", "is empty") }
        let options = try Self.streamOptions(request.stdin, request.stdout, request.stderr, request.tty)
        let (client, c) = try container(request.containerID)
        guard c.state == .running else {
            throw RPCError(code: .failedPrecondition, message: "container \(c.id) is not running")
        }
        var r = Runtime_V1_ExecResponse()
        r.url = try streams.url(for: .exec(sandbox: client.id, container: c.id, cmd: request.cmd, options))
        return r
    }

    /// Attach: a URL for kubelet's remotecommand protocol on a running container's streams.
    func attach(request: Runtime_V1_AttachRequest, context: ServerContext) async throws -> Runtime_V1_AttachResponse {
        let options = try Self.streamOptions(request.stdin, request.stdout, request.stderr, request.tty)
        let (client, c) = try container(request.containerID)
        guard c.state == .running else {
            throw RPCError(code: .failedPrecondition, message: "container \(c.id) is not running")
        }
        var r = Runtime_V1_AttachResponse()
        r.url = try streams.url(for: .attach(sandbox: client.id, container: c.id, options))
        return r
    }

    /// PortForward: a URL for kubelet's port-forward protocol into a ready sandbox's network.
    func portForward(request: Runtime_V1_PortForwardRequest, context: ServerContext) async throws -> Runtime_V1_PortForwardResponse {
        guard !request.podSandboxID.isEmpty else { throw CRIError.invalidArgument("pod_sandbox_id", "is empty") }
        let client = try sandbox(request.podSandboxID)
        let state = try await Blocking.run { try client.state() }
        guard Self.ready(state, client) else {
            throw RPCError(code: .failedPrecondition, message: "sandbox \(client.id) is not ready")
        }
        var r = Runtime_V1_PortForwardResponse()
        r.url = try streams.url(for: .portForward(sandbox: client.id))
        return r
    }

    /// The streaming server's checks of a request (kubelet's streaming server.go).
    static func streamOptions(_ stdin: Bool, _ stdout: Bool, _ stderr: Bool, _ tty: Bool) throws -> StreamOptions {
        guard stdin || stdout || stderr else {
            throw CRIError.invalidArgument("stdin", "one of stdin, stdout, or stderr must be set")
        }
        guard !(tty && stderr) else { throw CRIError.invalidArgument("tty", "tty and stderr cannot both be true") }
        return StreamOptions(stdin: stdin, stdout: stdout, stderr: stderr, tty: tty)
    }
}
