import HuskPod
import HuskSPDY
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// kubelet's port-forward protocol (`portforward.k8s.io`, cri-semantics.md §5): per local
/// connection the client opens an error stream and a data stream with the same `port` and
/// `requestID`; the server dials `localhost:<port>` in the pod's network namespace (the
/// node's with hostNetwork), IPv4 then IPv6, and copies both ways, as containerd does.
struct PortForward {
    let conn: SPDYConnection
    let settings: HuskSettings
    let sandbox: String
    /// kubelet gives a pair 30 s to be complete (streamCreationTimeout).
    static let pairTimeout = 30.0

    func serve() {
        var pending: [String: (error: SPDYStream?, data: SPDYStream?, since: Double)] = [:]
        while let s = conn.nextStream(until: nil) {
            let now = Clock.monotonicSeconds()
            for (id, p) in pending where now - p.since > Self.pairTimeout {
                pending[id] = nil
                p.error?.write(Array("timed out waiting for the other stream of request \(id)".utf8))
                p.error?.close()
                p.data?.close()
            }
            // A stream without a usable port or of another type is refused (kubelet RSTs it).
            guard let portText = s.headers["port"], let port = UInt16(portText), port != 0,
                  s.type == "error" || s.type == "data"
            else {
                _ = conn.send(.rstStream(stream: s.id, status: SPDYFrame.protocolError))
                continue
            }
            let requestID = s.headers["requestid"] ?? String(s.type == "error" ? s.id : s.id &- 2)
            var p = pending[requestID] ?? (nil, nil, now)
            if s.type == "error" { p.error = s } else { p.data = s }
            if let error = p.error, let data = p.data {
                pending[requestID] = nil
                let me = self
                Threads.spawn("husk-serve-forward") { me.forward(port: port, error: error, data: data) }
            } else {
                pending[requestID] = p
            }
        }
    }

    func forward(port: UInt16, error: SPDYStream, data: SPDYStream) {
        defer {
            data.close()
            error.close()
        }
        let socket: FD
        do {
            socket = try dial(port)
        } catch let e {
            let message = "error forwarding port \(port) to pod \(sandbox), uid : \(e.message)"
            CRILog.info("husk serve: \(message)")
            error.write(Array(message.utf8))
            return
        }
        // Both directions; when one ends the other gets a second to finish (containerd).
        let group = Pump.Group()
        group.started()
        Threads.spawn("husk-serve-forward-in") {
            while let bytes = data.read() {
                if (try? socket.writeAll(bytes)) == nil { break }
            }
            shutdown(socket.raw, Int32(SHUT_WR))
            group.ended()
        }
        Pump.out(socket, to: data, group: group)
        group.waitForFirst(of: 2)
        group.drain(grace: 1)
    }

    /// A TCP connection to localhost:`port` in the sandbox's network namespace.
    func dial(_ port: UInt16) throws(HuskError) -> FD {
        let client = SandboxClient(settings: settings, id: sandbox)
        var netns: FD? = nil
        let record = try client.record()
        if record.config.ownNetwork {
            let state = try client.state()
            do {
                netns = try FD.open("/proc/\(state.pausePid)/ns/net", O_RDONLY | O_CLOEXEC)
            } catch {
                throw HuskError(.notFound, "the sandbox's network namespace is gone (pause pid \(state.pausePid))")
            }
            // The fd is the pause's namespace only if the pid is still that pause.
            guard ProcessInfo.isAlive(state.pausePid, startTime: state.pauseStart) else {
                throw HuskError(.notFound, "the sandbox's network namespace is gone (pause pid \(state.pausePid) exited)")
            }
        }
        var errors: [String] = []
        for v6 in [false, true] {
            do {
                return try Self.connect(port: port, v6: v6, netns: netns)
            } catch {
                errors.append("dial tcp\(v6 ? 6 : 4) \(v6 ? "[::1]" : "127.0.0.1"):\(port): connect: \(error.errno.text)")
            }
        }
        throw HuskError(.system, "failed to connect to localhost:\(port) inside namespace \"\(sandbox)\", IPv4: \(errors[0]) IPv6 \(errors[1]) ")
    }

    /// A socket made in `netns` (this thread enters it and comes back: a socket stays in the
    /// namespace it was made in), connected to the loopback address.
    static func connect(port: UInt16, v6: Bool, netns: FD?) throws(SystemCallError) -> FD {
        let family = v6 ? AF_INET6 : AF_INET
        let raw: Int32
        if let netns {
            let home = try FD.open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            try Namespaces.join(.network, via: netns)
            raw = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let saved = errno
            // Back home, or this thread must not go on to do anything else.
            if (try? Namespaces.join(.network, via: home)) == nil { pthread_exit(nil) }
            errno = saved
        } else {
            raw = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        guard raw >= 0 else { throw SystemCallError("socket", v6 ? "tcp6" : "tcp4", Errno(rawValue: errno)) }
        let fd = FD(adopting: raw)
        let rc: Int32
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            a.sin6_addr = in6addr_loopback
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(raw, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(raw, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard rc == 0 else { throw SystemCallError("connect", "localhost:\(port)", Errno(rawValue: errno)) }
        return fd
    }
}
