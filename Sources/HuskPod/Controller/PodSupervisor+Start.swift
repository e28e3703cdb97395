import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

extension PodSupervisor {
    // MARK: - Starting a container (kubelet's startContainer)

    /// Pull, create, start, postStart; blocks until postStart returned.
    func startContainer(_ i: Int) {
        let c = spec(i)
        let now = Clock.monotonicSeconds()
        let st = m.locked { () -> ContainerState in
            // The restart is happening: advance the back-off (§8).
            if state.containers[i].latest?.state == .exited {
                let e = crashBackoff[c.name]
                crashBackoff[c.name] = (e == nil ? 10 * scale : min(e!.delay * 2, 300 * scale), now)
            }
            return state.containers[i]
        }
        guard let (image, layers) = ensureImage(i, c, st) else { return }
        if m.locked({ state.terminating }) { return }

        // CreateContainer.
        let attempt = (st.latest?.attempt).map { $0 + 1 } ?? 0
        let id = PodRuntimeService.newID()
        let logPath = paths.log(c.name, attempt: attempt)
        let handle: ContainerHandle
        do throws(StartFailure) {
            // kubelet's generateContainerConfig, then CRI CreateContainer.
            let config: ContainerConfig
            do {
                config = try ContainerConfigBuilder(pod: pod, container: c, sandbox: sandbox)
                    .config(attempt: attempt, image: image, layers: layers, logPath: logPath)
            } catch {
                throw StartFailure(error.reason == .createContainerConfigError ? .config : .create, error.message)
            }
            handle = try runtime.createContainer(config, id: id) { [self] h, status in containerExited(h, status) }
        } catch {
            if error.startError {
                // containerd: the task could not be created; the container ends as StartError.
                m.locked {
                    var inst = Instance(attempt: attempt, id: id, createdAt: Clock.rfc3339Nano(), logPath: logPath)
                    inst.state = .exited
                    inst.exitCode = 128
                    inst.reason = .startError
                    inst.message = error.message
                    inst.finishedAt = Clock.rfc3339Nano()
                    inst.finishedMono = Clock.monotonicSeconds()
                    addInstance(i, inst)
                    changed()
                }
            } else {
                m.locked {
                    state.containers[i].waiting = (WaitingReason(error.kind), error.message)
                    retryAt[c.name] = Clock.monotonicSeconds() + 10 * scale
                    changed()
                }
            }
            events.warning("Failed", "Error: \(error.message)", st)
            return
        }
        let terminating = m.locked { () -> Bool in
            var inst = Instance(attempt: attempt, id: id, createdAt: Clock.rfc3339Nano(), logPath: logPath)
            inst.pid = handle.pid
            inst.pidStart = ProcessInfo.stat(handle.pid)?.startTime ?? 0
            addInstance(i, inst)
            state.containers[i].waiting = nil
            state.containers[i].imageID = image.repoDigests.first ?? image.id.description
            retryAt[c.name] = nil
            handles[c.name] = handle
            changed()
            return state.terminating
        }
        events.normal("Created", "Created container: \(c.name)", st)
        if terminating { return }  // the stop sweeps it up

        // StartContainer.
        do {
            try runtime.startContainer(handle)
        } catch {
            m.locked {
                if let j = instanceIndex(i, id) {
                    state.containers[i].instances[j].reason = .startError
                    state.containers[i].instances[j].exitCode = 128
                    state.containers[i].instances[j].message = error.message
                    changed()
                }
            }
            events.warning("Failed", "Error: \(error.message)", st)
            _ = m.wait(for: { handle.exit != nil }, until: Clock.monotonicSeconds() + 10)
            return
        }
        // The start's own time, for startedAt and the Started event: taking `m` and writing
        // the status may wait (on another thread, on the disk), and the container runs already.
        let started = Clock.now()
        let startedMono = Clock.monotonicSeconds()
        m.locked {
            if let j = instanceIndex(i, id) {
                if state.containers[i].instances[j].state == .created { state.containers[i].instances[j].state = .running }
                state.containers[i].instances[j].startedAt = Clock.rfc3339Nano(started)
                state.containers[i].instances[j].startedMono = startedMono
                state.containers[i].instances[j].postStartDone = c.lifecycle?.postStart == nil
                state.containers[i].instances[j].startupDone = Self.runnable(c.startupProbe) == nil
                // Without a readiness probe a container is ready once it runs (§9); with one,
                // once the probe says so.
                state.containers[i].ready = false
                if c.lifecycle?.postStart == nil && Self.runnable(c.readinessProbe) == nil
                    && state.containers[i].instances[j].state == .running {
                    state.containers[i].ready = true
                }
            }
            changed()
        }
        events.normal("Started", "Started container \(c.name)", st, at: started)
        startProbes(i, handle, c)

        // postStart: awaited; the container is Waiting until it returns (§5).
        guard let hook = c.lifecycle?.postStart else { return }
        let failure = Hooks.run(hook, in: handle, runtime: runtime, container: c, deadline: nil) { [self] in
            m.locked { state.terminating || handle.exit != nil }
        }
        if let failure {
            let message = hookFailureMessage(hook, container: c, failure)
            events.warning("FailedPostStartHook", "PostStartHook failed", st)
            // The reason is set before the kill: no status may show the container exited
            // without it (`husk run -d` would take that for a container that ran and ended).
            m.locked {
                let willRestart = pod.spec.restartPolicy != .never || state.containers[i].kind == .sidecar
                if willRestart && !state.terminating { state.containers[i].waiting = (.postStartHookError, message) }
                changed()
            }
            killContainer(handle, c, grace: max(pod.spec.terminationGracePeriodSeconds, 0), message: "FailedPostStartHook")
            return
        }
        m.locked {
            if let j = instanceIndex(i, id) {
                state.containers[i].instances[j].postStartDone = true
                if state.containers[i].instances[j].state == .running && Self.runnable(c.readinessProbe) == nil {
                    state.containers[i].ready = true
                }
            }
            changed()
        }
    }

