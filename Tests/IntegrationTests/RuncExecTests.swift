import CShim
import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// husk-runc exec, terminals (--console-socket), update and events: the OCI runtime command
/// line beyond create/start/kill/delete (runc's exec.go, update.go, events.go; runtime-spec
/// config.md "Process" terminal/consoleSize).
@Suite("husk-runc: exec, terminals, update, events", .enabled(if: Host.canRunContainers, Host.skipReason))
struct RuncExecTests {
    /// A running container (`sleep 1000`) to exec into; removed by `done()`.
    struct Running {
        let scratch: Scratch
        var bundle: TestBundle
        let runc: Runc
        let id: String
        var pid: Int32 = 0

        init(_ name: String = #function, configure: (inout TestBundle) -> Void = { _ in }) throws {
            scratch = Scratch(name)
            bundle = try TestBundle(in: scratch, args: ["sleep", "1000"])
            bundle.spec.root?.readonly = false
            configure(&bundle)
            try bundle.write()
            runc = Runc(scratch)
            id = uniqueID(name)
            let c = runc.create(id, bundle: bundle.path)
            #expect(c.status == 0, "create: \(c.stderr)")
            #expect(runc("start", id).status == 0)
            pid = Int32(runc.state(id)?["pid"] as? Int ?? 0)
        }

        func done() {
            #expect(runc("delete", "--force", id).status == 0)
            expectGone(id, runc: runc, pid: pid)
            scratch.cleanup()
        }

        func exec(_ args: String...) -> RunResult {
            run([huskRuncPath, "--root", runc.root, "exec"] + args)
        }
    }

