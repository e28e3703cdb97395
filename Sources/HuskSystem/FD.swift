import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An owned file descriptor, closed when the last reference goes away.
public final class FD: Sendable {
    public let raw: CInt

    public init(adopting raw: CInt) { self.raw = raw }

    deinit { _ = Glibc.close(raw) }

    /// open(2) with O_CLOEXEC.
    public static func open(_ path: String, _ flags: CInt, mode: mode_t = 0o644) throws(SystemCallError) -> FD {
        let fd = try syscall("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FD(adopting: fd)
    }

    /// A second fd for the same open file (F_DUPFD_CLOEXEC).
    public func duplicate() throws(SystemCallError) -> FD {
        FD(adopting: try syscall("fcntl", "F_DUPFD_CLOEXEC") { fcntl(raw, F_DUPFD_CLOEXEC, 3) })
    }

    /// openat(2) with O_CLOEXEC relative to this directory fd.
    public func openat(_ path: String, _ flags: CInt, mode: mode_t = 0o644) throws(SystemCallError) -> FD {
        let fd = try syscall("openat", path) { Glibc.openat(raw, path, flags | O_CLOEXEC, mode) }
        return FD(adopting: fd)
    }

    /// How openat2(2) may resolve a path (RESOLVE_*, linux/openat2.h).
    public struct Resolve: OptionSet, Sendable, Hashable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }

        /// Never cross a mount point.
        public static let noCrossingMounts = Resolve(rawValue: CSHIM_RESOLVE_NO_XDEV)
        /// Never follow a magic link (/proc/<pid>/fd/<n>, /proc/<pid>/exe, ...).
        public static let noMagicLinks = Resolve(rawValue: CSHIM_RESOLVE_NO_MAGICLINKS)
        /// Never follow any symlink.
        public static let noSymlinks = Resolve(rawValue: CSHIM_RESOLVE_NO_SYMLINKS)
        /// Fail for anything that would leave the directory.
        public static let beneath = Resolve(rawValue: CSHIM_RESOLVE_BENEATH)
        /// Treat the directory as the root: "..", absolute paths and absolute symlinks stay in it.
        public static let inRoot = Resolve(rawValue: CSHIM_RESOLVE_IN_ROOT)
    }

    /// openat(2)-like, relative to this directory fd, with O_CLOEXEC and `resolve`'s limits on
    /// how the path is walked. The underlying call is `openat2(2)`.
    public func openat2(_ path: String, _ flags: CInt, mode: UInt64 = 0, resolve: Resolve) throws(SystemCallError) -> FD {
        let fd = try syscall("openat2", path) {
            cshim_openat2(raw, path, UInt64(UInt32(bitPattern: flags | O_CLOEXEC)), mode, resolve.rawValue)
        }
        return FD(adopting: fd)
    }

    /// Reads everything until EOF.
    public func readAll() throws(SystemCallError) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try syscall("read") { buf.withUnsafeMutableBytes { p in Glibc.read(raw, p.baseAddress, p.count) } }
            if n == 0 { return out }
            out.append(contentsOf: buf[0..<n])
        }
    }

    /// Writes all bytes.
    public func writeAll(_ bytes: some Collection<UInt8>) throws(SystemCallError) {
        let array = Array(bytes)
        var done = 0
        while done < array.count {
            let n = try syscall("write") {
                array.withUnsafeBytes { p in Glibc.write(raw, p.baseAddress! + done, p.count - done) }
            }
            done += n
        }
    }

    /// "/proc/self/fd/<n>": the magic link the kernel resolves to this very file.
    public var procPath: String { "/proc/self/fd/\(raw)" }
}

/// O_PATH for open(2) (an fd that only names a file: for *at calls, fstat, mounts); Swift's
/// Glibc module leaves it out.
public let O_PATH: CInt = CSHIM_O_PATH

/// A pipe, both ends CLOEXEC.
public func makePipe() throws(SystemCallError) -> (read: FD, write: FD) {
    var fds: [CInt] = [-1, -1]
    try syscall("pipe2") { cshim_pipe2(&fds) }
    return (FD(adopting: fds[0]), FD(adopting: fds[1]))
}
