import Foundation
import HuskImage
import HuskSystem
import Testing

/// One hand-made hostile layer per row of the layer-extraction table of
/// ../shared/spec/security.md (issue 3, "Done means" 2). Each must be refused with a clear
/// error — or, where the spec allows it ("land inside the rootfs"), contained — and the
/// sentinel tree outside the root must be byte-for-byte unchanged. Nothing of the image may be
/// left in the store.
@Suite("Hostile layers", .enabled(if: Host.canTestImages, Host.imageSkipReason))
struct HostileLayerTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        /// Expected in the error; nil: the layer must unpack, contained.
        let error: String?
        let build: @Sendable (_ sentinel: String) -> [UInt8]

        var testDescription: String { name }
    }

    /// ../../ as many times as needed to climb out of any store path.
    static let up = String(repeating: "../", count: 16)

    static let cases: [Case] = [
        Case(name: "../ in a name", error: "contains ..") { s in
            var t = TarWriter()
            t.addFile(up + String(s.dropFirst()) + "/evil", "pwned")
            return t.finish()
        },
        Case(name: "absolute name", error: "is an absolute path") { s in
            var t = TarWriter()
            t.addFile(s + "/evil", "pwned")
            return t.finish()
        },
        Case(name: "symlink to an absolute dir, then a write through it", error: "goes through a symlink that leads outside the layer") { s in
            var t = TarWriter()
            t.add("a", .symlink, link: s)
            t.addFile("a/file", "pwned")
            return t.finish()
        },
        Case(name: "symlink climbing out, then a write through it", error: "goes through a symlink that leads outside the layer") { s in
            var t = TarWriter()
            t.add("b", .symlink, link: up + String(s.dropFirst()))
            t.addFile("b/file", "pwned")
            return t.finish()
        },
        Case(name: "symlink, then a file of the same name (no write through the link)", error: nil) { s in
            var t = TarWriter()
            t.add("f", .symlink, link: s + "/file")
            t.addFile("f", "contained")
            return t.finish()
        },
        Case(name: "hardlink out with ../", error: "hardlink target") { s in
            var t = TarWriter()
            t.add("h", .hardlink, link: up + String(s.dropFirst()) + "/file")
            return t.finish()
        },
        Case(name: "hardlink to an absolute path", error: "is an absolute path") { s in
            var t = TarWriter()
            t.add("h", .hardlink, link: s + "/file")
            return t.finish()
        },
        Case(name: "hardlink via a symlinked directory", error: "goes through a symlink that leads outside the layer") { s in
            var t = TarWriter()
            t.add("d", .symlink, link: s + "/etc")
            t.add("h", .hardlink, link: "d/passwd")
            return t.finish()
        },
        Case(name: "hardlink via a relative symlink climbing out", error: "goes through a symlink that leads outside the layer") { s in
            var t = TarWriter()
            t.add("d", .symlink, link: up + String(s.dropFirst()))
            t.add("h", .hardlink, link: "d/file")
            return t.finish()
        },
        Case(name: "whiteout with ../", error: "contains ..") { _ in
            var t = TarWriter()
            t.add(up + ".wh.file", .file, mode: 0)
            return t.finish()
        },
        Case(name: "whiteout through a symlinked directory", error: "whiteout may not be reached through a symlink") { s in
            var t = TarWriter()
            t.add("d", .symlink, link: s)
            t.add("d/.wh.file", .file, mode: 0)
            return t.finish()
        },
        Case(name: "opaque marker through a symlinked directory", error: "whiteout may not be reached through a symlink") { s in
            var t = TarWriter()
            t.add("d", .symlink, link: s)
            t.add("d/.wh..wh..opq", .file, mode: 0)
            return t.finish()
        },
        Case(name: "whiteout of .", error: "a whiteout must name a file") { _ in
            var t = TarWriter()
            t.add("x/", .dir, mode: 0o755)
            t.add("x/.wh..", .file, mode: 0)
            return t.finish()
        },
        Case(name: "whiteout of ..", error: "a whiteout must name a file") { _ in
            var t = TarWriter()
            t.add("x/", .dir, mode: 0o755)
            t.add("x/.wh...", .file, mode: 0)
            return t.finish()
        },
        Case(name: "whiteout with an empty name", error: "a whiteout must name a file") { _ in
            var t = TarWriter()
            t.add(".wh.", .file, mode: 0)
            return t.finish()
        },
        // CVE-2021-32760 (containerd HardlinkSymlinkChmod): a hardlink to a symlink whose
        // header asks for mode 0777. A naive chmod of the link's path follows the symlink.
        Case(name: "chmod through a symlink (hardlink to a symlink)", error: nil) { s in
            var t = TarWriter()
            t.add("sym", .symlink, link: s + "/file")
            t.add("hlink", .hardlink, mode: 0o777, link: "sym")
            return t.finish()
        },
        Case(name: "chmod through a symlink (directory entry over a symlink)", error: nil) { s in
            var t = TarWriter()
            t.add("sym", .symlink, link: s + "/etc")
            t.add("sym/", .dir, mode: 0o777, uid: 1234)
            return t.finish()
        },
        Case(name: "trusted.overlay xattr from the layer", error: "may not set trusted.* xattrs") { _ in
            var t = TarWriter()
            t.add("d/", .dir, mode: 0o755, pax: [("SCHILY.xattr.trusted.overlay.redirect", Array("/etc".utf8))])
            return t.finish()
        },
    ]

    @Test("hostile entry, on one thread and on the reader/extractor pair of big layers", arguments: cases, [1, 2])
    func hostile(_ c: Case, threads: Int) throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let sentinel = try Sentinel(in: scratch)
        let before = sentinel.fingerprint
        var w = try LayoutWriter(scratch.path + "/layout")
        try w.addImage(tag: "1", layers: [.init(tar: c.build(sentinel.path))])
        var husk = HuskCLI(scratch, sources: [w.path])
        husk.env = ["HUSK_UNPACK_THREADS=\(threads)"]
        let r = husk("pull", "evil:1")
        if let expected = c.error {
            #expect(r.status == 1, "the layer was accepted: \(r.stdout)")
            #expect(r.stderr.contains("ErrImagePull") && r.stderr.contains(expected), "\(r.stderr)")
            // One line of error (the others are the pull's progress lines).
            #expect(r.stderr.split(separator: "\n").filter { $0.hasPrefix("husk:") }.count == 1, "\(r.stderr)")
            expectNothingKept(husk.store)
        } else {
            #expect(r.status == 0, "\(r.stderr)")
            let img = try #require(try husk.store.image(matching: "evil:1"))
            let snap = try husk.store.snapshotPaths(img)[0]
            var st = stat()
            // Whatever the entry was, it is inside the snapshot and the sentinel is untouched.
            #expect(lstat(snap + "/" + (c.name.contains("hardlink") ? "hlink" : c.name.contains("directory") ? "sym" : "f"), &st) == 0)
            if c.name.contains("hardlink") { #expect((st.st_mode & S_IFMT) == S_IFLNK, "the hardlink is not the symlink itself") }
        }
        #expect(sentinel.fingerprint == before, "the sentinel changed")
    }

    @Test("a decompression bomb over the size cap is refused")
    func bomb() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var t = TarWriter()
        t.add("zeros", .file, content: [UInt8](repeating: 0, count: 8 << 20))
        var w = try LayoutWriter(scratch.path + "/layout")
        try w.addImage(tag: "1", layers: [.init(tar: t.finish())])
        let blob = try #require(try FileManager.default.contentsOfDirectory(atPath: w.path + "/blobs/sha256").map {
            (try FileManager.default.attributesOfItem(atPath: w.path + "/blobs/sha256/" + $0)[.size] as? Int) ?? 0
        }.max())
        #expect(blob < 64 << 10, "the test bomb is not compressed well: \(blob)")
        var husk = HuskCLI(scratch, sources: [w.path])
        for threads in ["1", "2"] {
            husk.env = ["HUSK_UNPACK_THREADS=\(threads)"]
            let r = husk.run(["--max-layer-size", "\(1 << 20)", "pull", "bomb:1"])
            #expect(r.status == 1)
            #expect(r.stderr.contains("more than 1048576 bytes (the cap): refused as a decompression bomb"), "\(threads): \(r.stderr)")
            expectNothingKept(husk.store)
        }
        husk.env = []
        // Under the default cap the same image is fine.
        #expect(husk("pull", "bomb:1").status == 0)
    }

    @Test("a bomb under the cap stops at the store's free-space reserve, before the disk is full (issue 16 #9)")
    func bombFillsNoDisk() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var t = TarWriter()
        t.add("zeros", .file, content: [UInt8](repeating: 0, count: 100 << 20))
        var w = try LayoutWriter(scratch.path + "/layout")
        try w.addImage(tag: "1", layers: [.init(tar: t.finish())])
        var husk = HuskCLI(scratch, sources: [w.path])
        // The store on a 128 MiB filesystem: the default reserve is 64 MiB (5%, at least 64 MiB).
        try FileManager.default.createDirectory(atPath: husk.root, withIntermediateDirectories: true)
        #expect(mount("tmpfs", husk.root, "tmpfs", 0, "size=128m") == 0)
        defer { umount2(husk.root, Int32(MNT_DETACH)) }
        // One thread, and the reader/extractor pair (where the reader checks the free space).
        for threads in ["1", "2"] {
            husk.env = ["HUSK_UNPACK_THREADS=\(threads)"]
            let r = husk("pull", "bomb:1")
            #expect(r.status == 1)
            #expect(r.stderr.contains("under its reserve of 64 MiB") && r.stderr.contains("husk rmi"), "\(threads): \(r.stderr)")
            expectNothingKept(husk.store)
            var vfs = statvfs()
            #expect(statvfs(husk.root, &vfs) == 0)
            let free = UInt64(vfs.f_bavail) * UInt64(vfs.f_frsize)
            #expect(free > 100 << 20, "\(threads): the partial layer was not removed: \(free >> 20) MiB free")
        }
    }

    @Test("a blob whose bytes do not match its digest is refused and nothing is kept")
    func wrongDigest() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var t = TarWriter()
        t.addFile("f", "original")
        var w = try LayoutWriter(scratch.path + "/layout")
        let desc = try w.addImage(tag: "1", layers: [.init(tar: t.finish(), compression: "")])
        // Flip a byte of the layer blob in place.
        let manifest = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: w.path + "/blobs/sha256/" + (desc["digest"] as! String).dropFirst(7)))) as! [String: Any]
        let layer = ((manifest["layers"] as! [[String: Any]])[0]["digest"] as! String).dropFirst(7)
        let path = w.path + "/blobs/sha256/" + layer
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[600] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: path))
        let husk = HuskCLI(scratch, sources: [w.path])
        let r = husk("pull", "bad:1")
        #expect(r.status == 1)
        #expect(r.stderr.contains("blob sha256:\(layer) has digest sha256:"), "\(r.stderr)")
        #expect(r.stderr.contains("nothing was kept"))
        expectNothingKept(husk.store)
        #expect(!FileManager.default.fileExists(atPath: husk.store.blobPath(Digest("sha256:" + layer)!)))
    }

    @Test("a layer whose uncompressed digest is not its diff_id is refused")
    func wrongDiffID() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var t = TarWriter()
        t.addFile("f", "x")
        var w = try LayoutWriter(scratch.path + "/layout")
        try w.addImage(tag: "1", layers: [.init(tar: t.finish(), diffID: Digest.of([1, 2, 3]).description)])
        let husk = HuskCLI(scratch, sources: [w.path])
        let r = husk("pull", "bad:1")
        #expect(r.status == 1)
        #expect(r.stderr.contains("its uncompressed digest is") && r.stderr.contains("refused"), "\(r.stderr)")
        expectNothingKept(husk.store)
    }

    @Test("media types that lie are refused", arguments: [
        ("gzip declared, plain tar inside", "", MediaType.ociLayerGzip, "the media type says tar+gzip but the data is not compressed"),
        ("plain tar declared, gzip inside", "gzip", MediaType.ociLayer, "the media type says tar but the data is gzip"),
        ("zstd declared, gzip inside", "gzip", MediaType.ociLayerZstd, "the media type says tar+zstd but the data is gzip"),
        ("a type Husk cannot unpack", "gzip", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "which Husk cannot unpack"),
    ])
    func wrongMediaType(name: String, compression: String, mediaType: String, expected: String) throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var t = TarWriter()
        t.addFile("f", "x")
        var w = try LayoutWriter(scratch.path + "/layout")
        try w.addImage(tag: "1", layers: [.init(tar: t.finish(), compression: compression, mediaType: mediaType)])
        let husk = HuskCLI(scratch, sources: [w.path])
        let r = husk("pull", "bad:1")
        #expect(r.status == 1, "\(name)")
        #expect(r.stderr.contains(expected), "\(name): \(r.stderr)")
        expectNothingKept(husk.store)
    }

    @Test("CVE-2021-41190: a manifest whose descriptor says it is an index is refused")
    func ambiguousDocument() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var t = TarWriter()
        t.addFile("f", "x")
        var w = try LayoutWriter(scratch.path + "/layout")
        var desc = try w.addImage(tag: nil, layers: [.init(tar: t.finish())], toIndex: false)
        desc["mediaType"] = MediaType.ociIndex
        desc["annotations"] = [Descriptor.refNameAnnotation: "1"]
        try w.addIndex(tag: "unused", entries: [])
        let idx: [String: Any] = ["schemaVersion": 2, "manifests": [desc]]
        try JSONSerialization.data(withJSONObject: idx).write(to: URL(fileURLWithPath: w.path + "/index.json"))
        let husk = HuskCLI(scratch, sources: [w.path])
        let r = husk("pull", "amb:1")
        #expect(r.status == 1)
        #expect(r.stderr.contains("says its media type is \(MediaType.ociManifest), its descriptor says \(MediaType.ociIndex)"), "\(r.stderr)")
    }
}

