import CArchive
import Dispatch
import FoundationEssentials
import HuskSystem
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What a pull reports while it works (for progress on a terminal, and events).
public enum PullEvent: Sendable {
    case resolved(reference: String, manifest: Digest, source: String)
    case copying(blob: Digest, done: Int64, total: Int64)
    /// `inflater`: what decompressed it ("isa-l", "zlib", "zstd"; "none" for a plain tar).
    case unpacked(layer: Digest, bytes: UInt64, seconds: Double, inflater: String)
}

/// Pulls an image that no layout serves: from its registry (the caller's registry client, in
/// a helper process: the HTTP stack stays out of every other binary). nil: registries are off.
public typealias RegistryPull = @Sendable (_ ref: ImageReference, _ written: String) throws(ImageError) -> ImageRecord

extension ImageStore {
    /// Makes the image of `written` available as its pull policy says (nil: Kubernetes'
    /// default for the reference) and returns it, and whether it came from a source now.
    ///  - Never: the store must have it, else `ErrImageNeverPull`.
    ///  - IfNotPresent: a source is touched only when the store lacks it.
    ///  - Always: resolved from the sources every time; a source that lacks it is
    ///    `ErrImagePull` even when the store has an older copy.
    /// A reference that no layout serves goes to `registry` when there is one.
    public func ensure(
        _ written: String, policy: PullPolicy?, sources: [LayoutSource], registry: RegistryPull? = nil, platform: Platform = .host,
        progress: (@Sendable (PullEvent) -> Void)? = nil
    ) throws(ImageError) -> (ImageRecord, pulled: Bool) {
        let ref = try ImageReference(parsing: written)
        let policy = policy ?? PullPolicy.defaultFor(written)
        switch policy {
        case .never:
            if let img = try image(for: ref) { return (img, false) }
            throw ImageError(reason: .errImageNeverPull, message: "Container image \"\(written)\" is not present with pull policy of Never")
        case .ifNotPresent:
            // Present for this platform: `husk pull --platform` of a tag the store has for
            // another one pulls.
            if let img = try image(for: ref), (img.config.os ?? platform.os) == platform.os,
               (img.config.architecture ?? platform.architecture) == platform.architecture {
                return (img, false)
            }
        case .always:
            break
        }
        if let registry, try Resolver.source(of: ref, in: sources) == nil {
            return (try registry(ref, written), true)
        }
        return (try pull(ref, written: written, sources: sources, platform: platform, progress: progress), true)
    }

