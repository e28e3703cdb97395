import HuskImage
import Testing

private func config(
    entrypoint: [String]? = ["/ep"], cmd: [String]? = ["c1"], env: [String]? = nil, workingDir: String? = nil,
    user: String? = nil, stopSignal: String? = nil
) -> ImageConfig.Config {
    var c = ImageConfig.Config()
    c.Entrypoint = entrypoint
    c.Cmd = cmd
    c.Env = env
    c.WorkingDir = workingDir
    c.User = user
    c.StopSignal = stopSignal
    return c
}

private func resolve(
    _ cfg: ImageConfig.Config? = config(), command: [String]? = nil, args: [String]? = nil, env: [EnvVar] = [],
    workingDir: String? = nil, runAsUser: Int64? = nil, runAsGroup: Int64? = nil, fs: ImageFS? = nil
) throws(ImageError) -> ProcessDefaults {
    try ProcessDefaults.resolve(
        image: cfg, command: command, args: args, env: env, workingDir: workingDir, runAsUser: runAsUser,
        runAsGroup: runAsGroup, fs: fs)
}

private func resolveError(_ body: () throws(ImageError) -> ProcessDefaults) -> ImageError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

@Suite("ProcessDefaults: command, env, working directory, stop signal")
struct ProcessDefaultsTests {
    @Test("command/args combine with the image's Entrypoint [/ep] and Cmd [c1]", arguments: [
        (nil, nil, ["/ep", "c1"]),
        (["x"], nil, ["x"]),
        (nil, ["a"], ["/ep", "a"]),
        (["x"], ["a"], ["x", "a"]),
        ([], [], ["/ep", "c1"]),  // empty lists count as not set
        (["x", "y"], [], ["x", "y"]),
        ([], ["a", "b"], ["/ep", "a", "b"]),
    ] as [([String]?, [String]?, [String])])
    func argv(_ command: [String]?, _ args: [String]?, _ expected: [String]) throws {
        #expect(try resolve(command: command, args: args).argv == expected)
    }

    @Test("args alone with an image that has only Cmd run just the args")
    func argsWithoutEntrypoint() throws {
        #expect(try resolve(config(entrypoint: nil, cmd: ["sh"]), args: ["a"]).argv == ["a"])
        #expect(try resolve(config(entrypoint: nil, cmd: ["sh", "-c", "x"])).argv == ["sh", "-c", "x"])
    }

    @Test("no command anywhere is an error", arguments: [
        config(entrypoint: nil, cmd: nil), config(entrypoint: [], cmd: []),
    ])
    func noCommand(_ cfg: ImageConfig.Config) {
        #expect(resolveError { () throws(ImageError) in try resolve(cfg) } != nil)
        #expect(resolveError { () throws(ImageError) in try resolve(cfg, command: []) } != nil)
    }

    @Test("a missing image config still runs the container's command")
    func noConfig() throws {
        let p = try resolve(nil, command: ["x"], args: ["a"])
        #expect(p.argv == ["x", "a"])
        #expect(p.env.isEmpty)
        #expect(p.workingDir == "/")
        #expect(p.uid == 0 && p.gid == 0 && p.additionalGids.isEmpty)
        #expect(p.stopSignal == nil)
        #expect(resolveError { () throws(ImageError) in try resolve(nil) } != nil)
    }

    @Test("env: the image's first, the container's override by name and append in order")
    func envMerge() throws {
        let p = try resolve(config(env: ["A=1", "B=2"]), env: [EnvVar("B", "3"), EnvVar("C", "4")])
        #expect(p.env == ["A=1", "B=3", "C=4"])
    }

    @Test("env values keep their '=' and the last container entry for a name wins")
    func envDetails() throws {
        let p = try resolve(
            config(env: ["PATH=/usr/bin:/bin", "X=a=b"]),
            env: [EnvVar("Y", "1"), EnvVar("Y", "2"), EnvVar("PATH", "/opt/bin")])
        #expect(p.env == ["PATH=/opt/bin", "X=a=b", "Y=2"])
    }

    @Test("working directory: the container's, else the image's, else /", arguments: [
        ("/w", "/i", "/w"),
        (nil, "/i", "/i"),
        ("", "/i", "/i"),
        ("/w", nil, "/w"),
        (nil, nil, "/"),
        (nil, "", "/"),
    ] as [(String?, String?, String)])
    func workingDir(_ container: String?, _ image: String?, _ expected: String) throws {
        #expect(try resolve(config(workingDir: image), workingDir: container).workingDir == expected)
    }

    @Test("the image's StopSignal becomes a number", arguments: [
        ("SIGQUIT", Int32(3)), ("9", 9), ("TERM", 15), ("sigint", 2),
    ] as [(String, Int32)])
    func stopSignal(_ text: String, _ number: Int32) throws {
        #expect(try resolve(config(stopSignal: text)).stopSignal == number)
    }

    @Test("no StopSignal means none", arguments: [nil, ""] as [String?])
    func noStopSignal(_ text: String?) throws {
        #expect(try resolve(config(stopSignal: text)).stopSignal == nil)
    }

