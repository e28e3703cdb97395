import HuskSystem

/// mount(8)-style option strings turned into mount(2) flags, propagation and fs data
/// (the same table runc and crun use).
public struct MountOptions: Equatable, Sendable {
    public var flags: MountFlags = []
    public var propagation: MountFlags = []
    public var bind = false
    public var recursive = false
    public var recursiveReadonly = false
    /// idmap / ridmap (runtime-spec 1.1): the bind is shown through its id maps.
    public var idmap = false
    public var recursiveIdmap = false
    /// Options the kernel does not know as flags: passed to the filesystem ("mode=755").
    public var data: [String] = []
    /// Options Husk recognises but does not apply.
    public var ignored: [String] = []

    /// (flag to set, whether the option clears it instead)
    static let flagTable: [String: (MountFlags, Bool)] = [
        "ro": (.readOnly, false), "rw": (.readOnly, true),
        "nosuid": (.noSetID, false), "suid": (.noSetID, true),
        "nodev": (.noDevices, false), "dev": (.noDevices, true),
        "noexec": (.noExec, false), "exec": (.noExec, true),
        "sync": (.synchronous, false), "async": (.synchronous, true),
        "dirsync": (.directorySync, false),
        "mand": (.mandatoryLocks, false), "nomand": (.mandatoryLocks, true),
        "noatime": (.noAccessTime, false), "atime": (.noAccessTime, true),
        "nodiratime": (.noDirectoryAccessTime, false), "diratime": (.noDirectoryAccessTime, true),
        "relatime": (.relativeAccessTime, false), "norelatime": (.relativeAccessTime, true),
        "strictatime": (.strictAccessTime, false), "nostrictatime": (.strictAccessTime, true),
        "lazytime": (.lazyTime, false), "nolazytime": (.lazyTime, true),
        "nosymfollow": (.noSymlinkFollow, false), "symfollow": (.noSymlinkFollow, true),
        "silent": (.silent, false), "loud": (.silent, true),
        "iversion": (.iVersion, false), "noiversion": (.iVersion, true),
    ]

    /// Propagation option names and their flags (also used for rootfsPropagation).
    public static let propagation: [String: MountFlags] = [
        "private": .private, "rprivate": [.private, .recursive],
        "shared": .shared, "rshared": [.shared, .recursive],
        "slave": .slave, "rslave": [.slave, .recursive],
        "unbindable": .unbindable, "runbindable": [.unbindable, .recursive],
    ]

    public init(_ options: [String]) {
        for o in options {
            if let (flag, clear) = Self.flagTable[o] {
                if clear { flags.remove(flag) } else { flags.insert(flag) }
            } else if let prop = Self.propagation[o] {
                propagation = prop
            } else if o == "bind" {
                bind = true
            } else if o == "rbind" {
                bind = true
                recursive = true
            } else if o == "rro" {
                recursiveReadonly = true
                flags.insert(.readOnly)
            } else if o == "remount" {
                // MS_REMOUNT (runc's table): the mount already at the destination takes the
                // other flags and data instead of a new one being mounted.
                flags.insert(.remount)
            } else if o == "idmap" || o == "ridmap" {
                idmap = true
                if o == "ridmap" { recursiveIdmap = true }
            } else if o == "rrw" || o == "defaults" || o == "tmpcopyup" || o == "_netdev" {
                ignored.append(o)
            } else {
                data.append(o)
            }
        }
    }

    public var dataString: String? { data.isEmpty ? nil : data.joined(separator: ",") }
}
