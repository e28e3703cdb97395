import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// husk-runc hooks (runtime-spec config.md "POSIX-platform Hooks", runtime.md "Lifecycle"
/// steps 3-12): when and where each kind runs, the state it reads on stdin, timeouts, and
/// what a failure does.
@Suite("husk-runc: hooks", .enabled(if: Host.canRunContainers, Host.skipReason))
struct RuncHookTests {
    /// A hook that appends "KIND MNTNS STATE" to OUT, then fails (exit 3) when KIND starts
    /// with "fail", or sleeps when it starts with "sleep".
    static let script = """
        #!/bin/sh
        kind=$1; out=$2
        state=$(cat)
        echo "$kind $(readlink /proc/self/ns/mnt) $state" >> "$out"
        case "$kind" in fail*) exit 3;; sleep*) sleep 30;; slow*) sleep 1.5;; esac
        exit 0
        """

    struct Setup {
        let scratch: Scratch
        var bundle: TestBundle
        let runc: Runc
        let hook: String
        let log: String

        init(_ name: String = #function) throws {
            scratch = Scratch(name)
            bundle = try TestBundle(in: scratch, args: ["sleep", "1000"])
            bundle.spec.root?.readonly = false
            runc = Runc(scratch)
            hook = scratch.path + "/hook.sh"
            log = scratch.path + "/hooks.log"
            try Self.write(RuncHookTests.script, to: hook)
            // startContainer runs after pivot_root: its path resolves in the container.
            try Self.write(RuncHookTests.script, to: bundle.rootfs + "/hook.sh")
        }

        static func write(_ text: String, to path: String) throws {
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            chmod(path, 0o755)
        }

        func h(_ kind: String, timeout: Int? = nil) -> Spec.Hook {
            Spec.Hook(path: hook, args: ["hook.sh", kind, log], env: ["PATH=/usr/bin:/bin"], timeout: timeout)
        }

        /// Lines of the log: (kind, mount namespace, state JSON).
        func lines() -> [(kind: String, mnt: String, state: [String: Any])] {
            readText(log).split(separator: "\n").map { line in
                let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
                let state = parts.count > 2 ? (try? JSONSerialization.jsonObject(with: Data(parts[2].utf8))) as? [String: Any] : nil
                return (parts.first ?? "", parts.count > 1 ? parts[1] : "", state ?? [:])
            }
        }
    }

    @Test("all six kinds run at their moment, in their namespace, with the state on stdin (runtime.md Lifecycle)")
    func order() throws {
        var s = try Setup()
        defer { s.scratch.cleanup() }
        var hooks = Spec.Hooks()
        hooks.prestart = [s.h("prestart")]
        hooks.createRuntime = [s.h("createRuntime"), s.h("createRuntime2")]
        hooks.createContainer = [s.h("createContainer")]
        hooks.startContainer = [Spec.Hook(path: "/hook.sh", args: ["hook.sh", "startContainer", "/start.log"], timeout: 5)]
        hooks.poststart = [s.h("poststart")]
        hooks.poststop = [s.h("poststop")]
        s.bundle.spec.hooks = hooks
        try s.bundle.write()
        let id = uniqueID()
        let c = s.runc.create(id, bundle: s.bundle.path)
        #expect(c.status == 0, "create: \(c.stderr)")
        let pid = (s.runc.state(id)?["pid"] as? Int) ?? -1
        #expect(s.lines().map(\.kind) == ["prestart", "createRuntime", "createRuntime2", "createContainer"], "after create: \(readText(s.log))")
        let host = hostNamespace("mnt")
        let container = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")) ?? "?"
        for l in s.lines() {
            // runtime-tools hooks_stdin and crun: the create step's hooks see `created`.
            #expect(l.state["status"] as? String == "created", "\(l.kind): \(l.state)")
            #expect(l.state["pid"] as? Int == pid && l.state["id"] as? String == id && l.state["bundle"] as? String == s.bundle.path)
            // The runtime's hooks run in the runtime's namespace, createContainer in the container's.
            #expect(l.mnt == (l.kind == "createContainer" ? container : host), "\(l.kind) ran in \(l.mnt)")
        }
        #expect(container != host)
        #expect(!FileManager.default.fileExists(atPath: s.bundle.rootfs + "/start.log"), "startContainer ran before start")

        #expect(s.runc("start", id).status == 0)
        // poststart ran before start returned; startContainer ran inside the container's root.
        #expect(s.lines().last?.kind == "poststart")
        #expect(s.lines().last?.state["status"] as? String == "running")
        let start = readText(s.bundle.rootfs + "/start.log")
        #expect(start.hasPrefix("startContainer \(container) "), "startContainer: \(start)")
        #expect(start.contains("\"status\":\"created\"") && start.contains("\"pid\":\(pid)"))

        #expect(s.runc("delete", "--force", id).status == 0)
        let last = s.lines().last
        #expect(last?.kind == "poststop" && last?.state["status"] as? String == "stopped" && last?.mnt == host)
        #expect(s.lines().count == 6)
        expectGone(id, runc: s.runc, pid: Int32(pid))
    }

