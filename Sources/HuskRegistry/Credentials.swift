import HuskJSON
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// Credentials for one registry: CRI's `AuthConfig` fields, as containerd's ParseAuth reads
/// them (username/password first, then an identity token, then `auth`, base64 of user:pass).
/// Never printed: `description` hides the secrets.
public struct Credentials: Sendable, Equatable, CustomStringConvertible {
    public var username = ""
    public var password = ""
    /// An OAuth refresh token (docker's `identitytoken`).
    public var identityToken = ""
    /// A bearer token to send as it is (`registrytoken`).
    public var registryToken = ""

    public init(username: String = "", password: String = "", identityToken: String = "", registryToken: String = "") {
        self.username = username
        self.password = password
        self.identityToken = identityToken
        self.registryToken = registryToken
    }

    public var description: String { username.isEmpty ? "(token)" : "user \(username)" }
    public var isEmpty: Bool { username.isEmpty && password.isEmpty && identityToken.isEmpty && registryToken.isEmpty }

    /// `auth`: base64 of `user:password`.
    public static func fromAuth(_ auth: String) -> Credentials? {
        guard let bytes = Base64.decode(auth) ?? Base64.decode(auth + "=") ?? Base64.decode(auth + "==") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return nil }
        return Credentials(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
    }

    /// One entry of docker's config.json `auths` or CRI's AuthConfig, as JSON.
    public init(json r: JSONReader) throws(FieldError) {
        username = try r.optString("username") ?? ""
        password = try r.optString("password") ?? ""
        let identity = try r.optString("identitytoken")
        let identityCamel = try r.optString("identityToken")
        identityToken = identity ?? identityCamel ?? ""
        let registry = try r.optString("registrytoken")
        let registryCamel = try r.optString("registryToken")
        registryToken = registry ?? registryCamel ?? ""
        if username.isEmpty && password.isEmpty, let auth = try r.optString("auth"), !auth.isEmpty {
            guard let c = Credentials.fromAuth(auth) else { throw r.error("auth", "is not base64 of user:password") }
            username = c.username
            password = c.password
        }
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [:]
        if !username.isEmpty { o["username"] = .string(username) }
        if !password.isEmpty { o["password"] = .string(password) }
        if !identityToken.isEmpty { o["identitytoken"] = .string(identityToken) }
        if !registryToken.isEmpty { o["registrytoken"] = .string(registryToken) }
        return .object(o)
    }

    /// The credentials docker's config.json holds for `registry` (a reference's domain),
    /// looked up as kubelet's keyring does: keys with or without a scheme and a path, Docker
    /// Hub's under `https://index.docker.io/v1/`, `index.docker.io` or `docker.io`. The file is
    /// `authFile`, else $REGISTRY_AUTH_FILE, else ~/.docker/config.json; none: nil.
    public static func lookup(registry: String, authFile: String?) throws(RegistryError) -> Credentials? {
        var path = authFile
        if path == nil, let env = getenv("REGISTRY_AUTH_FILE") { path = String(cString: env) }
        if path == nil, let home = getenv("HOME") { path = String(cString: home) + "/.docker/config.json" }
        guard let file = path else { return nil }
        let bytes: [UInt8]
        do {
            guard let b = try Files.read(file) else {
                if authFile != nil { throw RegistryError("auth file \(file): no such file") }
                return nil
            }
            bytes = b
        } catch let e as RegistryError {
            throw e
        } catch {
            throw RegistryError("auth file \(file): \(error)")
        }
        let root: JSONReader
        do {
            root = JSONReader(try JSONParser.parse(bytes))
        } catch {
            throw RegistryError("auth file \(file): not JSON: \(error)")
        }
        return try lookup(registry: registry, in: root, what: "auth file \(file)")
    }

    /// The credentials a docker config document (`{"auths": {...}}`) holds for `registry`.
    public static func lookup(registry: String, in root: JSONReader, what: String) throws(RegistryError) -> Credentials? {
        guard let auths = root.child("auths"), case .object(let entries) = auths.value else { return nil }
        let hub = ["docker.io", "index.docker.io", "registry-1.docker.io"]
        func normalize(_ key: String) -> String {
            var k = key
            if let i = k.utf8.indices.first(where: { k.utf8[$0...].starts(with: "://".utf8) }) { k = String(k[k.utf8.index(i, offsetBy: 3)...]) }
            if let slash = k.firstIndex(of: "/") { k = String(k[..<slash]) }
            return hub.contains(k) ? "docker.io" : k
        }
        let want = hub.contains(registry) ? "docker.io" : registry
        for (key, _) in entries.sorted(by: { $0.key < $1.key }) where normalize(key) == want {
            guard let entry = auths.child(key) else { continue }
            do {
                return try Credentials(json: entry)
            } catch {
                throw RegistryError("\(what): auths.\(key): \(error.message)")
            }
        }
        return nil
    }
}
