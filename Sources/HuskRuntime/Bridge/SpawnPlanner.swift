import HuskSystem

/// Turns a validated runtime spec into a `SpawnPlan` (pure data) plus the namespace paths the
/// caller must open. Nothing here touches the system except reading facts about the host.
public struct PlannedSpawn: Sendable {
    public var plan: SpawnPlan
    /// Namespaces to join by path (not pid): (path, CLONE_NEW* type, JSON path for errors).
    public var joins: [(path: String, type: Namespaces, field: String)] = []
    /// The pid namespace to create the child in, by path.
    public var pidNamespacePath: String? = nil
    public var warnings: [String] = []
}

public enum SpawnPlanner {
    /// The device nodes every container gets (runc's default set).
    public static let defaultDevices: [SpawnPlan.DeviceNode] = [
        .init(path: "/dev/null", mode: 0o020666, major: 1, minor: 3),
        .init(path: "/dev/zero", mode: 0o020666, major: 1, minor: 5),
        .init(path: "/dev/full", mode: 0o020666, major: 1, minor: 7),
        .init(path: "/dev/random", mode: 0o020666, major: 1, minor: 8),
        .init(path: "/dev/urandom", mode: 0o020666, major: 1, minor: 9),
        .init(path: "/dev/tty", mode: 0o020666, major: 5, minor: 0),
    ]

