import HuskJSON
import HuskSystem

// Reading and writing the image types without Codable (JSONParser / JSONReader / JSONText):
// the pod supervisor pulls images, and Codable's JSON machinery would triple its resident
// memory. Codable stays for the command line's output.

extension Platform {
    init(json r: JSONReader) throws(FieldError) {
        self.init(architecture: try r.string("architecture"), os: try r.string("os"), variant: try r.optString("variant"))
    }

    var jsonText: String {
        var m: [(String, String)] = [("architecture", JSONText.string(architecture)), ("os", JSONText.string(os))]
        if let variant { m.append(("variant", JSONText.string(variant))) }
        return JSONText.object(m)
    }
}

extension Digest {
    init(json r: JSONReader, _ key: String) throws(FieldError) {
        let s = try r.string(key)
        guard let d = Digest(s) else { throw r.error(key, "\"\(s)\" is not a sha256 digest") }
        self = d
    }
}

extension Descriptor {
    init(json r: JSONReader) throws(FieldError) {
        try r.requireObject()
        self.init(
            mediaType: try r.string("mediaType"), digest: try Digest(json: r, "digest"), size: try r.int("size"),
            annotations: try r.optStringMap("annotations"),
            platform: try r.optObject("platform") { (p) throws(FieldError) in try Platform(json: p) })
        urls = try r.optStringArray("urls")
        artifactType = try r.optString("artifactType")
    }

    var jsonText: String {
        var m: [(String, String)] = [
            ("mediaType", JSONText.string(mediaType)), ("digest", JSONText.string(digest.description)), ("size", "\(size)"),
        ]
        if let annotations { m.append(("annotations", JSONText.stringMap(annotations))) }
        if let platform { m.append(("platform", platform.jsonText)) }
        return JSONText.object(m)
    }
}

extension ImageIndex {
    init(json r: JSONReader) throws(FieldError) {
        try r.requireObject()
        schemaVersion = Int(try r.optInt("schemaVersion") ?? 2)
        mediaType = try r.optString("mediaType")
        manifests = try r.optArray("manifests") { (d) throws(FieldError) in try Descriptor(json: d) } ?? []
        annotations = try r.optStringMap("annotations")
    }
}

extension ImageManifest {
    init(json r: JSONReader) throws(FieldError) {
        try r.requireObject()
        schemaVersion = Int(try r.optInt("schemaVersion") ?? 2)
        mediaType = try r.optString("mediaType")
        guard let c = try r.optObject("config", { (d) throws(FieldError) in try Descriptor(json: d) }) else {
            throw r.error("config", "required field is missing")
        }
        config = c
        layers = try r.optArray("layers") { (d) throws(FieldError) in try Descriptor(json: d) } ?? []
        annotations = try r.optStringMap("annotations")
    }
}

extension ImageConfig {
    init(json r: JSONReader) throws(FieldError) {
        try r.requireObject()
        architecture = try r.optString("architecture")
        os = try r.optString("os")
        variant = try r.optString("variant")
        created = try r.optString("created")
        config = try r.optObject("config") { (c) throws(FieldError) -> Config in
            var x = Config()
            x.User = try c.optString("User")
            x.Env = try c.optStringArray("Env")
            x.Entrypoint = try c.optStringArray("Entrypoint")
            x.Cmd = try c.optStringArray("Cmd")
            x.WorkingDir = try c.optString("WorkingDir")
            x.StopSignal = try c.optString("StopSignal")
            x.Labels = try c.optStringMap("Labels")
            if case .object(let o)? = c.child("ExposedPorts")?.value { x.ExposedPorts = o }
            if case .object(let o)? = c.child("Volumes")?.value { x.Volumes = o }
            return x
        }
        guard let fs = try r.optObject("rootfs", { (f) throws(FieldError) -> RootFS in
            let ids = try f.optArray("diff_ids") { (d) throws(FieldError) -> Digest in
                guard case .string(let s) = d.value, let dg = Digest(s) else {
                    throw FieldError(path: d.path, message: "not a sha256 digest", line: nil)
                }
                return dg
            } ?? []
            return RootFS(type: try f.optString("type") ?? "layers", diff_ids: ids)
        }) else {
            throw r.error("rootfs", "required field is missing")
        }
        rootfs = fs
    }

