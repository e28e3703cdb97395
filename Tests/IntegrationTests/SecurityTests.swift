import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// Runtime CVEs from ../shared/spec/security.md that the foundation already covers.
@Suite("Runtime security", .enabled(if: Host.canRunContainers, Host.skipReason))
struct SecurityTests {
    @Test("CVE-2019-5736: /proc/1/exe of a created container is unreachable from inside")
    func createdInitIsNotReachable() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let victim = try TestBundle(in: scratch, name: "victim", args: ["true"])
        try victim.write()
        let runc = Runc(scratch)
        let vid = uniqueID("victim")
        #expect(runc.create(vid, bundle: victim.path).status == 0)
        defer { runc("delete", "--force", vid) }
        let vpid = try #require(runc.state(vid)?["pid"] as? Int)
        let hostExe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(vpid)/exe")
        #expect(hostExe.hasSuffix("husk-runc"), "the created init is not a husk-runc copy: \(hostExe)")
        let before = try Data(contentsOf: URL(fileURLWithPath: hostExe))

        // An attacker in the same pid namespace (root, default capabilities).
        var attacker = try TestBundle(in: scratch, name: "attacker", args: ["sh", "-c", """
            echo "comm=$(cat /proc/1/comm)"
            if readlink /proc/1/exe >/dev/null 2>&1; then echo link=resolved; else echo link=denied; fi
            if (echo x >> /proc/1/exe) 2>/dev/null; then echo write=ok; else echo write=denied; fi
            if ls /proc/1/root/ >/dev/null 2>&1; then echo root=listed; else echo root=denied; fi
            """])
        let namespaces = attacker.spec.linux?.namespaces?.map {
            $0.type == "pid" ? Spec.Namespace(type: "pid", path: "/proc/\(vpid)/ns/pid") : $0
        }
        attacker.spec.linux?.namespaces = namespaces
        try attacker.write()
        let r = runc("run", "--bundle", attacker.path, uniqueID("attacker"))
        #expect(r.status == 0, "attacker failed: \(r.stderr)")
        #expect(r.stdout.contains("comm=husk-runc"), "not looking at the created init: \(r.stdout)")
        #expect(r.stdout.contains("link=denied"), "\(r.stdout)")
        #expect(r.stdout.contains("write=denied"), "\(r.stdout)")
        #expect(r.stdout.contains("root=denied"), "\(r.stdout)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: hostExe)) == before)
    }

    @Test("only fds 0, 1 and 2 are open at exec")
    func noFdLeak() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let bundle = try TestBundle(in: scratch, args: ["ls", "-l", "/proc/self/fd/"])
        try bundle.write()
        let r = Runc(scratch)("run", "--bundle", bundle.path, uniqueID())
        #expect(r.status == 0, "\(r.stderr)")
        let fds = r.stdout.split(separator: "\n").filter { $0.contains("->") }
        #expect(fds.count >= 3, "fds: \(fds)")
        // ls may still hold the directory it lists; anything else is a leak.
        let others = fds.filter { line in !["0 ->", "1 ->", "2 ->"].contains { line.contains(" \($0)") } }
        #expect(others.allSatisfy { $0.contains("/proc/1/fd") }, "leaked: \(others)")
    }

    @Test("CVE-2024-21626: cwd=/proc/self/fd/N never lands outside the rootfs")
    func cwdThroughProcFd() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "pwd; ls"])
        let runc = Runc(scratch)
        for n in 3...12 {
            bundle.spec.process?.cwd = "/proc/self/fd/\(n)"
            try bundle.write()
            let r = runc("run", "--bundle", bundle.path, uniqueID("cwd\(n)"))
            if r.status == 0 {
                #expect(!r.stdout.contains("husk-test"), "cwd fd \(n) escaped: \(r.stdout)")
                #expect(!r.stdout.contains("(unreachable)"), "cwd fd \(n) escaped: \(r.stdout)")
            } else {
                #expect(r.stderr.contains("cwd"), "fd \(n): \(r.stderr)")
            }
        }
    }

    @Test("CVE-2023-27561: a rootfs whose /proc or /sys is a symlink is refused")
    func symlinkedProc() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let runc = Runc(scratch)
        for dir in ["proc", "sys"] {
            let bundle = try TestBundle(in: scratch, name: "b-\(dir)")
            try bundle.write()
            try FileManager.default.removeItem(atPath: bundle.rootfs + "/" + dir)
            try FileManager.default.createDirectory(atPath: bundle.rootfs + "/bad-\(dir)", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: bundle.rootfs + "/" + dir, withDestinationPath: "/bad-\(dir)")
            let id = uniqueID(dir)
            let r = runc("run", "--bundle", bundle.path, id)
            #expect(r.status == 1)
            #expect(r.stderr.contains("mount: /\(dir): must be mounted on an ordinary directory, not a symlink"), "\(r.stderr)")
            expectGone(id, runc: runc)
        }
    }

    @Test("CVE-2025-31133: masked paths stay masked when the image's /dev/null is a symlink")
    func devNullSymlink() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "cat /proc/keys | wc -c; echo 1 > /proc/sysrq-trigger; echo w=$?"])
        // /dev comes from the image (no tmpfs), and its null points at a procfs file.
        bundle.spec.mounts?.removeAll { $0.destination.hasPrefix("/dev") }
        try bundle.write()
        try FileManager.default.createSymbolicLink(atPath: bundle.rootfs + "/dev/null", withDestinationPath: "/proc/sysrq-trigger")
        let r = Runc(scratch)("run", "--bundle", bundle.path, uniqueID())
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("0\n"), "/proc/keys is readable: \(r.stdout)")
        #expect(r.stdout.contains("w=1"), "sysrq-trigger was writable: \(r.stdout)")
    }

    @Test("config.md: a capability the runtime does not hold is a warning and not raised (not a capset failure)")
    func ungrantableCapability() throws {
        guard let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("skipped: needs setpriv(1) from util-linux")
            return
        }
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["grep", "^CapBnd", "/proc/self/status"])
        for set in [\Spec.CapabilitySet.bounding, \.effective, \.permitted] {
            bundle.spec.process?.capabilities?[keyPath: set]?.append("CAP_SYS_MODULE")
        }
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        // husk-runc without CAP_SYS_MODULE (dropped from its bounding set, so root's exec does
        // not permit it either).
        let r = run([setpriv, "--bounding-set", "-sys_module", huskRuncPath, "--root", runc.root, "run", "--bundle", bundle.path, id])
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.contains("process.capabilities.bounding: CAP_SYS_MODULE cannot be granted"), "\(r.stderr)")
        let bnd = UInt64(r.stdout.split(separator: "\t").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "", radix: 16) ?? 1 << 16
        #expect(bnd & (1 << 16) == 0, "CAP_SYS_MODULE raised: \(r.stdout)")
        expectGone(id, runc: runc)
    }
}
