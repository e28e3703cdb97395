import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// What a container sees from inside (issue 2: "A container from a busybox-static rootfs runs
/// /bin/sh -c ... and from inside sees ...").
@Suite("Inside a container", .enabled(if: Host.canRunContainers, Host.skipReason))
struct ContainerViewTests {
    /// A shell script printing key=value facts about PID 1 (the shell itself).
    static let report = """
        echo "pid=$$"
        for t in mnt uts ipc net pid cgroup; do echo "ns_$t=$(readlink /proc/self/ns/$t)"; done
        echo "hostname=$(hostname)"
        if [ -e "$SENTINEL" ]; then echo sentinel=visible; else echo sentinel=absent; fi
        set -- /proc/[0-9]*; echo "procs=$*"
        echo "netdev=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"
        echo "sysnet=$(ls /sys/class/net | tr '\\n' ' ')"
        grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Uid|Gid|Groups|Seccomp):' /proc/1/status | tr -d '\\t' | sed 's/:/=/'
        echo "nofile=$(grep 'Max open files' /proc/1/limits | tr -s ' ' | cut -d' ' -f4,5)"
        echo "nproc=$(grep 'Max processes' /proc/1/limits | tr -s ' ' | cut -d' ' -f3,4)"
        echo "cgroup=$(grep '^0::' /proc/1/cgroup)"
        echo "cwd=$(pwd)"
        echo "exe=$(readlink /proc/1/exe)"
        """

    static func facts(_ output: String) -> [String: String] {
        var d: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            d[String(line[..<eq])] = String(line[line.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
        }
        return d
    }

    @Test("root with runc's default spec: own namespaces, PID 1, hostname, /proc, lo, caps, NoNewPrivs, rlimits")
    func defaultSpec() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let sentinel = scratch.path + "/host-sentinel"
        try "secret".write(toFile: sentinel, atomically: false, encoding: .utf8)
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", Self.report])
        bundle.spec.process?.env?.append("SENTINEL=\(sentinel)")
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let r = runc("run", "--bundle", bundle.path, id)
        #expect(r.status == 0, "run failed: \(r.stderr)")
        let f = Self.facts(r.stdout)

        #expect(f["pid"] == "1")
        for t in ["mnt", "uts", "ipc", "net", "pid", "cgroup"] {
            let inside = f["ns_\(t)"] ?? ""
            #expect(!inside.isEmpty && inside != hostNamespace(t), "\(t) namespace is the host's: \(inside)")
        }
        #expect(f["hostname"] == "husk-test")
        #expect(f["sentinel"] == "absent", "a host file is visible inside")
        #expect(f["procs"] == "/proc/1", "the container sees other processes: \(f["procs"] ?? "")")
        #expect(f["netdev"] == "lo", "interfaces: \(f["netdev"] ?? "")")
        #expect(f["sysnet"] == "lo")
        // runc's default: AUDIT_WRITE(29), KILL(5), NET_BIND_SERVICE(10) in every set but
        // inheritable and ambient (CVE-2022-29162: CapInh stays 0).
        #expect(f["CapInh"] == "0000000000000000")
        #expect(f["CapPrm"] == "0000000020000420")
        #expect(f["CapEff"] == "0000000020000420")
        #expect(f["CapBnd"] == "0000000020000420")
        #expect(f["CapAmb"] == "0000000000000000")
        #expect(f["NoNewPrivs"] == "1")
        #expect(f["Uid"] == "0000")
        #expect(f["nofile"] == "1024 1024")
        #expect(f["cgroup"] == "0::/", "own cgroup namespace expected: \(f["cgroup"] ?? "")")
        #expect(f["cwd"] == "/")
        #expect(f["exe"] == "/bin/busybox")
        expectGone(id, runc: runc)
    }

