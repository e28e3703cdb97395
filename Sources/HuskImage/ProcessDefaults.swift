import HuskSystem

/// What a container runs, from the image config and the Kubernetes container fields.
public struct ProcessDefaults: Sendable, Equatable {
    public var argv: [String]
    public var env: [String]
    public var workingDir: String
    public var uid: UInt32
    public var gid: UInt32
    public var additionalGids: [UInt32]
    /// The image's STOPSIGNAL as a number, when it has one.
    public var stopSignal: Int32?
}

/// One `env` entry of a container, already resolved to a value.
public struct EnvVar: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

extension ProcessDefaults {
    /// Kubernetes' rules (pod-semantics §7; "Define a Command and Arguments for a Container"):
    ///  - no command, no args: the image's Entrypoint + Cmd;
    ///  - command only: command (the image's Cmd is ignored too);
    ///  - args only: the image's Entrypoint + args;
    ///  - both: command + args.
    /// Env: the image's, then the container's (a name set by both takes the container's).
    /// User: runAsUser/runAsGroup over the image's `User` (name, uid, name:group, uid:gid),
    /// resolved against the image's /etc/passwd and /etc/group; supplementary groups from
    /// /etc/group (as runc computes them).
    public static func resolve(
        image config: ImageConfig.Config?, command: [String]?, args: [String]?, env: [EnvVar], workingDir: String?,
        runAsUser: Int64?, runAsGroup: Int64?, runAsUsername: String? = nil, fs: ImageFS?
    ) throws(ImageError) -> ProcessDefaults {
        let cfg = config ?? ImageConfig.Config()
        let entrypoint = cfg.Entrypoint ?? []
        let cmd = cfg.Cmd ?? []
        var argv: [String]
        switch (command?.isEmpty == false ? command : nil, args?.isEmpty == false ? args : nil) {
        case (nil, nil): argv = entrypoint + cmd
        case (let c?, nil): argv = c
        case (nil, let a?): argv = entrypoint + a
        case (let c?, let a?): argv = c + a
        }
        if argv.isEmpty {
            throw ImageError(reason: .imageInspectError, message: "no command specified: the image has no Entrypoint or Cmd and the container no command")
        }

        var merged: [(String, String)] = []
        func set(_ name: String, _ value: String) {
            if let i = merged.firstIndex(where: { $0.0 == name }) { merged[i].1 = value } else { merged.append((name, value)) }
        }
        for e in cfg.Env ?? [] {
            if let eq = e.firstIndex(of: "=") { set(String(e[..<eq]), String(e[e.index(after: eq)...])) } else { set(e, "") }
        }
        for e in env { set(e.name, e.value) }

        let cwd = workingDir.flatMap { $0.isEmpty ? nil : $0 } ?? cfg.WorkingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/"

        let user: User
        if let name = runAsUsername, !name.isEmpty {
            // CRI run_as_username (containerd's WithUser): the name, with run_as_group as its
            // group, in place of the image's user.
            user = try resolveUser(name + (runAsGroup.map { ":\($0)" } ?? ""), runAsUser: nil, runAsGroup: nil, fs: fs, what: "run_as_username")
        } else {
            user = try resolveUser(cfg.User ?? "", runAsUser: runAsUser, runAsGroup: runAsGroup, fs: fs)
        }
        var signal: Int32? = nil
        if let s = cfg.StopSignal, !s.isEmpty {
            guard let n = Signals.parse(s) else {
                throw ImageError(reason: .imageInspectError, message: "the image's StopSignal \"\(s)\" is not a signal")
            }
            signal = n
        }
        return ProcessDefaults(
            argv: argv, env: merged.map { "\($0.0)=\($0.1)" }, workingDir: cwd, uid: user.uid, gid: user.gid,
            additionalGids: user.groups, stopSignal: signal)
    }

    struct User {
        var uid: UInt32
        var gid: UInt32
        var groups: [UInt32]
    }

    static func resolveUser(_ spec: String, runAsUser: Int64?, runAsGroup: Int64?, fs: ImageFS?, what: String = "the image's user") throws(ImageError) -> User {
        let passwd = Passwd(fs?.read("/etc/passwd"))
        let groupFile = GroupFile(fs?.read("/etc/group"))
        var userPart = spec
        var groupPart: String? = nil
        if let colon = spec.firstIndex(of: ":") {
            userPart = String(spec[..<colon])
            groupPart = String(spec[spec.index(after: colon)...])
        }
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        var name: String? = nil
        if let r = runAsUser {
            uid = UInt32(clamping: r)
            // The gid of that uid's passwd entry, when the image has one (runc does the same).
            if let e = passwd.entries.first(where: { $0.uid == uid }) {
                gid = e.gid
                name = e.name
            }
        } else if userPart.isEmpty {
            if let e = passwd.entries.first(where: { $0.uid == 0 }) { name = e.name }
        } else if let n = UInt32(userPart) {
            uid = n
            if let e = passwd.entries.first(where: { $0.uid == n }) {
                gid = e.gid
                name = e.name
            }
        } else {
            guard let e = passwd.entries.first(where: { $0.name == userPart }) else {
                throw ImageError(reason: .imageInspectError, message: "\(what) \"\(userPart)\" is not in the image's /etc/passwd")
            }
            uid = e.uid
            gid = e.gid
            name = e.name
        }
        if let r = runAsGroup {
            gid = UInt32(clamping: r)
        } else if let g = groupPart, !g.isEmpty, runAsUser == nil {
            if let n = UInt32(g) {
                gid = n
            } else {
                guard let e = groupFile.entries.first(where: { $0.name == g }) else {
                    throw ImageError(reason: .imageInspectError, message: "\(what) \"\(spec)\": group \"\(g)\" is not in the image's /etc/group")
                }
                gid = e.gid
            }
        }
        var groups: [UInt32] = []
        if let name {
            for g in groupFile.entries where g.members.contains(name) && g.gid != gid && !groups.contains(g.gid) {
                groups.append(g.gid)
            }
        }
        return User(uid: uid, gid: gid, groups: groups)
    }
}

/// /etc/passwd lines: name:password:uid:gid:gecos:home:shell
struct Passwd {
    struct Entry {
        var name: String
        var uid: UInt32
        var gid: UInt32
    }

    var entries: [Entry] = []

    init(_ bytes: [UInt8]?) {
        guard let bytes else { return }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 4, let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { continue }
            entries.append(Entry(name: String(f[0]), uid: uid, gid: gid))
        }
    }
}

/// /etc/group lines: name:password:gid:member,member
struct GroupFile {
    struct Entry {
        var name: String
        var gid: UInt32
        var members: [String]
    }

    var entries: [Entry] = []

    init(_ bytes: [UInt8]?) {
        guard let bytes else { return }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 3, let gid = UInt32(f[2]) else { continue }
            let members = f.count > 3 ? f[3].split(separator: ",").map { String($0).trimmed() } : []
            entries.append(Entry(name: String(f[0]), gid: gid, members: members))
        }
    }
}
