extension Resolver {
    /// The source `resolve` would take `ref` from, or nil when no source names it: lets a
    /// caller tell "no such image in any source" apart from a source that has it and fails.
    /// Reads only each layout's index.json (and nested indexes for a digest).
    public static func source(of ref: ImageReference, in sources: [LayoutSource]) throws(ImageError) -> LayoutSource? {
        for source in sources {
            if let repo = source.repository, repo != ref.repository { continue }
            let index = try source.index()
            if match(ref, in: index, source: source) != nil { return source }
            if let d = ref.digest, try findNested(d, in: index.manifests, source: source, depth: 0) != nil { return source }
        }
        return nil
    }
}