    /// - Parameters:
    ///   - cgroupDirectory: the container's cgroup directory on the host, bound at a `cgroup`
    ///     mount when the container has no cgroup namespace of its own.
    public static func plan(spec: Spec, bundle: String, cgroupDirectory: String?) throws(HuskError) -> PlannedSpawn {
        guard let process = spec.process, let linux = spec.linux else {
            throw HuskError(.invalidArgument, "the spec has no process or linux section")
        }
        var plan = SpawnPlan()
        var out = PlannedSpawn(plan: plan)

        // Namespaces.
        var own: Set<String> = []
        for (i, ns) in (linux.namespaces ?? []).enumerated() {
            guard let flag = Namespaces(name: ns.type) else { continue }
            if let path = ns.path, !path.isEmpty {
                if ns.type == "pid" {
                    out.pidNamespacePath = path
                } else {
                    out.joins.append((path, flag, "linux.namespaces[\(i)].path"))
                }
            } else if ns.type == "cgroup" {
                plan.unshareCgroupNamespace = true
                own.insert(ns.type)
            } else {
                plan.newNamespaces.insert(flag)
                own.insert(ns.type)
            }
        }
        if own.contains("user") {
            plan.uidMap = Spec.IDMapping.mapText(linux.uidMappings ?? [])
            plan.gidMap = Spec.IDMapping.mapText(linux.gidMappings ?? [])
        } else if out.joins.contains(where: { $0.type == .user }) {
            // A user namespace joined by path is entered first and owns the new namespaces:
            // they are unshared after the joins instead of made by clone3 (validation refuses
            // a new pid namespace, which only clone can make).
            out.joins.sort { a, b in a.type == .user && b.type != .user }
            plan.unshareNamespaces = plan.newNamespaces.subtracting(.pid)
            plan.newNamespaces = plan.newNamespaces.intersection(.pid)
        }
        let joinsMount = out.joins.contains { $0.type == .mount }
        // config-linux.md: a namespace type that is not listed is the runtime's. Without a
        // mount namespace the root is entered by chroot and the container's mounts sit under
        // the rootfs in the runtime's mount table until delete (runc does the same).
        let inheritsMount = !own.contains("mount") && !joinsMount

        // Root filesystem, mounts, devices; in a mount namespace joined by path they are made
        // there, as runc does.
        do {
            guard let root = spec.root else { throw HuskError(.invalidArgument, "root: required field is missing") }
            plan.rootfs = Files.absolute(root.path, relativeTo: bundle)
            plan.rootfsReadonly = root.readonly ?? false
            if let prop = linux.rootfsPropagation, let flags = MountOptions.propagation[prop] {
                plan.rootPropagation = flags
            }
            var hasPts = false
            var bindsDev = false
            for (i, m) in (spec.mounts ?? []).enumerated() {
                let entry = try mountEntry(m, index: i, bundle: bundle, ownCgroupNS: own.contains("cgroup"),
                                           cgroupDirectory: cgroupDirectory, warnings: &out.warnings)
                if entry.target == "/dev/pts" { hasPts = true }
                if entry.target == "/dev" && entry.options.contains(.bind) { bindsDev = true }
                plan.mounts.append(entry)
            }
            plan.setupDev = !bindsDev
            if plan.setupDev {
                var devices = defaultDevices
                for d in linux.devices ?? [] {
                    var node = deviceNode(d)
                    node.mustMatch = true
                    devices.removeAll { $0.path == node.path }
                    devices.append(node)
                }
                plan.devices = devices
                plan.symlinks = [
                    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
                ]
                if hasPts { plan.symlinks.append(("pts/ptmx", "/dev/ptmx")) }
                if Files.exists("/proc/kcore") { plan.symlinks.append(("/proc/kcore", "/dev/core")) }
            }
            if !inheritsMount {
                plan.maskedPaths = unique(linux.maskedPaths ?? [])
                plan.readonlyPaths = unique(linux.readonlyPaths ?? [])
            } else {
                plan.rootfsChroot = true
                out.warnings.append(
                    "linux.namespaces: no mount namespace: the container shares the runtime's; its root is entered with chroot, which a process keeping CAP_SYS_CHROOT can leave, and its mounts stay under \(plan.rootfs!) until delete")
                if plan.rootPropagation != [] {
                    out.warnings.append("linux.rootfsPropagation: ignored without a mount namespace of the container's own")
                    plan.rootPropagation = []
                }
            }
        }

        if let h = spec.hostname, !h.isEmpty { plan.hostname = h }
        if let d = spec.domainname, !d.isEmpty { plan.domainname = d }
        plan.sysctls = (linux.sysctl ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        applyProcess(process, to: &plan, warnings: &out.warnings)
        out.plan = plan
        return out
    }

    /// The parts of a plan that come from `process` (shared by create and exec): rlimits,
    /// oom_score_adj, identity, capabilities, no_new_privs, cwd, argv, env, console size.
    public static func applyProcess(_ process: Spec.Process, to plan: inout SpawnPlan, warnings: inout [String]) {
        plan.rlimits = (process.rlimits ?? []).compactMap { r in
            Spec.rlimitTypes[r.type].map { ($0, r.soft, r.hard) }
        }
        plan.oomScoreAdj = process.oomScoreAdj

        // Identity and privileges.
        plan.uid = process.user.uid
        plan.gid = process.user.gid
        plan.groups = process.user.additionalGids ?? []
        plan.umask = process.user.umask.map { Int32($0) }
        let caps = process.capabilities
        // config.md: a capability the runtime cannot grant is logged as a warning (and not
        // raised) instead of failing capset.
        let own = Capabilities.current()
        func grant(_ m: UInt64, within: UInt64, _ set: String) -> UInt64 {
            guard own.permitted != 0, m & ~within != 0 else { return m }
            let lost = Capabilities.names(of: m & ~within).joined(separator: ", ")
            warnings.append("process.capabilities.\(set): \(lost) cannot be granted (the runtime does not hold it); not raised")
            return m & within
        }
        plan.bounding = grant(mask(caps?.bounding), within: own.bounding, "bounding")
        plan.effective = grant(mask(caps?.effective), within: own.permitted, "effective")
        plan.permitted = grant(mask(caps?.permitted), within: own.permitted, "permitted")
        plan.inheritable = grant(mask(caps?.inheritable), within: own.permitted | own.inheritable, "inheritable")
        let ambient = mask(caps?.ambient)
        plan.ambient = ambient & plan.permitted & plan.inheritable
        if plan.ambient != ambient {
            let dropped = Capabilities.names(of: ambient & ~plan.ambient).joined(separator: ", ")
            warnings.append(
                "process.capabilities.ambient: \(dropped) not raised: an ambient capability must also be permitted and inheritable")
        }
        plan.noNewPrivileges = process.noNewPrivileges ?? false
        // Validation refused a profile on a host without AppArmor; "unconfined" there is moot.
        if let profile = process.apparmorProfile, !profile.isEmpty, AppArmor.isEnabled { plan.apparmorProfile = profile }

        plan.cwd = process.cwd
        plan.argv = process.args ?? []
        plan.env = process.env ?? []
        if let size = process.consoleSize { plan.consoleSize = (UInt16(clamping: size.height), UInt16(clamping: size.width)) }
    }

    static func mountEntry(
        _ m: Spec.Mount, index: Int, bundle: String, ownCgroupNS: Bool, cgroupDirectory: String?,
        warnings: inout [String]
    ) throws(HuskError) -> SpawnPlan.MountEntry {
        let target = Files.clean("/" + m.destination)
        let opts = MountOptions(m.options ?? [])
        for o in opts.ignored where o == "tmpcopyup" {
            warnings.append("mounts[\(index)].options: tmpcopyup is not supported; the tmpfs starts empty")
        }
        let type = m.type ?? ""
        var entry = SpawnPlan.MountEntry(source: m.source, target: target, fstype: type, data: opts.dataString)
        entry.flags = opts.flags
        entry.propagation = opts.propagation
        if opts.recursiveReadonly { entry.options.insert(.recursiveReadOnly) }

        func makeBind(source: String) {
            entry.source = source
            entry.fstype = nil
            entry.data = nil
            entry.options.insert(.bind)
            entry.flags = opts.flags.union(opts.recursive ? .recursive : [])
            // A bind takes the source's flags; anything asked for needs a remount.
            if !opts.flags.subtracting(.recursive).isEmpty { entry.options.insert(.remount) }
        }

        switch type {
        case _ where type == "bind" || opts.bind:
            makeBind(source: Files.absolute(m.source ?? "", relativeTo: bundle))
            if let u = m.uidMappings, let g = m.gidMappings, !u.isEmpty, !g.isEmpty {
                entry.idmap = (Spec.IDMapping.mapText(u), Spec.IDMapping.mapText(g), opts.recursiveIdmap)
            }
        case "cgroup", "cgroup2":
            if ownCgroupNS {
                entry.fstype = "cgroup2"
                entry.source = "cgroup2"
                entry.data = nil
            } else {
                // Without its own cgroup namespace a fresh cgroup2 mount would show the whole
                // host hierarchy: bind the container's own group instead.
                guard let dir = cgroupDirectory else {
                    throw HuskError(.invalidArgument, "mounts[\(index)]: a cgroup mount needs the container's cgroup")
                }
                makeBind(source: dir)
                entry.options.insert(.remount)
            }
        case "proc", "sysfs":
            entry.options.insert(.noSymlink)
        default:
            break
        }
        return entry
    }

    static func deviceNode(_ d: Spec.Device) -> SpawnPlan.DeviceNode {
        let type: UInt32
        switch d.type {
        case "b": type = 0o060000
        case "p": type = 0o010000
        default: type = 0o020000
        }
        let perm = (d.fileMode ?? 0o666) & 0o7777
        return SpawnPlan.DeviceNode(
            path: Files.clean(d.path), mode: type | perm, major: UInt32(clamping: d.major ?? 0),
            minor: UInt32(clamping: d.minor ?? 0), uid: d.uid ?? 0, gid: d.gid ?? 0)
    }

    static func mask(_ names: [String]?) -> UInt64 {
        var m: UInt64 = 0
        for n in names ?? [] {
            if let i = Capabilities.number(n), i <= Capabilities.lastCap { m |= 1 << UInt64(i) }
        }
        return m
    }

    static func unique(_ paths: [String]) -> [String] {
        var seen: Set<String> = []
        return paths.map { Files.clean("/" + $0) }.filter { seen.insert($0).inserted }
    }
}
