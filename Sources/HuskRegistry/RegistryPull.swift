import Dispatch
import HuskImage
import HuskSystem

/// A pull from a registry into the store, as containerd's CRI pulls: the reference resolved on
/// the first endpoint that has it (mirrors, then the server), an index narrowed to this
/// node's platform, the config and the layers fetched (layers side by side, each verified as
/// it is written, resumed where a cut download stopped), then the store's own end of a pull
/// (unpack, record) as for a layout.
public struct RegistryPuller: Sendable {
    public var store: ImageStore
    public var configDirectory: String?
    public var credentials: Credentials?
    public var platform: Platform = .host
    /// Layers downloaded at once.
    public var concurrency = 3

    public init(store: ImageStore, configDirectory: String?, credentials: Credentials?) {
        self.store = store
        self.configDirectory = configDirectory
        self.credentials = credentials
    }

    /// containerd's CRI wording around a failure; kubelet adds "Failed to pull image ...".
    static func wrap(_ ref: ImageReference, _ message: String) -> String {
        "failed to pull and unpack image \"\(ref)\": failed to resolve reference \"\(ref)\": \(message)"
    }

    public func pull(_ ref: ImageReference, written: String, progress: (@Sendable (PullEvent) -> Void)? = nil) async throws(ImageError) -> ImageRecord {
        let endpoints: [RegistryHosts.Endpoint]
        do {
            endpoints = try RegistryHosts.endpoints(for: ref.domain, configDirectory: configDirectory)
        } catch {
            throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": \(error.message)")
        }
        var errors: [String] = []
        for endpoint in endpoints where endpoint.pull && endpoint.resolve {
            let client: RegistryClient
            do {
                client = try RegistryClient(endpoint: endpoint, repository: ref.path, credentials: credentials)
            } catch {
                errors.append(error.message)
                continue
            }
            do {
                let record = try await pull(ref, written: written, client: client, progress: progress)
                await client.shutdown()
                return record
            } catch let e as RegistryError {
                await client.shutdown()
                errors.append("\(endpoint.origin): \(e.message)")
                // containerd tries the next host on 404 and on errors; a denial ends it.
                if e.denied { break }
            } catch let e as ImageError {
                await client.shutdown()
                throw e
            } catch {
                await client.shutdown()
                errors.append("\(endpoint.origin): \(error)")
            }
        }
        let message = errors.isEmpty ? "no endpoint of \(ref.domain) can pull (hosts.toml capabilities)" : errors.joined(separator: "; ")
        throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": " + Self.wrap(ref, message))
    }

    /// A document the store has, read back and checked against its descriptor.
    func stored(_ d: Descriptor) -> [UInt8]? {
        guard store.hasBlob(d), let b = (try? Files.read(store.blobPath(d.digest))) ?? nil, Int64(b.count) == d.size,
              Digest.of(b) == d.digest
        else { return nil }
        return b
    }

    func pull(_ ref: ImageReference, written: String, client: RegistryClient, progress: (@Sendable (PullEvent) -> Void)?) async throws -> ImageRecord {
        let name = ref.digest?.description ?? ref.tag ?? "latest"
        // A tag is resolved with HEAD first: when its digest names a document the store has
        // (an Always pull of an unchanged image), nothing more is downloaded.
        var known: Descriptor? = nil
        if ref.digest == nil, let d = try await client.head(name, what: ref.description), store.hasBlob(d) { known = d }
        var (descriptor, bytes): (Descriptor, [UInt8])
        if let known, let b = stored(known) {
            (descriptor, bytes) = (known, b)
        } else {
            (descriptor, bytes) = try await client.manifest(name, what: ref.description)
        }
        if let want = ref.digest, descriptor.digest != want {
            throw RegistryError("manifest \(want): the registry sent content with digest \(descriptor.digest): refused")
        }
        var depth = 0
        while MediaType.indexes.contains(descriptor.mediaType) {
            depth += 1
            if depth > 4 { throw RegistryError("image index nesting deeper than 4 levels at \(descriptor.digest)") }
            let index = try Resolver.decodeIndex(bytes, descriptor)
            // Kept, so that the next HEAD of this tag finds it here.
            try store.ingest(descriptor, bytes: bytes)
            let next = try Resolver.select(index, platform: platform, written: written)
            var (d, b): (Descriptor, [UInt8])
            if let local = stored(next) {
                (d, b) = (next, local)
            } else {
                (d, b) = try await client.manifest(next.digest.description, mediaType: next.mediaType, what: "\(ref.repository)@\(next.digest)")
            }
            guard d.digest == next.digest, Int64(b.count) == next.size else {
                throw RegistryError("manifest \(next.digest): the registry sent content with digest \(d.digest): refused")
            }
            descriptor = Descriptor(mediaType: next.mediaType, digest: next.digest, size: next.size)
            bytes = b
        }
        progress?(.resolved(reference: ref.description, manifest: descriptor.digest, source: client.endpoint.origin))
        let manifest = try Resolver.decodeManifest(bytes, descriptor, written: written)
        // What the store has is not downloaded again (an Always pull of an unchanged image
        // asks for its manifest only).
        var configBytes: [UInt8]
        if let b = stored(manifest.config) {
            configBytes = b
        } else {
            configBytes = try await client.smallBlob(manifest.config, what: "config \(manifest.config.digest)")
        }
        let config = try Resolver.decodeConfig(configBytes, manifest: manifest, platform: platform, written: written)

        // The layers, `concurrency` at a time; a blob another pull is writing is waited for.
        // Each is unpacked as soon as its blob is complete (layers unpack into directories of
        // their own, in any order), on a thread of its own while the others download.
        var seen = Set<Digest>()
        let layers = manifest.layers.filter { seen.insert($0.digest).inserted }
        let diffIDs = Dictionary(zip(manifest.layers.map(\.digest), config.rootfs.diff_ids), uniquingKeysWith: { first, _ in first })
        let store = self.store
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add() {
                let layer = layers[next]
                next += 1
                group.addTask {
                    if let writer = try store.openBlob(layer) {
                        defer { writer.close() }
                        try await client.blob(layer, into: writer) { done in progress?(.copying(blob: layer.digest, done: done, total: layer.size)) }
                    }
                    guard let diffID = diffIDs[layer.digest], store.hasBlob(layer) else { return }
                    try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
                        DispatchQueue.global().async {
                            do {
                                try store.unpackLayer(layer, diffID: diffID, progress: progress)
                                done.resume()
                            } catch {
                                done.resume(throwing: error)
                            }
                        }
                    }
                }
            }
            while next < layers.count && next < concurrency { add() }
            while try await group.next() != nil {
                if next < layers.count { add() }
            }
        }
        let resolved = ResolvedImage(source: client.endpoint.origin + "/" + ref.path, manifestDescriptor: descriptor, manifest: manifest,
                                     manifestBytes: bytes, configBytes: configBytes, config: config)
        return try store.record(resolved, ref: ref, progress: progress)
    }
}
