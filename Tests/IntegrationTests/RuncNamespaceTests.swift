import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// runtime-spec config-linux.md "Namespaces": a type that is not listed is inherited from the
/// runtime; one with a path is joined (and the container is set up inside it). And the
/// CVE-2024-21626 cwd guard runs before a seccomp filter that refuses getcwd (runtime-tools
/// linux_ns_itype, linux_ns_path, linux_seccomp; issue 15 #2-#4).
/// The optional fields (shared:N, master:N...) of the host's "/" in our mountinfo.
func hostRootPropagation() -> String {
    let line = readText("/proc/self/mountinfo").split(separator: "\n").first { $0.split(separator: " ")[4] == "/" }
    let f = (line ?? "").split(separator: " ")
    guard let sep = f.firstIndex(of: "-"), sep > 6 else { return "" }
    return f[6..<sep].joined(separator: " ")
}

/// A process holding new namespaces of `flags` (unshare(1)), killed by `stop()`.
final class NamespaceHolder {
    let process = Process()
    init(_ flags: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        process.arguments = flags + ["/bin/sleep", "600"]
        try process.run()
        // unshare has made the namespaces once it has exec'd sleep.
        for _ in 0..<200 where (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/comm", encoding: .utf8)) != "sleep\n" {
            usleep(10_000)
        }
    }
    var pid: Int32 { process.processIdentifier }
    func ns(_ type: String) -> String { "/proc/\(pid)/ns/\(type)" }
    func stop() {
        // SIGKILL: the test process may hand SIGTERM on ignored.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

@Suite("husk-runc: inherited and joined namespaces, cwd guard before seccomp", .serialized)
struct RuncNamespaceTests {
    @Test("no mount namespace listed: the container shares the runtime's, is entered by chroot (exec too), the host's / keeps its propagation, and delete leaves no mount",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func inheritedMountNamespace() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "readlink /proc/self/ns/mnt; cat /marker; exec sleep 600"])
        bundle.spec.linux?.namespaces?.removeAll { $0.type == "mount" }
        bundle.spec.process?.terminal = false
        try bundle.write()
        try "inside\n".write(toFile: bundle.rootfs + "/marker", atomically: false, encoding: .utf8)
        let before = hostRootPropagation()
        let runc = Runc(scratch)
        let id = uniqueID()
        let out = scratch.path + "/out"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        let c = run(["/bin/sh", "-c", "exec \"$0\" --root \"$1\" create --bundle \"$2\" \"$3\" >\"$4\" 2>\"$4.err\"",
                     huskRuncPath, runc.root, bundle.path, id, out])
        #expect(c.status == 0, "create: \(readText(out + ".err"))")
        #expect(readText(out + ".err").contains("no mount namespace"), "no warning: \(readText(out + ".err"))")
        #expect(runc("start", id).status == 0)
        var seen = ""
        for _ in 0..<300 where !seen.contains("inside") {
            usleep(10_000)
            seen = readText(out)
        }
        #expect(seen.hasPrefix(hostNamespace("mnt") + "\n"), "not the runtime's mount namespace: \(seen)")
        #expect(seen.contains("inside"), "the root is not the rootfs: \(seen)")
        // The container's mounts sit below its rootfs in our mount table, and nowhere else.
        let mounts = ((try? MountInfo.read()) ?? []).map(\.mountPoint)
        #expect(mounts.contains(bundle.rootfs + "/proc"), "no /proc below the rootfs: \(mounts.filter { $0.hasPrefix(scratch.path) })")
        #expect(hostRootPropagation() == before, "the host's / changed: \(before) -> \(hostRootPropagation())")
        // exec goes into the same root.
        let e = runc("exec", id, "cat", "/marker")
        #expect(e.status == 0 && e.stdout == "inside\n", "exec: \(e)")
        #expect(runc("delete", "--force", id).status == 0)
        expectGone(id, runc: runc)
        // scratch.cleanup() checks that no mount is left below the bundle.
    }

