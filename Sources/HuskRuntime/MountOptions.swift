import CShim

/// mount(8)-style option strings turned into mount(2) flags, propagation and fs data
/// (the same table runc and crun use).
public struct MountOptions: Equatable, Sendable {
    public var flags: UInt = 0
    public var propagation: UInt = 0
    public var bind = false
    public var recursive = false
    public var recursiveReadonly = false
    /// Options the kernel does not know as flags: passed to the filesystem ("mode=755").
    public var data: [String] = []
    /// Options Husk recognises but does not apply.
    public var ignored: [String] = []

    /// (flag to set, whether the option clears it instead)
    static let flagTable: [String: (UInt, Bool)] = [
        "ro": (UInt(CSHIM_MS_RDONLY), false), "rw": (UInt(CSHIM_MS_RDONLY), true),
        "nosuid": (UInt(CSHIM_MS_NOSUID), false), "suid": (UInt(CSHIM_MS_NOSUID), true),
        "nodev": (UInt(CSHIM_MS_NODEV), false), "dev": (UInt(CSHIM_MS_NODEV), true),
        "noexec": (UInt(CSHIM_MS_NOEXEC), false), "exec": (UInt(CSHIM_MS_NOEXEC), true),
        "sync": (UInt(CSHIM_MS_SYNCHRONOUS), false), "async": (UInt(CSHIM_MS_SYNCHRONOUS), true),
        "dirsync": (UInt(CSHIM_MS_DIRSYNC), false),
        "mand": (UInt(CSHIM_MS_MANDLOCK), false), "nomand": (UInt(CSHIM_MS_MANDLOCK), true),
        "noatime": (UInt(CSHIM_MS_NOATIME), false), "atime": (UInt(CSHIM_MS_NOATIME), true),
        "nodiratime": (UInt(CSHIM_MS_NODIRATIME), false), "diratime": (UInt(CSHIM_MS_NODIRATIME), true),
        "relatime": (UInt(CSHIM_MS_RELATIME), false), "norelatime": (UInt(CSHIM_MS_RELATIME), true),
        "strictatime": (UInt(CSHIM_MS_STRICTATIME), false), "nostrictatime": (UInt(CSHIM_MS_STRICTATIME), true),
        "lazytime": (UInt(CSHIM_MS_LAZYTIME), false), "nolazytime": (UInt(CSHIM_MS_LAZYTIME), true),
        "nosymfollow": (UInt(CSHIM_MS_NOSYMFOLLOW), false), "symfollow": (UInt(CSHIM_MS_NOSYMFOLLOW), true),
        "silent": (UInt(CSHIM_MS_SILENT), false), "loud": (UInt(CSHIM_MS_SILENT), true),
        "iversion": (msIVersion, false), "noiversion": (msIVersion, true),
    ]
    /// MS_I_VERSION (include/uapi/linux/mount.h).
    static let msIVersion: UInt = 1 << 23

    /// Propagation option names and their flags (also used for rootfsPropagation).
    public static let propagation: [String: UInt] = [
        "private": UInt(CSHIM_MS_PRIVATE), "rprivate": UInt(CSHIM_MS_PRIVATE | CSHIM_MS_REC),
        "shared": UInt(CSHIM_MS_SHARED), "rshared": UInt(CSHIM_MS_SHARED | CSHIM_MS_REC),
        "slave": UInt(CSHIM_MS_SLAVE), "rslave": UInt(CSHIM_MS_SLAVE | CSHIM_MS_REC),
        "unbindable": UInt(CSHIM_MS_UNBINDABLE), "runbindable": UInt(CSHIM_MS_UNBINDABLE | CSHIM_MS_REC),
    ]

    public init(_ options: [String]) {
        for o in options {
            if let (flag, clear) = Self.flagTable[o] {
                if clear { flags &= ~flag } else { flags |= flag }
            } else if let prop = Self.propagation[o] {
                propagation = prop
            } else if o == "bind" {
                bind = true
            } else if o == "rbind" {
                bind = true
                recursive = true
            } else if o == "rro" {
                recursiveReadonly = true
                flags |= UInt(CSHIM_MS_RDONLY)
            } else if o == "rrw" || o == "remount" || o == "defaults" || o == "tmpcopyup" || o == "_netdev" {
                ignored.append(o)
            } else {
                data.append(o)
            }
        }
    }

    public var dataString: String? { data.isEmpty ? nil : data.joined(separator: ",") }
}
