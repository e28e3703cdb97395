import HuskJSON
import HuskRuntime
import HuskSystem
import SystemPackage

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
        let sfd = try? SignalFD([SIGCHLD, SIGTERM, SIGINT, SIGHUP])
        signal(SIGPIPE, SIG_IGN)
        try? Children.becomeSubreaper()
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
        if let sfd {
            loop.add(sfd.fd.raw) { _ in
                while let sig = sfd.next() {
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
    let fd: FD
    let supervisor: PodSupervisor

    init(path: String, supervisor: PodSupervisor) throws(HuskError) {
        self.path = path
        self.supervisor = supervisor
        unlink(path)
        do {
            fd = try UnixSocket.listen(path, backlog: 16)
        } catch {
            throw HuskError(.system, "cannot listen on \(path): \(error.errno.text)")
        }
        chmod(path, 0o600)
    }

    func close() {
        unlink(path)
    }

    func serve() {
        while true {
            let conn: FD
            do {
                conn = try UnixSocket.accept(fd)
            } catch {
                if error.errno == .connectionAbort { continue }
                usleep(10_000)
                continue
            }
            // Only root (and our own uid) may drive a pod.
            guard let uid = try? UnixSocket.peerUID(conn), uid == 0 || uid == geteuid() else { continue }
            Threads.spawn("request") { [self] in handle(conn) }
        }
    }

    func handle(_ conn: FD) {
        var buf = [UInt8](repeating: 0, count: 65536)
        var request: [UInt8] = []
        var received: [FD] = []
        while !request.contains(10) && request.count < 1 << 20 {
            guard let (n, fds) = try? UnixSocket.receive(conn, into: &buf), n > 0 else { break }
            received += fds
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
                try? UnixSocket.send(conn, bytes, fds: fds.map(\.raw))
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
        let deadline = Clock.monotonicSeconds() + patience
        func connect() throws(HuskError) -> FD {
            while true {
                do {
                    return try UnixSocket.connect(socket)
                } catch {
                    guard error.errno == .connectionRefused || error.errno == .noSuchFileOrDirectory, Clock.monotonicSeconds() < deadline else {
                        throw HuskError(.system, "cannot reach the pod's supervisor at \(socket): \(error.errno.text)")
                    }
                    usleep(10_000)
                }
            }
        }
        let conn = try connect()
        let bytes = Array((request.serialized() + "\n").utf8)
        do {
            try UnixSocket.send(conn, bytes, fds: fds)
        } catch {
            throw HuskError(.system, "cannot talk to the pod's supervisor: \(error.errno.text)")
        }
        return conn
    }

    /// The next reply on `conn` (one line) with the fds that came with it.
    public static func next(_ conn: FD) throws(HuskError) -> (JSONValue, [FD]) {
        var line: [UInt8] = []
        var got: [FD] = []
        var byte = [UInt8](repeating: 0, count: 1)
        // One byte at a time: the fds come with the first byte of their message.
        while true {
            guard let (n, fds) = try? UnixSocket.receive(conn, into: &byte), n > 0 else {
                throw HuskError(.system, "the pod's supervisor ended before it replied")
            }
            got += fds
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
