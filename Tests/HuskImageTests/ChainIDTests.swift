import Foundation
import HuskImage
import Testing

@Suite("ImageRecord.chainID (image-spec: Layer ChainID)")
struct ChainIDTests {
    /// A record with these diff_ids, decoded as the store writes records.
    func record(_ diffIDs: [String]) throws -> ImageRecord {
        let ids = "[" + diffIDs.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        let json = """
            {"id": "sha256:\(emptySHA)", "repoTags": [], "repoDigests": [],
             "manifest": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:\(emptySHA)", "size": 2},
             "config": {"rootfs": {"type": "layers", "diff_ids": \(ids)}},
             "layers": [], "size": 0, "pulledAt": "", "source": ""}
            """
        return try JSONDecoder().decode(ImageRecord.self, from: Data(json.utf8))
    }

    let a = "sha256:" + String(repeating: "a", count: 64)
    let b = "sha256:" + String(repeating: "b", count: 64)
    let c = "sha256:" + String(repeating: "c", count: 64)

    @Test("no layers: none; one layer: its diff_id")
    func short() throws {
        #expect(try record([]).chainID == nil)
        #expect(try record([a]).chainID?.description == a)
    }

    @Test("more layers: sha256 of \"<chain> <diff_id>\", layer by layer (values from Python's hashlib)")
    func chained() throws {
        #expect(try record([a, b]).chainID?.description == "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c")
        #expect(try record([a, b, c]).chainID?.description == "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588")
    }
}
