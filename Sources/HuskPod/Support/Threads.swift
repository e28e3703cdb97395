import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// Plain threads and a monitor: the supervisor avoids Dispatch and Swift concurrency, whose
/// runtimes add ~1 MB of resident pages to a process (measured), and its threads block
/// (waitid, hooks, pulls) by design.
public enum Threads {
    /// Runs `body` on a new detached thread.
    public static func spawn(_ name: String = "husk", _ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {  // handed to exactly one thread
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        // Allocated rather than `pthread_attr_t()`: that initializer is imported from CShim's copy of the type.
        let attr = UnsafeMutablePointer<pthread_attr_t>.allocate(capacity: 1)
        defer { attr.deallocate() }
        pthread_attr_init(attr)
        pthread_attr_setdetachstate(attr, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(attr, 512 << 10)
        var tid = pthread_t()
        let rc = pthread_create(&tid, attr, { arg in
            let b = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Box
            b.body()
            // The stack stays resident in glibc's cache after the thread ends (a supervisor
            // starts one per request): what the body touched goes now.
            ResidentMemory.trimStack(margin: 4096)
            return nil
        }, box)
        pthread_attr_destroy(attr)
        if rc != 0 {
            Unmanaged<AnyObject>.fromOpaque(box).release()
            body()  // no thread: run inline rather than lose the work
        }
    }
}

/// A mutex with a condition: state shared between threads is read and changed inside `locked`,
/// and waiters sleep in `wait` until someone calls `broadcast`.
public final class Monitor: @unchecked Sendable {  // all access goes through the mutex
    private let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let c = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(m, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(c, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(c)
        pthread_mutex_destroy(m)
        m.deallocate()
        c.deallocate()
    }

    public func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }

    /// Waits (the lock must be held, i.e. inside `locked`) until woken or `deadline`
    /// (monotonic seconds) passes. Returns false on timeout.
    @discardableResult
    public func wait(until deadline: Double? = nil) -> Bool {
        guard let deadline else {
            pthread_cond_wait(c, m)
            return true
        }
        var ts = timespec()
        ts.tv_sec = Int(deadline)
        ts.tv_nsec = Int((deadline - Double(Int(deadline))) * 1e9)
        return pthread_cond_timedwait(c, m, &ts) == 0
    }

    /// Wakes every waiter.
    public func broadcast() {
        pthread_cond_broadcast(c)
    }

    /// Waits, checking `condition` under the lock, until it holds or the deadline passes.
    /// Returns whether it holds.
    public func wait(for condition: () -> Bool, until deadline: Double? = nil) -> Bool {
        locked {
            while !condition() {
                if let d = deadline, Clock.monotonicSeconds() >= d { return false }
                wait(until: deadline)
            }
            return true
        }
    }
}
