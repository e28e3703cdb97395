import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a directory tree takes on disk, as `du` counts it and as CRI's filesystem usage
/// (ImageFsInfo, a container's writable layer) reports it: allocated bytes and inodes.
public struct DiskUsage: Sendable, Equatable {
    /// Allocated bytes (`st_blocks` × 512), each inode counted once.
    public var bytes: UInt64 = 0
    /// Inodes: every file, directory and symlink, hard links counted once.
    public var inodes: UInt64 = 0

    public init(bytes: UInt64 = 0, inodes: UInt64 = 0) {
        self.bytes = bytes
        self.inodes = inodes
    }

    /// Walks the tree at `path` without following symlinks and without crossing into other
    /// filesystems (a mount below it is not counted). Entries that vanish during the walk are
    /// skipped. The underlying calls are `openat(2)`, `getdents64(2)` (readdir) and `fstatat(2)`.
    public static func of(_ path: String) throws(SystemCallError) -> DiskUsage {
        let top = try FD.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        var st = stat()
        try syscall("fstat", path) { fstat(top.raw, &st) }
        var walk = Walk(device: st.st_dev)
        walk.count(st)
        try walk.directory(top, path)
        return walk.usage
    }

    private struct Inode: Hashable {
        let dev: UInt64
        let ino: UInt64
    }

    private struct Walk {
        let device: dev_t
        var usage = DiskUsage()
        var seen = Set<Inode>()

        mutating func count(_ st: stat) {
            if st.st_nlink > 1 && (st.st_mode & S_IFMT) != S_IFDIR {
                guard seen.insert(Inode(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))).inserted else { return }
            }
            usage.bytes += UInt64(st.st_blocks) * 512
            usage.inodes += 1
        }

        /// Counts what `dir` holds; its own inode is already counted. One fd per level is open.
        mutating func directory(_ dir: FD, _ path: String) throws(SystemCallError) {
            var subdirs: [String] = []
            // fdopendir takes the fd it is given: hand it a duplicate, `dir` stays ours.
            let copy = try syscall("dup", path) { fcntl(dir.raw, F_DUPFD_CLOEXEC, 0) }
            guard let stream = fdopendir(copy) else {
                let e = currentErrno
                close(copy)
                throw SystemCallError("fdopendir", path, e)
            }
            defer { closedir(stream) }
            while let ent = readdir(stream) {
                let name = direntName(ent)
                if name == "." || name == ".." { continue }
                var st = stat()
                if fstatat(dir.raw, name, &st, AT_SYMLINK_NOFOLLOW) != 0 {
                    if currentErrno == .noSuchFileOrDirectory { continue }
                    throw SystemCallError("fstatat", path + "/" + name, currentErrno)
                }
                if st.st_dev != device { continue }
                count(st)
                if (st.st_mode & S_IFMT) == S_IFDIR { subdirs.append(name) }
            }
            for name in subdirs {
                let child: FD
                do {
                    child = try dir.openat(name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                } catch {
                    if error.errno == .noSuchFileOrDirectory { continue }
                    throw error
                }
                try directory(child, path + "/" + name)
            }
        }
    }
}
