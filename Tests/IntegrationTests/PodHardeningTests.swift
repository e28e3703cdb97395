import Foundation
import HuskPod
import HuskRuntime
import HuskSystem
import Testing

/// What hostile and careless use found (issue 16): names taken twice, launches killed
/// half-way, trees too deep to remove by path.
@Suite("Pods: hardening (issue 16)", .enabled(if: Host.canRunPods, Host.podSkipReason))
struct PodHardeningTests {
    static let sleeper = """
        apiVersion: v1
        kind: Pod
        metadata:
          name: same
        spec:
          terminationGracePeriodSeconds: 0
          containers:
          - name: main
            image: busybox:1.36
            command: ["sleep", "1000"]
        """

    @Test("five husk run -d of one name at once: exactly one pod, every other run says it exists (issue 16 #1)")
    func oneNameOnePod() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let path = scratch.path + "/same.yaml"
        try Self.sleeper.write(toFile: path, atomically: true, encoding: .utf8)
        for round in 0..<6 {
            let results = ResultsBox()
            DispatchQueue.concurrentPerform(iterations: 5) { _ in results.append(husk("run", "-d", path)) }
            let won = results.all.filter { $0.status == 0 }
            #expect(won.count == 1, "round \(round): \(won.count) runs started a pod: \(results.all.map(\.stderr))")
            for r in results.all where r.status != 0 {
                #expect(r.stderr.contains("already exists"), "round \(round): \(r.stderr)")
            }
            #expect(husk.podUIDs.count == 1, "round \(round): \(husk.podUIDs)")
            let rm = husk("rm", "--force", "same")
            #expect(rm.status == 0, "\(rm.stderr)")
            #expect(husk.podUIDs.isEmpty, "round \(round): \(husk.podUIDs) left after husk rm same")
        }
    }

    @Test("eight launches of one name from eight threads, 40 times: one pod each time (issue 16 #1)")
    func oneNameOnePodInProcess() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var settings = HuskSettings()
        settings.state = scratch.path + "/state"
        settings.root = scratch.path + "/root"
        settings.logDir = scratch.path + "/logs"
        let fixed = settings
        let (pod, _) = try PodManifest.parse(Array(Self.sleeper.utf8))
        final class Outcomes: @unchecked Sendable {  // under `lock`
            let lock = NSLock()
            var won = 0
            var errors: [String] = []
        }
        for round in 0..<40 {
            let outcomes = Outcomes()
            DispatchQueue.concurrentPerform(iterations: 8) { _ in
                var p = pod
                p.metadata.uid = PodManifest.newUID()
                do {
                    // A supervisor that exits at once: only the records matter here.
                    let (_, keeper) = try PodDirectory.launch(p, settings: fixed, supervisor: ["/bin/true"])
                    _ = try? keeper.pidfd.wait()
                    outcomes.lock.withLock { outcomes.won += 1 }
                } catch {
                    outcomes.lock.withLock { outcomes.errors.append("\(error)") }
                }
            }
            #expect(outcomes.won == 1, "round \(round): \(outcomes.won) launches took the name")
            #expect(outcomes.errors.allSatisfy { $0.contains("already exists") }, "round \(round): \(outcomes.errors)")
            let pods = Files.list(settings.state + "/pods") ?? []
            #expect(pods.count == 1, "round \(round): \(pods)")
            for uid in pods { try Files.removeTree(settings.state + "/pods/" + uid) }
            unlink(settings.state + "/names/default_same")
        }
    }

    @Test("a run killed while writing pod.json leaves its name free for the next run, and gc frees it too (issue 16 #7)")
    func killedLaunchLeavesNameFree() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let path = scratch.path + "/same.yaml"
        try Self.sleeper.write(toFile: path, atomically: true, encoding: .utf8)
        // What a `husk run` killed ~15 ms in leaves: the name, the state directory, and
        // pod.json's temporary file only.
        func leaveKilledLaunch() throws -> String {
            let uid = UUID().uuidString.lowercased()
            try FileManager.default.createDirectory(atPath: husk.state + "/pods/" + uid, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: husk.state + "/names", withIntermediateDirectories: true)
            try "{\"apiVers".write(toFile: husk.state + "/pods/\(uid)/pod.json.tmp.1.2", atomically: false, encoding: .utf8)
            try (uid + "\n").write(toFile: husk.state + "/names/default_same", atomically: false, encoding: .utf8)
            return uid
        }
        let stale = try leaveKilledLaunch()
        #expect(husk("rm", "same").stderr.contains("not found"))
        let run = husk("run", "-d", path)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!husk.podUIDs.contains(stale), "the killed launch's state directory is left: \(husk.podUIDs)")
        #expect(husk("rm", "--force", "same").status == 0)

        _ = try leaveKilledLaunch()
        let gc = husk("gc")
        #expect(gc.stdout.contains("removed name default_same"), "\(gc.stdout)")
        #expect(!FileManager.default.fileExists(atPath: husk.state + "/names/default_same"))
        // The record-less state directory is younger than 30 s: a launch may be in progress.
        for uid in husk.podUIDs { try FileManager.default.removeItem(atPath: husk.state + "/pods/" + uid) }
    }

    @Test("a shorter grace shortens a stop in progress: rm --force, stop --grace 0 (issue 16 #4)", arguments: [
        ["rm", "--force", "stubborn"], ["stop", "--grace", "0", "stubborn"],
    ])
    func shorterGraceWins(override: [String]) throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: stubborn}
            spec:
              terminationGracePeriodSeconds: 30
              containers:
              - name: c
                image: "busybox:1.36"
                command: [sh, -c, "trap '' TERM; echo up; while true; do sleep 0.05; done"]
            """).status == 0)
        #expect(husk.wait("stubborn") { $0.stateKind("c") == "running" } != nil)
        let recovery = PodRecoveryTests()
        let stopper = try recovery.launch(husk, ["stop", "stubborn"])
        #expect(recovery.waitForEvent(husk, "stubborn", "Killing", "c"))
        usleep(1_000_000)
        let began = Date()
        let r = husk.run(override)
        let took = Date().timeIntervalSince(began)
        #expect(r.status == 0, "\(r.stderr)")
        // SIGKILL 2 s (kubelet's floor) after the shorter grace, not 30 s after the first.
        #expect(took < 5, "\(override.joined(separator: " ")) took \(took) s")
        #expect(recovery.finish(stopper) == 0)
        if override[0] == "stop" {
            #expect(husk.inspect("stubborn")?.exitCode("c") == 137)
        }
    }

    @Test("a full log disk: whole records only, nothing glued when space returns, and the loss is told (issue 16 #5)")
    func fullLogDisk() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        try FileManager.default.createDirectory(atPath: husk.logDir, withIntermediateDirectories: true)
        #expect(mount("tmpfs", husk.logDir, "tmpfs", 0, "size=8m") == 0)
        defer {
            // The pod first (its logs are on the tmpfs), then the tmpfs, then the leak check.
            _ = husk("rm", "--force", "chatty")
            umount2(husk.logDir, Int32(MNT_DETACH))
            husk.cleanup()
        }
        // All but ~300 KB taken by a filler, so the container's output fills the rest.
        var vfs = statvfs()
        statvfs(husk.logDir, &vfs)
        let free = Int(vfs.f_bavail) * Int(vfs.f_frsize)
        let filler = husk.logDir + "/filler"
        #expect(run(["/usr/bin/fallocate", "-l", "\(free - 300_000)", filler]).status == 0)
        let line = String(repeating: "x", count: 200)
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: chatty}
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - name: c
                image: "busybox:1.36"
                command: [sh, -c, "i=0; while true; do i=$((i+1)); echo line $i \(line); done"]
            """).status == 0)
        let recovery = PodRecoveryTests()
        #expect(recovery.waitForEvent(husk, "chatty", "OutputLost", "c"), "no OutputLost event while the disk is full")
        try FileManager.default.removeItem(atPath: filler)
        #expect(recovery.waitForEvent(husk, "chatty", "OutputLost", "c", count: 2), "no OutputLost event once space returned")
        usleep(200_000)
        #expect(husk("stop", "chatty").status == 0)
        let lost = events(husk.events("chatty"), "OutputLost", "c").compactMap { $0["message"] as? String }
        #expect(lost.first?.contains("output is being lost") == true && lost.first?.contains("No space left on device") == true, "\(lost)")
        #expect(lost.dropFirst().first?.contains("bytes of output were lost") == true, "\(lost)")
        // Every record whole: a timestamp, the stream, F, and one whole line of output.
        let logs = try FileManager.default.contentsOfDirectory(atPath: husk.logDir).filter { $0.hasPrefix("default_chatty_") }
        let file = husk.logDir + "/" + (logs.first ?? "") + "/c/0.log"
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let records = text.split(separator: "\n")
        #expect(records.count > 100)
        let bad = records.filter { r in
            let parts = r.split(separator: " ")
            return parts.count != 6 || parts[1] != "stdout" || parts[2] != "F" || parts[3] != "line" || Int(parts[4]) == nil || parts[5] != line
        }
        #expect(bad.isEmpty, "\(bad.count) broken records, the first: \(bad.first.map { String($0.prefix(300)) } ?? "")")
        #expect(text.hasSuffix("\n"))
        let shown = husk("logs", "chatty")
        #expect(shown.stderr.contains("bytes of output were lost"), "\(shown.stderr)")
    }

    @Test("a full --state disk: events whole, status.json the last good one, both written again when space returns (issue 16 #5)")
    func fullStateDisk() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch, extra: ["--backoff-scale", "0.02"])
        try FileManager.default.createDirectory(atPath: husk.state, withIntermediateDirectories: true)
        #expect(mount("tmpfs", husk.state, "tmpfs", 0, "size=4m") == 0)
        defer {
            _ = husk("rm", "--force", "crashy")
            umount2(husk.state, Int32(MNT_DETACH))
            husk.cleanup()
        }
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: crashy}
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - name: c
                image: "busybox:1.36"
                command: [sh, -c, "sleep 0.2; exit 3"]
            """).status == 0)
        #expect(husk.wait("crashy") { ($0.container("c")?["restartCount"] as? Int ?? 0) >= 1 } != nil)
        // Fill the state's filesystem to the last byte.
        let filler = husk.state + "/filler"
        _ = run(["/bin/sh", "-c", "cat /dev/zero > \(filler)"])
        let before = husk.inspect("crashy")?.container("c")?["restartCount"] as? Int ?? -1
        usleep(1_500_000)  // restarts happen, and cannot be recorded
        #expect(husk.inspect("crashy")?.phase == "Running", "the last good status.json is kept")
        try FileManager.default.removeItem(atPath: filler)
        let after = husk.wait("crashy", timeout: 10) { ($0.container("c")?["restartCount"] as? Int ?? 0) > before + 1 }
        #expect(after != nil, "status.json was not written again once space returned")
        // Every line of events.jsonl is a whole event, and the lost ones are counted.
        let text = try String(contentsOfFile: husk.state + "/pods/" + (husk.podUIDs.first ?? "") + "/events.jsonl", encoding: .utf8)
        for line in text.split(separator: "\n") {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "a broken event line: \(line.prefix(200))")
        }
        let lost = events(husk.events("crashy"), "EventsLost")
        #expect(!lost.isEmpty, "no EventsLost event")
    }

    @Test("a container that nests 400 directories in its emptyDir (over PATH_MAX) is removed by rm --force (issue 16 #3)")
    func deepEmptyDirIsRemoved() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: deep
            spec:
              terminationGracePeriodSeconds: 0
              volumes:
              - name: scratch
                emptyDir: {}
              containers:
              - name: main
                image: busybox:1.36
                volumeMounts:
                - name: scratch
                  mountPath: /scratch
                command: ["sh", "-c", "cd /scratch && for i in $(seq 400); do mkdir dddddddddddddddddddd && cd -P dddddddddddddddddddd || exit 1; done; echo deep; exec sleep 1000"]
            """)
        #expect(r.status == 0, "\(r.stderr)")
        let uid = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let end = Date().addingTimeInterval(30)
        while Date() < end, husk("logs", "deep").stdout != "deep\n" { Thread.sleep(forTimeInterval: 0.1) }
        #expect(husk("logs", "deep").stdout == "deep\n")
        let rm = husk("rm", "--force", "deep")
        #expect(rm.status == 0, "\(rm.stderr)")
        #expect(!FileManager.default.fileExists(atPath: husk.root + "/pods/" + uid))
    }
}
