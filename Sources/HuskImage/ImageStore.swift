import CArchive
import FoundationEssentials
import HuskJSON
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One image in the store.
public struct ImageRecord: Codable, Sendable, Equatable {
    /// The image ID: the digest of its config.
    public var id: Digest
    /// `docker.io/library/busybox:1.36`
    public var repoTags: [String]
    /// `docker.io/library/busybox@sha256:<manifest digest>`
    public var repoDigests: [String]
    public var manifest: Descriptor
    public var config: ImageConfig
    public var layers: [Descriptor]
    /// Bytes of its blobs in the store (config and compressed layers).
    public var size: Int64
    public var pulledAt: String
    /// The image source it came from.
    public var source: String

    public var diffIDs: [Digest] { config.rootfs.diff_ids }
}

/// The image index on disk: every record, rewritten atomically under the store lock.
struct ImageIndexFile {
    var images: [ImageRecord]
}

/// Options of the store.
public struct ImageStoreOptions: Sendable {
    /// Refuse layers that unpack to more than this (decompression bombs). containerd has no
    /// such cap; 64 GiB is above the largest layers in use (ML images reach ~20 GiB), and the
    /// free-space reserve below is what keeps a bomb from filling the disk.
    public var maxLayerBytes: UInt64 = 64 << 30
    /// Stop unpacking when the store's filesystem has less free than this; nil: 5% of its
    /// size, at least 64 MiB and at most 2 GiB (kubelet starts evicting at 10–15%).
    public var minFreeBytes: UInt64? = nil
    /// Refuse layers with more entries than this.
    public var maxLayerEntries: UInt64 = 4_000_000
    /// Layers unpacked at once.
    public var parallelUnpacks: Int = 2
    /// Inflate gzip layers with zlib even when ISA-L is there (`HUSK_INFLATE=zlib`): for
    /// comparisons and for a host whose libisal misbehaves.
    public var zlibOnly: Bool = getenv("HUSK_INFLATE").map { String(cString: $0) == "zlib" } ?? false
    /// Threads per layer (`HUSK_UNPACK_THREADS`): 0, by size (two for a blob of 4 MiB or more:
    /// one reads, hashes and decompresses, one creates the entries); 1 or 2 always (tests).
    public var unpackThreads: Int32 = getenv("HUSK_UNPACK_THREADS").flatMap { Int32(String(cString: $0)) }.map { min(max($0, 0), 2) } ?? 0

    public init() {}
}

/// Husk's content-addressed image store under `<root>/images` (DESIGN §5): blobs by digest,
/// every one checked for size and sha256 before it is used; layers unpacked once per diff_id;
/// image records in one index file. Writes are atomic (temporary file or directory, then
/// rename), so a crash leaves no half image visible; two pulls of one image at once are safe.
public final class ImageStore: Sendable {
    public let root: String
    public let options: ImageStoreOptions

    var blobsDir: String { root + "/blobs/sha256" }
    var ingestDir: String { root + "/ingest" }
    var snapshotsDir: String { root + "/snapshots" }
    var leasesDir: String { root + "/leases" }
    var indexPath: String { root + "/index.json" }
    var lockPath: String { root + "/lock" }

    /// - Parameter root: Husk's `--root`; the store lives in `<root>/images`.
    public init(root: String, options: ImageStoreOptions = ImageStoreOptions()) throws(ImageError) {
        self.root = Files.absolute(root) + "/images"
        self.options = options
        do {
            for d in [blobsDir, ingestDir, snapshotsDir, leasesDir] { try Files.makeDirectories(d, mode: 0o700) }
        } catch {
            throw ImageError(reason: .storeError, message: "cannot create the image store at \(self.root): \(error)")
        }
    }

    // MARK: - Records

    /// Every image, in the order they were first pulled.
    public func images() throws(ImageError) -> [ImageRecord] {
        try readIndex().images
    }

    func readIndex() throws(ImageError) -> ImageIndexFile {
        let bytes: [UInt8]?
        do {
            bytes = try Files.read(indexPath)
        } catch {
            throw ImageError(reason: .storeError, message: "cannot read \(indexPath): \(error)")
        }
        guard let bytes else { return ImageIndexFile(images: []) }
        let r = try parseJSON(bytes, what: indexPath, reason: .storeError)
        return try decodeJSON(indexPath, reason: .storeError) { () throws(FieldError) in
            ImageIndexFile(images: try r.optArray("images") { (i) throws(FieldError) in try ImageRecord(json: i) } ?? [])
        }
    }