    /// kubelet's hook error messages (lifecycle/handlers.go).
    func hookFailureMessage(_ h: Handler, container c: ContainerSpec, _ failure: String) -> String {
        switch h {
        case .exec(let command):
            return "Exec lifecycle hook ([\(command.joined(separator: " "))]) for Container \"\(c.name)\" in Pod \"\(podDescription)\" failed - error: \(failure), message: \"\""
        case .httpGet(let g):
            return "HTTP lifecycle hook (\(g.path)) for Container \"\(c.name)\" in Pod \"\(podDescription)\" failed - error: \(failure)"
        case .sleep:
            return "Sleep lifecycle hook for Container \"\(c.name)\" in Pod \"\(podDescription)\" failed - error: \(failure)"
        case .tcpSocket, .grpc:
            return "Cannot run handler: \(failure)"
        }
    }

    func instanceIndex(_ i: Int, _ id: String) -> Int? {
        state.containers[i].instances.lastIndex { $0.id == id }
    }

    /// Records a new instance; only the newest two are kept (state and lastState).
    func addInstance(_ i: Int, _ inst: Instance) {
        state.containers[i].instances.append(inst)
        if state.containers[i].instances.count > 2 { state.containers[i].instances.removeFirst() }
        state.containers[i].restartCount = inst.attempt
    }

