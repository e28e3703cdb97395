import HuskJSON
import HuskPod
import HuskSPDY
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

// What runs on an upgraded connection (cri-semantics.md §5): kubelet's remotecommand server
// for Exec and Attach (streams error, stdin, stdout, stderr, resize; the status on the error
// stream) and its port-forward server. The process side is the sandbox's supervisor: exec
// gets pipes (or hands back a terminal), attach gets the container's output in frames.

/// How an exec or attach ended, as the error stream reports it.
enum RemoteOutcome: Equatable {
    case exited(Int32, cmd: [String])
    case attached
    case failed(String)
}

struct RemoteCommand {
    let conn: SPDYConnection
    let proto: String
    let options: StreamOptions
    /// kubelet waits 30 s for the client's streams (streamCreationTimeout).
    static let streamTimeout = 30.0

    /// 4 for v4.channel.k8s.io ... 1 for channel.k8s.io.
    var version: Int {
        proto.first.flatMap { $0 == "v" ? Int(String(proto.dropFirst().prefix { $0.isNumber })) : nil } ?? 1
    }

    /// The client's streams by type, once all it must open are there; nil when they do not come
    /// in time.
    func streams() -> [String: SPDYStream]? {
        let o = options
        let expected = 1 + (o.stdin ? 1 : 0) + (o.stdout ? 1 : 0) + (o.stderr ? 1 : 0) + (o.tty && version >= 3 ? 1 : 0)
        var got: [String: SPDYStream] = [:]
        let deadline = Clock.monotonicSeconds() + Self.streamTimeout
        while got.count < expected {
            guard let s = conn.nextStream(until: deadline) else { return nil }
            if ["error", "stdin", "stdout", "stderr", "resize"].contains(s.type) { got[s.type] = s }
        }
        return got
    }

    /// Ends the session: the output streams close, the status goes on the error stream (v4: a
    /// metav1.Status as JSON; before: the message on failure only), then the connection.
    func finish(_ s: [String: SPDYStream], _ outcome: RemoteOutcome) {
        s["stdout"]?.close()
        s["stderr"]?.close()
        if let e = s["error"] {
            if let text = Self.status(outcome, version: version) { e.write(Array(text.utf8)) }
            e.close()
        }
        conn.close()
    }

    static func status(_ outcome: RemoteOutcome, version: Int) -> String? {
        let status: JSONValue
        switch outcome {
        case .exited(0, _), .attached:
            guard version >= 4 else { return nil }
            status = .object(["metadata": .object([:]), "status": .string("Success")])
        case .exited(let code, let cmd):
            // containerd's CodeExitError inside kubelet's "command terminated" message.
            let message = "command terminated with non-zero exit code: error executing command [\(cmd.joined(separator: " "))], exit code \(code)"
            guard version >= 4 else { return message }
            status = .object([
                "metadata": .object([:]), "status": .string("Failure"), "message": .string(message),
                "reason": .string("NonZeroExitCode"),
                "details": .object(["causes": .array([.object(["reason": .string("ExitCode"), "message": .string("\(code)")])])]),
            ])
        case .failed(let why):
            let message = "Internal error occurred: error executing command in container: \(why)"
            guard version >= 4 else { return message }
            status = .object([
                "metadata": .object([:]), "status": .string("Failure"), "message": .string(message),
                "reason": .string("InternalError"),
                "details": .object(["causes": .array([.object(["message": .string("error executing command in container: \(why)")])])]),
                "code": .number(500),
            ])
        }
        return status.serialized()
    }
}

/// Copies between fds and streams on threads of their own.
enum Pump {
    /// A flag the output pumps check between polls.
    final class Group: @unchecked Sendable {  // under `m`
        private let m = Monitor()
        private var running = 0
        private var stopped = false

        var isStopped: Bool { m.locked { stopped } }

        func started() { m.locked { running += 1 } }

        func ended() {
            m.locked {
                running -= 1
                m.broadcast()
            }
        }

