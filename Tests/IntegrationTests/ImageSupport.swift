import Foundation
import HuskImage
import HuskSystem
import Testing

/// The husk binary built next to this test bundle.
let huskPath: String = (huskRuncPath as NSString).deletingLastPathComponent + "/husk"

extension Host {
    static let umoci = FileManager.default.isExecutableFile(atPath: "/usr/bin/umoci")
    static let skopeo = FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo")
    static var canTestImages: Bool { canRunContainers && umoci && skopeo }
    static var imageSkipReason: Comment {
        if !canRunContainers { return skipReason }
        return "needs umoci and skopeo (Scripts/install-deps.sh installs them)"
    }
}

/// `husk` with a test root and image sources.
struct HuskCLI {
    let root: String
    var sources: [String] = []
    /// Registry pulls: off unless a test serves a registry (no test reaches the network).
    var registries: [String] = ["--no-registries"]
    /// Extra environment (NAME=value), through env(1).
    var env: [String] = []

    init(_ scratch: Scratch, sources: [String] = []) {
        root = scratch.path + "/husk-root"
        self.sources = sources
    }

    @discardableResult
    func callAsFunction(_ args: String..., timeout: TimeInterval = 120) -> RunResult {
        run(args)
    }

    func run(_ args: [String], timeout: TimeInterval = 120) -> RunResult {
        IntegrationTests.run((env.isEmpty ? [] : ["/usr/bin/env"] + env) + [huskPath, "--root", root] + registries + sources.flatMap { ["--image-source", $0] } + args, timeout: timeout)
    }

    var store: ImageStore { try! ImageStore(root: root) }
}

// MARK: - Writing tar archives by hand

/// A ustar writer for hand-made (and hostile) layers.
struct TarWriter {
    private(set) var bytes: [UInt8] = []

    enum Kind: UInt8 {
        case file = 48, hardlink = 49, symlink = 50, char = 51, block = 52, dir = 53, fifo = 54, pax = 120, paxGlobal = 103
    }

    /// One PAX extended header body from records.
    static func paxBody(_ records: [(String, [UInt8])]) -> [UInt8] {
        var body: [UInt8] = []
        for (k, v) in records {
            let rest = Array(" \(k)=".utf8) + v + [10]
            var len = rest.count + 1
            while String(len).count + rest.count != len { len = String(len).count + rest.count }
            body += Array(String(len).utf8) + rest
        }
        return body
    }

    /// - Parameter sizeField: what the header's size says, when it must lie.
    mutating func add(
        _ name: String, _ kind: Kind = .file, mode: Int = 0o644, content: [UInt8] = [], link: String = "",
        uid: Int = 0, gid: Int = 0, mtime: Int = 1_700_000_000, devmajor: Int = 0, devminor: Int = 0,
        pax: [(String, [UInt8])] = [], sizeField: Int? = nil
    ) {
        if !pax.isEmpty { addMeta(.pax, TarWriter.paxBody(pax)) }
        addHeader(name, kind, mode: mode, size: sizeField ?? content.count, link: link, uid: uid, gid: gid, mtime: mtime, maj: devmajor, min: devminor)
        append(content)
    }

    /// A PAX ('x' or 'g') header with a raw body.
    mutating func addMeta(_ kind: Kind, _ body: [UInt8]) {
        addHeader("PaxHeader", kind, mode: 0o644, size: body.count, link: "", uid: 0, gid: 0, mtime: 0, maj: 0, min: 0)
        append(body)
    }

    /// Bytes as they are (for archives inside archives).
    mutating func addRaw(_ data: [UInt8]) { append(data) }

    mutating func addFile(_ name: String, _ text: String, mode: Int = 0o644) {
        add(name, .file, mode: mode, content: Array(text.utf8))
    }

    private mutating func append(_ data: [UInt8]) {
        bytes += data
        let pad = (512 - data.count % 512) % 512
        bytes += [UInt8](repeating: 0, count: pad)
    }

    private mutating func addHeader(
        _ name: String, _ kind: Kind, mode: Int, size: Int, link: String, uid: Int, gid: Int, mtime: Int, maj: Int, min: Int
    ) {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ at: Int, _ len: Int) {
            for (i, b) in s.utf8.prefix(len).enumerated() { h[at + i] = b }
        }
        func octal(_ v: Int, _ at: Int, _ len: Int) {
            let s = String(v, radix: 8)
            put(String(repeating: "0", count: max(0, len - 1 - s.count)) + s, at, len - 1)
        }
        put(name, 0, 100)
        octal(mode, 100, 8)
        octal(uid, 108, 8)
        octal(gid, 116, 8)
        octal(size, 124, 12)
        octal(mtime, 136, 12)
        h[156] = kind.rawValue
        put(link, 157, 100)
        put("ustar", 257, 6)
        put("00", 263, 2)
        octal(maj, 329, 8)
        octal(min, 337, 8)
        for i in 148..<156 { h[i] = 32 }
        let sum = h.reduce(0) { $0 + Int($1) }
        let s = String(sum, radix: 8)
        put(String(repeating: "0", count: 6 - s.count) + s, 148, 6)
        h[154] = 0
        h[155] = 32
        bytes += h
    }

    /// The archive with its end-of-archive marker.
    func finish() -> [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }
}

