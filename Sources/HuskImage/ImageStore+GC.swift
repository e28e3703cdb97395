import FoundationEssentials
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What `gc` removed.
public struct GCReport: Sendable, Equatable {
    public var blobs: [String] = []
    public var snapshots: [String] = []
    public var leftovers: [String] = []
    public var bytes: Int64 = 0
    /// What could not be removed, and why; `husk gc` tries again.
    public var failures: [String] = []
}

extension ImageStore {
    /// `husk rmi`: by tag, removes that tag (and the image when it was the last name); by ID,
    /// removes the image. Refuses while a container holds a lease on it. Then collects what
    /// nothing references any more.
    @discardableResult
    public func remove(_ text: String) throws(ImageError) -> (removed: ImageRecord, untaggedOnly: Bool, gc: GCReport) {
        let result: (ImageRecord, Bool) = try withLock { () throws(ImageError) -> (ImageRecord, Bool) in
            var index = try readIndex()
            guard let img = try image(matching: text), let i = index.images.firstIndex(where: { $0.id == img.id }) else {
                throw ImageError(reason: .notFound, message: "no such image: \(text)")
            }
            if let holders = leases()[img.id.description], !holders.isEmpty {
                throw ImageError(reason: .inUse, message: "image \(img.id.short) (\(text)) is in use by \(holders.sorted().joined(separator: ", "))")
            }
            let ref = try? ImageReference(parsing: text)
            if let tagged = ref?.tagged, img.repoTags.contains(tagged), img.repoTags.count > 1, Digest(text) == nil {
                index.images[i].repoTags.removeAll { $0 == tagged }
                try writeIndex(index)
                return (index.images[i], true)
            }
            index.images.remove(at: i)
            try writeIndex(index)
            return (img, false)
        }
        let report = result.1 ? GCReport() : try gc()
        return (result.0, result.1, report)
    }

    /// Removes blobs and snapshots no image references, and what crashed pulls left behind
    /// (temporary files of processes that no longer exist).
    public func gc() throws(ImageError) -> GCReport {
        try withLock { () throws(ImageError) -> GCReport in
            let index = try readIndex()
            var blobs = Set<String>()
            var snaps = Set<String>()
            for img in index.images {
                blobs.insert(img.manifest.digest.hex)
                blobs.insert(img.id.hex)
                for l in img.layers { blobs.insert(l.digest.hex) }
                for d in img.diffIDs { snaps.insert(d.hex) }
            }
            var report = GCReport()
            for name in Files.list(blobsDir) ?? [] where !blobs.contains(name) {
                var st = stat()
                if stat(blobsDir + "/" + name, &st) == 0 { report.bytes += Int64(st.st_size) }
                if unlink(blobsDir + "/" + name) == 0 { report.blobs.append("sha256:" + name) }
            }
            for name in Files.list(snapshotsDir) ?? [] {
                let path = snapshotsDir + "/" + name
                if name.hasPrefix(".tmp-") || name.hasPrefix(".removing-") {
                    // .tmp-<hex16>-<pid>-<rand> and .removing-<hex16>-<pid>-<rand>: only when
                    // their process is gone.
                    let parts = name.split(separator: "-")
                    if parts.count >= 3, let pid = Int32(parts[2]), pid != getpid(), kill(pid, 0) == 0 { continue }
                    do {
                        try Files.removeTree(path)
                        report.leftovers.append(path)
                    } catch {
                        report.failures.append("\(path): \(error)")
                    }
                    continue
                }
                if name.hasPrefix(".lock-") {
                    // A pull killed while unpacking leaves its lock file; a held one is in use.
                    if let fd = try? FD.open(path, O_RDWR), flock(fd.raw, LOCK_EX | LOCK_NB) == 0 {
                        if unlink(path) == 0 { report.leftovers.append(path) }
                    }
                    continue
                }
                if name.hasPrefix(".") || snaps.contains(name) { continue }
                // Out of the way first, in one rename: a snapshot is either whole under its
                // name or not there, so a pull never reuses a half-removed one (issue 16 #3).
                let doomed = snapshotsDir + "/.removing-\(name.prefix(16))-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                guard rename(path, doomed) == 0 else {
                    report.failures.append("snapshot sha256:\(name): rename: \(currentErrno.text)")
                    continue
                }
                do {
                    try Files.removeTree(doomed)
                    report.snapshots.append("sha256:" + name)
                } catch {
                    report.failures.append("snapshot sha256:\(name) (now \(doomed)): \(error)")
                }
            }
            for name in Files.list(ingestDir) ?? [] {
                // <hex>.<pid>.<rand>; a registry download's <hex>.partial and <hex>.lock stay
                // a day, for the next pull to resume (or while one writes it).
                let parts = name.split(separator: ".")
                if parts.count == 3, let pid = Int32(parts[1]), kill(pid, 0) == 0 { continue }
                if parts.count == 2, parts[1] == "partial" || parts[1] == "lock" {
                    var st = stat()
                    if stat(ingestDir + "/" + name, &st) == 0, Double(time(nil)) - Double(st.st_mtim.tv_sec) < 86400 { continue }
                }
                if unlink(ingestDir + "/" + name) == 0 { report.leftovers.append(ingestDir + "/" + name) }
            }
            report.blobs.sort()
            report.snapshots.sort()
            return report
        }
    }
}
