import Foundation
import HuskImage
import HuskSystem
import Testing

/// Pulling from layouts made by umoci and skopeo (issue 3, "Done means" 1).
@Suite("Image pulls", .enabled(if: Host.canTestImages, Host.imageSkipReason))
struct ImagePullTests {
    @Test("a umoci layout: every tag by tag, digest, full and short reference; each unpacks as umoci unpacks it")
    func umociLayout() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let image = try UmociImage.make(in: scratch)
        let husk = HuskCLI(scratch, sources: [image.layout])
        for tag in ["1.0", "2.0", "3.0"] {
            let r = husk("pull", "busybox:\(tag)")
            #expect(r.status == 0, "pull \(tag): \(r.stderr)")
            #expect(r.stdout.hasPrefix("Pulled docker.io/library/busybox:\(tag) (image sha256:"), "\(r.stdout)")
        }
        let store = husk.store
        let images = try store.images()
        #expect(images.count == 3)
        let v3 = try #require(try store.image(matching: "busybox:3.0"))
        #expect(v3.layers.count == 3)
        #expect(v3.repoTags == ["docker.io/library/busybox:3.0"])

        // The same image by digest, full reference, and the implied :latest.
        let digest = v3.manifest.digest
        let byDigest = husk("pull", "--policy", "Always", "busybox@\(digest)")
        #expect(byDigest.status == 0, "\(byDigest.stderr)")
        #expect(husk("pull", "--policy", "Always", "docker.io/library/busybox:3.0").status == 0)
        let latest = husk("pull", "busybox")
        #expect(latest.status == 0, "\(latest.stderr)")
        let after = try store.image(matching: "busybox:latest")
        #expect(after?.id == v3.id)
        #expect(try store.images().count == 3, "re-pulls made new records")
        #expect(try store.image(matching: "busybox@\(digest)")?.id == v3.id)
        #expect(try store.image(matching: String(v3.id.hex.prefix(12)))?.id == v3.id)

        // Each layer was unpacked once: 3 distinct diff_ids.
        let snaps = (try FileManager.default.contentsOfDirectory(atPath: store.root + "/snapshots")).filter { !$0.hasPrefix(".") }
        #expect(snaps.count == 3, "\(snaps)")