        /// Waits until one of the `count` pumps started has ended.
        func waitForFirst(of count: Int) {
            _ = m.wait(for: { running < count })
        }

        /// Waits for the pumps to reach the end of their input, `grace` seconds at most, then
        /// stops those still going.
        func drain(grace: Double) {
            _ = m.wait(for: { running == 0 }, until: Clock.monotonicSeconds() + grace)
            m.locked { stopped = true }
            _ = m.wait(for: { running == 0 }, until: Clock.monotonicSeconds() + 1)
        }
    }

    /// `fd`'s bytes to `stream` until its end (EOF, or EIO from a pty master whose terminal
    /// closed), then FIN.
    static func out(_ fd: FD, to stream: SPDYStream, group: Group) {
        group.started()
        Threads.spawn("husk-serve-out") {
            defer { group.ended() }
            var buf = [UInt8](repeating: 0, count: 32 << 10)
            while !group.isStopped {
                var p = pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)
                let r = poll(&p, 1, 100)
                if r == 0 || (r < 0 && errno == EINTR) { continue }
                let n = buf.withUnsafeMutableBytes { read(fd.raw, $0.baseAddress, $0.count) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 { break }
                if !stream.write(Array(buf[0..<n])) { break }
            }
            stream.close()
        }
    }

    /// The client's bytes on `stream` to `fd` until the client closes its side; then this
    /// reference to `fd` goes (the last one of a pipe: the process sees EOF).
    static func into(_ fd: FD, from stream: SPDYStream) {
        Threads.spawn("husk-serve-in") {
            while let data = stream.read() {
                if (try? fd.writeAll(data)) == nil { break }
            }
        }
    }

    /// Window sizes from the resize stream (back-to-back `{"Width":W,"Height":H}`) onto the
    /// terminal `master`.
    static func resize(_ stream: SPDYStream, master: FD) {
        sizes(stream) { w, h in try? Terminal.setWindowSize(.init(rows: h, columns: w), of: master.raw) }
    }

    /// Each size the resize stream carries, to `apply` (width, height), on a thread of its own.
    static func sizes(_ stream: SPDYStream, _ apply: @escaping @Sendable (UInt16, UInt16) -> Void) {
        Threads.spawn("husk-serve-resize") {
            var buf: [UInt8] = []
            while let data = stream.read() {
                buf += data
                while let end = buf.firstIndex(of: UInt8(ascii: "}")) {
                    let object = buf[...end]
                    buf.removeSubrange(...end)
                    guard let v = try? JSONParser.parse(object), case .number(let w)? = v["Width"], case .number(let h)? = v["Height"],
                          (0...65535).contains(w), (0...65535).contains(h)
                    else { continue }
                    apply(UInt16(w), UInt16(h))
                }
            }
        }
    }
}

/// The sessions, by request.
struct StreamSessions: Sendable {
    let settings: HuskSettings

    /// How long the output of an exec may go on after its process ended (a child it left
    /// behind holding the pipe); then the streams close.
    static let drainGrace = 2.0

    func run(_ request: StreamRequest, proto: String, conn: SPDYConnection) {
        switch request {
        case .exec(let sandbox, let container, let cmd, let options):
            let rc = RemoteCommand(conn: conn, proto: proto, options: options)
            guard let streams = rc.streams() else { return conn.close() }
            let client = PodClient(socket: SandboxClient(settings: settings, id: sandbox).socket)
            let outcome = options.tty
                ? execTerminal(client, container, cmd, streams)
                : execPipes(client, container, cmd, streams)
            rc.finish(streams, outcome)
        case .attach(let sandbox, let container, let options):
            let rc = RemoteCommand(conn: conn, proto: proto, options: options)
            guard let streams = rc.streams() else { return conn.close() }
            let client = PodClient(socket: SandboxClient(settings: settings, id: sandbox).socket)
            rc.finish(streams, attach(client, container, options, streams, conn, sandbox: SandboxClient(settings: settings, id: sandbox)))
        case .portForward(let sandbox):
            PortForward(conn: conn, settings: settings, sandbox: sandbox).serve()
        }
    }

