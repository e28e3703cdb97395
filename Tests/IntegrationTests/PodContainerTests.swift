import Foundation
import HuskSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Containers as kubelet + containerd + runc set them up, checked from inside real pods:
/// securityContext (ids, runAsNonRoot, capabilities, no_new_privs, seccomp, read-only root),
/// env and command, hostPath / emptyDir / subPath volumes (pod-semantics §10), termination
/// messages (§10), lifecycle hooks (§5, §6), image pull policies (§7, §2 reasons), restarts
/// (§8) and `husk logs` / `exec` / `ps`.
///
/// Where the spec is silent the reference is the Kubernetes / containerd / runc source,
/// named in the test (kuberuntime `verifyRunAsNonRoot`, securitycontext
/// `AddNoNewPrivileges`, hostpath `checkTypeInternal`, containerd `WithProfile`, ...).
///
/// Test function names stay within 22 characters: `Scratch()` names its directory after the
/// function, and `<scratch>/state/pods/<uid>/control.sock` must fit a socket address (107
/// bytes), or the supervisor cannot listen and the pod never starts.
@Suite("Pods: containers (security, env, volumes, hooks, pull, logs)", .enabled(if: Host.canRunPods, Host.podSkipReason))
struct PodContainerTests {
    /// A main process that stays up and ends at once (exit 0) on SIGTERM, so that the final
    /// `husk rm --force` does not wait for the 2 s SIGKILL floor.
    static let idle = #"["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]"#

