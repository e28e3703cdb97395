import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// The OCI lifecycle through husk-runc (issue 2: create / start / state / kill / delete).
@Suite("Container lifecycle", .enabled(if: Host.canRunContainers, Host.skipReason))
struct LifecycleTests {
    static func comm(_ pid: Int32) -> String {
        ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func waitFor(_ timeout: TimeInterval = 10, _ cond: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if cond() { return true }
            usleep(10_000)
        }
        return cond()
    }

    @Test("create stops at the gate, start runs the program, delete leaves nothing")
    func createStartDelete() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let bundle = try TestBundle(in: scratch, args: ["sleep", "1000"])
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let pidFile = scratch.path + "/pid"
        let c = runc.create(id, bundle: bundle.path, extra: ["--pid-file", pidFile])
        #expect(c.status == 0, "create failed: \(c.stderr)")

        let state = try #require(runc.state(id))
        #expect(state["status"] as? String == "created")
        #expect(state["id"] as? String == id)
        #expect(state["bundle"] as? String == bundle.path)
        #expect(state["ociVersion"] as? String != nil)
        let pid = try #require(state["pid"] as? Int).int32
        #expect(pid > 0)
        #expect((try? String(contentsOfFile: pidFile, encoding: .utf8)) == "\(pid)")
        // The process exists and has not exec'd: it is still a copy of husk-runc.
        #expect(kill(pid, 0) == 0)
        #expect(Self.comm(pid) == "husk-runc")
        #expect(FileManager.default.fileExists(atPath: Host.cgroup2!.path + "/husk/runc/\(id)"))
        let procs = (try? String(contentsOfFile: Host.cgroup2!.path + "/husk/runc/\(id)/cgroup.procs", encoding: .utf8)) ?? ""
        #expect(procs.split(separator: "\n").contains("\(pid)"), "process not in its cgroup: \(procs)")

        let list = runc("list", "--format", "json")
        #expect(list.stdout.contains("\"\(id)\""))

        let s = runc("start", id)
        #expect(s.status == 0, "start failed: \(s.stderr)")
        #expect(Self.waitFor { Self.comm(pid) == "sleep" }, "the program did not start: comm \(Self.comm(pid))")
        #expect(runc.state(id)?["status"] as? String == "running")

        // start on a running container fails and changes nothing.
        let again = runc("start", id)
        #expect(again.status != 0)
        #expect(again.stderr.contains("cannot start an already running container"))
        #expect(runc.state(id)?["status"] as? String == "running")

        // delete of a running container needs --force, and changes nothing without it.
        let del = runc("delete", id)
        #expect(del.status != 0)
        #expect(del.stderr.contains("cannot delete container \(id) that is not stopped: running"))
        #expect(kill(pid, 0) == 0)

