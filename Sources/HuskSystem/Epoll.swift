import CShim
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Waiting for many fds at once: an epoll instance (the supervisor's event loop watches its
/// pidfds, pipes and sockets with one).
public final class Epoll: Sendable {
    /// What happened on a watched fd (EPOLL*, sys/epoll.h).
    public struct Events: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        /// EPOLLIN: readable (for a pidfd: the process has exited).
        public static let input = Events(rawValue: CSHIM_EPOLLIN)
        /// EPOLLOUT: writable.
        public static let output = Events(rawValue: CSHIM_EPOLLOUT)
        /// EPOLLERR: an error condition.
        public static let error = Events(rawValue: CSHIM_EPOLLERR)
        /// EPOLLHUP: the other end has gone (a pipe's last writer closed it).
        public static let hangUp = Events(rawValue: CSHIM_EPOLLHUP)
        /// EPOLLRDHUP: the peer of a socket shut down its writing half.
        public static let readHangUp = Events(rawValue: CSHIM_EPOLLRDHUP)
    }

    /// One ready fd.
    public struct Event: Sendable, Equatable {
        public var fd: CInt
        public var events: Events

        public init(fd: CInt = -1, events: Events = []) {
            self.fd = fd
            self.events = events
        }
    }

    public let fd: FD

    /// A new epoll instance (CLOEXEC). The underlying call is `epoll_create1(2)`.
    public init() throws(SystemCallError) {
        fd = FD(adopting: try syscall("epoll_create1") { cshim_epoll_create() })
    }

    /// Watches `watched` for input and hang-up (EPOLLIN | EPOLLRDHUP, level-triggered). The
    /// caller keeps it open while it is watched. The underlying call is `epoll_ctl(2)`.
    public func add(_ watched: CInt) throws(SystemCallError) {
        try syscall("epoll_ctl", "EPOLL_CTL_ADD fd \(watched)") { cshim_epoll_add(fd.raw, watched) }
    }

    /// Stops watching `watched`. The underlying call is `epoll_ctl(2)`.
    public func remove(_ watched: CInt) throws(SystemCallError) {
        try syscall("epoll_ctl", "EPOLL_CTL_DEL fd \(watched)") { cshim_epoll_del(fd.raw, watched) }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) for watched fds to become ready and
    /// stores them at the start of `ready` (at most `ready.count`, at most 64). Returns how
    /// many; 0 on timeout and when a signal interrupted the wait. The underlying call is
    /// `epoll_wait(2)`.
    public func wait(into ready: inout [Event], timeoutMilliseconds: Int32) throws(SystemCallError) -> Int {
        let capacity = min(ready.count, 64)
        guard capacity > 0 else { return 0 }
        // On the stack: the idle supervisor returns here right after it dropped its code pages
        // (ResidentMemory), and every page this path touches maps 64 KiB back.
        return try withUnsafeTemporaryAllocation(of: CInt.self, capacity: capacity) { fds throws(SystemCallError) -> Int in
            try withUnsafeTemporaryAllocation(of: UInt32.self, capacity: capacity) { events throws(SystemCallError) -> Int in
                let n = try syscall("epoll_wait", retryOnInterrupt: false) {
                    cshim_epoll_wait(fd.raw, fds.baseAddress!, events.baseAddress!, Int32(capacity), timeoutMilliseconds)
                }
                for i in 0..<Int(n) { ready[i] = Event(fd: fds[i], events: Events(rawValue: events[i])) }
                return Int(n)
            }
        }
    }
}

/// A counter in the kernel that makes an fd readable while it is not zero: how another thread
/// wakes a loop blocked in `Epoll.wait`.
public final class EventFD: Sendable {
    public let fd: FD

    /// A new eventfd at zero (CLOEXEC, non-blocking). The underlying call is `eventfd(2)`.
    public init() throws(SystemCallError) {
        fd = FD(adopting: try syscall("eventfd") { cshim_eventfd() })
    }

    /// Adds `value` to the counter, making the fd readable. The underlying call is `write(2)`.
    public func signal(_ value: UInt64 = 1) throws(SystemCallError) {
        var v = value
        try syscall("write", "eventfd") { Glibc.write(fd.raw, &v, 8) }
    }

    /// Takes the counter's value and sets it back to zero; nil when it was zero already. The
    /// underlying call is `read(2)`.
    @discardableResult
    public func reset() -> UInt64? {
        var v: UInt64 = 0
        return Glibc.read(fd.raw, &v, 8) == 8 ? v : nil
    }
}

/// Waiting for a few fds without an epoll instance.
public enum Poll {
    /// Waits until one of `fds` is readable or has hung up, and returns the index of the first
    /// one that is; nil when `timeoutMilliseconds` (-1: forever) passed first. A negative fd
    /// is skipped. A wait a signal interrupted goes on (with the whole timeout again). The
    /// underlying call is `poll(2)`.
    public static func firstReadable(_ fds: [CInt], timeoutMilliseconds: Int32 = -1) throws(SystemCallError) -> Int? {
        var pfds = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let n = try syscall("poll") { Glibc.poll(&pfds, nfds_t(pfds.count), timeoutMilliseconds) }
        if n == 0 { return nil }
        return pfds.firstIndex { $0.revents != 0 }
    }
}
