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