        let force = runc("delete", "--force", id)
        #expect(force.status == 0, "delete --force failed: \(force.stderr)")
        expectGone(id, runc: runc, pid: pid)
        #expect(runc("list", "-q").stdout.isEmpty)
    }

    @Test("delete of a created (never started) container kills it and removes everything")
    func deleteCreated() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let bundle = try TestBundle(in: scratch, args: ["true"])
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        #expect(runc.create(id, bundle: bundle.path).status == 0)
        let pid = try #require(runc.state(id)?["pid"] as? Int).int32
        #expect(runc("delete", id).status == 0)
        #expect(Self.waitFor { !processExists(pid) })
        expectGone(id, runc: runc, pid: pid)
    }

    @Test("runtime.md: a container whose process died is stopped; start and kill then fail and change nothing; delete works")
    func diedIsStopped() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let bundle = try TestBundle(in: scratch, args: ["sleep", "1000"])
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        #expect(runc.create(id, bundle: bundle.path).status == 0)
        #expect(runc("start", id).status == 0)
        let pid = try #require(runc.state(id)?["pid"] as? Int).int32
        // The process dies behind the runtime's back.
        kill(pid, SIGKILL)
        #expect(Self.waitFor { runc.state(id)?["status"] as? String == "stopped" })
        let before = try String(contentsOfFile: runc.root + "/\(id)/state.json", encoding: .utf8)
        let k = runc("kill", id, "TERM")
        #expect(k.status == 1 && k.stderr.contains("container not running"), "\(k)")
        let s = runc("start", id)
        #expect(s.status == 1 && s.stderr.contains("cannot start a container that has stopped"), "\(s)")
        #expect(try String(contentsOfFile: runc.root + "/\(id)/state.json", encoding: .utf8) == before, "no side effect")
        #expect(runc.state(id)?["status"] as? String == "stopped")
        #expect(runc("delete", id).status == 0)
        expectGone(id, runc: runc, pid: pid)
    }

    @Test("kill with SIGTERM gives 143 and SIGKILL 137")
    func killExitCodes() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // The init of a pid namespace ignores signals it has no handler for when they come from
        // outside (pid_namespaces(7)): for SIGTERM to end `sleep` it must not be such an init.
        var bundle = try TestBundle(in: scratch, args: ["sleep", "1000"])
        bundle.dropPidNamespace()
        try bundle.write()
        let runc = Runc(scratch)
        for (signal, code) in [("TERM", Int32(143)), ("SIGKILL", Int32(137)), ("9", Int32(137))] {
            let id = uniqueID("kill\(signal)")
            let p = Process()
            p.executableURL = URL(fileURLWithPath: huskRuncPath)
            p.arguments = ["--root", runc.root, "run", "--bundle", bundle.path, id]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            #expect(Self.waitFor { runc.state(id)?["status"] as? String == "running" }, "\(id) did not start")
            let pid = (runc.state(id)?["pid"] as? Int ?? 0).int32
            let k = runc("kill", id, signal)
            #expect(k.status == 0, "kill \(signal) failed: \(k.stderr)")
            p.waitUntilExit()
            #expect(p.terminationStatus == code, "kill \(signal): exit \(p.terminationStatus), expected \(code)")
            expectGone(id, runc: runc, pid: pid)
        }
    }

    @Test("a foreground run passes the signals it gets on to the container")
    func runForwardsSignals() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // PID 1 of the container has a handler, so SIGTERM from outside reaches it.
        let bundle = try TestBundle(in: scratch, args: ["sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.05; done"])
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: huskRuncPath)
        p.arguments = ["--root", runc.root, "run", "--bundle", bundle.path, id]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        #expect(Self.waitFor { runc.state(id)?["status"] as? String == "running" })
        usleep(100_000)  // let the shell install its trap
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        #expect(p.terminationStatus == 7, "the container did not get SIGTERM: \(p.terminationStatus)")
        expectGone(id, runc: runc)
    }

    @Test("namespaces given by path are joined: a second container shares network and uts")
    func joinByPath() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let first = try TestBundle(in: scratch, name: "first", args: ["sleep", "1000"])
        try first.write()
        let runc = Runc(scratch)
        let a = uniqueID("first")
        #expect(runc.create(a, bundle: first.path).status == 0)
        defer { runc("delete", "--force", a) }
        #expect(runc("start", a).status == 0)
        let pid = try #require(runc.state(a)?["pid"] as? Int)
        let net = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")
        let uts = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/uts")

        var second = try TestBundle(in: scratch, name: "second", args: ["sh", "-c",
            "echo net=$(readlink /proc/self/ns/net); echo uts=$(readlink /proc/self/ns/uts); echo host=$(hostname)"])
        second.spec.hostname = nil
        let namespaces: [Spec.Namespace] = second.spec.linux?.namespaces?.map {
            switch $0.type {
            case "network": return Spec.Namespace(type: "network", path: "/proc/\(pid)/ns/net")
            case "uts": return Spec.Namespace(type: "uts", path: "/proc/\(pid)/ns/uts")
            default: return $0
            }
        } ?? []
        second.spec.linux?.namespaces = namespaces
        try second.write()
        let r = runc("run", "--bundle", second.path, uniqueID("second"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("net=\(net)"), "\(r.stdout) vs \(net)")
        #expect(r.stdout.contains("uts=\(uts)"), "\(r.stdout) vs \(uts)")
        #expect(r.stdout.contains("host=husk-test"), "the uts namespace of the first was not joined: \(r.stdout)")

        // A path that is not a namespace of the named type is refused before anything starts.
        second.spec.linux?.namespaces = namespaces.map {
            $0.type == "network" ? Spec.Namespace(type: "network", path: "/proc/\(pid)/ns/uts") : $0
        }
        try second.write()
        let bad = runc("run", "--bundle", second.path, uniqueID("bad"))
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("/proc/\(pid)/ns/uts is not a network namespace"), "\(bad.stderr)")
    }

    @Test("kill --all reaches every process of the container, not only its init")
    func killAll() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // Without a pid namespace, a background child outlives the shell unless kill --all gets it.
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "sleep 1000 & echo $! > /run/child; wait"])
        bundle.dropPidNamespace()
        let shared = scratch.path + "/run"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        bundle.spec.mounts?.append(Spec.Mount(destination: "/run", type: "bind", source: shared, options: ["rbind"]))
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        #expect(runc.create(id, bundle: bundle.path).status == 0)
        #expect(runc("start", id).status == 0)
        #expect(Self.waitFor { FileManager.default.fileExists(atPath: shared + "/child") })
        let cgroup = Host.cgroup2!.path + "/husk/runc/\(id)"
        #expect(Self.waitFor { ((try? String(contentsOfFile: cgroup + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n").count == 2 })
        #expect(runc("kill", "--all", id, "KILL").status == 0)
        #expect(Self.waitFor { ((try? String(contentsOfFile: cgroup + "/cgroup.procs", encoding: .utf8)) ?? "x").isEmpty },
                "processes left in \(cgroup)")
        #expect(Self.waitFor { runc.state(id)?["status"] as? String == "stopped" })
        #expect(runc("delete", id).status == 0)
        expectGone(id, runc: runc)
    }

    @Test("pause freezes every process (cgroup.freeze, status paused), resume thaws them; each refused in the wrong state; ps lists the container's processes as JSON and as ps -ef lines")
    func pauseResumePs() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // A stable set of three processes, one of them busy without forking.
        let bundle = try TestBundle(in: scratch, args: ["sh", "-c", "sleep 1000 & sh -c 'while :; do :; done' & wait"])
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        #expect(runc.create(id, bundle: bundle.path).status == 0)
        let early = runc("pause", id)
        #expect(early.status == 1 && early.stderr.contains("is not running"), "pause of a created container: \(early)")
        #expect(runc("start", id).status == 0)
        let cgroup = Host.cgroup2!.path + "/husk/runc/\(id)"
        #expect(Self.waitFor { ((try? String(contentsOfFile: cgroup + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n").count == 3 })
        let json = runc("ps", "--format", "json", id)
        let pids = (try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8))) as? [Int] ?? []
        let inCgroup = ((try? String(contentsOfFile: cgroup + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0) }
        #expect(json.status == 0 && Set(pids) == Set(inCgroup) && pids.count == 3, "\(json) vs \(inCgroup)")
        #expect(pids.first == runc.state(id)?["pid"] as? Int, "init first")
        let table = runc("ps", id)
        let rows = table.stdout.split(separator: "\n")
        #expect(rows.first?.contains("PID") == true && rows.count == pids.count + 1, "\(table.stdout)")
        #expect(runc("resume", id).stderr.contains("is not paused"))
        #expect(runc("pause", id).status == 0)
        #expect(runc.state(id)?["status"] as? String == "paused")
        #expect(readText(cgroup + "/cgroup.events").contains("frozen 1"))
        // Frozen: the busy loop uses no CPU (cpu.stat usage_usec stands still); thawed, it does.
        func usage() -> Int { Int(readText(cgroup + "/cpu.stat").split(separator: "\n").first { $0.hasPrefix("usage_usec ") }?.split(separator: " ").last ?? "") ?? -1 }
        let frozenAt = usage()
        Thread.sleep(forTimeInterval: 0.3)
        #expect(usage() == frozenAt, "no CPU used while frozen")
        #expect(runc("pause", id).stderr.contains("already paused"))
        #expect(runc("resume", id).status == 0)
        #expect(runc.state(id)?["status"] as? String == "running")
        #expect(readText(cgroup + "/cgroup.events").contains("frozen 0"))
        let thawedAt = usage()
        #expect(Self.waitFor { usage() > thawedAt + 10_000 }, "the loop runs again")
        #expect(runc("delete", "--force", id).status == 0)
        #expect(runc("pause", id).status == 1)
        expectGone(id, runc: runc)
    }

    @Test("a missing container id fails clearly for every command")
    func missingID() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let runc = Runc(scratch)
        for cmd in [["start"], ["state"], ["kill"], ["delete"]] {
            let r = runc.callAsFunction(cmd[0], "nope")
            #expect(r.status == 1, "\(cmd[0]) on a missing id: \(r.status)")
            #expect(r.stderr.contains("container does not exist: nope"), "\(cmd[0]): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "not one line: \(r.stderr)")
        }
        #expect(runc("delete", "--force", "nope").status == 0)
    }

    @Test("create with an id that exists fails and keeps the first container")
    func duplicateID() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let bundle = try TestBundle(in: scratch, args: ["true"])
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        #expect(runc.create(id, bundle: bundle.path).status == 0)
        let pid = runc.state(id)?["pid"] as? Int
        let r = runc.create(id, bundle: bundle.path)
        #expect(r.status == 1)
        #expect(r.stderr.contains("container with given ID already exists: \(id)"))
        #expect(runc.state(id)?["pid"] as? Int == pid)
        #expect(runc.state(id)?["status"] as? String == "created")
        #expect(runc("delete", id).status == 0)
        expectGone(id, runc: runc)
    }
}

