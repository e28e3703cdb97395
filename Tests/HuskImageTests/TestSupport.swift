import HuskImage
import HuskSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A known SHA-256 (of the empty string), usable wherever a well-formed digest is needed.
let emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/// A scratch directory under /tmp holding image layer directories. Call `remove()` in a defer.
struct ScratchLayers {
    let root: String

    init() throws {
        root = "/tmp/husk-image-tests.\(getpid()).\(UInt64.random(in: 0...UInt64.max))"
        #expect(!Files.exists(root))
        try Files.makeDirectories(root)
    }

    /// The directory of layer `i` (created on demand).
    func layer(_ i: Int) throws -> String {
        let dir = root + "/layer\(i)"
        try Files.makeDirectories(dir)
        return dir
    }

    /// Writes `text` at `path` (relative to the layer), creating parent directories.
    func write(_ i: Int, _ path: String, _ text: String) throws {
        let full = try layer(i) + "/" + path
        try Files.makeDirectories(parent(full))
        try Files.writeAtomically(full, Array(text.utf8))
    }

    func mkdir(_ i: Int, _ path: String) throws {
        try Files.makeDirectories(try layer(i) + "/" + path)
    }

    /// Creates a symlink at `path` (relative to the layer) whose content is `target`.
    func symlink(_ i: Int, _ path: String, to target: String) throws {
        let full = try layer(i) + "/" + path
        try Files.makeDirectories(parent(full))
        let rc = Glibc.symlink(target, full)
        try #require(rc == 0, "symlink \(full) -> \(target) failed")
    }

    /// An ImageFS over layers 0..<count, lowest first.
    func fs(layers count: Int) throws -> ImageFS {
        ImageFS(layers: try (0..<count).map { try layer($0) })
    }

    func remove() {
        try? Files.removeTree(root)
    }

    private func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
}
