import HuskImage
import HuskJSON
@testable import HuskPod
import Testing

// The typed status model without root: kubelet's getPhase (pod-semantics §1), the API
// mapping of records (§2), every reason Husk emits, and kubectl's STATUS column.

/// A container record, as the supervisor keeps it, in a few words.
enum Rec {
    case none
    case created
    case starting  // running, postStart not returned
    case running(started: Bool = true)
    case exited(Int32, TerminatedReason? = nil)
    /// Exited, then waiting to be restarted with `reason`.
    case waitingAfter(Int32, WaitingReason)
    /// Waiting before any instance existed (a pull, a create).
    case waitingFirst(WaitingReason)

    func state(_ name: String, _ kind: ContainerState.Kind) -> ContainerState {
        var c = ContainerState(name: name, kind: kind, image: "busybox")
        func inst(_ s: Instance.State, code: Int32? = nil, reason: TerminatedReason? = nil) -> Instance {
            var i = Instance(attempt: 0, id: "id-" + name, createdAt: "2026-12-06T14:00:00.000000000Z", logPath: "/l")
            i.state = s
            i.startedAt = s == .created ? nil : "2026-12-06T14:00:01.000000000Z"
            i.exitCode = code
            i.reason = reason
            i.postStartDone = s != .created
            return i
        }
        switch self {
        case .none: break
        case .created: c.instances = [inst(.created)]
        case .starting:
            var i = inst(.running)
            i.postStartDone = false
            c.instances = [i]
        case .running(let started):
            var i = inst(.running)
            i.startupDone = started
            c.instances = [i]
        case .exited(let code, let reason): c.instances = [inst(.exited, code: code, reason: reason)]
        case .waitingAfter(let code, let reason):
            c.instances = [inst(.exited, code: code)]
            c.waiting = (reason, "m")
        case .waitingFirst(let reason): c.waiting = (reason, "m")
        }
        return c
    }
}

struct PhaseCase: CustomTestStringConvertible, Sendable {
    var name: String
    var policy: RestartPolicy
    var inits: [Rec] = []
    var sidecars: [Rec] = []
    var apps: [Rec]
    var terminating = false
    var expected: PodPhase
    var testDescription: String { name }
}

extension Rec: @unchecked Sendable {}

@Suite("Typed pod status (pod-semantics §1, §2)")
struct StatusTests {
    static let phaseCases: [PhaseCase] = [
        // §1 rule 1: a failed init container fails a Never pod.
        .init(name: "init exited 1, Never", policy: .never, inits: [.exited(1)], apps: [.none], expected: .failed),
        .init(name: "init waiting after exit 1, Never", policy: .never, inits: [.waitingAfter(1, .crashLoopBackOff)], apps: [.none], expected: .failed),
        // A failed init container under OnFailure is retried: Pending.
        .init(name: "init exited 1, OnFailure", policy: .onFailure, inits: [.waitingAfter(1, .crashLoopBackOff)], apps: [.none], expected: .pending),
        // Rule 2: pending init, no app started.
        .init(name: "init running", policy: .always, inits: [.running()], apps: [.none], expected: .pending),
        .init(name: "init done, app not started", policy: .always, inits: [.exited(0)], apps: [.none], expected: .pending),
        // Rule 3: a waiting app container.
        .init(name: "app pulling", policy: .always, apps: [.waitingFirst(.errImagePull)], expected: .pending),
        .init(name: "app created, not started", policy: .always, apps: [.created], expected: .pending),
        .init(name: "app in postStart", policy: .always, apps: [.starting], expected: .pending),
        .init(name: "one running, one waiting", policy: .always, apps: [.running(), .waitingFirst(.containerCreating)], expected: .pending),
        // Rule 4.
        .init(name: "app running", policy: .always, apps: [.running()], expected: .running),
        .init(name: "one running, one exited 0", policy: .never, apps: [.running(), .exited(0)], expected: .running),
        // Rule 5.
        .init(name: "all exited 0, Never", policy: .never, apps: [.exited(0), .exited(0)], expected: .succeeded),
        .init(name: "one exited 1, Never", policy: .never, apps: [.exited(0), .exited(1)], expected: .failed),
        .init(name: "exited 1, OnFailure", policy: .onFailure, apps: [.exited(1)], expected: .running),
        .init(name: "exited 0, OnFailure", policy: .onFailure, apps: [.exited(0)], expected: .succeeded),
        .init(name: "exited 0, Always", policy: .always, apps: [.exited(0)], expected: .running),
        .init(name: "crash loop, Always", policy: .always, apps: [.waitingAfter(1, .crashLoopBackOff)], expected: .running),
        // A waiting container with a previous termination counts as stopped, never succeeded.
        .init(name: "waiting after exit 0, OnFailure", policy: .onFailure, apps: [.waitingAfter(0, .crashLoopBackOff)], expected: .running),
        // Terminal: only all-zero exits succeed (SIGTERM 143, SIGKILL 137 fail).
        .init(name: "stopped, exit 143", policy: .always, apps: [.exited(143)], terminating: true, expected: .failed),
        .init(name: "stopped, exit 137", policy: .always, apps: [.exited(137)], terminating: true, expected: .failed),
        .init(name: "stopped, exit 0", policy: .always, apps: [.exited(0)], terminating: true, expected: .succeeded),
        // Sidecars (§4): running but not started keeps init pending.
        .init(name: "sidecar not started", policy: .always, sidecars: [.running(started: false)], apps: [.none], expected: .pending),
        .init(name: "sidecar started, app running", policy: .always, sidecars: [.running()], apps: [.running()], expected: .running),
        .init(name: "sidecar waiting first", policy: .always, sidecars: [.waitingFirst(.errImagePull)], apps: [.none], expected: .pending),
        .init(name: "sidecar exited, app running", policy: .always, sidecars: [.exited(1)], apps: [.running()], expected: .running),
        .init(name: "sidecar running, apps done, Never", policy: .never, sidecars: [.running()], apps: [.exited(0)], expected: .running),
    ]