    /// Resolves `ref` in the sources and copies and unpacks what the store lacks. The record is
    /// written last: until then no half image is visible.
    public func pull(
        _ ref: ImageReference, written: String, sources: [LayoutSource], platform: Platform = .host,
        progress: (@Sendable (PullEvent) -> Void)? = nil
    ) throws(ImageError) -> ImageRecord {
        let r = try Resolver.resolve(ref, written: written, in: sources, platform: platform)
        progress?(.resolved(reference: ref.description, manifest: r.manifestDescriptor.digest, source: r.source))
        if let layout = r.layout {
            for layer in r.manifest.layers {
                guard let loc = try layout.blob(layer.digest) else {
                    throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": the source \(layout) lacks layer \(layer.digest)")
                }
                try ingest(layer, from: loc) { done in progress?(.copying(blob: layer.digest, done: done, total: layer.size)) }
            }
        }
        return try record(r, ref: ref, progress: progress)
    }

    /// The end of every pull, once the layers' blobs are in the store: the manifest and the
    /// config stored, the layers unpacked, the record written (last: until then no half image
    /// is visible) and the tag moved to it.
    public func record(_ r: ResolvedImage, ref: ImageReference, progress: (@Sendable (PullEvent) -> Void)? = nil) throws(ImageError) -> ImageRecord {
        try ingest(r.manifestDescriptor, bytes: r.manifestBytes)
        try ingest(r.manifest.config, bytes: r.configBytes)
        for layer in r.manifest.layers where !hasBlob(layer) {
            throw ImageError(reason: .errImagePull, message: "layer \(layer.digest) is not in the store")
        }
        try unpackLayers(r.manifest.layers, diffIDs: r.config.rootfs.diff_ids, progress: progress)

        let size = r.manifest.layers.reduce(r.manifest.config.size) { $0 + $1.size }
        var record = ImageRecord(
            id: r.manifest.config.digest, repoTags: ref.tagged.map { [$0] } ?? [],
            repoDigests: [ref.repository + "@" + r.manifestDescriptor.digest.description], manifest: r.manifestDescriptor,
            config: r.config, layers: r.manifest.layers, size: size, pulledAt: Clock.rfc3339Nano(), source: r.source)
        try withLock { () throws(ImageError) -> Void in
            var index = try readIndex()
            // A tag names one image: it moves to the new one.
            for i in index.images.indices {
                index.images[i].repoTags.removeAll { record.repoTags.contains($0) }
            }
            if let i = index.images.firstIndex(where: { $0.id == record.id }) {
                var merged = index.images[i]
                merged.repoTags = Array(Set(merged.repoTags + record.repoTags)).sorted()
                merged.repoDigests = Array(Set(merged.repoDigests + record.repoDigests)).sorted()
                merged.manifest = record.manifest
                merged.layers = record.layers
                merged.pulledAt = record.pulledAt
                merged.source = record.source
                index.images[i] = merged
                record = merged
            } else {
                index.images.append(record)
            }
            try writeIndex(index)
        }
        return record
    }

    // MARK: - Snapshots

    /// Unpacks one layer whose blob the store has (once per diff_id, as `record` does): a
    /// registry pull starts it as soon as the blob is complete, while others still download.
    public func unpackLayer(_ layer: Descriptor, diffID: Digest, progress: (@Sendable (PullEvent) -> Void)? = nil) throws(ImageError) {
        try ensureSnapshot(layer, diffID: diffID, progress: progress)
    }

    /// The directory holding the unpacked layer with this diff_id.
    public func snapshotPath(_ diffID: Digest) -> String { snapshotsDir + "/" + diffID.hex }

    /// The snapshot directories of an image, lowest layer first.
    public func snapshotPaths(_ image: ImageRecord) throws(ImageError) -> [String] {
        try image.diffIDs.map { (d) throws(ImageError) -> String in
            let p = snapshotPath(d)
            guard Files.isDirectory(p) else {
                throw ImageError(reason: .storeError, message: "image \(image.id.short): layer \(d) is not unpacked (run husk pull again)")
            }
            return p
        }
    }

    func unpackLayers(_ layers: [Descriptor], diffIDs: [Digest], progress: (@Sendable (PullEvent) -> Void)?) throws(ImageError) {
        let todo = zip(layers, diffIDs).filter { !Files.isDirectory(snapshotPath($0.1)) }
        if todo.isEmpty { return }
        let errors = ErrorBox()
        let work = Array(todo)
        // Layers are independent (each unpacks into its own directory): run them side by side.
        let workers = max(1, min(options.parallelUnpacks, work.count))
        let next = Counter()
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let i = next.take(below: work.count), errors.first == nil {
                do {
                    try ensureSnapshot(work[i].0, diffID: work[i].1, progress: progress)
                } catch {
                    errors.set(error)
                }
            }
        }
        if let e = errors.first { throw e }
    }

    /// Unpacks one layer into a temporary directory, checks its digests, and renames it into
    /// place; a flock per diff_id keeps two processes from doing the same work twice.
    func ensureSnapshot(_ layer: Descriptor, diffID: Digest, progress: (@Sendable (PullEvent) -> Void)?) throws(ImageError) {
        let final = snapshotPath(diffID)
        if Files.isDirectory(final) { return }
        let lockPath = snapshotsDir + "/.lock-" + diffID.hex
        let lock = try lockFile(lockPath, what: "layer \(diffID)")
        defer {
            unlink(lockPath)
            flock(lock.raw, LOCK_UN)
        }
        if Files.isDirectory(final) { return }
        guard let compression = MediaType.layerCompression(layer.mediaType) else {
            throw ImageError(reason: .errImagePull, message: "layer \(layer.digest): media type \(layer.mediaType) cannot be unpacked")
        }
        let tmp = snapshotsDir + "/.tmp-\(diffID.hex.prefix(16))-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let start = Clock.monotonicSeconds()
        do {
            guard mkdir(tmp, 0o755) == 0 else { throw SystemCallError("mkdir", tmp, currentErrno) }
            chmod(tmp, 0o755)  // whatever the umask is
            let dir = try FD.open(tmp, O_RDONLY | O_DIRECTORY)
            let blob = try FD.open(blobPath(layer.digest), O_RDONLY)
            var opts = carchive_unpack_options()
            opts.compression = compression
            opts.max_bytes = options.maxLayerBytes
            opts.max_entries = options.maxLayerEntries
            opts.min_free_bytes = options.minFreeBytes ?? Self.defaultReserve(dir)
            opts.preserve_owner = geteuid() == 0 ? 1 : 0
            opts.allow_devices = geteuid() == 0 ? 1 : 0
            opts.zlib_only = options.zlibOnly ? 1 : 0
            opts.threads = options.unpackThreads
            var res = carchive_unpack_result()
            let rc = carchive_unpack_layer(blob.raw, UInt64(layer.size), dir.raw, &opts, &res)
            if rc != 0 {
                let msg = withUnsafeBytes(of: res.message) { String.fromCBytes($0) }
                throw ImageError(reason: .errImagePull, message: "layer \(layer.digest): \(msg)")
            }
            let digest = withUnsafeBytes(of: res.digest) { Digest(bytes: Array($0)) }
            let diff = withUnsafeBytes(of: res.diff_id) { Digest(bytes: Array($0)) }
            guard digest == layer.digest, res.blob_size == UInt64(layer.size) else {
                throw ImageError(reason: .errImagePull, message: "layer \(layer.digest): the stored blob now has digest \(digest): refused")
            }
            guard diff == diffID else {
                throw ImageError(reason: .errImagePull, message: "layer \(layer.digest): its uncompressed digest is \(diff), the image config says \(diffID): refused")
            }
            // Durable before it becomes visible.
            try Files.syncFilesystem(of: dir, path: tmp)
            try syscall("rename", final) { rename(tmp, final) }
            let inflater = switch res.inflater {
            case CARCHIVE_INFLATER_ISAL: "isa-l"
            case CARCHIVE_INFLATER_ZLIB: "zlib"
            default: compression == CARCHIVE_COMPRESSION_ZSTD ? "zstd" : "none"
            }
            progress?(.unpacked(layer: diffID, bytes: res.tar_size, seconds: Clock.monotonicSeconds() - start, inflater: inflater))
        } catch let e as ImageError {
            try? Files.removeTree(tmp)
            throw e
        } catch {
            try? Files.removeTree(tmp)
            throw ImageError(reason: .storeError, message: "cannot unpack layer \(layer.digest): \(error)")
        }
    }
}