    /// EnsureImageExists (§7): the image and its layers, or nil with the container Waiting.
    func ensureImage(_ i: Int, _ c: ContainerSpec, _ st: ContainerState) -> (ImageRecord, [String])? {
        func fail(_ reason: WaitingReason, _ message: String, retry: Double) {
            m.locked {
                state.containers[i].waiting = (reason, message)
                retryAt[c.name] = retry
                changed()
            }
        }
        let store: ImageStore
        let sources: [LayoutSource]
        do {
            var options = ImageStoreOptions()
            if let cap = settings.maxLayerSize { options.maxLayerBytes = cap }
            store = try ImageStore(root: settings.root, options: options)
            sources = try settings.imageSources.map { (s) throws(ImageError) in try LayoutSource.parse(s) }
        } catch {
            fail(.imageInspectError, "Failed to inspect image \"\(c.image)\": \(error.message)", retry: Clock.monotonicSeconds() + 10 * scale)
            events.warning("InspectFailed", "Failed to inspect image \"\(c.image)\": \(error.message)", st)
            return nil
        }
        // Parse first: a malformed reference is InvalidImageName and is never retried.
        if (try? ImageReference(parsing: c.image)) == nil {
            let message = "Failed to apply default image tag \"\(c.image)\": couldn't parse image name \"\(c.image)\": invalid reference format"
            fail(.invalidImageName, message, retry: .infinity)
            events.warning("InspectFailed", message, st)
            events.warning("Failed", "Error: InvalidImageName", st)
            return nil
        }
        let present = (try? store.image(for: ImageReference(parsing: c.image))) ?? nil
        let willPull = c.imagePullPolicy == .always || (c.imagePullPolicy == .ifNotPresent && present == nil)
        if willPull {
            // Inside the image's back-off window nothing is tried (§7).
            let key = c.image
            if let e = m.locked({ pullBackoff[key] }), Clock.monotonicSeconds() - e.stamp < e.delay {
                fail(.imagePullBackOff, "Back-off pulling image \"\(c.image)\"", retry: e.stamp + e.delay)
                events.normal("BackOff", "Back-off pulling image \"\(c.image)\"", st)
                events.warning("Failed", "Error: ImagePullBackOff", st)
                return nil
            }
            events.normal("Pulling", "Pulling image \"\(c.image)\"", st)
        }
        // The pod's pull secrets, read at each pull (a pod-level event names those it cannot get).
        var secrets: [JSONValue] = []
        if willPull && !pod.spec.imagePullSecrets.isEmpty {
            let loaded = PullSecrets.load(pod.spec.imagePullSecrets, namespace: pod.metadata.namespace, dir: settings.secretsDir)
            if let message = loaded.eventMessage { events.warning("FailedToRetrieveImagePullSecret", message) }
            secrets = loaded.configs
        }
        let started = Clock.monotonicSeconds()
        do {
            let (image, pulled) = try store.ensure(c.image, policy: c.imagePullPolicy, sources: sources,
                                                   registry: RegistryHelper.puller(settings, store: store, pullSecrets: secrets))
            let layers = try store.snapshotPaths(image)
            try store.lease("pod-\(pod.metadata.uid)-\(c.name)", image: image.id)
            if pulled {
                // kubelet prints the durations truncated to milliseconds.
                let took = goDuration(((Clock.monotonicSeconds() - started) * 1000).rounded(.down) / 1000)
                events.normal("Pulled", "Successfully pulled image \"\(c.image)\" in \(took) (\(took) including waiting). Image size: \(image.size) bytes.", st)
                m.locked { pullBackoff[c.image] = nil }
            } else {
                events.normal("Pulled", "Container image \"\(c.image)\" already present on machine", st)
            }
            return (image, layers)
        } catch {
            switch error.reason {
            case .errImageNeverPull:
                fail(.errImageNeverPull, error.message, retry: Clock.monotonicSeconds() + 10 * scale)
                events.warning("ErrImageNeverPull", error.message, st)
                events.warning("Failed", "Error: ErrImageNeverPull", st)
            case .invalidImageName:
                fail(.invalidImageName, error.message, retry: .infinity)
                events.warning("InspectFailed", error.message, st)
                events.warning("Failed", "Error: InvalidImageName", st)
            default:
                let now = Clock.monotonicSeconds()
                let entry = m.locked { () -> (delay: Double, stamp: Double) in
                    let e = pullBackoff[c.image]
                    let next = (delay: e == nil ? 10 * scale : min(e!.delay * 2, 300 * scale), stamp: now)
                    pullBackoff[c.image] = next
                    pullFailedAt[c.name] = now
                    return next
                }
                let message = error.message.hasPrefix("Failed to pull image") ? error.message : "Failed to pull image \"\(c.image)\": \(error.message)"
                fail(.errImagePull, message, retry: entry.stamp + entry.delay)
                events.warning("Failed", message, st)
                events.warning("Failed", "Error: ErrImagePull", st)
            }
            return nil
        }
    }
}