    @Test("kubelet's getPhase", arguments: phaseCases)
    func phase(_ t: PhaseCase) {
        var state = PodState()
        state.containers = t.inits.enumerated().map { $1.state("i\($0)", .initContainer) }
            + t.sidecars.enumerated().map { $1.state("s\($0)", .sidecar) }
            + t.apps.enumerated().map { $1.state("a\($0)", .app) }
        let hasInit = !t.inits.isEmpty || !t.sidecars.isEmpty
        let phase = PodPhase.compute(restartPolicy: t.policy, statuses: state.apiStatuses(podHasInit: hasInit), terminating: t.terminating)
        #expect(phase == t.expected)
    }

    @Test("record to API state (§2)")
    func apiState() {
        #expect(ContainerStatus(Rec.none.state("a", .app), podHasInit: false).state == .waiting(.containerCreating))
        #expect(ContainerStatus(Rec.none.state("a", .app), podHasInit: true).state == .waiting(.podInitializing))
        #expect(ContainerStatus(Rec.none.state("i", .initContainer), podHasInit: true).state == .waiting(.podInitializing))
        #expect(ContainerStatus(Rec.created.state("a", .app), podHasInit: false).state == .waiting(nil))
        #expect(ContainerStatus(Rec.starting.state("a", .app), podHasInit: false).state == .waiting(.containerCreating))
        #expect(ContainerStatus(Rec.running().state("a", .app), podHasInit: false).state.isRunning)
        // Defaults when the runtime gave no reason: Completed for 0, Error otherwise.
        #expect(ContainerStatus(Rec.exited(0).state("a", .app), podHasInit: false).state.terminated?.reason == .completed)
        #expect(ContainerStatus(Rec.exited(2).state("a", .app), podHasInit: false).state.terminated?.reason == .error)
        #expect(ContainerStatus(Rec.exited(137, .oomKilled).state("a", .app), podHasInit: false).state.terminated?.reason == .oomKilled)
        // A container kubelet will restart: Waiting with the reason, the exit in lastState.
        let s = ContainerStatus(Rec.waitingAfter(3, .crashLoopBackOff).state("a", .app), podHasInit: false)
        #expect(s.state == .waiting(.crashLoopBackOff, message: "m"))
        #expect(s.lastState?.exitCode == 3 && s.lastState?.reason == .error)
        #expect(!s.ready && !s.started)
        // started needs the startup probe; JSON at the edge carries Kubernetes' strings.
        #expect(!ContainerStatus(Rec.running(started: false).state("a", .app), podHasInit: false).started)
        let json = s.json
        #expect(json["state"]?["waiting"]?["reason"] == .string("CrashLoopBackOff"))
        #expect(json["lastState"]?["terminated"]?["reason"] == .string("Error"))
        #expect(json["lastState"]?["terminated"]?["exitCode"] == .number(3))
        #expect(ContainerStatus(Rec.created.state("a", .app), podHasInit: false).json["state"] == .object(["waiting": .object([:])]))
    }

