import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A pod as the command line sees it: what `husk run` recorded and what its supervisor last
/// wrote.
public struct PodView: Sendable {
    public var pod: Pod
    public var settings: HuskSettings
    public var state: PodState
    public var supervisorPid: Int32
    /// The pod is looked after: its supervisor is alive, or its keeper is (and is starting a
    /// new supervisor after the last one died).
    public var supervisorAlive: Bool
    /// The keeper (0: none known).
    public var keeperPid: Int32 = 0

    public var paths: PodPaths { PodPaths(settings: settings, pod: pod) }
    public var uid: String { pod.metadata.uid }
    public var qualifiedName: String { "\(pod.metadata.namespace)/\(pod.metadata.name)" }

    /// Finished, or its supervisor is gone: nothing of it runs any more.
    public var isStopped: Bool { state.finished || !supervisorAlive }

    /// The state as reported: for a lost pod (supervisor and keeper gone before it finished),
    /// containers whose processes are gone are Terminated with kubelet's
    /// ContainerStatusUnknown (137, pod-semantics §2); what still runs stays Running.
    public var reported: PodState {
        guard !state.finished && !supervisorAlive else { return state }
        var lost = state
        for i in lost.containers.indices {
            guard let j = lost.containers[i].instances.indices.last else { continue }
            let inst = lost.containers[i].instances[j]
            guard inst.state != .exited, !ProcessInfo.isAlive(inst.pid, startTime: inst.pidStart) else { continue }
            lost.containers[i].instances[j].state = .exited
            lost.containers[i].instances[j].exitCode = 137
            lost.containers[i].instances[j].reason = .containerStatusUnknown
            lost.containers[i].instances[j].message = TerminatedReason.statusUnknownMessage
            lost.containers[i].ready = false
            lost.containers[i].waiting = nil
        }
        return lost
    }

    /// The Kubernetes Pod object (`husk inspect`).
    public var object: JSONValue {
        var doc = pod.json
        if case .object(var o) = doc {
            var st = reported.podStatus(pod: pod)
            if !state.finished && !supervisorAlive, case .object(var s) = st {
                // The supervisor died before the pod finished (pod-semantics §1: Unknown
                // means the state could not be obtained).
                s["phase"] = .string(PodPhase.unknown.rawValue)
                s["reason"] = .string(PodReason.supervisorLost.rawValue)
                s["message"] = .string(Self.lostMessage(supervisorPid, log: paths.supervisorLog))
                st = .object(s)
            }
            o["status"] = st
            doc = .object(o)
        }
        return doc
    }

    /// Why the pod is Unknown: the supervisor's last words when its log has any (it is
    /// empty when the supervisor was killed), and what to do.
    static func lostMessage(_ pid: Int32, log: String) -> String {
        var text = "the pod's supervisor (pid \(pid)) and its keeper are gone"
        let bytes = ((try? Files.read(log)) ?? nil) ?? []
        if let last = String(decoding: bytes.suffix(4096), as: UTF8.self).split(separator: "\n").last(where: { !$0.isEmpty }) {
            text += "; the last line of \(log): \(last)"
        } else {
            text += " (killed, or the node restarted: \(log) is empty)"
        }
        return text + "; husk rm removes what is left of the pod"
    }

    /// The phase as `husk pods` reports it.
    public var phase: PodPhase {
        if !state.finished && !supervisorAlive { return .unknown }
        return state.phase
    }
}

/// The pods under a state root: launching, finding, reading, removing.
public enum PodDirectory {
    static func podsDir(_ s: HuskSettings) -> String { s.state + "/pods" }
    static func namesDir(_ s: HuskSettings) -> String { s.state + "/names" }

    /// Every pod under `settings.state`, oldest first.
    public static func all(_ settings: HuskSettings) -> [PodView] {
        let uids = Files.list(podsDir(settings)) ?? []
        return uids.compactMap { read(settings, uid: $0) }.sorted {
            ($0.pod.metadata.creationTimestamp ?? "", $0.pod.metadata.name) < ($1.pod.metadata.creationTimestamp ?? "", $1.pod.metadata.name)
        }
    }

