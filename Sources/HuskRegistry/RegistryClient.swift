import AsyncHTTPClient
import FoundationEssentials
import HuskImage
import HuskJSON
import HuskSystem
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// The OCI distribution API for one endpoint of one registry (containerd's remotes/docker):
/// authentication on 401 (Bearer tokens per scope, cached until they expire; Basic), redirects
/// followed by hand (at most 10, the Authorization header kept only on the same host),
/// transient failures retried (connection errors, 408, 429 and 5xx, `Retry-After` honoured),
/// a timeout per request. One HTTPClient per endpoint: its TLS settings are the endpoint's.
public final class RegistryClient: @unchecked Sendable {  // tokens under `auth`
    public let endpoint: RegistryHosts.Endpoint
    /// The repository path in the registry (`library/busybox`).
    public let repository: String
    let credentials: Credentials?
    let http: HTTPClient
    struct Auth {
        var tokens: [String: (token: String, expires: Double)] = [:]
        var basic: String? = nil
    }
    let auth = Mutex(Auth())
    public var requestTimeout: TimeAmount = .seconds(60)
    public var retries = 3

    /// containerd's Accept list for resolving a reference.
    public static let manifestAccept = [
        MediaType.dockerManifest, MediaType.dockerManifestList, MediaType.ociManifest, MediaType.ociIndex, "*/*",
    ].joined(separator: ", ")

