import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Signals read from an fd instead of handlers: the signals are blocked, stay pending, and a
/// signalfd (CLOEXEC, non-blocking) reads them one at a time, from a poll or epoll loop.
///
/// The mask is per thread and inherited by threads created later: make the signalfd before
/// starting threads (first thing in `main`), or a signal may go to a thread that has it
/// unblocked. Closing the fd leaves the signals blocked.
public final class SignalFD: Sendable {
    public let fd: FD

    private init(adopting raw: CInt) { fd = FD(adopting: raw) }

    /// Blocks `signals` in the calling thread and returns a signalfd that reads them. The
    /// underlying calls are `pthread_sigmask(3)` and `signalfd(2)`.
    public convenience init(_ signals: [Int32]) throws(SystemCallError) {
        let raw = try syscall("signalfd", signals.map { Signals.name($0) }.joined(separator: ",")) {
            cshim_signalfd_for(signals, Int32(signals.count))
        }
        self.init(adopting: raw)
    }

    /// The signals a runtime in the foreground passes on to its container (as runc): every
    /// standard signal but SIGKILL, SIGSTOP, SIGCHLD, SIGPIPE and the synchronous faults
    /// (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS), SIGWINCH included.
    public static func forwarded() throws(SystemCallError) -> SignalFD {
        SignalFD(adopting: try syscall("signalfd", "forwarded signals") { cshim_forwarded_signals_fd() })
    }

    /// The next pending signal, or nil when none is pending. The underlying call is `read(2)`.
    public func next() -> Int32? {
        let sig = cshim_signalfd_read(fd.raw)
        return sig > 0 ? sig : nil
    }

    /// Reads every pending signal and returns them in order.
    public func drain() -> [Int32] {
        var out: [Int32] = []
        while let sig = next() { out.append(sig) }
        return out
    }
}
