import CShim
import SystemPackage

/// Anonymous files in memory (memfd_create(2)): an executable embedded in Husk is written to
/// one, sealed, and executed from it, so nothing on disk can be swapped in between.
public enum Memfd {
    /// A new, empty memfd (CLOEXEC); `name` only shows in /proc/<pid>/fd. With `sealable` it
    /// accepts seals (MFD_ALLOW_SEALING). The underlying call is `memfd_create(2)`.
    public static func create(_ name: String, sealable: Bool = false) throws(SystemCallError) -> FD {
        let raw = try syscall("memfd_create", name) {
            sealable ? cshim_memfd_sealed_create(name) : cshim_memfd_create(name)
        }
        return FD(adopting: raw)
    }

    /// Seals a sealable memfd against writes, growth, shrinking and further seals: its content
    /// is final. The underlying call is `fcntl(F_ADD_SEALS)`.
    public static func seal(_ fd: FD) throws(SystemCallError) {
        try syscall("fcntl", "F_ADD_SEALS of fd \(fd.raw)") { cshim_memfd_seal(fd.raw) }
    }
}
