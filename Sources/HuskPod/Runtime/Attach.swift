import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// One `husk attach` client of a container: the output goes to it in frames (`AttachFrame`)
/// as it comes, and a last one with the exit code when the container has ended. A writer
/// thread of its own sends them, so a slow client never holds the supervisor up: past 4 MiB
/// queued it is dropped.
final class AttachClient: @unchecked Sendable {  // `queue`, `closed` and `done` under `m`
    let conn: FD
    private let m = Monitor()
    private var queue: [[UInt8]] = []
    private var queued = 0
    private var closed = false
    private(set) var done = false
    static let cap = 4 << 20

    init(conn: FD) {
        self.conn = conn
        Threads.spawn("attach-out") { [self] in pump() }
    }

    /// Queues a frame; false when the client is gone (or was dropped for being slow).
    @discardableResult
    func send(_ frame: [UInt8]) -> Bool {
        m.locked {
            if closed || done { return false }
            if queued + frame.count > Self.cap {
                done = true
                m.broadcast()
                return false
            }
            queue.append(frame)
            queued += frame.count
            m.broadcast()
            return true
        }
    }

    /// The last frame: the container's exit code; the connection closes once it is sent.
    func finish(exitCode: Int32) {
        send(AttachFrame.exit(exitCode).bytes)
        m.locked {
            closed = true
            m.broadcast()
        }
    }

    /// The client went away: nothing more is sent.
    func abandon() {
        m.locked {
            done = true
            m.broadcast()
        }
    }

    /// Waits until everything was sent (or the client went away).
    func waitDone() {
        _ = m.wait(for: { done })
    }

    private func pump() {
        while true {
            let next = m.locked { () -> [UInt8]? in
                while queue.isEmpty && !closed && !done { _ = m.wait() }
                if done || queue.isEmpty { return nil }
                let f = queue.removeFirst()
                queued -= f.count
                return f
            }
            guard let next else { break }
            if (try? conn.writeAll(next)) == nil { break }
        }
        m.locked {
            done = true
            m.broadcast()
        }
        shutdown(conn.raw, Int32(SHUT_WR))
    }
}

extension ContainerHandle {
    /// Sends output to every attached client (loop thread).
    func fanOut(_ stream: String, _ bytes: ArraySlice<UInt8>) {
        attachLock.locked {
            guard !attached.isEmpty else { return }
            let frame = AttachFrame.bytes(stream == "stderr" ? 2 : 1, bytes)
            attached.removeAll { !$0.send(frame) }
        }
    }

    /// Tells every attached client how the container ended.
    func detachAll(exitCode: Int32) {
        let clients = attachLock.locked { () -> [AttachClient] in
            let c = attached
            attached = []
            return c
        }
        for c in clients { c.finish(exitCode: exitCode) }
    }
}

extension PodRuntimeService {
    /// CRI Attach and `husk attach`: attaches `conn` to the running container `h`'s streams.
    /// `ready` gets whether it has a terminal, then the output goes to `conn` in frames
    /// (`AttachClient`); with `stdin`, what comes in on `conn` (after `pending`, read with the
    /// request) goes to the container's stdin, which ends with it when `stdinOnce`. Returns
    /// once the client is done.
    public func attach(_ h: ContainerHandle, conn: FD, stdin: Bool, stdinOnce: Bool, pending: [UInt8],
                       ready: (Bool) -> Void) throws(HuskError) {
        guard h.exit == nil, h.started else { throw HuskError(.invalidState, "container \(h.name) is not running") }
        ready(h.tty)
        let client = AttachClient(conn: conn)
        h.attachLock.locked { h.attached.append(client) }
        if stdin, let input = h.attachLock.locked({ h.input }) {
            var ok = pending.isEmpty || (try? input.writeAll(pending)) != nil
            var buf = [UInt8](repeating: 0, count: 65536)
            while ok {
                let n = buf.withUnsafeMutableBytes { read(conn.raw, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                ok = (try? input.writeAll(Array(buf[0..<n]))) != nil
            }
            if h.tty {
                _ = [UInt8(4)].withUnsafeBytes { write(input.raw, $0.baseAddress, 1) }  // ^D, as a terminal's EOF
            }
            if stdinOnce {
                // The first attached client ended its input: so does the container's stdin.
                closeInput(h)
            }
        } else {
            // Nothing comes from the client: the end of its side means it has gone.
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buf.withUnsafeMutableBytes { read(conn.raw, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
            }
            client.abandon()
        }
        client.waitDone()
    }
}

extension PodRuntimeService {
    /// The window size of the container's terminal (CRI attach's resize stream).
    public func resizeTerminal(_ h: ContainerHandle, rows: UInt16, columns: UInt16) throws(HuskError) {
        guard let master = h.attachLock.locked({ h.terminal }) else {
            throw HuskError(.invalidArgument, "container \(h.name) has no terminal (tty: false)")
        }
        do {
            try Terminal.setWindowSize(.init(rows: rows, columns: columns), of: master.raw)
        } catch {
            throw HuskError(.system, "cannot resize container \(h.name)'s terminal", cause: error)
        }
    }
}
