#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One line of /proc/<pid>/mountinfo.
public struct MountInfoEntry: Sendable, Equatable {
    public var id: Int
    public var parent: Int
    public var root: String
    public var mountPoint: String
    public var options: String
    public var fsType: String
    public var source: String
    public var superOptions: String
}

/// Parsing of /proc/self/mountinfo (proc(5)).
public enum MountInfo {
    public static func read(pid: String = "self") throws(SystemCallError) -> [MountInfoEntry] {
        guard let text = try Files.readString("/proc/\(pid)/mountinfo") else { return [] }
        return parse(text)
    }

    /// The id of the topmost mount whose mount point is `path` (symlinks resolved) in this
    /// process's mount namespace, or nil when `path` is no mount point.
    public static func topMount(at path: String) -> Int? {
        guard let resolved = realpath(path, nil) else { return nil }
        let real = String(cString: resolved)
        free(resolved)
        guard let entries = try? read() else { return nil }
        return entries.last { $0.mountPoint == real }?.id
    }

    public static func parse(_ text: String) -> [MountInfoEntry] {
        var out: [MountInfoEntry] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: false)
            guard let sep = f.firstIndex(of: "-"), sep >= 6, sep + 2 < f.count else { continue }
            guard let id = Int(f[0]), let parent = Int(f[1]) else { continue }
            out.append(
                MountInfoEntry(
                    id: id, parent: parent, root: unescape(f[3]), mountPoint: unescape(f[4]), options: String(f[5]),
                    fsType: String(f[sep + 1]), source: sep + 2 < f.count ? unescape(f[sep + 2]) : "",
                    superOptions: sep + 3 < f.count ? String(f[sep + 3]) : ""))
        }
        return out
    }

    /// Undoes the octal escapes (\040 for space, \011, \012, \134) of mountinfo fields.
    static func unescape(_ s: Substring) -> String {
        guard s.contains("\\") else { return String(s) }
        var bytes: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "\\"), i + 3 < u.count {
                let digits = u[(i + 1)...(i + 3)]
                if let v = UInt8(String(decoding: digits, as: UTF8.self), radix: 8) {
                    bytes.append(v)
                    i += 4
                    continue
                }
            }
            bytes.append(u[i])
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
