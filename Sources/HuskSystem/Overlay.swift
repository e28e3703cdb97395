import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// overlayfs mounts: a container's root filesystem is its image's snapshots (read-only lower
/// layers) plus a private upper directory.
public enum Overlay {
    /// Mounts an overlay at `target`.
    /// - Parameters:
    ///   - lower: lower directories, **lowest layer first** (the order images list layers).
    ///   - upper, work: the writable layer and overlayfs's work dir (same filesystem); nil for a
    ///     read-only overlay (then at least two lower layers are needed, or one is bound).
    /// Uses the new mount API with one `lowerdir+` per layer (Linux 6.8), so no option string
    /// limits the number of layers; falls back to mount(2).
    public static func mount(lower: [String], upper: String?, work: String?, target: String) throws(SystemCallError) {
        precondition(!lower.isEmpty)
        if lower.count == 1 && upper == nil {
            // overlayfs wants two lower layers when there is no upper one: a read-only bind.
            try syscall("mount", target) { cshim_mount(lower[0], target, nil, UInt(CSHIM_MS_BIND), nil) }
            try syscall("mount", target) {
                cshim_mount(nil, target, nil, UInt(CSHIM_MS_BIND | CSHIM_MS_REMOUNT | CSHIM_MS_RDONLY), nil)
            }
            return
        }
        let fs = cshim_fsopen("overlay", CSHIM_FSOPEN_CLOEXEC)
        if fs >= 0 {
            let fsfd = FD(adopting: fs)
            var ok = true
            // lowerdir+ takes the topmost layer first.
            for dir in lower.reversed() where ok {
                ok = cshim_fsconfig(fsfd.raw, CSHIM_FSCONFIG_SET_STRING, "lowerdir+", dir, 0) == 0
            }
            if ok, let upper, let work {
                ok = cshim_fsconfig(fsfd.raw, CSHIM_FSCONFIG_SET_STRING, "upperdir", upper, 0) == 0
                    && cshim_fsconfig(fsfd.raw, CSHIM_FSCONFIG_SET_STRING, "workdir", work, 0) == 0
            }
            if ok {
                try syscall("fsconfig", target) { cshim_fsconfig(fsfd.raw, CSHIM_FSCONFIG_CMD_CREATE, nil, nil, 0) }
                let mnt = FD(adopting: try syscall("fsmount", target) { cshim_fsmount(fsfd.raw, CSHIM_FSMOUNT_CLOEXEC, 0) })
                try syscall("move_mount", target) {
                    cshim_move_mount(mnt.raw, "", CSHIM_AT_FDCWD, target, CSHIM_MOVE_MOUNT_F_EMPTY_PATH)
                }
                return
            }
            if currentErrno != .invalidArgument { throw SystemCallError("fsconfig", target, currentErrno) }
        }
        // mount(2): lowerdir=top:...:bottom
        var data = "lowerdir=" + lower.reversed().joined(separator: ":")
        if let upper, let work { data += ",upperdir=\(upper),workdir=\(work)" }
        try syscall("mount", target) { cshim_mount("overlay", target, "overlay", 0, data) }
    }

    /// Detaches a mount (lazily, so a busy one goes when its last user does).
    public static func unmount(_ target: String) throws(SystemCallError) {
        try syscall("umount2", target) { cshim_umount2(target, CSHIM_MNT_DETACH) }
    }
}