    func writeIndex(_ index: ImageIndexFile) throws(ImageError) {
        let text = JSONText.object([("images", JSONText.array(index.images.map(\.jsonText)))])
        do {
            try Files.writeAtomically(indexPath, Array(text.utf8), mode: 0o600)
        } catch {
            throw ImageError(reason: .storeError, message: "cannot write \(indexPath): \(error)")
        }
    }

    /// Runs `body` holding the store's exclusive lock (flock, so other processes wait too).
    func withLock<T>(_ body: () throws(ImageError) -> T) throws(ImageError) -> T {
        let fd: FD
        do {
            fd = try FD.open(lockPath, O_RDWR | O_CREAT, mode: 0o600)
        } catch {
            throw ImageError(reason: .storeError, message: "cannot open \(lockPath): \(error)")
        }
        while flock(fd.raw, LOCK_EX) != 0 {
            if currentErrno != .interrupted {
                throw ImageError(reason: .storeError, message: "cannot lock \(lockPath): \(currentErrno.text)")
            }
        }
        defer { flock(fd.raw, LOCK_UN) }
        return try body()
    }

    /// The image a reference names: by digest (a repo digest or the manifest digest), else by
    /// tag.
    public func image(for ref: ImageReference) throws(ImageError) -> ImageRecord? {
        let all = try images()
        if let d = ref.digest {
            return all.first { $0.repoDigests.contains(ref.repository + "@" + d.description) }
                ?? all.first { $0.manifest.digest == d }
        }
        guard let tagged = ref.tagged else { return nil }
        return all.first { $0.repoTags.contains(tagged) }
    }

    /// The image for what a user typed: a reference, a full image ID (`sha256:...`), or an ID
    /// prefix of at least 4 hex digits.
    public func image(matching text: String) throws(ImageError) -> ImageRecord? {
        let all = try images()
        if let d = Digest(text), let img = all.first(where: { $0.id == d }) { return img }
        let hexChars = Set("0123456789abcdef")
        if text.count >= 4, text.count <= 64, text.allSatisfy({ hexChars.contains($0) }) {
            let found = all.filter { $0.id.hex.hasPrefix(text) }
            if found.count == 1 { return found[0] }
            if found.count > 1 {
                throw ImageError(reason: .notFound, message: "image ID prefix \(text) is ambiguous (\(found.count) images)")
            }
        }
        guard let ref = try? ImageReference(parsing: text) else { return nil }
        return try image(for: ref)
    }

    // MARK: - Blobs

    public func blobPath(_ d: Digest) -> String { blobsDir + "/" + d.hex }

    public func hasBlob(_ d: Descriptor) -> Bool {
        var st = stat()
        return stat(blobPath(d.digest), &st) == 0 && Int64(st.st_size) == d.size
    }

