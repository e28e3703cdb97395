import FoundationEssentials
@testable import HuskRuntime
import HuskJSON
import HuskSystem
import Testing

@Suite("config.json decoding and validation")
struct SpecTests {
    func decode(_ json: String) throws(HuskError) -> RuntimeBundle {
        try RuntimeBundle.decode(Data(json.utf8), bundle: "/b", file: "/b/config.json")
    }

    @Test("a wrong type names the JSON path and what was found")
    func typeMismatchPath() {
        #expect {
            _ = try decode(#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"cwd":"/","args":["sh",5]}}"#)
        } throws: { e in
            "\(e)" == "/b/config.json: process.args[1]: expected a string, found a number"
        }
        #expect {
            _ = try decode(#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":7}]}}"#)
        } throws: { e in
            "\(e)" == "/b/config.json: linux.namespaces[1].type: expected a string, found a number"
        }
    }

    @Test("a missing required field names its path")
    func missingField() {
        #expect {
            _ = try decode(#"{"ociVersion":"1.0.2","process":{"cwd":"/"}}"#)
        } throws: { e in
            "\(e)" == "/b/config.json: process.user: required field is missing"
        }
    }

    @Test("broken JSON and a non-object document are refused")
    func notJSON() {
        #expect { _ = try decode("{\"ociVersion\": ") } throws: { e in "\(e)".hasPrefix("/b/config.json: not valid JSON") }
        #expect { _ = try decode("[1]") } throws: { e in
            "\(e)" == "/b/config.json: the document must be a JSON object, found an array"
        }
    }

    @Test("unknown fields are kept through a round trip")
    func unknownFieldsKept() throws {
        let b = try decode(#"{"ociVersion":"1.0.2","x-extra":{"a":1},"process":{"user":{"uid":0,"gid":0},"cwd":"/","args":["sh"],"newField":true}}"#)
        var copy = b
        copy.spec.process?.args = ["true"]
        let out = try copy.encoded()
        #expect(out["x-extra"] == .object(["a": .number(1)]))
        #expect(out["process"]?["newField"] == .bool(true))
        #expect(out["process"]?["args"] == .array([.string("true")]))
    }

    @Test("husk-runc's default spec is valid and has runc's shape")
    func defaultSpecValid() throws {
        let spec = Spec.runtimeDefault()
        var p = spec.validate(bundle: "/")
        // The default rootfs is relative to a bundle that does not exist here.
        p.errors.removeAll { $0.hasPrefix("root.path") }
        #expect(p.errors.isEmpty, "\(p.errors)")
        #expect(p.warnings.isEmpty, "\(p.warnings)")
        #expect(spec.process?.noNewPrivileges == true)
        #expect(spec.process?.capabilities?.inheritable == nil)
        #expect(spec.linux?.namespaces?.map(\.type) == ["pid", "network", "ipc", "uts", "mount", "cgroup"])
    }

    @Test("semantic checks name the field", arguments: [
        (#"{"ociVersion":"2.0.0"}"#, "ociVersion: \"2.0.0\" is not supported"),
        (#"{"ociVersion":"1.0.2"}"#, "process: required field is missing"),
        (#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"cwd":"rel","args":["sh"]}}"#, "process.cwd: \"rel\" must be an absolute path"),
        (#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"cwd":"/","args":[]}}"#, "process.args: must name the program"),
        (#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"cwd":"/","args":["a"],"env":["NOEQ"]}}"#, "process.env[0]: \"NOEQ\" is not of the form NAME=value"),
        (#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"cwd":"/","args":["a"],"rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2}]}}"#, "process.rlimits[0]: soft limit 2 is above hard limit 1"),
        (#"{"ociVersion":"1.0.2","hostname":"h","linux":{"namespaces":[{"type":"mount"}]}}"#, "hostname: setting a hostname needs a uts namespace"),
        (#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount"},{"type":"mount"}]}}"#, "linux.namespaces[1].type: namespace mount is listed twice"),
        (#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount"},{"type":"user"}]}}"#, "linux.uidMappings: a new user namespace needs uid mappings"),
        (#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount"}],"uidMappings":[{"containerID":0,"hostID":1000,"size":10}]}}"#, "linux.uidMappings: id mappings need a new user namespace"),
        (#"{"ociVersion":"1.0.2","mounts":[{"destination":"/x","type":"tmpfs","source":"tmpfs","options":["idmap"]}]}"#, "mounts[0]: id-mapped mounts are supported for bind mounts only"),
        (#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"mount"}],"sysctl":{"net.ipv4.ip_forward":"1"}}}"#, "linux.sysctl.net.ipv4.ip_forward: needs a new network namespace"),
        (#"{"ociVersion":"1.0.2","linux":{"devices":[{"type":"x","path":"/dev/x"}]}}"#, "linux.devices[0].type: unknown device type \"x\""),
        (#"{"ociVersion":"1.0.2","mounts":[{"destination":"/x","type":"bind"}]}"#, "mounts[0].source: a bind mount needs a source"),
        (#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_NOPE"}}}"#, "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_NOPE\""),
        (#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_KILL","errnoRet":5}]}}}"#, "linux.seccomp.syscalls[0].errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not SCMP_ACT_KILL"),
        (#"{"ociVersion":"1.0.2","linux":{"resources":{"memory":{"limit":100,"swap":50}}}}"#, "linux.resources.memory.swap: 50 is below memory.limit 100"),
        (#"{"ociVersion":"1.0.2","hooks":{"poststop":[{"path":"/bin/true","timeout":0}]}}"#, "hooks.poststop[0].timeout: 0 must be greater than zero"),
        (#"{"ociVersion":"1.0.2","linux":{"netDevices":{"eth1":{}}}}"#, "linux.netDevices: is not supported yet"),
        (#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_BAD"}]}]}}}"#, "linux.seccomp.syscalls[0].args[0].op: unknown operator \"SCMP_CMP_BAD\""),
        (#"{"ociVersion":"1.0.2","hooks":{"prestart":[{"path":"true"}]}}"#, "hooks.prestart[0].path: \"true\" must be an absolute path"),
    ])
    func semanticErrors(json: String, expected: String) throws {
        let b = try decode(json)
        let p = b.spec.validate(bundle: "/")
        #expect(p.errors.contains { $0.hasPrefix(expected) }, "\(p.errors)")
    }
}

@Suite("Mount options")
struct MountOptionsTests {
    @Test("flags, propagation, binds and fs data")
    func parse() {
        let o = MountOptions(["nosuid", "noexec", "nodev", "ro", "rslave", "mode=755", "size=65536k"])
        #expect(o.flags.rawValue == 0x1 | 0x2 | 0x4 | 0x8)
        #expect(o.propagation.rawValue == 0x80000 | 0x4000)
        #expect(o.dataString == "mode=755,size=65536k")
        #expect(!o.bind)
        let b = MountOptions(["rbind", "rw", "private"])
        #expect(b.bind && b.recursive)
        #expect(b.flags.rawValue == 0)
        #expect(b.propagation.rawValue == 0x40000)
        let r = MountOptions(["ro", "rw"])
        #expect(r.flags.rawValue == 0, "rw after ro clears the flag")
        // config.md lists iversion/noiversion among the options a runtime MUST support.
        #expect(MountOptions(["iversion"]).flags.rawValue == 1 << 23 && MountOptions(["iversion"]).data.isEmpty)
        #expect(MountOptions(["iversion", "noiversion"]).flags.rawValue == 0)
    }
}

@Suite("Spawn planning")
struct SpawnPlannerTests {
    func spec() -> Spec {
        var s = Spec.runtimeDefault()
        s.root = Spec.Root(path: "/r")
        return s
    }

    @Test("namespaces become clone flags; cgroup becomes an unshare")
    func namespaces() throws {
        let p = try SpawnPlanner.plan(spec: spec(), bundle: "/b", cgroupDirectory: "/cg")
        #expect(p.plan.newNamespaces.rawValue == 0x20000 | 0x20000000 | 0x40000000 | 0x8000000 | 0x4000000)
        #expect(p.plan.unshareCgroupNamespace)
        #expect(p.joins.isEmpty && p.pidNamespacePath == nil)
    }

    @Test("namespaces with a path are joined, pid through the parent")
    func joins() throws {
        var s = spec()
        s.linux?.namespaces = [.init(type: "mount"), .init(type: "network", path: "/proc/1/ns/net"),
                               .init(type: "pid", path: "/proc/1/ns/pid")]
        let p = try SpawnPlanner.plan(spec: s, bundle: "/b", cgroupDirectory: "/cg")
        #expect(p.plan.newNamespaces.rawValue == 0x20000)
        #expect(p.joins.map(\.path) == ["/proc/1/ns/net"])
        #expect(p.pidNamespacePath == "/proc/1/ns/pid")
    }

    @Test("a cgroup mount is cgroup2 with a cgroup namespace, else a bind of the container's group")
    func cgroupMount() throws {
        var s = spec()
        var p = try SpawnPlanner.plan(spec: s, bundle: "/b", cgroupDirectory: "/sys/fs/cgroup/husk/x")
        let m = try #require(p.plan.mounts.first { $0.target == "/sys/fs/cgroup" })
        #expect(m.fstype == "cgroup2")
        s.linux?.namespaces?.removeAll { $0.type == "cgroup" }
        p = try SpawnPlanner.plan(spec: s, bundle: "/b", cgroupDirectory: "/sys/fs/cgroup/husk/x")
        let b = try #require(p.plan.mounts.first { $0.target == "/sys/fs/cgroup" })
        #expect(b.fstype == nil && b.source == "/sys/fs/cgroup/husk/x")
    }

    @Test("devices: the default set plus the spec's, /dev symlinks; bind sources relative to the bundle")
    func devicesAndBinds() throws {
        var s = spec()
        s.linux?.devices = [Spec.Device(type: "c", path: "/dev/fuse", major: 10, minor: 229, fileMode: 0o600)]
        s.mounts?.append(Spec.Mount(destination: "data", type: "bind", source: "vol", options: ["ro"]))
        let p = try SpawnPlanner.plan(spec: s, bundle: "/b", cgroupDirectory: nil)
        #expect(p.plan.devices.map(\.path) == ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/fuse"])
        #expect(p.plan.devices.last?.mode == 0o020600)
        #expect(p.plan.symlinks.contains { $0.path == "/dev/ptmx" && $0.target == "pts/ptmx" })
        let bind = try #require(p.plan.mounts.last)
        #expect(bind.target == "/data" && bind.source == "/b/vol" && bind.fstype == nil)
    }

    @Test("capabilities become masks; ambient needs permitted and inheritable")
    func capabilities() throws {
        var s = spec()
        s.process?.capabilities = Spec.CapabilitySet(
            bounding: ["CAP_KILL", "NET_RAW"], effective: ["CAP_KILL"], inheritable: ["CAP_KILL"],
            permitted: ["CAP_KILL"], ambient: ["CAP_KILL", "CAP_NET_RAW"])
        let p = try SpawnPlanner.plan(spec: s, bundle: "/b", cgroupDirectory: nil)
        #expect(p.plan.bounding == (1 << 5) | (1 << 13))
        #expect(p.plan.ambient == 1 << 5)
        #expect(p.warnings.contains { $0.contains("CAP_NET_RAW not raised") })
    }

    @Test("cgroupsPath: absolute inside the hierarchy, default under /husk/runc")
    func cgroupPath() throws {
        var s = spec()
        #expect(try Container.cgroupPathForTesting(spec: s, id: "c1") == "/husk/runc/c1")
        s.linux?.cgroupsPath = "/a//b/./c/"
        #expect(try Container.cgroupPathForTesting(spec: s, id: "c1") == "/a/b/c")
        s.linux?.cgroupsPath = "/a/../../etc"
        #expect(throws: HuskError.self) { try Container.cgroupPathForTesting(spec: s, id: "c1") }
        s.linux?.cgroupsPath = "system.slice:husk:c1"
        #expect(throws: HuskError.self) { try Container.cgroupPathForTesting(spec: s, id: "c1") }
    }
}

@Suite("Seccomp compilation")
struct SeccompTests {
    @Test("a profile compiles to BPF; unknown syscalls are skipped with a warning")
    func compile() throws {
        var sc = Spec.Seccomp(defaultAction: "SCMP_ACT_ERRNO", syscalls: [
            Spec.Syscall(names: ["read", "write", "no_such_syscall"], action: "SCMP_ACT_ALLOW"),
            Spec.Syscall(names: ["personality"], action: "SCMP_ACT_ALLOW", args: [
                Spec.SeccompArg(index: 0, value: 0, op: "SCMP_CMP_EQ"), Spec.SeccompArg(index: 0, value: 8, op: "SCMP_CMP_EQ"),
            ]),
        ])
        sc.architectures = ["SCMP_ARCH_X86_64"]
        let (program, warnings) = try SeccompProfile.compile(sc)
        #expect(program.count > 5)
        #expect(program.instructions.count == program.count * 8)
        #expect(warnings == ["linux.seccomp.syscalls[0]: unknown syscall \"no_such_syscall\" is skipped"])
    }
}

@Suite("Container ids")
struct ContainerIDTests {
    @Test("runc's id rule")
    func ids() {
        for ok in ["a", "abc-DEF_1.2+3", String(repeating: "x", count: 64)] { #expect(Container.isValidID(ok), "\(ok)") }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a:b"] { #expect(!Container.isValidID(bad), "\(bad)") }
    }
}

@Suite("Device rules")
struct DeviceFilterTests {
    @Test("deny-all resets the default; later rules are checked first; runc's defaults come last")
    func reduce() {
        let f = DeviceFilter.build(
            resources: [.init(allow: true, type: "c", major: 4, access: "rw"), .init(allow: false, access: "rwm"),
                        .init(allow: true, type: "b", major: 8, minor: 0, access: "r")])
        #expect(f.defaultAllow == false)
        // The rule before deny-all is gone; runc's 12 defaults, then b 8:0.
        #expect(f.rules.count == DeviceFilter.runtimeDefaults.count + 1)
        #expect(f.rules.last == DeviceFilter.Rule(type: 1, major: 8, minor: 0, access: 2, allow: true))
    }

    @Test("without an all-devices rule everything stays allowed")
    func defaultAllow() {
        let f = DeviceFilter.build(resources: nil)
        #expect(f.defaultAllow)
        let g = DeviceFilter.build(resources: [.init(allow: false, access: "rwm"), .init(allow: true, access: "rwm")])
        #expect(g.defaultAllow)
    }
}

@Suite("State records")
struct RecordTests {
    @Test("the hand-written record JSON decodes back to the same record")
    func roundTrip() throws {
        let r = ContainerRecord(
            ociVersion: "1.2.0", id: "c\"1", phase: .created, pid: 42, pidStartTime: 123456789, bundle: "/b\\x",
            rootfs: "/b/rootfs", created: "2026-01-01T00:00:00.000000001Z", owner: "", annotations: ["k": "v\n"],
            cgroupMount: "/sys/fs/cgroup", cgroupPath: "/husk/runc/c1", cgroupCreated: ["/husk", "/husk/runc"])
        let back = try JSONDecoder().decode(ContainerRecord.self, from: Data(r.json().utf8))
        #expect(back == r)
    }
}
