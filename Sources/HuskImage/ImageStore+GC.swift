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
                if name.hasPrefix(".tmp-") {
                    // .tmp-<hex16>-<pid>-<rand>: only when its process is gone.
                    let parts = name.split(separator: "-")
                    if parts.count >= 3, let pid = Int32(parts[2]), kill(pid, 0) == 0 { continue }
                    if (try? Files.removeTree(path)) != nil { report.leftovers.append(path) }
                    continue
                }
                if name.hasPrefix(".") || snaps.contains(name) { continue }
                if (try? Files.removeTree(path)) != nil { report.snapshots.append("sha256:" + name) }
            }
            for name in Files.list(ingestDir) ?? [] {
                // <hex>.<pid>.<rand>
                let parts = name.split(separator: ".")
                if parts.count == 3, let pid = Int32(parts[1]), kill(pid, 0) == 0 { continue }
                if unlink(ingestDir + "/" + name) == 0 { report.leftovers.append(ingestDir + "/" + name) }
            }
            report.blobs.sort()
            report.snapshots.sort()
            return report
        }
    }
}
