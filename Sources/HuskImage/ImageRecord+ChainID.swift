extension ImageRecord {
    /// The OCI chain ID of the image's layer stack: the first diff_id, then
    /// sha256("<previous chain ID> <next diff_id>") for each further layer (image-spec
    /// config.md, "Layer ChainID"). nil for an image without layers.
    public var chainID: Digest? {
        guard var chain = diffIDs.first else { return nil }
        for d in diffIDs.dropFirst() {
            chain = Digest.of(Array("\(chain) \(d)".utf8))
        }
        return chain
    }
}