/// After a refused pull: no record, no snapshot, no temporary directory, no ingest file.
func expectNothingKept(_ store: ImageStore, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect((try? store.images())?.isEmpty ?? true, "an image record was kept", sourceLocation: sourceLocation)
    let snaps = (try? FileManager.default.contentsOfDirectory(atPath: store.root + "/snapshots")) ?? []
    #expect(snaps.filter { !$0.hasPrefix(".lock") }.isEmpty, "snapshot leftovers: \(snaps)", sourceLocation: sourceLocation)
    let ingest = (try? FileManager.default.contentsOfDirectory(atPath: store.root + "/ingest")) ?? []
    #expect(ingest.isEmpty, "ingest leftovers: \(ingest)", sourceLocation: sourceLocation)
}

/// Regressions for the findings of the extractor's security review: each layer here once made
/// the extractor misbehave.
@Suite("Extractor review regressions", .enabled(if: Host.canTestImages, Host.imageSkipReason))
struct ExtractorRegressionTests {
    func pull(_ tar: [UInt8], in scratch: Scratch, args: [String] = [], timeout: TimeInterval = 60) throws -> (RunResult, HuskCLI) {
        var w = try LayoutWriter(scratch.path + "/layout")
        try w.addImage(tag: "1", layers: [.init(tar: tar)])
        let husk = HuskCLI(scratch, sources: [w.path])
        return (husk.run(args + ["pull", "r:1"], timeout: timeout), husk)
    }