    /// The pod with this uid, or nil when there is none (or its record is unreadable).
    public static func read(_ settings: HuskSettings, uid: String) -> PodView? {
        guard !uid.contains("/"), !uid.hasPrefix(".") else { return nil }
        let dir = podsDir(settings) + "/" + uid
        guard let record = try? PodRecord.read(dir + "/pod.json") else { return nil }
        var state = PodState()
        var pid: Int32 = 0
        if let bytes = (try? Files.read(dir + "/status.json")) ?? nil, let doc = try? JSONParser.parse(bytes),
           let (s, p) = try? PodState.read(doc) {
            state = s
            pid = p
        } else {
            for c in record.pod.spec.initContainers {
                state.containers.append(ContainerState(name: c.name, kind: c.restartPolicy == "Always" ? .sidecar : .initContainer, image: c.image))
            }
            for c in record.pod.spec.containers { state.containers.append(ContainerState(name: c.name, kind: .app, image: c.image)) }
        }
        // supervisor.pid is written by each supervisor as it starts: newer than status.json
        // after a supervisor was replaced.
        if let text = (try? Files.readString(dir + "/supervisor.pid")) ?? nil, let p = Int32(text.trimmed()) { pid = p }
        var keeper: Int32 = 0
        if let text = (try? Files.readString(dir + "/keeper.pid")) ?? nil, let p = Int32(text.trimmed()) { keeper = p }
        var alive = isSupervisor(pid, uid: uid) || isKeeper(keeper, uid: uid)
        if pid == 0, keeper == 0, !alive {
            // No supervisor pid yet: `husk run` is between writing pod.json and spawning the
            // supervisor (milliseconds). A launcher that died there leaves the pod like this
            // for good: after 30 s it counts as lost.
            var st = stat()
            if fstatat(AT_FDCWD, dir + "/pod.json", &st, 0) == 0,
               Double(time(nil)) - Double(st.st_mtim.tv_sec) < 30 {
                alive = true
            }
        }
        // The supervisor writes its last status and then exits: a status read before that
        // write and a liveness check after the exit would make a finished pod look crashed.
        // Once the supervisor is seen gone, the status it left is final: read it again.
        if !alive, !state.finished, let bytes = (try? Files.read(dir + "/status.json")) ?? nil,
           let doc = try? JSONParser.parse(bytes), let (s, _) = try? PodState.read(doc) {
            state = s
        }
        return PodView(pod: record.pod, settings: record.settings, state: state, supervisorPid: pid,
                       supervisorAlive: alive, keeperPid: keeper)
    }

    /// Whether `pid` is the live keeper of pod `uid`.
    public static func isKeeper(_ pid: Int32, uid: String) -> Bool {
        guard pid > 0, let s = ProcessInfo.stat(pid), s.state != "Z", s.state != "X" else { return false }
        guard let cmd = (try? Files.read("/proc/\(pid)/cmdline")) ?? nil else { return false }
        let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return args.count >= 3 && args[0] == "husk-keeper" && args[1].hasSuffix("/pods/" + uid)
    }

    /// Whether `pid` is the live supervisor of pod `uid`.
    public static func isSupervisor(_ pid: Int32, uid: String) -> Bool {
        guard pid > 0, let s = ProcessInfo.stat(pid), s.state != "Z", s.state != "X" else { return false }
        guard let cmd = (try? Files.read("/proc/\(pid)/cmdline")) ?? nil else { return false }
        let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let last = args.last, last.hasSuffix("/pods/" + uid) else { return false }
        return args.count == 3 && args[1] == "supervise"
    }

    /// A pod by uid, or by name in `namespace`.
    public static func find(_ settings: HuskSettings, _ ref: String, namespace: String) throws(HuskError) -> PodView {
        if let v = read(settings, uid: ref) { return v }
        let nameFile = PodPaths.nameFile(settings, namespace: namespace, name: ref)
        if let text = (try? Files.readString(nameFile)) ?? nil, let v = read(settings, uid: text.trimmed()) { return v }
        throw HuskError(.notFound, "pod \"\(ref)\" not found in namespace \"\(namespace)\" (husk pods lists the pods)")
    }

