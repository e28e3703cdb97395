import CShim
import HuskSystem
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("mountinfo")
struct MountInfoTests {
    @Test("parses fields, the optional tags and octal escapes")
    func parse() {
        let text = """
            22 27 0:21 / /proc rw,relatime - proc proc rw
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 master:1 - cgroup2 cgroup2 rw
            90 27 8:1 /a\\040b /mnt/with\\040space ro - ext4 /dev/sda1 rw,errors=remount-ro
            """
        let m = MountInfo.parse(text)
        #expect(m.count == 3)
        #expect(m[1].fsType == "cgroup2" && m[1].mountPoint == "/sys/fs/cgroup/unified")
        #expect(m[2].mountPoint == "/mnt/with space" && m[2].root == "/a b" && m[2].source == "/dev/sda1")
    }

    @Test("this host's cgroup2 mount is found, wherever it is")
    func discover() throws {
        let m = try #require(try Cgroup2Mount.discover(), "no cgroup2 mount on this host")
        #expect(Files.isDirectory(m.path))
        #expect(Files.exists(m.path + "/cgroup.controllers"))
    }
}

@Suite("Signals and capabilities")
struct NamesTests {
    @Test("signal names as runc accepts them", arguments: [
        ("TERM", SIGTERM), ("SIGTERM", SIGTERM), ("sigkill", SIGKILL), ("9", 9), ("HUP", SIGHUP), ("RTMIN+1", cshim_sigrtmin() + 1),
    ])
    func parse(name: String, number: Int32) {
        #expect(Signals.parse(name) == number)
    }

    @Test("bad signals", arguments: ["", "SIGNOPE", "0", "65", "-1"])
    func bad(name: String) {
        #expect(Signals.parse(name) == nil)
    }

    @Test("names round trip")
    func names() {
        #expect(Signals.name(SIGTERM) == "SIGTERM")
        #expect(Capabilities.number("CAP_SYS_ADMIN") == 21)
        #expect(Capabilities.number("net_raw") == 13)
        #expect(Capabilities.number("CAP_NOPE") == nil)
        #expect(Capabilities.names(of: (1 << 5) | (1 << 29)) == ["CAP_KILL", "CAP_AUDIT_WRITE"])
        #expect(Capabilities.lastCap >= 40)
    }
}

@Suite("Paths, files, time")
struct FilesTests {
    @Test("lexical cleaning never goes above /")
    func clean() {
        #expect(Files.clean("/a/./b//../c/") == "/a/c")
        #expect(Files.clean("/../../x") == "/x")
        #expect(Files.absolute("x/y", relativeTo: "/base") == "/base/x/y")
        #expect(Files.absolute("/abs", relativeTo: "/base") == "/abs")
    }

    @Test("atomic writes replace the whole file")
    func atomic() throws {
        let dir = "/tmp/husk-test-files-\(getpid())"
        try Files.makeDirectories(dir)
        defer { try? Files.removeTree(dir) }
        try Files.writeAtomically(dir + "/f", Array("one".utf8))
        try Files.writeAtomically(dir + "/f", Array("two".utf8))
        #expect(try Files.readString(dir + "/f") == "two")
        #expect(Files.list(dir) == ["f"])
    }

    @Test("RFC 3339 with nanoseconds, as CRI logs use")
    func rfc3339() {
        #expect(Clock.rfc3339Nano((1_475_713_029, 669_794_202)) == "2016-10-06T00:17:09.669794202Z")
        #expect(Clock.rfc3339Nano((0, 5)) == "1970-01-01T00:00:00.000000005Z")
    }

    @Test("errno text does not depend on the locale")
    func errnoText() {
        #expect(Errno.noSuchFileOrDirectory.text == "No such file or directory")
        #expect("\(SystemCallError("open", "/x", .permissionDenied))" == "/x: Permission denied (open)")
    }

    @Test("exit statuses follow 128+signal")
    func exitStatus() {
        #expect(ExitStatus.exited(3).code == 3)
        #expect(ExitStatus.signaled(SIGTERM, coreDumped: false).code == 143)
        #expect(ExitStatus.signaled(SIGKILL, coreDumped: false).code == 137)
    }
}