    /// Copies a blob from a source into the store, checking size and digest on the way. Nothing
    /// is kept when either is wrong. `progress` gets the bytes copied so far.
    func ingest(_ d: Descriptor, from loc: BlobLocation, progress: (Int64) -> Void) throws(ImageError) {
        if hasBlob(d) { return }
        guard loc.size == UInt64(d.size) else {
            throw ImageError(reason: .errImagePull, message: "blob \(d.digest) has \(loc.size) bytes in the source, its descriptor says \(d.size): refused")
        }
        let tmp = ingestDir + "/\(d.digest.hex).\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        do {
            let out = try FD.open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            defer { unlink(tmp) }
            let ctx = carchive_sha256_new()!
            var buf = [UInt8](repeating: 0, count: 4 << 20)
            var done: UInt64 = 0
            var failure: ImageError? = nil
            while done < loc.size {
                let want = Int(min(UInt64(buf.count), loc.size - done))
                let n = buf.withUnsafeMutableBytes { pread(loc.fd.raw, $0.baseAddress, want, off_t(loc.offset + done)) }
                if n <= 0 {
                    failure = ImageError(reason: .errImagePull, message: "cannot read blob \(d.digest) from the source: \(n == 0 ? "it ended early" : currentErrno.text)")
                    break
                }
                buf.withUnsafeBytes { carchive_sha256_update(ctx, $0.baseAddress!, n) }
                try out.writeAll(buf[0..<n])
                done += UInt64(n)
                progress(Int64(done))
            }
            var sum = [UInt8](repeating: 0, count: 32)
            carchive_sha256_final(ctx, &sum)
            if let failure { throw failure }
            let actual = Digest(bytes: sum)
            guard actual == d.digest else {
                throw ImageError(reason: .errImagePull, message: "blob \(d.digest) has digest \(actual): the source is corrupt or was changed; nothing was kept")
            }
            try syscall("fsync", tmp) { fsync(out.raw) }
            try syscall("rename", blobPath(d.digest)) { rename(tmp, blobPath(d.digest)) }
        } catch let e as ImageError {
            throw e
        } catch {
            throw ImageError(reason: .storeError, message: "cannot store blob \(d.digest): \(error)")
        }
    }

    /// Writes a blob held in memory (already verified by the resolver).
    public func ingest(_ d: Descriptor, bytes: [UInt8]) throws(ImageError) {
        if hasBlob(d) { return }
        guard Digest.of(bytes) == d.digest, Int64(bytes.count) == d.size else {
            throw ImageError(reason: .errImagePull, message: "blob \(d.digest) does not match its descriptor")
        }
        // Like every blob: written in ingest/ and renamed into blobs/ once whole and synced, so
        // blobs/ never holds anything but complete, verified blobs.
        let tmp = ingestDir + "/\(d.digest.hex).\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        do {
            let out = try FD.open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            defer { unlink(tmp) }
            try out.writeAll(bytes)
            try syscall("fsync", tmp) { fsync(out.raw) }
            try syscall("rename", blobPath(d.digest)) { rename(tmp, blobPath(d.digest)) }
        } catch {
            throw ImageError(reason: .storeError, message: "cannot store blob \(d.digest): \(error)")
        }
    }

    // MARK: - Leases

    /// Records that `holder` (a container, a pod) uses `image`: `remove` refuses to delete it
    /// and `gc` keeps it until the lease is released. Not fsynced: a lease lives as long as
    /// its holder's processes, which a machine crash ends too (a lost lease then frees an
    /// image nothing runs from).
    public func lease(_ holder: String, image: Digest) throws(ImageError) {
        do {
            try Files.writeAtomically(leasesDir + "/" + leaseName(holder), Array(image.description.utf8), mode: 0o600, durable: false)
        } catch {
            throw ImageError(reason: .storeError, message: "cannot record the lease of \(holder): \(error)")
        }
    }

    public func release(_ holder: String) {
        unlink(leasesDir + "/" + leaseName(holder))
    }

    /// Who holds each image.
    public func leases() -> [String: [String]] {
        var out: [String: [String]] = [:]
        for name in Files.list(leasesDir) ?? [] where !name.hasPrefix(".") {
            guard let text = try? Files.readString(leasesDir + "/" + name), let d = Digest(text.trimmed()) else { continue }
            out[d.description, default: []].append(name)
        }
        return out
    }

    func leaseName(_ holder: String) -> String {
        String(holder.map { $0 == "/" ? "_" : $0 })
    }
}

// MARK: - Blobs written as they arrive (registry pulls)

extension ImageStore {
    /// A writer for blob `d`, or nil when the store has it. It waits while another process
    /// writes the same blob (so two pulls download it once) and resumes what an interrupted
    /// download left.
    public func openBlob(_ d: Descriptor) throws(ImageError) -> BlobWriter? {
        if hasBlob(d) { return nil }
        let lockPath = ingestDir + "/\(d.digest.hex).lock"
        let lock = try lockFile(lockPath, what: "blob \(d.digest)")
        if hasBlob(d) {
            unlink(lockPath)
            flock(lock.raw, LOCK_UN)
            return nil
        }
        do {
            return try BlobWriter(store: self, descriptor: d, lock: lock, lockPath: lockPath)
        } catch {
            unlink(lockPath)
            flock(lock.raw, LOCK_UN)
            throw error
        }
    }
}