    func execPipes(_ client: PodClient, _ container: String, _ cmd: [String], _ s: [String: SPDYStream]) -> RemoteOutcome {
        let group = Pump.Group()
        var child: [FD] = []
        do {
            let null = try FD.open("/dev/null", O_RDWR)
            if let stdin = s["stdin"] {
                let (r, w) = try makePipe()
                child.append(r)
                Pump.into(w, from: stdin)
            } else {
                child.append(null)
            }
            for name in ["stdout", "stderr"] {
                if let stream = s[name] {
                    let (r, w) = try makePipe()
                    child.append(w)
                    Pump.out(r, to: stream, group: group)
                } else {
                    child.append(null)
                }
            }
        } catch {
            return .failed("cannot make the exec's pipes: \(error)")
        }
        let outcome: RemoteOutcome
        do {
            outcome = .exited(try client.exec(container: container, argv: cmd, stdio: child.map { $0.raw }), cmd: cmd)
        } catch {
            outcome = .failed(error.message)
        }
        child = []  // our copies of the process's ends: the pumps see EOF once it (and its children) are done
        _ = child
        group.drain(grace: Self.drainGrace)
        return outcome
    }

    func execTerminal(_ client: PodClient, _ container: String, _ cmd: [String], _ s: [String: SPDYStream]) -> RemoteOutcome {
        let terminal: ExecTerminal
        do {
            terminal = try client.execTerminal(container: container, argv: cmd)
        } catch {
            return .failed(error.message)
        }
        let group = Pump.Group()
        if let stdout = s["stdout"] { Pump.out(terminal.master, to: stdout, group: group) }
        if let stdin = s["stdin"] { Pump.into(terminal.master, from: stdin) }
        if let resize = s["resize"] { Pump.resize(resize, master: terminal.master) }
        let code = terminal.exitCode()
        group.drain(grace: Self.drainGrace)
        guard let code else { return .failed("the pod's supervisor ended before the command did") }
        return .exited(code, cmd: cmd)
    }

    func attach(_ client: PodClient, _ container: String, _ o: StreamOptions, _ s: [String: SPDYStream], _ spdy: SPDYConnection,
                sandbox: SandboxClient) -> RemoteOutcome {
        let attachment: Attachment
        do {
            attachment = try client.attach(container: container, stdin: o.stdin)
        } catch {
            return .failed(error.message)
        }
        let conn = attachment.connection
        if let stdin = s["stdin"] {
            Threads.spawn("husk-serve-in") {
                while let data = stdin.read() {
                    if (try? conn.writeAll(data)) == nil { break }
                }
                shutdown(conn.raw, Int32(SHUT_WR))  // the end of the client's input: stdinOnce closes the container's
            }
        }
        // The container's terminal is the supervisor's: sizes go there.
        if let resize = s["resize"] {
            Pump.sizes(resize) { width, height in
                _ = try? sandbox.call("resizeTerminal", .object(["id": .string(container), "width": .number(Double(width)), "height": .number(Double(height))]))
            }
        }
        var inbuf: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 32 << 10)
        // Until the container ends, or the client goes.
        while !spdy.isClosed {
            var p = pollfd(fd: conn.raw, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, 200)
            if r == 0 || (r < 0 && errno == EINTR) { continue }
            let n = buf.withUnsafeMutableBytes { read(conn.raw, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            inbuf += buf[0..<n]
            for frame in AttachFrame.take(from: &inbuf) {
                switch frame {
                case .output(let stream, let data):
                    // A terminal has one output stream: stdout.
                    let target = stream == 2 && !attachment.tty ? s["stderr"] : s["stdout"]
                    if !data.isEmpty { target?.write(data) }
                case .exit:
                    return .attached
                }
            }
        }
        return .attached
    }
}
