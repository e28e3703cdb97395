import HuskSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("DiskUsage (du of a tree)")
struct DiskUsageTests {
    @Test("counts every inode once, allocated blocks, and never follows a symlink")
    func tree() throws {
        let root = "/tmp/husk-usage-tests.\(getpid()).\(UInt64.random(in: 0...UInt64.max))"
        try Files.makeDirectories(root + "/d/e")
        defer { try? Files.removeTree(root) }
        try Files.writeAtomically(root + "/d/big", [UInt8](repeating: 7, count: 100_000))
        try Files.writeAtomically(root + "/small", [1])
        #expect(link(root + "/d/big", root + "/d/e/big-again") == 0)
        #expect(symlink("/usr", root + "/usr-link") == 0)

        let u = try DiskUsage.of(root)
        // root, d, e, big (with its second name), small, the symlink.
        #expect(u.inodes == 6)
        var st = stat()
        var expected: UInt64 = 0
        for p in [root, root + "/d", root + "/d/e", root + "/d/big", root + "/small", root + "/usr-link"] {
            #expect(lstat(p, &st) == 0)
            expected += UInt64(st.st_blocks) * 512
        }
        #expect(u.bytes == expected)
        #expect(u.bytes >= 100_000)
    }

    @Test("a missing directory is an error naming it")
    func missing() {
        #expect(throws: SystemCallError.self) { try DiskUsage.of("/nonexistent/husk-usage") }
    }
}
