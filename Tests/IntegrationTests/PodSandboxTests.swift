import Foundation
import HuskSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The pod sandbox as containers see it: namespaces, /etc files, /dev/shm, volumes (spec
/// pod-semantics §10), pause (§11, security.md "Husk-specific"), CRI logs (§12), manifest
/// validation (§13) and what `husk rm` leaves (nothing).
///
/// Test function names stay within 22 characters: `Scratch()` names its directory after the
/// function, and `<scratch>/state/pods/<uid>/control.sock` must fit a socket address (107
/// bytes), or the supervisor cannot listen and the pod never starts.
@Suite("Pods: sandbox, volumes, logs, validation", .enabled(if: Host.canRunPods, Host.podSkipReason))
struct PodSandboxTests {
    // MARK: - §10 namespaces

    @Test("§10 namespaces: containers share pause's net, UTS and IPC namespaces (localhost reaches the other container, hostname = pod name) and have their own mount and PID namespaces")
    func sharedNamespaces() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: ns-test
            spec:
              containers:
              - name: web
                image: busybox:1.36
                command: ["sh", "-c", "echo hello-from-web > /www/index.html; exec httpd -f -p 8080 -h /www"]
              - name: client
                image: busybox:1.36
                command: ["sleep", "1000"]
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let pod = husk.wait("ns-test") { $0.stateKind("web") == "running" && $0.stateKind("client") == "running" }
        try #require(pod?.phase == "Running", "pod: \(String(describing: pod?.status))")

        // The client reaches the web container over the pod's loopback.
        let get = sh(husk, "ns-test", "client", """
            i=0; while [ $i -lt 100 ]; do wget -q -O - http://127.0.0.1:8080/ && exit 0; i=$((i+1)); sleep 0.1; done; exit 1
            """)
        #expect(get.status == 0, "wget from client to web over 127.0.0.1:8080: \(get.stderr)")
        #expect(get.stdout == "hello-from-web\n")

        // One UTS namespace, the pod's: its hostname is the pod name, not the node's.
        let hostHostname = readText("/proc/sys/kernel/hostname").trimmed
        #expect(hostHostname != "ns-test")
        for c in ["web", "client"] {
            let h = sh(husk, "ns-test", c, "hostname")
            #expect(h.status == 0, "\(c): \(h.stderr)")
            #expect(h.stdout.trimmed == "ns-test", "hostname in \(c)")
        }

        let web = namespaces(husk, "ns-test", "web")
        let client = namespaces(husk, "ns-test", "client")
        try #require(web.count == 5 && client.count == 5, "namespaces: web \(web), client \(client)")
        for type in ["net", "uts", "ipc"] {
            #expect(web[type] == client[type], "\(type): both containers are in pause's namespace")
            #expect(web[type] != hostNamespace(type), "\(type): the pod's namespace is not the host's")
        }
        for type in ["mnt", "pid"] {
            #expect(web[type] != client[type], "\(type): each container has its own namespace")
            #expect(web[type] != hostNamespace(type) && client[type] != hostNamespace(type), "\(type): not the host's")
        }
    }

    // MARK: - §10 / §11 PID namespaces

    @Test("§10 sysctls: the pod's namespaced sysctls are set in every container, though /proc/sys is read-only there")
    func podSysctls() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: sysctls}
            spec:
              securityContext:
                sysctls:
                - {name: net.ipv4.ip_unprivileged_port_start, value: "81"}
                - {name: kernel.shm_rmid_forced, value: "1"}
              containers:
              - {name: c, image: busybox:1.36, command: ["sleep", "600"]}
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let get = sh(husk, "sysctls", "c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced; echo 1 > /proc/sys/kernel/shm_rmid_forced && echo writable")
        #expect(get.stdout == "81\n1\n", "\(get.stdout) \(get.stderr)")
        #expect(get.stderr.contains("Read-only file system"), "/proc/sys stays read-only: \(get.stderr)")
    }

    @Test("§10 PID: by default each container's entrypoint is PID 1 of its own PID namespace and sees no other container's processes")
    func pidPerContainer() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start(twoSleepers(name: "pid-own", shareProcessNamespace: false))
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let pod = husk.wait("pid-own") { $0.stateKind("a") == "running" && $0.stateKind("b") == "running" }
        try #require(pod?.phase == "Running")

        for (c, own, other) in [("a", "sleep 1001", "sleep 1002"), ("b", "sleep 1002", "sleep 1001")] {
            let one = sh(husk, "pid-own", c, "tr '\\0' ' ' < /proc/1/cmdline")
            #expect(one.status == 0, "\(c): \(one.stderr)")
            #expect(one.stdout.trimmed == own, "PID 1 in \(c) is its entrypoint")
            let ps = processes(husk, "pid-own", c)
            #expect(ps.contains { $0.pid == 1 && $0.command == own }, "\(c): \(ps)")
            #expect(!ps.contains { $0.command.contains(other) }, "\(c) sees the other container's process: \(ps)")
            #expect(!ps.contains { $0.command.contains("pause") }, "\(c) sees pause: \(ps)")
        }
    }

    @Test("§10/§11 PID: with shareProcessNamespace pause is PID 1 and every container's processes are visible to the others")
    func sharedPidNamespace() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start(twoSleepers(name: "pid-shared", shareProcessNamespace: true))
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let pod = husk.wait("pid-shared") { $0.stateKind("a") == "running" && $0.stateKind("b") == "running" }
        try #require(pod?.phase == "Running")

        var pidsSeen: [String: [Int]] = [:]
        for c in ["a", "b"] {
            let one = sh(husk, "pid-shared", c, "cat /proc/1/cmdline")
            #expect(one.status == 0, "\(c): \(one.stderr)")
            #expect(one.stdout == "/pause\0", "PID 1 seen from \(c) is pause (§11: entrypoint /pause)")
            let ps = processes(husk, "pid-shared", c)
            let a = ps.filter { $0.command == "sleep 1001" }.map(\.pid)
            let b = ps.filter { $0.command == "sleep 1002" }.map(\.pid)
            #expect(a.count == 1 && b.count == 1, "\(c) sees both containers' entrypoints: \(ps)")
            #expect(!a.contains(1) && !b.contains(1), "app processes are not PID 1: \(ps)")
            pidsSeen[c] = a + b
        }
        #expect(pidsSeen["a"] == pidsSeen["b"], "one PID namespace: the same PIDs from both containers")
        let ns = namespaces(husk, "pid-shared", "a")["pid"]
        #expect(ns != nil && ns == namespaces(husk, "pid-shared", "b")["pid"], "one PID namespace")
    }

    // MARK: - §10 IPC

    @Test("§10 IPC: the pod's containers share one IPC namespace (POSIX queues) and one /dev/shm tmpfs; another pod sees neither")
    func sharedIPC() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start(twoSleepers(name: "ipc", shareProcessNamespace: false))
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let pod = husk.wait("ipc") { $0.stateKind("a") == "running" && $0.stateKind("b") == "running" }
        try #require(pod?.phase == "Running")

        for c in ["a", "b"] {
            let fs = sh(husk, "ipc", c, "awk '$2 == \"/dev/shm\" { print $3 }' /proc/mounts")
            #expect(fs.stdout.trimmed == "tmpfs", "/dev/shm in \(c) is a tmpfs: \(fs.stdout) \(fs.stderr)")
        }
        let write = sh(husk, "ipc", "a", "echo from-a > /dev/shm/marker && touch /dev/mqueue/husk-q")
        #expect(write.status == 0, "write in a: \(write.stderr)")
        let shm = sh(husk, "ipc", "b", "cat /dev/shm/marker")
        #expect(shm.status == 0 && shm.stdout == "from-a\n", "b reads a's /dev/shm file: \(shm.stdout) \(shm.stderr)")
        let mq = sh(husk, "ipc", "b", "ls /dev/mqueue")
        #expect(mq.stdout.split(separator: "\n").contains("husk-q"), "b sees a's POSIX message queue: \(mq.stdout) \(mq.stderr)")
        // And the other way round.
        #expect(sh(husk, "ipc", "b", "echo from-b >> /dev/shm/marker").status == 0)
        #expect(sh(husk, "ipc", "a", "cat /dev/shm/marker").stdout == "from-a\nfrom-b\n")

        // Another pod: its own IPC namespace and /dev/shm.
        let otherScratch = Scratch()
        let other = PodHusk(otherScratch)
        defer { other.cleanup() }
        let r2 = other.start(twoSleepers(name: "ipc-other", shareProcessNamespace: false))
        try #require(r2.status == 0, "husk run -d: \(r2.stderr)")
        try #require(other.wait("ipc-other") { $0.stateKind("a") == "running" }?.phase == "Running")
        #expect(sh(other, "ipc-other", "a", "test -e /dev/shm/marker").status == 1, "another pod sees this pod's /dev/shm")
        #expect(!sh(other, "ipc-other", "a", "ls /dev/mqueue").stdout.contains("husk-q"), "another pod sees this pod's queue")
        #expect(namespaces(other, "ipc-other", "a")["ipc"] != namespaces(husk, "ipc", "a")["ipc"])
    }

    // MARK: - §10 emptyDir

    @Test("§10 emptyDir: an init container's file is read by the app at another mountPath; medium Memory is a tmpfs; readOnly refuses writes; mode 0777")
    func emptyDirSharing() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: volumes
            spec:
              initContainers:
              - name: init
                image: busybox:1.36
                command: ["sh", "-c", "echo from-init > /work/seed && echo in-memory > /mem/file"]
                volumeMounts:
                - {name: data, mountPath: /work}
                - {name: mem, mountPath: /mem}
              containers:
              - name: app
                image: busybox:1.36
                command: ["sleep", "1000"]
                volumeMounts:
                - {name: data, mountPath: /data}
                - {name: mem, mountPath: /scratch/mem}
                - {name: data, mountPath: /ro, readOnly: true}
              volumes:
              - name: data
                emptyDir: {}
              - name: mem
                emptyDir:
                  medium: Memory
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let uid = r.stdout.trimmed
        let pod = husk.wait("volumes") { $0.stateKind("app") == "running" }
        try #require(pod?.phase == "Running", "pod: \(String(describing: pod?.status))")
        #expect(pod?.exitCode("init") == 0)

        let seed = sh(husk, "volumes", "app", "cat /data/seed")
        #expect(seed.status == 0 && seed.stdout == "from-init\n", "the app reads the init container's file: \(seed.stdout) \(seed.stderr)")
        let hostDir = husk.root + "/pods/\(uid)/volumes/kubernetes.io~empty-dir/data"
        #expect(readText(hostDir + "/seed") == "from-init\n", "the emptyDir is \(hostDir) on the host")
        let mode = (try? FileManager.default.attributesOfItem(atPath: hostDir))?[.posixPermissions] as? Int
        #expect(mode == 0o777, "emptyDir mode: \(String(describing: mode.map { String($0, radix: 8) }))")

        // medium: Memory is a tmpfs (also the init container's content is there).
        let mounts = sh(husk, "volumes", "app", "cat /proc/mounts").stdout
        let fsType = { (target: String) -> String? in mountEntry(mounts, target)?.fsType }
        #expect(fsType("/scratch/mem") == "tmpfs", "medium Memory: \(mounts)")
        #expect(fsType("/data") != nil && fsType("/data") != "tmpfs", "a disk emptyDir is not a tmpfs: \(mounts)")
        #expect(sh(husk, "volumes", "app", "cat /scratch/mem/file").stdout == "in-memory\n")

        // readOnly: readable, not writable.
        #expect(sh(husk, "volumes", "app", "cat /ro/seed").stdout == "from-init\n")
        #expect(mountEntry(mounts, "/ro")?.options.contains("ro") == true, "/ro is mounted ro: \(mounts)")
        let write = sh(husk, "volumes", "app", "echo x > /ro/new")
        #expect(write.status != 0, "writing a file under a readOnly mount must fail")
        #expect(sh(husk, "volumes", "app", "echo x >> /ro/seed").status != 0, "appending under a readOnly mount must fail")
        #expect(!FileManager.default.fileExists(atPath: hostDir + "/new"))
        #expect(readText(hostDir + "/seed") == "from-init\n")
        // The same volume stays writable at its read-write mount.
        #expect(sh(husk, "volumes", "app", "echo y > /data/rw").status == 0)
        #expect(readText(hostDir + "/rw") == "y\n")
    }

    @Test("§10 emptyDir survives container restarts (restartPolicy Always); each restart is a new container")
    func emptyDirRestarts() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch, extra: ["--backoff-scale", "0.05"])
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: crashy
            spec:
              restartPolicy: Always
              containers:
              - name: app
                image: busybox:1.36
                command: ["sh", "-c", "if [ -e /tmp/seen ]; then echo rootfs-kept >> /data/log; fi; touch /tmp/seen; echo start >> /data/log; exit 1"]
                volumeMounts:
                - {name: data, mountPath: /data}
              volumes:
              - name: data
                emptyDir: {}
            """)
        // The container exits 1 at once: -d may report it as failed or waiting; the pod goes on.
        let uid = r.stdout.trimmed
        try #require(uid.count == 36, "husk run -d: \(r.stdout) \(r.stderr)")
        // restartCount is the attempt of the newest instance: at 3, the third instance (attempt
        // 2) has run for sure, since the fourth exists.
        let pod = husk.wait("crashy", timeout: 40) { ($0.container("app")?["restartCount"] as? Int ?? 0) >= 3 }
        let restarts = pod?.container("app")?["restartCount"] as? Int ?? 0
        try #require(restarts >= 3, "restartCount: \(String(describing: pod?.container("app")))")
        let log = readText(husk.root + "/pods/\(uid)/volumes/kubernetes.io~empty-dir/data/log")
        let lines = log.split(separator: "\n")
        #expect(lines.count >= 3, "one line per start, kept across restarts: \(log)")
        #expect(lines.allSatisfy { $0 == "start" }, "each restart is a new container (fresh rootfs): \(log)")
        #expect(pod?.phase == "Running")
    }

    // MARK: - §10 /etc/hosts with a pod IP

    @Test("§10 /etc/hosts exactly as kubelet writes it, with the pod IP from a CNI bridge (plain, subdomain + hostAliases, dotted pod name); the address is released by husk rm")
    func etcHostsWithPodIP() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/bridge"),
              FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/host-local")
        else {
            print("skipped etcHostsWithPodIP: needs the CNI plugins bridge and host-local in /usr/lib/cni (containernetworking-plugins)")
            return
        }
        let suffix = String((0..<6).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
        let bridge = "huskt" + suffix
        let network = "husk-test-" + suffix
        let subnet = Int.random(in: 1...254)
        let cniScratch = Scratch()
        let allocations = "/var/lib/cni/networks/" + network
        // The bridge plugin with isGateway turns on IPv4 forwarding on the host: put it back.
        let ipForward = readText("/proc/sys/net/ipv4/ip_forward")
        defer {
            if !ipForward.isEmpty { try? ipForward.write(toFile: "/proc/sys/net/ipv4/ip_forward", atomically: false, encoding: .utf8) }
            run(["/sbin/ip", "link", "del", bridge])
            try? FileManager.default.removeItem(atPath: allocations)
            cniScratch.cleanup()
        }
        let confDir = cniScratch.path + "/net.d"
        try FileManager.default.createDirectory(atPath: confDir, withIntermediateDirectories: true)
        try """
            {"cniVersion": "0.4.0", "name": "\(network)", "plugins": [
              {"type": "bridge", "bridge": "\(bridge)", "isGateway": true, "ipMasq": false,
               "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.250.\(subnet).0/24"}]]}}]}
            """.write(toFile: confDir + "/10-test.conflist", atomically: true, encoding: .utf8)

        let header = """
            # Kubernetes-managed hosts file.
            127.0.0.1\tlocalhost
            ::1\tlocalhost ip6-localhost ip6-loopback
            fe00::0\tip6-localnet
            fe00::0\tip6-mcastprefix
            fe00::1\tip6-allnodes
            fe00::2\tip6-allrouters

            """
        let cases: [(name: String, spec: String, expected: (String) -> String)] = [
            ("plain", "", { ip in header + "\(ip)\tplain\n" }),
            ("fqdn", "  subdomain: sub\n  hostAliases:\n  - ip: 10.1.2.3\n    hostnames: [foo.local, bar.local]\n  - ip: \"fd00::1\"\n    hostnames: [v6.local]\n", { ip in
                header + "\(ip)\tfqdn.sub.default.svc.cluster.local\tfqdn\n"
                    + "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\nfd00::1\tv6.local\n"
            }),
            // The hostname is the whole (≤ 63 character) pod name, dots included (kubelet
            // GeneratePodHostNameAndDomain, managedHostsFileContent).
            ("dotted.pod", "", { ip in header + "\(ip)\tdotted.pod\n" }),
        ]
        var hung = false
        for c in cases {
            // A hanging plugin hangs every pod the same way: one is enough to show it.
            if hung { break }
            let scratch = Scratch("etcHosts" + c.name)
            let husk = PodHusk(scratch, extra: ["--cni-conf-dir", confDir])
            let watchdog = CNIWatchdog(scratch: scratch.path)
            defer {
                husk.cleanup()
                let killed = watchdog.stop()
                for k in killed { Issue.record("pod \(c.name): \(k)") }
                if !killed.isEmpty {
                    hung = true
                    if c.name != cases.last?.name { Issue.record("pods after \(c.name) skipped: the CNI plugins hang") }
                }
            }
            let r = husk.start("""
                apiVersion: v1
                kind: Pod
                metadata:
                  name: \(c.name)
                spec:
                \(c.spec)  containers:
                  - name: app
                    image: busybox:1.36
                    command: ["sleep", "1000"]
                """)
            #expect(r.status == 0, "husk run -d \(c.name): \(r.stderr)")
            let uid = r.stdout.trimmed
            guard let pod = husk.wait(c.name, until: { $0.stateKind("app") == "running" }), pod.phase == "Running" else {
                Issue.record("pod \(c.name) did not run: \(String(describing: husk.inspect(c.name)?.status))")
                continue
            }
            let ip = pod.status["podIP"] as? String ?? ""
            #expect(ip.hasPrefix("10.250.\(subnet).") && ip.split(separator: ".").count == 4, "status.podIP \(ip) in 10.250.\(subnet).0/24")
            let podIPs = (pod.status["podIPs"] as? [[String: Any]])?.compactMap { $0["ip"] as? String }
            #expect(podIPs == [ip], "status.podIPs: \(String(describing: podIPs))")
            let eth0 = sh(husk, c.name, "app", "ip -4 addr show eth0")
            #expect(eth0.stdout.contains("inet \(ip)/24"), "eth0 in the pod has the pod IP: \(eth0.stdout) \(eth0.stderr)")

            let hosts = sh(husk, c.name, "app", "cat /etc/hosts")
            #expect(hosts.status == 0, "\(hosts.stderr)")
            #expect(hosts.stdout == c.expected(ip), "/etc/hosts of pod \(c.name)")
            let file = husk.root + "/pods/\(uid)/etc-hosts"
            #expect(readText(file) == c.expected(ip), "\(file)")
            let mode = (try? FileManager.default.attributesOfItem(atPath: file))?[.posixPermissions] as? Int
            #expect(mode == 0o644, "etc-hosts mode \(String(describing: mode.map { String($0, radix: 8) }))")

            // host-local keeps one file per allocated address; husk rm gives it back.
            let allocation = allocations + "/" + ip
            #expect(FileManager.default.fileExists(atPath: allocation), "\(allocation) while the pod runs")
            let rm = husk.run(["rm", "--force", c.name], timeout: 90)
            #expect(rm.status == 0, "husk rm --force: \(rm.stderr)")
            #expect(!ip.isEmpty && !FileManager.default.fileExists(atPath: allocation), "\(allocation) is released by husk rm")
        }
    }

    // MARK: - §10 hostname

    @Test("§10 hostname: spec.hostname wins over the pod name; a 70 character pod name is cut to 63 with trailing '-' and '.' removed")
    func hostnames() throws {
        let dashCut = String(repeating: "a", count: 40) + "." + String(repeating: "b", count: 20) + "--" + String(repeating: "c", count: 7)
        let dotCut = String(repeating: "d", count: 62) + "." + String(repeating: "e", count: 7)
        #expect(dashCut.count == 70 && dotCut.count == 70)
        let cases: [(name: String, hostname: String?, expected: String)] = [
            ("hostname-wins", "custom-host", "custom-host"),
            (dashCut, nil, String(repeating: "a", count: 40) + "." + String(repeating: "b", count: 20)),
            (dotCut, nil, String(repeating: "d", count: 62)),
        ]
        for c in cases {
            let scratch = Scratch("hostnames")
            let husk = PodHusk(scratch)
            defer { husk.cleanup() }
            let r = husk.start("""
                apiVersion: v1
                kind: Pod
                metadata:
                  name: \(c.name)
                spec:
                \(c.hostname.map { "  hostname: \($0)\n" } ?? "")  containers:
                  - name: app
                    image: busybox:1.36
                    command: ["sleep", "1000"]
                """)
            #expect(r.status == 0, "husk run -d \(c.name): \(r.stderr)")
            guard husk.wait(c.name, until: { $0.stateKind("app") == "running" })?.phase == "Running" else {
                Issue.record("pod \(c.name) did not run")
                continue
            }
            let h = sh(husk, c.name, "app", "hostname; cat /etc/hostname")
            #expect(h.stdout == c.expected + "\n" + c.expected + "\n", "hostname and /etc/hostname of pod \(c.name) (\(c.name.count) chars)")
            let meta = husk.inspect(c.name)?["metadata"] as? [String: Any]
            #expect(meta?["name"] as? String == c.name, "the pod keeps its full name")
        }
    }

    // MARK: - §12 CRI logs

    @Test("§12 CRI log files: `<RFC 3339 ns> <stream> <F|P> <text>` records, a last unterminated line is P, long lines are P records ended by F; husk logs joins them")
    func criLogs() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let started = Date()
        let r = husk.start(#"""
            apiVersion: v1
            kind: Pod
            metadata:
              name: logs
            spec:
              restartPolicy: Never
              containers:
              - name: out
                image: busybox:1.36
                command: ["sh", "-c", 'printf "one\ntwo\npartial"']
              - name: err
                image: busybox:1.36
                command: ["sh", "-c", "echo err1 >&2; echo err2 >&2"]
              - name: long
                image: busybox:1.36
                command: ["sh", "-c", "seq 1 9000 | tr -d '\\n'; echo; head -c 16384 /dev/zero | tr '\\0' y; echo; echo end"]
            """#)
        let uid = r.stdout.trimmed
        try #require(uid.count == 36, "husk run -d: \(r.stdout) \(r.stderr)")
        let pod = husk.wait("logs") { p in ["out", "err", "long"].allSatisfy { p.stateKind($0) == "terminated" } }
        try #require(pod?.phase == "Succeeded", "pod: \(String(describing: pod?.status))")

        let dir = husk.logDir + "/default_logs_\(uid)"
        func records(_ container: String) -> [(ts: String, stream: String, tag: String, content: String)] {
            let path = dir + "/\(container)/0.log"
            guard let data = FileManager.default.contents(atPath: path) else {
                Issue.record("no log file \(path)")
                return []
            }
            let text = String(decoding: data, as: UTF8.self)
            #expect(text.hasSuffix("\n"), "\(path) ends with a complete record")
            return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
                let f = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
                return (f.count > 0 ? f[0] : "", f.count > 1 ? f[1] : "", f.count > 2 ? f[2] : "", f.count > 3 ? f[3] : "")
            }
        }
        let out = records("out")
        #expect(out.map { "\($0.stream) \($0.tag) \($0.content)" } == ["stdout F one", "stdout F two", "stdout P partial"])
        let err = records("err")
        #expect(err.map { "\($0.stream) \($0.tag) \($0.content)" } == ["stderr F err1", "stderr F err2"])

        let long = records("long")
        let digits = (1...9000).map(String.init).joined()
        let ys = String(repeating: "y", count: 16384)
        // The 34893-byte line: P records of at most 16 KiB, then an F; joined, the line.
        if let f = long.firstIndex(where: { $0.tag == "F" }) {
            let parts = long[...f]
            #expect(parts.count >= 2 && parts.dropLast().allSatisfy { $0.tag == "P" }, "a long line is P records ended by F: \(parts.map { "\($0.tag) \($0.content.count)" })")
            #expect(parts.allSatisfy { $0.content.utf8.count <= 16384 }, "records of at most 16 KiB: \(parts.map { $0.content.count })")
            #expect(parts.map(\.content).joined() == digits, "the parts join to the line")
            // A line of exactly 16 KiB is not longer than the maximum: one F record.
            let rest = long[long.index(after: f)...].map { "\($0.stream) \($0.tag) \($0.content.count)" }
            #expect(rest == ["stdout F 16384", "stdout F 3"], "after the long line: a 16384-byte line as one F record, then `end`: \(rest)")
        } else {
            Issue.record("no F record in the log of container long: \(long.map { "\($0.tag) \($0.content.count)" })")
        }

        // Timestamps: RFC 3339 with nanoseconds, during the test.
        let rfc3339Nano = #/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}(Z|[+-]\d{2}:\d{2})$/#
        for rec in out + err + long {
            #expect(rec.ts.wholeMatch(of: rfc3339Nano) != nil, "timestamp \(rec.ts)")
            if let t = eventTime(["eventTime": rec.ts]) {
                #expect(t >= started.timeIntervalSince1970 - 5 && t <= Date().timeIntervalSince1970 + 5, "timestamp \(rec.ts) is not now")
            } else {
                Issue.record("timestamp \(rec.ts) does not parse as RFC 3339")
            }
        }

        let logsOut = husk("logs", "logs", "-c", "out")
        #expect(logsOut.status == 0, "\(logsOut.stderr)")
        #expect(logsOut.stdout == "one\ntwo\npartial")
        let logsErr = husk("logs", "logs", "-c", "err")
        #expect(logsErr.status == 0)
        #expect(logsErr.stdout + logsErr.stderr == "err1\nerr2\n", "stdout \(logsErr.stdout) stderr \(logsErr.stderr)")
        let logsLong = husk("logs", "logs", "-c", "long")
        #expect(logsLong.stdout == digits + "\n" + ys + "\nend\n", "husk logs reassembles the long lines (\(logsLong.stdout.count) bytes)")
    }

    // MARK: - §13 validation

    @Test("§13 invalid manifests are refused with the field path and line, and nothing is created")
    func invalidManifests() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let cgroupsBefore = huskCgroups()
        // `#<` marks the line the problem is reported at; `lines` are the accepted offsets from
        // it (a mapping value starts on the line after its key).
        struct Case {
            var what: String
            var path: String?
            var yaml: String
            var lines: [Int] = [0]
        }
        func pod(_ containers: String, metadata: String = "  name: bad\n", spec: String = "") -> String {
            "apiVersion: v1\nkind: Pod\nmetadata:\n" + metadata + "spec:\n" + spec + "  containers:\n" + containers
        }
        let app = "  - name: app\n    image: busybox:1.36\n"
        let cases: [Case] = [
            Case(what: "pod name not a DNS-1123 subdomain", path: "metadata.name", yaml: pod(app, metadata: "  name: Bad_Name  #<\n")),
            Case(what: "pod name missing", path: "metadata.name", yaml: pod(app, metadata: "  labels: {a: b}  #<\n"), lines: [-1, 0]),
            Case(what: "namespace not a DNS-1123 label", path: "metadata.namespace", yaml: pod(app, metadata: "  name: bad\n  namespace: Bad_NS  #<\n")),
            Case(what: "container name not a DNS-1123 label", path: "spec.containers[0].name",
                 yaml: pod("  - name: Web_1  #<\n    image: busybox:1.36\n")),
            Case(what: "container name of 64 characters", path: "spec.containers[0].name",
                 yaml: pod("  - name: \(String(repeating: "x", count: 64))  #<\n    image: busybox:1.36\n")),
            Case(what: "the same name for an init and an app container (Kubernetes reports the init container)",
                 path: "spec.initContainers[0].name",
                 yaml: pod(app, spec: "  initContainers:\n  - name: app  #<\n    image: busybox:1.36\n")),
            Case(what: "two app containers with one name", path: "spec.containers[1].name",
                 yaml: pod(app + "  - name: app  #<\n    image: busybox:1.36\n")),
            Case(what: "image missing", path: "spec.containers[1].image",
                 yaml: pod(app + "  - name: second  #<\n    command: [sh]\n")),
            Case(what: "livenessProbe on a regular init container", path: "spec.initContainers[0].livenessProbe",
                 yaml: pod(app, spec: "  initContainers:\n  - name: init\n    image: busybox:1.36\n    livenessProbe:  #<\n      exec: {command: [echo]}\n"),
                 lines: [0, 1]),
            Case(what: "readinessProbe on a regular init container", path: "spec.initContainers[0].readinessProbe",
                 yaml: pod(app, spec: "  initContainers:\n  - name: init\n    image: busybox:1.36\n    readinessProbe:  #<\n      exec: {command: [echo]}\n"),
                 lines: [0, 1]),
            Case(what: "lifecycle on a regular init container", path: "spec.initContainers[0].lifecycle",
                 yaml: pod(app, spec: "  initContainers:\n  - name: init\n    image: busybox:1.36\n    lifecycle:  #<\n      preStop: {exec: {command: [echo]}}\n"),
                 lines: [0, 1]),
            Case(what: "restartPolicy on an app container", path: "spec.containers[0].restartPolicy",
                 yaml: pod("  - name: app\n    image: busybox:1.36\n    restartPolicy: Always  #<\n")),
            Case(what: "invalid pod restartPolicy", path: "spec.restartPolicy", yaml: pod(app, spec: "  restartPolicy: Sometimes  #<\n")),
            Case(what: "containerPort out of range", path: "spec.containers[0].ports[0].containerPort",
                 yaml: pod(app + "    ports:\n    - containerPort: 70000  #<\n")),
            Case(what: "containerPort not a number", path: "spec.containers[0].ports[0].containerPort",
                 yaml: pod(app + "    ports:\n    - containerPort: eighty  #<\n")),
            Case(what: "port name not an IANA service name", path: "spec.containers[0].ports[0].name",
                 yaml: pod(app + "    ports:\n    - containerPort: 80\n      name: http--alt  #<\n")),
            Case(what: "relative mountPath", path: "spec.containers[0].volumeMounts[0].mountPath",
                 yaml: pod(app + "    volumeMounts:\n    - name: data\n      mountPath: data  #<\n", spec: "  volumes:\n  - name: data\n    emptyDir: {}\n")),
            Case(what: "volumeMount of an unknown volume", path: "spec.containers[0].volumeMounts[0].name",
                 yaml: pod(app + "    volumeMounts:\n    - name: nope  #<\n      mountPath: /data\n")),
            Case(what: "subPath with ..", path: "spec.containers[0].volumeMounts[0].subPath",
                 yaml: pod(app + "    volumeMounts:\n    - name: data\n      mountPath: /data\n      subPath: ../etc  #<\n",
                           spec: "  volumes:\n  - name: data\n    emptyDir: {}\n")),
            Case(what: "Bidirectional propagation in an unprivileged container", path: "spec.containers[0].volumeMounts[0].mountPropagation",
                 yaml: pod(app + "    volumeMounts:\n    - name: data\n      mountPath: /data\n      mountPropagation: Bidirectional  #<\n",
                           spec: "  volumes:\n  - name: data\n    emptyDir: {}\n")),
            Case(what: "two volumes with one name", path: "spec.volumes[1].name",
                 yaml: pod(app, spec: "  volumes:\n  - name: data\n    emptyDir: {}\n  - name: data  #<\n    emptyDir: {}\n")),
            Case(what: "emptyDir medium not \"\" or Memory", path: "spec.volumes[0].emptyDir.medium",
                 yaml: pod(app, spec: "  volumes:\n  - name: data\n    emptyDir:\n      medium: Disk  #<\n")),
            Case(what: "negative runAsUser", path: "spec.containers[0].securityContext.runAsUser",
                 yaml: pod(app + "    securityContext:\n      runAsUser: -1  #<\n")),
            Case(what: "environment variable name with '='", path: "spec.containers[0].env[0].name",
                 yaml: pod(app + "    env:\n    - name: A=B  #<\n      value: x\n")),
            Case(what: "spec.hostname not a DNS-1123 label", path: "spec.hostname", yaml: pod(app, spec: "  hostname: Not_A_Label  #<\n")),
            Case(what: "spec.subdomain not a DNS-1123 label", path: "spec.subdomain", yaml: pod(app, spec: "  subdomain: sub.domain  #<\n")),
            Case(what: "hostAliases entry without a valid IP", path: "spec.hostAliases[0].ip",
                 yaml: pod(app, spec: "  hostAliases:\n  - ip: not-an-ip  #<\n    hostnames: [x]\n")),
            Case(what: "no containers", path: "spec.containers", yaml: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers: []  #<\n"),
            Case(what: "wrong kind", path: "kind", yaml: "apiVersion: v1\nkind: Deployment  #<\nmetadata:\n  name: bad\nspec:\n  containers:\n" + app),
            Case(what: "wrong apiVersion", path: "apiVersion", yaml: "apiVersion: apps/v1  #<\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n" + app),
            Case(what: "YAML syntax error", path: nil,
                 yaml: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: app\n    image: [busybox  #<\n", lines: [0, 1]),
            Case(what: "JSON manifest with containerPort 0", path: "spec.containers[0].ports[0].containerPort",
                 yaml: #"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"}, "spec": {"containers": [{"name": "app", "image": "busybox:1.36", "ports": [{"containerPort": 0}]}]}}  "#),
        ]
        #expect(cases.count >= 15)
        for (i, c) in cases.enumerated() {
            var text = c.yaml
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            let marker = (lines.firstIndex { $0.hasSuffix("#<") }).map { $0 + 1 } ?? 1  // JSON: one line
            text = text.replacingOccurrences(of: "  #<", with: "")
            let r = husk.start(text, name: "bad-\(i).yaml")
            #expect(r.status != 0, "\(c.what): husk run -d exited 0")
            #expect(r.stdout.isEmpty, "\(c.what): printed \(r.stdout)")
            let expectedLines = c.lines.map { marker + $0 }
            let problem = r.stderr.split(separator: "\n").first { line in
                (c.path.map { line.contains($0 + ":") } ?? true) && line.contains("(line ")
            }
            if let problem {
                let n = problem.firstMatch(of: #/\(line (\d+)\)/#).flatMap { Int($0.1) }
                #expect(n.map { expectedLines.contains($0) } == true, "\(c.what): line \(String(describing: n)), expected one of \(expectedLines): \(problem)")
            } else {
                Issue.record("\(c.what): stderr does not name \(c.path ?? "a line") with a line number: \(r.stderr)")
            }
            expectNothingCreated(husk, cgroupsBefore: cgroupsBefore, c.what)
        }
    }

    // MARK: - husk rm

    @Test("husk rm refuses a running pod without --force and changes nothing; after husk rm nothing of the pod remains (mounts, cgroups, processes, supervisor, directories)")
    func removeLeavesNothing() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        #expect(mountLines(mentioning: scratch.path).isEmpty)
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: leftovers
            spec:
              initContainers:
              - name: init
                image: busybox:1.36
                command: ["sh", "-c", "echo hi > /data/hi; echo init-done"]
                volumeMounts:
                - {name: data, mountPath: /data}
              containers:
              - name: a
                image: busybox:1.36
                command: ["sh", "-c", "echo a; sleep 1000 & sleep 1001"]
                volumeMounts:
                - {name: data, mountPath: /data}
                - {name: mem, mountPath: /mem}
              - name: b
                image: busybox:1.36
                command: ["sleep", "1002"]
              volumes:
              - name: data
                emptyDir: {}
              - name: mem
                emptyDir: {medium: Memory}
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let uid = r.stdout.trimmed
        let pod = husk.wait("leftovers") { $0.stateKind("a") == "running" && $0.stateKind("b") == "running" }
        try #require(pod?.phase == "Running")

        let stateDir = husk.state + "/pods/\(uid)"
        let dataDir = husk.root + "/pods/\(uid)"
        let logDir = husk.logDir + "/default_leftovers_\(uid)"
        let nameFile = husk.state + "/names/default_leftovers"
        let cgroup = Host.cgroup2.map { $0.path + "/husk/\(uid)" }
        let supervisor = supervisorPid(husk, uid)
        // What the running pod has, so that the checks after rm can fail.
        let mounts = mountLines(mentioning: scratch.path)
        let pids = podProcesses(uid)
        #expect(!mounts.isEmpty, "the pod's /dev/shm and Memory emptyDir are mounted on the host")
        #expect(pids.count >= 4, "pause, a (two processes) and b run in the pod's cgroup: \(pids)")
        #expect(supervisor.map(processExists) == true, "supervisor \(String(describing: supervisor))")
        if let cgroup { #expect(FileManager.default.fileExists(atPath: cgroup)) }
        for dir in [stateDir, dataDir, logDir, nameFile] { #expect(FileManager.default.fileExists(atPath: dir), "\(dir)") }

        // rm without --force refuses a running pod and changes nothing.
        let treeBefore = tree([stateDir, dataDir, logDir])
        let eventsBefore = husk.events("leftovers").count
        let refused = husk("rm", "leftovers")
        #expect(refused.status != 0, "husk rm of a running pod without --force must fail")
        #expect(refused.stderr.contains("running"), "\(refused.stderr)")
        let still = husk.inspect("leftovers")
        #expect(still?.phase == "Running" && still?.stateKind("a") == "running" && still?.stateKind("b") == "running")
        #expect(podProcesses(uid) == pids, "the pod's processes are unchanged")
        #expect(supervisor.map(processExists) == true)
        #expect(mountLines(mentioning: scratch.path) == mounts)
        #expect(tree([stateDir, dataDir, logDir]) == treeBefore, "files of the pod changed")
        #expect(FileManager.default.fileExists(atPath: nameFile))
        #expect(husk.events("leftovers").count == eventsBefore)
        #expect(sh(husk, "leftovers", "a", "cat /data/hi").stdout == "hi\n", "the pod still works")

        let stop = husk("stop", "leftovers", "--grace", "1")
        #expect(stop.status == 0, "husk stop: \(stop.stderr)")
        let rm = husk("rm", "leftovers")
        #expect(rm.status == 0, "husk rm: \(rm.stderr)")
        #expect(rm.stdout.trimmed == uid)

        #expect(mountLines(mentioning: scratch.path).isEmpty, "mounts left: \(mountLines(mentioning: scratch.path))")
        if let cgroup { #expect(!FileManager.default.fileExists(atPath: cgroup), "\(cgroup) left") }
        #expect(podProcesses(uid).isEmpty, "processes left in the pod's cgroups: \(podProcesses(uid))")
        for pid in pids { #expect(!processExists(pid), "process \(pid) of the pod still runs") }
        #expect(supervisor.map(processExists) == false, "the supervisor \(String(describing: supervisor)) still runs")
        for dir in [stateDir, dataDir, logDir, nameFile] { #expect(!FileManager.default.fileExists(atPath: dir), "\(dir) left") }
        #expect(husk("inspect", "leftovers").status != 0)
        #expect(!husk("pods").stdout.contains("leftovers"))
    }

    // MARK: - security: pause and the control socket

    @Test("security (§11, security.md Husk-specific): in a shared PID namespace pause shows containers nothing (empty root, no environment, exe not writable, uid 65535, no capabilities)")
    func pauseRevealsNothing() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: pause-peek
            spec:
              shareProcessNamespace: true
              containers:
              - name: plain
                image: busybox:1.36
                command: ["sleep", "1000"]
              - name: ptrace
                image: busybox:1.36
                command: ["sleep", "1001"]
                securityContext:
                  capabilities:
                    add: ["SYS_PTRACE"]
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let uid = r.stdout.trimmed
        let pod = husk.wait("pause-peek") { $0.stateKind("plain") == "running" && $0.stateKind("ptrace") == "running" }
        try #require(pod?.phase == "Running")
        try #require(sh(husk, "pause-peek", "plain", "cat /proc/1/cmdline").stdout == "/pause\0", "PID 1 is pause")

        let status = sh(husk, "pause-peek", "plain", "cat /proc/1/status").stdout
        let field = { (name: String) -> [String] in
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }?.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().map(String.init) ?? []
        }
        #expect(field("Uid") == ["65535", "65535", "65535", "65535"], "pause's uids: \(field("Uid"))")
        #expect(field("Gid") == ["65535", "65535", "65535", "65535"], "pause's gids: \(field("Gid"))")
        for cap in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
            #expect(field(cap) == ["0000000000000000"], "pause's \(cap): \(field(cap))")
        }

        let huskBinary = huskPath
        let huskHash = sha256(huskBinary)
        for c in ["plain", "ptrace"] {
            // The root: nothing of the host or of any container.
            let root = sh(husk, "pause-peek", c, "ls -A /proc/1/root/ /proc/1/root/.. /proc/1/root/../.. /proc/1/cwd/..")
            #expect(root.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("/proc/1/") || $0.isEmpty },
                    "\(c): pause's root shows files: \(root.stdout)")
            for probe in ["bin", "etc", "tmp", "proc", "husk", "pods"] {
                #expect(sh(husk, "pause-peek", c, "test -e /proc/1/root/\(probe)").status != 0, "\(c): /proc/1/root/\(probe) exists")
            }
            // The environment: unreadable, or empty.
            let env = sh(husk, "pause-peek", c, "cat /proc/1/environ")
            #expect(env.status != 0 || env.stdout.isEmpty, "\(c): pause's environment: \(env.stdout)")
            // The executable: not the host's husk binary, and not writable.
            let exe = sh(husk, "pause-peek", c, "readlink /proc/1/exe")
            #expect(!exe.stdout.contains("husk") || exe.stdout.hasPrefix("/memfd:"), "\(c): /proc/1/exe is \(exe.stdout)")
            #expect(!exe.stdout.contains(scratch.path) && !exe.stdout.contains("/.build"), "\(c): /proc/1/exe is \(exe.stdout)")
            let write = sh(husk, "pause-peek", c, "echo overwritten >> /proc/1/exe")
            #expect(write.status != 0, "\(c): /proc/1/exe could be opened for writing")
            let trunc = sh(husk, "pause-peek", c, ": > /proc/1/exe")
            #expect(trunc.status != 0, "\(c): /proc/1/exe could be truncated")
        }
        #expect(sha256(huskBinary) == huskHash, "the husk binary changed")
        #expect(sh(husk, "pause-peek", "plain", "cat /proc/1/cmdline").stdout == "/pause\0", "pause still runs")

        // The supervisor's control socket is not in any container's view.
        let socket = husk.state + "/pods/\(uid)/control.sock"
        #expect(FileManager.default.fileExists(atPath: socket), "\(socket) on the host")
        for c in ["plain", "ptrace"] {
            #expect(sh(husk, "pause-peek", c, "test -e '\(socket)'").status == 1, "\(c) sees \(socket)")
            #expect(sh(husk, "pause-peek", c, "test -e '\(husk.state)'").status == 1, "\(c) sees \(husk.state)")
            #expect(!sh(husk, "pause-peek", c, "cat /proc/net/unix").stdout.contains(uid), "\(c): a socket of the pod's supervisor is in the pod's network namespace")
        }
    }

    @Test("security.md: the control socket is a path socket in a 0700 root directory, out of reach of a hostNetwork container")
    func controlSocketHidden() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: hostnet
            spec:
              hostNetwork: true
              containers:
              - name: app
                image: busybox:1.36
                command: ["sleep", "1000"]
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let uid = r.stdout.trimmed
        try #require(husk.wait("hostnet") { $0.stateKind("app") == "running" }?.phase == "Running")
        let dir = husk.state + "/pods/\(uid)"
        let socket = dir + "/control.sock"
        var st = stat()
        #expect(lstat(socket, &st) == 0 && st.st_mode & S_IFMT == S_IFSOCK, "\(socket) is a socket")
        var ds = stat()
        #expect(stat(dir, &ds) == 0 && ds.st_mode & 0o7777 == 0o700 && ds.st_uid == 0, "\(dir): mode \(String(ds.st_mode & 0o7777, radix: 8)), uid \(ds.st_uid)")
        #expect(namespaces(husk, "hostnet", "app")["net"] == hostNamespace("net"), "hostNetwork: the host's network namespace")

        // In the host's network namespace the container lists the socket: by path, never abstract.
        let unix = sh(husk, "hostnet", "app", "cat /proc/net/unix").stdout
        let ours = unix.split(separator: "\n").filter { $0.contains(uid) }
        #expect(!ours.isEmpty, "the supervisor's socket is listed in /proc/net/unix: \(ours)")
        for line in ours {
            let path = line.split(separator: " ").last.map(String.init) ?? ""
            #expect(path == socket, "a socket of the pod's supervisor that is not its path socket: \(line)")
        }
        #expect(sh(husk, "hostnet", "app", "test -e '\(socket)'").status == 1, "the container sees \(socket)")
        #expect(sh(husk, "hostnet", "app", "test -e '\(dir)'").status == 1, "the container sees \(dir)")
    }
}

// MARK: - Helpers


/// A pod of two sleeping containers, a (sleep 1001) and b (sleep 1002).
private func twoSleepers(name: String, shareProcessNamespace: Bool) -> String {
    """
    apiVersion: v1
    kind: Pod
    metadata:
      name: \(name)
    spec:
      shareProcessNamespace: \(shareProcessNamespace)
      containers:
      - name: a
        image: busybox:1.36
        command: ["sleep", "1001"]
      - name: b
        image: busybox:1.36
        command: ["sleep", "1002"]
    """
}

/// The namespaces of a process run in the container, e.g. ["net": "net:[4026532342]", ...].
private func namespaces(_ husk: PodHusk, _ pod: String, _ container: String) -> [String: String] {
    let r = sh(husk, pod, container, "for n in net uts ipc mnt pid; do echo $n $(readlink /proc/self/ns/$n); done")
    var out: [String: String] = [:]
    for line in r.stdout.split(separator: "\n") {
        let f = line.split(separator: " ")
        if f.count == 2 { out[String(f[0])] = String(f[1]) }
    }
    return out
}

/// `ps` inside a container: PID and command line of each process.
private func processes(_ husk: PodHusk, _ pod: String, _ container: String) -> [(pid: Int, command: String)] {
    let r = sh(husk, pod, container, "ps")
    return r.stdout.split(separator: "\n").dropFirst().compactMap { line in
        let f = line.split(separator: " ", omittingEmptySubsequences: true)
        guard f.count >= 3, let pid = Int(f[0]) else { return nil }
        return (pid, f[2...].joined(separator: " "))
    }
}

/// The last entry of a /proc/mounts text for `target`.
private func mountEntry(_ mounts: String, _ target: String) -> (fsType: String, options: [String])? {
    var found: (fsType: String, options: [String])? = nil
    for line in mounts.split(separator: "\n") {
        let f: [Substring] = line.split(separator: " ")
        guard f.count > 3, f[1] == target else { continue }
        found = (String(f[2]), f[3].split(separator: ",").map(String.init))
    }
    return found
}

/// Lines of our mountinfo that mention `path`.
private func mountLines(mentioning path: String) -> [String] {
    readText("/proc/self/mountinfo").split(separator: "\n").filter { $0.contains(path) }.map(String.init)
}

/// Every process whose cgroup is the pod's or below it.
private func podProcesses(_ uid: String) -> Set<Int32> {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var out: Set<Int32> = []
    for e in entries {
        guard let pid = Int32(e) else { continue }
        if readText("/proc/\(pid)/cgroup").contains("/husk/\(uid)") { out.insert(pid) }
    }
    return out
}

/// The supervisors' logs of every pod of `husk` (for failure messages).
private func supervisorLogs(_ husk: PodHusk) -> String {
    husk.podUIDs.map { uid in
        let log = readText(husk.state + "/pods/\(uid)/supervisor.log")
        return log.isEmpty ? "" : "\nsupervisor.log of \(uid):\n\(log)"
    }.joined()
}

/// `husk.supervisorPid` of status.json.
private func supervisorPid(_ husk: PodHusk, _ uid: String) -> Int32? {
    guard let data = FileManager.default.contents(atPath: husk.state + "/pods/\(uid)/status.json"),
          let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let h = doc["husk"] as? [String: Any], let pid = h["supervisorPid"] as? Int
    else { return nil }
    return Int32(pid)
}

/// Every file and directory below the roots, with its size.
private func tree(_ roots: [String]) -> [String] {
    var out: [String] = []
    for root in roots {
        guard let e = FileManager.default.enumerator(atPath: root) else { continue }
        while let p = e.nextObject() as? String {
            let full = root + "/" + p
            // Skip the live state the supervisor rewrites by itself.
            if full.hasSuffix("/status.json") { out.append(full); continue }
            let size = (try? FileManager.default.attributesOfItem(atPath: full))?[.size] as? Int ?? -1
            out.append("\(full) \(size)")
        }
    }
    return out.sorted()
}

private func sha256(_ path: String) -> String {
    run(["/usr/bin/sha256sum", path]).stdout
}

/// The pod cgroups under /husk (uid-named directories).
private func huskCgroups() -> Set<String> {
    guard let m = Host.cgroup2 else { return [] }
    let names = (try? FileManager.default.contentsOfDirectory(atPath: m.path + "/husk")) ?? []
    return Set(names.filter { UUID(uuidString: $0) != nil })
}

/// The `husk supervise` processes running: their state directory by pid.
private func supervisors() -> [Int32: String] {
    var out: [Int32: String] = [:]
    for e in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int32(e), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
        let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        if args.count >= 3 && args[1] == "supervise" { out[pid] = args[2] }
    }
    return out
}

/// After a refused manifest: no pod, no name, no data, no logs, no new pod cgroup of ours.
/// (Other suites run pods at the same time: a new cgroup counts only when no other husk's
/// supervisor runs that pod.)
private func expectNothingCreated(_ husk: PodHusk, cgroupsBefore: Set<String>, _ what: String,
                                  sourceLocation: SourceLocation = #_sourceLocation) {
    func empty(_ dir: String) -> Bool { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).isEmpty }
    #expect(empty(husk.state + "/pods"), "\(what): a pod was recorded", sourceLocation: sourceLocation)
    #expect(empty(husk.state + "/names"), "\(what): a name was claimed", sourceLocation: sourceLocation)
    #expect(empty(husk.root + "/pods"), "\(what): pod data was created", sourceLocation: sourceLocation)
    #expect(empty(husk.logDir), "\(what): a log directory was created", sourceLocation: sourceLocation)
    let fresh = huskCgroups().subtracting(cgroupsBefore)
    guard !fresh.isEmpty else { return }
    let sups = supervisors()
    for uid in fresh {
        let owner = sups.values.first { $0.hasSuffix("/" + uid) }
        if let owner, !owner.hasPrefix(husk.scratch.path) { continue }  // another test's pod
        guard let m = Host.cgroup2, FileManager.default.fileExists(atPath: m.path + "/husk/" + uid) else { continue }
        Issue.record("\(what): cgroup /husk/\(uid) appeared (supervisor: \(owner ?? "none"))", sourceLocation: sourceLocation)
    }
}

/// Kills CNI plugins that the supervisors of pods under `scratch` started and that have been
/// running longer than `limit`: a plugin that hangs (e.g. reading its config from a stdin that
/// is never closed) would otherwise hang the test and its cleanup forever. What it had to kill
/// is returned by `stop()` and is a test failure.
private final class CNIWatchdog: @unchecked Sendable {  // `lock` guards the mutable fields
    let scratch: String
    let limit: TimeInterval
    private let lock = NSLock()
    private var running = true
    private var finished = false
    private var seen: [Int32: Date] = [:]
    private var killed: [String] = []

    init(scratch: String, limit: TimeInterval = 10) {
        self.scratch = scratch
        self.limit = limit
        let t = Thread { [self] in loop() }
        t.start()
    }

    private func loop() {
        while lock.withLock({ running }) {
            let ours = Set(supervisors().filter { $0.value.hasPrefix(scratch + "/") }.keys)
            if !ours.isEmpty {
                for e in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                    guard let pid = Int32(e), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                          let close = stat.lastIndex(of: ")") else { continue }
                    let fields = stat[stat.index(after: close)...].split(separator: " ")
                    guard fields.count > 2, let ppid = Int32(fields[1]), ours.contains(ppid) else { continue }
                    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? ""
                    guard exe.hasPrefix("/usr/lib/cni/") || exe.hasPrefix("/opt/cni/") else { continue }
                    let wchan = readText("/proc/\(pid)/wchan")
                    lock.withLock {
                        let first = seen[pid] ?? Date()
                        seen[pid] = first
                        if Date().timeIntervalSince(first) > limit {
                            kill(pid, SIGKILL)
                            seen[pid] = nil
                            killed.append("CNI plugin \(exe) (pid \(pid), child of the supervisor) hung for \(Int(limit)) s (wchan \(wchan)); killed")
                        }
                    }
                }
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        lock.withLock { finished = true }
    }

    /// Stops watching; returns what was killed.
    func stop() -> [String] {
        lock.withLock { running = false }
        while !lock.withLock({ finished }) { Thread.sleep(forTimeInterval: 0.05) }
        return lock.withLock { killed }
    }
}
