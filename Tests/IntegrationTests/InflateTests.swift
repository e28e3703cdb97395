import Foundation
import HuskImage
import HuskSystem
import Testing

/// gzip layers go through ISA-L (loaded at run time) when it is there and through zlib
/// otherwise (`HUSK_INFLATE=zlib`). Both must give the same bytes and refuse the same damage:
/// issue 14's "fastest correct inflater".
@Suite(.serialized, .enabled(if: Host.canTestImages, Host.imageSkipReason))
struct InflateTests {
    static let isal = ["/usr/lib/x86_64-linux-gnu/libisal.so.2", "/usr/lib/aarch64-linux-gnu/libisal.so.2", "/usr/lib/libisal.so.2"]
        .contains { FileManager.default.fileExists(atPath: $0) }

    /// A tar of some MB with files of every size class, so that deflate blocks of every kind
    /// (stored, fixed, dynamic) and long back-references are in it.
    static func tar() -> [UInt8] {
        var t = TarWriter()
        var rng = SystemRandomNumberGenerator()
        t.add("d", .dir)
        for i in 0..<40 {
            let n = [0, 1, 511, 512, 4096, 70_000, 300_000][i % 7]
            var content = [UInt8](repeating: 0, count: n)
            for j in 0..<n { content[j] = i % 3 == 0 ? UInt8.random(in: 0...255, using: &rng) : UInt8(truncatingIfNeeded: (j / 7) ^ i) }
            t.add("d/f\(i)", .file, content: content)
        }
        return t.finish()
    }

    /// `mode`: the inflater, and "/2" for the reader/extractor pair of big layers (else by size).
    func pull(_ blob: [UInt8], diffID: [UInt8], inflater mode: String, in scratch: Scratch) throws -> (RunResult, HuskCLI) {
        var w = try LayoutWriter(scratch.path + "/layout")
        try w.addImage(tag: "1", layers: [.init(tar: blob, compression: "", mediaType: MediaType.ociLayerGzip, diffID: Digest.of(diffID).description)])
        var husk = HuskCLI(scratch, sources: [w.path])
        let parts = mode.split(separator: "/")
        husk.env = ["HUSK_INFLATE=\(parts[0])", "HUSK_UNPACK_THREADS=\(parts.count > 1 ? parts[1] : "0")"]
        return (husk("pull", "gz:1"), husk)
    }

    @Test("ISA-L and zlib unpack the same gzip layer to the same tree, on one thread and on two; ISA-L is used when libisal is there",
          arguments: ["isal", "zlib", "isal/2", "zlib/2"])
    func sameTree(_ inflater: String) throws {
        if inflater.hasPrefix("isal") && !Self.isal { print("skipped: libisal.so.2 is not installed (Scripts/install-deps.sh installs libisal-dev)"); return }
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let tar = Self.tar()
        let (r, husk) = try pull(try compress(tar, "gzip"), diffID: tar, inflater: inflater, in: scratch)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains(inflater.hasPrefix("isal") ? ", isa-l)" : ", zlib)"), "\(r.stderr)")
        let img = try #require(try husk.store.images().first)
        let snap = husk.store.snapshotPath(img.diffIDs[0])
        for i in [2, 3, 5, 6] {
            let got = try Data(contentsOf: URL(fileURLWithPath: snap + "/d/f\(i)"))
            #expect(got.count == [0, 1, 511, 512, 4096, 70_000, 300_000][i % 7], "f\(i)")
            if i % 3 != 0 { #expect(got.enumerated().allSatisfy { $0.element == UInt8(truncatingIfNeeded: ($0.offset / 7) ^ i) }, "f\(i) differs") }
        }
    }