        for tag in ["1.0", "2.0", "3.0"] {
            let img = try #require(try store.image(matching: "busybox:\(tag)"))
            let theirs = treeListing(try image.umociUnpack(tag, into: scratch.path + "/umoci-\(tag)"))
            let ours = try withMergedImage(store, img, in: scratch) { treeListing($0) }
            #expect(theirs.count > 250, "umoci unpacked too little for \(tag): \(theirs.count)")
            #expect(ours == theirs, "tag \(tag) differs: \(Self.difference(ours, theirs))")
        }
        // The whiteouts of 3.0 hide what 2.0 added.
        let merged3 = try withMergedImage(store, v3, in: scratch) { root in
            (FileManager.default.fileExists(atPath: root + "/data/a"), try String(contentsOfFile: root + "/data/b", encoding: .utf8))
        }
        #expect(merged3.0 == false)
        #expect(merged3.1 == "changed\n")
    }

    static func difference(_ a: [String: String], _ b: [String: String]) -> String {
        var out: [String] = []
        for k in Set(a.keys).union(b.keys).sorted() where a[k] != b[k] {
            out.append("\(k): husk=\(a[k] ?? "missing") umoci=\(b[k] ?? "missing")")
            if out.count > 10 { break }
        }
        return out.joined(separator: "; ")
    }

    @Test("skopeo oci: layouts (gzip and zstd layers) and an oci-archive .tar pull the same image")
    func skopeoLayouts() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let image = try UmociImage.make(in: scratch)
        let gz = scratch.path + "/skopeo-gzip"
        let zst = scratch.path + "/skopeo-zstd"
        let tar = scratch.path + "/archive.tar"
        for (args, what) in [
            (["copy", "-q", "oci:\(image.layout):3.0", "oci:\(gz):3.0"], "gzip"),
            (["copy", "-q", "--dest-compress-format", "zstd", "oci:\(image.layout):3.0", "oci:\(zst):3.0"], "zstd"),
            (["copy", "-q", "oci:\(image.layout):3.0", "oci-archive:\(tar):3.0"], "archive"),
        ] {
            let r = run(["/usr/bin/skopeo"] + args)
            #expect(r.status == 0, "skopeo \(what): \(r.stderr)")
        }
        let reference = try #require(try HuskCLI(scratch, sources: [image.layout]).pullAndReturn("busybox:3.0", scratch: scratch, name: "ref"))
        for source in [gz, zst, tar] {
            let husk = HuskCLI(scratch, sources: [source])
            let root = scratch.path + "/root-" + (source as NSString).lastPathComponent
            let r = IntegrationTests.run([huskPath, "--root", root, "--image-source", source, "pull", "busybox:3.0"])
            #expect(r.status == 0, "pull from \(source): \(r.stderr)")
            let store = try ImageStore(root: root)
            let img = try #require(try store.image(matching: "busybox:3.0"))
            if source == zst {
                #expect(img.layers.allSatisfy { $0.mediaType == MediaType.ociLayerZstd }, "\(img.layers.map(\.mediaType))")
            }
            let ours = try withMergedImage(store, img, in: scratch) { treeListing($0) }
            #expect(ours == reference, "\(source) differs: \(Self.difference(ours, reference))")
            _ = husk
        }
    }

    @Test("an opaque directory hides lower contents; nested and multi-platform indexes pick linux/amd64")
    func opaqueAndIndexes() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var w = try LayoutWriter(scratch.path + "/layout")
        var base = TarWriter()
        base.add("etc/", .dir, mode: 0o755)
        base.addFile("etc/os-release", "base\n")
        base.add("opt/", .dir, mode: 0o755)
        base.add("opt/app/", .dir, mode: 0o755)
        base.addFile("opt/app/old", "old\n")
        var top = TarWriter()
        top.add("opt/app/", .dir, mode: 0o750)
        top.add("opt/app/.wh..wh..opq", .file, mode: 0)
        top.addFile("opt/app/new", "new\n")
        let amd = try w.addImage(tag: nil, layers: [.init(tar: base.finish()), .init(tar: top.finish())], toIndex: false)
        let arm = try w.addImage(tag: nil, layers: [.init(tar: base.finish())], platform: ("linux", "arm64"), toIndex: false)
        let inner = try w.addIndex(tag: nil, entries: [arm, amd], toIndex: false)
        try w.addIndex(tag: "multi", entries: [inner])

        let husk = HuskCLI(scratch, sources: [w.path])
        let r = husk("pull", "app:multi")
        #expect(r.status == 0, "\(r.stderr)")
        let img = try #require(try husk.store.image(matching: "app:multi"))
        #expect(img.manifest.digest.description == amd["digest"] as? String)
        let listing = try withMergedImage(husk.store, img, in: scratch) { treeListing($0) }
        #expect(listing["./opt/app/old"] == nil, "opaque dir leaked lower content: \(listing.keys.sorted())")
        #expect(listing["./opt/app/new"] != nil)
        #expect(listing["./opt/app"]?.hasPrefix("d 750") == true, "\(listing["./opt/app"] ?? "")")

        // umoci agrees on what the image is.
        let u = run(["/usr/bin/umoci", "unpack", "--image", "\(w.path)@\(amd["digest"] as! String)", scratch.path + "/u"])
        if u.status == 0 {
            #expect(treeListing(scratch.path + "/u/rootfs") == listing)
        }
    }

    @Test("two pulls of one image at once both succeed and make one record")
    func concurrentPulls() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let image = try UmociImage.make(in: scratch)
        let husk = HuskCLI(scratch, sources: [image.layout])
        let group = DispatchGroup()
        let results = ResultsBox()
        for _ in 0..<3 {
            group.enter()
            DispatchQueue.global().async {
                let r = husk("pull", "busybox:3.0")
                results.append(r)
                group.leave()
            }
        }
        group.wait()
        #expect(results.all.allSatisfy { $0.status == 0 }, "\(results.all.map(\.stderr))")
        #expect(try husk.store.images().count == 1)
        let leftovers = (try FileManager.default.contentsOfDirectory(atPath: husk.store.root + "/snapshots")).filter { $0.hasPrefix(".tmp") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    @Test("husk images, image inspect, rmi (refused while leased) and gc")
    func listInspectRemove() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let image = try UmociImage.make(in: scratch)
        let husk = HuskCLI(scratch, sources: [image.layout])
        #expect(husk("pull", "busybox:2.0").status == 0)
        #expect(husk("pull", "busybox:3.0").status == 0)
        let table = husk("images")
        #expect(table.stdout.hasPrefix("IMAGE"))
        #expect(table.stdout.contains("docker.io/library/busybox   2.0"), "\(table.stdout)")
        let json = husk("images", "-o", "json")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect((obj["images"] as? [[String: Any]])?.count == 2)
        let inspect = husk("image", "inspect", "busybox:3.0")
        #expect(inspect.status == 0 && inspect.stdout.contains("\"diff_ids\""), "\(inspect.stderr)")

        let v3 = try #require(try husk.store.image(matching: "busybox:3.0"))
        try husk.store.lease("pod-x/c1", image: v3.id)
        let refused = husk("rmi", "busybox:3.0")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("ImageInUse") && refused.stderr.contains("pod-x_c1"), "\(refused.stderr)")
        husk.store.release("pod-x/c1")
        let rmi = husk("rmi", "busybox:3.0")
        #expect(rmi.status == 0 && rmi.stdout.hasPrefix("Deleted: \(v3.id)"), "\(rmi.stdout) \(rmi.stderr)")
        // 2.0's layers stay; 3.0's own top layer and config went.
        let v2 = try #require(try husk.store.image(matching: "busybox:2.0"))
        #expect(throws: Never.self) { _ = try husk.store.snapshotPaths(v2) }
        #expect(!FileManager.default.fileExists(atPath: husk.store.snapshotPath(v3.diffIDs[2])))
        #expect(!FileManager.default.fileExists(atPath: husk.store.blobPath(v3.id)))
        #expect(husk("rmi", "nope:1").stderr.contains("no such image: nope:1"))
        let gc = husk("gc")
        #expect(gc.status == 0 && gc.stdout.contains("gc: 0 blobs"), "\(gc.stdout)")
    }

    @Test("rmi removes a snapshot 2000 directories deep; a removal that fails says so, and no pull reuses the rest (issue 16 #3, #11)")
    func removalOfDeepAndStuckSnapshots() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let image = try UmociImage.make(in: scratch)
        let husk = HuskCLI(scratch, sources: [image.layout])
        #expect(husk("pull", "busybox:3.0").status == 0)
        var img = try #require(try husk.store.image(matching: "busybox:3.0"))
        let top = husk.store.snapshotPath(try #require(img.diffIDs.last))
        let listing = treeListing(top)
        // A path far over PATH_MAX in the snapshot, as a hostile layer can make.
        try makeDeepDirectories(top + "/deep", depth: 2000)
        let rmi = husk("rmi", "busybox:3.0")
        #expect(rmi.status == 0 && rmi.stdout.hasPrefix("Deleted: "), "\(rmi.stdout) \(rmi.stderr)")
        #expect(!FileManager.default.fileExists(atPath: top))
        let snapshots = husk.store.root + "/snapshots"
        #expect(try FileManager.default.contentsOfDirectory(atPath: snapshots).filter { $0.hasPrefix(".") }.isEmpty)

        // A removal that cannot finish (a mount point inside): rmi fails and says what is
        // left; the snapshot's name is gone at once, so the next pull unpacks it afresh.
        #expect(husk("pull", "busybox:3.0").status == 0)
        img = try #require(try husk.store.image(matching: "busybox:3.0"))
        #expect(treeListing(top) == listing)
        try FileManager.default.createDirectory(atPath: top + "/m", withIntermediateDirectories: false)
        #expect(mount("tmpfs", top + "/m", "tmpfs", 0, nil) == 0)
        var mounted = top + "/m"
        defer { umount2(mounted, Int32(MNT_DETACH)) }
        let failed = husk("rmi", "busybox:3.0")
        #expect(failed.status == 1, "\(failed.stdout) \(failed.stderr)")
        #expect(failed.stderr.contains("only partly removed") && failed.stderr.contains("husk gc"), "\(failed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: top))
        let pulled = husk("pull", "busybox:3.0")
        #expect(pulled.status == 0, "\(pulled.stderr)")
        #expect(treeListing(top) == listing)
        // What is left goes with gc once it can; so does a killed pull's lock file.
        let removing = try #require(try FileManager.default.contentsOfDirectory(atPath: snapshots).first { $0.hasPrefix(".removing-") })
        umount2(snapshots + "/" + removing + "/m", Int32(MNT_DETACH))
        mounted = ""
        _ = FileManager.default.createFile(atPath: snapshots + "/.lock-" + String(repeating: "a", count: 64), contents: nil)
        let gc = husk("gc")
        #expect(gc.status == 0, "\(gc.stdout) \(gc.stderr)")
        #expect(gc.stdout.contains(removing) && gc.stdout.contains(".lock-aaaa"), "\(gc.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: snapshots).filter { $0.hasPrefix(".") }.isEmpty)
        _ = img
    }
}

