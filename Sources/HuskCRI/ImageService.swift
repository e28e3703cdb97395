import GRPCCore
import HuskImage
import HuskJSON
import HuskPod
import HuskSystem

/// CRI's ImageService over Husk's image store (cri-semantics.md §6). Pulls come from the
/// configured OCI image layouts (`--image-source`, the config file); registries are not
/// sources yet.
final class ImageService: Runtime_V1_ImageService.SimpleServiceProtocol {
    let config: CRIConfiguration
    let store: ImageStore

    init(config: CRIConfiguration, store: ImageStore) {
        self.config = config
        self.store = store
    }

    // MARK: - Reading

    func listImages(request: Runtime_V1_ListImagesRequest, context: ServerContext) async throws -> Runtime_V1_ListImagesResponse {
        var r = Runtime_V1_ListImagesResponse()
        r.images = try await matching(request.filter.image.image).map(Self.image)
        return r
    }

    /// ListImages in parts (`Paging`).
    func streamImages(
        request: Runtime_V1_StreamImagesRequest, response: RPCWriter<Runtime_V1_StreamImagesResponse>, context: ServerContext
    ) async throws {
        let all = try await matching(request.filter.image.image)
        try await Paging.write(all.map(Self.image), to: response) { part in
            var m = Runtime_V1_StreamImagesResponse()
            m.images = part
            return m
        }
    }

    func imageStatus(request: Runtime_V1_ImageStatusRequest, context: ServerContext) async throws -> Runtime_V1_ImageStatusResponse {
        let text = try Self.requireImage(request.image, field: "image.image")
        var r = Runtime_V1_ImageStatusResponse()
        // Absent is not an error: the reply has no image (kubelet's "not present").
        guard let img = try await lookup(text) else { return r }
        r.image = Self.image(img)
        if request.verbose {
            r.info = ["info": try await Blocking.run { [store] in try Self.verboseInfo(img, store: store) }]
        }
        return r
    }

    /// The images a filter's image spec selects: all for an empty one, else the one it names.
    func matching(_ spec: String) async throws -> [ImageRecord] {
        let store = self.store
        if spec.isEmpty { return try await Blocking.run { try store.images() } }
        return try await lookup(spec).map { [$0] } ?? []
    }

    /// The image an ID (full or a unique prefix), a tag or a digest reference names. A text that
    /// is no reference names no image (as containerd: status nil, not an error).
    func lookup(_ text: String) async throws -> ImageRecord? {
        let store = self.store
        return try await Blocking.run { try store.image(matching: text) }
    }

    // MARK: - Pull

    func pullImage(request: Runtime_V1_PullImageRequest, context: ServerContext) async throws -> Runtime_V1_PullImageResponse {
        let text = try Self.requireImage(request.image, field: "image.image")
        let ref: ImageReference
        do throws(ImageError) {
            ref = try ImageReference(parsing: text)
        } catch {
            throw CRIError.invalidArgument("image.image", error.message)
        }
        // request.sandbox_config chooses a snapshotter in containerd; Husk has one store.
        let settings = config.settings
        let specs = settings.imageSources
        let store = self.store
        let credentials = request.hasAuth ? Self.credentials(request.auth) : nil
        let record: ImageRecord = try await Blocking.run {
            var sources: [LayoutSource] = []
            for spec in specs {
                do throws(ImageError) {
                    sources.append(try LayoutSource.parse(spec))
                } catch {
                    throw RPCError(code: .failedPrecondition, message: "image source: \(error.message)")
                }
            }
            if try Resolver.source(of: ref, in: sources) != nil {
                return try store.pull(ref, written: text, sources: sources)
            }
            guard settings.registries else {
                if sources.isEmpty {
                    throw RPCError(
                        code: .failedPrecondition,
                        message: "cannot pull \(ref): no image source is configured (--image-source or the config file) and registries are off (--no-registries)")
                }
                let tried = sources.map(\.description).joined(separator: ", ")
                throw CRIError.notFound("image \"\(text)\" (\(ref)) is in no image source; tried the OCI layouts \(tried) (registries are off)")
            }
            do throws(ImageError) {
                return try RegistryHelper.pull(ref, written: text, settings: settings, store: store, credentials: credentials, progress: nil)
            } catch {
                throw RPCError(code: error.message.contains(": not found") ? .notFound : .unknown, message: error.message)
            }
        }
        CRILog.info("PullImage: \(ref) is image \(record.id)")
        var r = Runtime_V1_PullImageResponse()
        r.imageRef = record.id.description
        return r
    }

