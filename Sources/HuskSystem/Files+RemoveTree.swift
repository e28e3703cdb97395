import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Files {
    /// rm -rf without crossing mount points and without following symlinks, at any depth.
    ///
    /// The walk is relative to directory descriptors (`openat`, `unlinkat`), never to full
    /// paths, so a tree deeper than PATH_MAX goes too (issue 16 #3). At most `openLevels`
    /// directories are held open: a level whose descriptor was closed is opened again through
    /// `..` of its child and checked to be the same directory (device and inode) as before.
    /// Something already gone (another remover got there first) counts as removed. Any other
    /// failure stops the walk and is thrown with the path of the entry that could not go.
    public static func removeTree(_ path: String) throws(SystemCallError) {
        // A tree that vanished from under a reopened level is walked again from the top; that
        // can happen only with concurrent removers, and each pass removes something or ends.
        for _ in 0..<64 {
            if try removeTreeOnce(path) { return }
        }
        throw SystemCallError("rmdir", path, .resourceBusy)
    }

    static let openLevels = 32

    /// One directory being emptied: its descriptor (-1 once closed to save descriptors), its
    /// identity, its name in its parent and the entries still to remove.
    private struct Level {
        var fd: Int32
        var dev: UInt64
        var ino: UInt64
        /// The name as the directory holds it, NUL-terminated: not every name is UTF-8.
        var name: [CChar]
        var pending: [(name: [CChar], isDirectory: Bool?)]
    }

    /// Returns false when the walk must start again from the top.
    private static func removeTreeOnce(_ path: String) throws(SystemCallError) -> Bool {
        var st = stat()
        if lstat(path, &st) != 0 {
            if currentErrno == .noSuchFileOrDirectory { return true }
            throw SystemCallError("lstat", path, currentErrno)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            if unlink(path) != 0 && currentErrno != .noSuchFileOrDirectory {
                throw SystemCallError("unlink", path, currentErrno)
            }
            return true
        }
        let rootDev = UInt64(st.st_dev)
        let rootFD = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if rootFD < 0 {
            if currentErrno == .noSuchFileOrDirectory { return true }
            throw SystemCallError("open", path, currentErrno)
        }
        var levels: [Level] = []
        defer { for l in levels where l.fd >= 0 { close(l.fd) } }
        func where_(_ name: [CChar]? = nil) -> String {
            var p = path
            for l in levels.dropFirst() { p += "/" + display(l.name) }
            if let name { p += "/" + display(name) }
            return p
        }
        var rst = stat()
        fstat(rootFD, &rst)
        levels.append(Level(fd: rootFD, dev: UInt64(rst.st_dev), ino: UInt64(rst.st_ino), name: [0], pending: []))
        do {
            levels[0].pending = try entries(rootFD)
        } catch {
            throw SystemCallError("readdir", path, error)
        }
        while !levels.isEmpty {
            let top = levels.count - 1
            if let entry = levels[top].pending.popLast() {
                let fd = levels[top].fd
                if entry.isDirectory == false {
                    if unlinkat(fd, entry.name, 0) == 0 || currentErrno == .noSuchFileOrDirectory { continue }
                    if currentErrno != .isDirectory { throw SystemCallError("unlink", where_(entry.name), currentErrno) }
                }
                var cst = stat()
                if fstatat(fd, entry.name, &cst, AT_SYMLINK_NOFOLLOW) != 0 {
                    if currentErrno == .noSuchFileOrDirectory { continue }
                    throw SystemCallError("lstat", where_(entry.name), currentErrno)
                }
                guard (cst.st_mode & S_IFMT) == S_IFDIR else {
                    if unlinkat(fd, entry.name, 0) != 0 && currentErrno != .noSuchFileOrDirectory {
                        throw SystemCallError("unlink", where_(entry.name), currentErrno)
                    }
                    continue
                }
                if UInt64(cst.st_dev) != rootDev {
                    throw SystemCallError("rmdir", where_(entry.name), .resourceBusy)  // a mount point: never cross it
                }
                let child = openat(fd, entry.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if child < 0 {
                    if currentErrno == .noSuchFileOrDirectory { continue }
                    throw SystemCallError("open", where_(entry.name), currentErrno)
                }
                var level = Level(fd: child, dev: UInt64(cst.st_dev), ino: UInt64(cst.st_ino), name: entry.name, pending: [])
                do {
                    level.pending = try entries(child)
                } catch {
                    close(child)
                    throw SystemCallError("readdir", where_(entry.name), error)
                }
                levels.append(level)
                // Keep at most `openLevels` descriptors: close the oldest one still open.
                let oldest = levels.count - 1 - openLevels
                if oldest >= 0, levels[oldest].fd >= 0 {
                    close(levels[oldest].fd)
                    levels[oldest].fd = -1
                }
                continue
            }
            // This level is empty: remove it from its parent.
            let done = levels.removeLast()
            guard let parentIndex = levels.indices.last else {
                close(done.fd)
                if rmdir(path) != 0 && currentErrno != .noSuchFileOrDirectory { throw SystemCallError("rmdir", path, currentErrno) }
                return true
            }
            if levels[parentIndex].fd < 0 {
                let parent = openat(done.fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                var pst = stat()
                if parent < 0 || fstat(parent, &pst) != 0 || UInt64(pst.st_dev) != levels[parentIndex].dev
                    || UInt64(pst.st_ino) != levels[parentIndex].ino
                {
                    // Moved or removed meanwhile: start again from the top.
                    if parent >= 0 { close(parent) }
                    close(done.fd)
                    return false
                }
                levels[parentIndex].fd = parent
            }
            close(done.fd)
            if unlinkat(levels[parentIndex].fd, done.name, AT_REMOVEDIR) != 0 && currentErrno != .noSuchFileOrDirectory {
                throw SystemCallError("rmdir", where_(done.name), currentErrno)
            }
        }
        return true
    }

    /// The entries of an open directory (without . and ..), with whether each is a directory
    /// when readdir knows it. `fd` stays open and owned by the caller.
    private static func entries(_ fd: Int32) throws(Errno) -> [(name: [CChar], isDirectory: Bool?)] {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            let e = currentErrno
            if copy >= 0 { close(copy) }
            throw e
        }
        defer { closedir(dir) }
        var out: [(name: [CChar], isDirectory: Bool?)] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw -> [CChar] in
                let bytes = raw.bindMemory(to: CChar.self)
                let end = bytes.firstIndex(of: 0) ?? bytes.count
                return Array(bytes[..<end]) + [0]
            }
            if name == [46, 0] || name == [46, 46, 0] { continue }  // . and ..
            let type = ent.pointee.d_type
            out.append((name, type == UInt8(DT_UNKNOWN) ? nil : type == UInt8(DT_DIR)))
        }
        return out
    }

    /// A raw name for messages (invalid UTF-8 shown as U+FFFD).
    private static func display(_ name: [CChar]) -> String {
        String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
