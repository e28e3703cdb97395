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