    @Test("concatenated gzip members and trailing zeros are one layer; a bad CRC, a cut trailer, corrupt data and garbage after the end are refused, with nothing kept",
          arguments: ["isal", "zlib", "isal/2", "zlib/2"])
    func damage(_ inflater: String) throws {
        if inflater.hasPrefix("isal") && !Self.isal { print("skipped: libisal.so.2 is not installed (Scripts/install-deps.sh installs libisal-dev)"); return }
        let tar = Self.tar()
        let gz = try compress(tar, "gzip")
        let half = tar.count / 2
        let members = try compress(Array(tar[..<half]), "gzip") + compress(Array(tar[half...]), "gzip")
        for (name, blob) in [("two members", members), ("trailing zeros", gz + [UInt8](repeating: 0, count: 3000))] {
            let scratch = Scratch()
            defer { scratch.cleanup() }
            let (r, _) = try pull(blob, diffID: tar, inflater: inflater, in: scratch)
            #expect(r.status == 0, "\(inflater), \(name): \(r.stderr)")
        }
        var badCRC = gz
        badCRC[gz.count - 6] ^= 0x55
        var corrupt = gz
        for k in stride(from: gz.count / 3, to: gz.count / 3 + 64, by: 8) { corrupt[k] ^= 0xa5 }
        let cases: [(String, [UInt8], [String])] = [
            ("bad CRC", badCRC, ["the gzip data is corrupt: incorrect data check"]),
            ("cut trailer", Array(gz.dropLast(4)), ["the gzip stream is truncated"]),
            ("cut in the middle", Array(gz.prefix(gz.count / 2)), ["the gzip stream is truncated"]),
            ("corrupt data", corrupt, ["the gzip data is corrupt"]),
            ("garbage after the end", gz + Array("junk".utf8), ["garbage after the end of the gzip stream"]),
        ]
        for (name, blob, expected) in cases {
            let scratch = Scratch()
            defer { scratch.cleanup() }
            let (r, husk) = try pull(blob, diffID: tar, inflater: inflater, in: scratch)
            #expect(r.status == 1, "\(inflater), \(name)")
            #expect(expected.allSatisfy { r.stderr.contains($0) }, "\(inflater), \(name): \(r.stderr)")
            expectNothingKept(husk.store)
        }
    }

    @Test("two threads: an entry refused early in a big layer stops the reader (no hang) and its error is the one reported; a big layer unpacks whole",
          arguments: ["isal", "zlib"])
    func twoThreadsStop(_ inflater: String) throws {
        if inflater == "isal" && !Self.isal { print("skipped: libisal.so.2 is not installed (Scripts/install-deps.sh installs libisal-dev)"); return }
        let urandom = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        func random(_ n: Int) -> [UInt8] { Array(urandom.readData(ofLength: n)) }  // incompressible: the blob is over 4 MiB
        var bad = TarWriter()
        bad.add("a", .file, content: random(2 << 20))
        bad.addFile(HostileLayerTests.up + "evil", "pwned")
        bad.add("b", .file, content: random(10 << 20))
        let badTar = bad.finish()
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let (r, husk) = try pull(try compress(badTar, "gzip"), diffID: badTar, inflater: inflater, in: scratch)
        #expect(r.status == 1 && r.stderr.contains("contains .."), "\(r.stderr)")
        expectNothingKept(husk.store)
        var good = TarWriter()
        good.add("a", .file, content: random(3 << 20))
        good.add("b", .file, content: random(6 << 20))
        let goodTar = good.finish()
        let scratch2 = Scratch()
        defer { scratch2.cleanup() }
        let (ok, h2) = try pull(try compress(goodTar, "gzip"), diffID: goodTar, inflater: inflater, in: scratch2)
        #expect(ok.status == 0, "\(ok.stderr)")
        let img = try #require(try h2.store.images().first)
        let snap = h2.store.snapshotPath(img.diffIDs[0])
        #expect((try? FileManager.default.attributesOfItem(atPath: snap + "/b")[.size] as? Int) == 6 << 20)
    }

    @Test("a supervisor that pulled a gzip layer keeps neither libisal nor the libc.so.6 it brings mapped (its idle memory stays where it was)")
    func supervisorUnloads() throws {
        if !Self.isal { print("skipped: libisal.so.2 is not installed (Scripts/install-deps.sh installs libisal-dev)"); return }
        let scratch = Scratch()
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        _ = husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: inflate}
            spec:
              containers:
              - {name: c, image: "busybox:1.36", command: ["sleep", "60"]}
            """)
        let pod = husk.wait("inflate", timeout: 30) { $0.stateKind("c") == "running" }
        #expect(pod?.stateKind("c") == "running", "\(String(describing: pod?.status))")
        let pulled = events(husk.events("inflate"), "Pulled", "c").compactMap { $0["message"] as? String }
        #expect(pulled.first?.hasPrefix("Successfully pulled image") == true, "the supervisor did not pull: \(pulled)")
        let status = readText(husk.state + "/pods/" + ((try? FileManager.default.contentsOfDirectory(atPath: husk.state + "/pods"))?.first ?? "") + "/status.json")
        let pid = try #require(status.firstMatch(of: #/"supervisorPid" *: *([0-9]+)/#).map { String($0.1) }, "no supervisorPid: \(status)")
        let maps = readText("/proc/\(pid)/maps")
        // (A static husk's libc.so.6 comes with libisal and goes with it; a debug build links libc.)
        #expect(!maps.contains("libisal"), "still mapped: \(maps.split(separator: "\n").filter { $0.contains("libisal") })")
    }
}