extension Int {
    var int32: Int32 { Int32(truncatingIfNeeded: self) }
}

/// runtime-tools' linux_rootfs_propagation: every rootfsPropagation value starts the
/// container, and the root mount carries it (runc applies shared/slave before the rootfs is
/// set up and the rest after pivot_root; the rootfs's parent is made private for pivot_root).
@Suite("husk-runc: rootfsPropagation", .serialized)
struct RootfsPropagationTests {
    @Test("shared, rshared, private, slave, unbindable: the container runs with that root",
          .enabled(if: Host.canRunContainers, Host.skipReason),
          arguments: [("shared", "shared:"), ("rshared", "shared:"), ("private", nil), ("slave", nil), ("unbindable", "unbindable")])
    func propagation(_ value: String, _ mark: String?) throws {
        let scratch = Scratch("propagation" + value)
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo"])
        bundle.spec.linux?.rootfsPropagation = value
        bundle.spec.process?.terminal = false
        try bundle.write()
        let runc = Runc(scratch)
        let r = runc("run", "--bundle", bundle.path, uniqueID("prop" + value))
        #expect(r.status == 0, "\(value): \(r.stderr)")
        let line = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!line.isEmpty, "\(value): no root mount seen")
        if let mark { #expect(line.contains(mark), "\(value): \(line)") } else { #expect(!line.contains("shared:"), "\(value): \(line)") }
    }
}
