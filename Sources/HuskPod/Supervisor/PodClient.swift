import HuskJSON
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

// The supervisor's control socket, both sides (DESIGN §3): a path socket in the pod's 0700
// state directory, for root only. One request per connection, a JSON line; the replies are
// JSON lines too. `ControlServer` (the supervisor) and `PodClient` (the command line) share
// the types below, so this file is the one place that knows the JSON.

/// A request to a pod's supervisor.
public enum ControlRequest: Equatable, Sendable {
    /// `{"grace":N,"op":"stop"}` (`null`: the pod's own grace period) → `.ok`; the stop goes
    /// on, status.json tells when it is done.
    case stop(grace: Int64?)
    /// `{"argv":[...],"container":"c","op":"exec"}` with three fds as SCM_RIGHTS (stdin,
    /// stdout, stderr) → `.exitCode` once the process has ended. With `"tty":true` and no fds:
    /// first `.terminal` with the pty master (a terminal of the container's own), then
    /// `.exitCode`. No container: the first app container.
    case exec(container: String?, argv: [String], tty: Bool)
    /// `{"container":"c","op":"attach","stdin":B}` → `.attached`, then the container's output
    /// in frames (`AttachFrame`) until it ends; with stdin, what the client sends after its
    /// request goes to the container's stdin.
    case attach(container: String?, stdin: Bool)
    /// `{"call":"createContainer","op":"runtime","body":{...}}`: a verb of the pod runtime
    /// service, for the sandbox of a `husk serve` pod (`SandboxHost`) → `.value` or
    /// `.failed`.
    case runtime(call: String, body: JSONValue)

    public var json: JSONValue {
        var o: [String: JSONValue]
        switch self {
        case .stop(let grace):
            o = ["op": .string("stop"), "grace": grace.map { .number(Double($0)) } ?? .null]
        case .exec(let container, let argv, let tty):
            o = ["op": .string("exec"), "argv": .array(argv.map { .string($0) })]
            if let container { o["container"] = .string(container) }
            if tty { o["tty"] = .bool(true) }
        case .attach(let container, let stdin):
            o = ["op": .string("attach"), "stdin": .bool(stdin)]
            if let container { o["container"] = .string(container) }
        case .runtime(let call, let body):
            o = ["op": .string("runtime"), "call": .string(call), "body": body]
        }
        return .object(o)
    }

    /// The request as it goes on the socket: its JSON and a newline.
    public var line: [UInt8] { Array((json.serialized() + "\n").utf8) }

    /// Decodes a request; what is wrong with it is the error's message (the supervisor replies
    /// with it).
    public init(json: JSONValue) throws(HuskError) {
        guard case .object(let o) = json else { throw Self.bad("a request is a JSON object, not \(json.kind)") }
        func string(_ key: String) throws(HuskError) -> String? {
            switch o[key] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            case let v?: throw Self.bad("\"\(key)\" must be a string, not \(v.kind)")
            }
        }
        func bool(_ key: String) throws(HuskError) -> Bool {
            switch o[key] {
            case nil, .null?: return false
            case .bool(let b)?: return b
            case let v?: throw Self.bad("\"\(key)\" must be true or false, not \(v.kind)")
            }
        }
        switch o["op"] {
        case .string("stop")?:
            switch o["grace"] {
            case nil, .null?:
                self = .stop(grace: nil)
            case .number(let g)? where g.rounded() == g && g >= 0 && g < 9.2e18:
                self = .stop(grace: Int64(g))
            case let v?:
                throw Self.bad("\"grace\" must be a whole number of seconds, at least 0, not \(v.serialized())")
            }
        case .string("exec")?:
            guard case .array(let a)? = o["argv"], !a.isEmpty else { throw HuskError(.invalidArgument, "exec needs a command") }
            let argv = a.compactMap(\.stringValue)
            guard argv.count == a.count else { throw Self.bad("\"argv\" must be an array of strings") }
            self = .exec(container: try string("container"), argv: argv, tty: try bool("tty"))
        case .string("attach")?:
            self = .attach(container: try string("container"), stdin: try bool("stdin"))
        case .string("runtime")?:
            guard let call = try string("call") else { throw Self.bad("a runtime request needs a \"call\"") }
            self = .runtime(call: call, body: o["body"] ?? .object([:]))
        case .string(let op)?:
            throw HuskError(.invalidArgument, "unknown request \"\(op)\": the ops are stop, exec, attach and runtime")
        case nil:
            throw Self.bad("no \"op\"")
        case let v?:
            throw Self.bad("\"op\" must be a string, not \(v.kind)")
        }
    }

    static func bad(_ message: String) -> HuskError { HuskError(.invalidArgument, "bad request: " + message) }
}

/// A reply of a pod's supervisor: one JSON line.
public enum ControlReply: Equatable, Sendable {
    /// `{"ok":true}`: a stop is under way.
    case ok
    /// `{"exitCode":N}`: an exec'd process (or, as the last attach frame, the container) ended.
    case exitCode(Int32)
    /// `{"tty":true}`, with the pty master: the exec'd process runs on a terminal.
    case terminal
    /// `{"attached":true,"tty":B}`: the attach is on; whether the container has a terminal.
    case attached(tty: Bool)
    /// `{"error":"..."}`: the request was refused or failed.
    case error(String)
    /// `{"value":...}`: what a runtime call returned.
    case value(JSONValue)
    /// `{"code":"notFound","error":"..."}`: a runtime call failed; the code is HuskError's.
    case failed(code: String, message: String)

