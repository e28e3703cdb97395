import HuskImage
import HuskSystem
import Testing

/// ImageFS over plain layer directories (lowest first). Whiteouts and opaque directories need
/// CAP_MKNOD / trusted xattrs and are not covered here.
@Suite("ImageFS over layer directories")
struct ImageFSTests {
    /// Runs `body` with fresh scratch layers, removed afterwards.
    private func withLayers(_ body: (ScratchLayers) throws -> Void) throws {
        let scratch = try ScratchLayers()
        defer { scratch.remove() }
        try body(scratch)
    }

    @Test("a file only in a lower layer is found through upper layers that lack it")
    func lowerLayer() throws {
        try withLayers { s in
            try s.write(0, "etc/passwd", "low")
            try s.mkdir(1, "etc")  // the upper layer has the directory, not the file
            try s.write(2, "usr/bin/tool", "x")
            let fs = try s.fs(layers: 3)
            #expect(fs.read("/etc/passwd")?.text == "low")
            #expect(fs.read("/usr/bin/tool")?.text == "x")
        }
    }

    @Test("an upper layer's regular file shadows the lower one")
    func upperShadows() throws {
        try withLayers { s in
            try s.write(0, "etc/group", "low")
            try s.write(1, "etc/group", "middle")
            try s.write(2, "etc/group", "high")
            #expect(try s.fs(layers: 3).read("/etc/group")?.text == "high")
            #expect(try s.fs(layers: 2).read("/etc/group")?.text == "middle")
            #expect(try s.fs(layers: 1).read("/etc/group")?.text == "low")
        }
    }

    @Test("paths are cleaned before lookup", arguments: ["/etc/passwd", "etc/passwd", "//etc/./passwd", "/usr/../etc/passwd"])
    func cleanedPaths(_ path: String) throws {
        try withLayers { s in
            try s.write(0, "etc/passwd", "p")
            #expect(try s.fs(layers: 1).read(path)?.text == "p")
        }
    }

    @Test("a relative symlink in an upper layer is followed inside the image", arguments: [
        "../usr/share/base/passwd", "./../usr/share/base/passwd", "../../../../usr/share/base/passwd",
    ])
    func relativeSymlink(_ target: String) throws {
        try withLayers { s in
            try s.write(0, "etc/passwd", "stale")
            try s.write(0, "usr/share/base/passwd", "real")
            try s.symlink(1, "etc/passwd", to: target)
            #expect(try s.fs(layers: 2).read("/etc/passwd")?.text == "real")
        }
    }

    @Test("an absolute symlink resolves against the image root, not the host")
    func absoluteSymlink() throws {
        try withLayers { s in
            try s.write(0, "data/group", "in-image")
            try s.symlink(1, "etc/group", to: "/data/group")
            // A target that exists on the host but not in the image.
            try s.write(9, "outside", "host")
            try s.symlink(1, "etc/escape", to: s.root + "/layer9/outside")
            try s.symlink(1, "etc/dotdot", to: "../../../../../../../../" + s.root + "/layer9/outside")
            let fs = try s.fs(layers: 2)
            #expect(fs.read("/etc/group")?.text == "in-image")
            #expect(fs.read("/etc/escape") == nil)
            #expect(fs.read("/etc/dotdot") == nil)
        }
    }

    @Test("a symlink chain is followed across layers")
    func chain() throws {
        try withLayers { s in
            try s.write(0, "c", "end")
            try s.symlink(1, "b", to: "c")
            try s.symlink(2, "a", to: "/b")
            #expect(try s.fs(layers: 3).read("/a")?.text == "end")
        }
    }

    @Test("a file inside a symlinked directory is found through it", arguments: ["usr/lib", "/usr/lib", "./usr/lib/"])
    func symlinkedDirectory(_ target: String) throws {
        try withLayers { s in
            try s.write(0, "usr/lib/os-release", "ID=test")
            try s.symlink(1, "lib", to: target)
            let fs = try s.fs(layers: 2)
            #expect(fs.read("/lib/os-release")?.text == "ID=test")
            #expect(fs.read("/lib/missing") == nil)
        }
    }

    @Test("a directory symlink and its target can be in different layers, either order")
    func symlinkedDirectoryAcrossLayers() throws {
        try withLayers { s in
            try s.symlink(0, "etc", to: "private/etc")
            try s.write(1, "private/etc/passwd", "p")
            #expect(try s.fs(layers: 2).read("/etc/passwd")?.text == "p")
        }
    }

    @Test("an upper symlink shadows a lower regular file of the same name")
    func symlinkShadowsFile() throws {
        try withLayers { s in
            try s.write(0, "etc/passwd", "old")
            try s.write(0, "etc/passwd.new", "new")
            try s.symlink(1, "etc/passwd", to: "passwd.new")
            #expect(try s.fs(layers: 2).read("/etc/passwd")?.text == "new")
        }
    }

    @Test("an upper regular file hides a lower directory of the same name")
    func fileHidesDirectory() throws {
        try withLayers { s in
            try s.write(0, "etc/passwd", "under a replaced directory")
            try s.write(1, "etc", "now a file")
            let fs = try s.fs(layers: 2)
            #expect(fs.read("/etc")?.text == "now a file")
            #expect(fs.read("/etc/passwd") == nil)
        }
    }

    @Test("an upper directory hides a lower regular file of the same name")
    func directoryHidesFile() throws {
        try withLayers { s in
            try s.write(0, "etc/passwd", "file")
            try s.mkdir(1, "etc/passwd")
            #expect(try s.fs(layers: 2).read("/etc/passwd") == nil)
        }
    }

    @Test("missing paths, directories and the root read as nil", arguments: ["/nope", "/etc/nope", "/etc", "/", "", "/etc/passwd/x"])
    func missing(_ path: String) throws {
        try withLayers { s in
            try s.write(0, "etc/passwd", "p")
            try s.mkdir(1, "etc")
            #expect(try s.fs(layers: 2).read(path) == nil)
        }
    }

    @Test("a dangling symlink and a symlink loop read as nil")
    func danglingAndLoop() throws {
        try withLayers { s in
            try s.symlink(0, "dangling", to: "/does/not/exist")
            try s.symlink(0, "loop1", to: "loop2")
            try s.symlink(0, "loop2", to: "/loop1")
            try s.symlink(0, "self", to: "self")
            let fs = try s.fs(layers: 1)
            #expect(fs.read("/dangling") == nil)
            #expect(fs.read("/loop1") == nil)
            #expect(fs.read("/self") == nil)
        }
    }

    @Test("a file larger than max reads as nil")
    func sizeLimit() throws {
        try withLayers { s in
            try s.write(0, "big", "12345")
            let fs = try s.fs(layers: 1)
            #expect(fs.read("/big", max: 5)?.text == "12345")
            #expect(fs.read("/big", max: 4) == nil)
        }
    }

    @Test("an image with no layers has no files")
    func noLayers() {
        #expect(ImageFS(layers: []).read("/etc/passwd") == nil)
    }
}