    @Test("a failed create without a mount namespace leaves no mount behind",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func inheritedMountNamespaceFailure() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["/no/such/program"])
        bundle.spec.linux?.namespaces?.removeAll { $0.type == "mount" }
        bundle.spec.process?.terminal = false
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let r = runc.create(id, bundle: bundle.path)
        #expect(r.status != 0 && r.stderr.contains("/no/such/program"), "\(r)")
        expectGone(id, runc: runc)
    }

    @Test("a mount namespace joined by path: the rootfs is set up and entered inside it; a uts namespace joined by path takes the hostname",
          .enabled(if: Host.canRunContainers && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"), Host.skipReason))
    func joinedNamespaces() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let holder = try NamespaceHolder(["--mount", "--propagation", "private", "--uts"])
        defer { holder.stop() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "readlink /proc/self/ns/mnt; readlink /proc/self/ns/uts; cat /marker; hostname"])
        let joined = (bundle.spec.linux?.namespaces ?? []).map {
            $0.type == "mount" || $0.type == "uts" ? Spec.Namespace(type: $0.type, path: holder.ns($0.type == "mount" ? "mnt" : "uts")) : $0
        }
        bundle.spec.linux?.namespaces = joined
        bundle.spec.hostname = "joined-uts"
        bundle.spec.process?.terminal = false
        try bundle.write()
        try "inside\n".write(toFile: bundle.rootfs + "/marker", atomically: false, encoding: .utf8)
        let runc = Runc(scratch)
        let r = runc("run", "--bundle", bundle.path, uniqueID())
        #expect(r.status == 0, "run: \(r.stderr)")
        let want = [
            (try? FileManager.default.destinationOfSymbolicLink(atPath: holder.ns("mnt"))) ?? "?",
            (try? FileManager.default.destinationOfSymbolicLink(atPath: holder.ns("uts"))) ?? "?", "inside", "joined-uts",
        ]
        #expect(r.stdout.split(separator: "\n").map(String.init) == want, "\(r.stdout)")
        #expect(hostNamespace("mnt") != want[0])
        // The holder's namespace got the hostname; ours did not.
        let h = run(["/usr/bin/nsenter", "-t", "\(holder.pid)", "-u", "hostname"])
        #expect(h.stdout == "joined-uts\n", "\(h)")
        #expect(ProcessInfo.processInfo.hostName != "joined-uts")
    }

    @Test("a hostname without a uts namespace of any kind is refused, naming the field",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func hostnameNeedsUTS() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch)
        bundle.spec.linux?.namespaces?.removeAll { $0.type == "uts" }
        bundle.spec.process?.terminal = false
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let r = runc.create(id, bundle: bundle.path)
        #expect(r.status != 0 && r.stderr.contains("hostname: setting a hostname needs a uts namespace"), "\(r)")
        expectGone(id, runc: runc)
    }

    @Test("a seccomp profile that refuses getcwd, without noNewPrivileges: the container starts (the CVE-2024-21626 check runs before the filter) and the program sees getcwd refused",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func cwdCheckBeforeSeccomp() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["/bin/busybox", "pwd", "-P"])
        bundle.spec.process?.noNewPrivileges = false
        bundle.spec.process?.cwd = "/tmp"
        bundle.spec.process?.terminal = false
        bundle.spec.linux?.seccomp = Spec.Seccomp(
            defaultAction: "SCMP_ACT_ALLOW", syscalls: [Spec.Syscall(names: ["getcwd"], action: "SCMP_ACT_ERRNO", errnoRet: 1)])
        try bundle.write()
        let runc = Runc(scratch)
        let r = runc("run", "--bundle", bundle.path, uniqueID())
        // Before the fix create failed: "cwd: /tmp: Operation not permitted".
        #expect(!r.stderr.contains("cwd: /tmp"), "\(r.stderr)")
        #expect(r.status != 0 && r.stdout.isEmpty, "pwd -P should fail inside: \(r)")
        #expect(r.stderr.contains("Operation not permitted") || r.stderr.contains("pwd"), "\(r.stderr)")

        // With getcwd allowed the same container runs in /tmp.
        bundle.spec.linux?.seccomp = nil
        try bundle.write()
        let ok = runc("run", "--bundle", bundle.path, uniqueID())
        #expect(ok.status == 0 && ok.stdout == "/tmp\n", "\(ok)")
    }
}