    public init(endpoint: RegistryHosts.Endpoint, repository: String, credentials: Credentials?) throws(RegistryError) {
        self.endpoint = endpoint
        self.repository = repository
        self.credentials = credentials
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            if !endpoint.ca.isEmpty { tls.additionalTrustRoots = try endpoint.ca.map { .certificates(try NIOSSLCertificate.fromPEMFile($0)) } }
            if let (cert, key) = endpoint.client.first {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key ?? cert, format: .pem))
            }
        } catch {
            throw RegistryError("\(endpoint.origin): the TLS files of hosts.toml cannot be read: \(error)")
        }
        if endpoint.skipVerify { tls.certificateVerification = .none }
        var config = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow, timeout: .init(connect: .seconds(30), read: .seconds(30)))
        config.decompression = .disabled
        // A registry that is down fails at once (the next mirror is tried); retries are ours.
        config.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    func url(_ path: String) -> String {
        var u = endpoint.origin + endpoint.pathPrefix + "/" + repository + "/" + path
        if let ns = endpoint.mirrorOf { u += "?ns=" + ns }
        return u
    }

    /// The scope a pull needs (containerd's): `repository:library/busybox:pull`.
    var scope: String { "repository:\(repository):pull" }

    // MARK: - Requests

    /// Sends a request, authenticating on 401 and retrying transient failures; follows
    /// redirects. Returns the final response (any status: the caller decides).
    func send(_ method: HTTPMethod, _ url: String, headers extra: [(String, String)] = [], what: String) async throws(RegistryError) -> HTTPClientResponse {
        var attempt = 0
        var authRetried = false
        while true {
            attempt += 1
            let response: HTTPClientResponse
            do {
                response = try await follow(method, url, headers: extra + authorization())
            } catch let e as RegistryError {
                throw e
            } catch {
                if attempt <= retries {
                    try await pause(attempt, retryAfter: nil)
                    continue
                }
                throw RegistryError("failed to do request: \(method.rawValue) \(url): \(Self.describe(error))")
            }
            let code = response.status.code
            if code == 401 && !authRetried {
                authRetried = true
                let header = response.headers["WWW-Authenticate"].first ?? ""
                try await drain(response)
                try await authenticate(header, url: url)
                continue
            }
            if (code == 408 || code == 429 || code >= 500) && attempt <= retries {
                let after = response.headers["Retry-After"].first.flatMap { Double($0) }
                try await drain(response)
                try await pause(attempt, retryAfter: after)
                continue
            }
            return response
        }
    }

    /// Back-off before another try: 0.5 s doubling, or what Retry-After says (at most 30 s).
    func pause(_ attempt: Int, retryAfter: Double?) async throws(RegistryError) {
        let seconds = min(30, retryAfter ?? 0.5 * Double(1 << (attempt - 1)))
        do {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
        } catch {
            throw RegistryError("cancelled")
        }
    }

    /// One request with redirects followed by hand: a 3xx with Location is requested again
    /// (GET/HEAD), the credentials kept only while the host stays the registry's.
    func follow(_ method: HTTPMethod, _ url: String, headers: [(String, String)]) async throws -> HTTPClientResponse {
        var current = url
        for _ in 0...10 {
            var request = HTTPClientRequest(url: current)
            request.method = method
            let sameHost = Self.authority(current) == endpoint.authority
            for (k, v) in headers where sameHost || k.lowercased() != "authorization" { request.headers.add(name: k, value: v) }
            for (k, v) in endpoint.headers { request.headers.add(name: k, value: v) }
            request.headers.replaceOrAdd(name: "User-Agent", value: "husk/0.1")
            let response = try await http.execute(request, timeout: requestTimeout)
            if [301, 302, 303, 307, 308].contains(response.status.code), let location = response.headers["Location"].first {
                try await drain(response)
                current = Self.resolve(location, against: current)
                continue
            }
            return response
        }
        throw RegistryError("\(method.rawValue) \(url): stopped after 10 redirects")
    }

    static func authority(_ url: String) -> String {
        let parts = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        return parts.count > 2 ? String(parts[2]) : ""
    }

    static func resolve(_ location: String, against base: String) -> String {
        if location.contains("://") { return location }
        let parts = base.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        let origin = parts.prefix(3).joined(separator: "/")
        return location.hasPrefix("/") ? origin + location : origin + "/" + location
    }

    func drain(_ r: HTTPClientResponse) async throws(RegistryError) {
        do {
            for try await _ in r.body {}
        } catch {
            // A body that breaks off while discarded changes nothing.
        }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout: return "connect timeout"
            case .readTimeout: return "read timeout"
            case .deadlineExceeded: return "deadline exceeded"
            case .remoteConnectionClosed: return "the connection was closed by the registry"
            default: return "\(e)"
            }
        }
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        return text
    }

    // MARK: - Authentication

    func authorization() -> [(String, String)] {
        let scope = scope
        return auth.withLock { a -> [(String, String)] in
            if let t = a.tokens[scope], t.expires > Clock.monotonicSeconds() { return [("Authorization", "Bearer " + t.token)] }
            if let b = a.basic { return [("Authorization", "Basic " + b)] }
            return []
        }
    }

    /// Answers a 401's challenge: Basic with the credentials, or a Bearer token from the
    /// realm (anonymous without credentials; GET with Basic, or POST with an identity token).
    func authenticate(_ header: String, url: String) async throws(RegistryError) {
        guard let (scheme, params) = Self.parseChallenge(header) else {
            throw RegistryError("pull access denied, repository does not exist or may require authorization: the registry answered 401 without a challenge", denied: true)
        }
        if let c = credentials, !c.registryToken.isEmpty {
            let scope = scope
            auth.withLock { $0.tokens[scope] = (c.registryToken, Clock.monotonicSeconds() + 3600) }
            return
        }
        switch scheme {
        case "basic":
            guard let c = credentials, !c.username.isEmpty else {
                throw RegistryError("pull access denied, repository does not exist or may require authorization: no basic auth credentials", denied: true)
            }
            let b = Base64.encode(Array("\(c.username):\(c.password)".utf8))
            auth.withLock { $0.basic = b }
        case "bearer":
            guard let realm = params["realm"] else { throw RegistryError("no realm specified for token auth challenge", denied: true) }
            var scopes = Set([scope])
            if let s = params["scope"] { for part in s.split(separator: " ") { scopes.insert(String(part)) } }
            let (token, expires) = try await fetchToken(realm: realm, service: params["service"], scopes: scopes.sorted())
            let scope = scope
            auth.withLock { $0.tokens[scope] = (token, Clock.monotonicSeconds() + expires) }
        default:
            throw RegistryError("the registry asks for \(scheme) authentication, which Husk does not do", denied: true)
        }
    }

    /// `Bearer realm="...",service="...",scope="..."` -> ("bearer", params).
    static func parseChallenge(_ header: String) -> (String, [String: String])? {
        let trimmed = header.drop { $0 == " " }
        guard let space = trimmed.firstIndex(of: " ") else { return trimmed.isEmpty ? nil : (trimmed.lowercased(), [:]) }
        let scheme = trimmed[..<space].lowercased()
        var params: [String: String] = [:]
        var rest = Substring(trimmed[trimmed.index(after: space)...])
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = rest[..<eq].trimmedSpaces().lowercased()
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var escaped = false
                while let ch = rest.first {
                    rest = rest.dropFirst()
                    if escaped { value.append(ch); escaped = false } else if ch == "\\" { escaped = true } else if ch == "\"" { break } else { value.append(ch) }
                }
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = rest[..<end].trimmedSpaces()
                rest = rest[end...]
            }
            params[key] = value
        }
        return (scheme, params)
    }

    /// The token endpoint (distribution's token spec, as containerd asks it): POST with the
    /// refresh token when there is an identity token, else GET with Basic credentials (or
    /// none: an anonymous token). `token` or `access_token`, valid `expires_in` s (60 without).
    func fetchToken(realm: String, service: String?, scopes: [String]) async throws(RegistryError) -> (String, Double) {
        func query(_ s: String) -> String {
            var out = ""
            for b in s.utf8 {
                if (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x2d || b == 0x2e || b == 0x5f || b == 0x7e {
                    out.append(Character(UnicodeScalar(b)))
                } else {
                    out += "%" + String(b, radix: 16, uppercase: true).leftPadded(2)
                }
            }
            return out
        }
        var params: [(String, String)] = []
        if let service { params.append(("service", service)) }
        for s in scopes { params.append(("scope", s)) }
        let c = credentials
        var request: HTTPClientRequest
        if let c, !c.identityToken.isEmpty {
            request = HTTPClientRequest(url: realm)
            request.method = .POST
            var form = params + [("grant_type", "refresh_token"), ("refresh_token", c.identityToken), ("client_id", "husk")]
            if !c.username.isEmpty { form.append(("username", c.username)) }
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded; charset=utf-8")
            request.body = .bytes(ByteBuffer(string: form.map { query($0.0) + "=" + query($0.1) }.joined(separator: "&")))
        } else {
            let sep = realm.contains("?") ? "&" : "?"
            request = HTTPClientRequest(url: realm + (params.isEmpty ? "" : sep + params.map { query($0.0) + "=" + query($0.1) }.joined(separator: "&")))
            if let c, !c.username.isEmpty {
                request.headers.add(name: "Authorization", value: "Basic " + Base64.encode(Array("\(c.username):\(c.password)".utf8)))
            }
        }
        let anonymous = c == nil || c!.isEmpty
        let what = anonymous ? "failed to fetch anonymous token" : "failed to fetch oauth token"
        let body: [UInt8]
        let status: UInt
        do {
            let response = try await http.execute(request, timeout: requestTimeout)
            status = response.status.code
            body = Array(buffer: try await response.body.collect(upTo: 1 << 20))
        } catch {
            throw RegistryError("\(what): \(realm): \(Self.describe(error))")
        }
        guard status == 200 else {
            let detail = String(decoding: body.prefix(300), as: UTF8.self)
            throw RegistryError("pull access denied, repository does not exist or may require authorization: \(what): unexpected status from \(realm): \(status) \(HTTPResponseStatus(statusCode: Int(status)).reasonPhrase): \(detail)",
                                denied: true)
        }
        guard let json = try? JSONParser.parse(body) else { throw RegistryError("\(what): the token server's answer is not JSON") }
        let r = JSONReader(json)
        let token = ((try? r.optString("access_token")) ?? nil) ?? ((try? r.optString("token")) ?? nil) ?? ""
        guard !token.isEmpty else { throw RegistryError("authorization server did not include a token in the response") }
        let expires = ((try? r.optDouble("expires_in")) ?? nil).flatMap { $0 > 0 ? $0 : nil } ?? 60
        return (token, expires)
    }

    // MARK: - The API

    /// The error a refusal is (containerd's words); 404 is the reference not found.
    func failure(_ r: HTTPClientResponse, _ method: HTTPMethod, _ url: String, what: String) async -> RegistryError {
        let code = r.status.code
        var detail = ""
        if method != .HEAD, let body = try? await r.body.collect(upTo: 64 << 10) {
            // The distribution spec's errors: {"errors":[{"code":...,"message":...}]}
            if let json = try? JSONParser.parse(Array(buffer: body)), case .object(let o) = json, case .array(let errs)? = o["errors"] {
                detail = errs.compactMap { e -> String? in
                    guard case .object(let x) = e else { return nil }
                    let c = x["code"].flatMap { if case .string(let s) = $0 { return s.lowercased() } else { return nil } } ?? ""
                    let m = x["message"].flatMap { if case .string(let s) = $0 { return s } else { return nil } } ?? ""
                    return c.isEmpty ? m : c + ": " + m
                }.joined(separator: "; ")
            }
        }
        switch code {
        case 401:
            return RegistryError("pull access denied, repository does not exist or may require authorization: server message: \(detail.isEmpty ? "unauthorized" : detail): authorization failed", denied: true)
        case 403:
            return RegistryError("unexpected status from \(method.rawValue) request to \(url): 403 Forbidden" + (detail.isEmpty ? "" : ": " + detail), denied: true)
        case 404:
            return RegistryError("\(what): not found", notFound: true)
        default:
            return RegistryError("unexpected status from \(method.rawValue) request to \(url): \(code) \(r.status.reasonPhrase)" + (detail.isEmpty ? "" : ": " + detail))
        }
    }

    /// GET of a manifest (by tag or digest) with containerd's Accept list: its bytes and the
    /// descriptor they make (media type from the answer or the document, sha256 of the bytes).
    public func manifest(_ reference: String, mediaType: String? = nil, what: String) async throws(RegistryError) -> (Descriptor, [UInt8]) {
        let url = url("manifests/" + reference)
        let accept = mediaType.map { $0 + ", */*" } ?? Self.manifestAccept
        let r = try await send(.GET, url, headers: [("Accept", accept)], what: what)
        guard r.status.code == 200 else { throw await failure(r, .GET, url, what: what) }
        let body: [UInt8]
        do {
            body = Array(buffer: try await r.body.collect(upTo: 4 * 1048 * 1048))
        } catch {
            throw RegistryError("\(what): reading the manifest from \(url): \(Self.describe(error))")
        }
        var type = r.headers["Content-Type"].first?.split(separator: ";").first.map { $0.trimmedSpaces() } ?? ""
        if let json = try? JSONParser.parse(body), case .object(let o) = json, case .string(let mt)? = o["mediaType"] { type = mt }
        if type == "application/vnd.docker.distribution.manifest.v1+json" || type == "application/vnd.docker.distribution.manifest.v1+prettyjws"
            || type == "text/plain" || type.isEmpty && body.starts(with: Array("{\n   \"schemaVersion\": 1".utf8))
        {
            throw RegistryError("\(what): media type \"\(type)\" (Docker schema 1) is no longer supported, please rebuild the image as \"\(MediaType.dockerManifest)\" or \"\(MediaType.ociManifest)\"")
        }
        if type.isEmpty, let json = try? JSONParser.parse(body), case .object(let o) = json {
            type = o["manifests"] != nil ? MediaType.ociIndex : MediaType.ociManifest
        }
        return (Descriptor(mediaType: type, digest: Digest.of(body), size: Int64(body.count)), body)
    }

    /// HEAD of a manifest (containerd resolves a tag so first): its descriptor when the
    /// registry says its digest and size, nil when it does not or refuses HEAD.
    public func head(_ reference: String, what: String) async throws(RegistryError) -> Descriptor? {
        let url = url("manifests/" + reference)
        let r = try await send(.HEAD, url, headers: [("Accept", Self.manifestAccept)], what: what)
        try await drain(r)
        if r.status.code == 404 { throw RegistryError("\(what): not found", notFound: true) }
        guard r.status.code == 200, let d = r.headers["Docker-Content-Digest"].first.flatMap({ Digest($0) }),
              let size = r.headers["Content-Length"].first.flatMap({ Int64($0) }),
              let type = r.headers["Content-Type"].first?.split(separator: ";").first.map({ $0.trimmedSpaces() }), !type.isEmpty
        else { return nil }
        return Descriptor(mediaType: type, digest: d, size: size)
    }

    /// A small blob (an image config) into memory, checked against its descriptor.
    public func smallBlob(_ d: Descriptor, what: String) async throws(RegistryError) -> [UInt8] {
        let url = url("blobs/" + d.digest.description)
        var attempt = 0
        while true {
            attempt += 1
            let r = try await send(.GET, url, headers: [("Accept", d.mediaType + ", */*")], what: what)
            guard r.status.code == 200 else { throw await failure(r, .GET, url, what: what) }
            let body: [UInt8]
            do {
                body = Array(buffer: try await r.body.collect(upTo: Int(min(d.size, 16 << 20)) + 1))
            } catch {
                // Cut off: fetched again (it is small).
                if attempt <= retries { continue }
                throw RegistryError("\(what): reading \(url): \(Self.describe(error))")
            }
            guard Int64(body.count) == d.size else {
                throw RegistryError("blob \(d.digest): got \(body.count) bytes, its descriptor says \(d.size)")
            }
            let actual = Digest.of(body)
            guard actual == d.digest else {
                throw RegistryError("blob \(d.digest) has digest \(actual): it was corrupted on the way; nothing was kept")
            }
            return body
        }
    }

    /// A layer into the store as it arrives, resumed with `Range` from what an earlier try
    /// wrote (a 200 instead of a 206 starts over); committed (size and digest checked) when
    /// complete. `progress` gets the bytes written so far.
    public func blob(_ d: Descriptor, into writer: BlobWriter, progress: @Sendable (Int64) -> Void) async throws(RegistryError) {
        let url = url("blobs/" + d.digest.description)
        var attempt = 0
        while true {
            attempt += 1
            var headers = [("Accept", d.mediaType + ", */*")]
            if writer.offset > 0 { headers.append(("Range", "bytes=\(writer.offset)-")) }
            let r = try await send(.GET, url, headers: headers, what: "blob \(d.digest)")
            switch r.status.code {
            case 206:
                let range = r.headers["Content-Range"].first ?? ""
                guard range.hasPrefix("bytes \(writer.offset)-") else {
                    throw RegistryError("blob \(d.digest): unhandled content range in response: \(range)")
                }
            case 200:
                if writer.offset > 0 { writer.restart() }
            default:
                throw await failure(r, .GET, url, what: "blob \(d.digest)")
            }
            do {
                for try await chunk in r.body {
                    try chunk.withUnsafeReadableBytes { (raw) throws(ImageError) in try writer.append(raw) }
                    progress(writer.offset)
                }
            } catch let e as ImageError {
                throw RegistryError(e.message)
            } catch {
                // Cut off: resume from what arrived (containerd retries 3 times without progress).
                if attempt <= retries + 2 {
                    try await pause(1, retryAfter: nil)
                    continue
                }
                throw RegistryError("blob \(d.digest): \(Self.describe(error)) after \(writer.offset) of \(d.size) bytes")
            }
            if writer.offset < d.size {
                if attempt <= retries + 2 { continue }
                throw RegistryError("blob \(d.digest): the registry sent \(writer.offset) of \(d.size) bytes")
            }
            do {
                try writer.commit()
            } catch {
                throw RegistryError(error.message)
            }
            return
        }
    }
}

extension StringProtocol {
    fileprivate func trimmedSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return String(s)
    }
}

extension String {
    fileprivate func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