    @Test("a failing createRuntime hook fails create, skips the later hooks, runs poststop and leaves nothing")
    func createRuntimeFails() throws {
        var s = try Setup()
        defer { s.scratch.cleanup() }
        var hooks = Spec.Hooks()
        hooks.createRuntime = [s.h("failRuntime")]
        hooks.createContainer = [s.h("createContainer")]
        hooks.poststop = [s.h("poststop")]
        s.bundle.spec.hooks = hooks
        try s.bundle.write()
        let id = uniqueID()
        let c = s.runc.create(id, bundle: s.bundle.path)
        #expect(c.status == 1)
        #expect(c.stderr.contains("createRuntime hook 0 (\(s.hook)): exited with status 3"), "\(c.stderr)")
        #expect(s.lines().map(\.kind) == ["failRuntime", "poststop"])
        let pid = s.lines().first?.state["pid"] as? Int ?? 0
        expectGone(id, runc: s.runc, pid: Int32(pid))
    }

    @Test("a failing createContainer hook fails create the same way")
    func createContainerFails() throws {
        var s = try Setup()
        defer { s.scratch.cleanup() }
        var hooks = Spec.Hooks()
        hooks.createContainer = [s.h("failContainer"), s.h("never")]
        hooks.poststop = [s.h("poststop")]
        s.bundle.spec.hooks = hooks
        try s.bundle.write()
        let id = uniqueID()
        let c = s.runc.create(id, bundle: s.bundle.path)
        #expect(c.status == 1 && c.stderr.contains("createContainer hook 0 (\(s.hook)): exited with status 3"), "\(c.stderr)")
        #expect(s.lines().map(\.kind) == ["failContainer", "poststop"])
        expectGone(id, runc: s.runc)
    }

    @Test("a hook past its timeout is killed and fails create")
    func timeout() throws {
        var s = try Setup()
        defer { s.scratch.cleanup() }
        var hooks = Spec.Hooks()
        hooks.prestart = [s.h("sleepy", timeout: 1)]
        s.bundle.spec.hooks = hooks
        try s.bundle.write()
        let id = uniqueID()
        let t0 = Date()
        let c = s.runc.create(id, bundle: s.bundle.path)
        let took = Date().timeIntervalSince(t0)
        #expect(c.status == 1 && c.stderr.contains("prestart hook 0 (\(s.hook)): timed out after 1 s"), "\(c.stderr)")
        #expect(took < 10, "took \(took) s")
        expectGone(id, runc: s.runc)
    }