/// The runtime-spec corners issue 7's audit left open (issue 15 #7): cgroups that existed
/// before the container, the `remount` mount option, and a device path already taken.
@Suite("husk-runc: pre-existing cgroups, remount, existing device paths", .serialized)
struct RuncSpecCornerTests {
    @Test("a cgroup that existed before the container (linux.cgroupsPath outside Husk's subtree) is emptied but kept by a failed create and by delete",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func preexistingCgroupKept() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let mount = Host.cgroup2!
        let path = "/husk-test-pre-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: mount.path + path, withIntermediateDirectories: false)
        defer { rmdir(mount.path + path) }
        var bundle = try TestBundle(in: scratch, args: ["/no/such/program"])
        bundle.spec.linux?.cgroupsPath = path
        bundle.spec.process?.terminal = false
        try bundle.write()
        let runc = Runc(scratch)
        let failed = uniqueID("fail")
        let f = runc.create(failed, bundle: bundle.path)
        #expect(f.status != 0, "\(f)")
        #expect(FileManager.default.fileExists(atPath: mount.path + path), "a failed create removed the cgroup that was there before it")
        expectGone(failed, runc: runc, cgroup: "/husk/runc/\(failed)")

        bundle.spec.process?.args = ["sleep", "600"]
        try bundle.write()
        let id = uniqueID()
        #expect(runc.create(id, bundle: bundle.path).status == 0)
        #expect(runc("start", id).status == 0)
        let pid = Int32(runc.state(id)?["pid"] as? Int ?? 0)
        #expect(readText(mount.path + path + "/cgroup.procs").contains("\(pid)"))
        #expect(runc("delete", "--force", id).status == 0)
        #expect(FileManager.default.fileExists(atPath: mount.path + path), "delete removed the cgroup that was there before the container")
        #expect(readText(mount.path + path + "/cgroup.procs").isEmpty)
        #expect(!processExists(pid))
        #expect(!FileManager.default.fileExists(atPath: runc.root + "/" + id))
    }

    @Test("the remount option remounts what is at the destination (runc: MS_REMOUNT) instead of being ignored",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func remountOption() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "grep -c ' /data ' /proc/self/mountinfo; grep ' /data ' /proc/self/mountinfo | cut -d' ' -f6; touch /data/x || echo refused"])
        bundle.spec.mounts = (bundle.spec.mounts ?? []) + [
            Spec.Mount(destination: "/data", type: "tmpfs", source: "tmpfs", options: ["size=1m"]),
            Spec.Mount(destination: "/data", type: "tmpfs", source: "tmpfs", options: ["remount", "ro", "nosuid"]),
        ]
        bundle.spec.process?.terminal = false
        try bundle.write()
        let r = Runc(scratch)("run", "--bundle", bundle.path, uniqueID())
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        // One tmpfs at /data, read-only and nosuid now.
        #expect(lines.first == "1", "\(r.stdout)")
        #expect(lines.count > 1 && lines[1].hasPrefix("ro,") && lines[1].contains("nosuid"), "\(r.stdout)")
        #expect(lines.last == "refused", "\(r.stdout)")
    }

    @Test("config-linux.md Devices: a file already at a device's path that is not that device is refused; the same node is taken as it is",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func existingDevicePath() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let plain = scratch.path + "/plain"
        try "not a device".write(toFile: plain, atomically: false, encoding: .utf8)
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "ls -l /dev/thing"])
        bundle.spec.process?.terminal = false
        bundle.spec.mounts = (bundle.spec.mounts ?? []) + [Spec.Mount(destination: "/dev/thing", type: "bind", source: plain, options: ["bind"])]
        bundle.spec.linux?.devices = [Spec.Device(type: "c", path: "/dev/thing", major: 1, minor: 3, fileMode: 0o666)]
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let bad = runc("run", "--bundle", bundle.path, id)
        #expect(bad.status != 0 && bad.stderr.contains("/dev/thing: a file that is not this device is already there"), "\(bad)")
        expectGone(id, runc: runc)

        // The host's /dev/null bound there is the node asked for: accepted.
        bundle.spec.mounts = (bundle.spec.mounts ?? []).filter { $0.destination != "/dev/thing" }
            + [Spec.Mount(destination: "/dev/thing", type: "bind", source: "/dev/null", options: ["bind"])]
        try bundle.write()
        let ok = runc("run", "--bundle", bundle.path, uniqueID())
        #expect(ok.status == 0 && ok.stdout.contains("1,   3"), "\(ok)")
    }
}

