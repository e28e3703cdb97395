import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A set of Linux namespace types, as the CLONE_NEW* flags of clone3(2), unshare(2) and
/// setns(2) spell them. `rawValue` is the flag word the spawn bridge hands to C.
public struct Namespaces: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// CLONE_NEWNS: mounts.
    public static let mount = Namespaces(rawValue: CSHIM_CLONE_NEWNS)
    /// CLONE_NEWUTS: host and domain name.
    public static let uts = Namespaces(rawValue: CSHIM_CLONE_NEWUTS)
    /// CLONE_NEWIPC: System V IPC and POSIX message queues.
    public static let ipc = Namespaces(rawValue: CSHIM_CLONE_NEWIPC)
    /// CLONE_NEWUSER: user and group ids.
    public static let user = Namespaces(rawValue: CSHIM_CLONE_NEWUSER)
    /// CLONE_NEWPID: process ids.
    public static let pid = Namespaces(rawValue: CSHIM_CLONE_NEWPID)
    /// CLONE_NEWNET: network devices, addresses, routes, ports.
    public static let network = Namespaces(rawValue: CSHIM_CLONE_NEWNET)
    /// CLONE_NEWCGROUP: the root of the cgroup hierarchy.
    public static let cgroup = Namespaces(rawValue: CSHIM_CLONE_NEWCGROUP)
    /// CLONE_NEWTIME: boot and monotonic clock offsets.
    public static let time = Namespaces(rawValue: CSHIM_CLONE_NEWTIME)

    /// Every type with its runtime-spec name (`linux.namespaces[].type`), in a fixed order.
    public static let named: [(name: String, type: Namespaces)] = [
        ("pid", .pid), ("network", .network), ("mount", .mount), ("ipc", .ipc), ("uts", .uts),
        ("cgroup", .cgroup), ("user", .user), ("time", .time),
    ]

    /// The type of a runtime-spec name ("network"), or nil for a name Linux does not have.
    public init?(name: String) {
        guard let entry = Self.named.first(where: { $0.name == name }) else { return nil }
        self = entry.type
    }

    /// The runtime-spec names of the types in the set, in the order of `named`.
    public var names: [String] {
        Self.named.filter { contains($0.type) }.map(\.name)
    }

    /// "network", "network+uts"; bits that are no namespace type are shown in hex.
    public var description: String {
        var parts = names
        let known = Self.named.reduce(Namespaces()) { $0.union($1.type) }
        let rest = subtracting(known)
        if !rest.isEmpty { parts.append("0x" + String(rest.rawValue, radix: 16)) }
        return parts.isEmpty ? "none" : parts.joined(separator: "+")
    }

    /// Moves the calling thread into namespaces through `fd`: a namespace file
    /// (/proc/<pid>/ns/<x>), with `types` its own type or empty for any, or a pidfd, with
    /// `types` the namespaces of that process to join (several at once).
    ///
    /// A thread that shares its filesystem information with others (every thread of a Swift
    /// process) cannot join a mount namespace; a network namespace it can, and keeps it until
    /// it exits. The underlying call is `setns(2)`.
    public static func join(_ types: Namespaces, via fd: FD) throws(SystemCallError) {
        try syscall("setns", "\(types) namespace via fd \(fd.raw)") {
            cshim_setns(fd.raw, Int32(truncatingIfNeeded: types.rawValue))
        }
    }

    /// The type of a namespace file (an fd of /proc/<pid>/ns/<x>). The underlying call is
    /// `ioctl(NS_GET_NSTYPE)`.
    public static func type(of fd: FD) throws(SystemCallError) -> Namespaces {
        let t = try syscall("ioctl", "NS_GET_NSTYPE of fd \(fd.raw)") { cshim_ns_get_type(fd.raw) }
        return Namespaces(rawValue: UInt64(UInt32(bitPattern: t)))
    }
}
