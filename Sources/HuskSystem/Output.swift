#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