/// runtime-spec config-linux.md "User namespace mappings" (issue 15 #5): a new user namespace
/// with the spec's maps written by the runtime before the container is set up, root in the
/// container unprivileged on the host, device nodes and /sys that a user namespace cannot make
/// bound from the runtime's, exec into it, and joining one by path.
@Suite("husk-runc: user namespaces", .serialized)
struct RuncUserNamespaceTests {
    static let maps = [Spec.IDMapping(containerID: 0, hostID: 100_000, size: 65_536)]

    static func userBundle(_ scratch: Scratch, args: [String], name: String = "bundle") throws -> TestBundle {
        var bundle = try TestBundle(in: scratch, name: name, args: args)
        bundle.spec.linux?.namespaces?.append(Spec.Namespace(type: "user"))
        bundle.spec.linux?.uidMappings = maps
        bundle.spec.linux?.gidMappings = maps
        bundle.spec.process?.terminal = false
        return bundle
    }

    @Test("the maps are the spec's; root inside is uid 100000 on the host and cannot write a host directory host root owns through a bind; what it creates in a shared directory is owned by 100000; /dev nodes and /sys work",
          .enabled(if: Host.canRunContainers, Host.skipReason), arguments: [true, false])
    func mappedRoot(ownNetwork: Bool) throws {
        let scratch = Scratch("userns" + (ownNetwork ? "net" : "hostnet"))
        defer { scratch.cleanup() }
        // Bind sources are opened by the container's root, host uid 100000: the path must be
        // searchable by it (as with runc).
        chmod(scratch.path, 0o755)
        let owned = scratch.path + "/owned", shared = scratch.path + "/shared"
        try FileManager.default.createDirectory(atPath: owned, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: false)
        chmod(owned, 0o755)
        chmod(shared, 0o1777)
        var bundle = try Self.userBundle(scratch, args: ["sh", "-c", """
            cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g
            touch /owned/x 2>/dev/null && echo wrote-owned || echo refused-owned
            touch /shared/made && echo made
            echo hi > /dev/null && ls -l /dev/null | cut -c1
            ls /sys/kernel >/dev/null && echo sys
            """])
        bundle.spec.mounts = (bundle.spec.mounts ?? []) + [
            Spec.Mount(destination: "/owned", type: "bind", source: owned, options: ["rbind"]),
            Spec.Mount(destination: "/shared", type: "bind", source: shared, options: ["rbind"]),
        ]
        // The rootfs belongs to host root: the mapped root cannot make mount points in it.
        for d in ["owned", "shared"] { try FileManager.default.createDirectory(atPath: bundle.rootfs + "/" + d, withIntermediateDirectories: false) }
        if !ownNetwork { bundle.spec.linux?.namespaces?.removeAll { $0.type == "network" } }
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let r = runc("run", "--bundle", bundle.path, id)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(lines == ["0 100000 65536", "0 100000 65536", "0", "0", "refused-owned", "made", "c", "sys"], "\(r.stdout)")
        var st = stat()
        #expect(stat(shared + "/made", &st) == 0 && st.st_uid == 100_000 && st.st_gid == 100_000, "owner \(st.st_uid):\(st.st_gid)")
        #expect(!FileManager.default.fileExists(atPath: owned + "/x"))
        expectGone(id, runc: runc)
    }

