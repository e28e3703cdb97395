import HuskImage
import HuskJSON
import HuskSystem

extension ImageService {
    /// An image record as CRI's Image: the id is the config digest, tags `registry/repo:tag`,
    /// digests `repo@sha256:<manifest>`, the size in bytes of its manifest, config and
    /// compressed layers (containerd's compressed size), and the image's user split as
    /// containerd does: a numeric user is `uid`, a name `username`.
    static func image(_ rec: ImageRecord) -> Runtime_V1_Image {
        var m = Runtime_V1_Image()
        m.id = rec.id.description
        m.repoTags = rec.repoTags
        m.repoDigests = rec.repoDigests
        m.size = UInt64(max(0, rec.size + rec.manifest.size))
        let user = rec.config.config?.User ?? ""
        let name = String(user.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        if let uid = Int64(name) {
            m.uid.value = uid
        } else {
            m.username = name
        }
        return m
    }

    /// ImageStatus's verbose `info["info"]`: `{"chainID": ..., "imageSpec": <the image config>}`,
    /// containerd's keys, the config as stored (read back from its verified blob).
    static func verboseInfo(_ rec: ImageRecord, store: ImageStore) throws -> String {
        let path = store.blobPath(rec.id)
        let config: JSONValue
        do {
            guard let bytes = try Files.read(path) else {
                throw ImageError(reason: .storeError, message: "image \(rec.id.short): its config blob \(path) is missing")
            }
            config = try JSONParser.parse(bytes)
        } catch let e as ImageError {
            throw e
        } catch {
            throw ImageError(reason: .storeError, message: "image \(rec.id.short): cannot read its config \(path): \(error)")
        }
        var info: [String: JSONValue] = ["imageSpec": config]
        if let chain = rec.chainID { info["chainID"] = .string(chain.description) }
        return JSONValue.object(info).serialized()
    }
}
