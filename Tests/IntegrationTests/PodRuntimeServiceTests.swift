import Foundation
import HuskImage
import HuskPod
import HuskRuntime
import HuskSystem
import Testing

/// The pod runtime service alone, as `husk serve` drives it for kubelet: CRI's verbs on a
/// typed `PodSandboxConfig` and `ContainerConfig`, with no lifecycle controller (no restarts,
/// no hooks, no probes). cri-semantics §2 (sandbox), §3 (containers), §4 (ExecSync).
@Suite("Pod runtime service: CRI's verbs without the controller", .serialized)
struct PodRuntimeServiceTests {
    /// The exit of the container's init, as the service reports it on the event loop.
    final class ExitBox: @unchecked Sendable {
        let m = Monitor()
        var status: HuskSystem.ExitStatus? = nil
        func set(_ s: HuskSystem.ExitStatus) { m.locked { status = s; m.broadcast() } }
        func wait(until deadline: Double) -> Bool { m.wait(for: { status != nil }, until: deadline) }
    }

    static let loop: EventLoop = {
        let loop = try! EventLoop()
        Thread.detachNewThread { loop.run() }
        return loop
    }()

    @Test("sandbox and container verbs: run, create, start, status, exec, stats, reopen log, stop, remove",
          .enabled(if: Host.canRunPods, Host.podSkipReason))
    func verbs() throws {
        let scratch = Scratch("runtimeService")
        defer { scratch.cleanup() }
        var settings = HuskSettings()
        settings.root = scratch.path + "/root"
        settings.state = scratch.path + "/state"
        settings.logDir = scratch.path + "/logs"
        settings.cniConfDir = scratch.path + "/no-cni"
        let store = try ImageStore(root: settings.root)
        let image = try store.pull(try ImageReference(parsing: "busybox:1.36"), written: "busybox:1.36",
                                   sources: [try LayoutSource.parse("busybox=" + BusyboxLayout.path)])
        let layers = try store.snapshotPaths(image)

        let uid = UUID().uuidString.lowercased()
        let paths = PodPaths(settings: settings, uid: uid, namespace: "default", name: "svc")
        var config = PodSandboxConfig(metadata: .init(name: "svc", namespace: "default", uid: uid, attempt: 0),
                                      hostname: "svc-host", logDirectory: paths.logs)
        config.dns = .init(servers: ["10.0.0.10"], searches: ["ns.svc.cluster.local"], options: ["ndots:5"])
        config.labels = ["app": "svc"]
        config.sysctls = ["net.ipv4.ip_unprivileged_port_start": "80"]
        try FileManager.default.createDirectory(atPath: paths.state, withIntermediateDirectories: true)
        let service = PodRuntimeService(config: config, paths: paths, loop: Self.loop)

        // RunPodSandbox (§2): READY, created_at, the /etc files as containerd writes them.
        try service.runPodSandbox(onPauseExit: { _ in })
        var sandbox = service.podSandboxStatus()
        #expect(sandbox.state == .ready && sandbox.createdAt != nil && sandbox.pausePid != nil)
        #expect(sandbox.id == uid && sandbox.labels == ["app": "svc"] && sandbox.namespaces == .init())
        #expect(sandbox.ip == "", "no CNI config: no address")
        #expect(readText(paths.resolvConf) == "search ns.svc.cluster.local\nnameserver 10.0.0.10\noptions ndots:5\n")
        #expect(readText(paths.etcHostname) == "svc-host\n")

        // CreateContainer / StartContainer (§3): CREATED, then RUNNING with a pid.
        var cc = ContainerConfig(name: "c", attempt: 0, image: image, layers: layers, logPath: paths.log("c", attempt: 0))
        cc.command = ["/bin/sh", "-c", "trap 'exit 3' TERM; i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done"]
        let exit = ExitBox()
        let h = try service.createContainer(cc, id: PodRuntimeService.newID()) { _, s in exit.set(s) }
        #expect(service.containerStatus(h).state == .created)
        // No /etc/hosts in the config: the sandbox's copy of the node's, made for this container.
        #expect(readText(paths.sandboxHosts) == readText("/etc/hosts"), "a copy of the node's hosts file")
        #expect(service.containerStatus(h).startedAt == nil)
        try service.startContainer(h)
        var status = service.containerStatus(h)
        #expect(status.state == .running && status.pid == h.pid && status.startedAt != nil && status.logPath == cc.logPath)

        // ExecSync (§4): the sandbox's hostname and sysctl, exit codes, a timeout.
        let r = try service.execSync(
            h, argv: ["/bin/sh", "-c", "cat /etc/hostname; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; echo oops >&2; exit 7"],
            timeout: 10, outputLimit: 1 << 20, separateStderr: true)
        #expect(r.exitCode == 7)
        #expect(String(decoding: r.output, as: UTF8.self) == "svc-host\n80\n")
        #expect(String(decoding: r.stderr, as: UTF8.self) == "oops\n")
        let slow = try service.execSync(h, argv: ["/bin/sleep", "5"], timeout: 0.3)
        #expect(slow.timedOut)

        // ContainerStats: the container's cgroup (cpu.stat is there without the cpu controller).
        #expect(service.containerStats(h).cpu["usage_usec"] != nil)
        // UpdateContainerResources on a running container: accepted (the limits whose
        // controller this host lacks come back as warnings, not errors).
        var res = Spec.Resources()
        res.unified = ["pids.max": "100"]
        _ = try service.updateContainerResources(h, res)

        // ReopenContainerLog: kubelet renamed the log; new output goes to a new file.
        #expect(waitFor { readText(cc.logPath).contains("tick2") })
        try FileManager.default.moveItem(atPath: cc.logPath, toPath: cc.logPath + ".1")
        try service.reopenContainerLog(h)
        #expect(waitFor { readText(cc.logPath).contains(" stdout F tick") })
        let rotated = readText(cc.logPath + ".1")
        #expect(rotated.contains("tick0"))
        #expect(!readText(cc.logPath).contains("tick0\n"))

        // StopContainer(timeout): the stop signal, then the exit; EXITED with the code.
        service.stopContainer(h, timeout: 10) { deadline in exit.wait(until: deadline) }
        #expect(exit.wait(until: Clock.monotonicSeconds() + 10))
        status = service.containerStatus(h)
        #expect(status.state == .exited && status.exitCode == 3 && status.reason == "Error" && status.finishedAt != nil)
        #expect(status.pid == nil)
        #expect(throws: HuskError.self) { try service.updateContainerResources(h, res) }
        #expect(throws: HuskError.self) { try service.reopenContainerLog(h) }

        // RemoveContainer: the instance's cgroup and upper dir go.
        service.removeContainer(h)
        #expect(!FileManager.default.fileExists(atPath: h.instanceDir))
        #expect(!h.cgroup.exists)

        // StopPodSandbox: NOTREADY; RemovePodSandbox: the pod's cgroup and mounts go.
        service.stopPodSandbox(containers: [])
        sandbox = service.podSandboxStatus()
        #expect(sandbox.state == .notReady && sandbox.pausePid == nil)
        service.removePodSandbox(containerNames: ["c"])
        if let m = Host.cgroup2 { #expect(!FileManager.default.fileExists(atPath: m.path + "/husk/\(uid)")) }
        let mounts = ((try? MountInfo.read()) ?? []).filter { $0.mountPoint.hasPrefix(paths.data) }
        #expect(mounts.isEmpty, "mounts left: \(mounts.map(\.mountPoint))")
    }

    /// Polls `condition` for up to 10 s.
    func waitFor(_ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(10)
        while Date() < end {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }
}