    @Test("a StopSignal that is not a signal is an error naming it", arguments: ["SIGBOGUS", "0", "99", "-1"])
    func badStopSignal(_ text: String) throws {
        let error = try #require(resolveError { () throws(ImageError) in try resolve(config(stopSignal: text)) })
        #expect(error.message.contains("\"\(text)\""), "message: \(error.message)")
    }
}

@Suite("ProcessDefaults: user and groups from the image's /etc/passwd and /etc/group")
struct UserResolutionTests {
    static let passwd = """
        root:x:0:0:root:/root:/bin/sh
        # a comment line
        app:x:1000:1000:App:/home/app:/bin/sh
        other:x:1234:1500::/:/bin/false
        broken:x:notanumber:1:::

        """
    static let group = """
        root:x:0:
        wheel:x:10:root
        staff:x:50:app,other
        app:x:1000:app
        docker:x:999:bob, app
        others:x:1500:
        """

    /// Runs `body` with an ImageFS whose single layer holds the passwd and group files above.
    private func withImage(_ body: (ImageFS) throws -> Void) throws {
        let scratch = try ScratchLayers()
        defer { scratch.remove() }
        try scratch.write(0, "etc/passwd", Self.passwd)
        try scratch.write(0, "etc/group", Self.group)
        try body(try scratch.fs(layers: 1))
    }

    private func user(
        _ spec: String?, runAsUser: Int64? = nil, runAsGroup: Int64? = nil, _ fs: ImageFS?
    ) throws(ImageError) -> ProcessDefaults {
        try resolve(config(user: spec), runAsUser: runAsUser, runAsGroup: runAsGroup, fs: fs)
    }

    @Test("no image user is root, with root's supplementary groups")
    func rootDefault() throws {
        try withImage { fs in
            for spec in [nil, ""] as [String?] {
                let p = try user(spec, fs)
                #expect(p.uid == 0 && p.gid == 0)
                #expect(p.additionalGids == [10])
            }
        }
        let bare = try user("", nil)
        #expect(bare.uid == 0 && bare.gid == 0 && bare.additionalGids.isEmpty)
    }

    @Test("a user name takes uid and gid from passwd and member groups except the primary")
    func byName() throws {
        try withImage { fs in
            let p = try user("app", fs)
            #expect(p.uid == 1000 && p.gid == 1000)
            #expect(p.additionalGids == [50, 999])
        }
    }

    @Test("a numeric user uses its passwd entry's gid and groups when there is one")
    func numeric() throws {
        try withImage { fs in
            let p = try user("1000", fs)
            #expect(p.uid == 1000 && p.gid == 1000)
            #expect(p.additionalGids == [50, 999])
            let unknown = try user("4242", fs)
            #expect(unknown.uid == 4242 && unknown.gid == 0 && unknown.additionalGids.isEmpty)
        }
    }

    @Test("uid:gid and name:group forms", arguments: [
        ("1000:2000", UInt32(1000), UInt32(2000)),
        ("app:staff", 1000, 50),
        ("app:2000", 1000, 2000),
        ("4242:others", 4242, 1500),
        ("other:wheel", 1234, 10),
    ] as [(String, UInt32, UInt32)])
    func withGroup(_ spec: String, _ uid: UInt32, _ gid: UInt32) throws {
        try withImage { fs in
            let p = try user(spec, fs)
            #expect(p.uid == uid && p.gid == gid)
            #expect(!p.additionalGids.contains(gid), "the primary gid is not a supplementary group")
        }
    }

    @Test("an unknown user or group name is an error naming it", arguments: [
        ("nobody2", "nobody2"), ("app:nogroup", "nogroup"), ("1000:nogroup", "nogroup"),
    ])
    func unknownNames(_ spec: String, _ named: String) throws {
        try withImage { fs in
            let error = try #require(resolveError { () throws(ImageError) in try user(spec, fs) })
            #expect(error.message.contains("\"\(named)\""), "message: \(error.message)")
        }
    }

    @Test("a user name without an image filesystem cannot be resolved")
    func nameWithoutFS() {
        #expect(resolveError { () throws(ImageError) in try user("app", nil) } != nil)
    }

    @Test("runAsUser overrides the image's user; gid from its passwd entry, else 0")
    func runAsUser() throws {
        try withImage { fs in
            let p = try user("app", runAsUser: 1234, fs)
            #expect(p.uid == 1234 && p.gid == 1500)
            #expect(p.additionalGids == [50])
            let q = try user("app:staff", runAsUser: 4321, fs)
            #expect(q.uid == 4321 && q.gid == 0 && q.additionalGids.isEmpty)
            let r = try user("", runAsUser: 0, fs)
            #expect(r.uid == 0 && r.gid == 0)
        }
    }

    @Test("runAsGroup overrides the gid, with or without runAsUser")
    func runAsGroup() throws {
        try withImage { fs in
            let p = try user("app", runAsGroup: 77, fs)
            #expect(p.uid == 1000 && p.gid == 77)
            let q = try user("app:staff", runAsGroup: 77, fs)
            #expect(q.uid == 1000 && q.gid == 77)
            let r = try user("", runAsUser: 1234, runAsGroup: 88, fs)
            #expect(r.uid == 1234 && r.gid == 88)
            let s = try user(nil, runAsGroup: 5, nil)
            #expect(s.uid == 0 && s.gid == 5)
        }
    }
}
