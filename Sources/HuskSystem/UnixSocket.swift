import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Unix domain sockets: path sockets for control connections, socket pairs for console
/// sockets and the keeper link, and fds passed along with the bytes (SCM_RIGHTS).
public enum UnixSocket {
    /// The most fds one message carries (the C side's limit).
    public static let maxFDs = 8

    /// A stream socket (CLOEXEC) connected to the socket at `path` (never abstract). An
    /// interrupted connect is retried. The underlying calls are `socket(2)` and `connect(2)`.
    public static func connect(_ path: String) throws(SystemCallError) -> FD {
        try reachable(path) { (p) throws(SystemCallError) in FD(adopting: try syscall("connect", path) { cshim_unix_connect(p) }) }
    }

    /// A stream socket (CLOEXEC) bound at `path` and listening; the path must not exist. The
    /// underlying calls are `socket(2)`, `bind(2)` and `listen(2)`.
    public static func listen(_ path: String, backlog: Int32 = 16) throws(SystemCallError) -> FD {
        try reachable(path) { (p) throws(SystemCallError) in FD(adopting: try syscall("listen", path) { cshim_unix_listen(p, backlog) }) }
    }

    /// `body` with a path for `path` that fits in sun_path (107 bytes): the path itself, or
    /// for a longer one its name under `/proc/self/fd/N`, N its directory opened O_PATH.
    static func reachable<T>(_ path: String, _ body: (String) throws(SystemCallError) -> T) throws(SystemCallError) -> T {
        guard path.utf8.count > 107, let slash = path.lastIndex(of: "/") else { return try body(path) }
        let dir = path[..<slash].isEmpty ? "/" : String(path[..<slash])
        let fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return try body(path) }
        defer { close(fd) }
        return try body("/proc/self/fd/\(fd)/" + path[path.index(after: slash)...])
    }

    /// The next connection (CLOEXEC) on a listening socket; blocks. The underlying call is
    /// `accept4(2)`.
    public static func accept(_ listener: FD) throws(SystemCallError) -> FD {
        FD(adopting: try syscall("accept4") { cshim_accept(listener.raw) })
    }

    /// Two connected SOCK_SEQPACKET sockets (CLOEXEC): message boundaries are kept, as a
    /// console socket and the keeper link want. The underlying call is `socketpair(2)`.
    public static func seqpacketPair() throws(SystemCallError) -> (FD, FD) {
        var sv: [CInt] = [-1, -1]
        try syscall("socketpair", "AF_UNIX, SOCK_SEQPACKET") { cshim_seqpacket_pair(&sv) }
        return (FD(adopting: sv[0]), FD(adopting: sv[1]))
    }

    /// Sends all of `bytes` with `fds` (at most `maxFDs`) attached to the first byte; on a
    /// stream socket what a short send left is sent after it. SIGPIPE is never raised (a gone
    /// peer is EPIPE); interrupted sends are retried. The fds stay the caller's. The underlying
    /// call is `sendmsg(2)`.
    public static func send(_ socket: FD, _ bytes: [UInt8], fds: [CInt] = []) throws(SystemCallError) {
        precondition(!bytes.isEmpty, "a message carries at least one byte")
        var done = 0
        var attach = fds
        repeat {
            let n = try syscall("sendmsg") {
                bytes.withUnsafeBytes { raw in
                    attach.withUnsafeBufferPointer { f in
                        cshim_send_with_fds(
                            socket.raw, raw.baseAddress! + done, UInt(raw.count - done), f.baseAddress, Int32(f.count))
                    }
                }
            }
            done += n
            attach = []
        } while done < bytes.count
    }

    /// Receives up to `buffer.count` bytes into `buffer` and the fds that came with them
    /// (CLOEXEC, owned by the caller). A count of 0 is the end of the stream. A message with
    /// more than `maxFDs` fds fails with EMSGSIZE (and its fds are closed). Interrupted
    /// receives are retried. The underlying call is `recvmsg(2)`.
    public static func receive(_ socket: FD, into buffer: inout [UInt8]) throws(SystemCallError) -> (count: Int, fds: [FD]) {
        var raw = [CInt](repeating: -1, count: maxFDs)
        var n: Int32 = 0
        precondition(!buffer.isEmpty, "receive needs room for at least one byte")
        let count = try syscall("recvmsg") {
            buffer.withUnsafeMutableBytes { cshim_recv_with_fds(socket.raw, $0.baseAddress!, UInt($0.count), &raw, &n) }
        }
        return (count, raw.prefix(Int(n)).map { FD(adopting: $0) })
    }

    /// The user id of the process at the other end (its credentials when it connected). The
    /// underlying call is `getsockopt(SO_PEERCRED)`.
    public static func peerUID(_ socket: FD) throws(SystemCallError) -> uid_t {
        uid_t(bitPattern: try syscall("getsockopt", "SO_PEERCRED") { cshim_peer_uid(socket.raw) })
    }
}