    @Test("runtime.md State: while create runs (here: a slow createRuntime hook) the container is creating; kill and delete refuse it")
    func creatingState() throws {
        var s = try Setup()
        defer { s.scratch.cleanup() }
        var hooks = Spec.Hooks()
        hooks.createRuntime = [s.h("slow")]
        s.bundle.spec.hooks = hooks
        try s.bundle.write()
        let id = uniqueID()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "exec \"$0\" --root \"$1\" create --bundle \"$2\" \"$3\" >/dev/null 2>&1", huskRuncPath, s.runc.root, s.bundle.path, id]
        try p.run()
        var seen = false
        for _ in 0..<100 where !seen {
            seen = s.runc.state(id)?["status"] as? String == "creating"
            if !seen { usleep(10_000) }
        }
        #expect(seen, "state never said creating")
        #expect(s.runc.state(id)?["pid"] as? Int == 0)
        let k = s.runc("kill", id, "KILL")
        #expect(k.status == 1 && k.stderr.contains("still being created"), "\(k)")
        let d = s.runc("delete", id)
        #expect(d.status == 1 && d.stderr.contains("not stopped: creating"), "\(d)")
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(s.runc.state(id)?["status"] as? String == "created")
        #expect(s.runc("delete", id).status == 0)
        expectGone(id, runc: s.runc)
    }

    @Test("failing poststart and poststop hooks only warn; the rest of them run")
    func postHooksWarn() throws {
        var s = try Setup()
        defer { s.scratch.cleanup() }
        var hooks = Spec.Hooks()
        hooks.poststart = [s.h("failStart"), s.h("poststart")]
        hooks.poststop = [s.h("failStop"), s.h("poststop")]
        s.bundle.spec.hooks = hooks
        try s.bundle.write()
        let id = uniqueID()
        #expect(s.runc.create(id, bundle: s.bundle.path).status == 0)
        let start = s.runc("start", id)
        #expect(start.status == 0 && start.stderr.contains("warning") && start.stderr.contains("poststart hook 0"), "\(start)")
        #expect(s.runc.state(id)?["status"] as? String == "running")
        let del = s.runc("delete", "--force", id)
        #expect(del.status == 0 && del.stderr.contains("poststop hook 0 (\(s.hook)): exited with status 3"), "\(del)")
        #expect(s.lines().map(\.kind) == ["failStart", "poststart", "failStop", "poststop"])
        expectGone(id, runc: s.runc)
    }

    @Test("a failing startContainer hook stops the container before its program runs")
    func startContainerFails() throws {
        var s = try Setup()
        defer { s.scratch.cleanup() }
        var hooks = Spec.Hooks()
        hooks.startContainer = [Spec.Hook(path: "/hook.sh", args: ["hook.sh", "failStart", "/start.log"])]
        s.bundle.spec.hooks = hooks
        s.bundle.spec.process?.args = ["sh", "-c", "echo ran > /ran"]
        try s.bundle.write()
        let id = uniqueID()
        let r = s.runc("run", "--bundle", s.bundle.path, id)
        #expect(r.status != 0 && r.stderr.contains("startContainer hook 0 (/hook.sh): exited with status 3"), "\(r)")
        #expect(readText(s.bundle.rootfs + "/start.log").hasPrefix("failStart "))
        #expect(!FileManager.default.fileExists(atPath: s.bundle.rootfs + "/ran"), "the program ran")
        expectGone(id, runc: s.runc)
        // create, then start from another process (containerd's way): start reports it.
        let id2 = uniqueID("startFails2")
        #expect(s.runc.create(id2, bundle: s.bundle.path).status == 0)
        let st = s.runc("start", id2)
        #expect(st.status == 1 && st.stderr.contains("stopped during start before its program ran"), "\(st)")
        #expect(s.runc.state(id2)?["status"] as? String == "stopped")
        #expect(!FileManager.default.fileExists(atPath: s.bundle.rootfs + "/ran"), "the program ran")
        #expect(s.runc("delete", id2).status == 0)
        expectGone(id2, runc: s.runc)
    }

    @Test("hooks with a relative path or a zero timeout are refused before anything starts")
    func invalid() throws {
        var s = try Setup()
        defer { s.scratch.cleanup() }
        var hooks = Spec.Hooks()
        hooks.prestart = [Spec.Hook(path: "hook.sh")]
        hooks.poststop = [Spec.Hook(path: "/bin/true", timeout: 0)]
        s.bundle.spec.hooks = hooks
        try s.bundle.write()
        let id = uniqueID()
        let c = s.runc.create(id, bundle: s.bundle.path)
        #expect(c.status == 1 && c.stderr.contains("hooks.prestart[0].path: \"hook.sh\" must be an absolute path")
                    && c.stderr.contains("hooks.poststop[0].timeout: 0 must be greater than zero"), "\(c.stderr)")
        expectGone(id, runc: s.runc)
    }
}
