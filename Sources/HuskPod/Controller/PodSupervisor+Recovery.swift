import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension PodSupervisor {
    // MARK: - Taking over from a dead supervisor

    static let statusUnknownMessage = TerminatedReason.statusUnknownMessage

    /// Takes over the pod a dead supervisor left (its last status.json): the pause process and
    /// every container that still runs are adopted (their output pipes come from the keeper),
    /// exits the keeper recorded while no supervisor ran are reported as they happened, and
    /// what ran but left no trace ends as ContainerStatusUnknown (137). A stop that was going
    /// on goes on, with what is left of its grace. Runs before the controller starts.
    func recover(_ previous: PodState) {
        let held = keeper?.takeInherited() ?? [:]
        var claimed: Set<String> = []
        var running = 0, exited = 0, lost = 0
        m.locked {
            let fresh = state.containers
            state = previous
            killBy.withLock { $0 = previous.killByMono }
            // The same pod.json: the containers are the same, in the same order.
            if state.containers.map(\.name) != fresh.map(\.name) { state.containers = fresh }
            recovered = true
            sandboxAttempt = 1
        }
        let pauseAlive = previous.sandboxReady && runtime.adoptSandbox(
            pausePid: previous.pausePid, pauseStart: previous.pauseStart, podIP: previous.podIP,
            createdAt: previous.sandboxCreatedAt, onPauseExit: { [self] status in pauseExited(status ?? .exited(255), attempt: 1) })
        if !previous.sandboxReady {
            // Lost while the sandbox was being made: what exists of it is taken down and it is
            // made again.
            _ = runtime.adoptSandbox(pausePid: previous.pausePid, pauseStart: previous.pauseStart, podIP: nil,
                                     createdAt: nil, onPauseExit: { _ in })
            runtime.discardPartialSandbox()
        }
        m.locked { sandboxAdopted = pauseAlive }
        let store = try? ImageStore(root: settings.root)
        for i in state.containers.indices {
            guard let l = m.locked({ state.containers[i].latest }), l.state != .exited else { continue }
            let c = spec(i)
            if l.state == .running, pauseAlive, let store, let ref = try? ImageReference(parsing: c.image),
               let image = (try? store.image(for: ref)) ?? nil, let layers = try? store.snapshotPaths(image) {
                do {
                    guard let config = try? ContainerConfigBuilder(pod: pod, container: c, sandbox: sandbox)
                        .config(attempt: l.attempt, image: image, layers: layers, logPath: l.logPath, prepareVolumes: false)
                    else { throw HuskError(.invalidArgument, "cannot work out container \(c.name)'s settings again") }
                    let h = try runtime.adoptContainer(
                        config, id: l.id, pid: l.pid, start: l.pidStart, outputs: held[l.id] ?? []
                    ) { [self] h, status in containerExited(h, status) }
                    claimed.insert(l.id)
                    running += 1
                    m.locked {
                        handles[c.name] = h
                        if let j = instanceIndex(i, l.id) {
                            // A postStart the dead supervisor was waiting for is not run again.
                            state.containers[i].instances[j].postStartDone = true
                            if Self.runnable(c.readinessProbe) == nil { state.containers[i].ready = true }
                        }
                    }
                    startProbes(i, h, c)
                    continue
                } catch {
                    // Gone: reported below from what the keeper recorded.
                }
            }
            let recorded = l.pid > 0 ? KeeperLink.recordedExit(stateDirectory: paths.state, pid: l.pid, start: l.pidStart, timeout: 0) : nil
            m.locked {
                guard let j = instanceIndex(i, l.id) else { return }
                var inst = state.containers[i].instances[j]
                inst.state = .exited
                inst.finishedAt = Clock.rfc3339Nano()
                inst.finishedMono = Clock.monotonicSeconds()
                if l.state == .created {
                    // It waited at its start gate, which closed with the supervisor.
                    inst.exitCode = 128
                    inst.reason = .startError
                    inst.message = "the pod's supervisor was lost before the container was started"
                    lost += 1
                } else if let recorded {
                    inst.exitCode = recorded.code
                    inst.reason = .exited(code: recorded.code)
                    exited += 1
                } else {
                    inst.exitCode = 137
                    inst.reason = .containerStatusUnknown
                    inst.message = Self.statusUnknownMessage
                    lost += 1
                }
                state.containers[i].instances[j] = inst
                state.containers[i].ready = false
            }
        }
        // Pipes of instances that are gone, and exits nobody asked for.
        for (id, _) in held where !claimed.contains(id) { keeper?.drop(id) }
        for name in Files.list(paths.exits) ?? [] { unlink(paths.exits + "/" + name) }
        let how = keeper?.lost ?? "lost"
        events.warning(
            "SupervisorRestarted",
            "The pod's supervisor was \(how); pid \(getpid()) took over: \(running) running container(s) adopted, \(exited) exited meanwhile, \(lost) lost")
        m.locked { changed() }
        if previous.terminating {
            // The stop goes on with what is left of its grace.
            let grace = previous.stopGrace ?? pod.spec.terminationGracePeriodSeconds
            let spent = previous.stopStartedMono.map { Int64(Clock.monotonicSeconds() - $0) } ?? 0
            requestStop(grace: max(0, grace - spent))
        } else if previous.sandboxReady && !pauseAlive {
            m.locked {
                state.sandboxReady = false
                state.reason = .sandboxChanged
                state.message = "the pod's sandbox (pause) ended while its supervisor was down; Husk does not re-create sandboxes, so the pod is stopped"
                changed()
            }
            events.warning("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            requestStop(grace: nil)
        }
    }
}