    var jsonText: String {
        var m: [(String, String)] = []
        if let architecture { m.append(("architecture", JSONText.string(architecture))) }
        if let os { m.append(("os", JSONText.string(os))) }
        if let variant { m.append(("variant", JSONText.string(variant))) }
        if let created { m.append(("created", JSONText.string(created))) }
        if let c = config {
            var cm: [(String, String)] = []
            func arr(_ a: [String]) -> String { JSONText.array(a.map(JSONText.string)) }
            if let v = c.User { cm.append(("User", JSONText.string(v))) }
            if let v = c.Env { cm.append(("Env", arr(v))) }
            if let v = c.Entrypoint { cm.append(("Entrypoint", arr(v))) }
            if let v = c.Cmd { cm.append(("Cmd", arr(v))) }
            if let v = c.WorkingDir { cm.append(("WorkingDir", JSONText.string(v))) }
            if let v = c.StopSignal { cm.append(("StopSignal", JSONText.string(v))) }
            if let v = c.Labels { cm.append(("Labels", JSONText.stringMap(v))) }
            if let v = c.ExposedPorts { cm.append(("ExposedPorts", JSONValue.object(v).text)) }
            if let v = c.Volumes { cm.append(("Volumes", JSONValue.object(v).text)) }
            m.append(("config", JSONText.object(cm)))
        }
        m.append(("rootfs", JSONText.object([
            ("type", JSONText.string(rootfs.type)),
            ("diff_ids", JSONText.array(rootfs.diff_ids.map { JSONText.string($0.description) })),
        ])))
        return JSONText.object(m)
    }
}

extension ImageRecord {
    init(json r: JSONReader) throws(FieldError) {
        try r.requireObject()
        id = try Digest(json: r, "id")
        repoTags = try r.optStringArray("repoTags") ?? []
        repoDigests = try r.optStringArray("repoDigests") ?? []
        guard let m = try r.optObject("manifest", { (d) throws(FieldError) in try Descriptor(json: d) }) else {
            throw r.error("manifest", "required field is missing")
        }
        manifest = m
        guard let c = try r.optObject("config", { (c) throws(FieldError) in try ImageConfig(json: c) }) else {
            throw r.error("config", "required field is missing")
        }
        config = c
        layers = try r.optArray("layers") { (d) throws(FieldError) in try Descriptor(json: d) } ?? []
        size = try r.optInt("size") ?? 0
        pulledAt = try r.optString("pulledAt") ?? ""
        source = try r.optString("source") ?? ""
    }

    var jsonText: String {
        JSONText.object([
            ("id", JSONText.string(id.description)),
            ("repoTags", JSONText.array(repoTags.map(JSONText.string))),
            ("repoDigests", JSONText.array(repoDigests.map(JSONText.string))),
            ("manifest", manifest.jsonText), ("config", config.jsonText),
            ("layers", JSONText.array(layers.map(\.jsonText))), ("size", "\(size)"),
            ("pulledAt", JSONText.string(pulledAt)), ("source", JSONText.string(source)),
        ])
    }
}

/// Parses a document or throws an image error with the file and the place.
func parseJSON(_ bytes: [UInt8], what: String, reason: ImageError.Reason) throws(ImageError) -> JSONReader {
    do {
        return JSONReader(try JSONParser.parse(bytes))
    } catch {
        throw ImageError(reason: reason, message: "\(what): not valid JSON: \(error)")
    }
}

/// Maps a reader onto a type, turning field errors into image errors.
func decodeJSON<T>(_ what: String, reason: ImageError.Reason, _ body: () throws(FieldError) -> T) throws(ImageError) -> T {
    do {
        return try body()
    } catch {
        throw ImageError(reason: reason, message: "\(what): \(error)")
    }
}
