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
        ResidentMemory.oneMallocArena()
        try? Children.becomeSubreaper()
        umask(0o022)
        _ = chdir("/")
        let keeper = KeeperLink.fromEnvironment()
        if Files.exists(SandboxRecord.file(stateDirectory)) {
            runSandbox(stateDirectory: stateDirectory, keeper: keeper, signals: sfd)
        }
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
        try? Files.writeAtomically(supervisor.paths.supervisorPid, Array("\(getpid())\n".utf8), mode: 0o600, durable: false)
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
            server = try ControlServer(path: supervisor.paths.socket, handler: supervisor)
        } catch {
            fail("husk supervise: \(error)")
        }
        // Idle for a second: the code pages this burst used go back to the page cache (shared
        // by every supervisor); the next event maps what it needs again.
        loop.whenIdle(after: 1) { ResidentMemory.trim() }
        if let previous { supervisor.recover(previous) }
        Threads.spawn("control") { server.serve() }
        Threads.spawn("controller") {
            supervisor.runController()
            server.close()
            exit(0)
        }
        loop.run()
    }

    /// A `husk serve` sandbox: the runtime service alone, driven over the control socket.
    /// It lives until RemovePodSandbox; signals other than SIGCHLD are ignored (a sandbox
    /// outlives the daemon and whoever started it).
    static func runSandbox(stateDirectory: String, keeper: KeeperLink?, signals sfd: SignalFD?) -> Never {
        let record: SandboxRecord
        let loop: EventLoop
        do {
            record = try SandboxRecord.read(stateDirectory)
            loop = try EventLoop()
        } catch {
            fail("husk supervise: \(error)")
        }
        let host = SandboxHost(record: record, loop: loop, keeper: keeper)
        try? Files.writeAtomically(host.paths.supervisorPid, Array("\(getpid())\n".utf8), mode: 0o600, durable: false)
        if let sfd {
            loop.add(sfd.fd.raw) { _ in
                while let sig = sfd.next() {
                    if sig == SIGCHLD { reap(loop) }
                }
            }
        }
        let previous = try? SandboxState.read(stateDirectory)
        if let previous, previous.phase == .failed { exit(1) }
        let server: ControlServer
        do {
            server = try ControlServer(path: host.paths.socket, handler: host)
        } catch {
            fail("husk supervise: \(error)")
        }
        loop.whenIdle(after: 1) { ResidentMemory.trim() }
        if let previous, previous.phase != .creating {
            host.recover(previous)
            Threads.spawn("control") { server.serve() }
        } else {
            // The first supervisor (or one lost while making it: made again from nothing).
            if let previous {
                _ = host.service.adoptSandbox(pausePid: previous.pausePid, pauseStart: previous.pauseStart, podIP: nil,
                                              createdAt: nil, onPauseExit: { _ in })
                host.service.discardPartialSandbox()
            }
            Threads.spawn("sandbox") {
                host.runSandbox()
                // This thread serves the socket from here on, shallow: what making the
                // sandbox (CNI's JSON, the spawn) left on its stack goes.
                ResidentMemory.trimStack(margin: 4096)
                server.serve()
            }
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
/// root only. One request per connection (`ControlRequest`, in PodClient.swift with the
/// replies), one reply, or for attach a stream of frames.
final class ControlServer: @unchecked Sendable {  // the listening fd is read-only after init
    let path: String
    let fd: FD
    let handler: any ControlHandler

    init(path: String, handler: any ControlHandler) throws(HuskError) {
        self.path = path
        self.handler = handler
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
        var bytes: [UInt8] = []
        var received: [FD] = []
        while !bytes.contains(10) && bytes.count < 1 << 20 {
            guard let (n, fds) = try? UnixSocket.receive(conn, into: &buf), n > 0 else { break }
            received += fds
            bytes += buf[0..<n]
        }
        let reply: ControlReply?
        do {
            let request = try ControlRequest(json: try JSONParser.parse(bytes.prefix { $0 != 10 }))
            // What came after the request's line: the start of an attached stdin.
            let pending = Array(bytes.drop { $0 != 10 }.dropFirst())
            reply = handler.perform(request, on: conn, fds: received, pending: pending)
        } catch let e as HuskError {
            reply = .error(e.message)
        } catch {
            reply = .error("bad request: \(error)")
        }
        if let reply { try? conn.writeAll(reply.line) }
    }
}

/// What serves a supervisor's control socket: the lifecycle controller of a `husk run` pod
/// (`PodSupervisor`) or the runtime service host of a `husk serve` sandbox (`SandboxHost`).
protocol ControlHandler: AnyObject, Sendable {
    /// Carries out `request`: returns the reply to send, or nil when the request kept the
    /// connection and has used it (attach: its replies and frames went on `conn`).
    func perform(_ request: ControlRequest, on conn: FD, fds: [FD], pending: [UInt8]) -> ControlReply?
}

extension PodSupervisor: ControlHandler {
    func perform(_ request: ControlRequest, on conn: FD, fds: [FD], pending: [UInt8]) -> ControlReply? {
        switch request {
        case .stop(let grace):
            requestStop(grace: grace)
            return .ok
        case .exec(let container, let argv, let tty):
            let stdio: [FD?] = tty ? [nil, nil, nil] : (0..<3).map { $0 < fds.count ? fds[$0] : nil }
            do {
                let code = try exec(container: container, argv: argv, stdio: stdio, tty: tty) { master in
                    // A first message before the reply: the terminal's master.
                    if let master { try? UnixSocket.send(conn, ControlReply.terminal.line, fds: [master.raw]) }
                }
                return .exitCode(code)
            } catch {
                return .error(error.message)
            }
        case .attach(let container, let stdin):
            // The connection stays: output frames out, stdin in.
            do {
                try attach(container: container, conn: conn, stdin: stdin, pending: pending) { tty in
                    try? conn.writeAll(ControlReply.attached(tty: tty).line)
                }
                return nil
            } catch {
                return .error(error.message)
            }
        case .runtime(let call, _):
            return .error("\(call): this pod is run by husk run's controller, not by husk serve")
        }
    }
}
