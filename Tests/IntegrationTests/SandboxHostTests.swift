import Foundation
import HuskImage
import HuskJSON
import HuskPod
import HuskRuntime
import HuskSystem
import Testing

/// A `husk serve` sandbox without the gRPC front: what the daemon does for RunPodSandbox,
/// CreateContainer ... RemovePodSandbox, through `SandboxClient` and the sandbox's
/// supervisor (DESIGN "CRI mode"; cri-semantics §2, §3, §4, §8).
@Suite("husk serve sandboxes: keeper + supervisor running the runtime service", .serialized)
struct SandboxHostTests {
    struct Env {
        let scratch: Scratch
        let settings: HuskSettings
        let image: ImageRecord

        init(_ name: String) throws {
            scratch = Scratch(name)
            var s = HuskSettings()
            s.root = scratch.path + "/root"
            s.state = scratch.path + "/state"
            s.logDir = scratch.path + "/logs"
            s.cniConfDir = scratch.path + "/no-cni"
            settings = s
            let store = try ImageStore(root: s.root)
            image = try store.pull(try ImageReference(parsing: "busybox:1.36"), written: "busybox:1.36",
                                   sources: [try LayoutSource.parse("busybox=" + BusyboxLayout.path)])
        }

        func sandboxConfig(_ name: String) -> PodSandboxConfig {
            PodSandboxConfig(metadata: .init(name: name, namespace: "default", uid: UUID().uuidString.lowercased(), attempt: 0),
                             hostname: name, logDirectory: scratch.path + "/logs/" + name)
        }

        func container(_ name: String, _ script: String, sandbox: PodSandboxConfig) throws -> JSONValue {
            let store = try ImageStore(root: settings.root)
            var c = ContainerConfig(name: name, attempt: 0, image: image, layers: try store.snapshotPaths(image),
                                    logPath: sandbox.logDirectory + "/\(name)/0.log")
            c.command = ["/bin/sh", "-c", script]
            c.labels = ["io.kubernetes.container.name": name]
            return c.json
        }

        func cleanup() {
            for id in SandboxClient.ids(settings) { try? SandboxClient(settings: settings, id: id).remove() }
            if let m = Host.cgroup2 {
                #expect(((try? FileManager.default.contentsOfDirectory(atPath: m.path + "/husk")) ?? []).allSatisfy { id in
                    !SandboxClient.ids(settings).contains(id)
                })
            }
            scratch.cleanup()
        }
    }

    static var supervisor: [String] { [huskPath, "supervise"] }

    @Test("RunPodSandbox, CreateContainer, StartContainer, ExecSync, StopContainer, RemoveContainer, RemovePodSandbox",
          .enabled(if: Host.canRunPods, Host.podSkipReason))
    func lifecycle() throws {
        let env = try Env("sandboxHost")
        defer { env.cleanup() }
        let config = env.sandboxConfig("cri-a")
        let id = PodRuntimeService.newID()
        let sandbox = try SandboxClient.run(config, id: id, settings: env.settings, supervisor: Self.supervisor)
        var state = try sandbox.state()
        #expect(state.phase == .ready && state.pausePid > 0)
        #expect(try sandbox.record().config.metadata == config.metadata)
        #expect(SandboxClient.ids(env.settings) == [id])

        let cid = PodRuntimeService.newID()
        try sandbox.call("createContainer", .object(["id": .string(cid), "config": try env.container(
            "app", "trap 'exit 5' TERM; echo started; while true; do sleep 0.1; done", sandbox: config)]))
        #expect(sandbox.containers().map(\.state) == [.created])
        // Same name and attempt again: refused, nothing made.
        #expect(throws: HuskError.self) {
            try sandbox.call("createContainer", .object(["id": .string(PodRuntimeService.newID()), "config": try env.container(
                "app", "true", sandbox: config)]))
        }
        try sandbox.call("startContainer", .object(["id": .string(cid)]))
        var c = try #require(sandbox.containers().first)
        #expect(c.state == .running && c.startedAt != nil && c.pid > 0)

        let r = try sandbox.call("execSync", .object(["id": .string(cid), "argv": .array([.string("/bin/sh"), .string("-c"),
                                                                                     .string("hostname; echo e >&2; exit 2")])]))
        #expect(r["exitCode"] == .number(2))
        #expect(r["stdout"]?.stringValue.flatMap(Base64.decode) == Array("cri-a\n".utf8))
        #expect(r["stderr"]?.stringValue.flatMap(Base64.decode) == Array("e\n".utf8))
        // A missing container: NotFound.
        #expect {
            try sandbox.call("startContainer", .object(["id": .string("nope")]))
        } throws: { ($0 as? HuskError)?.code == .notFound }

        // Kill -9 the supervisor: the keeper starts another one, which takes over the
        // sandbox and the running container; the exit is still seen and recorded.
        let supervisorPid = try #require(Int32(readText(sandbox.stateDirectory + "/supervisor.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(supervisorPid, SIGKILL)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let p = Int32(readText(sandbox.stateDirectory + "/supervisor.pid").trimmingCharacters(in: .whitespacesAndNewlines)),
               p != supervisorPid, processExists(p) { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let again = try sandbox.call("execSync", .object(["id": .string(cid), "argv": .array([.string("/bin/true")])]), patience: 10)
        #expect(again["exitCode"] == .number(0))

        try sandbox.call("stopContainer", .object(["id": .string(cid), "timeout": .number(10)]))
        c = try #require(sandbox.containers().first)
        #expect(c.state == .exited && c.exitCode == 5 && c.reason == "Error" && c.finishedAt != nil)
        #expect(readText(config.logDirectory + "/app/0.log").contains(" stdout F started\n"))
        try sandbox.call("removeContainer", .object(["id": .string(cid)]))
        #expect(sandbox.containers().isEmpty)

        try sandbox.call("stopPodSandbox")
        state = try sandbox.state()
        #expect(state.phase == .notReady)
        try sandbox.remove()
        #expect(!FileManager.default.fileExists(atPath: sandbox.stateDirectory))
        #expect(!FileManager.default.fileExists(atPath: sandbox.dataDirectory))
        if let m = Host.cgroup2 { #expect(!FileManager.default.fileExists(atPath: m.path + "/husk/\(id)")) }
        #expect(SandboxClient.ids(env.settings).isEmpty)
    }

    @Test("a sandbox that cannot be made leaves nothing and says why", .enabled(if: Host.canRunPods, Host.podSkipReason))
    func failedRun() throws {
        let env = try Env("sandboxHostFail")
        defer { env.cleanup() }
        // A CNI config whose plugin does not exist: CNI ADD fails after pause started.
        var settings = env.settings
        settings.cniConfDir = env.scratch.path + "/cni"
        try FileManager.default.createDirectory(atPath: settings.cniConfDir, withIntermediateDirectories: true)
        try #"{"cniVersion":"0.4.0","name":"bad","plugins":[{"type":"husk-no-such-plugin"}]}"#
            .write(toFile: settings.cniConfDir + "/10-bad.conflist", atomically: true, encoding: .utf8)
        let config = env.sandboxConfig("cri-bad")
        let id = PodRuntimeService.newID()
        #expect {
            _ = try SandboxClient.run(config, id: id, settings: settings, supervisor: Self.supervisor)
        } throws: { ($0 as? HuskError)?.message.contains("CNI plugin husk-no-such-plugin not found") == true }
        #expect(SandboxClient.ids(env.settings).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: env.settings.state + "/pods/" + id))
        #expect(!FileManager.default.fileExists(atPath: env.settings.root + "/pods/" + id))
    }
}
