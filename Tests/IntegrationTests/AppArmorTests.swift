import Foundation
import HuskRuntime
import HuskSystem
import Testing

/// AppArmor (issue 15): `process.apparmorProfile` applied at the program's execve, the pods'
/// `appArmorProfile` (RuntimeDefault, Localhost, Unconfined, and the default when unset) as
/// kubelet and containerd treat it, and a clear refusal on a host without AppArmor.
///
/// This machine's kernel has no AppArmor, so the enforcing half runs in the VM tier
/// (Scripts/vm-test.sh boots Debian's kernel with `apparmor=1 security=apparmor`); here the
/// refusals are checked. Each test says which half it needs.
@Suite("AppArmor", .serialized)
struct AppArmorTests {
    static var enabled: Bool { AppArmor.isEnabled }
    static let parser = ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var canEnforce: Bool { Host.canRunContainers && enabled && parser != nil }
    static var enforceSkip: Comment {
        if !enabled { return "needs a kernel with AppArmor enabled (the VM tier boots one)" }
        if parser == nil { return "needs apparmor_parser (Debian: apparmor)" }
        return Host.skipReason
    }

    /// A test profile: everything allowed but writes below /data and /tmp.
    static let denyProfile = "husk-test-deny-writes"
    static func loadDenyProfile() throws {
        let text = """
            profile \(denyProfile) flags=(attach_disconnected,mediate_deleted) {
              file,
              network,
              capability,
              signal,
              ptrace,
              deny /data/** w,
              deny /tmp/** w,
            }

            """
        let r = run([parser!, "-K", "-r"], stdin: text)
        try #require(r.status == 0, "apparmor_parser: \(r.stderr)")
    }

    // MARK: - Without AppArmor

