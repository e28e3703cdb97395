import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// kubelet's user namespace manager (pkg/kubelet/userns, KEP-127) for pods with
/// `hostUsers: false`: each gets 65536 ids of the node's (uid and gid alike, container id 0)
/// that no other pod has, picked at random among the free ones, recorded in the pod's `userns`
/// file in kubelet's format, and free again when the pod's record is gone (`husk rm`,
/// `husk gc`): the records are the allocation, read under the names lock.
///
/// The pool is kubelet's: the ranges /etc/subuid and /etc/subgid give the user `kubelet`
/// (the same in both, the first id and the length multiples of 65536, the first id at least
/// 65536), else ids 65536 up to the top of the id space.
public enum UserNamespaces {
    public static let idsPerPod: UInt32 = 65536

    /// The ids pods may get: `first` and how many.
    public struct Pool: Sendable, Equatable {
        public var first: UInt64
        public var length: UInt64

        /// How many pods fit: the last range must end before 2^32 - 1, which is no id
        /// (a map that reaches 2^32 is refused by the kernel).
        public var slots: UInt64 {
            var n = length / UInt64(UserNamespaces.idsPerPod)
            while n > 0 && first + n * UInt64(UserNamespaces.idsPerPod) > UInt64(UInt32.max) { n -= 1 }
            return n
        }
    }

    /// kubelet's defaults when no `kubelet` user has subordinate ids.
    public static let defaultPool = Pool(first: 1 << 16, length: (1 << 32) - (1 << 16))

    /// The pool from /etc/subuid and /etc/subgid (`root`: where they are, for tests).
    public static func pool(etc: String = "/etc") throws(HuskError) -> Pool {
        func entry(_ file: String) -> (UInt64, UInt64)? {
            guard let text = (try? Files.readString(etc + "/" + file)) ?? nil else { return nil }
            for line in text.split(separator: "\n") {
                let f = line.split(separator: ":", omittingEmptySubsequences: false)
                if f.count == 3, f[0] == "kubelet", let a = UInt64(f[1]), let b = UInt64(f[2]) { return (a, b) }
            }
            return nil
        }
        let u = entry("subuid"), g = entry("subgid")
        if u == nil && g == nil { return defaultPool }
        guard let (first, length) = u, let gid = g, gid == (first, length) else {
            throw HuskError(.invalidArgument, "mismatched subuids and subgids for user \"kubelet\" (\(etc)/subuid, \(etc)/subgid)")
        }
        let per = UInt64(idsPerPod)
        if first % per != 0 { throw HuskError(.invalidArgument, "kubelet user assigned ID \(first) is not a multiple of \(per) (\(etc)/subuid)") }
        if first < per { throw HuskError(.invalidArgument, "kubelet user assigned ID \(first) must be greater or equal to \(per) (\(etc)/subuid)") }
        if length % per != 0 { throw HuskError(.invalidArgument, "kubelet user assigned IDs length \(length) is not a multiple of \(per) (\(etc)/subuid)") }
        return Pool(first: first, length: length)
    }

    /// The maps kubelet writes: one range, container id 0, the same for uids and gids.
    public static func namespace(hostID: UInt32) -> PodSandboxConfig.UserNamespace {
        let m = [Spec.IDMapping(containerID: 0, hostID: hostID, size: idsPerPod)]
        return .init(uids: m, gids: m)
    }

    /// kubelet's `userns` file: `{"uidMappings":[{"hostId":N,"containerId":0,"length":65536}],"gidMappings":[...]}`.
    static func json(_ ns: PodSandboxConfig.UserNamespace) -> JSONValue {
        func maps(_ m: [Spec.IDMapping]) -> JSONValue {
            .array(m.map { .object(["hostId": .number(Double($0.hostID)), "containerId": .number(Double($0.containerID)), "length": .number(Double($0.size))]) })
        }
        return .object(["uidMappings": maps(ns.uids), "gidMappings": maps(ns.gids)])
    }

    /// Reads a pod's `userns` file, with kubelet's checks (one range, the same for uids and
    /// gids, container id 0, 65536 ids). nil when there is none.
    public static func read(_ path: String) throws(HuskError) -> PodSandboxConfig.UserNamespace? {
        guard let bytes = (try? Files.read(path)) ?? nil else { return nil }
        let ns: PodSandboxConfig.UserNamespace
        do {
            let r = JSONReader(try JSONParser.parse(bytes))
            func maps(_ key: String) throws(FieldError) -> [Spec.IDMapping] {
                try r.optArray(key) { (m: JSONReader) throws(FieldError) -> Spec.IDMapping in
                    Spec.IDMapping(containerID: UInt32(clamping: try m.int("containerId")), hostID: UInt32(clamping: try m.int("hostId")),
                                   size: UInt32(clamping: try m.int("length")))
                } ?? []
            }
            ns = .init(uids: try maps("uidMappings"), gids: try maps("gidMappings"))
        } catch {
            throw HuskError(.invalidArgument, "invalid user namespace configuration in \(path): \(error)")
        }
        guard ns.uids.count == 1, ns.gids.count == 1 else {
            throw HuskError(.invalidArgument, "invalid user namespace configuration in \(path): invalid number of mappings")
        }
        guard ns.uids == ns.gids else {
            throw HuskError(.invalidArgument, "invalid user namespace configuration in \(path): mismatched uid and gid mappings")
        }
        guard ns.uids[0].containerID == 0 else {
            throw HuskError(.invalidArgument, "invalid user namespace configuration in \(path): UID 0 must be mapped")
        }
        guard ns.uids[0].size == idsPerPod else {
            throw HuskError(.invalidArgument, "invalid user namespace configuration in \(path): length \(ns.uids[0].size), want \(idsPerPod)")
        }
        return ns
    }

    /// Picks a free range for pod `uid` and records it in `file` (kubelet's
    /// AllocateNext: a random start, then the next free slot). The caller holds the names lock;
    /// `taken` are the pods' `userns` files.
    static func allocate(pool: Pool, taken: [String], file: String) throws(HuskError) -> PodSandboxConfig.UserNamespace {
        let per = UInt64(idsPerPod)
        var used = Set<UInt64>()
        for path in taken {
            guard let ns = try? read(path), let host = ns.uids.first?.hostID else { continue }
            let h = UInt64(host)
            if h >= pool.first && (h - pool.first) % per == 0 { used.insert((h - pool.first) / per) }
        }
        let slots = pool.slots
        guard slots > 0, UInt64(used.count) < slots else {
            throw HuskError(.invalidState, "create user namespace: could not find an empty slot to allocate a user namespace (\(slots) ranges of \(per) ids from \(pool.first), all taken)")
        }
        let start = UInt64.random(in: 0..<slots)
        var slot = start
        while used.contains(slot) { slot = (slot + 1) % slots }
        let ns = namespace(hostID: UInt32(pool.first + slot * per))
        do {
            try Files.writeAtomically(file, Array(json(ns).serialized().utf8), mode: 0o600, durable: false)
        } catch {
            throw HuskError(.system, "cannot record the pod's user namespace in \(file)", cause: error)
        }
        return ns
    }
}
