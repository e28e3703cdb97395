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