    static func link(_ path: String) -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
    }

    @Test("exec passes the exit code through and joins every namespace and the cgroup of the container")
    func execBasics() throws {
        let c = try Running()
        defer { c.done() }
        let r = c.exec(c.id, "sh", "-c", "for n in mnt net pid uts ipc cgroup; do readlink /proc/self/ns/$n; done; grep ^0:: /proc/self/cgroup; hostname; exit 42")
        #expect(r.status == 42, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let expected = ["mnt", "net", "pid", "uts", "ipc", "cgroup"].map { Self.link("/proc/\(c.pid)/ns/\($0)") }
        #expect(Array(lines.prefix(6)) == expected, "\(lines) vs \(expected)")
        #expect(lines.count > 7 && lines[7] == "husk-test", "hostname: \(lines)")
        // Its cgroup namespace is the container's: rooted at the container's group.
        #expect(lines.count > 6 && lines[6] == "0::/", "\(lines)")
        // Same cgroup as the init (as seen from the host).
        let initCgroup = readText("/proc/\(c.pid)/cgroup").split(separator: "\n").first { $0.hasPrefix("0::") }
        #expect(initCgroup == "0::/husk/runc/\(c.id)", "\(String(describing: initCgroup))")
        // A signal death is 128+n.
        #expect(c.exec(c.id, "sh", "-c", "kill -9 $$").status == 137)
        // What is missing in the container is reported as runc does.
        let missing = c.exec(c.id, "nope")
        #expect(missing.status != 0 && missing.stderr.contains("exec: \"nope\": executable file not found in $PATH"), "\(missing)")
    }

    @Test("exec flags: --env, --cwd, --user, --additional-gids, --cap, --no-new-privs; CapInh stays empty (CVE-2022-29162)")
    func execFlags() throws {
        let c = try Running()
        defer { c.done() }
        let r = c.exec("--env", "A=1", "-e", "B=two", "--cwd", "/tmp", "--user", "65534:65534", "-g", "7", "--cap", "CAP_SYS_ADMIN",
                       "--no-new-privs", c.id, "sh", "-c", "echo $A $B; pwd; id -u; id -g; id -G; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status")
        #expect(r.status == 0, "\(r)")
        let out = r.stdout
        #expect(out.hasPrefix("1 two\n/tmp\n65534\n65534\n"), "\(out)")
        #expect(out.contains("65534 7") || out.contains("7 65534"), "groups: \(out)")
        #expect(out.contains("CapInh:\t0000000000000000"), "\(out)")
        #expect(out.contains("CapAmb:\t0000000000000000"), "\(out)")
        #expect(out.contains("NoNewPrivs:\t1"), "\(out)")
        // CAP_SYS_ADMIN (21) joined the bounding set; as uid 65534 the effective set is empty.
        let bnd = out.split(separator: "\n").first { $0.hasPrefix("CapBnd:") }.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) } ?? 0
        #expect(bnd & (1 << 21) != 0, "\(out)")
        // As root the added capability is effective, inheritable still empty.
        let root = c.exec("--cap", "CAP_SYS_ADMIN", c.id, "grep", "-E", "^Cap(Inh|Eff)", "/proc/self/status")
        let eff = root.stdout.split(separator: "\n").first { $0.hasPrefix("CapEff:") }.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) } ?? 0
        #expect(eff & (1 << 21) != 0 && root.stdout.contains("CapInh:\t0000000000000000"), "\(root.stdout)")
    }

    @Test("exec --process FILE, --detach with --pid-file; refused when paused (unless --ignore-paused) or stopped")
    func execProcessFileDetach() throws {
        let c = try Running()
        defer { c.done() }
        // A detached process keeps the streams it was given: it lets go of our pipes at once.
        var process = Spec.Process(args: ["sh", "-c", "exec >/dev/null 2>&1; echo $X > /tmp/out; sleep 1000"], env: ["X=from-file", "PATH=/bin"], cwd: "/")
        process.capabilities = Spec.CapabilitySet(bounding: ["CAP_KILL"], effective: ["CAP_KILL"], permitted: ["CAP_KILL"])
        let file = c.scratch.path + "/process.json"
        try JSONEncoder().encode(process).write(to: URL(fileURLWithPath: file))
        let pidFile = c.scratch.path + "/exec.pid"
        let r = c.exec("--process", file, "--detach", "--pid-file", pidFile, c.id)
        #expect(r.status == 0, "\(r)")
        let pid = Int32(readText(pidFile)) ?? 0
        #expect(pid > 0 && processExists(pid))
        #expect(RuncExecTests.waitFor { readText(c.bundle.rootfs + "/tmp/out") == "from-file\n" })
        #expect(readText("/proc/\(pid)/status").contains("CapEff:\t0000000000000020"), "only CAP_KILL")
        let ps = c.runc("ps", "--format", "json", c.id)
        #expect(ps.stdout.contains("\(pid)"), "\(ps.stdout)")

        #expect(c.runc("pause", c.id).status == 0)
        let paused = c.exec(c.id, "true")
        #expect(paused.status == 1 && paused.stderr.contains("cannot exec in a paused container (use --ignore-paused to override)"), "\(paused)")
        // --ignore-paused: the new process joins the frozen cgroup, so it is set up once the
        // container is resumed.
        let late = Process()
        late.executableURL = URL(fileURLWithPath: huskRuncPath)
        late.arguments = ["--root", c.runc.root, "exec", "--ignore-paused", "--detach", c.id, "true"]
        late.standardError = FileHandle.nullDevice
        try late.run()
        usleep(200_000)
        #expect(late.isRunning, "exec into a frozen cgroup returned before resume")
        #expect(c.runc("resume", c.id).status == 0)
        late.waitUntilExit()
        #expect(late.terminationStatus == 0)
        // A process file that is not a process names the field.
        try #"{"args": "sh", "cwd": "/", "user": {"uid": 0, "gid": 0}}"#.write(toFile: file, atomically: false, encoding: .utf8)
        let bad = c.exec("--process", file, c.id)
        #expect(bad.status == 1 && bad.stderr.contains("args"), "\(bad)")
        #expect(c.exec(c.id).stderr.contains("no command given"))

        #expect(c.runc("kill", c.id, "KILL").status == 0)
        #expect(RuncExecTests.waitFor { c.runc.state(c.id)?["status"] as? String == "stopped" })
        let stopped = c.exec(c.id, "true")
        #expect(stopped.status == 1 && stopped.stderr.contains("cannot exec in a stopped container"), "\(stopped)")
    }

    @Test("CVE-2024-21626 on exec: no runtime fd leaks into the process, and cwd=/proc/self/fd/N cannot leave the rootfs")
    func execFdsAndCwd() throws {
        let c = try Running()
        defer { c.done() }
        let fds = c.exec(c.id, "ls", "-l", "/proc/self/fd")
        let open = fds.stdout.split(separator: "\n").filter { $0.contains(" -> ") }
        // 0, 1, 2, and at most ls's own directory fd.
        #expect(open.count >= 3 && open.count <= 4, "\(fds.stdout)")
        #expect(open.dropFirst(3).allSatisfy { $0.contains("/proc/") }, "\(fds.stdout)")
        #expect(open.allSatisfy { !$0.contains("husk") && !$0.contains("cgroup") }, "\(fds.stdout)")
        for n in 3...10 {
            let r = c.exec("--cwd", "/proc/self/fd/\(n)", c.id, "sh", "-c", "pwd; ls")
            if r.status == 0 {
                #expect(!r.stdout.contains("husk-test") && !r.stdout.contains("(unreachable)"), "fd \(n) escaped: \(r.stdout)")
            } else {
                #expect(r.stderr.contains("cwd"), "fd \(n): \(r.stderr)")
            }
        }
    }

    /// A listening unix socket like go-runc's console socket; `receive()` accepts one
    /// connection and returns the fd sent over it.
    final class ConsoleSocket: @unchecked Sendable {
        let path: String
        let fd: Int32

        init(_ path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { buf in
                for (i, b) in path.utf8.enumerated() where i < buf.count - 1 { buf[i] = b }
            }
            let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            try #require(r == 0 && listen(fd, 1) == 0)
        }

        deinit { close(fd) }

        func receive() -> Int32? {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 10_000) == 1 else { return nil }
            let conn = accept(fd, nil, nil)
            guard conn >= 0 else { return nil }
            defer { close(conn) }
            var buf = [UInt8](repeating: 0, count: 64)
            var fds = [CInt](repeating: -1, count: 4)
            var n: Int32 = 0
            var p2 = pollfd(fd: conn, events: Int16(POLLIN), revents: 0)
            guard poll(&p2, 1, 10_000) == 1 else { return nil }
            let got = buf.withUnsafeMutableBytes { cshim_recv_with_fds(conn, $0.baseAddress!, 64, &fds, &n) }
            return got > 0 && n >= 1 ? fds[0] : nil
        }
    }

    /// Reads a pty master until every holder of the slave is gone (EIO) or 10 s passed.
    static func readAll(_ master: Int32) -> String {
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        let end = Date().addingTimeInterval(10)
        while Date() < end {
            var p = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) >= 0 else { break }
            if p.revents == 0 { continue }
            let n = buf.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test("create --console-socket: the pty master comes over the socket, the slave is stdio and /dev/console, consoleSize applies")
    func consoleSocketCreate() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "tty; stat -c '%t:%T' /dev/console $(tty); stty size; exit 3"])
        bundle.spec.process?.terminal = true
        bundle.spec.process?.consoleSize = Spec.ConsoleSize(height: 31, width: 101)
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        // Without a socket, a detached terminal is refused before anything starts.
        let refused = runc.create(id, bundle: bundle.path)
        #expect(refused.status == 1 && refused.stderr.contains("no --console-socket was given"), "\(refused.stderr)")
        expectGone(id, runc: runc)

        let sock = try ConsoleSocket(scratch.path + "/console.sock")
        nonisolated(unsafe) var master: Int32? = nil
        let got = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            master = sock.receive()
            got.signal()
        }
        let c = runc.create(id, bundle: bundle.path, extra: ["--console-socket", sock.path])
        #expect(c.status == 0, "\(c.stderr)")
        got.wait()
        let m = try #require(master, "no pty master came over the socket")
        defer { close(m) }
        #expect(runc("start", id).status == 0)
        let out = RuncExecTests.readAll(m).replacingOccurrences(of: "\r", with: "")
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.first == "/dev/pts/0", "\(out)")
        // /dev/console and the tty are the same device (major 136 = 0x88).
        #expect(lines.count >= 3 && lines[1] == lines[2] && lines[1].hasPrefix("88:"), "\(out)")
        #expect(lines.contains("31 101"), "consoleSize: \(out)")
        #expect(RuncExecTests.waitFor { runc.state(id)?["status"] as? String == "stopped" })
        #expect(runc("delete", id).status == 0)
        expectGone(id, runc: runc)
    }

    @Test("exec --tty --console-socket gives the process a pty of the container's own /dev/pts; a socket without a tty is refused")
    func consoleSocketExec() throws {
        let c = try Running()
        defer { c.done() }
        let sock = try ConsoleSocket(c.scratch.path + "/exec.sock")
        nonisolated(unsafe) var master: Int32? = nil
        let got = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            master = sock.receive()
            got.signal()
        }
        let r = c.exec("--tty", "--detach", "--console-socket", sock.path, c.id, "sh", "-c", "tty; readlink /proc/self/ns/mnt")
        #expect(r.status == 0, "\(r)")
        got.wait()
        let m = try #require(master)
        defer { close(m) }
        let out = RuncExecTests.readAll(m).replacingOccurrences(of: "\r", with: "")
        #expect(out.hasPrefix("/dev/pts/"), "\(out)")
        #expect(out.contains(Self.link("/proc/\(c.pid)/ns/mnt")), "\(out)")
        let noTTY = c.exec("--detach", "--console-socket", sock.path, c.id, "true")
        #expect(noTTY.status == 1 && noTTY.stderr.contains("process.terminal is false"), "\(noTTY)")
        let noSocket = c.exec("--tty", "--detach", c.id, "true")
        #expect(noSocket.status == 1 && noSocket.stderr.contains("no --console-socket"), "\(noSocket)")
    }

    @Test("run and exec with a terminal in the foreground relay the pty (under script(1))")
    func foregroundTerminal() throws {
        guard let script = ["/usr/bin/script", "/bin/script"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("skipped: needs script(1) from bsdutils")
            return
        }
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "tty; exit 4"])
        bundle.spec.process?.terminal = true
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let r = run([script, "-qec", "\(huskRuncPath) --root \(runc.root) run --bundle \(bundle.path) \(id)", "/dev/null"])
        #expect(r.status == 4, "\(r)")
        #expect(r.stdout.contains("/dev/pts/0"), "\(r.stdout)")
        expectGone(id, runc: runc)
    }

    @Test("update: limits need their controllers (clear refusal here, or skipped with a warning on request); bad values name the flag")
    func updateOnThisHost() throws {
        let c = try Running()
        defer { c.done() }
        let controllers = Cgroup2Mount.discover2()?.group("/husk/runc/\(c.id)").controllers() ?? []
        let bad = c.runc("update", "--memory", "lots", c.id)
        #expect(bad.status == 1 && bad.stderr.contains("--memory: \"lots\" is not a size"), "\(bad)")
        let swap = c.runc("update", "--memory", "64m", "--memory-swap", "32m", c.id)
        #expect(swap.status == 1 && swap.stderr.contains("swap is memory+swap and must be >= the memory limit"), "\(swap)")
        let rt = c.runc("update", "--cpu-rt-runtime", "100", c.id)
        #expect(rt.status == 1 && rt.stderr.contains("real-time"), "\(rt)")
        if controllers.contains("memory") && controllers.contains("pids") {
            #expect(c.runc("update", "--memory", "64m", "--pids-limit", "50", c.id).status == 0)
            #expect(readText(Host.cgroup2!.path + "/husk/runc/\(c.id)/memory.max") == "67108864\n")
            #expect(readText(Host.cgroup2!.path + "/husk/runc/\(c.id)/pids.max") == "50\n")
            // Only what is given changes.
            #expect(c.runc("update", "--pids-limit", "60", c.id).status == 0)
            #expect(readText(Host.cgroup2!.path + "/husk/runc/\(c.id)/memory.max") == "67108864\n")
        } else {
            let r = c.runc("update", "--memory", "64m", c.id)
            #expect(r.status == 1 && r.stderr.contains("linux.resources.memory.limit: needs the memory controller (memory.max)")
                        && r.stderr.contains("--ignore-missing-controllers"), "\(r)")
            let ok = c.runc("--ignore-missing-controllers", "update", "--memory", "64m", c.id)
            #expect(ok.status == 0 && ok.stderr.contains("not applied"), "\(ok)")
        }
        let stats = c.runc("events", "--stats", c.id)
        #expect(stats.status == 0, "\(stats)")
        let event = (try? JSONSerialization.jsonObject(with: Data(stats.stdout.utf8))) as? [String: Any]
        #expect(event?["type"] as? String == "stats" && event?["id"] as? String == c.id, "\(stats.stdout)")
        let cpu = ((event?["data"] as? [String: Any])?["cpu"] as? [String: Any])?["usage"] as? [String: Any]
        #expect(cpu?["total"] is NSNumber, "cpu usage from cpu.stat: \(stats.stdout)")
        // events without --stats streams until the container stops.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: huskRuncPath)
        p.arguments = ["--root", c.runc.root, "events", "--interval", "100ms", c.id]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        usleep(350_000)
        #expect(c.runc("kill", c.id, "KILL").status == 0)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let events = String(decoding: data, as: UTF8.self).split(separator: "\n")
        #expect(events.count >= 2 && events.allSatisfy { $0.hasPrefix("{") && $0.contains("\"type\":\"stats\"") }, "\(events)")
        let stopped = c.runc("update", "--pids-limit", "5", c.id)
        #expect(stopped.status == 1 && stopped.stderr.contains("is not running"), "\(stopped)")
    }

    static func waitFor(_ timeout: TimeInterval = 10, _ cond: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if cond() { return true }
            usleep(10_000)
        }
        return cond()
    }
}

extension Cgroup2Mount {
    static func discover2() -> Cgroup2Mount? { (try? discover()) ?? nil }
}
