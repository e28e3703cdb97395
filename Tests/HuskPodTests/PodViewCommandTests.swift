import HuskJSON
@testable import HuskPod
import HuskSystem
import Testing

/// What the command line asks of a pod's view before it prints: which container, which log,
/// whether the pod runs, how a detached start went. No root needed.
struct PodViewCommandTests {
    func view(_ containers: String, initContainers: String = "", alive: Bool = true) throws -> PodView {
        let pod = try accept("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
            \(initContainers.isEmpty ? "" : "  initContainers:\n" + initContainers)
              containers:
            \(containers)
            """).0
        var state = PodState()
        state.containers = pod.spec.initContainers.map { ContainerState(name: $0.name, kind: .initContainer, image: $0.image) }
            + pod.spec.containers.map { ContainerState(name: $0.name, kind: .app, image: $0.image) }
        return PodView(pod: pod, settings: HuskSettings(), state: state, supervisorPid: 1, supervisorAlive: alive)
    }

    func instance(_ id: String, _ s: Instance.State, code: Int32? = nil) -> Instance {
        var i = Instance(attempt: 0, id: id, createdAt: "2026-12-06T14:00:00.000000000Z", logPath: "/l/\(id)")
        i.state = s
        i.startedAt = s == .created ? nil : "2026-12-06T14:00:01.000000000Z"
        i.exitCode = code
        i.postStartDone = s != .created
        return i
    }

    @Test("the container: the one asked for, else the first app container, saying so as kubectl does when there was a choice")
    func pickContainer() throws {
        let one = try view("  - {name: a, image: busybox}")
        #expect(try one.pickContainer(nil) == ("a", nil))
        let many = try view("  - {name: a, image: busybox}\n  - {name: b, image: busybox}", initContainers: "  - {name: i, image: busybox}")
        let (name, note) = try many.pickContainer(nil)
        #expect(name == "a")
        #expect(note == #"Defaulted container "a" out of: a, b, i (init)"#)
        #expect(try many.pickContainer("i") == ("i", nil))
        #expect(throws: HuskError.self) { try many.pickContainer("x") }
        do {
            _ = try many.pickContainer("x")
        } catch {
            #expect(error.code == .notFound)
            #expect(error.message == "container x is not valid for pod p: choose one of: [i a b]")
        }
    }

    @Test("the log of the latest instance, or the previous one; none yet is said with the reason")
    func logInstance() throws {
        var v = try view("  - {name: a, image: busybox}")
        #expect(throws: HuskError.self) { try v.logInstance(container: "x", previous: false) }
        do {
            _ = try v.logInstance(container: "a", previous: false)
        } catch {
            #expect(error.message == #"container "a" in pod "p" is waiting to start: ContainerCreating"#)
        }
        do {
            _ = try v.logInstance(container: "a", previous: true)
        } catch {
            #expect(error.message == #"previous terminated container "a" in pod "p" not found"#)
        }
        v.state.containers[0].instances = [instance("one", .exited, code: 1), instance("two", .running)]
        #expect(try v.logInstance(container: "a", previous: false).id == "two")
        #expect(try v.logInstance(container: "a", previous: true).id == "one")
        #expect(!v.hasEnded(container: "a", instance: "two"))
        #expect(v.hasEnded(container: "a", instance: "one"))
        #expect(v.hasEnded(container: "a", instance: "gone"))
        v.supervisorAlive = false
        #expect(v.hasEnded(container: "a", instance: "two"))
    }

    @Test("exec and attach need a running pod")
    func requireRunning() throws {
        var v = try view("  - {name: a, image: busybox}")
        try v.requireRunning()
        v.state.finished = true
        #expect(throws: HuskError.self) { try v.requireRunning() }
        let lost = try view("  - {name: a, image: busybox}", alive: false)
        do {
            try lost.requireRunning()
            Issue.record("a lost pod runs")
        } catch {
            #expect(error.code == .invalidState)
            #expect(error.message == "pod default/p is not running")
        }
    }

    @Test("how a detached start went: started, failed (with the container that failed it), supervisor gone, stuck")
    func startOutcome() throws {
        var v = try view("  - {name: a, image: busybox}")
        v.state.initialized = true
        v.state.containers[0].instances = [instance("one", .running)]
        #expect(v.startOutcome == .started)
        v.state.containers[0].instances = [instance("one", .exited, code: 3)]
        v.state.phase = .failed
        #expect(v.startOutcome == .failed("pod default/p failed: container a exited with 3 (Error)"))
        v.state.phase = .pending
        v.state.containers[0].instances = []
        v.state.containers[0].waiting = (.errImagePull, "no such image")
        #expect(v.startOutcome == .waiting("pod default/p: container a is waiting: ErrImagePull: no such image"))
        v.supervisorAlive = false
        #expect(v.startOutcome == .failed("the supervisor of pod default/p exited; see \(v.paths.supervisorLog)"))
    }
}