    @Test("user, groups, capabilities, no NoNewPrivs, rlimits, cgroup path without a cgroup namespace")
    func userAndLimits() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", Self.report])
        bundle.spec.process?.user = Spec.User(uid: 1000, gid: 1001, additionalGids: [10, 20])
        bundle.spec.process?.capabilities = Spec.CapabilitySet(
            bounding: ["CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL"], effective: ["CAP_CHOWN", "CAP_NET_RAW"],
            inheritable: ["CAP_NET_RAW"], permitted: ["CAP_CHOWN", "CAP_NET_RAW"], ambient: ["CAP_NET_RAW"])
        bundle.spec.process?.noNewPrivileges = false
        bundle.spec.process?.rlimits = [
            Spec.Rlimit(type: "RLIMIT_NOFILE", hard: 512, soft: 256), Spec.Rlimit(type: "RLIMIT_NPROC", hard: 300, soft: 200),
        ]
        bundle.spec.process?.env?.append("SENTINEL=/nonexistent")
        bundle.spec.linux?.namespaces?.removeAll { $0.type == "cgroup" }
        let id = uniqueID()
        bundle.spec.linux?.cgroupsPath = "/husk/test-cg/\(id)"
        try bundle.write()
        let runc = Runc(scratch)
        let r = runc("run", "--bundle", bundle.path, id)
        #expect(r.status == 0, "run failed: \(r.stderr)")
        let f = Self.facts(r.stdout)
        #expect(f["Uid"] == "1000100010001000")
        #expect(f["Gid"] == "1001100110011001")
        #expect(f["Groups"] == "10 20")
        // CHOWN(0), KILL(5), NET_RAW(13). A non-root uid keeps across execve only what is
        // ambient (capabilities(7)): CHOWN was set before exec but is gone after it.
        #expect(f["CapBnd"] == "0000000000002021")
        #expect(f["CapPrm"] == "0000000000002000")
        #expect(f["CapEff"] == "0000000000002000")
        #expect(f["CapInh"] == "0000000000002000")
        #expect(f["CapAmb"] == "0000000000002000")
        #expect(f["NoNewPrivs"] == "0")
        #expect(f["nofile"] == "256 512")
        #expect(f["nproc"] == "200 300")
        #expect(f["cgroup"] == "0::/husk/test-cg/\(id)")
        #expect(f["ns_cgroup"] == hostNamespace("cgroup"))
        expectGone(id, runc: runc, cgroup: "/husk/test-cg/\(id)")
        #expect(!FileManager.default.fileExists(atPath: Host.cgroup2!.path + "/husk/test-cg"), "empty parent cgroup left")
    }

    @Test("a syscall denied by the seccomp profile fails with the configured errno")
    func seccompErrno() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "mkdir /tmp/x; echo status=$?; grep Seccomp: /proc/1/status"])
        bundle.spec.root?.readonly = false
        bundle.spec.linux?.seccomp = Spec.Seccomp(
            defaultAction: "SCMP_ACT_ALLOW",
            syscalls: [Spec.Syscall(names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: UInt32(EXDEV))])
        bundle.spec.linux?.seccomp?.architectures = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
        try bundle.write()
        let runc = Runc(scratch)
        let r = runc("run", "--bundle", bundle.path, uniqueID())
        #expect(r.status == 0, "run failed: \(r.stderr)")
        #expect(r.stderr.contains("Invalid cross-device link"), "mkdir did not fail with EXDEV: \(r.stderr)")
        #expect(r.stdout.contains("status=1"))
        #expect(r.stdout.contains("Seccomp:\t2"), "no filter on PID 1: \(r.stdout)")
    }

    @Test("masked paths read empty, readonly paths and a readonly root refuse writes, binds work")
    func maskedReadonlyAndBinds() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let shared = scratch.path + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        try "from-host".write(toFile: shared + "/in", atomically: false, encoding: .utf8)
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", """
            echo "keys=$(cat /proc/keys | wc -c)"
            echo "firmware=$(ls /sys/firmware | wc -l)"
            echo x > /proc/sys/kernel/domainname 2>/dev/null; echo "procsys=$?"
            touch /newfile 2>/dev/null; echo "root=$?"
            echo "in=$(cat /data/in)"; echo out > /data/out; echo "rw=$?"
            echo z > /ro/z 2>/dev/null; echo "robind=$?"
            """])
        bundle.spec.mounts?.append(Spec.Mount(destination: "/data", type: "bind", source: shared, options: ["rbind", "rw"]))
        bundle.spec.mounts?.append(Spec.Mount(destination: "/ro", type: "bind", source: shared, options: ["bind", "ro"]))
        try bundle.write()
        let runc = Runc(scratch)
        let r = runc("run", "--bundle", bundle.path, uniqueID())
        #expect(r.status == 0, "run failed: \(r.stderr)")
        let f = Self.facts(r.stdout)
        #expect(f["keys"] == "0", "/proc/keys is not masked")
        #expect(f["firmware"] == "0", "/sys/firmware is not masked")
        #expect(f["procsys"] == "1", "/proc/sys is writable")
        #expect(f["root"] == "1", "the readonly root is writable")
        #expect(f["in"] == "from-host")
        #expect(f["rw"] == "0")
        #expect(f["robind"] == "1", "a ro bind is writable")
        #expect((try? String(contentsOfFile: shared + "/out", encoding: .utf8)) == "out\n")
    }

    @Test("device access follows linux.resources.devices: deny-all, then the allowed nodes")
    func deviceFilter() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", """
            head -c 1 /dev/zero | wc -c | sed 's/^/zero=/'
            echo x > /dev/null && echo null=ok
            mknod /tmp/sda b 8 0 && echo mknod=ok
            if true < /tmp/sda 2>/dev/null; then echo sda=open; else echo sda=denied; fi
            mknod /tmp/fuse c 10 229
            if true < /tmp/fuse 2>/dev/null; then echo fuse=open; else echo fuse=denied; fi
            """])
        let caps = ["CAP_MKNOD", "CAP_DAC_OVERRIDE"]
        bundle.spec.process?.capabilities = Spec.CapabilitySet(bounding: caps, effective: caps, permitted: caps)
        bundle.spec.mounts?.append(Spec.Mount(destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["dev"]))
        var resources = Spec.Resources()
        resources.devices = [Spec.DeviceRule(allow: false, access: "rwm")]
        bundle.spec.linux?.resources = resources
        try bundle.write()
        let runc = Runc(scratch)
        var r = runc("run", "--bundle", bundle.path, uniqueID())
        #expect(r.status == 0, "\(r.stderr)")
        var f = Self.facts(r.stdout)
        #expect(f["zero"] == "1")
        #expect(f["null"] == "ok")
        #expect(f["mknod"] == "ok", "runc's defaults allow mknod: \(r.stderr)")
        #expect(f["sda"] == "denied", "a host disk is reachable: \(r.stdout)")
        #expect(f["fuse"] == "denied")

        // A later rule allows one device: only that one opens.
        resources.devices?.append(Spec.DeviceRule(allow: true, type: "c", major: 10, minor: 229, access: "r"))
        bundle.spec.linux?.resources = resources
        try bundle.write()
        r = runc("run", "--bundle", bundle.path, uniqueID())
        f = Self.facts(r.stdout)
        #expect(f["fuse"] == "open", "\(r.stdout) \(r.stderr)")
        #expect(f["sda"] == "denied")
    }

    @Test("the exit status of the program is run's exit status")
    func exitStatus() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let bundle = try TestBundle(in: scratch, args: ["sh", "-c", "exit 42"])
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        #expect(runc("run", "--bundle", bundle.path, id).status == 42)
        expectGone(id, runc: runc)
    }
}
