import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Terminals: whether an fd is one, its window size, and raw mode.
///
/// The fds are plain numbers (0 for stdin) since they are usually this process's standard
/// streams, which it does not own as `FD`s.
public enum Terminal {
    /// Rows and columns of a terminal (struct winsize; the pixel sizes are left at 0).
    public struct WindowSize: Sendable, Equatable {
        public var rows: UInt16
        public var columns: UInt16

        public init(rows: UInt16, columns: UInt16) {
            self.rows = rows
            self.columns = columns
        }
    }

    /// The settings a terminal had (struct termios, opaque here), to put back with `restore`.
    public struct Settings: Sendable {
        public let fd: CInt
        let saved: [UInt8]

        /// Puts the settings back (TCSANOW). The underlying call is `tcsetattr(3)`.
        public func restore() throws(SystemCallError) {
            try syscall("tcsetattr", "fd \(fd)") { saved.withUnsafeBytes { cshim_tty_restore(fd, $0.baseAddress!) } }
        }
    }

    /// Whether `fd` is a terminal. The underlying call is `isatty(3)`.
    public static func isTerminal(_ fd: CInt) -> Bool { isatty(fd) == 1 }

    /// The window size of terminal `fd`. The underlying call is `ioctl(TIOCGWINSZ)`.
    public static func windowSize(of fd: CInt) throws(SystemCallError) -> WindowSize {
        var rows: UInt16 = 0
        var columns: UInt16 = 0
        try syscall("ioctl", "TIOCGWINSZ of fd \(fd)") { cshim_get_winsize(fd, &rows, &columns) }
        return WindowSize(rows: rows, columns: columns)
    }

    /// Sets the window size of terminal `fd` (a pty master: the slave's side gets SIGWINCH).
    /// The underlying call is `ioctl(TIOCSWINSZ)`.
    public static func setWindowSize(_ size: WindowSize, of fd: CInt) throws(SystemCallError) {
        try syscall("ioctl", "TIOCSWINSZ of fd \(fd)") { cshim_set_winsize(fd, size.rows, size.columns) }
    }

    /// Gives terminal `to` the window size of terminal `from`; false when either call failed
    /// (`from` is no terminal, say).
    @discardableResult
    public static func copyWindowSize(from: CInt, to: CInt) -> Bool {
        guard let size = try? windowSize(of: from) else { return false }
        return (try? setWindowSize(size, of: to)) != nil
    }

    /// Puts terminal `fd` in raw mode (cfmakeraw: no echo, no line editing, no signals from
    /// ^C, no output processing) and returns the settings it had. The underlying calls are
    /// `tcgetattr(3)` and `tcsetattr(3)`.
    public static func makeRaw(_ fd: CInt) throws(SystemCallError) -> Settings {
        var saved = [UInt8](repeating: 0, count: termiosSize)
        try syscall("tcsetattr", "fd \(fd)") { saved.withUnsafeMutableBytes { cshim_tty_raw(fd, $0.baseAddress!) } }
        return Settings(fd: fd, saved: saved)
    }

    /// The size of struct termios in this C library.
    static let termiosSize = Int(cshim_termios_size())
}

// MARK: - Relay

/// Relays between this process's standard streams and a pty master whose slave is another
/// process's terminal, in the foreground (`husk-runc run`/`exec` with a terminal and no
/// console socket, `husk exec -t`): stdin to the master, the master to stdout.
///
/// While it runs, stdin's terminal (if it is one and input is relayed) is in raw mode, so
/// that keys, ^C included, go to the other side as typed; the settings are restored on every
/// way out. The window size of stdin's terminal is copied to the master at the start and
/// again on every SIGWINCH.
public enum TerminalRelay {
    /// Relays until the other side has ended and its output is drained, or the master has
    /// closed and the other side has ended.
    /// - Parameters:
    ///   - master: the pty master.
    ///   - input: whether stdin goes to the master (without it stdin is left alone and not
    ///     made raw). The end of stdin is passed on as a typed ^D (the terminal's EOF
    ///     character), once.
    ///   - end: an fd that becomes readable when the process on the other side has ended:
    ///     its pidfd, or a connection that then brings its exit status. `ended` runs once
    ///     when it does, and then `end` is no longer watched.
    ///   - drainMilliseconds: after the end, how long to wait for more output still buffered
    ///     in the pty before returning.
    ///   - signals: a signalfd read meanwhile: SIGWINCH copies the window size, any other
    ///     signal goes to `onSignal` (to pass it on). nil: the relay makes its own for
    ///     SIGWINCH when stdin is a terminal (blocking SIGWINCH in the calling thread).
    public static func run(
        master: FD, input: Bool, end: FD, drainMilliseconds: Int32, signals: SignalFD? = nil,
        onSignal: (Int32) -> Void = { _ in }, ended: () -> Void = {}
    ) {
        let isTTY = Terminal.isTerminal(0)
        if isTTY { Terminal.copyWindowSize(from: 0, to: master.raw) }
        let saved = isTTY && input ? (try? Terminal.makeRaw(0)) : nil
        defer { try? saved?.restore() }
        let winch = signals ?? (isTTY ? (try? SignalFD([SIGWINCH])) : nil)
        var buf = [UInt8](repeating: 0, count: 65536)
        var inputOpen = input
        var masterOpen = true
        var done = false
        while masterOpen || !done {
            var fds = [
                pollfd(fd: masterOpen ? master.raw : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: inputOpen ? 0 : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: done ? -1 : end.raw, events: Int16(POLLIN), revents: 0),
                pollfd(fd: winch?.fd.raw ?? -1, events: Int16(POLLIN), revents: 0),
            ]
            // Once the other side has ended, what is left in the pty is read without waiting.
            let r = poll(&fds, nfds_t(fds.count), done ? drainMilliseconds : -1)
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { break }
            if fds[0].revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(master.raw, $0.baseAddress, $0.count) }
                if n > 0 {
                    Output.writeAll(1, buf[0..<n])
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    masterOpen = false  // EIO: every holder of the slave has gone
                }
            }
            if fds[1].revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n > 0 {
                    Output.writeAll(master.raw, buf[0..<n])
                } else {
                    inputOpen = false
                    // The end of input: the terminal's EOF character, as a typed ^D.
                    if n == 0 { Output.writeAll(master.raw, [UInt8(4)]) }
                }
            }
            if fds[2].revents != 0 {
                done = true
                ended()
            }
            if fds[3].revents != 0, let winch {
                for sig in winch.drain() {
                    if sig != SIGWINCH {
                        onSignal(sig)
                    } else if isTTY {
                        Terminal.copyWindowSize(from: 0, to: master.raw)
                    }
                }
            }
        }
    }
}