    @Test("later entries replace earlier ones inside subdirectories (file, directory, symlink, whiteout)")
    func replaceInSubdirectories() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var t = TarWriter()
        t.add("d/", .dir, mode: 0o755)
        t.addFile("d/f", "one")
        t.addFile("d/f", "two")
        t.add("d/x/", .dir, mode: 0o755)
        t.addFile("d/x/inner", "i")
        t.addFile("d/x", "file over dir")
        t.add("d/y", .symlink, link: "f")
        t.add("d/y/", .dir, mode: 0o755)
        t.addFile("d/z", "gone")
        t.add("d/.wh.z", .file, mode: 0)
        let (r, husk) = try pull(t.finish(), in: scratch)
        #expect(r.status == 0, "\(r.stderr)")
        let snap = try husk.store.snapshotPaths(try #require(try husk.store.image(matching: "r:1")))[0]
        #expect(try String(contentsOfFile: snap + "/d/f", encoding: .utf8) == "two")
        #expect(try String(contentsOfFile: snap + "/d/x", encoding: .utf8) == "file over dir")
        var isDir: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: snap + "/d/y", isDirectory: &isDir) && isDir.boolValue)
        var st = stat()
        #expect(lstat(snap + "/d/z", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0, "no whiteout at d/z")
    }

    @Test("a PAX record length that wraps around is refused, not looped on")
    func paxOverflow() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        for tail in [" comment=y\n", " nokeyhere\n"] {
            var body = Array("5 a=\n20 comment=xxxxxxxx\n".utf8)
            body += Array(String(UInt64.max - 25 + 6).utf8) + Array(tail.utf8)
            var t = TarWriter()
            t.addMeta(.pax, body)
            t.addFile("f", "x")
            let (r, _) = try pull(t.finish(), in: scratch, timeout: 20)
            #expect(r.status == 1 && r.stderr.contains("malformed PAX header"), "\(r.status) \(r.stderr)")
        }
    }

    @Test("links and devices carry no data, whatever their size field says (no entry hidden from other readers)")
    func headerOnlyTypes() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var inner = TarWriter()
        inner.addFile("etc/ld.so.preload", "/evil.so\n")
        let payload = Array(inner.bytes)
        var t = TarWriter()
        t.add("s", .symlink, link: "target", sizeField: 512)
        t.add("hidden", .file, content: payload)
        t.addFile("visible", "ok")
        let (r, husk) = try pull(t.finish(), in: scratch)
        #expect(r.status == 0, "\(r.stderr)")
        let snap = try husk.store.snapshotPaths(try #require(try husk.store.image(matching: "r:1")))[0]
        #expect(!FileManager.default.fileExists(atPath: snap + "/etc/ld.so.preload"))
        #expect(FileManager.default.fileExists(atPath: snap + "/hidden"))
        #expect(FileManager.default.fileExists(atPath: snap + "/visible"))
    }

    @Test("xattr floods are refused; global PAX headers change nothing; long paths are refused")
    func paxAbuse() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var flood = TarWriter()
        for i in 0..<300 { flood.addMeta(.pax, TarWriter.paxBody([("SCHILY.xattr.user.a\(i)", Array("b".utf8))])) }
        flood.addFile("f", "x")
        let (r1, _) = try pull(flood.finish(), in: scratch)
        #expect(r1.status == 1 && r1.stderr.contains("too many or too large xattrs"), "\(r1.stderr)")

        let scratch2 = Scratch()
        defer { scratch2.cleanup() }
        var g = TarWriter()
        g.addMeta(.paxGlobal, TarWriter.paxBody([("uid", Array("0".utf8)), ("path", Array("renamed".utf8))]))
        g.add("setuid", .file, mode: 0o4755, content: Array("x".utf8), uid: 1000, gid: 1000)
        let (r2, husk2) = try pull(g.finish(), in: scratch2)
        #expect(r2.status == 0, "\(r2.stderr)")
        let snap = try husk2.store.snapshotPaths(try #require(try husk2.store.image(matching: "r:1")))[0]
        var st = stat()
        #expect(lstat(snap + "/setuid", &st) == 0 && st.st_uid == 1000, "a global header re-owned an entry")
        #expect(!FileManager.default.fileExists(atPath: snap + "/renamed"))

        let scratch3 = Scratch()
        defer { scratch3.cleanup() }
        var long = TarWriter()
        long.add("x", .file, content: [], pax: [("path", Array(("etc/" + String(repeating: "./", count: 2045) + "xx/name").utf8))])
        let (r3, _) = try pull(long.finish(), in: scratch3)
        #expect(r3.status == 1 && r3.stderr.contains("longer than PATH_MAX"), "\(r3.stderr)")
    }

    @Test("directory times: the last of duplicate entries wins; implicit parents are 0755 under any umask")
    func directoryMetadata() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var t = TarWriter()
        t.add("d/", .dir, mode: 0o755, mtime: 1000)
        t.add("d/", .dir, mode: 0o555, mtime: 3000)
        t.addFile("d/f", "x")
        t.addFile("implicit/parent/f", "y")
        var w = try LayoutWriter(scratch.path + "/layout")
        try w.addImage(tag: "1", layers: [.init(tar: t.finish())])
        let root = scratch.path + "/root"
        let r = run(["/bin/sh", "-c", "umask 077; exec \"$0\" --root \"$1\" --image-source \"$2\" pull r:1", huskPath, root, w.path])
        #expect(r.status == 0, "\(r.stderr)")
        let store = try ImageStore(root: root)
        let snap = try store.snapshotPaths(try #require(try store.image(matching: "r:1")))[0]
        var st = stat()
        #expect(stat(snap + "/d", &st) == 0 && st.st_mtim.tv_sec == 3000 && (st.st_mode & 0o7777) == 0o555)
        #expect(stat(snap + "/implicit", &st) == 0 && (st.st_mode & 0o7777) == 0o755, "implicit parent mode \(String(st.st_mode & 0o7777, radix: 8))")
        #expect(stat(snap, &st) == 0 && (st.st_mode & 0o7777) == 0o755)
    }
}
