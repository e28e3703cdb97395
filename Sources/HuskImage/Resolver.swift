import HuskJSON
import HuskSystem

/// A reference resolved in a source: the manifest for this platform, its config, verified.
public struct ResolvedImage: Sendable {
    /// Where it came from, for the record and messages (a layout, a registry host).
    public let source: String
    public let manifestDescriptor: Descriptor
    public let manifest: ImageManifest
    public let manifestBytes: [UInt8]
    public let configBytes: [UInt8]
    public let config: ImageConfig
    /// The layout its layers are read from; nil for a registry (the caller fetched them).
    public var layout: LayoutSource? = nil

    public init(source: String, manifestDescriptor: Descriptor, manifest: ImageManifest, manifestBytes: [UInt8],
                configBytes: [UInt8], config: ImageConfig, layout: LayoutSource? = nil) {
        self.source = source
        self.manifestDescriptor = manifestDescriptor
        self.manifest = manifest
        self.manifestBytes = manifestBytes
        self.configBytes = configBytes
        self.config = config
        self.layout = layout
    }
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
        try decodeIndex(try source.readBlob(d), d)
    }

    /// An index's bytes, checked against its descriptor's media type.
    public static func decodeIndex(_ bytes: [UInt8], _ d: Descriptor) throws(ImageError) -> ImageIndex {
        let r = try parseJSON(bytes, what: "index \(d.digest)", reason: .errImagePull)
        try checkShape(r, d, what: "index")
        return try decodeJSON("index \(d.digest)", reason: .errImagePull) { () throws(FieldError) in try ImageIndex(json: r) }
    }

    /// The entry of `index` for `platform`: os and architecture, the variant when both say
    /// one; an index of indexes without platforms is searched in order.
    public static func select(_ index: ImageIndex, platform: Platform, written: String) throws(ImageError) -> Descriptor {
        let fits = index.manifests.filter { m in
            guard let p = m.platform else { return false }
            return p.os == platform.os && p.architecture == platform.architecture
                && (p.variant == nil || platform.variant == nil || p.variant == platform.variant)
        }
        let next = fits.first ?? index.manifests.first { $0.platform == nil && MediaType.indexes.contains($0.mediaType) }
            ?? (index.manifests.count == 1 && index.manifests[0].platform == nil ? index.manifests.first : nil)
        guard let next else {
            let has = index.manifests.compactMap { $0.platform?.description }.joined(separator: ", ")
            throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": no manifest for \(platform) in its index (has: \(has.isEmpty ? "none with a platform" : has))")
        }
        return next
    }

    /// An image manifest's bytes, checked: an image (its config an image config) whose layers
    /// Husk can unpack.
    public static func decodeManifest(_ bytes: [UInt8], _ d: Descriptor, written: String) throws(ImageError) -> ImageManifest {
        guard MediaType.manifests.contains(d.mediaType) else {
            throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": \(d.digest) has media type \(d.mediaType), not an image manifest or index")
        }
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
        return manifest
    }

    /// An image config's bytes, checked against its manifest and this node's platform.
    public static func decodeConfig(_ bytes: [UInt8], manifest: ImageManifest, platform: Platform, written: String) throws(ImageError) -> ImageConfig {
        let cr = try parseJSON(bytes, what: "config \(manifest.config.digest)", reason: .errImagePull)
        let config = try decodeJSON("config \(manifest.config.digest)", reason: .errImagePull) { () throws(FieldError) in
            try ImageConfig(json: cr)
        }
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw ImageError(reason: .errImagePull, message: "image \(manifest.config.digest): \(manifest.layers.count) layers but \(config.rootfs.diff_ids.count) diff_ids")
        }
        if let os = config.os, let arch = config.architecture, os != platform.os || arch != platform.architecture {
            throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": the image is for \(os)/\(arch), this node is \(platform)")
        }
        return config
    }

    static func descend(
        _ d: Descriptor, ref: ImageReference, written: String, source: LayoutSource, platform: Platform, depth: Int
    ) throws(ImageError) -> ResolvedImage {
        if depth > 4 { throw ImageError(reason: .errImagePull, message: "image index nesting deeper than 4 levels at \(d.digest)") }
        if MediaType.indexes.contains(d.mediaType) {
            let next = try select(try readIndex(d, source: source), platform: platform, written: written)
            return try descend(next, ref: ref, written: written, source: source, platform: platform, depth: depth + 1)
        }
        let bytes = MediaType.manifests.contains(d.mediaType) ? try source.readBlob(d) : []
        let manifest = try decodeManifest(bytes, d, written: written)
        let configBytes = try source.readBlob(manifest.config)
        let config = try decodeConfig(configBytes, manifest: manifest, platform: platform, written: written)
        return ResolvedImage(source: source.description, manifestDescriptor: d, manifest: manifest, manifestBytes: bytes,
                             configBytes: configBytes, config: config, layout: source)
    }
}
