import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor's side of its keeper (keeper.c, DESIGN §3): the keeper holds a copy of each
/// container's output pipes for as long as the container may write to them, and hands them
/// to the next supervisor when this one dies. Processes that were orphaned by a dead
/// supervisor are reaped by the keeper, which writes how they ended under `exits/`.
final class KeeperLink: @unchecked Sendable {  // `held` only under `m`
    let fd: FD
    /// What the keeper held when this supervisor started, by container id, until `takeInherited`.
    private var held: [String: [FD]]
    private let m = Monitor()
    /// How the previous supervisor ended, when this one replaces it.
    let lost: String?

    /// The link from `HUSK_KEEPER_FD`, or nil when the supervisor runs without a keeper.
    /// Reads what the keeper hands over, up to its end mark.
    static func fromEnvironment() -> KeeperLink? {
        guard let v = getenv("HUSK_KEEPER_FD"), let n = Int32(String(cString: v)), n > 2 else { return nil }
        let lost = getenv("HUSK_KEEPER_LOST").map { String(cString: $0) }
        unsetenv("HUSK_KEEPER_FD")
        unsetenv("HUSK_KEEPER_LOST")
        _ = fcntl(n, F_SETFD, FD_CLOEXEC)
        let link = FD(adopting: n)
        var held: [String: [FD]] = [:]
        var buf = [UInt8](repeating: 0, count: 256)
        while true {
            guard let (r, got) = try? UnixSocket.receive(link, into: &buf), r > 0 else { break }
            let text = String(decoding: buf[0..<r], as: UTF8.self)
            if text.hasPrefix("E ") { break }
            if text.hasPrefix("H ") { held[String(text.dropFirst(2))] = got }
        }
        return KeeperLink(fd: link, inherited: held, lost: lost)
    }

    private init(fd: FD, inherited: [String: [FD]], lost: String?) {
        self.fd = fd
        self.held = inherited
        self.lost = lost
    }

    /// What the keeper handed over, once: the caller owns the fds (what it does not keep closes).
    func takeInherited() -> [String: [FD]] {
        m.locked {
            let h = held
            held = [:]
            return h
        }
    }

    /// The keeper keeps a copy of `fds` under `id` (replacing what it had under it).
    func hold(_ id: String, _ fds: [FD]) {
        send("H " + id, fds.map(\.raw))
    }

    /// The keeper closes what it holds under `id`.
    func drop(_ id: String) {
        send("D " + id, [])
    }

    private func send(_ message: String, _ fds: [CInt]) {
        try? UnixSocket.send(fd, Array(message.utf8), fds: fds)
    }

    /// How the process `pid` (started at `start`) ended, as the keeper wrote it after reaping
    /// it; waits up to `timeout` seconds for the keeper to write it. nil: not known.
    static func recordedExit(stateDirectory: String, pid: Int32, start: UInt64, timeout: Double) -> ExitStatus? {
        let path = stateDirectory + "/exits/\(pid).\(start)"
        let deadline = Clock.monotonicSeconds() + timeout
        while true {
            if let text = (try? Files.readString(path)) ?? nil {
                unlink(path)
                let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
                guard parts.count == 2 else { return nil }
                switch parts[0] {
                case Int32(CLD_KILLED): return .signaled(parts[1], coreDumped: false)
                case Int32(CLD_DUMPED): return .signaled(parts[1], coreDumped: true)
                default: return .exited(parts[1])
                }
            }
            if Clock.monotonicSeconds() >= deadline { return nil }
            usleep(2000)
        }
    }
}