    @Test("exec joins the user namespace too; the host sees the container's init as uid 100000",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func execAndHostView() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let bundle = try Self.userBundle(scratch, args: ["sleep", "600"])
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        #expect(runc.create(id, bundle: bundle.path).status == 0)
        #expect(runc("start", id).status == 0)
        let pid = runc.state(id)?["pid"] as? Int ?? 0
        let status = readText("/proc/\(pid)/status")
        #expect(status.contains("Uid:\t100000\t100000\t100000\t100000"), "\(status)")
        #expect(readText("/proc/\(pid)/uid_map").split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") == "0 100000 65536\n")
        let e = runc("exec", id, "sh", "-c", "id -u; cat /proc/self/uid_map")
        #expect(e.status == 0, "\(e.stderr)")
        #expect(e.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
                == ["0", "0 100000 65536"], "\(e.stdout)")
        #expect(runc("delete", "--force", id).status == 0)
        expectGone(id, runc: runc, pid: Int32(pid))
    }

    @Test("a user namespace joined by path: the container is in it, its other new namespaces owned by it; its new pid namespace too: it is PID 1 there and mounts /proc",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func joinedByPath() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        chmod(scratch.path, 0o755)
        // The namespace to join: another container's.
        let holderBundle = try Self.userBundle(scratch, args: ["sleep", "600"], name: "holder")
        try holderBundle.write()
        let runc = Runc(scratch)
        let holder = uniqueID("holder")
        #expect(runc.create(holder, bundle: holderBundle.path).status == 0)
        defer { runc("delete", "--force", holder) }
        let hpid = runc.state(holder)?["pid"] as? Int ?? 0
        let userns = "/proc/\(hpid)/ns/user"

        // Before, a new pid namespace here was refused (it needs one the joined user namespace
        // owns, which clone3 from the runtime cannot make).
        var bundle = try TestBundle(in: scratch, args: ["sleep", "600"])
        bundle.spec.process?.terminal = false
        bundle.spec.linux?.namespaces?.append(Spec.Namespace(type: "user", path: userns))
        try bundle.write()
        let id = uniqueID()
        let c = runc.create(id, bundle: bundle.path)
        #expect(c.status == 0, "\(c.stderr)")
        let pid = runc.state(id)?["pid"] as? Int ?? 0
        // PID 1 of its own pid namespace, with its /proc mounted (procfs needs a pid namespace
        // the container's user namespace owns).
        #expect(readText("/proc/\(pid)/status").contains("NSpid:\t\(pid)\t1\n"), "\(readText("/proc/\(pid)/status"))")
        #expect(readText("/proc/\(pid)/mountinfo").contains(" / /proc rw,relatime - proc proc rw"), "\(readText("/proc/\(pid)/mountinfo"))")
        func link(_ p: String) -> String { (try? FileManager.default.destinationOfSymbolicLink(atPath: p)) ?? "?" }
        #expect(link("/proc/\(pid)/ns/user") == link(userns))
        #expect(readText("/proc/\(pid)/status").contains("Uid:\t100000\t100000\t100000\t100000"))
        // Its new namespaces are its own, not the holder's nor the host's.
        #expect(link("/proc/\(pid)/ns/mnt") != link("/proc/\(hpid)/ns/mnt"))
        #expect(link("/proc/\(pid)/ns/pid") != link("/proc/\(hpid)/ns/pid") && link("/proc/\(pid)/ns/pid") != link("/proc/self/ns/pid"))
        #expect(runc("delete", "--force", id).status == 0)
        expectGone(id, runc: runc, pid: Int32(pid))
    }

    @Test("a user namespace without maps, or maps without a user namespace, is refused naming the field",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func badMaps() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try Self.userBundle(scratch, args: ["true"])
        bundle.spec.linux?.uidMappings = nil
        try bundle.write()
        let runc = Runc(scratch)
        let a = runc.create(uniqueID("a"), bundle: bundle.path)
        #expect(a.status != 0 && a.stderr.contains("linux.uidMappings: a new user namespace needs uid mappings"), "\(a)")
        bundle.spec.linux?.uidMappings = Self.maps
        bundle.spec.linux?.namespaces?.removeAll { $0.type == "user" }
        try bundle.write()
        let b = runc.create(uniqueID("b"), bundle: bundle.path)
        #expect(b.status != 0 && b.stderr.contains("id mappings need a new user namespace"), "\(b)")
    }
}