    public var json: JSONValue {
        switch self {
        case .value(let v): return .object(["value": v])
        case .failed(let code, let m): return .object(["error": .string(m), "code": .string(code)])
        case .ok: return .object(["ok": .bool(true)])
        case .exitCode(let c): return .object(["exitCode": .number(Double(c))])
        case .terminal: return .object(["tty": .bool(true)])
        case .attached(let tty): return .object(["attached": .bool(true), "tty": .bool(tty)])
        case .error(let m): return .object(["error": .string(m)])
        }
    }

    /// The reply as it goes on the socket: its JSON and a newline.
    public var line: [UInt8] { Array((json.serialized() + "\n").utf8) }

    public init(json: JSONValue) throws(HuskError) {
        if let e = json["error"]?.stringValue, let code = json["code"]?.stringValue {
            self = .failed(code: code, message: e)
        } else if let e = json["error"]?.stringValue {
            self = .error(e)
        } else if let v = json["value"] {
            self = .value(v)
        } else if case .number(let c)? = json["exitCode"], let code = Int32(exactly: c) {
            self = .exitCode(code)
        } else if json["attached"]?.boolValue == true {
            self = .attached(tty: json["tty"]?.boolValue ?? false)
        } else if json["tty"]?.boolValue == true {
            self = .terminal
        } else if json["ok"]?.boolValue == true {
            self = .ok
        } else {
            throw HuskError(.system, "a bad reply from the pod's supervisor: \(json.serialized())")
        }
    }
}

/// What follows `.attached` on an attach connection: frames `[kind][length: 4 bytes,
/// big-endian][data]`, kind 1 stdout, 2 stderr, and a last frame `E` carrying the reply
/// `{"exitCode":N}` when the container has ended.
public enum AttachFrame: Equatable, Sendable {
    /// Output of the container: `stream` 1 stdout, 2 stderr.
    case output(stream: UInt8, [UInt8])
    /// The container ended with this code (0 when the frame does not say).
    case exit(Int32)

    public var bytes: [UInt8] {
        switch self {
        case .output(let stream, let data): return Self.bytes(stream, data)
        case .exit(let code): return Self.bytes(UInt8(ascii: "E"), Array(ControlReply.exitCode(code).json.serialized().utf8))
        }
    }

    /// An output frame of `data`, without first copying it into a case.
    public static func bytes(_ kind: UInt8, _ data: some Collection<UInt8>) -> [UInt8] {
        let n = UInt32(data.count)
        return [kind, UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + data
    }

    /// Takes the complete frames off the front of `buffer`; an incomplete one stays.
    public static func take(from buffer: inout [UInt8]) -> [AttachFrame] {
        var out: [AttachFrame] = []
        var at = 0
        while buffer.count - at >= 5 {
            let len = Int(buffer[at + 1]) << 24 | Int(buffer[at + 2]) << 16 | Int(buffer[at + 3]) << 8 | Int(buffer[at + 4])
            guard buffer.count - at >= 5 + len else { break }
            let kind = buffer[at]
            let data = Array(buffer[(at + 5)..<(at + 5 + len)])
            at += 5 + len
            if kind == 1 || kind == 2 {
                out.append(.output(stream: kind, data))
            } else if let doc = try? JSONParser.parse(data), case .exitCode(let c)? = try? ControlReply(json: doc) {
                out.append(.exit(c))
            } else {
                out.append(.exit(0))
            }
        }
        buffer.removeFirst(at)
        return out
    }
}

/// The command line's side of a pod's control socket.
public struct PodClient: Sendable {
    public let socket: String
    /// How long a request keeps trying while the socket is missing or refuses (a supervisor
    /// being replaced by its keeper), in seconds.
    public var patience: Double

    public init(socket: String, patience: Double = 5) {
        self.socket = socket
        self.patience = patience
    }

    public init(_ pod: PodView, patience: Double = 5) {
        self.init(socket: pod.paths.socket, patience: patience)
    }

    /// Asks the supervisor to stop the pod (nil: with the pod's grace period). Returns once the
    /// stop is under way; `PodDirectory.stop` also waits for it to end.
    public func stop(grace: Int64?) throws(HuskError) {
        if case .error(let e) = try request(.stop(grace: grace)) { throw HuskError(.invalidState, e) }
    }

    /// Runs `argv` in `container` (nil: the first app container) with `stdio` (stdin, stdout
    /// and stderr, passed to the supervisor); returns its exit code once it has ended.
    public func exec(container: String?, argv: [String], stdio: [CInt]) throws(HuskError) -> Int32 {
        switch try request(.exec(container: container, argv: argv, tty: false), fds: stdio) {
        case .exitCode(let code): return code
        case .error(let e): throw HuskError(.invalidState, e)
        default: throw HuskError(.system, "the supervisor gave no exit status")
        }
    }

