import FoundationEssentials
import HuskJSON
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Where one blob of a source is: a byte range of an open file.
public struct BlobLocation: Sendable {
    public let fd: FD
    public let offset: UInt64
    public let size: UInt64
}

/// A local OCI image layout (a directory with `oci-layout`, `index.json` and
/// `blobs/sha256/...`, as umoci, skopeo `oci:` and buildah write it) or an uncompressed `.tar`
/// of one (`oci-archive:`), read in place.
public final class LayoutSource: Sendable, CustomStringConvertible {
    public let path: String
    /// The repository this layout holds (`docker.io/library/busybox`), when the source was
    /// given as `REPO=PATH`: bare tags in it (`1.36`) then belong to that repository only.
    public let repository: String?
    private let archive: TarIndex?

    public var description: String { repository.map { "\($0)=\(path)" } ?? path }

    /// Parses `[REPO=]PATH` as given to `--image-source`.
    public static func parse(_ spec: String) throws(ImageError) -> LayoutSource {
        var repo: String? = nil
        var path = spec
        if let eq = spec.firstIndex(of: "="), !spec.hasPrefix("/") || spec[..<eq].contains("/") == false {
            let r = String(spec[..<eq])
            let ref = try ImageReference(parsing: r)
            if ref.digest != nil || (ref.tag != ImageReference.defaultTag || r.hasSuffix(":latest")) {
                throw ImageError(reason: .invalidImageName, message: "image source \(spec): name only a repository before =, without tag or digest")
            }
            repo = ref.repository
            path = String(spec[spec.index(after: eq)...])
        }
        return try LayoutSource(path: path, repository: repo)
    }

    public init(path: String, repository: String? = nil) throws(ImageError) {
        self.path = Files.absolute(path)
        self.repository = repository
        if Files.isDirectory(self.path) {
            archive = nil
            guard Files.exists(self.path + "/oci-layout") else {
                throw ImageError(reason: .storeError, message: "image source \(self.path) is not an OCI image layout (no oci-layout file)")
            }
        } else if Files.exists(self.path) {
            do {
                archive = try TarIndex(path: self.path)
            } catch {
                throw ImageError(reason: .storeError, message: "image source \(self.path): \(error)")
            }
            guard archive?.members["oci-layout"] != nil else {
                throw ImageError(reason: .storeError, message: "image source \(self.path) is a tar but not of an OCI image layout (no oci-layout)")
            }
        } else {
            throw ImageError(reason: .storeError, message: "image source \(self.path): No such file or directory")
        }
    }

    /// Reads a small top-level file of the layout (oci-layout, index.json).
    func readFile(_ name: String, max: Int = 16 << 20) throws(ImageError) -> [UInt8] {
        do {
            if let archive {
                guard let m = archive.members[name] else {
                    throw ImageError(reason: .storeError, message: "image source \(path) has no \(name)")
                }
                if m.size > UInt64(max) { throw ImageError(reason: .storeError, message: "\(path): \(name) is too large") }
                return try archive.read(m)
            }
            guard let bytes = try Files.read(path + "/" + name) else {
                throw ImageError(reason: .storeError, message: "image source \(path) has no \(name)")
            }
            if bytes.count > max { throw ImageError(reason: .storeError, message: "\(path): \(name) is too large") }
            return bytes
        } catch let e as ImageError {
            throw e
        } catch {
            throw ImageError(reason: .storeError, message: "image source \(path): \(error)")
        }
    }

    /// index.json of the layout.
    public func index() throws(ImageError) -> ImageIndex {
        let bytes = try readFile("index.json")
        let r = try parseJSON(bytes, what: "\(path)/index.json", reason: .storeError)
        return try decodeJSON("\(path)/index.json", reason: .storeError) { () throws(FieldError) in try ImageIndex(json: r) }
    }

    /// Where a blob is, or nil when the layout does not have it.
    public func blob(_ digest: Digest) throws(ImageError) -> BlobLocation? {
        let name = "blobs/sha256/" + digest.hex
        if let archive {
            guard let m = archive.members[name] else { return nil }
            return BlobLocation(fd: archive.fd, offset: m.offset, size: m.size)
        }
        let file = path + "/" + name
        do {
            let fd = try FD.open(file, O_RDONLY)
            var st = stat()
            fstat(fd.raw, &st)
            return BlobLocation(fd: fd, offset: 0, size: UInt64(st.st_size))
        } catch {
            if error.errno == .noSuchFileOrDirectory { return nil }
            throw ImageError(reason: .storeError, message: "\(file): \(error.errno.text)")
        }
    }

