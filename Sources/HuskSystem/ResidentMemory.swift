#if canImport(Glibc)
import Glibc
#endif

/// Keeping a long-running, mostly idle process small (the pod supervisor, DESIGN §3).
public enum ResidentMemory {
    /// Drops this process's page mappings of its executable's code (the r-xp mappings of
    /// /proc/self/exe). The code stays in the page cache, shared with every other process of
    /// the same binary; a later call into it maps it again with a minor fault. Only code is
    /// dropped: it is never written, so nothing can be lost (data and relocated read-only
    /// data are left alone). Returns the bytes unmapped.
    @discardableResult
    public static func trimExecutableCode() -> Int {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return 0 }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let maps = (try? Files.readString("/proc/self/maps")) ?? nil else { return 0 }
        var total = 0
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "r-xp", fields[5...].joined(separator: " ") == exe else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16), end > start,
                  let p = UnsafeMutableRawPointer(bitPattern: start) else { continue }
            if madvise(p, Int(end - start), MADV_DONTNEED) == 0 { total += Int(end - start) }
        }
        return total
    }

    /// VmRSS of this process in bytes.
    public static func residentBytes() -> Int {
        guard let text = (try? Files.readString("/proc/self/status")) ?? nil else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) } ?? 0
            return kb * 1024
        }
        return 0
    }
}
