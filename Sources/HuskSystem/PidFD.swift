import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How a process ended.
public enum ExitStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32, coreDumped: Bool)

    /// The shell/Kubernetes convention: the exit status, or 128 + signal number.
    public var code: Int32 {
        switch self {
        case .exited(let c): return c
        case .signaled(let s, _): return 128 + s
        }
    }

    public var description: String {
        switch self {
        case .exited(let c): return "exited with status \(c)"
        case .signaled(let s, let core): return "killed by signal \(Signals.name(s))\(core ? " (core dumped)" : "")"
        }
    }
}

/// A pidfd: signals and waits that cannot hit a recycled pid.
public final class PidFD: Sendable {
    public let fd: FD
    public let pid: pid_t

    public init(adopting raw: CInt, pid: pid_t) {
        self.fd = FD(adopting: raw)
        self.pid = pid
    }

    /// pidfd_open(2). The process must exist.
    public static func open(_ pid: pid_t) throws(SystemCallError) -> PidFD {
        let raw = try syscall("pidfd_open", "pid \(pid)") { cshim_pidfd_open(pid, 0) }
        return PidFD(adopting: raw, pid: pid)
    }

    /// pidfd_send_signal(2).
    public func signal(_ sig: Int32) throws(SystemCallError) {
        try syscall("pidfd_send_signal", "pid \(pid)") { cshim_pidfd_send_signal(fd.raw, sig, 0) }
    }

    /// Reaps the child (it must be ours) and returns how it ended. Blocks.
    public func wait() throws(SystemCallError) -> ExitStatus {
        guard let s = try waitid(options: WEXITED) else {
            throw SystemCallError("waitid", "pid \(pid)", .noChildProcess)
        }
        return s
    }

    /// Reaps the child if it has ended, without blocking.
    public func tryWait() throws(SystemCallError) -> ExitStatus? {
        try waitid(options: WEXITED | WNOHANG)
    }

    private func waitid(options: Int32) throws(SystemCallError) -> ExitStatus? {
        var p: pid_t = 0
        var code: Int32 = 0
        var status: Int32 = 0
        try syscall("waitid", "pid \(pid)") { cshim_waitid_pidfd(fd.raw, options, &p, &code, &status) }
        if p == 0 { return nil }
        Children.reaped(pid)
        switch code {
        case Int32(CLD_EXITED): return .exited(status)
        case Int32(CLD_KILLED): return .signaled(status, coreDumped: false)
        case Int32(CLD_DUMPED): return .signaled(status, coreDumped: true)
        default: return .exited(status)
        }
    }

    /// Waits until the process has exited (for any process, child or not), up to `timeout`
    /// seconds (nil: forever). Returns whether it exited.
    /// Whether the process has ended (its pidfd is readable), without waiting.
    public var hasExited: Bool {
        var pfd = pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, 0) > 0
    }

    public func waitForExit(timeout: Double?) -> Bool {
        var pfd = pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)
        let deadline = timeout.map { Clock.monotonicSeconds() + $0 }
        while true {
            var ms: Int32 = -1
            if let deadline {
                let left = deadline - Clock.monotonicSeconds()
                if left <= 0 { return false }
                ms = Int32(min(left * 1000, Double(Int32.max)).rounded(.up))
            }
            let r = poll(&pfd, 1, ms)
            if r > 0 { return true }
            if r < 0 && Glibc.errno != EINTR { return true }
        }
    }
}

/// Facts about processes read from /proc.
public enum ProcessInfo {
    /// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot) and field 3 (state).
    public static func stat(_ pid: pid_t) -> (startTime: UInt64, state: Character)? {
        guard let text = try? Files.readString("/proc/\(pid)/stat") else { return nil }
        // The command name (field 2) is in parentheses and may contain spaces: split after it.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let rest = text[text.index(after: close)...].split(separator: " ")
        // rest[0] is field 3 (state); field 22 is rest[19].
        guard rest.count > 19, let state = rest[0].first, let start = UInt64(rest[19]) else { return nil }
        return (start, state)
    }

    /// Whether `pid` is alive (not a zombie) and is the process that started at `startTime`.
    public static func isAlive(_ pid: pid_t, startTime: UInt64) -> Bool {
        guard pid > 0, let s = stat(pid) else { return false }
        return s.startTime == startTime && s.state != "Z" && s.state != "X"
    }
}
