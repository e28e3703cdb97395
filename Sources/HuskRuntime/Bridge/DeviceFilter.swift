import CShim
import HuskSystem
import SystemPackage

/// Device access of a container on cgroup v2: `linux.resources.devices` in order, then runc's
/// default allow list, compiled into a BPF_PROG_TYPE_CGROUP_DEVICE program on the container's
/// cgroup. `linux.devices` only makes the nodes: access to them is what the rules give (runc
/// and crun alike; measured: with deny-all and `c 240:5 r`, a write open of that node is
/// EPERM in both), so CRI's device permissions hold.
/// Semantics of the v1 device controller, as runc emulates them: everything is allowed until
/// an all-devices rule sets the default; later rules override earlier ones.
public struct DeviceFilter: Equatable, Sendable {
    public struct Rule: Equatable, Sendable {
        public var type: Int32  // CSHIM_DEV_TYPE_*
        public var major: Int64  // -1: any
        public var minor: Int64
        public var access: UInt32
        public var allow: Bool
    }

    public var defaultAllow: Bool
    /// In checking order: the first that matches decides.
    public var rules: [Rule]

    static let all = CSHIM_DEV_ACCESS_MKNOD | CSHIM_DEV_ACCESS_READ | CSHIM_DEV_ACCESS_WRITE

    /// runc's AllowedDevices (libcontainer/specconv), which it appends after the spec's rules.
    public static let runtimeDefaults: [Spec.DeviceRule] = [
        .init(allow: true, type: "c", access: "m"), .init(allow: true, type: "b", access: "m"),
        .init(allow: true, type: "c", major: 1, minor: 3, access: "rwm"),  // null
        .init(allow: true, type: "c", major: 1, minor: 8, access: "rwm"),  // random
        .init(allow: true, type: "c", major: 1, minor: 7, access: "rwm"),  // full
        .init(allow: true, type: "c", major: 5, minor: 0, access: "rwm"),  // tty
        .init(allow: true, type: "c", major: 1, minor: 5, access: "rwm"),  // zero
        .init(allow: true, type: "c", major: 1, minor: 9, access: "rwm"),  // urandom
        .init(allow: true, type: "c", major: 5, minor: 1, access: "rwm"),  // console
        .init(allow: true, type: "c", major: 136, access: "rwm"),  // pts/*
        .init(allow: true, type: "c", major: 5, minor: 2, access: "rwm"),  // ptmx
        .init(allow: true, type: "c", major: 10, minor: 200, access: "rwm"),  // tun
    ]

    /// Checks the rules of a spec (for validation).
    static func validate(_ rules: [Spec.DeviceRule], into p: inout SpecProblems) {
        for (i, r) in rules.enumerated() {
            if let t = r.type, !["a", "b", "c", "u", "p"].contains(t) {
                p.error("linux.resources.devices[\(i)].type", "unknown device type \"\(t)\" (a, b, c, u or p)")
            }
            if let a = r.access, !a.allSatisfy({ "rwm".contains($0) }) {
                p.error("linux.resources.devices[\(i)].access", "\"\(a)\" may only contain r, w and m")
            }
        }
    }

    public static func build(resources: [Spec.DeviceRule]?) -> DeviceFilter {
        let ordered = (resources ?? []) + runtimeDefaults
        var defaultAllow = true
        var list: [Rule] = []
        for r in ordered {
            let type: Int32
            switch r.type ?? "a" {
            case "a": type = Int32(CSHIM_DEV_TYPE_ANY)
            case "b": type = Int32(CSHIM_DEV_TYPE_BLOCK)
            case "c", "u": type = Int32(CSHIM_DEV_TYPE_CHAR)
            default: continue  // fifos are not subject to the device controller
            }
            var access: UInt32 = 0
            for ch in (r.access ?? "rwm").isEmpty ? "rwm" : (r.access ?? "rwm") {
                if ch == "r" { access |= CSHIM_DEV_ACCESS_READ }
                if ch == "w" { access |= CSHIM_DEV_ACCESS_WRITE }
                if ch == "m" { access |= CSHIM_DEV_ACCESS_MKNOD }
            }
            let major = r.major.map { $0 < 0 ? -1 : $0 } ?? -1
            let minor = r.minor.map { $0 < 0 ? -1 : $0 } ?? -1
            if type == Int32(CSHIM_DEV_TYPE_ANY) && major == -1 && minor == -1 && access == all {
                // An all-devices rule replaces the default and everything before it.
                defaultAllow = r.allow
                list.removeAll()
                continue
            }
            list.append(Rule(type: type, major: major, minor: minor, access: access, allow: r.allow))
        }
        // Later rules win: check them first.
        return DeviceFilter(defaultAllow: defaultAllow, rules: list.reversed())
    }

    /// Loads the program and attaches it to the cgroup.
    public func attach(to cgroup: FD, path: String) throws(HuskError) {
        let c = rules.map {
            cshim_device_rule(type: $0.type, major: $0.major, minor: $0.minor, access: $0.access, allow: $0.allow ? 1 : 0)
        }
        var log = [CChar](repeating: 0, count: 4096)
        let r = c.withUnsafeBufferPointer { buf in
            cshim_device_filter_attach(cgroup.raw, buf.baseAddress, buf.count, defaultAllow ? 1 : 0, &log, log.count)
        }
        if r != 0 {
            let e = currentErrno
            let verifier = log.withUnsafeBytes { String.fromCBytes($0) }
            throw HuskError(
                .system, "cannot attach the device filter to cgroup \(path)",
                cause: SystemCallError("bpf", verifier.isEmpty ? path : verifier, e))
        }
    }
}
