import FoundationEssentials
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

extension Container {
    /// What `exec` runs and how.
    public struct ExecOptions: Sendable {
        /// The process (runtime-spec `process`): from `--process`, or the container's own with
        /// the command line's changes.
        public var process: Spec.Process
        public var stdio: [FD?] = [nil, nil, nil]
        /// Connected to the caller's console socket: the pty master goes there.
        public var consoleSocket: FD? = nil
        public var preserveFDs: [FD] = []
        public var pidFile: String? = nil
        /// Run in a paused container too (runc --ignore-paused).
        public var ignorePaused = false
        /// A sub-cgroup of the container's group to put the process in (runc --cgroup).
        public var subCgroup: String? = nil
        /// Whether the caller returns at once (a terminal then needs a console socket).
        public var detached = false
        public var warn: @Sendable (String) -> Void = { _ in }

        public init(process: Spec.Process) {
            self.process = process
        }
    }

    /// The container's spec as created (its bundle's config.json).
    public func spec() throws(HuskError) -> Spec {
        try RuntimeBundle.load(record.bundle).spec
    }

    /// Starts a new process in the container: every namespace of the container (joined through
    /// its init's pidfd), its cgroup, and the security settings of `process` (user,
    /// capabilities — inheritable only when listed —, no_new_privs, rlimits) and the spec's
    /// seccomp. Returns once the process has exec'd; the caller is its parent.
    public func exec(_ o: ExecOptions) throws(HuskError) -> SpawnedProcess {
        switch status {
        case .running, .created: break
        case .paused where o.ignorePaused: break
        case .paused: throw HuskError(.invalidState, "cannot exec in a paused container (use --ignore-paused to override)")
        case .creating: throw HuskError(.invalidState, "cannot exec in a container that is still being created")
        case .stopped: throw HuskError(.invalidState, "cannot exec in a stopped container")
        }
        let spec = try self.spec()
        var withProcess = spec
        withProcess.process = o.process
        var problems = SpecProblems()
        withProcess.validateProcess(&problems)
        if !problems.errors.isEmpty { throw HuskError(.invalidArgument, "process: " + problems.errors.joined(separator: "; ")) }
        try Self.checkTerminal(o.process.terminal ?? false, consoleSocket: o.consoleSocket != nil, detached: o.detached)

        // The init's pidfd pins it: once it is open and the start time matches, it is the
        // container's process for as long as we hold it.
        let pidfd: PidFD
        do {
            pidfd = try PidFD.open(record.pid)
        } catch {
            throw HuskError(.invalidState, "cannot exec in a stopped container", cause: error)
        }
        guard ProcessInfo.isAlive(record.pid, startTime: record.pidStartTime) else {
            throw HuskError(.invalidState, "cannot exec in a stopped container")
        }

        var plan = SpawnPlan()
        var warnings: [String] = []
        SpawnPlanner.applyProcess(o.process, to: &plan, warnings: &warnings)
        for w in problems.warnings + warnings { o.warn(w) }
        var joinFlags: Namespaces = []
        var joinsPid = false
        for ns in spec.linux?.namespaces ?? [] {
            guard let flag = Namespaces(name: ns.type) else { continue }
            switch ns.type {
            case "pid": joinsPid = true
            case "time": continue  // refused at create
            default: joinFlags.insert(flag)
            }
        }
        // No mount namespace of its own: the container was entered by chroot, and so is this.
        plan.rootfsChroot = !joinFlags.contains(.mount)
        if let sc = spec.linux?.seccomp {
            let (program, w) = try SeccompProfile.compile(sc)
            plan.seccomp = program
            for x in w { o.warn(x) }
        }
        guard let g = record.cgroup, g.exists else { throw HuskError(.invalidState, "container \(id) has no cgroup") }
        var target = g
        if let sub = o.subCgroup, !sub.isEmpty {
            if sub.split(separator: "/").contains("..") || sub.hasPrefix("/") {
                throw HuskError(.invalidArgument, "--cgroup: \"\(sub)\" must be a path below the container's cgroup")
            }
            target = g.mount.group(g.path + "/" + sub)
            guard target.exists else { throw HuskError(.notFound, "--cgroup: \(target.directory) does not exist") }
        }
        plan.stdio = o.stdio
        plan.preserveFDs = o.preserveFDs
        let terminal: Engine.ExecTerminal = o.process.terminal == true ? o.consoleSocket.map { .socket($0) } ?? .none : .none
        let p = try Engine.exec(plan, into: pidfd, namespaces: joinFlags, joinPid: joinsPid, cgroup: target, terminal: terminal).process
        if let pidFile = o.pidFile {
            do {
                try Files.writeAtomically(Files.absolute(pidFile), Array("\(p.pid)".utf8), durable: false)
            } catch {
                try? p.pidfd.signal(SIGKILL)
                _ = try? p.pidfd.wait()
                throw HuskError(.system, "cannot write the pid file", cause: error)
            }
        }
        return p
    }
}

/// Where `create` leaves the console pair it made for a foreground caller.
public final class ForegroundConsole: @unchecked Sendable {
    public var pair: ConsolePair? = nil
    public init() {}
}

/// The caller's side of a console socket made in-process (a foreground run or exec with a
/// terminal and no --console-socket): a SOCK_SEQPACKET pair.
public final class ConsolePair: Sendable {
    public let ours: FD
    public let theirs: FD

    public init() throws(HuskError) {
        do {
            (ours, theirs) = try UnixSocket.seqpacketPair()
        } catch {
            throw HuskError(.system, "socketpair: \(error.errno.text)")
        }
    }

    /// The pty master the child sent (waits up to 5 s).
    public func receiveMaster() -> FD? { Self.receiveMaster(from: ours) }

    /// The first fd that comes over `sock` within 5 s (others sent with it are closed).
    public static func receiveMaster(from sock: FD) -> FD? {
        var buf = [UInt8](repeating: 0, count: 8)
        guard (try? Poll.firstReadable([sock.raw], timeoutMilliseconds: 5000)) == 0 else { return nil }
        guard let (n, fds) = try? UnixSocket.receive(sock, into: &buf), n > 0 else { return nil }
        return fds.first  // the others close with the array
    }
}