    /// The pod's events, oldest first.
    public static func events(_ v: PodView) -> [JSONValue] {
        EventRecorder.read(v.paths.events)
    }

    // MARK: - Launch

    /// Records the pod and starts its keeper, detached in its own session, which starts the
    /// supervisor (`supervisor + [STATE_DIR]`, i.e. `husk supervise DIR`) and a new one
    /// whenever one is killed. Nothing is left behind when it fails. Returns the keeper: it
    /// exits with the supervisor's status once the pod has finished.
    public static func launch(_ pod: Pod, settings: HuskSettings, supervisor: [String]) throws(HuskError) -> (PodView, SpawnedProcess) {
        var pod = pod
        pod.metadata.creationTimestamp = Clock.rfc3339()
        let paths = PodPaths(settings: settings, pod: pod)
        do {
            for dir in [settings.state, podsDir(settings), namesDir(settings)] {
                try Files.makeDirectories(dir, mode: 0o700)
            }
        } catch {
            throw HuskError(.system, "cannot create \(settings.state)", cause: error)
        }
        // The name, the state directory and pod.json are made under the names lock, so two
        // launches never both take a name, and a launch killed half-way leaves nothing the
        // next claim cannot take over (issue 16 #1, #7).
        do {
            let lock = try namesLock(settings)
            defer { flock(lock.raw, LOCK_UN) }
            try claimName(settings, pod)
            let nameFile = PodPaths.nameFile(settings, namespace: pod.metadata.namespace, name: pod.metadata.name)
            // The name first: a pod.json always has its name (a name without one is a leftover).
            try Files.writeAtomically(nameFile, Array((pod.metadata.uid + "\n").utf8), mode: 0o600, durable: false)
            do {
                if mkdir(paths.state, 0o700) != 0 { throw HuskError(.system, "cannot create \(paths.state): \(currentErrno.text)") }
                if !pod.spec.hostUsers {
                    // Under the names lock, which every launch holds: the records are the allocation.
                    let taken = (Files.list(podsDir(settings)) ?? []).map { podsDir(settings) + "/" + $0 + "/userns" }
                    _ = try UserNamespaces.allocate(pool: try UserNamespaces.pool(), taken: taken, file: paths.userNamespace)
                }
                let record = PodRecord(pod: pod, settings: settings)
                try Files.writeAtomically(paths.podJSON, Array(record.json.serialized().utf8), mode: 0o600, durable: false)
            } catch {
                try? Files.removeTree(paths.state)
                unlink(nameFile)
                throw error
            }
        } catch let e as HuskError {
            throw e
        } catch {
            throw HuskError(.system, "cannot record pod \(pod.metadata.namespace)/\(pod.metadata.name) in \(paths.state)", cause: error)
        }
        func undo() {
            try? Files.removeTree(paths.state)
            releaseName(settings, namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid)
        }
        let process: SpawnedProcess
        do {
            process = try startKeeper(paths, supervisor: supervisor)
        } catch {
            undo()
            throw error
        }
        var state = PodState()
        for c in pod.spec.initContainers {
            state.containers.append(ContainerState(name: c.name, kind: c.restartPolicy == "Always" ? .sidecar : .initContainer, image: c.image))
        }
        for c in pod.spec.containers { state.containers.append(ContainerState(name: c.name, kind: .app, image: c.image)) }
        let view = PodView(pod: pod, settings: settings, state: state, supervisorPid: 0, supervisorAlive: true, keeperPid: process.pid)
        return (view, process)
    }

