import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One cgroup v2 interface file Husk writes for a pod or a container (or an OCI
/// container's `linux.resources`), the controller it needs,
/// and the field that asked for it (nil: a default kubelet always sets, such as the cpu
/// weight of a container without a cpu request, which is skipped silently when the host
/// lacks the controller).
public struct CgroupLimit: Sendable, Equatable {
    public var file: String
    public var value: String
    public var controller: String
    public var field: String?

    public init(file: String, value: String, controller: String, field: String?) {
        self.file = file
        self.value = value
        self.controller = controller
        self.field = field
    }
}

/// The cgroup v2 hierarchy of this host (DESIGN §7): found in /proc/self/mountinfo, never
/// assumed to be at /sys/fs/cgroup (this machine is hybrid: /sys/fs/cgroup/unified).
public struct Cgroup2Mount: Sendable, Equatable {
    /// Where cgroup2 is mounted, e.g. "/sys/fs/cgroup" or "/sys/fs/cgroup/unified".
    public let path: String

    public init(path: String) { self.path = path }

    /// The first cgroup2 mount of this process, or nil when there is none.
    public static func discover() throws(SystemCallError) -> Cgroup2Mount? {
        for m in try MountInfo.read() where m.fsType == "cgroup2" {
            return Cgroup2Mount(path: m.mountPoint)
        }
        return nil
    }

    /// The cgroup2 group of this process ("0::/a/b" in /proc/self/cgroup), as "/a/b".
    public static func ownGroup() -> String {
        guard let text = try? Files.readString("/proc/self/cgroup") else { return "/" }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return "/"
    }

    /// Controllers available at the root of this hierarchy (cgroup.controllers).
    public func rootControllers() -> Set<String> {
        Cgroup2Group(mount: self, path: "/").controllers()
    }

    /// The group at `path` (absolute inside the hierarchy, e.g. "/husk/runc/c1").
    public func group(_ path: String) -> Cgroup2Group { Cgroup2Group(mount: self, path: path) }
}

/// One cgroup v2 directory.
public struct Cgroup2Group: Sendable, Equatable {
    public let mount: Cgroup2Mount
    /// Absolute inside the hierarchy ("/husk/runc/c1").
    public let path: String

    public init(mount: Cgroup2Mount, path: String) {
        self.mount = mount
        self.path = Files.clean(path)
    }

    /// The directory on the host.
    public var directory: String { path == "/" ? mount.path : mount.path + path }

    public var exists: Bool { Files.isDirectory(directory) }

    public var parent: Cgroup2Group? {
        guard path != "/" else { return nil }
        var comps = path.split(separator: "/")
        comps.removeLast()
        return Cgroup2Group(mount: mount, path: "/" + comps.joined(separator: "/"))
    }

    /// Creates the group and missing parents; returns the paths (inside the hierarchy) it
    /// created, outermost first. Tolerates a concurrent creator of a parent.
    @discardableResult
    public func create() throws(SystemCallError) -> [String] {
        var created: [String] = []
        var attempt = 0
        // Another container may remove a shared, empty parent between our mkdirs (it prunes
        // what it created): start again from the top when a parent vanishes.
        outer: while true {
            attempt += 1
            var prefix = ""
            for comp in path.split(separator: "/") {
                prefix += "/" + comp
                let dir = mount.path + prefix
                if mkdir(dir, 0o755) == 0 {
                    created.append(prefix)
                } else {
                    let e = currentErrno
                    if e == .fileExists { continue }
                    if e == .noSuchFileOrDirectory && attempt < 100 { continue outer }
                    throw SystemCallError("mkdir", dir, e)
                }
            }
            break
        }
        var seen: Set<String> = []
        return created.filter { seen.insert($0).inserted }
    }

    /// An fd of the directory for clone3(CLONE_INTO_CGROUP).
    public func open() throws(SystemCallError) -> FD {
        try FD.open(directory, O_RDONLY | O_DIRECTORY)
    }

    public func read(_ file: String) -> String? {
        (try? Files.readString(directory + "/" + file)).flatMap { $0 }
    }

    public func write(_ file: String, _ value: String) throws(SystemCallError) {
        try Files.writeValue(directory + "/" + file, value)
    }

    public func controllers() -> Set<String> {
        Set((read("cgroup.controllers") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    }

    /// The pids in cgroup.procs.
    public func processes() -> [pid_t] {
        (read("cgroup.procs") ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }

    /// `populated` of cgroup.events: whether any process is in this group or below.
    public var populated: Bool {
        guard let ev = read("cgroup.events") else { return false }
        for line in ev.split(separator: "\n") where line.hasPrefix("populated ") {
            return line.hasSuffix("1")
        }
        return false
    }

    /// SIGKILLs every process of the group and its descendants (cgroup.kill, Linux 5.14).
    public func kill() throws(SystemCallError) {
        try write("cgroup.kill", "1")
    }

    /// cgroup.freeze.
    public func freeze(_ on: Bool) throws(SystemCallError) {
        try write("cgroup.freeze", on ? "1" : "0")
    }

    /// Kills what is left and waits until the group is empty, keeping it (a group that
    /// existed before the container that used it).
    public func drain(timeout: Double = 10) throws(SystemCallError) {
        let deadline = Clock.monotonicSeconds() + timeout
        while exists && populated {
            try? kill()
            if Clock.monotonicSeconds() >= deadline { throw SystemCallError("cgroup.kill", directory, .resourceBusy) }
            usleep(2000)
        }
    }

    /// Kills what is left, waits until the group is empty, then removes it, retrying while
    /// the kernel still reports it busy. Then walks up removing empty ancestors for which
    /// `prune` says yes, stopping at the first one still in use (creators retry when a parent
    /// vanishes under them, see `create`).
    public func remove(timeout: Double = 10, prune: (String) -> Bool = { _ in false }) throws(SystemCallError) {
        let deadline = Clock.monotonicSeconds() + timeout
        if exists {
            if populated { try? kill() }
            while true {
                if rmdir(directory) == 0 { break }
                let e = currentErrno
                if e == .noSuchFileOrDirectory { break }
                if (e == .resourceBusy || e == .directoryNotEmpty) && Clock.monotonicSeconds() < deadline {
                    if populated { try? kill() }
                    usleep(2000)
                    continue
                }
                throw SystemCallError("rmdir", directory, e)
            }
        }
        var ancestor = parent
        while let a = ancestor, a.path != "/", prune(a.path) {
            if rmdir(a.directory) != 0 && currentErrno != .noSuchFileOrDirectory { break }
            ancestor = a.parent
        }
    }
}
