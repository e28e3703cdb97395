import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// Waiting on pods: until a status says so, while a log is followed, while a foreground pod
/// runs, until a stop is done.
extension PodDirectory {

    /// Re-reads the pod until `done` says yes or `timeout` passes (nil: forever). Returns the
    /// last view. Between reads it only stats status.json every millisecond (the supervisor
    /// renames a new one into place on every change) and reads it again when it changed, or
    /// after `interval` anyway (the supervisor may have died without writing). Not inotify:
    /// closing an inotify fd waits for an SRCU grace period, measured at 20 ms here.
    public static func wait(_ view: PodView, timeout: Double? = nil, interval: Double = 0.05, until done: (PodView) -> Bool) -> PodView {
        let deadline = timeout.map { Clock.monotonicSeconds() + $0 }
        let status = podsDir(view.settings) + "/" + view.uid + "/status.json"
        func stamp() -> [Int] {
            var st = stat()
            guard fstatat(AT_FDCWD, status, &st, 0) == 0 else { return [] }
            return [Int(st.st_ino), Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec), Int(st.st_size)]
        }
        var seen = stamp()
        var v = read(view.settings, uid: view.uid) ?? view
        var lastRead = Clock.monotonicSeconds()
        while true {
            if done(v) { return v }
            if let deadline, Clock.monotonicSeconds() >= deadline { return v }
            usleep(1000)
            let now = stamp()
            if now != seen || Clock.monotonicSeconds() - lastRead >= interval {
                seen = now
                lastRead = Clock.monotonicSeconds()
                if let fresh = read(v.settings, uid: v.uid) { v = fresh }
            }
        }
    }

    /// Reads the pod every `interval` seconds and gives it to `body` until `body` says it is
    /// done, or the pod is gone (its state removed).
    public static func watch(_ view: PodView, interval: Double = 0.05, _ body: (PodView) -> Bool) {
        while let v = read(view.settings, uid: view.uid), !body(v) {
            usleep(useconds_t(interval * 1_000_000))
        }
    }

    /// Follows a pod run in the foreground by `supervisor` (`husk run`) until it has finished:
    /// `each` gets every view, read every 20 ms or at once when a signal comes on `signals`.
    /// Each signal asks the supervisor to stop the pod: the first with the pod's grace
    /// period, any later one with none (the supervisor's 2 s floor). Once the pod has finished
    /// it waits for the supervisor to exit and reaps it. Returns the last view: not finished
    /// when the supervisor exited before the pod did.
    public static func follow(_ view: PodView, supervisor: SpawnedProcess, signals: SignalFD?, each: (PodView) -> Void) -> PodView {
        var v = view
        var stops = 0
        while true {
            each(v)
            if v.state.finished { break }
            if !v.supervisorAlive && supervisor.pidfd.waitForExit(timeout: 0) { return v }
            var p = pollfd(fd: signals?.fd.raw ?? -1, events: Int16(POLLIN), revents: 0)
            if let signals, poll(&p, 1, 20) > 0 {
                while signals.next() != nil {
                    stops += 1
                    try? PodClient(v).stop(grace: stops > 1 ? 0 : nil)
                }
            } else if signals == nil {
                usleep(20_000)
            }
            if let fresh = read(v.settings, uid: v.uid) { v = fresh }
        }
        _ = supervisor.pidfd.waitForExit(timeout: 30)
        _ = try? supervisor.pidfd.wait()
        return v
    }

    /// Asks the supervisor to stop the pod (nil: with the pod's grace period) and waits until
    /// the pod has finished and the supervisor (and its keeper) exited. A pod already stopped
    /// is returned as it is.
    public static func stop(_ v: PodView, grace: Int64?) throws(HuskError) -> PodView {
        if v.isStopped { return v }
        try PodClient(v).stop(grace: grace)
        // The supervisor exits right after it wrote the final status, and its keeper with it.
        let pidfd = try? PidFD.open(v.keeperPid > 0 ? v.keeperPid : v.supervisorPid)
        let done = wait(v) { $0.isStopped }
        _ = pidfd?.waitForExit(timeout: 10)
        if !done.state.finished {
            throw HuskError(.system, "the supervisor of pod \(v.qualifiedName) exited before the pod finished; see \(v.paths.supervisorLog)")
        }
        return done
    }
}