    /// Starts the pod's keeper, detached, which starts its supervisor (`supervisor` +
    /// the state directory) and starts it again when it dies.
    static func startKeeper(_ paths: PodPaths, supervisor: [String]) throws(HuskError) -> SpawnedProcess {
        do {
            var plan = SpawnPlan.host(
                argv: ["husk-keeper", paths.state] + supervisor + [paths.state],
                // glibc keeps the stacks of ended threads for reuse, their touched pages
                // resident (~40 KB in an idle supervisor, whose threads are one per request):
                // without the cache an ended thread's stack is unmapped.
                env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                      "GLIBC_TUNABLES=glibc.pthread.stack_cache_size=0"])
            plan.executable = try KeeperExecutable.open()
            let null = try FD.open("/dev/null", O_RDWR)
            let log = try FD.open(paths.supervisorLog, O_WRONLY | O_CREAT | O_APPEND, mode: 0o600)
            plan.stdio = [null, log, log]
            plan.setsid = true
            let process = try Spawner.spawn(plan)
            try? Files.writeAtomically(paths.keeperPid, Array("\(process.pid)\n".utf8), mode: 0o600, durable: false)
            return process
        } catch {
            throw HuskError(.system, "cannot start the pod's supervisor: \(error)")
        }
    }

    /// `<state>/names/.lock`, flocked: held while a name is claimed, released or collected.
    static func namesLock(_ settings: HuskSettings) throws(HuskError) -> FD {
        let path = namesDir(settings) + "/.lock"
        do {
            let fd = try FD.open(path, O_RDWR | O_CREAT, mode: 0o600)
            while flock(fd.raw, LOCK_EX) != 0 {
                guard currentErrno == .interrupted else { throw SystemCallError("flock", path, currentErrno) }
            }
            return fd
        } catch {
            throw HuskError(.system, "cannot lock \(path)", cause: error)
        }
    }

    /// Checks, under the names lock, that `<state>/names/<ns>_<name>` is free for the pod, as
    /// the API server keeps names unique. A name whose pod has no record is a leftover (a
    /// launch killed before pod.json was complete, or a removal that stopped half-way): it
    /// is taken over, and a record-less state directory it points to goes with it.
    static func claimName(_ settings: HuskSettings, _ pod: Pod) throws(HuskError) {
        let file = PodPaths.nameFile(settings, namespace: pod.metadata.namespace, name: pod.metadata.name)
        guard let text = (try? Files.readString(file)) ?? nil else { return }
        let other = text.trimmed()
        let dir = podsDir(settings) + "/" + other
        if !other.isEmpty, !other.contains("/"), !other.hasPrefix(".") {
            if Files.exists(dir + "/pod.json") {
                throw HuskError(
                    .alreadyExists,
                    "pod \"\(pod.metadata.namespace)/\(pod.metadata.name)\" already exists (uid \(other)): remove it first with husk rm \(pod.metadata.name)")
            }
            try? Files.removeTree(dir)
        }
        unlink(file)
    }

    /// Frees the name if it still belongs to `uid`.
    static func releaseName(_ settings: HuskSettings, namespace: String, name: String, uid: String) {
        guard let lock = try? namesLock(settings) else { return }
        defer { flock(lock.raw, LOCK_UN) }
        let file = PodPaths.nameFile(settings, namespace: namespace, name: name)
        if ((try? Files.readString(file)) ?? nil)?.trimmed() == uid { unlink(file) }
    }

    // MARK: - Removal

    /// Removes everything of a stopped pod: its state, its data (emptyDirs, upper dirs), its
    /// logs, its name and its image leases. A pod whose supervisor died before finishing is
    /// cleaned up first (its processes killed, mounts and cgroups removed).
    public static func remove(_ v: PodView) throws(HuskError) {
        guard v.isStopped else {
            throw HuskError(.invalidArgument, "pod \(v.qualifiedName) is running: stop it first (husk stop), or use husk rm --force")
        }
        let paths = v.paths
        if !v.state.finished { cleanUpAfterCrash(v) }
        // Nothing may be mounted below the pod's data any more.
        let mounts = ((try? MountInfo.read()) ?? []).filter { $0.mountPoint.hasPrefix(paths.data + "/") }
        for m in mounts.sorted(by: { $0.mountPoint.count > $1.mountPoint.count }) {
            try? Mount.unmount(m.mountPoint, detach: true)
        }
        var problems: [String] = []
        for dir in [paths.data, paths.logs] {
            do {
                try Files.removeTree(dir)
            } catch {
                problems.append("\(dir): \(error)")
            }
        }
        // The record goes last, and only when the rest went: a pod that could not be removed
        // stays listed, so husk rm can try again (it never silently leaves its data).
        guard problems.isEmpty else {
            throw HuskError(.system, "pod \(v.qualifiedName) was only partly removed (husk rm tries again): \(problems.joined(separator: "; "))")
        }
        do {
            try Files.removeTree(paths.state)
        } catch {
            problems.append("\(paths.state): \(error)")
        }
        releaseName(v.settings, namespace: v.pod.metadata.namespace, name: v.pod.metadata.name, uid: v.uid)
        if let store = try? ImageStore(root: v.settings.root) {
            for c in v.pod.spec.initContainers + v.pod.spec.containers { store.release("pod-\(v.uid)-\(c.name)") }
        }
        if !problems.isEmpty {
            throw HuskError(.system, "pod \(v.qualifiedName) was only partly removed: \(problems.joined(separator: "; "))")
        }
    }

    /// After a supervisor crash: kills what is left in the pod's cgroup (pause included),
    /// releases the address and removes the pod's mounts and cgroups.
    static func cleanUpAfterCrash(_ v: PodView) {
        let paths = v.paths
        if let mount = try? Cgroup2Mount.discover() { _ = removeCgroupTree(mount, paths.cgroup) }
        if !v.pod.spec.hostNetwork, let cni = try? CNI.load(settings: v.settings) {
            try? cni.del(containerID: v.uid, netns: "", sandbox: SandboxConfigBuilder(pod: v.pod, paths: paths).config())
        }
    }

    /// Kills everything in the pod's cgroup `path` (cgroup.kill) and removes it with every group
    /// below it, and `/husk` when that is left empty. Returns how many processes were in it, or
    /// nil when there was no such group.
    static func removeCgroupTree(_ mount: Cgroup2Mount, _ path: String) -> Int? {
        let pod = mount.group(path)
        guard pod.exists else { return nil }
        var groups: [Cgroup2Group] = []
        func walk(_ g: Cgroup2Group) {
            for name in Files.list(g.directory) ?? [] where Files.isDirectory(g.directory + "/" + name) {
                let child = mount.group(g.path + "/" + name)
                walk(child)
                groups.append(child)
            }
        }
        walk(pod)
        let procs = ([pod] + groups).reduce(0) { $0 + $1.processes().count }
        try? pod.kill()
        for g in groups { try? g.remove(timeout: 10) }
        try? pod.remove(timeout: 10, prune: { $0 == "/husk" })
        return procs
    }

    // MARK: - Garbage

    /// Removes what crashes orphaned under these settings and returns what it removed, one
    /// line each. Orphaned means: pods whose state is gone (a lost `--state`, as after a
    /// reboot) but whose data dir is still under `--root`, with their cgroups (processes
    /// killed), mounts, address (CNI DEL), image leases and logs; supervisors and keepers of
    /// such pods; state dirs without a pod record (a launch killed early, after 30 s); names
    /// of pods that do not exist. Pods that have a state are left alone, lost or not: `husk
    /// rm` removes those. Only Husk's own cgroup subtree is touched.
    public static func collectGarbage(_ settings: HuskSettings) -> [String] {
        var out: [String] = []
        let stateDirs = Files.list(podsDir(settings)) ?? []
        var known: Set<String> = []
        for uid in stateDirs {
            let dir = podsDir(settings) + "/" + uid
            // A `husk run` pod (pod.json) or a `husk serve` sandbox (sandbox.json).
            if Files.exists(dir + "/pod.json") || Files.exists(SandboxRecord.file(dir)) {
                known.insert(uid)
                continue
            }
            var st = stat()
            guard fstatat(AT_FDCWD, dir, &st, 0) == 0, Double(time(nil)) - Double(st.st_mtim.tv_sec) >= 30 else {
                known.insert(uid)  // a launch in progress
                continue
            }
            if (try? Files.removeTree(dir)) != nil { out.append("removed state dir \(dir) (no pod record)") }
        }
        if let lock = try? namesLock(settings) {
            // Under the lock, with the pod looked up again: a launch records its pod before
            // its name, so a name whose uid has no record now is a leftover.
            for name in Files.list(namesDir(settings)) ?? [] where !name.hasPrefix(".") {
                let file = namesDir(settings) + "/" + name
                let uid = ((try? Files.readString(file)) ?? nil)?.trimmed() ?? ""
                if uid.isEmpty || uid.contains("/") || uid.hasPrefix(".") || !Files.exists(podsDir(settings) + "/" + uid + "/pod.json") {
                    unlink(file)
                    out.append("removed name \(name) (pod \(uid) is gone)")
                }
            }
            flock(lock.raw, LOCK_UN)
        }
        // Pods with data but no state.
        let dataRoot = settings.root + "/pods"
        let orphans = (Files.list(dataRoot) ?? []).filter { !$0.hasPrefix(".") && !known.contains($0) }.sorted()
        guard !orphans.isEmpty else { return out }
        // Their supervisors and keepers (a state dir removed under a live pod).
        for pid in (Files.list("/proc") ?? []).compactMap({ Int32($0) }) {
            guard let cmd = (try? Files.read("/proc/\(pid)/cmdline")) ?? nil else { continue }
            let args = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let last = args.last, args.first == "husk-keeper" || (args.count == 3 && args[1] == "supervise") else { continue }
            let dir = args.first == "husk-keeper" && args.count > 1 ? args[1] : last
            guard dir.hasPrefix(podsDir(settings) + "/"), orphans.contains(String(dir.split(separator: "/").last ?? "")) else { continue }
            if let fd = try? PidFD.open(pid) {
                try? fd.signal(SIGKILL)
                _ = fd.waitForExit(timeout: 5)
                out.append("killed \(args.first == "husk-keeper" ? "keeper" : "supervisor") \(pid) of pod \(dir.split(separator: "/").last ?? "")")
            }
        }
        let cgroups = try? Cgroup2Mount.discover()
        let cni = try? CNI.load(settings: settings)
        let store = try? ImageStore(root: settings.root)
        for uid in orphans {
            let data = dataRoot + "/" + uid
            let record = try? PodRecord.read(data + "/pod.json")
            if let mount = cgroups, let procs = removeCgroupTree(mount, "/husk/" + uid) {
                out.append("removed cgroup /husk/\(uid)" + (procs > 0 ? " (\(procs) processes killed)" : ""))
            }
            let mounts = ((try? MountInfo.read()) ?? []).filter { $0.mountPoint.hasPrefix(data + "/") }
            for m in mounts.sorted(by: { $0.mountPoint.count > $1.mountPoint.count }) where (try? Mount.unmount(m.mountPoint, detach: true)) != nil {
                out.append("unmounted \(m.mountPoint)")
            }
            if let record {
                if !record.pod.spec.hostNetwork, let cni, (try? cni.del(containerID: uid, netns: "", sandbox: SandboxConfigBuilder(pod: record.pod, paths: PodPaths(settings: settings, pod: record.pod)).config())) != nil {
                    out.append("released the address of pod \(uid) (CNI DEL)")
                }
                for c in record.pod.spec.initContainers + record.pod.spec.containers {
                    let holder = "pod-\(uid)-\(c.name)"
                    if let store, store.leases().values.contains(where: { $0.contains(holder) }) {
                        store.release(holder)
                        out.append("released image lease \(holder)")
                    }
                }
                let logs = settings.logDir + "/\(record.pod.metadata.namespace)_\(record.pod.metadata.name)_\(uid)"
                if Files.exists(logs), (try? Files.removeTree(logs)) != nil { out.append("removed logs \(logs)") }
            }
            do {
                try Files.removeTree(data)
                out.append("removed data \(data)")
            } catch {
                out.append("could not remove data \(data): \(error)")
            }
        }
        return out
    }
}
