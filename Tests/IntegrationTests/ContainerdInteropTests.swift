import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// containerd (Debian's package) driving husk-runc through its own runc shim
/// (containerd-shim-runc-v2 with `ctr run --runc-binary`): the OCI command line as a real
/// orchestrator uses it — create with --console-socket and --pid-file, start, state, kill,
/// exec --process --detach, ps --format json, pause, resume, delete.
@Suite("husk-runc under containerd", .serialized,
       .enabled(if: Host.canTestImages && Host.containerdForRunc != nil, "needs containerd, ctr, umoci and skopeo (Scripts/install-deps.sh installs them)"))
struct ContainerdInteropTests {
    final class Containerd {
        let dir: String
        let ns = "husk-ctr-\(getpid())"
        let process = Process()
        let image = "docker.io/library/busybox:husk"

        init(_ scratch: Scratch) throws {
            dir = scratch.path + "/ctd"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try """
                version = 2
                root = "\(dir)/root"
                state = "\(dir)/state"
                disabled_plugins = ["io.containerd.grpc.v1.cri"]
                [grpc]
                  address = "\(dir)/c.sock"
                """.write(toFile: dir + "/config.toml", atomically: true, encoding: .utf8)
            process.executableURL = URL(fileURLWithPath: Host.containerdForRunc!)
            process.arguments = ["--config", dir + "/config.toml"]
            // ctr run asks for cpu.shares 1024. Where the host's cgroup2 gives no cpu controller
            // (this hybrid machine), husk-runc is told to skip it with a warning; on a pure v2
            // host it is written.
            var env = ProcessInfo.processInfo.environment
            if !Host.rootSubtreeControllers.contains("cpu") { env["HUSK_RUNC_IGNORE_MISSING_CONTROLLERS"] = "1" }
            process.environment = env
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            for _ in 0..<200 where !FileManager.default.fileExists(atPath: dir + "/c.sock") { usleep(50_000) }
            // busybox as an OCI layout (umoci), then a docker archive (skopeo), imported.
            let layout = scratch.path + "/layout"
            let work = scratch.path + "/umoci"
            let r1 = run(["/bin/sh", "-ec", "umoci init --layout \(layout) && umoci new --image \(layout):base && umoci unpack --image \(layout):base \(work) >/dev/null"])
            try #require(r1.status == 0, "\(r1.stderr)")
            try FileManager.default.removeItem(atPath: work + "/rootfs")
            try TestBundle.makeBusyboxRootfs(work + "/rootfs")
            let r2 = run(["/bin/sh", "-ec", """
                umoci repack --image \(layout):base \(work)
                umoci config --image \(layout):base --config.cmd /bin/sh --config.env PATH=/bin --tag husk
                skopeo copy --quiet oci:\(layout):husk docker-archive:\(scratch.path)/bb.tar:\(image)
                """])
            try #require(r2.status == 0, "\(r2.stderr)")
            let imp = ctr("images", "import", scratch.path + "/bb.tar")
            try #require(imp.status == 0, "\(imp)")
        }

        @discardableResult
        func ctr(_ args: String..., timeout: TimeInterval = 60) -> RunResult {
            ctrArgs(args, timeout: timeout)
        }

        func ctrArgs(_ args: [String], timeout: TimeInterval = 60) -> RunResult {
            run(["/usr/bin/ctr", "-a", dir + "/c.sock", "-n", ns] + args, timeout: timeout)
        }

        var ctrPrefix: String { "/usr/bin/ctr -a \(dir)/c.sock -n \(ns)" }

        /// Where containerd's runc shim keeps husk-runc's state (runc's --root).
        var runtimeRoot: String { "/run/containerd/runc/\(ns)" }

        func taskStatus(_ id: String) -> String? {
            ctr("task", "ls").stdout.split(separator: "\n").first { $0.hasPrefix(id + " ") }?.split(separator: " ").last.map(String.init)
        }

        func stop() {
            for id in ctr("task", "ls", "-q").stdout.split(separator: "\n") {
                ctr("task", "kill", "-s", "SIGKILL", String(id))
                usleep(200_000)
                ctr("task", "delete", String(id))
            }
            for id in ctr("containers", "ls", "-q").stdout.split(separator: "\n") { ctr("containers", "rm", String(id)) }
            process.terminate()
            process.waitUntilExit()
            _ = run(["/bin/sh", "-c", "umount -R \(dir)/state 2>/dev/null; umount -R \(dir)/root 2>/dev/null; true"])
            try? FileManager.default.removeItem(atPath: runtimeRoot)
            if let m = Host.cgroup2 { rmdir(m.path + "/" + ns) }
        }
    }

