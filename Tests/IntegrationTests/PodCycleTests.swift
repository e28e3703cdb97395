import Foundation
import HuskSystem
import Testing

/// Many pods in a row leave nothing behind (issue 5): 200 run/stop/rm cycles of a 3-container
/// pod, then nothing of any of the 200 pods is left (mount, cgroup, process, state, data or log
/// directory) and the machine has no more zombies than before. Checked per pod, not by
/// counting host-wide, since other suites run at the same time.
@Suite("Pods: many cycles", .enabled(if: Host.canRunPods, Host.podSkipReason))
struct PodCycleTests {
    static func mountsBelow(_ dir: String) -> [String] {
        ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { $0.split(separator: " ").dropFirst(4).first.map(String.init) }.filter { $0.hasPrefix(dir + "/") }
    }

    static func zombies() -> Int {
        var n = 0
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard Int32(entry) != nil, let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            if stat[stat.index(after: close)...].split(separator: " ").first == "Z" { n += 1 }
        }
        return n
    }

    /// Pids whose command line or cgroup names `needle`.
    static func processes(mentioning needles: Set<String>) -> [String] {
        var out: [String] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int32(entry) != nil {
            let cmd = (FileManager.default.contents(atPath: "/proc/\(entry)/cmdline").map { String(decoding: $0, as: UTF8.self) } ?? "")
                .replacingOccurrences(of: "\0", with: " ")
            let cg = (try? String(contentsOfFile: "/proc/\(entry)/cgroup", encoding: .utf8)) ?? ""
            if needles.contains(where: { cmd.contains($0) || cg.contains($0) }) { out.append("\(entry): \(cmd)") }
        }
        return out
    }

    @Test("200 run/stop/rm cycles of a 3-container pod leave no mount, cgroup, process or directory of any of them, and no zombie")
    func cycles() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let path = scratch.path + "/pod.yaml"
        try """
            apiVersion: v1
            kind: Pod
            metadata:
              name: cycle
            spec:
              terminationGracePeriodSeconds: 2
              volumes:
              - name: d
                emptyDir: {}
              containers:
              - {name: a, image: "busybox:1.36", command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"], volumeMounts: [{name: d, mountPath: /d}]}
              - {name: b, image: "busybox:1.36", command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]}
              - {name: c, image: "busybox:1.36", command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let zombiesBefore = Self.zombies()
        var uids: Set<String> = []
        var failures: [String] = []
        for i in 0..<200 {
            let r = husk("run", "-d", path)
            uids.insert(r.stdout.trimmed)
            let s = husk("stop", "cycle")
            let d = husk("rm", "cycle")
            if r.status != 0 || s.status != 0 || d.status != 0 {
                failures.append("cycle \(i): run \(r.status) \(r.stderr) stop \(s.status) \(s.stderr) rm \(d.status) \(d.stderr)")
                if failures.count > 3 { break }
            }
        }
        #expect(failures.isEmpty, "\(failures)")
        #expect(uids.count == 200, "distinct pods: \(uids.count)")
        #expect(Self.mountsBelow(scratch.path).isEmpty, "mounts left: \(Self.mountsBelow(scratch.path))")
        if let m = Host.cgroup2 {
            let left = uids.filter { FileManager.default.fileExists(atPath: m.path + "/husk/" + $0) }
            #expect(left.isEmpty, "cgroups left: \(left.sorted())")
        }
        #expect(Self.processes(mentioning: uids.union([scratch.path])).isEmpty, "processes left: \(Self.processes(mentioning: uids.union([scratch.path])))")
        #expect(husk.podUIDs.isEmpty, "pod state left: \(husk.podUIDs)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: husk.root + "/pods")) ?? []).isEmpty, "pod data left")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: husk.logDir)) ?? []).isEmpty, "log dirs left")
        // Zombies are reaped by whoever is their parent: give them a moment, then compare.
        var zombies = Self.zombies()
        for _ in 0..<50 where zombies > zombiesBefore {
            Thread.sleep(forTimeInterval: 0.1)
            zombies = Self.zombies()
        }
        #expect(zombies <= zombiesBefore, "zombies on the machine: \(zombiesBefore) before, \(zombies) after")
    }
}
