import FoundationEssentials
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// The pause executable in a sealed memfd: seen from a container through /proc/<pause>/exe
/// it is `memfd:husk-pause`, read-only, never the host's filesystem or a writable binary
/// (security.md, Husk-specific rows).
public enum PauseExecutable {
    /// A memfd holding the pause executable, sealed against every change.
    public static func open() throws(HuskError) -> FD {
        try SealedExecutable.open("husk-pause", base64: pauseExecutableBase64)
    }

    public static var size: Int { (pauseExecutableBase64.count / 4) * 3 }
}

/// The keeper executable (keeper.c) in a sealed memfd: `husk run` starts it, and it starts the
/// pod's supervisor (DESIGN §3). One memfd per process, kept: `husk serve` starts every
/// sandbox's keeper from it, so the keepers share its pages (a memfd each gave every keeper
/// 52 KB of its own). Sealed, it cannot change under them.
public enum KeeperExecutable {
    private static let lock = Monitor()
    nonisolated(unsafe) private static var cached: FD? = nil  // read and set under `lock`

    public static func open() throws(HuskError) -> FD {
        try lock.locked { () -> Result<FD, HuskError> in
            if let fd = cached { return .success(fd) }
            do throws(HuskError) {
                let fd = try SealedExecutable.open("husk-keeper", base64: keeperExecutableBase64)
                cached = fd
                return .success(fd)
            } catch {
                return .failure(error)
            }
        }.get()
    }
}

/// An embedded executable (base64) in a memfd sealed against every change, to exec from.
enum SealedExecutable {
    static func open(_ name: String, base64: String) throws(HuskError) -> FD {
        guard let bytes = Data(base64Encoded: base64) else {
            throw HuskError(.internalError, "the embedded \(name) executable is corrupt")
        }
        let fd: FD
        do { fd = try Memfd.create(name, sealable: true) } catch { throw HuskError(.system, "memfd_create: \(error.errno.text)") }
        do {
            try fd.writeAll(Array(bytes))
            try Memfd.seal(fd)
        } catch {
            throw HuskError(.system, "cannot prepare the \(name) executable", cause: error)
        }
        return fd
    }
}
