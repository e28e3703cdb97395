import CShim
import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor process of one pod (`husk supervise STATE_DIR`, DESIGN §3): started
/// detached by `husk run`, a child subreaper and the parent of the pod's processes. It runs
/// the controller, records every exit in status.json and serves the control socket. It ends
/// when the pod has finished and everything of it is stopped.
///
/// It is kept small: no Dispatch, no Swift concurrency, no Codable, no YAML at run time.
public enum SupervisorMain {
    public static func run(stateDirectory: String) -> Never {
        // Before any thread exists, so that every thread inherits the mask (the signals are
        // read from a signalfd on the loop).
        var signals: [Int32] = [SIGCHLD, SIGTERM, SIGINT, SIGHUP]
        let sfd = cshim_signalfd_for(&signals, Int32(signals.count))
        signal(SIGPIPE, SIG_IGN)
        _ = cshim_set_child_subreaper(1)
        umask(0o022)
        _ = chdir("/")
        let keeper = KeeperLink.fromEnvironment()
        let record: PodRecord
        let loop: EventLoop
        do {
            record = try PodRecord.read(stateDirectory + "/pod.json")
            loop = try EventLoop()
        } catch {
            fail("husk supervise: \(error)")
        }
        let supervisor = PodSupervisor(record: record, loop: loop, keeper: keeper)
        // A supervisor before this one got as far as running the pod: this one takes over.
        var previous: PodState? = nil
        if let bytes = (try? Files.read(supervisor.paths.statusJSON)) ?? nil, let doc = try? JSONParser.parse(bytes),
           let (s, _) = try? PodState.read(doc), s.startTime != nil {
            if s.finished { exit(0) }  // it finished the pod and died before it exited
            previous = s
        }
        try? Files.writeAtomically(supervisor.paths.supervisorPid, Array("\(getpid())\n".utf8), mode: 0o600)
        if sfd >= 0 {
            loop.add(sfd) { _ in
                while true {
                    let sig = cshim_signalfd_read(sfd)
                    if sig < 0 { break }
                    switch sig {
                    case SIGCHLD: reap(loop)
                    case SIGTERM, SIGINT: supervisor.requestStop(grace: nil)
                    default: break  // SIGHUP: the terminal that started us went away
                    }
                }
            }
        }
        let server: ControlServer
        do {
            server = try ControlServer(path: supervisor.paths.socket, supervisor: supervisor)
        } catch {
            fail("husk supervise: \(error)")
        }
        // Idle for a second: the code pages this burst used go back to the page cache (shared
        // by every supervisor); the next event maps what it needs again.
        loop.whenIdle(after: 1) { ResidentMemory.trimExecutableCode() }
        if let previous { supervisor.recover(previous) }
        Threads.spawn("control") { server.serve() }
        Threads.spawn("controller") {
            supervisor.runController()
            server.close()
            exit(0)
        }
        loop.run()
    }

    /// Orphans inherited as subreaper are reaped; the pod's own processes are left to the
    /// pidfds that watch them.
    static func reap(_ loop: EventLoop) {
        if !Children.reapOrphans() {
            loop.after(0.05) { reap(loop) }
        }
    }

    static func fail(_ message: String) -> Never {
        let line = Array((message + "\n").utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(1)
    }
}

/// The supervisor's control socket: a path socket in the pod's 0700 state directory, for
/// root only. One JSON request per connection, one JSON reply:
///  - `{"op":"stop","grace":N}` → `{"ok":true}` (the stop goes on; status.json tells when done)
///  - `{"op":"exec","container":"c","argv":[...]}` with three fds (stdin, stdout, stderr) as
///    SCM_RIGHTS → `{"exitCode":N}` when the process ended, or `{"error":"..."}`;
///    with `"tty":true` and no fds: first `{"tty":true}` with the pty master (a terminal of
///    the container's own), then `{"exitCode":N}`;
///  - `{"op":"attach","container":"c","stdin":B}` → `{"attached":true,"tty":B}`, then the
///    container's output in frames (`AttachClient`) until it ends; with stdin, what the client
///    sends after its request goes to the container's stdin.
final class ControlServer: @unchecked Sendable {  // the listening fd is read-only after init
    let path: String
    let fd: CInt
    let supervisor: PodSupervisor

    init(path: String, supervisor: PodSupervisor) throws(HuskError) {
        self.path = path
        self.supervisor = supervisor
        unlink(path)
        fd = cshim_unix_listen(path, 16)
        guard fd >= 0 else { throw HuskError(.system, "cannot listen on \(path): \(currentErrno.text)") }
        chmod(path, 0o600)
    }

    func close() {
        unlink(path)
    }

    func serve() {
        while true {
            let c = cshim_accept(fd)
            if c < 0 {
                if errno == ECONNABORTED { continue }
                usleep(10_000)
                continue
            }
            let conn = FD(adopting: c)
            // Only root (and our own uid) may drive a pod.
            let uid = cshim_peer_uid(c)
            guard uid == 0 || uid_t(uid) == geteuid() else { continue }
            Threads.spawn("request") { [self] in handle(conn) }
        }
    }

