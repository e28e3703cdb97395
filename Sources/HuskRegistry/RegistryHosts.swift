import FoundationEssentials
import HuskSystem
import TOMLKit

/// Where a registry is reached and how: containerd's per-host directory
/// (`<config>/<host>/hosts.toml`, `certs.d` layout, hosts.go), parsed with TOMLKit:
///
/// ```toml
/// server = "https://registry.example.com"   # the registry itself, tried last
/// [host."https://mirror.example.com"]       # mirrors, tried first, in file order
///   capabilities = ["pull", "resolve"]
///   ca = "ca.crt"                           # relative paths are the host directory's
///   client = [["client.crt", "client.key"]]
///   skip_verify = false
///   override_path = false
///   [host."https://mirror.example.com".header]
///     x-custom = "value"
/// ```
/// The directory is `<host>_<port>_`... as containerd looks it up: `host:port` with the colon,
/// then `_default`. Without a file: `https://<host>` (docker.io: registry-1.docker.io), and
/// plain HTTP for localhost and 127.0.0.1 with a port, as containerd.
public struct RegistryHosts: Sendable {
    /// One place to send requests to.
    public struct Endpoint: Sendable, Equatable {
        /// `https://host:port`, no path.
        public var origin: String
        /// The path prefix: `/v2` unless `override_path`.
        public var pathPrefix: String
        public var pull = true
        public var resolve = true
        /// PEM files of extra certificate authorities.
        public var ca: [String] = []
        /// (certificate, key) PEM files.
        public var client: [(String, String?)] = []
        public var skipVerify = false
        public var headers: [(String, String)] = []
        /// A mirror: requests carry `?ns=<the registry's host>`, as containerd sends them.
        public var mirrorOf: String? = nil

        public var isHTTPS: Bool { origin.hasPrefix("https://") }
        /// `host[:port]` of the origin.
        public var authority: String { String(origin.split(separator: "/", omittingEmptySubsequences: true).last ?? "") }

        public static func == (a: Endpoint, b: Endpoint) -> Bool {
            a.origin == b.origin && a.pathPrefix == b.pathPrefix && a.pull == b.pull && a.resolve == b.resolve && a.ca == b.ca
                && a.skipVerify == b.skipVerify && a.mirrorOf == b.mirrorOf
                && a.client.map { $0.0 + "|" + ($0.1 ?? "") } == b.client.map { $0.0 + "|" + ($0.1 ?? "") }
                && a.headers.map { $0.0 + ":" + $0.1 } == b.headers.map { $0.0 + ":" + $0.1 }
        }
    }

    /// The endpoints of `registry` (a reference's domain: `docker.io`, `127.0.0.1:5000`), in
    /// the order they are tried: mirrors, then the server.
    public static func endpoints(for registry: String, configDirectory: String?) throws(RegistryError) -> [Endpoint] {
        let defaultServer = registry == "docker.io" ? "registry-1.docker.io" : registry
        var server = Endpoint(origin: defaultOrigin(defaultServer), pathPrefix: "/v2")
        if !server.isHTTPS { server.skipVerify = true }
        guard let dir = configDirectory else { return [server] }
        var candidates = [dir + "/" + registry]
        if registry.contains(":") { candidates.append(dir + "/" + String(registry.map { $0 == ":" ? "_" : $0 }) + "_") }
        candidates.append(dir + "/_default")
        guard let hostDir = candidates.first(where: { Files.exists($0 + "/hosts.toml") }) else { return [server] }
        let file = hostDir + "/hosts.toml"
        let text: String
        do {
            guard let t = try Files.readString(file) else { return [server] }
            text = t
        } catch {
            throw RegistryError("cannot read \(file): \(error)")
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw RegistryError("\(file):\(e.source.begin.line): \(e.description)")
        } catch {
            throw RegistryError("\(file): \(error)")
        }
        var out: [Endpoint] = []
        if let hosts = table["host"]?.table {
            // Mirrors in the order the file has them (toml++ keeps insertion order).
            for key in hosts.keys {
                guard let h = hosts[key]?.table else { throw RegistryError("\(file): host.\"\(key)\" must be a table") }
                var e = try endpoint(key, h, file: file, hostDir: hostDir, field: "host.\"\(key)\"")
                e.mirrorOf = registry == "docker.io" ? "docker.io" : registry
                out.append(e)
            }
        }
        if let s = table["server"] {
            guard let url = s.string else { throw RegistryError("\(file): server must be a string") }
            var e = try endpoint(url, table, file: file, hostDir: hostDir, field: "server")
            e.mirrorOf = nil
            out.append(e)
        } else if hostDir.hasSuffix("/_default") {
            out.append(server)
        } else {
            // containerd: without `server`, the registry itself with the file's top-level settings.
            var e = try endpoint(server.origin, table, file: file, hostDir: hostDir, field: "server")
            e.mirrorOf = nil
            out.append(e)
        }
        return out
    }

