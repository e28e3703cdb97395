import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

extension PodSupervisor {
    // MARK: - Attach (for husk attach and the control socket)

    /// Attaches `conn` to container `name`'s streams: `ready` gets whether it has a terminal,
    /// then the output goes to `conn` in frames (`AttachClient`); with `stdin`, what comes in
    /// on `conn` (after `pending`, read with the request) goes to the container's stdin, whose
    /// end closes it when the container has `stdinOnce`. Returns once the client is done.
    func attach(container name: String?, conn: FD, stdin: Bool, pending: [UInt8], ready: (Bool) -> Void) throws(HuskError) {
        let target = name ?? pod.spec.containers.first?.name ?? ""
        guard let i = m.locked({ state.index(target) }) else { throw HuskError(.notFound, "no container \(target) in pod \(pod.metadata.name)") }
        let c = spec(i)
        guard let h = m.locked({ handles[target] }), h.exit == nil, h.started else {
            throw HuskError(.invalidArgument, "container \(target) is not running")
        }
        if stdin && !c.stdin {
            throw HuskError(.invalidArgument, "container \(target) has no stdin to attach to: its spec does not set stdin: true")
        }
        try runtime.attach(h, conn: conn, stdin: stdin, stdinOnce: c.stdinOnce, pending: pending, ready: ready)
    }

    // MARK: - Exec (for husk exec and the control socket)

    /// Runs `argv` in container `name` (nil: the first app container) with the given stdio;
    /// returns the exit code.
    /// With `tty` the process gets a terminal of the container's own and `started` gets the
    /// pty master (the caller relays it); `started` runs once the process runs.
    public func exec(container name: String?, argv: [String], stdio: [FD?], tty: Bool = false,
                     started: (FD?) -> Void = { _ in }) throws(HuskError) -> Int32 {
        let target = name ?? pod.spec.containers.first?.name ?? ""
        guard let h = m.locked({ handles[target] }), h.exit == nil, h.started else {
            throw HuskError(.invalidArgument, "container \(target) is not running")
        }
        let (p, master) = try runtime.exec(h, argv: argv, stdio: stdio, tty: tty)
        started(master)
        let status = (try? p.pidfd.wait()) ?? .exited(255)
        return status.code
    }
}
