import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// kubelet's volume manager for the volume types Husk has: emptyDirs are created (mode
/// 0777; medium Memory is a tmpfs of sizeLimit) and hostPaths checked or created as their
/// type says, before the sandbox exists; memory emptyDirs are unmounted after it is gone.
struct PodVolumes {
    let pod: Pod
    let paths: PodPaths

    /// Sets up every volume. Errors start with `MountVolume.` when kubelet reports them as
    /// such (event FailedMount).
    func prepare() throws(HuskError) {
        for v in pod.spec.volumes {
            switch v.source {
            case .emptyDir(let medium, let limit):
                let dir = paths.emptyDir(v.name)
                do {
                    try Files.makeDirectories(dir, mode: 0o777)
                    chmod(dir, 0o777)
                    if medium == "Memory" && !mounted().contains(dir) {
                        var data = "mode=1777"
                        if let limit { data += ",size=\(limit)" }
                        try Mount.mount("tmpfs", on: dir, type: "tmpfs", flags: [.noSetID, .noDevices], data: data)
                    }
                } catch {
                    throw HuskError(.system, "volume \(v.name): cannot create the emptyDir \(dir)", cause: error)
                }
            case .hostPath(let path, let type):
                try checkHostPath(volume: v.name, path: path, type: type)
            }
        }
    }

    /// Unmounts the pod's memory emptyDirs (whatever supervisor mounted them).
    func teardown() {
        let memory = pod.spec.volumes.compactMap { v -> String? in
            guard case .emptyDir(let medium, _) = v.source, medium == "Memory" else { return nil }
            return paths.emptyDir(v.name)
        }
        // Only pods with memory emptyDirs read the mount table (a stop's time is a benchmark figure).
        guard !memory.isEmpty else { return }
        let mounted = mounted()
        for dir in memory where mounted.contains(dir) { try? Mount.unmount(dir, detach: true) }
    }

    func mounted() -> Set<String> {
        Set(((try? MountInfo.read()) ?? []).map(\.mountPoint))
    }

    func checkHostPath(volume: String, path: String, type: String) throws(HuskError) {
        var st = stat()
        let exists = stat(path, &st) == 0
        let kind = st.st_mode & S_IFMT
        func fail(_ what: String) -> HuskError {
            // kubelet's GenerateError ("%v for volume %q %v" with ": <err>") and hostpath's checkTypeInternal.
            HuskError(.invalidArgument, "MountVolume.SetUp failed for volume \"\(volume)\" : hostPath type check failed: \(path) is not \(what)")
        }
        switch type {
        case "DirectoryOrCreate":
            if !exists {
                do {
                    try Files.makeDirectories(path, mode: 0o755)
                } catch {
                    throw HuskError(.system, "volume \(volume): cannot create \(path)", cause: error)
                }
            } else if kind != S_IFDIR {
                throw fail("a directory")
            }
        case "Directory": if !exists || kind != S_IFDIR { throw fail("a directory") }
        case "FileOrCreate":
            if !exists {
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
                if fd < 0 { throw HuskError(.system, "volume \(volume): cannot create \(path): \(currentErrno.text)") }
                close(fd)
            } else if kind != S_IFREG {
                throw fail("a file")
            }
        case "File": if !exists || kind != S_IFREG { throw fail("a file") }
        case "Socket": if !exists || kind != S_IFSOCK { throw fail("a socket file") }
        case "CharDevice": if !exists || kind != S_IFCHR { throw fail("a character device") }
        case "BlockDevice": if !exists || kind != S_IFBLK { throw fail("a block device") }
        default:  // "": no check; a missing path is made a directory when a container mounts it (containerd)
            break
        }
    }
}
