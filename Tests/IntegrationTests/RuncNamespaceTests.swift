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