/// One blob being written into the store as it downloads: appended to `ingest/<hex>.partial`,
/// which stays when the download is cut (the next writer resumes from its end), its digest
/// computed on the way. `commit` checks size and digest, syncs and renames it into blobs/:
/// nothing unverified is ever there. One writer per blob at a time (flock).
public final class BlobWriter: @unchecked Sendable {  // one task writes it
    public let descriptor: Descriptor
    /// Bytes written so far (where a resumed download starts).
    public private(set) var offset: Int64 = 0
    let store: ImageStore
    let partial: String
    let lockPath: String
    var lock: FD?
    var out: FD
    var ctx: UnsafeMutableRawPointer

    init(store: ImageStore, descriptor d: Descriptor, lock: FD, lockPath: String) throws(ImageError) {
        self.store = store
        descriptor = d
        self.lock = lock
        self.lockPath = lockPath
        partial = store.ingestDir + "/\(d.digest.hex).partial"
        do {
            out = try FD.open(partial, O_RDWR | O_CREAT, mode: 0o600)
        } catch {
            throw ImageError(reason: .storeError, message: "cannot write blob \(d.digest): \(error)")
        }
        ctx = carchive_sha256_new()!
        // What an earlier attempt wrote counts (re-hashed), unless it is longer than the blob.
        var st = stat()
        let have = fstat(out.raw, &st) == 0 ? Int64(st.st_size) : 0
        if have > d.size {
            restart()
        } else if have > 0 {
            var buf = [UInt8](repeating: 0, count: 1 << 20)
            var at: Int64 = 0
            while at < have {
                let n = buf.withUnsafeMutableBytes { pread(out.raw, $0.baseAddress, Int(min(Int64($0.count), have - at)), off_t(at)) }
                if n <= 0 { break }
                buf.withUnsafeBytes { carchive_sha256_update(ctx, $0.baseAddress!, n) }
                at += Int64(n)
            }
            if at == have {
                offset = have
            } else {
                restart()
            }
        }
    }

    deinit {
        var sum = [UInt8](repeating: 0, count: 32)
        carchive_sha256_final(ctx, &sum)  // frees the context
        close()
    }

    /// Drops what was written (a server that ignored Range sends the blob from its start).
    public func restart() {
        ftruncate(out.raw, 0)
        var sum = [UInt8](repeating: 0, count: 32)
        carchive_sha256_final(ctx, &sum)
        ctx = carchive_sha256_new()!
        offset = 0
    }

    /// Appends the next bytes of the blob.
    public func append(_ bytes: UnsafeRawBufferPointer) throws(ImageError) {
        guard offset + Int64(bytes.count) <= descriptor.size else {
            throw ImageError(reason: .errImagePull, message: "blob \(descriptor.digest): the registry sent more than the \(descriptor.size) bytes its descriptor says: refused")
        }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var done = 0
        while done < bytes.count {
            let n = pwrite(out.raw, base + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 && currentErrno == .interrupted { continue }
            guard n > 0 else { throw ImageError(reason: .storeError, message: "cannot write blob \(descriptor.digest): \(currentErrno.text)") }
            done += n
        }
        carchive_sha256_update(ctx, base, bytes.count)
        offset += Int64(bytes.count)
    }

    /// Checks the whole blob against its descriptor and moves it into the store; a mismatch
    /// removes what was downloaded.
    public func commit() throws(ImageError) {
        defer { close() }
        let d = descriptor
        var sum = [UInt8](repeating: 0, count: 32)
        carchive_sha256_final(ctx, &sum)
        ctx = carchive_sha256_new()!
        guard offset == d.size else {
            throw ImageError(reason: .errImagePull, message: "blob \(d.digest): got \(offset) bytes, its descriptor says \(d.size)")
        }
        let actual = Digest(bytes: sum)
        guard actual == d.digest else {
            unlink(partial)
            throw ImageError(reason: .errImagePull, message: "blob \(d.digest) has digest \(actual): it was corrupted on the way; nothing was kept")
        }
        do {
            try syscall("fsync", partial) { fsync(out.raw) }
            try syscall("rename", store.blobPath(d.digest)) { rename(partial, store.blobPath(d.digest)) }
        } catch {
            throw ImageError(reason: .storeError, message: "cannot store blob \(d.digest): \(error)")
        }
    }

    /// Lets the next writer of this blob go (what was written stays for it to resume).
    public func close() {
        guard let lock else { return }
        unlink(lockPath)
        flock(lock.raw, LOCK_UN)
        self.lock = nil
    }
}
