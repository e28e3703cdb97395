import HuskJSON
import HuskSystem

/// What Husk checks in a config.json before starting anything. Each problem names the JSON
/// path of the field; warnings are for fields Husk accepts but does not apply.
public struct SpecProblems: Sendable {
    public var errors: [String] = []
    public var warnings: [String] = []

    public init() {}

    mutating func error(_ path: String, _ message: String) { errors.append("\(path): \(message)") }
    mutating func warn(_ path: String, _ message: String) { warnings.append("\(path): \(message)") }
}

extension Spec {
    /// The namespace types of runtime-spec config-linux.md.
    public static let namespaceTypes: Set<String> = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]

    /// rlimit names (runtime-spec: the RLIMIT_* of getrlimit(2)) and their numbers.
    public static let rlimitTypes: [String: Int32] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
        "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
        "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]

    /// Checks everything that can be checked without touching the system (plus the existence
    /// of paths the spec names). `bundle` resolves relative paths.
    public func validate(bundle: String) -> SpecProblems {
        var p = SpecProblems()
        if !ociVersion.hasPrefix("1.") {
            p.error("ociVersion", "\"\(ociVersion)\" is not supported: Husk implements runtime-spec 1.x")
        }
        validateRoot(&p, bundle: bundle)
        validateProcess(&p)
        validateMounts(&p)
        validateLinux(&p)
        for (name, list) in hooks?.all ?? [] {
            for (i, h) in list.enumerated() {
                let path = "hooks.\(name)[\(i)]"
                if !h.path.hasPrefix("/") { p.error("\(path).path", "\"\(h.path)\" must be an absolute path") }
                if let t = h.timeout, t <= 0 { p.error("\(path).timeout", "\(t) must be greater than zero") }
                for (j, e) in (h.env ?? []).enumerated() where !e.contains("=") {
                    p.error("\(path).env[\(j)]", "\"\(e)\" is not of the form NAME=value")
                }
            }
        }
        return p
    }

    private func validateRoot(_ p: inout SpecProblems, bundle: String) {
        guard let root else {
            p.error("root", "required field is missing: the container needs a root filesystem")
            return
        }
        if root.path.isEmpty {
            p.error("root.path", "must not be empty")
            return
        }
        let abs = Files.absolute(root.path, relativeTo: bundle)
        if !Files.exists(abs) {
            p.error("root.path", "\(abs): No such file or directory")
        } else if !Files.isDirectory(abs) {
            p.error("root.path", "\(abs): not a directory")
        }
    }

    func validateProcess(_ p: inout SpecProblems) {
        guard let process else {
            p.error("process", "required field is missing: nothing to run")
            return
        }
        if process.args?.isEmpty ?? true {
            p.error("process.args", "must name the program to run (at least one element)")
        } else if process.args?.first?.isEmpty == true {
            p.error("process.args[0]", "must not be empty")
        }
        if process.commandLine != nil { p.error("process.commandLine", "is Windows-only") }
        if !process.cwd.hasPrefix("/") { p.error("process.cwd", "\"\(process.cwd)\" must be an absolute path") }
        for (i, e) in (process.env ?? []).enumerated() where !e.contains("=") {
            p.error("process.env[\(i)]", "\"\(e)\" is not of the form NAME=value")
        }
        if let caps = process.capabilities {
            let sets: [(String, [String]?)] = [
                ("bounding", caps.bounding), ("effective", caps.effective), ("inheritable", caps.inheritable),
                ("permitted", caps.permitted), ("ambient", caps.ambient),
            ]
            for (set, names) in sets {
                for (i, n) in (names ?? []).enumerated() where Capabilities.number(n) == nil {
                    p.warn("process.capabilities.\(set)[\(i)]", "unknown capability \"\(n)\" is ignored")
                }
            }
        }
        var seen: Set<String> = []
        for (i, r) in (process.rlimits ?? []).enumerated() {
            if Spec.rlimitTypes[r.type] == nil {
                p.error("process.rlimits[\(i)].type", "unknown rlimit \"\(r.type)\"")
            }
            if !seen.insert(r.type).inserted { p.error("process.rlimits[\(i)].type", "\(r.type) is listed twice") }
            if r.soft > r.hard { p.error("process.rlimits[\(i)]", "soft limit \(r.soft) is above hard limit \(r.hard)") }
        }
        if let adj = process.oomScoreAdj, adj < -1000 || adj > 1000 {
            p.error("process.oomScoreAdj", "\(adj) is outside -1000...1000")
        }
        if let profile = process.apparmorProfile, !profile.isEmpty, profile != "unconfined" {
            // runtime-spec config.md: a profile the host cannot apply is an error, not a warning.
            if !AppArmor.isEnabled {
                p.error("process.apparmorProfile", "\"\(profile)\" asked for, but AppArmor is not enabled on this host (leave the field out, or use \"unconfined\")")
            } else if let loaded = AppArmor.loadedProfiles(), !loaded.contains(profile) {
                p.error("process.apparmorProfile", "profile \"\(profile)\" is not loaded (load it with apparmor_parser -r FILE)")
            }
        }
        if process.selinuxLabel?.isEmpty == false { p.warn("process.selinuxLabel", "SELinux is not applied by Husk") }
        if process.ioPriority != nil { p.error("process.ioPriority", "is not supported yet") }
        if process.scheduler != nil { p.error("process.scheduler", "is not supported yet") }
        if process.execCPUAffinity != nil { p.error("process.execCPUAffinity", "is not supported yet") }
        if let u = process.user.umask, u > 0o777 { p.error("process.user.umask", "\(u) is not a valid umask") }
    }

    private func validateMounts(_ p: inout SpecProblems) {
        for (i, m) in (mounts ?? []).enumerated() {
            let path = "mounts[\(i)]"
            if m.destination.isEmpty {
                p.error("\(path).destination", "must not be empty")
            } else if !m.destination.hasPrefix("/") {
                p.warn("\(path).destination", "\"\(m.destination)\" is relative; it is taken relative to /")
            }
            let opts = m.options ?? []
            let isBind = m.type == "bind" || opts.contains("bind") || opts.contains("rbind")
            if isBind && (m.source ?? "").isEmpty { p.error("\(path).source", "a bind mount needs a source") }
            // Idmapped mounts (runtime-spec 1.1): binds only, both maps, idmap/ridmap need them.
            let hasMaps = !(m.uidMappings ?? []).isEmpty || !(m.gidMappings ?? []).isEmpty
            let asksIdmap = opts.contains("idmap") || opts.contains("ridmap")
            if hasMaps || asksIdmap {
                if !isBind { p.error("\(path)", "id-mapped mounts are supported for bind mounts only") }
                if (m.uidMappings ?? []).isEmpty { p.error("\(path).uidMappings", "an id-mapped mount needs uid mappings") }
                if (m.gidMappings ?? []).isEmpty { p.error("\(path).gidMappings", "an id-mapped mount needs gid mappings") }
                for (field, maps) in [("uidMappings", m.uidMappings ?? []), ("gidMappings", m.gidMappings ?? [])] {
                    for (j, x) in maps.enumerated() where x.size == 0 { p.error("\(path).\(field)[\(j)].size", "must be at least 1") }
                }
            }
            if !isBind && (m.type ?? "").isEmpty {
                p.error("\(path).type", "required for a mount that is not a bind mount")
            }
        }
    }

    private func validateLinux(_ p: inout SpecProblems) {
        guard let linux else {
            p.error("linux", "required field is missing: Husk runs Linux containers")
            return
        }
        var types: Set<String> = []
        for (i, ns) in (linux.namespaces ?? []).enumerated() {
            let path = "linux.namespaces[\(i)]"
            if !Spec.namespaceTypes.contains(ns.type) {
                p.error("\(path).type", "unknown namespace type \"\(ns.type)\"")
                continue
            }
            if !types.insert(ns.type).inserted { p.error("\(path).type", "namespace \(ns.type) is listed twice") }
            if ns.type == "time" { p.error("\(path)", "time namespaces are not supported yet") }
            if let nsPath = ns.path, !nsPath.isEmpty, !Files.exists(nsPath) {
                p.error("\(path).path", "\(nsPath): No such file or directory")
            }
        }
        // A uts namespace joined by path takes the hostname too (runc, crun); the runtime's own
        // (the type not listed) never does.
        if hostname?.isEmpty == false && !types.contains("uts") {
            p.error("hostname", "setting a hostname needs a uts namespace (add {\"type\": \"uts\"})")
        }
        if domainname?.isEmpty == false && !types.contains("uts") {
            p.error("domainname", "setting a domainname needs a uts namespace (add {\"type\": \"uts\"})")
        }
        if !types.contains("mount") {
            // runc drops them too: without a mount namespace they would change the host.
            if !(linux.maskedPaths ?? []).isEmpty { p.warn("linux.maskedPaths", "ignored without a mount namespace of the container's own") }
            if !(linux.readonlyPaths ?? []).isEmpty { p.warn("linux.readonlyPaths", "ignored without a mount namespace of the container's own") }
        }
        // User namespaces (runc's checks): a new one needs both maps; maps need a new one.
        let user = (linux.namespaces ?? []).first { $0.type == "user" }
        let newUser = user != nil && (user?.path ?? "").isEmpty
        if newUser {
            if (linux.uidMappings ?? []).isEmpty { p.error("linux.uidMappings", "a new user namespace needs uid mappings") }
            if (linux.gidMappings ?? []).isEmpty { p.error("linux.gidMappings", "a new user namespace needs gid mappings") }
            for (field, maps) in [("linux.uidMappings", linux.uidMappings ?? []), ("linux.gidMappings", linux.gidMappings ?? [])] {
                if maps.count > 340 { p.error(field, "\(maps.count) lines; the kernel takes at most 340") }
                for (i, m) in maps.enumerated() where m.size == 0 { p.error("\(field)[\(i)].size", "must be at least 1") }
            }
        } else if !(linux.uidMappings ?? []).isEmpty || !(linux.gidMappings ?? []).isEmpty {
            p.error("linux.uidMappings", "id mappings need a new user namespace (add {\"type\": \"user\"})")
        }
        if linux.timeOffsets != nil { p.error("linux.timeOffsets", "time namespaces are not supported yet") }
        if linux.intelRdt != nil { p.error("linux.intelRdt", "is not supported") }
        if linux.personality != nil { p.error("linux.personality", "is not supported yet") }
        if let n = linux.netDevices, n != .null, n != .object([:]) { p.error("linux.netDevices", "is not supported yet") }
        if let m = linux.memoryPolicy, m != .null { p.error("linux.memoryPolicy", "is not supported yet") }
        if let prop = linux.rootfsPropagation, !prop.isEmpty, MountOptions.propagation[prop] == nil {
            p.error("linux.rootfsPropagation", "unknown propagation \"\(prop)\"")
        }
        if linux.mountLabel?.isEmpty == false { p.warn("linux.mountLabel", "SELinux is not applied by Husk") }
        for (i, d) in (linux.devices ?? []).enumerated() {
            let path = "linux.devices[\(i)]"
            if !["c", "b", "u", "p"].contains(d.type) {
                p.error("\(path).type", "unknown device type \"\(d.type)\" (c, b, u or p)")
            }
            if d.type != "p" && (d.major == nil || d.minor == nil) {
                p.error("\(path)", "a \(d.type) device needs major and minor")
            }
            if !d.path.hasPrefix("/dev/") { p.error("\(path).path", "\"\(d.path)\" must be under /dev") }
        }
        for (key, _) in linux.sysctl ?? [:] {
            if let need = Spec.namespaceForSysctl(key), !(types.contains(need)) {
                p.error("linux.sysctl.\(key)", "needs a new \(need) namespace")
            }
        }
        if let sc = linux.seccomp { SeccompProfile.validate(sc, into: &p) }
        if let r = linux.resources {
            DeviceFilter.validate(r.devices ?? [], into: &p)
            _ = OCIResources.limits(r, into: &p)
        }
    }

    /// The namespace a sysctl belongs to (runc's validator), or nil for ones that are not
    /// namespaced (which are refused by the kernel inside a container anyway).
    static func namespaceForSysctl(_ key: String) -> String? {
        if key.hasPrefix("net.") { return "network" }
        if key.hasPrefix("fs.mqueue.") || ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
            "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"].contains(key) {
            return "ipc"
        }
        if key == "kernel.hostname" || key == "kernel.domainname" { return "uts" }
        return nil
    }
}