    /// Every waiting reason Husk emits: its string, and what the controller and `husk run -d`
    /// make of it.
    static let waitingTable: [(WaitingReason, String, retried: Bool, error: Bool)] = [
        (.containerCreating, "ContainerCreating", false, false),
        (.podInitializing, "PodInitializing", false, false),
        (.crashLoopBackOff, "CrashLoopBackOff", false, true),
        (.errImagePull, "ErrImagePull", true, true),
        (.imagePullBackOff, "ImagePullBackOff", true, true),
        (.errImageNeverPull, "ErrImageNeverPull", true, true),
        (.invalidImageName, "InvalidImageName", true, true),
        (.imageInspectError, "ImageInspectError", true, true),
        (.createContainerConfigError, "CreateContainerConfigError", true, true),
        (.createContainerError, "CreateContainerError", true, true),
        (.runContainerError, "RunContainerError", false, true),
        (.postStartHookError, "PostStartHookError", false, true),
    ]

    @Test("every waiting reason")
    func waitingReasons() {
        #expect(Self.waitingTable.count == WaitingReason.allCases.count)
        for (r, text, retried, error) in Self.waitingTable {
            #expect(r.rawValue == text && "\(r)" == text)
            #expect(r.isRetried == retried, "\(r)")
            #expect(r.isError == error, "\(r)")
            #expect(WaitingReason(stored: text) == r)
        }
        #expect(WaitingReason.allCases.filter(\.clearedWhenPodFinishes) == [.crashLoopBackOff, .postStartHookError])
        // The image store's kubelet reasons map one to one; its own do not.
        for (image, waiting) in [(ImageError.Reason.errImagePull, WaitingReason.errImagePull), (.imagePullBackOff, .imagePullBackOff),
                                 (.errImageNeverPull, .errImageNeverPull), (.invalidImageName, .invalidImageName),
                                 (.imageInspectError, .imageInspectError)] {
            #expect(WaitingReason(image) == waiting)
        }
        #expect(WaitingReason(ImageError.Reason.storeError) == nil)
        // A failed CRI CreateContainer/StartContainer, by what failed.
        #expect(WaitingReason(StartFailure.Kind.config) == .createContainerConfigError)
        #expect(WaitingReason(StartFailure.Kind.create) == .createContainerError)
        #expect(WaitingReason(StartFailure.Kind.run) == .runContainerError)
    }

    @Test("every terminated reason")
    func terminatedReasons() {
        let table: [(TerminatedReason, String, Int32?)] = [
            (.completed, "Completed", 0), (.error, "Error", nil), (.oomKilled, "OOMKilled", nil),
            (.startError, "StartError", 128), (.containerStatusUnknown, "ContainerStatusUnknown", 137),
        ]
        #expect(table.count == TerminatedReason.allCases.count)
        for (r, text, code) in table {
            #expect(r.rawValue == text && "\(r)" == text)
            #expect(r.impliedExitCode == code)
        }
        #expect(TerminatedReason.exited(code: 0) == .completed)
        #expect(TerminatedReason.exited(code: 143) == .error)
        #expect(TerminatedReason.exited(code: 137, oomKilled: true) == .oomKilled)
        #expect(TerminatedReason(stored: "ContainerCannotRun", exitCode: 128) == .error)
        #expect(PodPhase.allCases.map(\.rawValue) == ["Pending", "Running", "Succeeded", "Failed", "Unknown"])
        #expect(PodPhase.allCases.filter(\.isTerminal) == [.succeeded, .failed])
        #expect(PodReason.allCases.map(\.rawValue) == ["DeadlineExceeded", "SandboxChanged", "SupervisorLost"])
    }

    @Test("status.json keeps the typed values")
    func roundTrip() throws {
        var state = PodState()
        state.phase = .failed
        state.reason = .deadlineExceeded
        state.containers = [Rec.exited(137, .oomKilled).state("a", .app), Rec.waitingAfter(1, .crashLoopBackOff).state("b", .app)]
        let pod = try PodManifest.parse(Array("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: busybox}, {name: b, image: busybox}]\n".utf8)).0
        let (back, pid) = try PodState.read(state.document(pod: pod, supervisorPid: 42))
        #expect(pid == 42)
        #expect(back.phase == .failed && back.reason == .deadlineExceeded)
        #expect(back.containers == state.containers)
        #expect(back.containers[1].waiting?.reason == .crashLoopBackOff)
        let doc = state.document(pod: pod, supervisorPid: 42)
        #expect(doc["status"]?["phase"] == .string("Failed"))
        #expect(doc["status"]?["reason"] == .string("DeadlineExceeded"))
    }
}
