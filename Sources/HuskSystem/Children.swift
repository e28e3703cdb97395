import CShim

#if canImport(Glibc)
import Glibc
#endif

/// The children this process started and will reap itself (through their pidfds), so that a
/// subreaper can reap everything else — orphans reparented to it — without stealing an exit
/// status someone is waiting for. `Spawner` registers; `PidFD` unregisters when it reaps.
public enum Children {
    nonisolated(unsafe) private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    nonisolated(unsafe) private static var owned: Set<pid_t> = []
    nonisolated(unsafe) private static var inFlight = 0

    /// Before a clone: until `spawned` is called, orphans are not reaped (the new pid is not
    /// registered yet).
    public static func willSpawn() {
        pthread_mutex_lock(lock)
        inFlight += 1
        pthread_mutex_unlock(lock)
    }

    /// After a clone: `pid` (nil when the clone failed) is ours.
    public static func spawned(_ pid: pid_t?) {
        pthread_mutex_lock(lock)
        if let pid { owned.insert(pid) }
        inFlight -= 1
        pthread_mutex_unlock(lock)
    }

    /// `pid` was reaped by its owner.
    public static func reaped(_ pid: pid_t) {
        pthread_mutex_lock(lock)
        owned.remove(pid)
        pthread_mutex_unlock(lock)
    }

    /// Reaps every exited child that nobody registered (orphans a subreaper inherited). Returns
    /// false when a spawn was in progress and the caller should try again shortly.
    @discardableResult
    public static func reapOrphans() -> Bool {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if inFlight > 0 { return false }
        for pid in listChildren() where !owned.contains(pid) {
            var info = siginfo_t()
            _ = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG)
        }
        return true
    }

    /// Makes this process a child subreaper: orphans among its descendants are reparented to
    /// it rather than to init (and must be reaped here, `reapOrphans`). The underlying call is
    /// `prctl(PR_SET_CHILD_SUBREAPER)`.
    public static func becomeSubreaper() throws(SystemCallError) {
        try syscall("prctl", "PR_SET_CHILD_SUBREAPER") { cshim_set_child_subreaper(1) }
    }

    /// The children of every thread of this process (/proc/self/task/*/children).
    public static func listChildren() -> [pid_t] {
        var out: [pid_t] = []
        guard let dir = opendir("/proc/self/task") else { return out }
        defer { closedir(dir) }
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String.fromCBytes($0) }
            guard let tid = Int32(name) else { continue }
            guard let text = (try? Files.readString("/proc/self/task/\(tid)/children")) ?? nil else { continue }
            for field in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
                if let p = Int32(field) { out.append(p) }
            }
        }
        return out
    }
}
