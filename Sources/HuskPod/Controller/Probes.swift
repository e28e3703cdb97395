import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// Startup, liveness and readiness probes (pod-semantics §9; kubelet's prober workers): one
/// thread per probe of a running container instance, ending with the instance.
extension PodSupervisor {
    enum ProbeKind: String {
        case startup = "Startup", liveness = "Liveness", readiness = "Readiness"
    }

    /// The probe if Husk runs it (every handler a probe may have).
    static func runnable(_ p: Probe?) -> Probe? {
        guard let p else { return nil }
        return p
    }

    /// Starts the workers of instance `h` of container `i` (right after it started).
    func startProbes(_ i: Int, _ h: ContainerHandle, _ c: ContainerSpec) {
        let started = Clock.monotonicSeconds()
        for (kind, probe) in [(ProbeKind.startup, c.startupProbe), (.liveness, c.livenessProbe), (.readiness, c.readinessProbe)] {
            guard let probe = Self.runnable(probe) else { continue }
            Threads.spawn("probe") { [self] in probeWorker(kind, probe, i, h, c, started: started) }
        }
    }

    /// kubelet's worker: waits initialDelaySeconds after the start, then probes every
    /// periodSeconds; the result changes after failureThreshold consecutive failures or
    /// successThreshold consecutive successes. Until the container has `started`, only the
    /// startup probe runs; once it has, only liveness and readiness. While the pod is being
    /// stopped, liveness and startup no longer run.
    func probeWorker(_ kind: ProbeKind, _ probe: Probe, _ i: Int, _ h: ContainerHandle, _ c: ContainerSpec, started: Double) {
        var next = started + Double(max(0, probe.initialDelaySeconds))
        let period = Double(max(1, probe.periodSeconds))
        var successes: Int64 = 0
        var failures: Int64 = 0
        // Initial results: readiness Failure, liveness Success, startup Unknown.
        var result: Bool? = kind == .liveness ? true : (kind == .readiness ? false : nil)
        func over() -> Bool { h.exit != nil || (kind != .readiness && state.terminating) || state.finished }
        while true {
            if m.wait(for: { over() }, until: next) { return }
            let isStarted = m.locked { () -> Bool in
                guard let j = instanceIndex(i, h.id) else { return false }
                return state.containers[i].instances[j].startupDone
            }
            if kind == .startup && isStarted { return }
            if kind != .startup && !isStarted {
                next = Clock.monotonicSeconds() + period
                continue
            }
            let (ok, output) = runProbe(probe, h, c)
            if m.locked({ over() }) { return }
            let st = m.locked { state.containers[i] }
            if ok {
                successes += 1
                failures = 0
            } else {
                failures += 1
                successes = 0
                events.warning("Unhealthy", "\(kind.rawValue) probe failed: \(output)", st)
            }
            if ok && successes >= max(1, probe.successThreshold) && result != true {
                result = true
                probeSucceeded(kind, i, h)
            } else if !ok && failures >= max(1, probe.failureThreshold) && result != false {
                result = false
                if probeFailed(kind, probe, i, h, c) { return }
            }
            next = Clock.monotonicSeconds() + period
        }
    }

    func probeSucceeded(_ kind: ProbeKind, _ i: Int, _ h: ContainerHandle) {
        m.locked {
            guard let j = instanceIndex(i, h.id), h.exit == nil else { return }
            switch kind {
            case .startup:
                state.containers[i].instances[j].startupDone = true
                if Self.runnable(spec(i).readinessProbe) == nil { state.containers[i].ready = true }
            case .readiness:
                state.containers[i].ready = true
            case .liveness:
                return
            }
            changed()
        }
    }

    /// Returns true when the worker is done (its container is being killed).
    func probeFailed(_ kind: ProbeKind, _ probe: Probe, _ i: Int, _ h: ContainerHandle, _ c: ContainerSpec) -> Bool {
        if kind == .readiness {
            m.locked {
                state.containers[i].ready = false
                changed()
            }
            return false
        }
        // Liveness or startup: killed through the normal path and restarted per policy.
        let restart = m.locked { () -> Bool in
            if state.containers[i].kind == .sidecar { return true }
            switch pod.spec.restartPolicy {
            case .always, .onFailure: return true  // a killed container exits non-zero
            case .never: return false
            }
        }
        var message = "Container \(c.name) failed \(kind.rawValue.lowercased()) probe"
        if restart { message += ", will be restarted" }
        let grace = probe.terminationGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds
        killContainer(h, c, grace: max(grace, 0), message: message)
        return true
    }