    @Test("husk-runc: a profile on a host without AppArmor is refused naming the field; \"unconfined\" runs",
          .enabled(if: Host.canRunContainers && !AppArmor.isEnabled, "needs a host without AppArmor (this one has it)"))
    func runcRefusedWithout() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["true"])
        bundle.spec.process?.terminal = false
        bundle.spec.process?.apparmorProfile = "husk-test"
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let r = runc.create(id, bundle: bundle.path)
        #expect(r.status != 0, "\(r)")
        #expect(r.stderr.contains("process.apparmorProfile: \"husk-test\" asked for, but AppArmor is not enabled on this host"), "\(r.stderr)")
        expectGone(id, runc: runc)
        bundle.spec.process?.apparmorProfile = "unconfined"
        try bundle.write()
        #expect(runc("run", "--bundle", bundle.path, uniqueID()).status == 0)
    }

    @Test("pods on a host without AppArmor: RuntimeDefault (field or annotation) is CreateContainerConfigError with kubelet's message; unset and Unconfined run",
          .enabled(if: Host.canRunContainers && !AppArmor.isEnabled, "needs a host without AppArmor (this one has it)"))
    func podRefusedWithout() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: aa
              annotations:
                container.apparmor.security.beta.kubernetes.io/annotated: runtime/default
            spec:
              containers:
              - name: asked
                image: busybox:1.36
                command: ["sleep", "1000"]
                securityContext:
                  appArmorProfile:
                    type: RuntimeDefault
              - name: annotated
                image: busybox:1.36
                command: ["sleep", "1000"]
              - name: unset
                image: busybox:1.36
                command: ["sleep", "1000"]
              - name: unconfined
                image: busybox:1.36
                command: ["sleep", "1000"]
                securityContext:
                  appArmorProfile:
                    type: Unconfined
            """)
        #expect(r.status == 2, "\(r)")
        let pod = try #require(husk.wait("aa") {
            $0.stateKind("unset") == "running" && $0.stateKind("unconfined") == "running"
                && $0.waitingReason("asked") == "CreateContainerConfigError" && $0.waitingReason("annotated") == "CreateContainerConfigError"
        })
        for c in ["asked", "annotated"] {
            #expect(waitingMessage(pod, c) == "Cannot enforce AppArmor: AppArmor is not enabled on the host", "\(c): \(pod.container(c) ?? [:])")
        }
    }

    @Test("manifest validation: Localhost needs localhostProfile, the others must not have one")
    func validation() throws {
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: bad
            spec:
              securityContext:
                appArmorProfile:
                  type: RuntimeDefault
                  localhostProfile: x
              containers:
              - name: c
                image: busybox:1.36
                securityContext:
                  appArmorProfile:
                    type: Localhost
            """)
        #expect(r.status != 0)
        #expect(r.stderr.contains("spec.securityContext.appArmorProfile.localhostProfile: Invalid value: can only be set when AppArmor type is Localhost"), "\(r.stderr)")
        #expect(r.stderr.contains("spec.containers[0].securityContext.appArmorProfile.localhostProfile: Required value"), "\(r.stderr)")
        #expect(husk.podUIDs.isEmpty)
    }

    // MARK: - With AppArmor (the VM tier)

    @Test("husk-runc: process.apparmorProfile confines the program from its execve (attr/current names it, a denied write fails) and exec runs under it too",
          .enabled(if: canEnforce, enforceSkip))
    func runcEnforced() throws {
        try Self.loadDenyProfile()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var bundle = try TestBundle(in: scratch, args: ["sh", "-c", "cat /proc/self/attr/current; echo x > /tmp/f && echo wrote || echo denied; exec sleep 600"])
        bundle.spec.process?.terminal = false
        bundle.spec.process?.apparmorProfile = Self.denyProfile
        bundle.spec.mounts = (bundle.spec.mounts ?? []) + [Spec.Mount(destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["size=1m"])]
        try bundle.write()
        let runc = Runc(scratch)
        let id = uniqueID()
        let out = scratch.path + "/out"
        let c = run(["/bin/sh", "-c", "exec \"$0\" --root \"$1\" create --bundle \"$2\" \"$3\" >\"$4\" 2>&1",
                     huskRuncPath, runc.root, bundle.path, id, out])
        #expect(c.status == 0, "create: \(readText(out))")
        #expect(runc("start", id).status == 0)
        var seen = ""
        for _ in 0..<500 where !seen.contains("wrote") && !seen.contains("denied") {
            usleep(10_000)
            seen = readText(out)
        }
        #expect(seen.hasPrefix("\(Self.denyProfile) (enforce)\n"), "\(seen)")
        #expect(seen.contains("denied") && !seen.contains("wrote"), "\(seen)")
        // husk-runc itself stays unconfined; the exec'd process is confined like the init.
        let e = runc("exec", id, "sh", "-c", "cat /proc/self/attr/current; echo y > /tmp/g && echo wrote || echo denied")
        #expect(e.stdout == "\(Self.denyProfile) (enforce)\ndenied\n", "\(e)")
        #expect(runc("delete", "--force", id).status == 0)
        expectGone(id, runc: runc)

        // A profile the kernel does not have is refused before anything starts.
        bundle.spec.process?.apparmorProfile = "husk-test-not-loaded"
        try bundle.write()
        let missing = runc.create(uniqueID("missing"), bundle: bundle.path)
        #expect(missing.status != 0 && missing.stderr.contains("profile \"husk-test-not-loaded\" is not loaded"), "\(missing)")
    }

    @Test("pods with AppArmor: unset and RuntimeDefault run under husk-default (loaded on first use, exec too), privileged unset and Unconfined are unconfined, Localhost confines with the named profile, a missing one is CreateContainerError",
          .enabled(if: canEnforce, enforceSkip))
    func podEnforced() throws {
        try Self.loadDenyProfile()
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        let r = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: aa
            spec:
              volumes:
              - name: data
                emptyDir: {}
              containers:
              - name: unset
                image: busybox:1.36
                command: ["sleep", "1000"]
              - name: default
                image: busybox:1.36
                command: ["sleep", "1000"]
                securityContext:
                  appArmorProfile:
                    type: RuntimeDefault
              - name: privileged
                image: busybox:1.36
                command: ["sleep", "1000"]
                securityContext:
                  privileged: true
              - name: unconfined
                image: busybox:1.36
                command: ["sleep", "1000"]
                securityContext:
                  appArmorProfile:
                    type: Unconfined
              - name: local
                image: busybox:1.36
                command: ["sleep", "1000"]
                volumeMounts:
                - name: data
                  mountPath: /data
                securityContext:
                  appArmorProfile:
                    type: Localhost
                    localhostProfile: \(Self.denyProfile)
              - name: missing
                image: busybox:1.36
                command: ["sleep", "1000"]
                securityContext:
                  appArmorProfile:
                    type: Localhost
                    localhostProfile: husk-test-not-loaded
            """)
        #expect(r.status == 2, "\(r)")
        let pod = try #require(husk.wait("aa", timeout: 120) { p in
            ["unset", "default", "privileged", "unconfined", "local"].allSatisfy { p.stateKind($0) == "running" }
                && p.waitingReason("missing") == "CreateContainerError"
        })
        #expect(waitingMessage(pod, "missing")?.contains("apparmor profile not found husk-test-not-loaded") == true, "\(pod.container("missing") ?? [:])")
        let want = ["unset": "husk-default (enforce)", "default": "husk-default (enforce)", "privileged": "unconfined",
                    "unconfined": "unconfined", "local": "\(Self.denyProfile) (enforce)"]
        for (c, label) in want {
            // The init (pid 1 of its namespace when it has one; read through the exec) and an exec'd process.
            let e = sh(husk, "aa", c, "cat /proc/1/attr/current; cat /proc/self/attr/current")
            #expect(e.stdout == "\(label)\n\(label)\n", "\(c): \(e)")
        }
        let w = sh(husk, "aa", "local", "echo x > /data/f && echo wrote || echo denied")
        #expect(w.stdout == "denied\n", "\(w)")
        #expect(AppArmor.loadedProfiles()?.contains("husk-default") == true)
    }
}
