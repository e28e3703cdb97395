import HuskSystem
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's unix socket path, claimed before the gRPC transport binds it and removed when
/// the daemon ends.
///
/// One daemon per path: `<path>.lock`, flock'ed for the daemon's life, holds its pid (the lock
/// file stays: removing it would let two starters lock two different files). A socket file left
/// by a dead daemon (nobody answers a connect) is removed; one that answers, or a path that is
/// no socket, is never touched. The transport then binds a fresh socket (mode 0660, owner and
/// group those of the daemon, root).
final class CRISocket: Sendable {
    let path: String
    private let lock: FD
    /// The socket's inode once bound: only that file is removed at the end.
    private let bound = Mutex<(dev: UInt64, ino: UInt64)?>(nil)

    static let mode: mode_t = 0o660

    init(path: String) throws(HuskError) {
        self.path = path
        let dir = Files.absolute(path + "/..")
        do {
            // Created traversable only (0711), as containerd makes /run/containerd: clients of
            // the socket's group reach it without seeing what else the directory holds.
            if !Files.isDirectory(dir) { try Files.makeDirectories(dir, mode: 0o711) }
            lock = try FD.open(path + ".lock", O_RDWR | O_CREAT, mode: 0o600)
        } catch {
            throw HuskError(.system, "cannot prepare \(path)", cause: error)
        }
        if flock(lock.raw, LOCK_EX | LOCK_NB) != 0 {
            let e = currentErrno
            guard e == .wouldBlock else { throw HuskError(.system, "cannot lock \(path).lock: \(e.text)") }
            let owner = (try? Files.readString(path + ".lock"))?.trimmed() ?? ""
            throw HuskError(.alreadyExists, "\(path): another husk serve\(owner.isEmpty ? "" : " (pid \(owner))") is serving it")
        }
        try removeStale()
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(lock.raw, 0)
        _ = pid.withUnsafeBytes { pwrite(lock.raw, $0.baseAddress, $0.count, 0) }
    }

    /// Removes a socket file nobody answers on; refuses a live socket or a non-socket.
    private func removeStale() throws(HuskError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if currentErrno == .noSuchFileOrDirectory { return }
            throw HuskError(.system, "cannot inspect \(path): \(currentErrno.text)")
        }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw HuskError(.alreadyExists, "\(path) exists and is not a socket; refusing to replace it")
        }
        do {
            _ = try UnixSocket.connect(path)
            throw HuskError(.alreadyExists, "\(path): a server answers on this socket (not a husk serve of this lock); refusing to replace it")
        } catch let e as HuskError {
            throw e
        } catch let e as SystemCallError where e.errno == .connectionRefused {
            // Nobody listens: a daemon died without cleaning up.
            guard unlink(path) == 0 || currentErrno == .noSuchFileOrDirectory else {
                throw HuskError(.system, "cannot remove the stale socket \(path): \(currentErrno.text)")
            }
            CRILog.info("removed the stale socket \(path) (nobody answered on it)")
        } catch {
            throw HuskError(.system, "cannot tell whether \(path) is in use", cause: error)
        }
    }

    /// Called once the transport listens: sets the socket's mode and remembers its inode.
    func listening() throws(HuskError) {
        guard chmod(path, Self.mode) == 0 else {
            throw HuskError(.system, "cannot chmod \(path): \(currentErrno.text)")
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { throw HuskError(.system, "cannot inspect \(path): \(currentErrno.text)") }
        bound.withLock { $0 = (UInt64(st.st_dev), UInt64(st.st_ino)) }
    }

    /// Removes the socket file if it is still the one this daemon bound.
    func remove() {
        guard let mine = bound.withLock({ $0 }) else { return }
        var st = stat()
        if lstat(path, &st) == 0, UInt64(st.st_dev) == mine.dev, UInt64(st.st_ino) == mine.ino {
            unlink(path)
        }
    }
}