/// runtime-spec 1.1 idmapped mounts (mounts[].uidMappings/gidMappings, `idmap`): a bind shown
/// through its maps, so a user-namespaced container's root owns what host root owns there,
/// without a chown (issue 15, "volumes mounted with idmapped mounts").
@Suite("husk-runc: idmapped mounts", .serialized)
struct RuncIdmapTests {
    @Test("a host directory owned by host root, bound with the container's maps: its root sees its own files and writes as host root; without idmap they are nobody's",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func idmappedBind() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        chmod(scratch.path, 0o755)
        let src = scratch.path + "/src"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: false)
        chmod(src, 0o755)
        try "host\n".write(toFile: src + "/f", atomically: false, encoding: .utf8)
        var bundle = try RuncUserNamespaceTests.userBundle(scratch, args: ["sh", "-c", "stat -c %u:%g /src/f /plain/f; echo c > /src/made && echo wrote; echo d > /plain/x 2>/dev/null || echo refused"])
        for d in ["src", "plain"] { try FileManager.default.createDirectory(atPath: bundle.rootfs + "/" + d, withIntermediateDirectories: false) }
        var idmapped = Spec.Mount(destination: "/src", type: "bind", source: src, options: ["bind", "idmap"])
        idmapped.uidMappings = RuncUserNamespaceTests.maps
        idmapped.gidMappings = RuncUserNamespaceTests.maps
        bundle.spec.mounts = (bundle.spec.mounts ?? []) + [idmapped, Spec.Mount(destination: "/plain", type: "bind", source: src, options: ["bind"])]
        try bundle.write()
        let r = Runc(scratch)("run", "--bundle", bundle.path, uniqueID())
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "0:0\n65534:65534\nwrote\nrefused\n", "\(r.stdout)")
        var st = stat()
        #expect(stat(src + "/made", &st) == 0 && st.st_uid == 0 && st.st_gid == 0, "written as \(st.st_uid):\(st.st_gid), not as host root")
        // The source itself was never chowned.
        #expect(stat(src + "/f", &st) == 0 && st.st_uid == 0)
    }

    @Test("idmap on a mount that is not a bind, or without both maps, is refused naming the field",
          .enabled(if: Host.canRunContainers, Host.skipReason))
    func idmapRefused() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["true"])
        bundle.spec.process?.terminal = false
        var m = Spec.Mount(destination: "/t", type: "tmpfs", source: "tmpfs", options: ["idmap"])
        m.uidMappings = RuncUserNamespaceTests.maps
        bundle.spec.mounts = (bundle.spec.mounts ?? []) + [m]
        try bundle.write()
        let r = Runc(scratch).create(uniqueID(), bundle: bundle.path)
        #expect(r.status != 0, "\(r)")
        #expect(r.stderr.contains("id-mapped mounts are supported for bind mounts only"), "\(r.stderr)")
        #expect(r.stderr.contains("gidMappings: an id-mapped mount needs gid mappings"), "\(r.stderr)")
    }
}
