import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The flags of mount(2) (MS_*, linux/mount.h): per-mount options, the kind of operation
/// (bind, move, remount) and propagation. `rawValue` is what mount(2) takes; the spawn bridge
/// hands it to the child executor as is.
public struct MountFlags: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt

    public init(rawValue: UInt) { self.rawValue = rawValue }

    public static let readOnly = MountFlags(rawValue: UInt(CSHIM_MS_RDONLY))
    public static let noSetID = MountFlags(rawValue: UInt(CSHIM_MS_NOSUID))
    public static let noDevices = MountFlags(rawValue: UInt(CSHIM_MS_NODEV))
    public static let noExec = MountFlags(rawValue: UInt(CSHIM_MS_NOEXEC))
    public static let synchronous = MountFlags(rawValue: UInt(CSHIM_MS_SYNCHRONOUS))
    public static let remount = MountFlags(rawValue: UInt(CSHIM_MS_REMOUNT))
    public static let mandatoryLocks = MountFlags(rawValue: UInt(CSHIM_MS_MANDLOCK))
    public static let directorySync = MountFlags(rawValue: UInt(CSHIM_MS_DIRSYNC))
    public static let noSymlinkFollow = MountFlags(rawValue: UInt(CSHIM_MS_NOSYMFOLLOW))
    public static let noAccessTime = MountFlags(rawValue: UInt(CSHIM_MS_NOATIME))
    public static let noDirectoryAccessTime = MountFlags(rawValue: UInt(CSHIM_MS_NODIRATIME))
    public static let bind = MountFlags(rawValue: UInt(CSHIM_MS_BIND))
    public static let move = MountFlags(rawValue: UInt(CSHIM_MS_MOVE))
    /// MS_REC: a bind or a propagation change applies to every mount below too.
    public static let recursive = MountFlags(rawValue: UInt(CSHIM_MS_REC))
    public static let silent = MountFlags(rawValue: UInt(CSHIM_MS_SILENT))
    public static let unbindable = MountFlags(rawValue: UInt(CSHIM_MS_UNBINDABLE))
    public static let `private` = MountFlags(rawValue: UInt(CSHIM_MS_PRIVATE))
    public static let slave = MountFlags(rawValue: UInt(CSHIM_MS_SLAVE))
    public static let shared = MountFlags(rawValue: UInt(CSHIM_MS_SHARED))
    public static let relativeAccessTime = MountFlags(rawValue: UInt(CSHIM_MS_RELATIME))
    public static let strictAccessTime = MountFlags(rawValue: UInt(CSHIM_MS_STRICTATIME))
    public static let lazyTime = MountFlags(rawValue: UInt(CSHIM_MS_LAZYTIME))
    /// MS_I_VERSION: i_version counting (linux/mount.h; glibc has no name for it).
    public static let iVersion = MountFlags(rawValue: 1 << 23)

    /// The flags with the names mount(8) and /proc/self/mountinfo use, in bit order.
    public static let named: [(name: String, flag: MountFlags)] = [
        ("ro", .readOnly), ("nosuid", .noSetID), ("nodev", .noDevices), ("noexec", .noExec),
        ("sync", .synchronous), ("remount", .remount), ("mand", .mandatoryLocks), ("dirsync", .directorySync),
        ("nosymfollow", .noSymlinkFollow), ("noatime", .noAccessTime), ("nodiratime", .noDirectoryAccessTime),
        ("bind", .bind), ("move", .move), ("rec", .recursive), ("silent", .silent), ("unbindable", .unbindable),
        ("private", .private), ("slave", .slave), ("shared", .shared), ("relatime", .relativeAccessTime),
        ("iversion", .iVersion), ("strictatime", .strictAccessTime), ("lazytime", .lazyTime),
    ]

    /// The names of the flags in the set, in bit order.
    public var names: [String] {
        Self.named.filter { contains($0.flag) }.map(\.name)
    }

    /// "ro,nosuid,rec"; bits without a name in hex; "none" for the empty set.
    public var description: String {
        var parts = names
        let known = Self.named.reduce(MountFlags()) { $0.union($1.flag) }
        let rest = subtracting(known)
        if !rest.isEmpty { parts.append("0x" + String(rest.rawValue, radix: 16)) }
        return parts.isEmpty ? "none" : parts.joined(separator: ",")
    }
}

/// Mounting and unmounting in this process's mount namespace.
public enum Mount {
    /// Mounts `source` (a device, a directory to bind, or a name such as "tmpfs") on `target`.
    /// - Parameters:
    ///   - type: the filesystem type; nil for a bind, a move, a remount or a propagation change.
    ///   - data: filesystem options ("mode=1777,size=65536k").
    /// The underlying call is `mount(2)`.
    public static func mount(
        _ source: String?, on target: String, type: String?, flags: MountFlags = [], data: String? = nil
    ) throws(SystemCallError) {
        try syscall("mount", target) {
            withOptionalCString(source) { src in
                withOptionalCString(type) { fstype in
                    withOptionalCString(data) { d in cshim_mount(src, target, fstype, flags.rawValue, d) }
                }
            }
        }
    }

    /// Unmounts `target`; with `detach`, lazily (MNT_DETACH): it leaves the tree at once and
    /// goes away when its last user does. The underlying call is `umount2(2)`.
    public static func unmount(_ target: String, detach: Bool = false) throws(SystemCallError) {
        try syscall("umount2", target) { cshim_umount2(target, detach ? CSHIM_MNT_DETACH : 0) }
    }

    /// A detached copy (CLOEXEC) of the mount at `fd` (and with `recursive` of every mount
    /// below it), to attach elsewhere with move_mount(2), even from another mount namespace.
    /// The underlying call is `open_tree(2)` with OPEN_TREE_CLONE and AT_EMPTY_PATH.
    public static func cloneTree(at fd: FD, recursive: Bool = true) throws(SystemCallError) -> FD {
        var flags = CSHIM_OPEN_TREE_CLONE | CSHIM_OPEN_TREE_CLOEXEC | CSHIM_AT_EMPTY_PATH
        if recursive { flags |= CSHIM_AT_RECURSIVE }
        return FD(adopting: try syscall("open_tree", fd.procPath) { cshim_open_tree(fd.raw, "", flags) })
    }
}

/// `body` with a C string for `text`, or with nil.
func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
