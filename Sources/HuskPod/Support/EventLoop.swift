import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor's event loop: epoll over pidfds, log pipes and the control socket, timers,
/// and work posted from other threads. Everything registered here runs on the loop's thread.
public final class EventLoop: @unchecked Sendable {  // mutable state only on the loop thread or under `lock`
    private let epoll: Epoll
    private let wake: EventFD
    private var handlers: [CInt: (UInt32) -> Void] = [:]
    private var timers: [(at: Double, id: Int, action: () -> Void)] = []
    private var nextTimer = 0
    private var posted: [() -> Void] = []
    private let lock = Monitor()
    /// Run once after `idleDelay` seconds without events, again after the next burst.
    private var idle: (delay: Double, action: () -> Void)? = nil

    /// Sets what to do once the loop has been idle for `delay` seconds (call before `run`).
    public func whenIdle(after delay: Double, _ action: @escaping () -> Void) {
        idle = (delay, action)
    }

    public init() throws(HuskError) {
        do {
            epoll = try Epoll()
            wake = try EventFD()
        } catch {
            throw HuskError(.system, "epoll: \(error.errno.text)")
        }
        add(wake.fd.raw) { [wake] _ in wake.reset() }
    }

    /// Watches `fd` for input (and hang-up); `handler` runs on the loop thread.
    public func add(_ fd: CInt, _ handler: @escaping (UInt32) -> Void) {
        post { [self] in
            handlers[fd] = handler
            try? epoll.add(fd)
        }
    }

    /// Stops watching `fd` (call on the loop thread, or it is posted there).
    public func remove(_ fd: CInt) {
        post { [self] in
            try? epoll.remove(fd)
            handlers[fd] = nil
        }
    }

    /// Reaps `pidfd`'s process when it exits and calls `onExit` on the loop thread.
    public func watch(_ pidfd: PidFD, _ onExit: @escaping @Sendable (ExitStatus) -> Void) {
        add(pidfd.fd.raw) { [self] _ in
            remove(pidfd.fd.raw)
            let status = (try? pidfd.tryWait()) ?? nil
            onExit(status ?? .exited(255))
        }
    }

    /// For a process that is not our child (found again after a supervisor died: the keeper
    /// is its parent): when it exits, how it ended is read from what the keeper recorded
    /// (nil when nothing was recorded) and `onExit` runs on the loop thread.
    public func watchAdopted(_ pidfd: PidFD, start: UInt64, stateDirectory: String, _ onExit: @escaping @Sendable (ExitStatus?) -> Void) {
        add(pidfd.fd.raw) { [self] _ in
            remove(pidfd.fd.raw)
            if let status = (try? pidfd.tryWait()) ?? nil {
                onExit(status)
                return
            }
            Threads.spawn("adopted-exit") { [self] in
                let status = KeeperLink.recordedExit(stateDirectory: stateDirectory, pid: pidfd.pid, start: start, timeout: 5)
                post { onExit(status) }
            }
        }
    }

    /// Runs `action` on the loop thread.
    public func post(_ action: @escaping () -> Void) {
        lock.locked { posted.append(action) }
        try? wake.signal()
    }

    /// Runs `action` on the loop thread after `seconds`. Returns an id for `cancel`.
    @discardableResult
    public func after(_ seconds: Double, _ action: @escaping () -> Void) -> Int {
        let at = Clock.monotonicSeconds() + seconds
        let id = lock.locked { () -> Int in
            nextTimer += 1
            return nextTimer
        }
        post { [self] in
            timers.append((at, id, action))
            timers.sort { $0.at < $1.at }
        }
        return id
    }

    public func cancel(_ id: Int) {
        post { [self] in timers.removeAll { $0.id == id } }
    }

    /// Runs the loop on the calling thread, forever.
    public func run() -> Never {
        var ready = [Epoll.Event](repeating: Epoll.Event(), count: 32)
        var lastActivity = Clock.monotonicSeconds()
        var idleDone = false
        while true {
            let work = lock.locked { () -> [() -> Void] in
                let w = posted
                posted.removeAll()
                return w
            }
            for w in work { w() }
            let now = Clock.monotonicSeconds()
            while let t = timers.first, t.at <= now {
                timers.removeFirst()
                t.action()
            }
            var timeout: Int32 = -1
            if let t = timers.first { timeout = Int32(max(0, min(Double(Int32.max), (t.at - Clock.monotonicSeconds()) * 1000)).rounded(.up)) }
            let hasPosted = lock.locked { !posted.isEmpty }
            if hasPosted { timeout = 0 }
            if let idle, !idleDone {
                let due = Int32(max(0, (lastActivity + idle.delay - Clock.monotonicSeconds()) * 1000).rounded(.up))
                timeout = timeout < 0 ? due : min(timeout, due)
            }
            let n = (try? epoll.wait(into: &ready, timeoutMilliseconds: timeout)) ?? -1
            let woke = Clock.monotonicSeconds()
            if n <= 0 {
                if let idle, !idleDone, woke >= lastActivity + idle.delay {
                    idleDone = true
                    idle.action()
                }
                continue
            }
            lastActivity = woke
            idleDone = false
            for e in ready.prefix(n) {
                handlers[e.fd]?(e.events.rawValue)
            }
        }
    }
}
