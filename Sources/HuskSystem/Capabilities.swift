import CShim

/// Linux capability names and numbers (linux/capability.h).
public enum Capabilities {
    public static let names: [String] = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
        "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ]

    /// The number of a capability ("CAP_NET_RAW" or "NET_RAW", any case), or nil.
    public static func number(_ name: String) -> Int? {
        var n = name.uppercased()
        if !n.hasPrefix("CAP_") { n = "CAP_" + n }
        return index[n]
    }

    private static let index: [String: Int] = {
        var d: [String: Int] = [:]
        for (i, n) in names.enumerated() { d[n] = i }
        return d
    }()

    /// The highest capability number the running kernel knows.
    public static let lastCap: Int = {
        let v = Int(cshim_cap_last_cap())
        return v > 0 ? v : names.count - 1
    }()

    /// Names for the bits of a mask, in number order.
    public static func names(of mask: UInt64) -> [String] {
        (0..<64).filter { mask & (1 << UInt64($0)) != 0 }.map { $0 < names.count ? names[$0] : "CAP_\($0)" }
    }

    /// This process's capability sets (CapEff, CapPrm, CapInh, CapBnd of /proc/self/status).
    public static func current() -> (effective: UInt64, permitted: UInt64, inheritable: UInt64, bounding: UInt64) {
        var sets: [String: UInt64] = [:]
        let text = (try? Files.readString("/proc/self/status")).flatMap { $0 } ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("Cap") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == "\t" || $0 == " " })
            if parts.count == 2, let v = UInt64(parts[1], radix: 16) { sets[String(parts[0])] = v }
        }
        return (sets["CapEff"] ?? 0, sets["CapPrm"] ?? 0, sets["CapInh"] ?? 0, sets["CapBnd"] ?? 0)
    }
}