    /// One probe; returns whether it succeeded and what to say when it did not.
    func runProbe(_ probe: Probe, _ h: ContainerHandle, _ c: ContainerSpec) -> (Bool, String) {
        let timeout = Double(max(1, probe.timeoutSeconds))
        let deadline = Clock.monotonicSeconds() + timeout
        switch probe.handler {
        case .exec(let command):
            return execProbe(command, h, timeout: timeout)
        case .httpGet(let g):
            guard let port = probePort(g.port, c) else { return (false, "no container port named \(g.port)") }
            let host = g.host ?? runtime.sandbox.podIP
            let netns = host == nil ? runtime.sandbox.pause?.fd : nil
            let path = g.path.isEmpty ? "/" : g.path
            let r = HTTPClient.get(
                host: host ?? "127.0.0.1", port: port, path: path, scheme: g.scheme.lowercased(), headers: g.headers,
                userAgent: "kube-probe/1.34", deadline: deadline, netns: netns)
            switch r {
            case .success(let code) where code >= 200 && code < 400:
                return (true, "")
            case .success(let code):
                return (false, "HTTP probe failed with statuscode: \(code)")
            case .failure(let e):
                return (false, e.message)
            }
        case .tcpSocket(let host, let portRef):
            guard let port = probePort(portRef, c) else { return (false, "no container port named \(portRef)") }
            let target = host ?? runtime.sandbox.podIP
            let netns = target == nil ? runtime.sandbox.pause?.fd : nil
            if let e = TCPProbe.connect(host: target ?? "127.0.0.1", port: port, deadline: deadline, netns: netns) {
                return (false, e)
            }
            return (true, "")
        case .grpc(let port, let service):
            // kubelet dials the pod's IP; without one, the pod's loopback from inside its
            // network namespace.
            let host = runtime.sandbox.podIP
            let netns = host == nil ? runtime.sandbox.pause?.fd : nil
            return GRPCHealth.check(host: host ?? "127.0.0.1", port: Int(port), service: service ?? "", timeout: timeout,
                                    userAgent: "kube-probe/1.34", netns: netns)
        case .sleep:
            return (true, "")
        }
    }

    func probePort(_ ref: PortRef, _ c: ContainerSpec) -> Int? {
        switch ref {
        case .number(let n): return Int(n)
        case .name(let name): return c.ports.first { $0.name == name }.map { Int($0.containerPort) }
        }
    }

    /// CRI ExecSync with a timeout: success iff exit 0; the output (stdout and stderr, at most
    /// 10 KiB, as kubelet keeps) goes into the Unhealthy event.
    func execProbe(_ command: [String], _ h: ContainerHandle, timeout: Double) -> (Bool, String) {
        let r: ExecSyncResult
        do {
            r = try runtime.execSync(h, argv: command, timeout: timeout, outputLimit: 10 * 1024)
        } catch {
            return (false, "\(error)")
        }
        guard let code = r.exitCode else { return (false, "command \"\(command.joined(separator: " "))\" timed out") }
        return (code == 0, String(decoding: r.output, as: UTF8.self))
    }
}

/// A TCP connect (tcpSocket probes), from inside the pod's network namespace when `netns`.
enum TCPProbe {
    /// nil on success, else kubelet's text ("dial tcp 127.0.0.1:8080: connect: connection refused").
    static func connect(host: String, port: Int, deadline: Double, netns: FD?) -> String? {
        let r = PodNetwork.run(in: netns, deadline: deadline) { () -> String? in
            switch PodNetwork.dial(host: host, port: port, deadline: deadline) {
            case .success(let fd):
                close(fd)
                return nil
            case .failure(let e):
                return e.message
            }
        }
        switch r {
        case .success(let message): return message
        case .failure(let e): return e.message == "timed out" ? "dial tcp \(host):\(port): i/o timeout" : e.message
        }
    }
}