    /// containerd's default capabilities (oci.WithDefaultCapabilities) as bit numbers.
    static let defaultCapBits = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31]

    // MARK: - securityContext: users and groups

    @Test("securityContext: runAsUser/runAsGroup (container over pod level) and supplementalGroups set the ids of the container and of exec; the primary gid is among the groups (containerd); a non-root process has no effective capabilities")
    func runAsUserGroup() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: ids
            spec:
              securityContext:
                runAsUser: 2000
                runAsGroup: 2500
                supplementalGroups: [4000, 4001]
              containers:
              - name: own
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  runAsUser: 1000
                  runAsGroup: 3000
              - name: podlevel
                image: busybox:1.36
                command: \(Self.idle)
              - name: root
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  runAsUser: 0
                  runAsGroup: 0
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")

        for (c, uid, gid) in [("own", 1000, 3000), ("podlevel", 2000, 2500), ("root", 0, 0)] {
            #expect(husk("exec", "ids", "-c", c, "--", "id", "-u").stdout == "\(uid)\n", "\(c): id -u")
            #expect(husk("exec", "ids", "-c", c, "--", "id", "-g").stdout == "\(gid)\n", "\(c): id -g")
            let groups = Set(husk("exec", "ids", "-c", c, "--", "id", "-G").stdout.split(whereSeparator: \.isWhitespace).map(String.init))
            #expect(groups == ["\(gid)", "4000", "4001"], "\(c): id -G")
            for who in ["1", "self"] {  // the entrypoint, and the exec'd cat
                let st = procStatus(husk, "ids", c, who)
                #expect(st["Uid"] == Array(repeating: "\(uid)", count: 4).joined(separator: "\t"), "\(c) /proc/\(who): Uid \(st["Uid"] ?? "?")")
                #expect(st["Gid"] == Array(repeating: "\(gid)", count: 4).joined(separator: "\t"), "\(c) /proc/\(who): Gid \(st["Gid"] ?? "?")")
                // containerd's WithAdditionalGIDs puts the primary gid among the supplementary
                // groups (ensureAdditionalGids, CVE-2023-25173), then the pod's supplementalGroups.
                let supplementary = Set((st["Groups"] ?? "").split(separator: " ").map(String.init))
                #expect(supplementary == ["\(gid)", "4000", "4001"], "\(c) /proc/\(who): Groups \(st["Groups"] ?? "?")")
                // Bounding set: containerd's defaults; a non-root uid keeps none of them in effect.
                #expect(capMask(st["CapBnd"]) == mask(Self.defaultCapBits), "\(c) /proc/\(who): CapBnd \(st["CapBnd"] ?? "?")")
                let eff = capMask(st["CapEff"])
                #expect(uid == 0 ? eff == mask(Self.defaultCapBits) : eff == 0, "\(c) /proc/\(who): CapEff \(st["CapEff"] ?? "?")")
            }
        }
        // The uid really is in force: a non-root container cannot write the root-owned /etc.
        #expect(sh(husk, "ids", "own", "touch /etc/x").status != 0, "uid 1000 wrote into /etc")
        #expect(sh(husk, "ids", "root", "touch /etc/x").status == 0)
    }

    @Test("§2 securityContext: runAsNonRoot with an image running as root, or with runAsUser 0, is CreateContainerConfigError with kubelet's messages (verifyRunAsNonRoot); with runAsUser 1000 the container runs; run -d exits 2")
    func runAsNonRoot() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: nonroot
            spec:
              securityContext:
                runAsNonRoot: true
              containers:
              - name: image-root
                image: busybox:1.36
                command: \(Self.idle)
              - name: explicit-zero
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  runAsUser: 0
              - name: ok
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  runAsUser: 1000
            """)
        #expect(r.status == 2, "husk run -d with a container stuck on CreateContainerConfigError: \(r.status) \(r.stderr)")
        #expect(r.stderr.contains("CreateContainerConfigError"), "\(r.stderr)")
        let uid = r.stdout.trimmed
        try #require(uid.count == 36, "husk run -d: \(r.stdout) \(r.stderr)")
        let pod = try #require(husk.wait("nonroot") {
            $0.stateKind("ok") == "running" && $0.waitingReason("image-root") == "CreateContainerConfigError"
                && $0.waitingReason("explicit-zero") == "CreateContainerConfigError"
        })
        let podRef = "nonroot_default(\(uid))"
        let expected = [
            "image-root": "container has runAsNonRoot and image will run as root (pod: \"\(podRef)\", container: image-root)",
            "explicit-zero": "container's runAsUser breaks non-root policy (pod: \"\(podRef)\", container: explicit-zero)",
        ]
        for (c, message) in expected {
            #expect(pod.waitingReason(c) == "CreateContainerConfigError", "\(c): \(pod.container(c) ?? [:])")
            #expect(waitingMessage(pod, c) == message, "\(c): kubelet's message")
            #expect(pod.container(c)?["containerID"] == nil, "\(c) was created")
            // kubelet's startContainer: event Failed "Error: <message>" (FailedToCreateContainer).
            let failed = events(husk.events("nonroot"), "Failed", c)
            #expect(failed.contains { $0["message"] as? String == "Error: " + message && $0["type"] as? String == "Warning" }, "\(c): \(failed)")
        }
        #expect(pod.phase == "Pending", "§1: a waiting container keeps the pod Pending")
        #expect(husk("exec", "nonroot", "-c", "ok", "--", "id", "-u").stdout == "1000\n")
    }

    // MARK: - capabilities, privileged, no_new_privs

    @Test("securityContext.capabilities: containerd's default set; drop ALL + add NET_ADMIN is exactly CAP_NET_ADMIN; drop/add single caps; add ALL + drop CHOWN is all but CHOWN; privileged has every capability the runtime holds; inheritable and ambient stay empty")
    func capabilitySets() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: caps
            spec:
              containers:
              - name: plain
                image: busybox:1.36
                command: \(Self.idle)
              - name: netadmin
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  capabilities:
                    drop: ["ALL"]
                    add: ["NET_ADMIN"]
              - name: tweaked
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  capabilities:
                    drop: ["NET_RAW", "CHOWN"]
                    add: ["SYS_TIME"]
              - name: allbut
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  capabilities:
                    add: ["ALL"]
                    drop: ["CHOWN"]
              - name: privileged
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  privileged: true
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        // "All" is what the runtime itself holds (containerd's WithAllCurrentCapabilities): every
        // capability of the kernel on a normal host, fewer where root's bounding set is reduced.
        // The supervisor has this test's capabilities (husk run is started from here).
        let own = readText("/proc/self/status").split(separator: "\n").first { $0.hasPrefix("CapEff:") }
        let all = try #require(capMask(own.map { String($0.dropFirst(7)).trimmed }), "CapEff of this process")
        let lastCap = Int(readText("/proc/sys/kernel/cap_last_cap").trimmed) ?? 40
        #expect(all & ~((UInt64(1) << UInt64(lastCap + 1)) - 1) == 0)
        let expected: [String: UInt64] = [
            "plain": mask(Self.defaultCapBits),
            "netadmin": mask([12]),
            "tweaked": mask(Self.defaultCapBits.filter { $0 != 13 && $0 != 0 } + [25]),
            // containerd's WithCapabilities: add ALL, then drop ALL, then single adds, then single drops.
            "allbut": all & ~mask([0]),
            "privileged": all,
        ]
        for (c, m) in expected {
            for who in ["1", "self"] {
                let st = procStatus(husk, "caps", c, who)
                for set in ["CapEff", "CapPrm", "CapBnd"] {
                    #expect(capMask(st[set]) == m, "\(c) /proc/\(who) \(set): \(st[set] ?? "?"), expected \(String(m, radix: 16))")
                }
                for set in ["CapInh", "CapAmb"] {
                    #expect(capMask(st[set]) == 0, "\(c) /proc/\(who) \(set): \(st[set] ?? "?")")
                }
            }
        }
        // The sets are in force: chown needs CAP_CHOWN, which only plain and privileged keep.
        for (c, may) in [("plain", true), ("netadmin", false), ("tweaked", false), ("allbut", false), ("privileged", true)] {
            let chown = sh(husk, "caps", c, "touch /tmp/f && chown 1:1 /tmp/f")
            #expect((chown.status == 0) == may, "\(c): chown \(may ? "refused" : "allowed"): \(chown.stderr)")
        }
    }

    @Test("securityContext.allowPrivilegeEscalation: false sets no_new_privs (entrypoint and exec); unset, true and privileged leave it off, as kubelet's AddNoNewPrivileges decides")
    func noNewPrivs() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: nnp
            spec:
              containers:
              - name: unset
                image: busybox:1.36
                command: \(Self.idle)
              - name: denied
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  allowPrivilegeEscalation: false
              - name: allowed
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  allowPrivilegeEscalation: true
              - name: privileged
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  privileged: true
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        for (c, value) in [("unset", "0"), ("denied", "1"), ("allowed", "0"), ("privileged", "0")] {
            for who in ["1", "self"] {
                let st = procStatus(husk, "nnp", c, who)
                #expect(st["NoNewPrivs"] == value, "\(c) /proc/\(who): NoNewPrivs \(st["NoNewPrivs"] ?? "?")")
            }
        }
    }

    @Test("securityContext.readOnlyRootFilesystem: writes to / and /tmp fail; emptyDir, /dev/shm and the termination log stay writable")
    func readOnlyRootFs() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: rofs
            spec:
              containers:
              - name: ro
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  readOnlyRootFilesystem: true
                volumeMounts:
                - {name: scratch, mountPath: /scratch}
              - name: rw
                image: busybox:1.36
                command: \(Self.idle)
              volumes:
              - name: scratch
                emptyDir: {}
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        for path in ["/x", "/tmp/x", "/etc/x", "/bin/x"] {
            let w = sh(husk, "rofs", "ro", "echo data > \(path)")
            #expect(w.status != 0, "wrote \(path) on a read-only root")
            #expect(w.stderr.contains("Read-only file system"), "\(path): \(w.stderr)")
            #expect(sh(husk, "rofs", "rw", "echo data > \(path)").status == 0, "\(path) on a writable root")
        }
        #expect(sh(husk, "rofs", "ro", "rm /bin/ls").status != 0, "removed a file of a read-only root")
        #expect(sh(husk, "rofs", "ro", "test -e /bin/ls").status == 0)
        for path in ["/scratch/x", "/dev/shm/x", "/dev/termination-log"] {
            let w = sh(husk, "rofs", "ro", "echo data > \(path) && cat \(path)")
            #expect(w.status == 0 && w.stdout == "data\n", "\(path) must stay writable: \(w.stderr)")
        }
        let mounts = sh(husk, "rofs", "ro", "cat /proc/mounts").stdout
        #expect(mountEntry(mounts, "/")?.options.contains("ro") == true, "/ mounted ro: \(mounts)")
    }

    // MARK: - seccomp

    @Test("seccompProfile: unset is Unconfined (kubelet's SeccompDefault is off); RuntimeDefault at pod level filters (Seccomp: 2) and blocks unshare; Unconfined on the container wins; privileged is never filtered (containerd)")
    func seccompModes() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: seccomp
            spec:
              securityContext:
                seccompProfile:
                  type: RuntimeDefault
              containers:
              - name: podlevel
                image: busybox:1.36
                command: \(Self.idle)
              - name: unconfined
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  seccompProfile:
                    type: Unconfined
              - name: privileged
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  privileged: true
            """, name: "seccomp.yaml")
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let r2 = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: noprofile
            spec:
              containers:
              - name: unset
                image: busybox:1.36
                command: \(Self.idle)
            """, name: "noprofile.yaml")
        try #require(r2.status == 0, "husk run -d: \(r2.stderr)\(supervisorLogs(husk))")

        for (pod, c, mode) in [("seccomp", "podlevel", "2"), ("seccomp", "unconfined", "0"), ("seccomp", "privileged", "0"), ("noprofile", "unset", "0")] {
            for who in ["1", "self"] {
                let st = procStatus(husk, pod, c, who)
                #expect(st["Seccomp"] == mode, "\(c) /proc/\(who): Seccomp \(st["Seccomp"] ?? "?")")
                if mode == "2" { #expect((Int(st["Seccomp_filters"] ?? "") ?? 0) >= 1, "\(c): Seccomp_filters \(st["Seccomp_filters"] ?? "?")") }
            }
        }
        // containerd's profile lets unshare through only with CAP_SYS_ADMIN: a new user
        // namespace works unconfined (where the kernel allows it) and is refused by the filter.
        let free = sh(husk, "seccomp", "unconfined", "unshare -U true")
        let filtered = sh(husk, "seccomp", "podlevel", "unshare -U true")
        if free.status == 0 {
            #expect(filtered.status != 0, "RuntimeDefault let unshare(CLONE_NEWUSER) through")
            #expect(filtered.stderr.contains("Operation not permitted"), "\(filtered.stderr)")
        } else {
            print("seccompModes: unshare -U fails unconfined too (\(free.stderr.trimmed)); the behavioural check is skipped")
        }
    }

    @Test("seccompProfile Localhost: the profile is read from <kubelet root>/seccomp/<localhostProfile> (a private /var/lib in a mount namespace of husk's own) and enforced on the entrypoint and exec")
    func seccompLocalhost() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        // Allow everything but mkdir, which fails with EPERM.
        let profile = #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#
        let r = try startWithSeccompRoot(husk, profiles: ["profiles/no-mkdir.json": profile], """
            apiVersion: v1
            kind: Pod
            metadata:
              name: localhost
            spec:
              containers:
              - name: confined
                image: busybox:1.36
                command: ["sh", "-c", "mkdir /tmp/by-entrypoint; echo mkdir=$?; trap 'exit 0' TERM; sleep 1000 & wait"]
                securityContext:
                  seccompProfile:
                    type: Localhost
                    localhostProfile: profiles/no-mkdir.json
              - name: free
                image: busybox:1.36
                command: \(Self.idle)
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let st = procStatus(husk, "localhost", "confined", "1")
        #expect(st["Seccomp"] == "2", "Seccomp \(st["Seccomp"] ?? "?")")
        #expect(procStatus(husk, "localhost", "free", "1")["Seccomp"] == "0")
        try waitForLog(husk, "localhost", "confined", "mkdir=")
        #expect(husk("logs", "localhost", "-c", "confined").stdout.contains("mkdir=1"), "the entrypoint's mkdir was not refused")
        let mk = sh(husk, "localhost", "confined", "mkdir /tmp/by-exec")
        #expect(mk.status != 0 && mk.stderr.contains("Operation not permitted"), "exec's mkdir: \(mk.status) \(mk.stderr)")
        #expect(sh(husk, "localhost", "confined", "touch /tmp/file").status == 0, "only mkdir is filtered")
        #expect(sh(husk, "localhost", "free", "mkdir /tmp/d").status == 0)
    }

    @Test("§2 seccompProfile Localhost with a missing profile is CreateContainerError with containerd's message (WithProfile: cannot load seccomp profile); an absolute or '..' localhostProfile is refused by validation")
    func seccompMissing() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = try startWithSeccompRoot(husk, profiles: [:], """
            apiVersion: v1
            kind: Pod
            metadata:
              name: noprofile
            spec:
              containers:
              - name: c
                image: busybox:1.36
                command: \(Self.idle)
                securityContext:
                  seccompProfile:
                    type: Localhost
                    localhostProfile: missing.json
            """)
        #expect(r.status == 2, "husk run -d: \(r.status) \(r.stderr)")
        let path = "/var/lib/kubelet/seccomp/missing.json"
        let pod = try #require(husk.wait("noprofile") { $0.waitingReason("c") != nil })
        // kubelet: CRI CreateContainer failed -> CreateContainerError with the runtime's message.
        #expect(pod.waitingReason("c") == "CreateContainerError", "\(pod.container("c") ?? [:])")
        let message = waitingMessage(pod, "c") ?? ""
        #expect(message.contains("cannot load seccomp profile \"\(path)\": open \(path): no such file or directory"), "message: \(message)")
        #expect(r.stderr.contains("CreateContainerError"), "\(r.stderr)")
        #expect(pod.container("c")?["containerID"] == nil)

        // Kubernetes' validation (validateLocalDescendingPath): nothing is created.
        for (i, bad) in ["/etc/profile.json", "../escape.json", "a/../../b.json"].enumerated() {
            let v = husk.start("""
                apiVersion: v1
                kind: Pod
                metadata:
                  name: bad-\(i)
                spec:
                  containers:
                  - name: c
                    image: busybox:1.36
                    securityContext:
                      seccompProfile:
                        type: Localhost
                        localhostProfile: "\(bad)"
                """, name: "bad-\(i).yaml")
            #expect(v.status == 1, "\(bad): husk run -d: \(v.status)")
            #expect(v.stderr.contains("spec.containers[0].securityContext.seccompProfile.localhostProfile"), "\(bad): \(v.stderr)")
            #expect(v.stderr.contains(bad.hasPrefix("/") ? "must be a relative path" : "must not contain '..'"), "\(bad): \(v.stderr)")
            #expect(husk.inspect("bad-\(i)") == nil, "\(bad): a pod was created")
        }
    }

    // MARK: - env, command, workingDir

    @Test("env: $(VAR) expansion as Kubernetes does it (earlier vars only, $$ escapes, unknown and unclosed references kept); fieldRef metadata.name/namespace/uid and status.podIP/hostIP; $(VAR) in command and args")
    func envExpansion() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start(#"""
            apiVersion: v1
            kind: Pod
            metadata:
              name: env
              namespace: team-a
            spec:
              containers:
              - name: c
                image: busybox:1.36
                command: ["sh", "-c", "echo \"args=$1|$2|$3|$4\"; trap 'exit 0' TERM; sleep 1000 & wait", "sh", "$(C)", "$$(A)", "$(NOPE)", "$(POD_NAME)"]
                env:
                - {name: A, value: alpha}
                - {name: B, value: "$(A)-beta"}
                - {name: C, value: "$(B)/$(A)"}
                - {name: ESCAPED, value: "$$(A)"}
                - {name: DOUBLE, value: "$$$(A)"}
                - {name: UNKNOWN, value: "$(NOPE)-x"}
                - {name: FORWARD, value: "$(D)"}
                - {name: D, value: delta}
                - {name: PLAIN, value: "a$b $ c$"}
                - {name: OPEN, value: "x$(A"}
                - {name: IMAGE_PATH, value: "$(PATH)"}
                - {name: EMPTY, value: ""}
                - name: POD_NAME
                  valueFrom: {fieldRef: {fieldPath: metadata.name}}
                - name: POD_NS
                  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
                - name: POD_UID
                  valueFrom: {fieldRef: {fieldPath: metadata.uid}}
                - name: POD_IP
                  valueFrom: {fieldRef: {fieldPath: status.podIP}}
                - name: HOST_IP
                  valueFrom: {fieldRef: {fieldPath: status.hostIP}}
                - {name: REF, value: "$(POD_NAME).$(POD_NS)"}
            """#)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let uid = r.stdout.trimmed
        let pod = try #require(husk.inspect(uid))
        #expect((pod["metadata"] as? [String: Any])?["namespace"] as? String == "team-a")

        let env = environment(husk.run(["exec", uid, "-c", "c", "--", "cat", "/proc/1/environ"]).stdout, separator: "\0")
        let expected: [String: String] = [
            "A": "alpha", "B": "alpha-beta", "C": "alpha-beta/alpha", "ESCAPED": "$(A)", "DOUBLE": "$alpha",
            "UNKNOWN": "$(NOPE)-x", "FORWARD": "$(D)", "D": "delta", "PLAIN": "a$b $ c$", "OPEN": "x$(A",
            // Only the container's own earlier variables expand, not the image's PATH.
            "IMAGE_PATH": "$(PATH)", "EMPTY": "",
            "POD_NAME": "env", "POD_NS": "team-a", "POD_UID": uid, "REF": "env.team-a",
            // No CNI: the pod has no address of its own, and the variable is what status says.
            "POD_IP": pod.status["podIP"] as? String ?? "", "HOST_IP": pod.status["hostIP"] as? String ?? "",
        ]
        for (k, v) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(env[k] == v, "\(k)=\(env[k].map { "\"\($0)\"" } ?? "unset"), expected \"\(v)\"")
        }
        #expect(env["PATH"] == "/bin:/sbin", "the image's PATH: \(env["PATH"] ?? "unset")")
        // The same environment for exec.
        let execEnv = environment(husk.run(["exec", uid, "-c", "c", "--", "env"]).stdout, separator: "\n")
        for k in ["B", "C", "POD_UID", "REF"] { #expect(execEnv[k] == expected[k], "exec: \(k)=\(execEnv[k] ?? "unset")") }

        try waitForLog(husk, uid, "c", "args=")
        #expect(husk("logs", uid, "-c", "c").stdout == "args=alpha-beta/alpha|$(A)|$(NOPE)|env\n", "command/args expansion")
    }

    @Test("env fieldRef status.podIP and status.hostIP with hostNetwork: both are the node's address, as status says; spec.nodeName is the node's name")
    func envHostNetwork() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: hostnet-env
            spec:
              hostNetwork: true
              containers:
              - name: c
                image: busybox:1.36
                command: \(Self.idle)
                env:
                - name: POD_IP
                  valueFrom: {fieldRef: {fieldPath: status.podIP}}
                - name: HOST_IP
                  valueFrom: {fieldRef: {fieldPath: status.hostIP}}
                - name: NODE
                  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let pod = try #require(husk.inspect("hostnet-env"))
        let env = environment(husk("exec", "hostnet-env", "-c", "c", "--", "cat", "/proc/1/environ").stdout, separator: "\0")
        let hostIP = pod.status["hostIP"] as? String
        #expect(pod.status["podIP"] as? String == hostIP, "hostNetwork: status.podIP is the node's address")
        if let hostIP {
            #expect(env["POD_IP"] == hostIP && env["HOST_IP"] == hostIP, "POD_IP \(env["POD_IP"] ?? "unset"), HOST_IP \(env["HOST_IP"] ?? "unset"), status \(hostIP)")
        } else {
            print("envHostNetwork: the node has no non-loopback IPv4 address; the address check is skipped")
        }
        #expect(env["NODE"] == readText("/proc/sys/kernel/hostname").trimmed)
    }

    @Test("command/args replace the image's Entrypoint/Cmd as Kubernetes defines (args alone replace Cmd, not append); workingDir sets the cwd, default the image's (/)")
    func commandArgs() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: cmd
            spec:
              restartPolicy: Never
              containers:
              - name: image
                image: busybox:1.36
              - name: args
                image: busybox:1.36
                args: ["echo", "from-args"]
              - name: command
                image: busybox:1.36
                command: ["echo", "from-command"]
              - name: both
                image: busybox:1.36
                command: ["sh", "-c"]
                args: ["echo $0-$1", "x", "y"]
              - name: workdir
                image: busybox:1.36
                workingDir: /etc
                command: ["pwd"]
              - name: defaultwd
                image: busybox:1.36
                command: ["pwd"]
            """)
        #expect(r.status == 0, "husk run -d: \(r.stderr)")
        let pod = try #require(husk.wait("cmd") { $0.phase == "Succeeded" || $0.phase == "Failed" })
        #expect(pod.phase == "Succeeded", "\(pod.status)")
        let outputs = ["image": "", "args": "from-args\n", "command": "from-command\n", "both": "x-y\n", "workdir": "/etc\n", "defaultwd": "/\n"]
        for (c, out) in outputs {
            #expect(pod.exitCode(c) == 0, "\(c): \(pod.terminated(c) ?? [:])")
            #expect(husk("logs", "cmd", "-c", c).stdout == out, "\(c)")
        }
    }

    @Test("workingDir that is not in the image is created, as runc does (prepareRootfs MkdirAll 0755), also with a read-only root")
    func workingDirMissing() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: wd
            spec:
              restartPolicy: Never
              containers:
              - name: c
                image: busybox:1.36
                workingDir: /work/made/here
                command: ["sh", "-c", "pwd; stat -c %a ."]
              - name: ro
                image: busybox:1.36
                workingDir: /srv/app
                command: ["pwd"]
                securityContext:
                  readOnlyRootFilesystem: true
            """)
        let pod = husk.wait("wd") { $0.phase == "Succeeded" || $0.phase == "Failed" }
        do {
            #expect(r.status == 0, "husk run -d: \(r.stderr)")
            #expect(pod?.phase == "Succeeded", "\(pod?.status ?? [:])")
            #expect(husk("logs", "wd", "-c", "c").stdout == "/work/made/here\n755\n")
            #expect(husk("logs", "wd", "-c", "ro").stdout == "/srv/app\n")
        }
    }

    // MARK: - volumes

    @Test("§10 hostPath types: Directory, DirectoryOrCreate (made 0755 with parents), File, FileOrCreate (made 0644), Socket, CharDevice (/dev/null, read-only), no type on a missing path (containerd makes a directory); readOnly refuses writes")
    func hostPathTypes() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let hp = scratch.path + "/hp"
        let fm = FileManager.default
        try fm.createDirectory(atPath: hp + "/dir", withIntermediateDirectories: true)
        try "hello\n".write(toFile: hp + "/dir/hello", atomically: false, encoding: .utf8)
        try "file-content\n".write(toFile: hp + "/file.txt", atomically: false, encoding: .utf8)
        try #require(bindUnixSocket(hp + "/s.sock") == 0, "cannot make a unix socket")
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: hostpath
            spec:
              containers:
              - name: c
                image: busybox:1.36
                command: \(Self.idle)
                volumeMounts:
                - {name: dir, mountPath: /mnt/dir}
                - {name: newdir, mountPath: /mnt/newdir}
                - {name: file, mountPath: /mnt/file.txt}
                - {name: newfile, mountPath: /mnt/newfile}
                - {name: sock, mountPath: /run/s.sock}
                - {name: devnull, mountPath: /mnt/null, readOnly: true}
                - {name: untyped, mountPath: /mnt/untyped}
                - {name: dir, mountPath: /ro, readOnly: true}
              volumes:
              - name: dir
                hostPath: {path: \(hp)/dir, type: Directory}
              - name: newdir
                hostPath: {path: \(hp)/made/deeper, type: DirectoryOrCreate}
              - name: file
                hostPath: {path: \(hp)/file.txt, type: File}
              - name: newfile
                hostPath: {path: \(hp)/newfile, type: FileOrCreate}
              - name: sock
                hostPath: {path: \(hp)/s.sock, type: Socket}
              - name: devnull
                hostPath: {path: /dev/null, type: CharDevice}
              - name: untyped
                hostPath: {path: \(hp)/untyped/dir}
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")

        // Directory: the host's files, and writes go to the host.
        #expect(sh(husk, "hostpath", "c", "cat /mnt/dir/hello").stdout == "hello\n")
        #expect(sh(husk, "hostpath", "c", "echo from-pod > /mnt/dir/new").status == 0)
        #expect(readText(hp + "/dir/new") == "from-pod\n")
        // DirectoryOrCreate: made with 0755 (kubelet's makeDir: MkdirAll 0755), parents too.
        for d in [hp + "/made", hp + "/made/deeper"] {
            #expect(fileType(d) == S_IFDIR && fileMode(d) == 0o755, "\(d): mode \(fileMode(d).map { String($0, radix: 8) } ?? "missing")")
        }
        #expect(sh(husk, "hostpath", "c", "echo x > /mnt/newdir/f").status == 0)
        #expect(readText(hp + "/made/deeper/f") == "x\n")
        // File.
        #expect(sh(husk, "hostpath", "c", "test -f /mnt/file.txt && cat /mnt/file.txt").stdout == "file-content\n")
        // FileOrCreate: an empty 0644 file (kubelet's makeFile), written through from the pod.
        #expect(fileType(hp + "/newfile") == S_IFREG && fileMode(hp + "/newfile") == 0o644, "newfile mode \(fileMode(hp + "/newfile").map { String($0, radix: 8) } ?? "missing")")
        #expect(sh(husk, "hostpath", "c", "echo written > /mnt/newfile").status == 0)
        #expect(readText(hp + "/newfile") == "written\n")
        // Socket and CharDevice.
        #expect(sh(husk, "hostpath", "c", "test -S /run/s.sock").status == 0, "/run/s.sock is not a socket in the container")
        #expect(sh(husk, "hostpath", "c", "test -c /mnt/null && cat /mnt/null").status == 0, "/mnt/null is not a readable character device")
        // (A device node stays writable on a read-only mount: only the mount flag can be checked.)
        #expect(mountEntry(sh(husk, "hostpath", "c", "cat /proc/mounts").stdout, "/mnt/null")?.options.contains("ro") == true, "/mnt/null is mounted ro")
        // No type: nothing is checked; containerd creates a missing host path as a directory.
        #expect(fileType(hp + "/untyped/dir") == S_IFDIR, "\(hp)/untyped/dir was not created")
        #expect(sh(husk, "hostpath", "c", "test -d /mnt/untyped").status == 0)
        // readOnly: readable, not writable, the host unchanged.
        #expect(sh(husk, "hostpath", "c", "cat /ro/hello").stdout == "hello\n")
        #expect(sh(husk, "hostpath", "c", "touch /ro/nope").status != 0, "wrote through a readOnly hostPath mount")
        #expect(!fm.fileExists(atPath: hp + "/dir/nope"))
    }

    @Test("§10 hostPath type checks that fail: kubelet's FailedMount event (\"MountVolume.SetUp failed for volume ... : hostPath type check failed: ... is not ...\"), nothing created, the container Waiting ContainerCreating, the pod Pending; run -d exits 2")
    func hostPathCheckFails() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let hp = scratch.path + "/hp"
        try FileManager.default.createDirectory(atPath: hp + "/adir", withIntermediateDirectories: true)
        try "regular\n".write(toFile: hp + "/regular", atomically: false, encoding: .utf8)
        let cases: [(type: String, path: String, what: String)] = [
            ("Directory", hp + "/missing", "a directory"),
            ("Directory", hp + "/regular", "a directory"),
            ("DirectoryOrCreate", hp + "/regular", "a directory"),
            ("File", hp + "/adir", "a file"),
            ("FileOrCreate", hp + "/adir", "a file"),
            ("Socket", hp + "/regular", "a socket file"),
            ("CharDevice", hp + "/regular", "a character device"),
            ("BlockDevice", "/dev/null", "a block device"),
        ]
        for (i, c) in cases.enumerated() {
            let name = "hp-\(i)"
            let r = husk.start("""
                apiVersion: v1
                kind: Pod
                metadata:
                  name: \(name)
                spec:
                  containers:
                  - name: c
                    image: busybox:1.36
                    command: \(Self.idle)
                    volumeMounts:
                    - {name: vol, mountPath: /vol}
                  volumes:
                  - name: vol
                    hostPath: {path: \(c.path), type: \(c.type)}
                """, name: name + ".yaml")
            let message = "MountVolume.SetUp failed for volume \"vol\" : hostPath type check failed: \(c.path) is not \(c.what)"
            #expect(r.status == 2, "\(c.type) on \(c.path): husk run -d \(r.status) \(r.stderr)")
            #expect(r.stderr.contains("hostPath type check failed: \(c.path) is not \(c.what)"), "\(c.type): \(r.stderr)")
            guard let pod = husk.inspect(name) else {
                Issue.record("\(c.type): no pod \(name)")
                continue
            }
            #expect(pod.phase == "Pending", "\(c.type): phase \(pod.phase ?? "?")")
            #expect(pod.waitingReason("c") == "ContainerCreating", "\(c.type): \(pod.container("c") ?? [:])")
            #expect(pod.container("c")?["containerID"] == nil, "\(c.type): a container was created")
            #expect(pod.status["message"] == nil, "\(c.type): kubelet sets no pod message for a volume: \(pod.status["message"] ?? "")")
            let ev = husk.events(name)
            let failedMount = events(ev, "FailedMount")
            #expect(failedMount.contains { $0["message"] as? String == message && $0["type"] as? String == "Warning" },
                    "\(c.type): kubelet's FailedMount event \(message.debugDescription); events: \(ev.map { "\($0["reason"] ?? "") \($0["message"] ?? "")" })")
            #expect(events(ev, "Created").isEmpty && events(ev, "Pulling").isEmpty, "\(c.type): the container was pulled or created")
        }
        // Nothing was made on the host.
        #expect(!FileManager.default.fileExists(atPath: hp + "/missing"))
        #expect(readText(hp + "/regular") == "regular\n")
    }

    @Test("§10 emptyDir medium Memory with sizeLimit: a tmpfs of that size (df in the container shows it, the host mount says size=), writing past it fails with ENOSPC")
    func memoryEmptyDir() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: memdir
            spec:
              containers:
              - name: c
                image: busybox:1.36
                command: \(Self.idle)
                volumeMounts:
                - {name: cache, mountPath: /cache}
              volumes:
              - name: cache
                emptyDir:
                  medium: Memory
                  sizeLimit: 8Mi
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let uid = r.stdout.trimmed
        let df = sh(husk, "memdir", "c", "df -Pk /cache | tail -n 1").stdout.trimmed.split(separator: " ", omittingEmptySubsequences: true)
        #expect(df.count >= 6 && df[1] == "8192" && df.last == "/cache", "df -Pk /cache: \(df)")
        #expect(mountEntry(sh(husk, "memdir", "c", "cat /proc/mounts").stdout, "/cache")?.fsType == "tmpfs")
        let hostDir = husk.root + "/pods/\(uid)/volumes/kubernetes.io~empty-dir/cache"
        let line = readText("/proc/self/mountinfo").split(separator: "\n").first { $0.split(separator: " ").dropFirst(4).first.map(String.init) == hostDir }
        #expect(line?.contains("size=8192k") == true, "host mount of \(hostDir): \(line.map(String.init) ?? "none")")
        #expect(sh(husk, "memdir", "c", "head -c 6291456 /dev/zero > /cache/a").status == 0, "6 MiB fit in 8 MiB")
        let over = sh(husk, "memdir", "c", "dd if=/dev/zero of=/cache/b bs=1048576 count=3")
        #expect(over.status != 0 && over.stderr.contains("No space left on device"), "9 MiB in an 8 MiB emptyDir: \(over.status) \(over.stderr)")
        let full = sh(husk, "memdir", "c", "df -Pk /cache | tail -n 1").stdout.trimmed.split(separator: " ", omittingEmptySubsequences: true)
        #expect(full.count >= 6 && full[3] == "0", "nothing left after the failed write: \(full)")
    }

    @Test("§10 subPath: a file and a directory of an emptyDir filled by an init container, a missing subPath created as a directory inside the volume, a readOnly subPath, a subPath of a hostPath")
    func subPaths() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let host = scratch.path + "/hostvol"
        try FileManager.default.createDirectory(atPath: host + "/sub", withIntermediateDirectories: true)
        try "marker\n".write(toFile: host + "/sub/marker", atomically: false, encoding: .utf8)
        try "outside\n".write(toFile: host + "/outside", atomically: false, encoding: .utf8)
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: subpath
            spec:
              initContainers:
              - name: seed
                image: busybox:1.36
                command: ["sh", "-c", "mkdir -p /v/conf /v/tree/inner && echo app-config > /v/conf/app.conf && echo other > /v/conf/other && echo inner-file > /v/tree/inner/f"]
                volumeMounts:
                - {name: data, mountPath: /v}
              containers:
              - name: app
                image: busybox:1.36
                command: \(Self.idle)
                volumeMounts:
                - {name: data, mountPath: /etc/app.conf, subPath: conf/app.conf}
                - {name: data, mountPath: /srv, subPath: tree/inner}
                - {name: data, mountPath: /fresh, subPath: made/by/kubelet}
                - {name: data, mountPath: /ro-inner, subPath: tree/inner, readOnly: true}
                - {name: host, mountPath: /hostsub, subPath: sub}
              volumes:
              - name: data
                emptyDir: {}
              - name: host
                hostPath: {path: \(host), type: Directory}
            """)
        let uid = r.stdout.trimmed
        try #require(uid.count == 36, "husk run -d: \(r.stdout) \(r.stderr)")
        let vol = husk.root + "/pods/\(uid)/volumes/kubernetes.io~empty-dir/data"
        // A missing subPath: kubelet creates it as a directory inside the volume (before the
        // container is created).
        #expect(fileType(vol + "/made/by/kubelet") == S_IFDIR, "made/by/kubelet in the volume")

        do {
            try #require(r.status == 0, "husk run -d: \(r.stderr)")
            // A file subPath: just that file.
            #expect(sh(husk, "subpath", "app", "test -f /etc/app.conf && cat /etc/app.conf").stdout == "app-config\n")
            #expect(sh(husk, "subpath", "app", "echo changed > /etc/app.conf").status == 0)
            #expect(readText(vol + "/conf/app.conf") == "changed\n", "a write to a file subPath lands in the volume")
            // A directory subPath: only its content.
            #expect(sh(husk, "subpath", "app", "ls -A /srv").stdout == "f\n", "ls /srv")
            #expect(sh(husk, "subpath", "app", "cat /srv/f").stdout == "inner-file\n")
            #expect(sh(husk, "subpath", "app", "echo new > /srv/new").status == 0)
            #expect(readText(vol + "/tree/inner/new") == "new\n")
            // The missing subPath, mounted.
            #expect(sh(husk, "subpath", "app", "test -d /fresh && ls -A /fresh").stdout == "", "/fresh")
            // readOnly subPath.
            #expect(sh(husk, "subpath", "app", "cat /ro-inner/f").stdout == "inner-file\n")
            #expect(sh(husk, "subpath", "app", "touch /ro-inner/x").status != 0, "wrote through a readOnly subPath")
            // A hostPath subPath shows only that subdirectory.
            #expect(sh(husk, "subpath", "app", "ls -A /hostsub").stdout == "marker\n", "only the subdirectory, not \(host)/outside")
        }
    }

    // MARK: - §10 termination messages

    @Test("§10 termination message, policy File: /dev/termination-log (a 0666 file, writable by any uid) becomes state.terminated.message; a custom path; the last 4096 bytes; an empty path defaults to /dev/termination-log; logs are never used")
    func terminationMessage() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start(#"""
            apiVersion: v1
            kind: Pod
            metadata:
              name: termmsg
            spec:
              restartPolicy: Never
              containers:
              - name: default
                image: busybox:1.36
                command: ["sh", "-c", "printf 'all done' > /dev/termination-log"]
              - name: custom
                image: busybox:1.36
                terminationMessagePath: /tmp/custom-msg
                command: ["sh", "-c", "printf 'custom path' > /tmp/custom-msg; exit 3"]
              - name: big
                image: busybox:1.36
                command: ["sh", "-c", "head -c 904 /dev/zero | tr '\\0' a > /dev/termination-log; head -c 4096 /dev/zero | tr '\\0' b >> /dev/termination-log"]
              - name: nonroot
                image: busybox:1.36
                securityContext: {runAsUser: 1000}
                command: ["sh", "-c", "stat -c %a /dev/termination-log; printf 'from uid 1000' > /dev/termination-log"]
              - name: emptypath
                image: busybox:1.36
                terminationMessagePath: ""
                terminationMessagePolicy: ""
                command: ["sh", "-c", "printf 'defaulted' > /dev/termination-log"]
              - name: logsonly
                image: busybox:1.36
                command: ["sh", "-c", "echo some output; exit 1"]
            """#)
        // The containers end at once: -d sees them started (0) or the pod failed (1).
        #expect(r.status == 0 || r.status == 1, "husk run -d: \(r.status) \(r.stderr)")
        #expect(r.stdout.trimmed.count == 36, "the pod's uid: \(r.stdout)")
        let names = ["default", "custom", "big", "nonroot", "emptypath", "logsonly"]
        let pod = try #require(husk.wait("termmsg") { p in names.allSatisfy { p.stateKind($0) == "terminated" } })
        let expected: [(String, Int, String, String?)] = [
            ("default", 0, "Completed", "all done"),
            ("custom", 3, "Error", "custom path"),
            ("big", 0, "Completed", String(repeating: "b", count: 4096)),
            ("nonroot", 0, "Completed", "from uid 1000"),
            ("emptypath", 0, "Completed", "defaulted"),
            ("logsonly", 1, "Error", nil),
        ]
        for (c, code, reason, message) in expected {
            let t = pod.terminated(c)
            #expect(t?["exitCode"] as? Int == code && t?["reason"] as? String == reason, "\(c): \(t ?? [:])")
            let got = t?["message"] as? String
            #expect(got == message, "\(c): message \(got.map { $0.count > 60 ? "\($0.prefix(60))… (\($0.count) bytes)" : $0 } ?? "none")")
        }
        #expect(husk("logs", "termmsg", "-c", "nonroot").stdout == "666\n", "mode of /dev/termination-log")
        let spec = (husk.inspect("termmsg")?["spec"] as? [String: Any])?["containers"] as? [[String: Any]]
        let emptypath = spec?.first { $0["name"] as? String == "emptypath" }
        #expect(emptypath?["terminationMessagePath"] as? String == "/dev/termination-log", "SetDefaults_Container: \(emptypath ?? [:])")
        #expect(emptypath?["terminationMessagePolicy"] as? String == "File")
    }

    @Test("§10 termination message, FallbackToLogsOnError: a failed container with an empty file gets the last 80 log lines, at most the last 2048 bytes; a file wins; success gives no message")
    func fallbackToLogs() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let xs = String(repeating: "x", count: 51)
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: fallback
            spec:
              restartPolicy: Never
              containers:
              - name: short
                image: busybox:1.36
                terminationMessagePolicy: FallbackToLogsOnError
                command: ["sh", "-c", "i=1; while [ $i -le 100 ]; do printf 'line-%03d\\\\n' $i; i=$((i+1)); done; exit 1"]
              - name: long
                image: busybox:1.36
                terminationMessagePolicy: FallbackToLogsOnError
                command: ["sh", "-c", "i=1; while [ $i -le 60 ]; do printf 'long-%02d-%s\\\\n' $i \(xs); i=$((i+1)); done; exit 2"]
              - name: success
                image: busybox:1.36
                terminationMessagePolicy: FallbackToLogsOnError
                command: ["sh", "-c", "echo all good"]
              - name: filewins
                image: busybox:1.36
                terminationMessagePolicy: FallbackToLogsOnError
                command: ["sh", "-c", "echo in the log; printf from-file > /dev/termination-log; exit 4"]
            """)
        // The containers end at once: -d sees them started (0) or the pod failed (1).
        #expect(r.status == 0 || r.status == 1, "husk run -d: \(r.status) \(r.stderr)")
        #expect(r.stdout.trimmed.count == 36, "the pod's uid: \(r.stdout)")
        let names = ["short", "long", "success", "filewins"]
        let pod = try #require(husk.wait("fallback") { p in names.allSatisfy { p.stateKind($0) == "terminated" } })
        let short = (21...100).map { String(format: "line-%03d\n", $0) }.joined()
        let longAll = (1...60).map { String(format: "long-%02d-", $0) + xs + "\n" }.joined()
        #expect(longAll.utf8.count == 3600)
        let expected: [String: String?] = [
            "short": short, "long": String(longAll.suffix(2048)), "success": nil, "filewins": "from-file",
        ]
        for (c, message) in expected {
            let got = pod.terminated(c)?["message"] as? String
            #expect(got == message, "\(c): message of \(got?.utf8.count ?? 0) bytes: \(got?.prefix(40) ?? "none")…, expected \(message?.utf8.count ?? 0) bytes")
        }
        #expect(husk("logs", "fallback", "-c", "short").stdout.split(separator: "\n").count == 100, "the log itself is whole")
    }

    // MARK: - §5/§6 lifecycle hooks

    @Test("§5/§6 httpGet hooks reach a server in the pod (no CNI: from the pod's network namespace to 127.0.0.1): postStart before the container counts as started, any HTTP status (404) is success, preStop on a named port at stop; a refused connection is FailedPreStopHook")
    func httpGetHooks() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: hooks
            spec:
              terminationGracePeriodSeconds: 10
              containers:
              - name: web
                image: busybox:1.36
                command: ["sh", "-c", "echo ok > /www/ready; trap 'exit 0' TERM; httpd -f -vv -p 8080 -h /www & wait"]
                lifecycle:
                  postStart:
                    exec:
                      command: ["sh", "-c", "until wget -q -O /dev/null http://127.0.0.1:8080/ready; do sleep 0.05; done"]
                  preStop:
                    sleep: {seconds: 2}
              - name: app
                image: busybox:1.36
                command: \(Self.idle)
                ports:
                - {name: web-port, containerPort: 8080}
                lifecycle:
                  postStart:
                    httpGet: {path: /poststart, port: 8080}
                  preStop:
                    httpGet: {path: /prestop, port: web-port}
              - name: refused
                image: busybox:1.36
                command: \(Self.idle)
                lifecycle:
                  preStop:
                    httpGet: {path: /nobody, port: 8099}
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        // run -d returns after app's postStart: the request is in web's log already.
        let webLog = husk("logs", "hooks", "-c", "web")
        #expect(webLog.stdout.contains("url:/poststart") || webLog.stderr.contains("url:/poststart"), "postStart request: \(webLog.stdout)\(webLog.stderr)")
        let pod = try #require(husk.inspect("hooks"))
        #expect(pod.stateKind("app") == "running", "a 404 answer is a successful hook: \(pod.container("app") ?? [:])")
        #expect(events(husk.events("hooks"), "FailedPostStartHook").isEmpty)

        let stop = husk("stop", "hooks")
        #expect(stop.status == 0, "husk stop: \(stop.stderr)")
        let after = husk("logs", "hooks", "-c", "web")
        let text = after.stdout + after.stderr
        #expect(text.contains("url:/prestop"), "preStop request on the named port: \(text)")
        #expect(!text.contains("url:/nobody"))
        let ev = husk.events("hooks")
        #expect(events(ev, "FailedPreStopHook", "app").isEmpty, "app's preStop failed: \(events(ev, "FailedPreStopHook", "app"))")
        let refused = events(ev, "FailedPreStopHook", "refused")
        #expect(refused.count == 1 && refused.first?["type"] as? String == "Warning", "§6: a refused connection is a failed preStop: \(refused)")
        let final = try #require(husk.inspect("hooks"))
        #expect(final.exitCode("refused") == 0, "§6: the stop went on after the failed preStop: \(final.terminated("refused") ?? [:])")
    }

    @Test("§5/§6 lifecycle.preStop.sleep delays the stop signal by its seconds (the process still gets SIGTERM, not SIGKILL)")
    func preStopSleep() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: sleepy
            spec:
              terminationGracePeriodSeconds: 10
              containers:
              - name: c
                image: busybox:1.36
                command: \(Self.idle)
                lifecycle:
                  preStop:
                    sleep: {seconds: 2}
              - name: quick
                image: busybox:1.36
                command: \(Self.idle)
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let t0 = Date()
        let stop = husk("stop", "sleepy")
        let took = Date().timeIntervalSince(t0)
        #expect(stop.status == 0, "husk stop: \(stop.stderr)")
        #expect(took >= 2.0 && took < 4.0, "husk stop took \(took) s with a 2 s preStop sleep")
        let pod = try #require(husk.inspect("sleepy"))
        #expect(pod.exitCode("c") == 0, "SIGTERM after the sleep, handled: \(pod.terminated("c") ?? [:])")
        // The container without the hook stopped at once: its stop did not wait for the other's.
        func seconds(_ c: String) -> Double? {
            (pod.terminated(c)?["finishedAt"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) }?.timeIntervalSince1970
        }
        if let a = seconds("c"), let b = seconds("quick") {
            #expect(a - b >= 1, "finishedAt: c \(a), quick \(b) (whole seconds)")
        }
        #expect(events(husk.events("sleepy"), "FailedPreStopHook").isEmpty)
    }

    // MARK: - §7 image pull policy

    @Test("§7 imagePullPolicy Never with the image absent: Waiting ErrImageNeverPull with kubelet's message and event; nothing fetched; run -d exits 2 with the reason")
    func neverPullAbsent() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: never
            spec:
              containers:
              - name: c
                image: busybox:1.36
                imagePullPolicy: Never
                command: \(Self.idle)
            """)
        let message = "Container image \"busybox:1.36\" is not present with pull policy of Never"
        #expect(r.status == 2, "husk run -d: \(r.status) \(r.stderr)")
        #expect(r.stderr.contains("ErrImageNeverPull: " + message), "stderr: \(r.stderr)")
        let pod = try #require(husk.inspect("never"))
        #expect(pod.waitingReason("c") == "ErrImageNeverPull")
        #expect(waitingMessage(pod, "c") == message)
        #expect(pod.phase == "Pending")
        let ev = husk.events("never")
        #expect(events(ev, "ErrImageNeverPull", "c").contains { $0["message"] as? String == message && $0["type"] as? String == "Warning" }, "\(ev)")
        #expect(events(ev, "Failed", "c").contains { $0["message"] as? String == "Error: ErrImageNeverPull" })
        #expect(events(ev, "Pulling").isEmpty && events(ev, "Created").isEmpty)
        let images = husk("images", "-o", "json").stdout
        #expect(!images.contains("busybox"), "an image was fetched under Never: \(images)")
    }

    @Test("§7 IfNotPresent pulls once: Pulling + Pulled for the first container, \"already present on machine\" for the next and for another pod; Always pulls again")
    func ifNotPresentOnce() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: first
            spec:
              containers:
              - name: a
                image: busybox:1.36
                command: \(Self.idle)
              - name: b
                image: busybox:1.36
                imagePullPolicy: IfNotPresent
                command: \(Self.idle)
            """, name: "first.yaml")
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let r2 = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: second
            spec:
              containers:
              - name: c
                image: busybox:1.36
                command: \(Self.idle)
              - name: d
                image: busybox:1.36
                imagePullPolicy: Always
                command: \(Self.idle)
            """, name: "second.yaml")
        try #require(r2.status == 0, "husk run -d: \(r2.stderr)\(supervisorLogs(husk))")
        let present = "Container image \"busybox:1.36\" already present on machine"
        let pulled = #/^Successfully pulled image "busybox:1\.36" in ([0-9]+ms|[0-9]+(\.[0-9]{1,3})?s|0s) \(([0-9]+ms|[0-9]+(\.[0-9]{1,3})?s|0s) including waiting\)\. Image size: [0-9]+ bytes\.$/#
        let first = husk.events("first")
        #expect(events(first, "Pulling", "a").map { $0["message"] as? String } == ["Pulling image \"busybox:1.36\""], "\(events(first, "Pulling", "a"))")
        let aPulled = events(first, "Pulled", "a").compactMap { $0["message"] as? String }
        #expect(aPulled.count == 1 && aPulled.first?.wholeMatch(of: pulled) != nil, "a: \(aPulled)")
        #expect(events(first, "Pulling", "b").isEmpty, "b pulled again")
        // Recent kubelets append " and can be accessed by the pod"; the spec (§7) quotes the prefix.
        #expect(events(first, "Pulled", "b").compactMap { $0["message"] as? String }.allSatisfy { $0.hasPrefix(present) } && events(first, "Pulled", "b").count == 1)
        let second = husk.events("second")
        #expect(events(second, "Pulling", "c").isEmpty, "another pod pulled again")
        #expect(events(second, "Pulled", "c").first.flatMap { $0["message"] as? String }?.hasPrefix(present) == true, "\(events(second, "Pulled", "c"))")
        #expect(events(second, "Pulling", "d").count == 1, "Always pulls even when present")
        #expect(events(second, "Pulled", "d").first.flatMap { $0["message"] as? String }?.wholeMatch(of: pulled) != nil, "\(events(second, "Pulled", "d"))")
        // Pulling comes before Pulled, Pulled before Created.
        if let p = events(first, "Pulling", "a").first.flatMap(eventTime), let d = events(first, "Pulled", "a").first.flatMap(eventTime),
           let c = events(first, "Created", "a").first.flatMap(eventTime) {
            #expect(p <= d && d <= c, "Pulling \(p), Pulled \(d), Created \(c)")
        }
        let imageID = husk.inspect("first")?.container("a")?["imageID"] as? String ?? ""
        #expect(!imageID.isEmpty && imageID == husk.inspect("second")?.container("c")?["imageID"] as? String, "one image: \(imageID)")
    }

    @Test("§7 an image no source has: ErrImagePull, then ImagePullBackOff within the back-off window, then pulled again (Pulling events grow); run -d exits 2 with the reason")
    func pullBackOff() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch, extra: ["--backoff-scale", "0.05"])
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: nope
            spec:
              containers:
              - name: c
                image: busybox:nope
                command: \(Self.idle)
            """)
        #expect(r.status == 2, "husk run -d: \(r.status) \(r.stderr)")
        #expect(r.stderr.contains("ErrImagePull"), "\(r.stderr)")
        let seen = observe(husk, "nope", timeout: 20) { seen in
            let reasons = seen.compactMap { $0.waitingReason("c") }
            guard let i = reasons.firstIndex(of: "ImagePullBackOff") else { return false }
            return reasons[i...].contains("ErrImagePull")
        }
        let reasons = seen.compactMap { $0.waitingReason("c") }
        #expect(reasons.first == "ErrImagePull", "§7: the first failure is ErrImagePull: \(Set(reasons))")
        #expect(Set(reasons) == ["ErrImagePull", "ImagePullBackOff"], "§7: reasons seen: \(Set(reasons))")
        let backoff = seen.first { $0.waitingReason("c") == "ImagePullBackOff" }
        #expect(backoff.flatMap { waitingMessage($0, "c") } == "Back-off pulling image \"busybox:nope\"")
        let errPull = seen.first { $0.waitingReason("c") == "ErrImagePull" }
        let errMessage = errPull.flatMap { waitingMessage($0, "c") } ?? ""
        #expect(errMessage.hasPrefix("Failed to pull image \"busybox:nope\": "), "\(errMessage)")
        #expect(seen.allSatisfy { $0.phase == "Pending" })
        let ev = husk.events("nope")
        #expect(events(ev, "Pulling", "c").count >= 2, "§7: pulled again after the window")
        #expect(events(ev, "Failed", "c").contains { $0["message"] as? String == "Error: ErrImagePull" })
        #expect(events(ev, "Failed", "c").contains { $0["message"] as? String == "Error: ImagePullBackOff" })
        #expect(events(ev, "BackOff", "c").contains { $0["message"] as? String == "Back-off pulling image \"busybox:nope\"" })
        #expect(events(ev, "Created").isEmpty)
    }

    // MARK: - logs, exec, ps

    @Test("§8/§12 husk logs --previous after a restart (OnFailure, a container failing once thanks to a file in an emptyDir): the previous instance's output; lastState holds its exit; no previous instance is an error")
    func logsPrevious() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch, extra: ["--backoff-scale", "0.05"])
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: prev
            spec:
              restartPolicy: OnFailure
              containers:
              - name: flaky
                image: busybox:1.36
                command: ["sh", "-c", "if [ -e /data/ran ]; then echo second run; exit 0; fi; touch /data/ran; echo first run; exit 3"]
                volumeMounts:
                - {name: data, mountPath: /data}
              - name: once
                image: busybox:1.36
                command: ["echo", "only run"]
              volumes:
              - name: data
                emptyDir: {}
            """)
        let uid = r.stdout.trimmed
        try #require(uid.count == 36, "husk run -d: \(r.stdout) \(r.stderr)")
        let pod = try #require(husk.wait("prev", timeout: 20) { $0.phase == "Succeeded" || $0.phase == "Failed" })
        #expect(pod.phase == "Succeeded", "§1: OnFailure, all exited 0 at last: \(pod.status)")
        let flaky = pod.container("flaky") ?? [:]
        #expect(flaky["restartCount"] as? Int == 1, "\(flaky)")
        #expect(pod.exitCode("flaky") == 0)
        let last = (flaky["lastState"] as? [String: Any])?["terminated"] as? [String: Any]
        #expect(last?["exitCode"] as? Int == 3 && last?["reason"] as? String == "Error", "lastState: \(last ?? [:])")

        let previous = husk("logs", "prev", "-c", "flaky", "--previous")
        #expect(previous.status == 0 && previous.stdout == "first run\n", "--previous: \(previous.stdout) \(previous.stderr)")
        #expect(husk("logs", "prev", "-c", "flaky").stdout == "second run\n")
        let dir = husk.logDir + "/default_prev_\(uid)/flaky"
        #expect(readText(dir + "/0.log").hasSuffix(" stdout F first run\n") && readText(dir + "/1.log").hasSuffix(" stdout F second run\n"), "§12: one log per attempt")

        let none = husk("logs", "prev", "-c", "once", "--previous")
        #expect(none.status != 0, "--previous of a container that never restarted")
        #expect(none.stderr.contains("previous terminated container \"once\" in pod \"prev\" not found"), "\(none.stderr)")
        #expect(husk("logs", "prev", "-c", "once").stdout == "only run\n")
    }

    @Test("husk exec: the exit status passes through (7, 0, 3), stdin/stdout/stderr are the caller's, -c picks the container, a container that is not running is refused")
    func execExitCode() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: execs
            spec:
              restartPolicy: OnFailure
              containers:
              - name: a
                image: busybox:1.36
                command: \(Self.idle)
                env: [{name: MARK, value: in-a}]
              - name: b
                image: busybox:1.36
                command: \(Self.idle)
                env: [{name: MARK, value: in-b}]
              - name: done
                image: busybox:1.36
                command: ["true"]
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        #expect(husk("exec", "execs", "-c", "a", "--", "sh", "-c", "exit 7").status == 7)
        #expect(husk("exec", "execs", "-c", "a", "--", "sh", "-c", "exit 0").status == 0)
        let err = husk("exec", "execs", "-c", "b", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
        #expect(err.status == 3 && err.stdout == "out\n" && err.stderr == "err\n", "\(err)")
        #expect(husk("exec", "execs", "-c", "b", "--", "sh", "-c", "echo $MARK").stdout == "in-b\n")
        let dflt = husk("exec", "execs", "--", "sh", "-c", "echo $MARK")
        #expect(dflt.stdout == "in-a\n", "no -c: the first app container")
        #expect(dflt.stderr.contains("Defaulted container \"a\""), "\(dflt.stderr)")
        let stdin = IntegrationTests.run([huskPath] + husk.globals + ["exec", "-i", "execs", "-c", "a", "--", "tr", "a-z", "A-Z"], stdin: "piped in\n")
        #expect(stdin.status == 0 && stdin.stdout == "PIPED IN\n", "stdin: \(stdin)")
        // Without -i the command's stdin is /dev/null (crictl exec, kubectl exec).
        let noStdin = IntegrationTests.run([huskPath] + husk.globals + ["exec", "execs", "-c", "a", "--", "cat"], stdin: "not passed\n")
        #expect(noStdin.status == 0 && noStdin.stdout == "", "no -i: \(noStdin)")
        #expect(husk("exec", "execs", "-c", "a", "--", "sh", "-c", "kill -9 $$").status == 137, "a signal is 128+N")
        _ = husk.wait("execs") { $0.stateKind("done") == "terminated" }
        let notRunning = husk("exec", "execs", "-c", "done", "--", "true")
        #expect(notRunning.status != 0 && notRunning.stderr.contains("not running"), "\(notRunning)")
        let unknown = husk("exec", "execs", "-c", "nope", "--", "true")
        #expect(unknown.status != 0 && unknown.stderr.contains("nope"), "\(unknown)")
    }

    @Test("§12 husk logs -c picks a container (stdout and stderr records), defaults to the first with a note; husk ps POD -o json lists running instances as crictl does (-a adds exited ones)")
    func logsAndPs() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: multi
            spec:
              restartPolicy: OnFailure
              containers:
              - name: one
                image: busybox:1.36
                command: ["sh", "-c", "echo from-one; trap 'exit 0' TERM; sleep 1000 & wait"]
              - name: two
                image: busybox:1.36
                command: ["sh", "-c", "echo from-two >&2; trap 'exit 0' TERM; sleep 1000 & wait"]
              - name: gone
                image: busybox:1.36
                command: ["echo", "bye"]
            """)
        try #require(r.status == 0, "husk run -d: \(r.stderr)\(supervisorLogs(husk))")
        let uid = r.stdout.trimmed
        try waitForLog(husk, "multi", "one", "from-one")
        try waitForLog(husk, "multi", "two", "from-two")
        _ = husk.wait("multi") { $0.stateKind("gone") == "terminated" }

        let one = husk("logs", "multi", "-c", "one")
        #expect(one.status == 0 && one.stdout == "from-one\n" && one.stderr.isEmpty, "\(one)")
        let two = husk("logs", "multi", "-c", "two")
        #expect(two.stdout.isEmpty && two.stderr == "from-two\n", "stderr records go to stderr: \(two)")
        let dflt = husk("logs", "multi")
        #expect(dflt.stdout == "from-one\n", "\(dflt)")
        #expect(dflt.stderr.contains("Defaulted container \"one\" out of: one, two, gone"), "\(dflt.stderr)")
        let bad = husk("logs", "multi", "-c", "nope")
        #expect(bad.status != 0 && bad.stderr.contains("container nope is not valid for pod multi"), "\(bad)")

        let pod = try #require(husk.inspect("multi"))
        func list(_ args: String...) -> [[String: Any]] {
            let out = husk.run(["ps"] + args + ["multi", "-o", "json"]).stdout
            let doc = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any]
            return doc?["containers"] as? [[String: Any]] ?? []
        }
        let running = list()
        let names = running.compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String }
        #expect(names.sorted() == ["one", "two"], "ps lists the running containers: \(names)")
        for c in running {
            let name = (c["metadata"] as? [String: Any])?["name"] as? String ?? "?"
            #expect(c["state"] as? String == "CONTAINER_RUNNING", "\(name): \(c["state"] ?? "")")
            #expect(c["podSandboxId"] as? String == uid)
            #expect((c["metadata"] as? [String: Any])?["attempt"] as? Int == 0)
            let id = c["id"] as? String ?? ""
            #expect(id.count == 64 && id.allSatisfy(\.isHexDigit), "id \(id)")
            #expect(pod.container(name)?["containerID"] as? String == "husk://" + id, "inspect and ps agree on \(name)'s id")
            let labels = c["labels"] as? [String: Any] ?? [:]
            #expect(labels["io.kubernetes.container.name"] as? String == name && labels["io.kubernetes.pod.name"] as? String == "multi"
                    && labels["io.kubernetes.pod.namespace"] as? String == "default" && labels["io.kubernetes.pod.uid"] as? String == uid, "labels \(labels)")
            #expect((c["image"] as? [String: Any])?["image"] as? String == "busybox:1.36")
            #expect(!(c["imageRef"] as? String ?? "").isEmpty)
            let logPath = c["logPath"] as? String ?? ""
            #expect(logPath == husk.logDir + "/default_multi_\(uid)/\(name)/0.log" && FileManager.default.fileExists(atPath: logPath), "logPath \(logPath)")
            let pid = c["pid"] as? Int ?? 0
            #expect(pid > 0 && readText("/proc/\(pid)/cgroup").contains("/husk/\(uid)/\(name)"), "pid \(pid) is \(name)'s init")
        }
        let all = list("-a")
        let gone = all.first { ($0["metadata"] as? [String: Any])?["name"] as? String == "gone" }
        #expect(all.count == 3 && gone?["state"] as? String == "CONTAINER_EXITED", "ps -a: \(all.map { "\(($0["metadata"] as? [String: Any])?["name"] ?? "") \($0["state"] ?? "")" })")
    }
}

