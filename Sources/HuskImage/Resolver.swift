import HuskJSON
import HuskSystem

/// A reference resolved in a source: the manifest for this platform, its config, verified.
public struct ResolvedImage: Sendable {
    public let source: LayoutSource
    public let manifestDescriptor: Descriptor
    public let manifest: ImageManifest
    public let manifestBytes: [UInt8]
    public let configBytes: [UInt8]
    public let config: ImageConfig
}

public enum Resolver {
    /// Finds `ref` in the first source that has it (sources are searched in order).
    /// - Parameter written: the reference as the user wrote it, for messages.
    public static func resolve(
        _ ref: ImageReference, written: String, in sources: [LayoutSource], platform: Platform = .host
    ) throws(ImageError) -> ResolvedImage {
        if sources.isEmpty {
            throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": no image source is configured (--image-source or the config file)")
        }
        for source in sources {
            if let repo = source.repository, repo != ref.repository { continue }
            let index = try source.index()
            guard let top = match(ref, in: index, source: source) else {
                if let d = ref.digest, let nested = try findNested(d, in: index.manifests, source: source, depth: 0) {
                    return try descend(nested, ref: ref, written: written, source: source, platform: platform, depth: 0)
                }
                continue
            }
            return try descend(top, ref: ref, written: written, source: source, platform: platform, depth: 0)
        }
        let searched = sources.map(\.description).joined(separator: ", ")
        throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": \(ref) not found in any image source (\(searched))")
    }

    /// The entry of index.json that names `ref`: by digest, or by the ref.name annotation
    /// holding the full reference, the familiar one, or a bare tag.
    static func match(_ ref: ImageReference, in index: ImageIndex, source: LayoutSource) -> Descriptor? {
        if let d = ref.digest {
            return index.manifests.first { $0.digest == d }
        }
        guard let tag = ref.tag else { return nil }
        let names: Set<String> = [ref.description, ref.familiar, ref.repository + ":" + tag]
        let candidates = index.manifests.filter { desc in
            guard let name = desc.refName else { return false }
            return names.contains(name) || name == tag
        }
        // Several entries for one tag: the one for this platform.
        return candidates.first { $0.platform.map { $0.os == Platform.host.os && $0.architecture == Platform.host.architecture } ?? false }
            ?? candidates.first
    }

    static func findNested(_ digest: Digest, in manifests: [Descriptor], source: LayoutSource, depth: Int) throws(ImageError) -> Descriptor? {
        if depth > 4 { return nil }
        for m in manifests {
            if m.digest == digest { return m }
            if MediaType.indexes.contains(m.mediaType) {
                let nested = try readIndex(m, source: source)
                if let found = try findNested(digest, in: nested.manifests, source: source, depth: depth + 1) { return found }
            }
        }
        return nil
    }

    /// CVE-2021-41190: a document must be what its descriptor says, and must not be readable
    /// as both an index and a manifest. Checked before it is read as what it claims to be.
    static func checkShape(_ r: JSONReader, _ d: Descriptor, what: String) throws(ImageError) {
        guard r.object != nil else {
            throw ImageError(reason: .errImagePull, message: "\(what) \(d.digest) is not a JSON object")
        }
        if case .string(let mt)? = r.child("mediaType")?.value, mt != d.mediaType {
            throw ImageError(reason: .errImagePull, message: "\(what) \(d.digest) says its media type is \(mt), its descriptor says \(d.mediaType)")
        }
        if r.has("manifests") && (r.has("config") || r.has("layers")) {
            throw ImageError(reason: .errImagePull, message: "\(what) \(d.digest) has both manifests and config or layers: an ambiguous document is refused")
        }
    }

    static func readIndex(_ d: Descriptor, source: LayoutSource) throws(ImageError) -> ImageIndex {
        let r = try parseJSON(try source.readBlob(d), what: "index \(d.digest)", reason: .errImagePull)
        try checkShape(r, d, what: "index")
        return try decodeJSON("index \(d.digest)", reason: .errImagePull) { () throws(FieldError) in try ImageIndex(json: r) }
    }

    static func descend(
        _ d: Descriptor, ref: ImageReference, written: String, source: LayoutSource, platform: Platform, depth: Int
    ) throws(ImageError) -> ResolvedImage {
        if depth > 4 { throw ImageError(reason: .errImagePull, message: "image index nesting deeper than 4 levels at \(d.digest)") }
        if MediaType.indexes.contains(d.mediaType) {
            let index = try readIndex(d, source: source)
            let fits = index.manifests.filter { m in
                guard let p = m.platform else { return false }
                return p.os == platform.os && p.architecture == platform.architecture
                    && (p.variant == nil || platform.variant == nil || p.variant == platform.variant)
            }
            // Nested indexes without platforms (an index of indexes) are searched in order.
            let next = fits.first ?? index.manifests.first { $0.platform == nil && MediaType.indexes.contains($0.mediaType) }
                ?? (index.manifests.count == 1 && index.manifests[0].platform == nil ? index.manifests.first : nil)
            guard let next else {
                let has = index.manifests.compactMap { $0.platform?.description }.joined(separator: ", ")
                throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": no manifest for \(platform) in its index (has: \(has.isEmpty ? "none with a platform" : has))")
            }
            return try descend(next, ref: ref, written: written, source: source, platform: platform, depth: depth + 1)
        }
        guard MediaType.manifests.contains(d.mediaType) else {
            throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": \(d.digest) has media type \(d.mediaType), not an image manifest or index")
        }
        let bytes = try source.readBlob(d)
        let mr = try parseJSON(bytes, what: "manifest \(d.digest)", reason: .errImagePull)
        try checkShape(mr, d, what: "manifest")
        let manifest = try decodeJSON("manifest \(d.digest)", reason: .errImagePull) { () throws(FieldError) in
            try ImageManifest(json: mr)
        }
        guard MediaType.configs.contains(manifest.config.mediaType) else {
            throw ImageError(reason: .errImagePull, message: "manifest \(d.digest): config media type \(manifest.config.mediaType) is not an image config (an artifact, not an image)")
        }
        for (i, l) in manifest.layers.enumerated() where MediaType.layerCompression(l.mediaType) == nil {
            throw ImageError(reason: .errImagePull, message: "manifest \(d.digest): layers[\(i)] has media type \(l.mediaType), which Husk cannot unpack")
        }
        let configBytes = try source.readBlob(manifest.config)
        let cr = try parseJSON(configBytes, what: "config \(manifest.config.digest)", reason: .errImagePull)
        let config = try decodeJSON("config \(manifest.config.digest)", reason: .errImagePull) { () throws(FieldError) in
            try ImageConfig(json: cr)
        }
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw ImageError(reason: .errImagePull, message: "image \(manifest.config.digest): \(manifest.layers.count) layers but \(config.rootfs.diff_ids.count) diff_ids")
        }
        if let os = config.os, let arch = config.architecture, os != platform.os || arch != platform.architecture {
            throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": the image is for \(os)/\(arch), this node is \(platform)")
        }
        return ResolvedImage(source: source, manifestDescriptor: d, manifest: manifest, manifestBytes: bytes,
                             configBytes: configBytes, config: config)
    }
}