    func handle(_ conn: FD) {
        var buf = [UInt8](repeating: 0, count: 65536)
        var fds = [CInt](repeating: -1, count: 8)
        var nfds: Int32 = 0
        var request: [UInt8] = []
        var received: [FD] = []
        while !request.contains(10) && request.count < 1 << 20 {
            let n = buf.withUnsafeMutableBytes { cshim_recv_with_fds(conn.raw, $0.baseAddress!, UInt($0.count), &fds, &nfds) }
            if n <= 0 { break }
            for k in 0..<Int(nfds) { received.append(FD(adopting: fds[k])) }
            request += buf[0..<n]
        }
        let reply: JSONValue
        do {
            let doc = try JSONParser.parse(request.prefix { $0 != 10 })
            if doc["op"]?.stringValue == "attach" {
                // The connection stays: output frames out, stdin in.
                let pending = Array(request.drop { $0 != 10 }.dropFirst())
                do {
                    try supervisor.attach(container: doc["container"]?.stringValue, conn: conn,
                                          stdin: doc["stdin"]?.boolValue ?? false, pending: pending) { tty in
                        try? conn.writeAll(Array((JSONValue.object(["attached": .bool(true), "tty": .bool(tty)]).serialized() + "\n").utf8))
                    }
                } catch {
                    try? conn.writeAll(Array((JSONValue.object(["error": .string(error.message)]).serialized() + "\n").utf8))
                }
                return
            }
            reply = perform(doc, fds: received) { interim, fds in
                // A first message before the reply (a terminal's master for exec -t).
                let bytes = Array((interim.serialized() + "\n").utf8)
                _ = bytes.withUnsafeBytes { raw in
                    fds.map(\.raw).withUnsafeBufferPointer { cshim_send_with_fds(conn.raw, raw.baseAddress!, UInt(raw.count), $0.baseAddress, Int32($0.count)) }
                }
            }
        } catch {
            reply = .object(["error": .string("bad request: \(error)")])
        }
        try? conn.writeAll(Array((reply.serialized() + "\n").utf8))
    }

    func perform(_ doc: JSONValue, fds: [FD], interim: (JSONValue, [FD]) -> Void) -> JSONValue {
        switch doc["op"]?.stringValue {
        case "stop":
            var grace: Int64? = nil
            if case .number(let g) = doc["grace"] { grace = Int64(g) }
            supervisor.requestStop(grace: grace)
            return .object(["ok": .bool(true)])
        case "exec":
            guard case .array(let a) = doc["argv"], !a.isEmpty else { return .object(["error": .string("exec needs a command")]) }
            let argv = a.compactMap(\.stringValue)
            let tty = doc["tty"]?.boolValue ?? false
            let stdio: [FD?] = tty ? [nil, nil, nil] : (0..<3).map { $0 < fds.count ? fds[$0] : nil }
            do {
                let code = try supervisor.exec(container: doc["container"]?.stringValue, argv: argv, stdio: stdio, tty: tty) { master in
                    if let master { interim(.object(["tty": .bool(true)]), [master]) }
                }
                return .object(["exitCode": .number(Double(code))])
            } catch {
                return .object(["error": .string(error.message)])
            }
        default:
            return .object(["error": .string("unknown request")])
        }
    }
}

/// The client side, for the command line.
public enum ControlClient {
    /// Sends one request and returns the connection, to read the replies one by one
    /// (`next`).
    public static func open(_ socket: String, _ request: JSONValue, fds: [CInt] = [], patience: Double = 5) throws(HuskError) -> FD {
        var s = cshim_unix_connect(socket)
        let deadline = Clock.monotonicSeconds() + patience
        while s < 0 && (errno == ECONNREFUSED || errno == ENOENT) && Clock.monotonicSeconds() < deadline {
            usleep(10_000)
            s = cshim_unix_connect(socket)
        }
        guard s >= 0 else {
            throw HuskError(.system, "cannot reach the pod's supervisor at \(socket): \(currentErrno.text)")
        }
        let conn = FD(adopting: s)
        let bytes = Array((request.serialized() + "\n").utf8)
        let sent = bytes.withUnsafeBytes { raw in
            fds.withUnsafeBufferPointer { cshim_send_with_fds(s, raw.baseAddress!, UInt(raw.count), $0.baseAddress, Int32(fds.count)) }
        }
        guard sent == bytes.count else { throw HuskError(.system, "cannot talk to the pod's supervisor: \(currentErrno.text)") }
        return conn
    }

    /// The next reply on `conn` (one line) with the fds that came with it.
    public static func next(_ conn: FD) throws(HuskError) -> (JSONValue, [FD]) {
        var line: [UInt8] = []
        var got: [FD] = []
        var byte = [UInt8](repeating: 0, count: 1)
        var fds = [CInt](repeating: -1, count: 8)
        var nfds: Int32 = 0
        // One byte at a time: the fds come with the first byte of their message.
        while true {
            let n = byte.withUnsafeMutableBytes { cshim_recv_with_fds(conn.raw, $0.baseAddress!, 1, &fds, &nfds) }
            if n <= 0 { throw HuskError(.system, "the pod's supervisor ended before it replied") }
            for k in 0..<Int(nfds) { got.append(FD(adopting: fds[k])) }
            if byte[0] == 10 { break }
            line.append(byte[0])
        }
        do {
            return (try JSONParser.parse(line), got)
        } catch {
            throw HuskError(.system, "a bad reply from the pod's supervisor: \(error)")
        }
    }

    /// Sends one request (with fds) and returns the reply.
    /// While the socket is missing or refuses (a supervisor being replaced by its keeper), it
    /// tries again for up to `patience` seconds.
    public static func request(_ socket: String, _ request: JSONValue, fds: [CInt] = [], patience: Double = 5) throws(HuskError) -> JSONValue {
        let conn = try open(socket, request, fds: fds, patience: patience)
        let reply: [UInt8]
        do {
            reply = try conn.readAll()
        } catch {
            throw HuskError(.system, "no reply from the pod's supervisor", cause: error)
        }
        do {
            return try JSONParser.parse(reply.prefix { $0 != 10 })
        } catch {
            throw HuskError(.system, "the pod's supervisor ended before it replied")
        }
    }
}
