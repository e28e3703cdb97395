/// An image reference, normalized as Kubernetes and containerd do (docker/distribution's
/// grammar): `busybox` is `docker.io/library/busybox:latest`.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    public let domain: String
    /// The repository path under the domain ("library/busybox").
    public let path: String
    public let tag: String?
    public let digest: Digest?

    /// `docker.io/library/busybox`
    public var repository: String { domain + "/" + path }

    /// The full normalized form: `docker.io/library/busybox:latest`, `repo@sha256:...`,
    /// `repo:tag@sha256:...`.
    public var description: String {
        var s = repository
        if let tag { s += ":" + tag }
        if let digest { s += "@" + digest.description }
        return s
    }

    /// `repo:tag`, the form image records list as repo tags.
    public var tagged: String? { tag.map { repository + ":" + $0 } }

    /// The shortest form people write: `busybox:1.36` for docker.io/library, else the full name.
    public var familiar: String {
        var name = repository
        if domain == "docker.io" {
            name = path.hasPrefix("library/") ? String(path.dropFirst(8)) : path
        }
        if let tag { name += ":" + tag }
        if let digest { name += "@" + digest.description }
        return name
    }

    public static let defaultDomain = "docker.io"
    public static let defaultTag = "latest"

    /// Parses and normalizes. A reference with neither tag nor digest gets `:latest`.
    public init(parsing text: String) throws(ImageError) {
        func bad(_ why: String) -> ImageError {
            ImageError(reason: .invalidImageName, message: "Failed to apply default image tag \"\(text)\": couldn't parse image reference \"\(text)\": \(why)")
        }
        if text.isEmpty { throw bad("the reference is empty") }
        var rest = Substring(text)
        var digest: Digest? = nil
        if let at = rest.firstIndex(of: "@") {
            let d = String(rest[rest.index(after: at)...])
            guard let parsed = Digest(d) else {
                if d.hasPrefix("sha256:") { throw bad("the digest \"\(d)\" must be sha256: followed by 64 lowercase hex digits") }
                throw bad("the digest \"\(d)\" is not supported (only sha256)")
            }
            digest = parsed
            rest = rest[..<at]
        }
        // The tag is after the last ':' that comes after the last '/' (a ':' before it is a port).
        var tag: String? = nil
        let lastSlash = rest.lastIndex(of: "/")
        if let colon = rest.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            let t = String(rest[rest.index(after: colon)...])
            guard Self.isValidTag(t) else {
                throw bad("the tag \"\(t)\" is invalid (letters, digits, _ . -, at most 128, not starting with . or -)")
            }
            tag = t
            rest = rest[..<colon]
        }
        let name = String(rest)
        if name.isEmpty { throw bad("the repository name is empty") }
        // distribution: a bare 64-hex name would be taken for an image ID.
        if name.count == 64, name.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) {
            throw bad("a 64-character hexadecimal name is an image ID, not a repository")
        }

        var domain = Self.defaultDomain
        var path = name
        if let slash = name.firstIndex(of: "/") {
            let first = name[..<slash]
            if first.contains(".") || first.contains(":") || first == "localhost" || first != first.lowercased() {
                domain = String(first)
                path = String(name[name.index(after: slash)...])
            }
        }
        if domain == "index.docker.io" { domain = Self.defaultDomain }  // the legacy name of Docker Hub
        if domain == Self.defaultDomain && !path.contains("/") { path = "library/" + path }
        if domain.count + 1 + path.count > 255 {
            throw bad("the repository name \(domain)/\(path) is longer than 255 characters")
        }
        guard Self.isValidDomain(domain) else { throw bad("the registry \"\(domain)\" is not a valid host[:port]") }
        if path != path.lowercased() { throw bad("the repository name \"\(path)\" must be lowercase") }
        for comp in path.split(separator: "/", omittingEmptySubsequences: false) {
            guard Self.isValidPathComponent(comp) else {
                throw bad("the path component \"\(comp)\" is invalid (lowercase letters and digits, separated by . _ __ or -)")
            }
        }
        self.domain = domain
        self.path = path
        self.digest = digest
        self.tag = tag ?? (digest == nil ? Self.defaultTag : nil)
    }

    static func isValidTag(_ t: String) -> Bool {
        guard let first = t.unicodeScalars.first, t.unicodeScalars.count <= 128 else { return false }
        func word(_ c: Unicode.Scalar) -> Bool { c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_") }
        guard word(first) else { return false }
        return t.unicodeScalars.allSatisfy { word($0) || $0 == "." || $0 == "-" }
    }

    static func isValidPathComponent(_ c: Substring) -> Bool {
        // alpha-numeric (separator alpha-numeric)*, separator := [_.] | __ | [-]*
        let s = Array(c.utf8)
        guard !s.isEmpty else { return false }
        func an(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard an(s[0]), an(s[s.count - 1]) else { return false }
        var i = 0
        while i < s.count {
            if an(s[i]) {
                i += 1
                continue
            }
            var j = i
            while j < s.count && !an(s[j]) { j += 1 }
            let sep = s[i..<j]
            let ok = sep.elementsEqual([46]) || sep.elementsEqual([95]) || sep.elementsEqual([95, 95]) || sep.allSatisfy { $0 == 45 }
            if !ok { return false }
            i = j
        }
        return true
    }

    static func isValidDomain(_ d: String) -> Bool {
        var host = Substring(d)
        if let colon = d.lastIndex(of: ":"), !d.hasPrefix("[") || d[d.index(before: colon)] == "]" {
            let port = d[d.index(after: colon)...]
            guard !port.isEmpty, port.allSatisfy(\.isNumber) else { return false }
            host = d[..<colon]
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { return host.count > 2 }
        return !host.isEmpty && host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { comp in
            !comp.isEmpty && comp.first != "-" && comp.last != "-"
                && comp.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }
        }
    }
}