/// Makes `depth` nested directories below `root`, by descriptor (the path is over PATH_MAX).
func makeDeepDirectories(_ root: String, depth: Int) throws {
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    var fd = open(root, O_RDONLY | O_DIRECTORY)
    for _ in 0..<depth {
        mkdirat(fd, "dddddddddd", 0o755)
        close(openat(fd, "f", O_WRONLY | O_CREAT, 0o644))
        let next = openat(fd, "dddddddddd", O_RDONLY | O_DIRECTORY)
        close(fd)
        fd = next
    }
    close(fd)
}

/// Results collected from several threads.
final class ResultsBox: @unchecked Sendable {  // guarded by lock
    private let lock = NSLock()
    private var items: [RunResult] = []
    func append(_ r: RunResult) { lock.withLock { items.append(r) } }
    var all: [RunResult] { lock.withLock { items } }
}

extension HuskCLI {
    /// Pulls into a separate root and returns the merged tree listing of the image.
    func pullAndReturn(_ ref: String, scratch: Scratch, name: String) throws -> [String: String]? {
        let root = scratch.path + "/root-" + name
        let r = IntegrationTests.run([huskPath, "--root", root] + sources.flatMap { ["--image-source", $0] } + ["pull", ref])
        guard r.status == 0 else { return nil }
        let store = try ImageStore(root: root)
        guard let img = try store.image(matching: ref) else { return nil }
        return try withMergedImage(store, img, in: scratch) { treeListing($0) }
    }
}
