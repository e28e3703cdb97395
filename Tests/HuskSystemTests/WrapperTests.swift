import HuskSystem
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The typed wrappers HuskSystem puts over CShim: sockets, epoll, signalfd, terminals,
/// namespaces, mount flags, memfds. None needs root.
@Suite("System call wrappers")
struct WrapperTests {
    /// Reads what is in a pipe now (the writer has written it all).
    func drain(_ fd: FD, _ count: Int) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        let n = buf.withUnsafeMutableBytes { read(fd.raw, $0.baseAddress, $0.count) }
        return Array(buf.prefix(max(n, 0)))
    }

    @Test("a seqpacket pair carries a message and an fd (SCM_RIGHTS); the fd arrives open and CLOEXEC")
    func passFD() throws {
        let (a, b) = try UnixSocket.seqpacketPair()
        let pipe = try makePipe()
        try UnixSocket.send(a, Array("hello".utf8), fds: [pipe.write.raw])
        var buf = [UInt8](repeating: 0, count: 64)
        let (n, fds) = try UnixSocket.receive(b, into: &buf)
        #expect(String(decoding: buf[0..<n], as: UTF8.self) == "hello")
        try #require(fds.count == 1)
        #expect(fds[0].raw != pipe.write.raw, "a new descriptor for the same pipe")
        #expect(fcntl(fds[0].raw, F_GETFD) & FD_CLOEXEC != 0)
        try fds[0].writeAll(Array("via passed fd".utf8))
        #expect(String(decoding: try drain(pipe.read, 64), as: UTF8.self) == "via passed fd")
        // Message boundaries are kept, and the end of the peer is a zero count.
        try UnixSocket.send(a, [1, 2])
        try UnixSocket.send(a, [3])
        #expect(try UnixSocket.receive(b, into: &buf).count == 2)
        #expect(try UnixSocket.receive(b, into: &buf).count == 1)
        _ = consume a
        #expect(try UnixSocket.receive(b, into: &buf).count == 0)
    }

    @Test("listen, connect, accept on a path socket; the peer's uid is ours; errors name the call and path")
    func pathSocket() throws {
        let dir = "/tmp/husk-syswrap-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(dir)
        defer { try? Files.removeTree(dir) }
        let path = dir + "/s"
        let listener = try UnixSocket.listen(path)
        let client = try UnixSocket.connect(path)
        let server = try UnixSocket.accept(listener)
        #expect(try UnixSocket.peerUID(server) == geteuid())
        try UnixSocket.send(client, Array("ping\n".utf8))
        var buf = [UInt8](repeating: 0, count: 16)
        let (n, fds) = try UnixSocket.receive(server, into: &buf)
        #expect(buf.prefix(n) == Array("ping\n".utf8)[...] && fds.isEmpty)
        #expect(throws: SystemCallError("connect", dir + "/missing", .noSuchFileOrDirectory)) {
            _ = try UnixSocket.connect(dir + "/missing")
        }
        #expect(throws: SystemCallError("listen", path, .addressInUse)) { _ = try UnixSocket.listen(path) }
    }

    @Test("epoll wakes for an eventfd only once it is signalled, and no more once it is reset")
    func epollEventFD() throws {
        let epoll = try Epoll()
        let wake = try EventFD()
        try epoll.add(wake.fd.raw)
        var ready = [Epoll.Event](repeating: Epoll.Event(), count: 8)
        #expect(try epoll.wait(into: &ready, timeoutMilliseconds: 0) == 0)
        try wake.signal()
        try wake.signal(2)
        #expect(try epoll.wait(into: &ready, timeoutMilliseconds: 1000) == 1)
        #expect(ready[0].fd == wake.fd.raw && ready[0].events.contains(.input))
        #expect(wake.reset() == 3)
        #expect(wake.reset() == nil)
        #expect(try epoll.wait(into: &ready, timeoutMilliseconds: 0) == 0)
        try wake.signal()
        try epoll.remove(wake.fd.raw)
        #expect(try epoll.wait(into: &ready, timeoutMilliseconds: 0) == 0, "no longer watched")
        #expect(throws: SystemCallError("epoll_ctl", "EPOLL_CTL_DEL fd \(wake.fd.raw)", .noSuchFileOrDirectory)) {
            try epoll.remove(wake.fd.raw)
        }
    }

    @Test("poll: the first readable fd, nil on timeout, closed pipes count as readable")
    func poll() throws {
        let p1 = try makePipe(), p2 = try makePipe()
        #expect(try Poll.firstReadable([p1.read.raw, p2.read.raw], timeoutMilliseconds: 0) == nil)
        try p2.write.writeAll([1])
        #expect(try Poll.firstReadable([p1.read.raw, p2.read.raw], timeoutMilliseconds: 0) == 1)
        #expect(try Poll.firstReadable([-1, p2.read.raw]) == 1, "a negative fd is skipped")
    }

    @Test("a signalfd reads a blocked signal sent to this thread, once")
    func signalFD() throws {
        let sfd = try SignalFD([SIGUSR2])
        defer {
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGUSR2)
            pthread_sigmask(SIG_UNBLOCK, &set, nil)
        }
        #expect(sfd.next() == nil)
        pthread_kill(pthread_self(), SIGUSR2)
        #expect(try Poll.firstReadable([sfd.fd.raw], timeoutMilliseconds: 1000) == 0)
        #expect(sfd.drain() == [SIGUSR2])
        #expect(sfd.next() == nil)
    }

    @Test("namespace types: runtime-spec names, descriptions, and the type of /proc/self/ns files")
    func namespaces() throws {
        #expect(Namespaces(name: "network") == .network)
        #expect(Namespaces(name: "mount")?.rawValue == 0x20000)
        #expect(Namespaces(name: "nope") == nil)
        let set: Namespaces = [.uts, .network, .mount]
        #expect(set.names == ["network", "mount", "uts"])
        #expect(set.description == "network+mount+uts")
        #expect(Namespaces(rawValue: Namespaces.pid.rawValue | 1).description == "pid+0x1")
        #expect(Namespaces().description == "none")
        #expect(Namespaces.named.map(\.name).allSatisfy { Namespaces(name: $0) != nil })
        for (file, type) in [("net", Namespaces.network), ("mnt", .mount), ("pid", .pid), ("uts", .uts), ("ipc", .ipc)] {
            let fd = try FD.open("/proc/self/ns/" + file, O_RDONLY)
            #expect(try Namespaces.type(of: fd) == type, "\(file)")
        }
        let notNS = try FD.open("/proc/self/stat", O_RDONLY)
        #expect(throws: SystemCallError.self) { _ = try Namespaces.type(of: notNS) }
    }

    @Test("mount flags: the kernel's bits and mount(8)'s names")
    func mountFlags() {
        #expect(MountFlags.readOnly.rawValue == 1 && MountFlags.recursive.rawValue == 0x4000)
        #expect(MountFlags([.slave, .recursive]).rawValue == 0x80000 | 0x4000)
        #expect(MountFlags([.noExec, .readOnly, .noSetID]).description == "ro,nosuid,noexec")
        #expect(MountFlags([.private, .recursive]).names == ["rec", "private"])
        #expect(MountFlags(rawValue: 1 << 30).description == "0x40000000")
        #expect(MountFlags().description == "none")
    }

    @Test("a sealed memfd keeps its content and refuses writes")
    func memfd() throws {
        let fd = try Memfd.create("husk-test", sealable: true)
        try fd.writeAll(Array("#!/bin/true\n".utf8))
        try Memfd.seal(fd)
        #expect(throws: SystemCallError("write", "", .notPermitted)) { try fd.writeAll([0]) }
        #expect(throws: SystemCallError("fcntl", "F_ADD_SEALS of fd \(fd.raw)", .notPermitted)) { try Memfd.seal(fd) }
        let plain = try Memfd.create("husk-test")
        #expect(throws: SystemCallError.self) { try Memfd.seal(plain) }
        #expect(Files.exists(fd.procPath))
    }

    @Test("window size and raw mode of a pty; a pipe is no terminal")
    func terminal() throws {
        let (master, slave) = try Self.openPTY()
        #expect(Terminal.isTerminal(slave.raw))
        try Terminal.setWindowSize(.init(rows: 33, columns: 111), of: master.raw)
        #expect(try Terminal.windowSize(of: slave.raw) == .init(rows: 33, columns: 111))
        let (other, _) = try Self.openPTY()
        #expect(Terminal.copyWindowSize(from: slave.raw, to: other.raw))
        #expect(try Terminal.windowSize(of: other.raw).columns == 111)
        var before = termios()
        tcgetattr(slave.raw, &before)
        let saved = try Terminal.makeRaw(slave.raw)
        var raw = termios()
        tcgetattr(slave.raw, &raw)
        #expect(raw.c_lflag & tcflag_t(ECHO | ICANON) == 0, "no echo, no line editing")
        try saved.restore()
        var after = termios()
        tcgetattr(slave.raw, &after)
        #expect(after.c_lflag == before.c_lflag && after.c_oflag == before.c_oflag)
        let pipe = try makePipe()
        #expect(!Terminal.isTerminal(pipe.read.raw))
        #expect(throws: SystemCallError("ioctl", "TIOCGWINSZ of fd \(pipe.read.raw)", .inappropriateIOCTLForDevice)) {
            _ = try Terminal.windowSize(of: pipe.read.raw)
        }
        #expect(!Terminal.copyWindowSize(from: pipe.read.raw, to: master.raw))
    }

    /// A new pty: master and slave (Swift's Glibc module has no posix_openpt, and no names for
    /// the ioctls: TIOCSPTLCK and TIOCGPTPEER, the same on every Linux architecture).
    static func openPTY() throws -> (master: FD, slave: FD) {
        let master = try FD.open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: CInt = 0
        try syscall("ioctl", "TIOCSPTLCK") { ioctl(master.raw, UInt(0x4004_5431), &unlock) }
        let slave = try syscall("ioctl", "TIOCGPTPEER") { ioctl(master.raw, UInt(0x5441), CInt(O_RDWR | O_NOCTTY | O_CLOEXEC)) }
        return (master, FD(adopting: slave))
    }

    @Test("Output writes everything to a borrowed fd, and says when it cannot")
    func output() throws {
        let pipe = try makePipe()
        #expect(Output.writeAll(pipe.write.raw, Array("abc".utf8)[1...]))
        Output.write("déf", to: pipe.write.raw)
        #expect(String(decoding: try drain(pipe.read, 64), as: UTF8.self) == "bcdéf")
        #expect(!Output.writeAll(pipe.read.raw, [1]), "the read end of a pipe is not writable")
    }
}
