import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Reads files of an image without mounting it: its snapshots are searched from the top
/// layer down, honouring overlay whiteouts (0:0 character devices), opaque directories and
/// symlinks (resolved inside the image). Used for /etc/passwd and /etc/group.
public struct ImageFS: Sendable {
    /// Snapshot directories, lowest layer first.
    public let layers: [String]

    public init(layers: [String]) {
        self.layers = layers
    }

    /// The contents of `path` in the merged image, or nil when it does not exist there.
    public func read(_ path: String, max: Int = 1 << 20) -> [UInt8]? {
        var target = Files.clean(path)
        for _ in 0..<16 {
            switch lookup(target) {
            case .missing: return nil
            case .file(let full):
                guard let bytes = try? Files.read(full), bytes.count <= max else { return nil }
                return bytes
            case .symlink(let resolved):
                target = resolved
            }
        }
        return nil  // a symlink loop
    }

    enum Found {
        case missing
        case file(String)
        case symlink(String)  // the path to look up next
    }

    func lookup(_ path: String) -> Found {
        let comps = path.split(separator: "/").map(String.init)
        guard !comps.isEmpty else { return .missing }
        for layer in layers.reversed() {
            var dir = layer
            var stopBelow = false
            for (i, c) in comps.enumerated() {
                let p = dir + "/" + c
                var st = stat()
                if lstat(p, &st) != 0 { break }  // not in this layer: look lower
                let type = st.st_mode & S_IFMT
                if type == S_IFCHR && st.st_rdev == 0 { return .missing }  // whiteout
                if type == S_IFLNK {
                    var buf = [UInt8](repeating: 0, count: 4096)
                    let n = buf.withUnsafeMutableBytes { readlink(p, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
                    guard n > 0 else { return .missing }
                    let link = String(decoding: buf[0..<n], as: UTF8.self)
                    let base = "/" + comps[0..<i].joined(separator: "/")
                    let rest = comps[(i + 1)...].joined(separator: "/")
                    let resolved = link.hasPrefix("/") ? link : base + "/" + link
                    return .symlink(Files.clean(resolved + (rest.isEmpty ? "" : "/" + rest)))
                }
                if i == comps.count - 1 {
                    return type == S_IFREG ? .file(p) : .missing
                }
                // A file (or anything but a directory) hides lower layers' entries below its path.
                guard type == S_IFDIR else { return .missing }
                if let size = try? Files.xattrSize(p, "trusted.overlay.opaque"), size > 0 { stopBelow = true }
                dir = p
            }
            if stopBelow { return .missing }
        }
        return .missing
    }
}