    /// CRI's AuthConfig as husk-pull takes it (containerd's ParseAuth order: username and
    /// password, identity token, then `auth`).
    static func credentials(_ a: Runtime_V1_AuthConfig) -> JSONValue? {
        var o: [String: JSONValue] = [:]
        if !a.username.isEmpty { o["username"] = .string(a.username) }
        if !a.password.isEmpty { o["password"] = .string(a.password) }
        if !a.auth.isEmpty { o["auth"] = .string(a.auth) }
        if !a.identityToken.isEmpty { o["identitytoken"] = .string(a.identityToken) }
        if !a.registryToken.isEmpty { o["registrytoken"] = .string(a.registryToken) }
        return o.isEmpty ? nil : .object(o)
    }

    // MARK: - Remove

    func removeImage(request: Runtime_V1_RemoveImageRequest, context: ServerContext) async throws -> Runtime_V1_RemoveImageResponse {
        let text = try Self.requireImage(request.image, field: "image.image")
        // Absent: nothing to do, and not an error (containerd, CRI-O).
        guard let img = try await lookup(text) else { return Runtime_V1_RemoveImageResponse() }
        let store = self.store
        let failures = try await Blocking.run { () throws -> [String] in
            do {
                // By ID: every tag and digest of the image goes, as CRI wants.
                return try store.remove(img.id.description).gc.failures
            } catch let e as ImageError where e.reason == .notFound {
                // Removed meanwhile by someone else: the same outcome.
                return []
            }
        }
        // The image is gone from the store; what is left of its files is garbage the next
        // collection removes (it was renamed out of the way, so no pull reuses it).
        for f in failures { CRILog.info("RemoveImage: \(text): not yet removed: \(f)") }
        CRILog.info("RemoveImage: \(text): removed image \(img.id)")
        return Runtime_V1_RemoveImageResponse()
    }

    // MARK: - Filesystem

    func imageFsInfo(request: Runtime_V1_ImageFsInfoRequest, context: ServerContext) async throws -> Runtime_V1_ImageFsInfoResponse {
        let dir = store.root
        let usage = try await Blocking.run {
            do {
                return try DiskUsage.of(dir)
            } catch {
                throw RPCError(code: .internalError, message: "cannot measure the image store \(dir): \(error)")
            }
        }
        let now = Clock.now()
        var fs = Runtime_V1_FilesystemUsage()
        fs.timestamp = Int64(now.sec) * 1_000_000_000 + Int64(now.nsec)
        // As containerd, the store's directory: kubelet asks cAdvisor for the capacity of the
        // filesystem holding it.
        fs.fsID.mountpoint = dir
        fs.usedBytes.value = usage.bytes
        fs.inodesUsed.value = usage.inodes
        var r = Runtime_V1_ImageFsInfoResponse()
        // Containers' writable layers live under --root too; an empty list says "same as images".
        r.imageFilesystems = [fs]
        return r
    }

    // MARK: - Requests

    /// The image text of a request's ImageSpec, which must be there.
    static func requireImage(_ spec: Runtime_V1_ImageSpec, field: String) throws -> String {
        let text = spec.image
        if text.isEmpty { throw CRIError.invalidArgument(field, "no image given (an image reference or ID is required)") }
        return text
    }
}