    /// Runs `argv` in `container` on a terminal of the container's own: returns the
    /// connection (readable once the process has ended) and the pty master to relay.
    public func execTerminal(container: String?, argv: [String]) throws(HuskError) -> ExecTerminal {
        let conn = try open(.exec(container: container, argv: argv, tty: true))
        let (first, fds) = try Self.next(conn)
        if case .error(let e) = first { throw HuskError(.invalidState, e) }
        guard first == .terminal, let master = fds.first else { throw HuskError(.system, "the supervisor gave no terminal") }
        return ExecTerminal(connection: conn, master: master)
    }

    /// Attaches to `container`'s own streams (nil: the first app container), with `stdin` its
    /// stdin too (the container's spec must have stdin: true).
    public func attach(container: String?, stdin: Bool) throws(HuskError) -> Attachment {
        let conn = try open(.attach(container: container, stdin: stdin))
        switch try Self.next(conn).0 {
        case .attached(let tty): return Attachment(connection: conn, tty: tty)
        case .error(let e): throw HuskError(.invalidState, e)
        case let other: throw HuskError(.system, "a bad reply from the pod's supervisor: \(other.json.serialized())")
        }
    }

    // MARK: - Transport

    /// Sends `request` and returns the connection, to read the replies one by one (`next`).
    func open(_ request: ControlRequest, fds: [CInt] = []) throws(HuskError) -> FD {
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
        do {
            try UnixSocket.send(conn, request.line, fds: fds)
        } catch {
            throw HuskError(.system, "cannot talk to the pod's supervisor: \(error.errno.text)")
        }
        return conn
    }

    /// The next reply on `conn` (one line) with the fds that came with it.
    static func next(_ conn: FD) throws(HuskError) -> (ControlReply, [FD]) {
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
        let doc: JSONValue
        do {
            doc = try JSONParser.parse(line)
        } catch {
            throw HuskError(.system, "a bad reply from the pod's supervisor: \(error)")
        }
        return (try ControlReply(json: doc), got)
    }

    /// Sends one request (with fds) and returns the reply, read when the supervisor has
    /// closed the connection.
    func request(_ request: ControlRequest, fds: [CInt] = []) throws(HuskError) -> ControlReply {
        let conn = try open(request, fds: fds)
        let reply: [UInt8]
        do {
            reply = try conn.readAll()
        } catch {
            throw HuskError(.system, "no reply from the pod's supervisor", cause: error)
        }
        let doc: JSONValue
        do {
            doc = try JSONParser.parse(reply.prefix { $0 != 10 })
        } catch {
            throw HuskError(.system, "the pod's supervisor ended before it replied")
        }
        return try ControlReply(json: doc)
    }
}

/// A process exec'd on a terminal (`PodClient.execTerminal`).
public struct ExecTerminal: Sendable {
    /// The request's connection: readable (the exit code, or its end) once the process ended.
    public let connection: FD
    /// The pty's master side.
    public let master: FD

    /// Reads the exit code the supervisor sends when the process has ended; nil when the
    /// connection ends without one.
    public func exitCode() -> Int32? {
        guard let (reply, _) = try? PodClient.next(connection), case .exitCode(let c) = reply else { return nil }
        return c
    }
}

/// An attach to a container's streams (`PodClient.attach`).
public struct Attachment: Sendable {
    /// Frames come in on it; with stdin, the container's input goes out on it.
    public let connection: FD
    /// The container has a terminal (tty: true in its spec).
    public let tty: Bool

    /// Relays until the container ends: its output to this process's stdout and stderr and,
    /// with `stdin`, this process's stdin to the container (its end shuts the connection's
    /// write side). Returns the container's exit code (0 when the connection ends without
    /// one), or 128 + the signal when SIGINT, SIGTERM or SIGHUP interrupts (the container goes
    /// on).
    public func relay(stdin: Bool) -> Int32 {
        let conn = connection
        var stdinOpen = stdin
        var inbuf: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        let sfd = try? SignalFD([SIGINT, SIGTERM, SIGHUP])
        while true {
            var fds = [
                pollfd(fd: conn.raw, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stdinOpen ? 0 : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: sfd?.fd.raw ?? -1, events: Int16(POLLIN), revents: 0),
            ]
            if poll(&fds, 3, -1) < 0 {
                if errno == EINTR { continue }
                return 1
            }
            if fds[2].revents != 0 {
                return 128 + (sfd?.next() ?? SIGINT)
            }
            if fds[1].revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n > 0 {
                    Output.writeAll(conn.raw, buf[0..<n])
                } else {
                    stdinOpen = false
                    shutdown(conn.raw, Int32(SHUT_WR))
                }
            }
            if fds[0].revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(conn.raw, $0.baseAddress, $0.count) }
                if n <= 0 { return 0 }
                inbuf += buf[0..<n]
                for frame in AttachFrame.take(from: &inbuf) {
                    switch frame {
                    case .output(let stream, let data):
                        if !data.isEmpty { Output.writeAll(Int32(stream), data) }
                    case .exit(let code):
                        return code
                    }
                }
            }
        }
    }
}
