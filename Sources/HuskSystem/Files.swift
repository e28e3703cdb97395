import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Small file helpers on top of the C library: whole-file reads, atomic writes, directories.
public enum Files {
    /// The whole file, or nil when it does not exist.
    public static func read(_ path: String) throws(SystemCallError) -> [UInt8]? {
        let fd: FD
        do {
            fd = try FD.open(path, O_RDONLY)
        } catch {
            if error.errno == .noSuchFileOrDirectory { return nil }
            throw error
        }
        return try fd.readAll()
    }

    /// The whole file as UTF-8 text, or nil when it does not exist.
    public static func readString(_ path: String) throws(SystemCallError) -> String? {
        guard let bytes = try read(path) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes a file atomically: a temporary file in the same directory, fsync, rename.
    /// Without `durable` there is no fsync: readers and a process that crashes still see the
    /// old file or the new one, whole; only a machine crash can lose the write. For state
    /// that does not outlive a reboot, written where a wait on the disk would be felt.
    public static func writeAtomically(_ path: String, _ bytes: some Collection<UInt8>, mode: mode_t = 0o644, durable: Bool = true)
        throws(SystemCallError)
    {
        let tmp = "\(path).tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = try FD.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: mode)
        do {
            try fd.writeAll(bytes)
            if durable { try syscall("fsync", tmp) { fsync(fd.raw) } }
            try syscall("rename", path) { rename(tmp, path) }
        } catch {
            unlink(tmp)
            throw error
        }
    }

    /// Writes a small value into an existing (kernel) file, e.g. a cgroup or /proc file.
    public static func writeValue(_ path: String, _ value: String) throws(SystemCallError) {
        let fd = try FD.open(path, O_WRONLY)
        try fd.writeAll(Array(value.utf8))
    }

    /// Whether something exists at `path` (without following a final symlink).
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Whether `path` is a directory (following symlinks).
    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// mkdir -p; returns the directories it created, outermost first.
    @discardableResult
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemCallError) -> [String] {
        var created: [String] = []
        var prefix = path.hasPrefix("/") ? "" : "."
        for comp in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + comp
            if mkdir(prefix, mode) == 0 {
                created.append(prefix)
            } else {
                let e = currentErrno
                if e == .fileExists, isDirectory(prefix) { continue }
                throw SystemCallError("mkdir", prefix, e)
            }
        }
        return created
    }

    /// Writes back every dirty page of the filesystem that holds `fd`: a durable point before a
    /// rename makes what was written there visible. `path` names the fd in errors. The underlying
    /// call is `syncfs(2)`.
    public static func syncFilesystem(of fd: FD, path: String = "") throws(SystemCallError) {
        try syscall("syncfs", path) { cshim_syncfs(fd.raw) }
    }

    /// The size of the extended attribute `name` of `path` (a final symlink is not followed), or
    /// nil when the file has no such attribute or its filesystem has no xattrs at all. The
    /// underlying call is `lgetxattr(2)` without a buffer.
    public static func xattrSize(_ path: String, _ name: String) throws(SystemCallError) -> Int? {
        do {
            return try syscall("lgetxattr", path) { cshim_xattr_size(path, name) }
        } catch {
            if error.errno == .noData || error.errno == .notSupported { return nil }
            throw error
        }
    }

    /// The names in a directory (without . and ..), or nil when it does not exist.
    public static func list(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = direntName(ent)
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// An absolute, lexically cleaned path (no symlink resolution).
    public static func absolute(_ path: String, relativeTo base: String? = nil) -> String {
        var full = path
        if !path.hasPrefix("/") {
            let b = base ?? currentDirectory()
            full = b + "/" + path
        }
        return clean(full)
    }

    /// Lexical cleaning: collapses "//", "." and ".." (never above "/").
    public static func clean(_ path: String) -> String {
        var parts: [Substring] = []
        for comp in path.split(separator: "/", omittingEmptySubsequences: true) {
            if comp == "." { continue }
            if comp == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(comp)
        }
        return "/" + parts.joined(separator: "/")
    }

    public static func currentDirectory() -> String {
        var buf = [UInt8](repeating: 0, count: Int(PATH_MAX))
        let ok = buf.withUnsafeMutableBytes { p in getcwd(p.baseAddress!.assumingMemoryBound(to: CChar.self), p.count) != nil }
        guard ok else { return "/" }
        return buf.withUnsafeBytes { String.fromCBytes($0) }
    }
}

/// The name of a directory entry.
func direntName(_ ent: UnsafeMutablePointer<dirent>) -> String {
    withUnsafeBytes(of: ent.pointee.d_name) { raw in String.fromCBytes(raw) }
}

extension String {
    /// The string up to the first NUL of a fixed C buffer.
    public static func fromCBytes(_ raw: UnsafeRawBufferPointer) -> String {
        let bytes = raw.bindMemory(to: UInt8.self)
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[0..<end]), as: UTF8.self)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs, newlines and NULs.
    public func trimmed() -> String {
        let drop: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\0" }
        guard let first = firstIndex(where: { !drop($0) }), let last = lastIndex(where: { !drop($0) }) else { return "" }
        return String(self[first...last])
    }
}
