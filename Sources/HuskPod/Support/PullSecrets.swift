import HuskJSON
import HuskSystem

/// A pod's `imagePullSecrets`. kubelet reads them from the API server; Husk has none, so a
/// secret is a file holding the Secret manifest `kubectl create secret docker-registry ...
/// --dry-run=client -o yaml` prints (type kubernetes.io/dockerconfigjson, `data` base64 or
/// `stringData`; or the legacy kubernetes.io/dockercfg), at
/// `<secrets-dir>/<namespace>/<name>.yaml` or `<secrets-dir>/<name>.yaml` (.yml, .json). It is
/// read at every pull, so a changed file counts from the next attempt on, as a changed Secret
/// does. Its credentials are tried in the pod's order before the node's (the auth file), as
/// kubelet's keyring unions them; they go to husk-pull on its stdin and are never logged.
public enum PullSecrets {
    public struct Loaded: Sendable {
        /// docker config documents (`{"auths": {...}}`), in the pod's order.
        public var configs: [JSONValue] = []
        /// What could not be read: the name, with why when the file is there but unusable.
        public var failed: [String] = []

        /// kubelet's event for secrets it cannot get (reason FailedToRetrieveImagePullSecret).
        public var eventMessage: String? {
            failed.isEmpty ? nil : "Unable to retrieve some image pull secrets (\(failed.joined(separator: ", "))); attempting to pull the image may not succeed."
        }
    }

    public static func load(_ names: [String], namespace: String, dir: String) -> Loaded {
        var out = Loaded()
        for name in names {
            let candidates = [dir + "/" + namespace + "/" + name, dir + "/" + name].flatMap { base in [".yaml", ".yml", ".json"].map { base + $0 } }
            guard let (path, bytes) = candidates.lazy.compactMap({ p in ((try? Files.read(p)) ?? nil).map { (p, $0) } }).first else {
                out.failed.append(name)
                continue
            }
            do {
                out.configs.append(try parse(bytes, name: name, file: path))
            } catch {
                out.failed.append("\(name): \(error.message)")
            }
        }
        return out
    }

    /// The docker config of one Secret manifest.
    static func parse(_ bytes: [UInt8], name: String, file: String) throws(HuskError) -> JSONValue {
        let doc: JSONValue
        do {
            doc = try PodManifest.document(bytes, file: file).0
        } catch {
            throw HuskError(.invalidArgument, "\(file): \(error)")
        }
        let r = JSONReader(doc)
        func bad(_ what: String) -> HuskError { HuskError(.invalidArgument, "\(file): \(what)") }
        guard ((try? r.optString("kind")) ?? nil) == "Secret" else { throw bad("kind is not Secret") }
        if let n = (try? r.child("metadata")?.optString("name")) ?? nil, n != name { throw bad("metadata.name is \(n), not \(name)") }
        let type = ((try? r.optString("type")) ?? nil) ?? "Opaque"
        let key: String
        switch type {
        case "kubernetes.io/dockerconfigjson": key = ".dockerconfigjson"
        case "kubernetes.io/dockercfg": key = ".dockercfg"
        default: throw bad("type \(type) is not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg")
        }
        var text: [UInt8]? = nil
        if let s = (try? r.child("stringData")?.optString(key)) ?? nil { text = Array(s.utf8) }
        if text == nil, let s = (try? r.child("data")?.optString(key)) ?? nil {
            guard let b = Base64.decode(s) else { throw bad("data.\(key) is not base64") }
            text = b
        }
        guard let text else { throw bad("it has no data.\(key)") }
        let config: JSONValue
        do {
            config = try JSONParser.parse(text)
        } catch {
            throw bad("data.\(key) is not JSON: \(error.message)")
        }
        if key == ".dockercfg" { return .object(["auths": config]) }  // the legacy file is the auths map itself
        guard case .object = JSONReader(config).child("auths")?.value else { throw bad("data.\(key) has no auths") }
        return config
    }
}
