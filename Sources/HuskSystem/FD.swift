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

    /// Appends a whole record or nothing: a write cut short (a full disk) is truncated back
    /// to where the file ended, so the next record is never glued to half of this one. For
    /// files this process is the only writer of.
    public func appendWhole(_ bytes: some Collection<UInt8>) throws(SystemCallError) {
        let end = lseek(raw, 0, SEEK_END)
        do {
            try writeAll(bytes)
        } catch {
            if end >= 0 { _ = ftruncate(raw, end) }
            throw error
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

// MARK: - Memfd

/// Anonymous files in memory (memfd_create(2)): an executable embedded in Husk is written to
/// one, sealed, and executed from it, so nothing on disk can be swapped in between.
public enum Memfd {
    /// A new, empty memfd (CLOEXEC); `name` only shows in /proc/<pid>/fd. With `sealable` it
    /// accepts seals (MFD_ALLOW_SEALING). The underlying call is `memfd_create(2)`.
    public static func create(_ name: String, sealable: Bool = false) throws(SystemCallError) -> FD {
        let raw = try syscall("memfd_create", name) {
            sealable ? cshim_memfd_sealed_create(name) : cshim_memfd_create(name)
        }
        return FD(adopting: raw)
    }

    /// Seals a sealable memfd against writes, growth, shrinking and further seals: its content
    /// is final. The underlying call is `fcntl(F_ADD_SEALS)`.
    public static func seal(_ fd: FD) throws(SystemCallError) {
        try syscall("fcntl", "F_ADD_SEALS of fd \(fd.raw)") { cshim_memfd_seal(fd.raw) }
    }
}

// MARK: - Borrowed fds

/// Writing to fds this process does not own as `FD`s: stdout, stderr, a terminal or socket
/// borrowed for a moment. For an owned fd use `FD.writeAll`, which throws.
public enum Output {
    /// Writes all of `bytes` to `fd`, going on after short writes and interruptions; false
    /// when a write failed (the rest is dropped). The underlying call is `write(2)`.
    @discardableResult
    public static func writeAll(_ fd: CInt, _ bytes: some Collection<UInt8>) -> Bool {
        if let done = bytes.withContiguousStorageIfAvailable({ writeBuffer(fd, UnsafeRawBufferPointer($0)) }) {
            return done
        }
        return Array(bytes).withUnsafeBytes { writeBuffer(fd, $0) }
    }

    /// `text` as UTF-8 to `fd` (errors ignored: there is nowhere left to report them).
    public static func write(_ text: String, to fd: CInt) {
        var text = text
        text.withUTF8 { _ = writeBuffer(fd, UnsafeRawBufferPointer($0)) }
    }

    private static func writeBuffer(_ fd: CInt, _ buffer: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }
}