    @Test("ctr run --rm, run -d, task exec/ps/pause/resume/kill/delete and run -t, with husk-runc as the runtime binary")
    func lifecycle() throws {
        let scratch = Scratch()
        let ctd = try Containerd(scratch)
        defer {
            ctd.stop()
            scratch.cleanup()
        }
        let runtime = ["--runc-binary", huskRuncPath]

        // run --rm: the container's output and exit code come back; nothing is left.
        let once = ctd.ctrArgs(["run", "--rm"] + runtime + [ctd.image, "once", "sh", "-c", "echo hi; cat /proc/self/cgroup | grep ^0::; exit 3"])
        #expect(once.status == 3, "\(once)")
        #expect(once.stdout.contains("hi\n"), "\(once.stdout)")
        #expect(!FileManager.default.fileExists(atPath: ctd.runtimeRoot + "/once"))

        // run -d, then the task verbs.
        let d = ctd.ctrArgs(["run", "-d"] + runtime + [ctd.image, "svc", "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"])
        #expect(d.status == 0, "\(d)")
        let st = run([huskRuncPath, "--root", ctd.runtimeRoot, "state", "svc"])
        let state = (try? JSONSerialization.jsonObject(with: Data(st.stdout.utf8))) as? [String: Any]
        #expect(state?["status"] as? String == "running", "husk-runc state: \(st)")
        let pid = state?["pid"] as? Int ?? 0
        #expect(ctd.taskStatus("svc") == "RUNNING")

        let exec = ctd.ctr("task", "exec", "--exec-id", "e1", "svc", "sh", "-c", "echo from-exec; exit 5")
        #expect(exec.status == 5 && exec.stdout.contains("from-exec"), "\(exec)")

        let ps = ctd.ctr("task", "ps", "svc")
        #expect(ps.status == 0 && ps.stdout.split(separator: "\n").contains { $0.hasPrefix("\(pid) ") }, "\(ps)")

        #expect(ctd.ctr("task", "pause", "svc").status == 0)
        #expect(ctd.taskStatus("svc") == "PAUSED")
        #expect(ctd.ctr("task", "resume", "svc").status == 0)
        #expect(ctd.taskStatus("svc") == "RUNNING")

        #expect(ctd.ctr("task", "kill", "svc").status == 0)
        var stopped = false
        for _ in 0..<100 where !stopped {
            stopped = ctd.taskStatus("svc") == "STOPPED"
            if !stopped { usleep(50_000) }
        }
        #expect(stopped)
        let del = ctd.ctr("task", "delete", "svc")
        #expect(del.status == 0 && del.stderr.contains("exit code 7"), "\(del)")
        #expect(ctd.ctr("containers", "rm", "svc").status == 0)
        #expect(!processExists(Int32(pid)))
        #expect(!FileManager.default.fileExists(atPath: ctd.runtimeRoot + "/svc"))

        // run -t: a terminal over containerd's console socket (ctr needs one itself: script).
        if let script = ["/usr/bin/script", "/bin/script"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
            let t = run([script, "-qec", "\(ctd.ctrPrefix) run --rm -t --runc-binary \(huskRuncPath) \(ctd.image) tty sh -c 'tty; exit 4'", "/dev/null"])
            #expect(t.status == 4, "\(t)")
            #expect(t.stdout.contains("/dev/pts/0"), "\(t.stdout)")
        } else {
            print("ctr run -t skipped: needs script(1) from bsdutils")
        }
        if let m = Host.cgroup2 {
            #expect(!FileManager.default.fileExists(atPath: m.path + "/\(ctd.ns)/once") && !FileManager.default.fileExists(atPath: m.path + "/\(ctd.ns)/svc"))
        }
    }
}

extension Host {
    static let containerdForRunc: String? = ["/usr/bin/containerd"].first { FileManager.default.isExecutableFile(atPath: $0) && FileManager.default.isExecutableFile(atPath: "/usr/bin/ctr") }
    /// What the root of the cgroup2 hierarchy hands down (cgroup.subtree_control).
    static var rootSubtreeControllers: Set<String> {
        guard let m = cgroup2 else { return [] }
        return Set(readText(m.path + "/cgroup.subtree_control").split(whereSeparator: \.isWhitespace).map(String.init))
    }
}