    /// A small blob (manifest, index, config), checked against its descriptor: size first (so
    /// a huge blob is never read), then digest.
    public func readBlob(_ d: Descriptor, max: Int64 = 4 << 20) throws(ImageError) -> [UInt8] {
        guard d.size >= 0, d.size <= max else {
            throw ImageError(reason: .errImagePull, message: "\(d.mediaType) \(d.digest) declares \(d.size) bytes, over the \(max) byte cap")
        }
        guard let loc = try blob(d.digest) else {
            throw ImageError(reason: .errImagePull, message: "image source \(path) lacks blob \(d.digest)")
        }
        guard loc.size == UInt64(d.size) else {
            throw ImageError(reason: .errImagePull, message: "blob \(d.digest) in \(path) has \(loc.size) bytes, its descriptor says \(d.size)")
        }
        var bytes = [UInt8](repeating: 0, count: Int(d.size))
        let n = bytes.withUnsafeMutableBytes { p in pread(loc.fd.raw, p.baseAddress, p.count, off_t(loc.offset)) }
        guard n == Int(d.size) else {
            throw ImageError(reason: .errImagePull, message: "cannot read blob \(d.digest) from \(path)")
        }
        let actual = Digest.of(bytes)
        guard actual == d.digest else {
            throw ImageError(reason: .errImagePull, message: "blob \(d.digest) in \(path) has digest \(actual): it was changed or corrupted")
        }
        return bytes
    }
}

/// The members of an uncompressed tar (ustar, GNU long names, PAX paths): name -> byte range.
final class TarIndex: Sendable {
    struct Member: Sendable {
        let offset: UInt64
        let size: UInt64
    }

    let fd: FD
    let members: [String: Member]

    init(path: String) throws {
        let fd = try FD.open(path, O_RDONLY)
        self.fd = fd
        var members: [String: Member] = [:]
        var offset: UInt64 = 0
        var header = [UInt8](repeating: 0, count: 512)
        var longName: String? = nil
        while true {
            let n = header.withUnsafeMutableBytes { pread(fd.raw, $0.baseAddress, 512, off_t(offset)) }
            if n < 512 { break }
            if header.allSatisfy({ $0 == 0 }) { break }
            func str(_ range: Range<Int>) -> String {
                let slice = header[range]
                let end = slice.firstIndex(of: 0) ?? range.upperBound
                return String(decoding: header[range.lowerBound..<end], as: UTF8.self)
            }
            let sizeField = str(124..<136).trimmed()
            guard let size = UInt64(sizeField, radix: 8) else { throw HuskError(.invalidArgument, "corrupt tar header at offset \(offset)") }
            let type = header[156]
            var name = str(0..<100)
            if str(257..<263) == "ustar" && header[262] == 0 {
                let prefix = str(345..<500)
                if !prefix.isEmpty { name = prefix + "/" + name }
            }
            let dataOffset = offset + 512
            if type == UInt8(ascii: "L") || type == UInt8(ascii: "x") {
                var data = [UInt8](repeating: 0, count: Int(min(size, 1 << 20)))
                _ = data.withUnsafeMutableBytes { pread(fd.raw, $0.baseAddress, $0.count, off_t(dataOffset)) }
                if type == UInt8(ascii: "L") {
                    longName = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                } else if let text = String(validating: data, as: UTF8.self) {
                    // "<len> path=<value>"
                    for record in text.split(separator: "\n") {
                        guard let space = record.firstIndex(of: " ") else { continue }
                        let kv = record[record.index(after: space)...]
                        if kv.hasPrefix("path=") { longName = String(kv.dropFirst(5)) }
                    }
                }
            } else if type == UInt8(ascii: "0") || type == 0 {
                var n = longName ?? name
                longName = nil
                while n.hasPrefix("./") { n.removeFirst(2) }
                members[n] = Member(offset: dataOffset, size: size)
            } else {
                longName = nil
            }
            offset = dataOffset + (size + 511) / 512 * 512
        }
        self.members = members
    }

    func read(_ m: Member) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(m.size))
        let n = bytes.withUnsafeMutableBytes { pread(fd.raw, $0.baseAddress, $0.count, off_t(m.offset)) }
        guard n == Int(m.size) else { throw HuskError(.system, "short read") }
        return bytes
    }
}