// MARK: - Writing OCI layouts by hand

/// Writes OCI image layouts directly, so tests can make any image, valid or not.
struct LayoutWriter {
    let path: String
    private(set) var manifests: [[String: Any]] = []

    init(_ path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path + "/blobs/sha256", withIntermediateDirectories: true)
        try #"{"imageLayoutVersion": "1.0.0"}"#.write(toFile: path + "/oci-layout", atomically: true, encoding: .utf8)
        try writeIndex()
    }

    @discardableResult
    func blob(_ bytes: [UInt8]) throws -> (digest: String, size: Int) {
        let d = Digest.of(bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path + "/blobs/sha256/" + d.hex))
        return (d.description, bytes.count)
    }

    func json(_ obj: Any) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]))
    }

    struct Layer {
        var tar: [UInt8]
        var compression: String = "gzip"  // "", "gzip", "zstd"
        var mediaType: String? = nil  // override (for lies)
        var diffID: String? = nil  // override (for lies)
    }

    /// Adds an image made of `layers`; returns the manifest descriptor as a dictionary.
    @discardableResult
    mutating func addImage(
        tag: String?, layers: [Layer], config extra: [String: Any] = [:], platform: (String, String) = ("linux", "amd64"),
        toIndex: Bool = true
    ) throws -> [String: Any] {
        var layerDescs: [[String: Any]] = []
        var diffIDs: [String] = []
        for l in layers {
            let blob = try compress(l.tar, l.compression)
            let (d, n) = try self.blob(blob)
            let mt = l.mediaType ?? (l.compression == "" ? MediaType.ociLayer : l.compression == "gzip" ? MediaType.ociLayerGzip : MediaType.ociLayerZstd)
            layerDescs.append(["mediaType": mt, "digest": d, "size": n])
            diffIDs.append(l.diffID ?? Digest.of(l.tar).description)
        }
        var config: [String: Any] = [
            "architecture": platform.1, "os": platform.0, "rootfs": ["type": "layers", "diff_ids": diffIDs],
            "config": ["Cmd": ["/bin/sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]],
        ]
        for (k, v) in extra { config[k] = v }
        let (cd, cn) = try blob(try json(config))
        let manifest: [String: Any] = [
            "schemaVersion": 2, "mediaType": MediaType.ociManifest,
            "config": ["mediaType": MediaType.ociConfig, "digest": cd, "size": cn], "layers": layerDescs,
        ]
        let (md, mn) = try blob(try json(manifest))
        var desc: [String: Any] = ["mediaType": MediaType.ociManifest, "digest": md, "size": mn,
                                   "platform": ["os": platform.0, "architecture": platform.1]]
        if let tag { desc["annotations"] = [Descriptor.refNameAnnotation: tag] }
        if toIndex {
            manifests.append(desc)
            try writeIndex()
        }
        return desc
    }

    /// Adds an index (nested or multi-platform) of the given manifest descriptors.
    @discardableResult
    mutating func addIndex(tag: String?, entries: [[String: Any]], toIndex: Bool = true) throws -> [String: Any] {
        let idx: [String: Any] = ["schemaVersion": 2, "mediaType": MediaType.ociIndex, "manifests": entries]
        let (d, n) = try blob(try json(idx))
        var desc: [String: Any] = ["mediaType": MediaType.ociIndex, "digest": d, "size": n]
        if let tag { desc["annotations"] = [Descriptor.refNameAnnotation: tag] }
        if toIndex {
            manifests.append(desc)
            try writeIndex()
        }
        return desc
    }

    func writeIndex() throws {
        let idx: [String: Any] = ["schemaVersion": 2, "manifests": manifests]
        try Data(try json(idx)).write(to: URL(fileURLWithPath: path + "/index.json"))
    }
}

/// gzip or zstd through the command-line tools (what a registry image would have).
func compress(_ bytes: [UInt8], _ how: String) throws -> [UInt8] {
    if how.isEmpty { return bytes }
    let tmp = NSTemporaryDirectory() + "husk-test-compress-\(UUID().uuidString)"
    try Data(bytes).write(to: URL(fileURLWithPath: tmp))
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let r = how == "gzip" ? run(["/bin/sh", "-c", "gzip -n -c < \"$0\" | base64 -w0", tmp]) : run(["/bin/sh", "-c", "zstd -q -c < \"$0\" | base64 -w0", tmp])
    guard r.status == 0, let data = Data(base64Encoded: r.stdout) else { throw HuskError(.system, "compress: \(r.stderr)") }
    return Array(data)
}

// MARK: - Images made with umoci and skopeo

/// A multi-tag, multi-layer image made with umoci from busybox-static:
/// 1.0 = busybox; 2.0 = + files, a directory, a symlink, a hardlink, odd modes and owners;
/// 3.0 (also latest) = a file deleted and a directory's files deleted (whiteouts), a file changed.
struct UmociImage {
    let layout: String

    static func make(in scratch: Scratch) throws -> UmociImage {
        let layout = scratch.path + "/umoci-layout"
        func sh(_ script: String) throws {
            let r = run(["/bin/sh", "-ec", script])
            if r.status != 0 { throw HuskError(.system, "umoci fixture: \(r.stderr)") }
        }
        let b = scratch.path + "/umoci-work"
        try sh("umoci init --layout \(layout) && umoci new --image \(layout):base && umoci unpack --image \(layout):base \(b)1 >/dev/null")
        try FileManager.default.removeItem(atPath: b + "1/rootfs")
        try TestBundle.makeBusyboxRootfs(b + "1/rootfs")
        try sh("umoci repack --image \(layout):base \(b)1 && umoci config --image \(layout):base --config.cmd /bin/sh --config.env PATH=/bin --tag 1.0")
        try sh("""
            umoci unpack --image \(layout):1.0 \(b)2 >/dev/null
            r=\(b)2/rootfs
            mkdir -p $r/data $r/opt/app $r/srv
            echo one > $r/data/a; echo two > $r/data/b; echo old > $r/opt/app/x; echo old > $r/opt/app/y
            echo motd > $r/etc/motd; chmod 600 $r/etc/motd
            ln -s ../data/b $r/srv/link; ln $r/data/b $r/srv/hard
            echo s > $r/srv/setuid; chmod 4755 $r/srv/setuid; chown 1000:2000 $r/srv/setuid
            mkdir -m 1777 $r/srv/sticky; mkfifo $r/srv/fifo
            umoci repack --image \(layout):2.0 \(b)2
            """)
        // repack writes the tag it is given (and leaves the one the bundle came from alone).
        try sh("""
            umoci unpack --image \(layout):2.0 \(b)3 >/dev/null
            r=\(b)3/rootfs
            rm $r/data/a; rm $r/opt/app/x $r/opt/app/y; echo changed > $r/data/b; echo z > $r/opt/app/z
            umoci repack --image \(layout):3.0 \(b)3
            umoci tag --image \(layout):3.0 latest
            """)
        return UmociImage(layout: layout)
    }

    /// The rootfs umoci itself unpacks for a tag.
    func umociUnpack(_ tag: String, into dir: String) throws -> String {
        let r = run(["/usr/bin/umoci", "unpack", "--image", "\(layout):\(tag)", dir])
        if r.status != 0 { throw HuskError(.system, "umoci unpack: \(r.stderr)") }
        return dir + "/rootfs"
    }
}

// MARK: - Comparing trees

/// Everything that must match between two root filesystems, per path.
func treeListing(_ root: String) -> [String: String] {
    let r = run(["/bin/sh", "-c", "cd \"$0\" && find . -mindepth 1 -printf '%p\\t%y %m %U %G %s %l\\n'", root])
    var out: [String: String] = [:]
    for line in r.stdout.split(separator: "\n") {
        let parts = line.split(separator: "\t", maxSplits: 1)
        guard parts.count == 2 else { continue }
        var meta = String(parts[1])
        if meta.hasPrefix("d ") {
            // A directory's size depends on the filesystem, not on its contents.
            var f = meta.split(separator: " ", omittingEmptySubsequences: false)
            f[4] = "-"
            meta = f.joined(separator: " ")
        } else if meta.hasPrefix("f ") {
            meta += " " + (FileManager.default.contents(atPath: root + "/" + parts[0]).map { Digest.of(Array($0)).short } ?? "?")
        }
        out[String(parts[0])] = meta
    }
    return out
}

/// Mounts the overlay of an image's snapshots read-only at a temp dir, runs `body`, unmounts.
func withMergedImage<T>(_ store: ImageStore, _ image: ImageRecord, in scratch: Scratch, _ body: (String) throws -> T) throws -> T {
    let target = scratch.path + "/merged-\(UUID().uuidString.prefix(6))"
    try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
    try Overlay.mount(lower: try store.snapshotPaths(image), upper: nil, work: nil, target: target)
    defer { try? Overlay.unmount(target) }
    return try body(target)
}

/// A tree of files outside any root, whose bytes must not change: the target of hostile layers.
struct Sentinel {
    let path: String

    init(in scratch: Scratch) throws {
        path = scratch.path + "/sentinel"
        try FileManager.default.createDirectory(atPath: path + "/etc", withIntermediateDirectories: true)
        try "root:x:0:0::/root:/bin/sh\n".write(toFile: path + "/etc/passwd", atomically: false, encoding: .utf8)
        try "keep\n".write(toFile: path + "/file", atomically: false, encoding: .utf8)
        chmod(path + "/file", 0o644)
    }

    var fingerprint: [String: String] { treeListing(path) }
}
