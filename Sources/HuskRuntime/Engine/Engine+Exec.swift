import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

extension Engine {
    /// Where the terminal of an exec'd process goes.
    public enum ExecTerminal: Sendable {
        /// No terminal: the process gets `plan.stdio`.
        case none
        /// The pty master goes over the caller's console socket (runc --console-socket).
        case socket(FD)
        /// The engine takes the master and returns it (the caller relays it).
        case returned
    }

    /// Starts a process inside a running container: the namespaces `namespaces` of its init
    /// (joined through the init's pidfd, several at once), its pid namespace when `joinPid`,
    /// and `cgroup`. `plan` holds the process (user, capabilities, seccomp, env, cwd, argv,
    /// stdio; rlimits when the caller set them). Returns once the process has exec'd, with the pty master for
    /// `.returned`; the caller is its parent.
    public static func exec(
        _ plan: SpawnPlan, into initPidfd: PidFD, namespaces: Namespaces, joinPid: Bool, cgroup: Cgroup2Group,
        terminal: ExecTerminal = .none
    ) throws(HuskError) -> (process: SpawnedProcess, master: FD?) {
        var p = plan
        p.joins = [.init(fd: initPidfd.fd, type: namespaces)]
        p.pidNamespace = joinPid ? initPidfd.fd : nil
        if p.rootfsChroot {
            // The container was entered by chroot in the runtime's mount namespace: so is this.
            p.rootfsChroot = false
            do {
                p.enterRoot = try FD.open("/proc/\(initPidfd.pid)/root", O_PATH | O_DIRECTORY)
            } catch {
                throw HuskError(.system, "cannot open the container's root", cause: error)
            }
        }
        do {
            p.cgroup = try cgroup.open()
        } catch {
            throw HuskError(.system, "cannot open cgroup \(cgroup.directory)", cause: error)
        }
        var pair: ConsolePair? = nil
        switch terminal {
        case .none: break
        case .socket(let s):
            p.consoleSocket = s
            p.setsid = true
        case .returned:
            pair = try ConsolePair()
            p.consoleSocket = pair!.theirs
            p.setsid = true
        }
        let spawned: SpawnedProcess
        do {
            spawned = try Spawner.spawn(p)
        } catch {
            throw HuskError(.invalidArgument, "exec failed", cause: error)
        }
        guard let pair else { return (spawned, nil) }
        // The child sent the master before it exec'd.
        guard let master = pair.receiveMaster() else {
            try? spawned.pidfd.signal(SIGKILL)
            _ = try? spawned.pidfd.wait()
            throw HuskError(.system, "no terminal came back from the process")
        }
        return (spawned, master)
    }
}