    /// `https://` unless the host is localhost/127.0.0.1 with a port other than 443 (containerd's
    /// default for a registry without configuration).
    static func defaultOrigin(_ host: String) -> String {
        let name = host.split(separator: ":").first.map(String.init) ?? host
        let port = host.split(separator: ":").dropFirst().first.map(String.init)
        if (name == "localhost" || name == "127.0.0.1" || name == "[::1]"), let port, port != "443" { return "http://" + host }
        return "https://" + host
    }

    static func endpoint(_ url: String, _ t: TOMLTable, file: String, hostDir: String, field: String) throws(RegistryError) -> Endpoint {
        var origin = url
        if !origin.contains("://") { origin = "https://" + origin }
        guard origin.hasPrefix("https://") || origin.hasPrefix("http://") else {
            throw RegistryError("\(file): \(field): \(url) is not an http or https URL")
        }
        // The path part (if any) stays a prefix; /v2 is added unless override_path.
        let afterScheme = origin.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        var path = afterScheme.count > 3 ? "/" + afterScheme[3] : ""
        origin = afterScheme.prefix(3).joined(separator: "/")
        while path.hasSuffix("/") { path.removeLast() }
        let override = t["override_path"]?.bool ?? false
        var e = Endpoint(origin: origin, pathPrefix: override ? path : path + "/v2")
        if let caps = t["capabilities"] {
            guard let list = caps.array?.compactMap({ $0.string }) else { throw RegistryError("\(file): \(field).capabilities must be a list of strings") }
            e.pull = list.contains("pull")
            e.resolve = list.contains("resolve")
        }
        func inDir(_ p: String) -> String { p.hasPrefix("/") ? p : hostDir + "/" + p }
        if let ca = t["ca"] {
            if let one = ca.string { e.ca = [inDir(one)] } else if let list = ca.array { e.ca = list.compactMap { $0.string }.map(inDir) } else {
                throw RegistryError("\(file): \(field).ca must be a string or a list of strings")
            }
        }
        if let client = t["client"] {
            if let one = client.string {
                e.client = [(inDir(one), nil)]
            } else if let list = client.array {
                for item in list {
                    if let s = item.string {
                        e.client.append((inDir(s), nil))
                    } else if let pair = item.array, pair.count == 2, let c = pair[0].string, let k = pair[1].string {
                        e.client.append((inDir(c), inDir(k)))
                    } else {
                        throw RegistryError("\(file): \(field).client entries are a path or [certificate, key]")
                    }
                }
            }
        }
        e.skipVerify = t["skip_verify"]?.bool ?? !e.isHTTPS
        if let headers = t["header"]?.table {
            for k in headers.keys {
                if let v = headers[k]?.string {
                    e.headers.append((k, v))
                } else if let list = headers[k]?.array {
                    for v in list.compactMap({ $0.string }) { e.headers.append((k, v)) }
                }
            }
        }
        return e
    }
}

/// A registry failure, as containerd words them (the caller adds kubelet's prefix).
public struct RegistryError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// 401/403 without a way in: the pull is denied (not retried on another host).
    public var denied = false
    public var notFound = false
    public var description: String { message }

    public init(_ message: String, denied: Bool = false, notFound: Bool = false) {
        self.message = message
        self.denied = denied
        self.notFound = notFound
    }
}
