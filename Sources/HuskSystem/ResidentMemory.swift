import CShim
#if canImport(Glibc)
import Glibc
#endif

/// Keeping a long-running, mostly idle process small (the pod supervisor, DESIGN §3).
public enum ResidentMemory {
    /// Drops this process's resident pages of its executable's code and read-only data (the
    /// r-xp and r--p mappings of /proc/self/exe). The pages stay in the page cache, shared with
    /// every other process of the same binary; a later use maps them again with a minor fault.
    /// Nothing can be lost: these mappings are never written, and in the read-only data only
    /// pages still backed by the file are dropped (pagemap): the ones the loader relocated
    /// before making them read-only are private copies and stay. Writable data is left alone
    /// (another thread may write it at any time). Done in C (`cshim_trim_executable`): Swift
    /// code running after the drop mapped 2.7 MB of code back (64 KiB fault-around per fault).
    /// Returns the bytes dropped.
    @discardableResult
    public static func trimExecutableCode() -> Int {
        Int(cshim_trim_executable())
    }

    /// Every thread allocates from the main heap: glibc gives a thread that meets contention an
    /// arena of its own (a 64 MiB reservation, its touched pages private; two of 80 and 152 KB
    /// in an idle supervisor). Call before any thread starts.
    public static func oneMallocArena() {
        cshim_malloc_one_arena()
    }

    /// What an idle supervisor gives back: its code pages (`trimExecutableCode`) and the free
    /// memory of its heap (`malloc_trim`, which also returns free pages inside the heap).
    public static func trim() {
        trimExecutableCode()
        cshim_malloc_trim()
        trimStack(margin: 8 << 10)
    }

    /// Drops the calling thread's stack pages below its stack pointer less `margin` bytes:
    /// what a deep call (a pull, CNI, a spawn, a request) left dirty. Nothing live is below
    /// the stack pointer, so nothing is lost: a page used again comes back zeroed. For a
    /// thread that goes on shallow, or ends (glibc keeps an ended thread's stack for reuse).
    @discardableResult
    public static func trimStack(margin: Int = 16 << 10) -> Int {
        Int(cshim_trim_stack(margin))
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
