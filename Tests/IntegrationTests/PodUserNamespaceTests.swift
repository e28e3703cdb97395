import Foundation
import Testing

/// Pods with `spec.hostUsers: false` (KEP-127, issue 15 "User namespaces, fully"): the pod's own
/// user namespace with 65536 ids from kubelet's pool, recorded in kubelet's `userns` file;
/// pause makes it, every container joins it; the image's layers are seen through idmapped
/// mounts (never chowned) and every volume is idmapped with the pod's maps, as kubelet asks.
@Suite("Pods: user namespaces (hostUsers: false)", .serialized)
struct PodUserNamespaceTests {
    static func manifest(_ name: String, containers: String, volumes: String = "") -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata:
          name: \(name)
        spec:
          hostUsers: false
          terminationGracePeriodSeconds: 0
          containers:
        \(containers)
        \(volumes)
        """
    }

    /// The pod's `userns` record (kubelet's format): the host id of its range.
    static func recordedHostID(_ husk: PodHusk, _ pod: [String: Any]) -> Int? {
        let uid = (pod["metadata"] as? [String: Any])?["uid"] as? String ?? ""
        guard let data = FileManager.default.contents(atPath: husk.state + "/pods/\(uid)/userns"),
              let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let u = doc["uidMappings"] as? [[String: Any]], let g = doc["gidMappings"] as? [[String: Any]],
              u.count == 1, g.count == 1, u[0]["containerId"] as? Int == 0, u[0]["length"] as? Int == 65536,
              g[0]["hostId"] as? Int == u[0]["hostId"] as? Int
        else { return nil }
        return u[0]["hostId"] as? Int
    }

    /// The init pid of `container` (`husk ps -o json`).
    static func pid(_ husk: PodHusk, _ pod: String, _ container: String) -> Int32? {
        let out = husk.run(["ps", pod, "-o", "json"]).stdout
        let doc = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any]
        let c = (doc?["containers"] as? [[String: Any]] ?? []).first { ($0["metadata"] as? [String: Any])?["name"] as? String == container }
        return (c?["pid"] as? Int).map { Int32($0) }
    }

    @Test("every container is in the pod's user namespace (pause's), root inside is the range's first host id, its own pid namespace has it as PID 1; the image's files are root's inside though host root's on disk, what root writes in the rootfs is the range's on disk; exec joins it",
          .enabled(if: Host.canRunPods, Host.podSkipReason))
    func containersShareTheNamespace() throws {
        let scratch = Scratch()
        chmod(scratch.path, 0o755)
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start(Self.manifest("userns", containers: """
              - name: a
                image: busybox:1.36
                command: ["sh", "-c", "echo $$$$ > /pid; stat -c %u:%g /bin/busybox > /owner; touch /made; sleep 600"]
              - name: b
                image: busybox:1.36
                command: ["sleep", "600"]
            """))
        #expect(r.status == 0, "\(r.stderr)")
        let pod = husk.wait("userns", timeout: 30) { $0.stateKind("a") == "running" && $0.stateKind("b") == "running" }
        #expect(pod?.stateKind("a") == "running" && pod?.stateKind("b") == "running", "\(String(describing: pod?.status))")
        guard let pod, let host = Self.recordedHostID(husk, pod), let a = Self.pid(husk, "userns", "a"), let b = Self.pid(husk, "userns", "b") else {
            Issue.record("no userns record or pids: \(String(describing: pod))")
            return
        }
        #expect(host >= 65536 && host % 65536 == 0 && host + 65536 <= 4_294_967_295)
        func link(_ p: String) -> String { (try? FileManager.default.destinationOfSymbolicLink(atPath: p)) ?? "?" }
        let want = "0 \(host) 65536"
        for p in [a, b] {
            #expect(readText("/proc/\(p)/uid_map").split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") == want + "\n")
            #expect(readText("/proc/\(p)/gid_map").split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") == want + "\n")
            #expect(readText("/proc/\(p)/status").contains("Uid:\t\(host)\t\(host)\t\(host)\t\(host)"), "\(readText("/proc/\(p)/status"))")
            #expect(link("/proc/\(p)/ns/user") != link("/proc/self/ns/user"))
        }
        #expect(link("/proc/\(a)/ns/user") == link("/proc/\(b)/ns/user"))
        #expect(link("/proc/\(a)/ns/net") == link("/proc/\(b)/ns/net"))
        // Each container's own pid namespace (no shareProcessNamespace), owned by the pod's
        // user namespace: its init is PID 1 and /proc is mounted.
        #expect(link("/proc/\(a)/ns/pid") != link("/proc/\(b)/ns/pid"))
        let inside = sh(husk, "userns", "a", "cat /pid /owner; id -u; cat /proc/self/uid_map")
        #expect(inside.status == 0, "\(inside.stderr)")
        let lines = inside.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(lines == ["1", "0:0", "0", want], "\(inside.stdout)")
        // On disk: the layer is host root's (untouched), what root made is the range's.
        let uid = (pod["metadata"] as? [String: Any])?["uid"] as? String ?? ""
        // A supervisor killed -9: the next one takes the pod over with the recorded range,
        // and exec still enters the pod's user namespace.
        let supervisorFile = husk.state + "/pods/\(uid)/supervisor.pid"
        if let old = Int32(readText(supervisorFile).trimmed) {
            kill(old, SIGKILL)
            let end = Date().addingTimeInterval(10)
            while Date() < end, Int32(readText(supervisorFile).trimmed) == old || !processExists(Int32(readText(supervisorFile).trimmed) ?? old) {
                usleep(10_000)
            }
        }
        let again = sh(husk, "userns", "b", "id -u; cat /proc/self/uid_map")
        #expect(again.status == 0 && again.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") } == ["0", want],
                "after a new supervisor: \(again)")
        var st = stat()
        let upper = husk.root + "/pods/\(uid)/containers/a/0/upper"
        #expect(stat(upper + "/made", &st) == 0 && Int(st.st_uid) == host && Int(st.st_gid) == host, "made: \(st.st_uid):\(st.st_gid)")
        let found = run(["/usr/bin/find", husk.root, "-path", "*/bin/busybox", "-not", "-path", "*/containers/*"]).stdout.split(separator: "\n")
        #expect(!found.isEmpty, "no unpacked layer under \(husk.root)")
        for layer in found {
            #expect(stat(String(layer), &st) == 0 && st.st_uid == 0 && st.st_gid == 0, "\(layer): \(st.st_uid):\(st.st_gid)")
        }
    }

    @Test("volumes are idmapped with the pod's maps, as kubelet asks for every mount: host root's files in a hostPath are root's inside and root writes them as host root; a file of a host id outside the range is nobody's and root cannot write it; an emptyDir works",
          .enabled(if: Host.canRunPods, Host.podSkipReason))
    func volumes() throws {
        let scratch = Scratch()
        chmod(scratch.path, 0o755)
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let dir = scratch.path + "/host"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        chmod(dir, 0o755)
        try "root\n".write(toFile: dir + "/rootfile", atomically: false, encoding: .utf8)
        try "other\n".write(toFile: dir + "/otherfile", atomically: false, encoding: .utf8)
        chmod(dir + "/rootfile", 0o644)
        chmod(dir + "/otherfile", 0o644)
        chown(dir + "/otherfile", 3_000_000, 3_000_000)
        let r = husk.start(Self.manifest("vols", containers: """
              - name: c
                image: busybox:1.36
                command: ["sleep", "600"]
                volumeMounts:
                - {name: host, mountPath: /host}
                - {name: scratch, mountPath: /scratch}
            """, volumes: """
          volumes:
          - name: host
            hostPath: {path: \(dir)}
          - name: scratch
            emptyDir: {}
        """))
        #expect(r.status == 0, "\(r.stderr)")
        let pod = husk.wait("vols", timeout: 30) { $0.stateKind("c") == "running" }
        #expect(pod?.stateKind("c") == "running", "\(String(describing: pod?.status))")
        let out = sh(husk, "vols", "c", """
            stat -c %u /host/rootfile /host/otherfile
            echo more >> /host/rootfile && echo wrote-root
            echo more >> /host/otherfile 2>/dev/null && echo wrote-other || echo refused-other
            touch /host/new /scratch/x && stat -c %u /scratch/x
            """)
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.split(separator: "\n") == ["0", "65534", "wrote-root", "refused-other", "0"], "\(out.stdout)")
        var st = stat()
        #expect(stat(dir + "/new", &st) == 0 && st.st_uid == 0, "new: \(st.st_uid)")
        #expect(readText(dir + "/otherfile") == "other\n")
    }

    @Test("two pods never get overlapping ranges; a range is free again once its pod is removed (husk rm) or its record is collected (husk gc)",
          .enabled(if: Host.canRunPods, Host.podSkipReason))
    func rangesAreDisjointAndReleased() throws {
        let scratch = Scratch()
        chmod(scratch.path, 0o755)
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        for name in ["one", "two"] {
            let r = husk.start(Self.manifest(name, containers: """
                  - name: c
                    image: busybox:1.36
                    command: ["sleep", "600"]
                """))
            #expect(r.status == 0, "\(r.stderr)")
        }
        let one = husk.wait("one", timeout: 30) { $0.stateKind("c") == "running" }
        let two = husk.wait("two", timeout: 30) { $0.stateKind("c") == "running" }
        guard let one, let two, let h1 = Self.recordedHostID(husk, one), let h2 = Self.recordedHostID(husk, two),
              let p1 = Self.pid(husk, "one", "c"), let p2 = Self.pid(husk, "two", "c")
        else {
            Issue.record("pods did not run: \(String(describing: one)) \(String(describing: two))")
            return
        }
        #expect(abs(h1 - h2) >= 65536, "ranges \(h1) and \(h2) overlap")
        #expect(readText("/proc/\(p1)/status").contains("Uid:\t\(h1)\t"))
        #expect(readText("/proc/\(p2)/status").contains("Uid:\t\(h2)\t"))
        let uid1 = (one["metadata"] as? [String: Any])?["uid"] as? String ?? ""
        #expect(husk("stop", "one").status == 0)
        #expect(husk("rm", "one").status == 0)
        #expect(!FileManager.default.fileExists(atPath: husk.state + "/pods/\(uid1)/userns"))

        // A launch killed after it took a range (no pod record): husk gc frees it after 30 s.
        let leftover = husk.state + "/pods/0000-leftover"
        try FileManager.default.createDirectory(atPath: leftover, withIntermediateDirectories: false)
        try #"{"uidMappings":[{"hostId":131072,"containerId":0,"length":65536}],"gidMappings":[{"hostId":131072,"containerId":0,"length":65536}]}"#
            .write(toFile: leftover + "/userns", atomically: false, encoding: .utf8)
        var times = [timespec(tv_sec: time(nil) - 60, tv_nsec: 0), timespec(tv_sec: time(nil) - 60, tv_nsec: 0)]
        utimensat(AT_FDCWD, leftover, &times, 0)
        let gc = husk("gc")
        #expect(gc.status == 0 && gc.stdout.contains("removed state dir \(leftover)"), "\(gc)")
        #expect(!FileManager.default.fileExists(atPath: leftover))
    }

    @Test("hostUsers: false with hostNetwork, hostPID or hostIPC is refused as the API server does; a --root others cannot search is refused before anything starts, naming the directory",
          .enabled(if: Host.canRunPods, Host.podSkipReason))
    func refusals() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        for field in ["hostNetwork", "hostPID", "hostIPC"] {
            let r = husk.start("""
                apiVersion: v1
                kind: Pod
                metadata: {name: bad}
                spec:
                  hostUsers: false
                  \(field): true
                  containers: [{name: c, image: busybox:1.36}]
                """)
            #expect(r.status != 0 && r.stderr.contains("spec.\(field): Forbidden: when `hostUsers` is false"), "\(r.stderr)")
        }
        // The scratch dir is 0700 here: the pod's root could not reach its root filesystem.
        chmod(scratch.path, 0o700)
        let r = husk.start(Self.manifest("hidden", containers: """
              - name: c
                image: busybox:1.36
                command: ["sleep", "600"]
            """))
        if r.status == 0 {
            let pod = husk.wait("hidden", timeout: 20) { $0.stateKind("c") == "waiting" || $0.phase == "Failed" }
            let events = husk.events("hidden").map { "\($0["reason"] ?? ""): \($0["message"] ?? "")" }
            #expect(events.contains { $0.contains("is mode 700; make it searchable by others (chmod o+x \(scratch.path))") },
                    "\(events) \(String(describing: pod?.status))")
        } else {
            #expect(r.stderr.contains("make it searchable by others"), "\(r.stderr)")
        }
    }
}
