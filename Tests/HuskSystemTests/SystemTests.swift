import Foundation
import CShim
import HuskJSON
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

    @Test("removing a tree is idempotent: four removers of one tree at once all succeed (issue 16 #6)")
    func concurrentRemoval() throws {
        for round in 0..<5 {
            let root = "/tmp/husk-test-rmtree-\(getpid())-\(round)"
            for d in 0..<20 {
                try Files.makeDirectories("\(root)/d\(d)/sub")
                for f in 0..<25 { try Files.writeAtomically("\(root)/d\(d)/sub/f\(f)", [1], mode: 0o600) }
            }
            final class Failures: @unchecked Sendable {  // under `lock`
                let lock = NSLock()
                var errors: [String] = []
            }
            let failures = Failures()
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                do {
                    try Files.removeTree(root)
                } catch {
                    failures.lock.lock()
                    failures.errors.append("\(error)")
                    failures.lock.unlock()
                }
            }
            #expect(failures.errors.isEmpty, "round \(round): \(failures.errors.prefix(3))")
            #expect(!Files.exists(root))
        }
    }

    /// Makes `depth` nested directories `d/d/d/...` below `root`, each with one file, by
    /// descriptor (the full path is far longer than PATH_MAX).
    static func makeDeepTree(_ root: String, depth: Int) throws {
        try Files.makeDirectories(root)
        var fd = open(root, O_RDONLY | O_DIRECTORY)
        for _ in 0..<depth {
            #expect(mkdirat(fd, "dddddddddd", 0o755) == 0)
            let f = openat(fd, "file", O_WRONLY | O_CREAT, 0o600)
            close(f)
            let next = openat(fd, "dddddddddd", O_RDONLY | O_DIRECTORY)
            close(fd)
            fd = next
            #expect(fd >= 0)
        }
        close(fd)
    }

    @Test("a tree 2000 directories deep (22 KB of path, over PATH_MAX) is removed (issue 16 #3)")
    func deepTreeRemoval() throws {
        let root = "/tmp/husk-test-deep-\(getpid())"
        try Self.makeDeepTree(root, depth: 2000)
        try Files.removeTree(root)
        #expect(!Files.exists(root))
    }

    @Test("deep trees with four removers at once: the reopened levels hold (issue 16 #3, #6)")
    func deepConcurrentRemoval() throws {
        for round in 0..<3 {
            let root = "/tmp/husk-test-deep-\(getpid())-\(round)"
            for t in 0..<4 { try Self.makeDeepTree(root + "/t\(t)", depth: 150) }
            final class Failures: @unchecked Sendable {  // under `lock`
                let lock = NSLock()
                var errors: [String] = []
            }
            let failures = Failures()
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                do {
                    try Files.removeTree(root)
                } catch {
                    failures.lock.lock()
                    failures.errors.append("\(error)")
                    failures.lock.unlock()
                }
            }
            #expect(failures.errors.isEmpty, "round \(round): \(failures.errors.prefix(3))")
            #expect(!Files.exists(root))
        }
    }

    @Test("names that are not UTF-8 are removed too (found by the tar fuzz target)")
    func nonUTF8Names() throws {
        let root = "/tmp/husk-test-rmbytes-\(getpid())"
        try Files.makeDirectories(root)
        let fd = open(root, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        let dirName: [CChar] = [-1, 1, 0]  // \377\001
        #expect(mkdirat(fd, dirName, 0o755) == 0)
        let sub = openat(fd, dirName, O_RDONLY | O_DIRECTORY)
        #expect(mkdirat(sub, "d", 0o744) == 0)
        let fileName: [CChar] = [-61, 40, 0]  // an invalid two-byte sequence
        close(openat(sub, fileName, O_WRONLY | O_CREAT, 0o600))
        close(sub)
        try Files.removeTree(root)
        #expect(!Files.exists(root))
    }

    @Test("removal stops at a mount point inside the tree and says where (never crosses it)")
    func removalStopsAtMount() throws {
        let root = "/tmp/husk-test-rmmount-\(getpid())"
        try Files.makeDirectories(root + "/a/m")
        try Files.writeAtomically(root + "/a/keep", [1])
        #expect(mount("tmpfs", root + "/a/m", "tmpfs", 0, nil) == 0)
        try Files.writeAtomically(root + "/a/m/inside", [1])
        defer {
            umount2(root + "/a/m", Int32(MNT_DETACH))
            try? Files.removeTree(root)
        }
        #expect(throws: SystemCallError.self) { try Files.removeTree(root) }
        do {
            try Files.removeTree(root)
        } catch {
            #expect("\(error)".contains(root + "/a/m"), "\(error)")
        }
        #expect(Files.exists(root + "/a/m/inside"))
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

@Suite("Resident memory")
struct ResidentMemoryTests {
    /// Resident KB of this process's mappings of its executable with permissions `perms`.
    static func residentKB(_ perms: String) -> Int {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        let smaps = (try? String(contentsOfFile: "/proc/self/smaps", encoding: .utf8)) ?? ""
        var inside = false
        var kb = 0
        for line in smaps.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = f.first, first.contains("-"), f.count >= 2, first.first?.isHexDigit == true {
                inside = f.count >= 6 && f[1] == perms && f[5...].joined(separator: " ") == exe
            } else if inside, f.first == "Rss:", f.count >= 2, let v = Int(f[1]) {
                kb += v
            }
        }
        return kb
    }

    @Test("trimming drops the executable's code and file-backed read-only data; the process goes on working")
    func trim() {
        let before = Self.residentKB("r-xp")
        #expect(before > 0, "this test process has resident code of its executable")
        let dropped = ResidentMemory.trimExecutableCode()
        #expect(dropped >= before * 1024, "dropped \(dropped) bytes, code resident before: \(before) KB")
        // Code and relocated read-only data still work after the drop (faulted back in).
        let text = JSONValue.object(["a": .array([.number(1), .string("x")])]).serialized()
        #expect(text.contains("\"a\""))
        #expect(Self.residentKB("r-xp") < before, "resident code after the trim and a little work")
    }

    /// Resident KB of the mapping holding `address`.
    static func residentKB(at address: UInt) -> Int {
        // Read to the end (Foundation's String(contentsOfFile:) stops short on a large /proc file).
        let smaps = ((try? Files.readString("/proc/self/smaps")) ?? nil) ?? ""
        var inside = false
        for line in smaps.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = f.first, first.contains("-"), first.first?.isHexDigit == true {
                let r = first.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = r.count == 2 && r[0] <= address && address < r[1]
            } else if inside, f.first == "Rss:", f.count >= 2, let v = Int(f[1]) {
                return v
            }
        }
        return -1
    }

    /// 512 bytes of stack per level, summed so that no level can be dropped.
    @inline(never)
    static func deep(_ n: Int) -> UInt64 {
        let v = SIMD64<UInt64>(repeating: UInt64(n))
        return n == 0 ? v.wrappedSum() : v.wrappedSum() &+ deep(n - 1)
    }

    @Test("trimming a thread's stack gives back what a deep call left, and the thread goes on")
    func trimStack() {
        final class Out: @unchecked Sendable { var deepKB = 0, trimmedKB = 0, dropped = 0, again: UInt64 = 0 }
        let out = Out()
        let done = DispatchSemaphore(value: 0)
        let t = Thread {
            var here = 0
            let address = withUnsafePointer(to: &here) { UInt(bitPattern: $0) }
            _ = Self.deep(600)  // ~300 KB deep
            out.deepKB = Self.residentKB(at: address)
            out.dropped = ResidentMemory.trimStack(margin: 4096)
            out.trimmedKB = Self.residentKB(at: address)
            out.again = Self.deep(600)
            done.signal()
        }
        t.stackSize = 2 << 20
        t.start()
        done.wait()
        #expect(out.deepKB >= 300, "resident stack after the deep call: \(out.deepKB) KB")
        #expect(out.dropped >= 250 << 10, "dropped \(out.dropped) bytes")
        #expect(out.trimmedKB <= out.deepKB - 250, "resident stack: \(out.deepKB) KB deep, \(out.trimmedKB) KB after the trim")
        #expect(out.again == Self.deep(600), "the same sum after the trim")
    }
}
