import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Signal names and numbers, as `kill -l` and runc spell them.
public enum Signals {
    /// Parses "TERM", "SIGTERM", "sigterm", "15", "RTMIN+3". Returns nil when unknown.
    public static func parse(_ text: String) -> Int32? {
        if let n = Int32(text) { return (n > 0 && n < 65) ? n : nil }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if let n = table[name] { return n }
        let rtmin = cshim_sigrtmin(), rtmax = cshim_sigrtmax()
        if name == "RTMIN" { return rtmin }
        if name == "RTMAX" { return rtmax }
        if name.hasPrefix("RTMIN+"), let k = Int32(name.dropFirst(6)), rtmin + k <= rtmax { return rtmin + k }
        if name.hasPrefix("RTMAX-"), let k = Int32(name.dropFirst(6)), rtmax - k >= rtmin { return rtmax - k }
        return nil
    }

    /// "SIGTERM" for 15; "SIG<number>" when the C library has no name for it.
    public static func name(_ sig: Int32) -> String {
        if let p = cshim_signal_name(sig) { return "SIG" + String(cString: p) }
        return "SIG\(sig)"
    }

    private static let table: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT,
        "IOT": SIGABRT, "BUS": SIGBUS, "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV,
        "USR2": SIGUSR2, "PIPE": SIGPIPE, "ALRM": SIGALRM, "TERM": SIGTERM, "STKFLT": SIGSTKFLT,
        "CHLD": SIGCHLD, "CLD": SIGCHLD, "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP, "TTIN": SIGTTIN,
        "TTOU": SIGTTOU, "URG": SIGURG, "XCPU": SIGXCPU, "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM,
        "PROF": SIGPROF, "WINCH": SIGWINCH, "IO": SIGIO, "POLL": SIGIO, "PWR": SIGPWR, "SYS": SIGSYS,
    ]
}

// MARK: - signalfd

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