// MARK: - Helpers


/// The `Name:\tvalue` fields of /proc/<which>/status in a container: "1" is its entrypoint,
/// "self" the process `husk exec` starts.
private func procStatus(_ husk: PodHusk, _ pod: String, _ container: String, _ which: String) -> [String: String] {
    let r = husk.run(["exec", pod, "-c", container, "--", "cat", "/proc/\(which)/status"])
    var out: [String: String] = [:]
    for line in r.stdout.split(separator: "\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        out[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    if out.isEmpty { Issue.record("no /proc/\(which)/status from \(pod)/\(container): \(r.stderr)") }
    return out
}

/// A capability set from /proc/<pid>/status (hex).
private func capMask(_ hex: String?) -> UInt64? {
    hex.flatMap { UInt64($0, radix: 16) }
}

private func mask(_ bits: [Int]) -> UInt64 {
    bits.reduce(0) { $0 | (UInt64(1) << UInt64($1)) }
}

/// `NAME=value` lines (or NUL-separated entries) as a dictionary.
private func environment(_ text: String, separator: Character) -> [String: String] {
    var out: [String: String] = [:]
    for entry in text.split(separator: separator) {
        guard let eq = entry.firstIndex(of: "=") else { continue }
        out[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
    }
    return out
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

private func fileType(_ path: String) -> mode_t? {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
}

private func fileMode(_ path: String) -> mode_t? {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : nil
}

/// Binds a unix stream socket at `path` and closes it: the socket file stays. 0 or an errno.
private func bindUnixSocket(_ path: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return ENAMETOOLONG }
    withUnsafeMutableBytes(of: &addr.sun_path) { buf in
        for (i, b) in bytes.enumerated() { buf[i] = b }
        buf[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    return rc == 0 ? 0 : errno
}

/// Waits until the container's log contains `text`.
private func waitForLog(_ husk: PodHusk, _ pod: String, _ container: String, _ text: String, timeout: TimeInterval = 15,
                        sourceLocation: SourceLocation = #_sourceLocation) throws {
    var log = ""
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        let r = husk("logs", pod, "-c", container)
        log = r.stdout + r.stderr
        if log.contains(text) { return }
        Thread.sleep(forTimeInterval: 0.05)
    }
    try #require(log.contains(text), "\(pod)/\(container) never logged \(text.debugDescription): \(log)", sourceLocation: sourceLocation)
}

/// Polls `husk inspect` until `stopWhen` holds for what was seen (or `timeout`); returns every
/// object seen.
private func observe(_ husk: PodHusk, _ pod: String, timeout: TimeInterval, interval: TimeInterval = 0.05,
                     stopWhen: ([[String: Any]]) -> Bool) -> [[String: Any]] {
    let end = Date().addingTimeInterval(timeout)
    var seen: [[String: Any]] = []
    while Date() < end {
        if let p = husk.inspect(pod) {
            seen.append(p)
            if stopWhen(seen) { break }
        }
        Thread.sleep(forTimeInterval: interval)
    }
    return seen
}

/// `husk run -d` in a mount namespace of its own whose /var/lib is a private tmpfs holding
/// `kubelet/seccomp/<profiles>`: the pod's supervisor, started by this husk, inherits that
/// view and finds Localhost profiles where kubelet keeps them, while the host's /var/lib is
/// never touched.
private func startWithSeccompRoot(_ husk: PodHusk, profiles: [String: String], _ yaml: String) throws -> RunResult {
    let dir = husk.scratch.path + "/seccomp"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    for (name, text) in profiles {
        let path = dir + "/" + name
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }
    let manifest = husk.scratch.path + "/pod.yaml"
    try yaml.write(toFile: manifest, atomically: true, encoding: .utf8)
    let script = """
        set -e
        mount -t tmpfs -o mode=0755,size=1m seccomp-root /var/lib
        mkdir -p /var/lib/kubelet/seccomp
        cp -R "$1"/. /var/lib/kubelet/seccomp/
        shift
        exec "$@"
        """
    return IntegrationTests.run(
        ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", dir, huskPath] + husk.globals + ["run", "-d", manifest],
        timeout: 120)
}

/// The supervisors' logs of every pod of `husk` (for failure messages).
private func supervisorLogs(_ husk: PodHusk) -> String {
    husk.podUIDs.map { uid in
        let log = readText(husk.state + "/pods/\(uid)/supervisor.log")
        return log.isEmpty ? "" : "\nsupervisor.log of \(uid):\n\(log)"
    }.joined()
}