extension ImageStore {
    /// The default free-space reserve of the filesystem holding `dir`: 5% of it, clamped to
    /// 64 MiB ... 2 GiB.
    static func defaultReserve(_ dir: FD) -> UInt64 {
        var vfs = statvfs()
        guard fstatvfs(dir.raw, &vfs) == 0 else { return 64 << 20 }
        let size = UInt64(vfs.f_blocks) * UInt64(vfs.f_frsize)
        return min(max(size / 20, 64 << 20), 2 << 30)
    }

    /// Opens and flocks the lock file at `path`, made if needed. Holders unlink it before they
    /// unlock (and `gc` unlinks a free one), so a lock taken on a file that is no longer at
    /// `path` is dropped and taken again on the current one.
    func lockFile(_ path: String, what: String) throws(ImageError) -> FD {
        for _ in 0..<1000 {
            let lock: FD
            do {
                lock = try FD.open(path, O_RDWR | O_CREAT, mode: 0o600)
            } catch {
                throw ImageError(reason: .storeError, message: "cannot lock \(what): \(error)")
            }
            while flock(lock.raw, LOCK_EX) != 0 && currentErrno == .interrupted {}
            var held = stat()
            var now = stat()
            if fstat(lock.raw, &held) == 0, stat(path, &now) == 0, held.st_ino == now.st_ino, held.st_dev == now.st_dev {
                return lock
            }
        }
        throw ImageError(reason: .storeError, message: "cannot lock \(what): \(path) keeps being replaced")
    }
}

/// The first error of parallel work.
final class ErrorBox: Sendable {
    private let error = Mutex<ImageError?>(nil)
    var first: ImageError? { error.withLock { $0 } }
    func set(_ e: any Error) {
        error.withLock { if $0 == nil { $0 = (e as? ImageError) ?? ImageError(reason: .storeError, message: "\(e)") } }
    }
}

/// Hands out 0, 1, 2, ... to parallel workers.
final class Counter: Sendable {
    private let value = Mutex(0)
    func take(below limit: Int) -> Int? {
        value.withLock { v in
            guard v < limit else { return nil }
            v += 1
            return v - 1
        }
    }
}
