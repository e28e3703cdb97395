import CArchive
import HuskJSON
import HuskSPDY
import HuskSystem
import SystemPackage
@testable import HuskImage
@testable import HuskPod

#if canImport(Glibc)
import Glibc
#endif

/// The fuzz targets (issue 16, "Fuzzing"): every parser that takes input from outside. Each
/// takes arbitrary bytes and must return or throw, never crash, hang or run out of memory.
/// `Scripts/fuzz.sh` builds them with libFuzzer; without it, `husk-fuzz TARGET PATH...` runs
/// files (a corpus, crashes found before) through a target.
enum FuzzTargets {
    static let all: [String: @Sendable ([UInt8]) -> Void] = [
        "manifest": manifest, "json": json, "oci": oci, "reference": reference, "quantity": quantity,
        "hpack": hpack, "grpc": grpc, "tar": tar, "spdy": spdy,
    ]

    /// A pod manifest, YAML or JSON, with its validation and defaults (`husk run FILE`).
    static func manifest(_ bytes: [UInt8]) {
        _ = try? PodManifest.parse(bytes, file: "fuzz.yaml")
    }

    /// Husk's JSON parser (config.json, pod.json, status.json, OCI documents).
    static func json(_ bytes: [UInt8]) {
        guard let v = try? JSONParser.parse(bytes) else { return }
        // What parses must print and parse back to the same value.
        let again = try? JSONParser.parse(Array(v.serialized().utf8))
        precondition(again == v, "JSON round trip changed the value")
    }

    /// The OCI documents of a layout: index, manifest, image config.
    static func oci(_ bytes: [UInt8]) {
        guard let r = try? parseJSON(bytes, what: "fuzz", reason: .errImagePull) else { return }
        _ = try? decodeJSON("index", reason: .errImagePull) { () throws(FieldError) in try ImageIndex(json: r) }
        _ = try? decodeJSON("manifest", reason: .errImagePull) { () throws(FieldError) in try ImageManifest(json: r) }
        _ = try? decodeJSON("config", reason: .errImagePull) { () throws(FieldError) in try ImageConfig(json: r) }
    }

    /// Image references (`busybox:1.36`, `registry:5000/a/b@sha256:...`).
    static func reference(_ bytes: [UInt8]) {
        guard let ref = try? ImageReference(parsing: String(decoding: bytes, as: UTF8.self)) else { return }
        // The normalized form names the same image.
        let again = try? ImageReference(parsing: ref.description)
        precondition(again?.description == ref.description, "reference round trip: \(ref)")
    }

    /// Kubernetes quantities (memory and cpu).
    static func quantity(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = Quantity.bytes(text)
        _ = Quantity.milli(text)
    }

    /// The HPACK header-block decoder of the grpc probe's HTTP/2 reader.
    static func hpack(_ bytes: [UInt8]) {
        var decoder = HPACK.Decoder()
        _ = decoder.decode(bytes)
        _ = decoder.decode(bytes)  // with the dynamic table the first block left
    }

    /// The grpc probe's HTTP/2 reader, whole: the input is what the "server" (a container, so
    /// untrusted) answers on a socket pair, then EOF.
    static func grpc(_ bytes: [UInt8]) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { fatalError("socketpair: \(currentErrno.text)") }
        defer {
            close(fds[0])
            close(fds[1])
        }
        _ = Output.writeAll(fds[1], bytes)
        shutdown(fds[1], Int32(SHUT_WR))
        _ = GRPCHealth.call(fds[0], authority: "127.0.0.1:50051", service: "fuzz", userAgent: "kube-probe/1.30",
                            deadline: Clock.monotonicSeconds() + 1, within: "1s")
    }

    /// The SPDY/3.1 framer of the CRI streaming server: frames decoded in order with one
    /// connection's codec (its zlib stream carries over), each one encoded back.
    static func spdy(_ bytes: [UInt8]) {
        let codec = SPDYCodec()
        var at = 0
        while at < bytes.count {
            let before = at
            guard let frame = try? codec.decode(bytes, at: &at) else { return }
            precondition(at > before, "decode did not move")
            _ = SPDYCodec().encode(frame)
        }
    }

    /// The layer unpacker (C): the first byte picks none, gzip or zstd; the rest is the blob,
    /// unpacked into a fresh directory on /dev/shm that is removed after.
    static func tar(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let blob = Array(bytes.dropFirst())
        let dir = "/dev/shm/husk-fuzz-\(getpid())"
        guard mkdir(dir, 0o755) == 0 else { fatalError("cannot create \(dir): \(currentErrno.text)") }
        // Whatever a layer unpacked, Husk must be able to remove it (pod data, snapshots): a
        // failure is a finding too (a name that is not UTF-8 once was).
        defer {
            do {
                try Files.removeTree(dir)
            } catch {
                fatalError("cannot remove what the layer unpacked: \(error)")
            }
        }
        guard let blobFD = try? Memfd.create("layer") else { fatalError("memfd_create failed") }
        try? blobFD.writeAll(blob)
        let root = open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(root) }
        var opts = carchive_unpack_options()
        opts.compression = Int32(first % 3)
        opts.max_bytes = 64 << 20
        opts.max_entries = 10_000
        opts.preserve_owner = 0
        opts.allow_devices = 0
        // Both paths: one thread, and the reader/extractor pair of big layers.
        opts.threads = (first / 3) % 2 == 0 ? 1 : 2
        var res = carchive_unpack_result()
        _ = carchive_unpack_layer(blobFD.raw, UInt64(blob.count), root, &opts, &res)
    }
}
