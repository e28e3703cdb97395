import HuskJSON
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// Media types of the OCI image spec and their Docker schema 2 equivalents.
public enum MediaType {
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    public static let ociLayer = "application/vnd.oci.image.layer.v1.tar"
    public static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let ociLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    public static let dockerLayer = "application/vnd.docker.image.rootfs.diff.tar"

    public static let indexes: Set<String> = [ociIndex, dockerManifestList]
    public static let manifests: Set<String> = [ociManifest, dockerManifest]
    public static let configs: Set<String> = [ociConfig, dockerConfig]

    /// The compression of a layer media type, or nil when it is not a layer Husk can unpack.
    public static func layerCompression(_ mediaType: String) -> Int32? {
        switch mediaType {
        case ociLayer, dockerLayer: return 0
        case ociLayerGzip, dockerLayerGzip: return 1
        case ociLayerZstd: return 2
        default: return nil
        }
    }
}

public struct Platform: Codable, Hashable, Sendable, CustomStringConvertible {
    public var architecture: String
    public var os: String
    public var variant: String?

    enum CodingKeys: String, CodingKey {
        case architecture, os, variant
    }

    public init(architecture: String, os: String, variant: String? = nil) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
    }

    public var description: String { "\(os)/\(architecture)" + (variant.map { "/\($0)" } ?? "") }

    /// `OS/ARCH[/VARIANT]`, as `ctr pull --platform` and `docker pull --platform` take it.
    public init?(parsing text: String) {
        let p = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard p.count == 2 || p.count == 3, !p.contains(where: \.isEmpty) else { return nil }
        self.init(architecture: p[1], os: p[0], variant: p.count > 2 ? p[2] : nil)
    }

    /// The platform of this machine in OCI terms (uname machine -> GOARCH names).
    public static let host: Platform = {
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: u.machine) { String.fromCBytes($0) }
        let arch: String
        switch machine {
        case "x86_64": arch = "amd64"
        case "aarch64": arch = "arm64"
        case "i386", "i686": arch = "386"
        case "armv7l": arch = "arm"
        case "ppc64le": arch = "ppc64le"
        case "s390x": arch = "s390x"
        case "riscv64": arch = "riscv64"
        default: arch = machine
        }
        return Platform(architecture: arch, os: "linux", variant: arch == "arm64" ? "v8" : nil)
    }()
}

public struct Descriptor: Codable, Hashable, Sendable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    public var annotations: [String: String]?
    public var platform: Platform?
    public var urls: [String]?
    public var artifactType: String?

    public init(mediaType: String, digest: Digest, size: Int64, annotations: [String: String]? = nil, platform: Platform? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.platform = platform
    }

    public static let refNameAnnotation = "org.opencontainers.image.ref.name"
    public var refName: String? { annotations?[Self.refNameAnnotation] }
}

/// An image index (or Docker manifest list).
public struct ImageIndex: Codable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var manifests: [Descriptor]
    public var annotations: [String: String]?
}

public struct ImageManifest: Codable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
    public var annotations: [String: String]?
}

/// The parts of the image configuration Husk uses; other fields are ignored.
public struct ImageConfig: Codable, Sendable, Equatable {
    public struct Config: Codable, Sendable, Equatable {
        public var User: String?
        public var Env: [String]?
        public var Entrypoint: [String]?
        public var Cmd: [String]?
        public var WorkingDir: String?
        public var StopSignal: String?
        public var Labels: [String: String]?
        public var ExposedPorts: [String: JSONValue]?
        public var Volumes: [String: JSONValue]?

        public init() {}
    }

    public struct RootFS: Codable, Sendable, Equatable {
        public var type: String
        public var diff_ids: [Digest]
    }

    public var architecture: String?
    public var os: String?
    public var variant: String?
    public var created: String?
    public var config: Config?
    public var rootfs: RootFS
}
