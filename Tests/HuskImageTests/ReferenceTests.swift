import HuskImage
import Testing

/// One expected normalization of a written reference.
struct NormalizedCase: Sendable, CustomTestStringConvertible {
    var written: String
    var description: String
    var domain: String
    var path: String
    var tag: String?
    var digestHex: String?
    var familiar: String

    var testDescription: String { written }
}

@Suite("ImageReference normalization")
struct ReferenceTests {
    static let valid: [NormalizedCase] = [
        .init(written: "busybox", description: "docker.io/library/busybox:latest", domain: "docker.io",
              path: "library/busybox", tag: "latest", familiar: "busybox:latest"),
        .init(written: "busybox:1.36", description: "docker.io/library/busybox:1.36", domain: "docker.io",
              path: "library/busybox", tag: "1.36", familiar: "busybox:1.36"),
        .init(written: "library/busybox", description: "docker.io/library/busybox:latest", domain: "docker.io",
              path: "library/busybox", tag: "latest", familiar: "busybox:latest"),
        .init(written: "docker.io/busybox", description: "docker.io/library/busybox:latest", domain: "docker.io",
              path: "library/busybox", tag: "latest", familiar: "busybox:latest"),
        .init(written: "docker.io/library/busybox:1.36", description: "docker.io/library/busybox:1.36",
              domain: "docker.io", path: "library/busybox", tag: "1.36", familiar: "busybox:1.36"),
        .init(written: "myorg/app:v2", description: "docker.io/myorg/app:v2", domain: "docker.io",
              path: "myorg/app", tag: "v2", familiar: "myorg/app:v2"),
        .init(written: "quay.io/foo/bar", description: "quay.io/foo/bar:latest", domain: "quay.io",
              path: "foo/bar", tag: "latest", familiar: "quay.io/foo/bar:latest"),
        .init(written: "localhost/app", description: "localhost/app:latest", domain: "localhost",
              path: "app", tag: "latest", familiar: "localhost/app:latest"),
        .init(written: "localhost:5000/app:1", description: "localhost:5000/app:1", domain: "localhost:5000",
              path: "app", tag: "1", familiar: "localhost:5000/app:1"),
        .init(written: "registry:5000/app", description: "registry:5000/app:latest", domain: "registry:5000",
              path: "app", tag: "latest", familiar: "registry:5000/app:latest"),
        // An uppercase first component is a domain (docker/distribution's splitDockerDomain).
        .init(written: "Foo/bar", description: "Foo/bar:latest", domain: "Foo", path: "bar", tag: "latest",
              familiar: "Foo/bar:latest"),
        .init(written: "ghcr.io/my-org/sub/my__app.v2:1.0_rc-2", description: "ghcr.io/my-org/sub/my__app.v2:1.0_rc-2",
              domain: "ghcr.io", path: "my-org/sub/my__app.v2", tag: "1.0_rc-2",
              familiar: "ghcr.io/my-org/sub/my__app.v2:1.0_rc-2"),
        .init(written: "a---b:UPPER_ok", description: "docker.io/library/a---b:UPPER_ok", domain: "docker.io",
              path: "library/a---b", tag: "UPPER_ok", familiar: "a---b:UPPER_ok"),
        .init(written: "name@sha256:\(emptySHA)", description: "docker.io/library/name@sha256:\(emptySHA)",
              domain: "docker.io", path: "library/name", tag: nil, digestHex: emptySHA,
              familiar: "name@sha256:\(emptySHA)"),
        .init(written: "name:tag@sha256:\(emptySHA)", description: "docker.io/library/name:tag@sha256:\(emptySHA)",
              domain: "docker.io", path: "library/name", tag: "tag", digestHex: emptySHA,
              familiar: "name:tag@sha256:\(emptySHA)"),
        .init(written: "localhost:5000/app@sha256:\(emptySHA)", description: "localhost:5000/app@sha256:\(emptySHA)",
              domain: "localhost:5000", path: "app", tag: nil, digestHex: emptySHA,
              familiar: "localhost:5000/app@sha256:\(emptySHA)"),
    ]

    @Test("valid references normalize as docker/distribution does", arguments: valid)
    func normalizes(_ c: NormalizedCase) throws {
        let ref = try ImageReference(parsing: c.written)
        #expect(ref.description == c.description)
        #expect(ref.domain == c.domain)
        #expect(ref.path == c.path)
        #expect(ref.tag == c.tag)
        #expect(ref.digest?.hex == c.digestHex)
        #expect(ref.repository == c.domain + "/" + c.path)
        #expect(ref.familiar == c.familiar)
        #expect(ref.tagged == c.tag.map { c.domain + "/" + c.path + ":" + $0 })
    }

    @Test("a normalized reference parses back to itself", arguments: valid)
    func roundTrips(_ c: NormalizedCase) throws {
        let ref = try ImageReference(parsing: c.written)
        #expect(try ImageReference(parsing: ref.description) == ref)
    }

    @Test("a digest-only reference has no tag and no tagged form")
    func digestOnly() throws {
        let ref = try ImageReference(parsing: "busybox@sha256:\(emptySHA)")
        #expect(ref.tag == nil)
        #expect(ref.tagged == nil)
        #expect(ref.digest == Digest("sha256:\(emptySHA)"))
        #expect(ref.description == "docker.io/library/busybox@sha256:\(emptySHA)")
    }

    @Test("a tag of exactly 128 characters is accepted")
    func longestTag() throws {
        let tag = String(repeating: "t", count: 128)
        let ref = try ImageReference(parsing: "busybox:" + tag)
        #expect(ref.tag == tag)
    }

    static let invalid: [(String, String)] = [
        ("", "empty"),
        ("Bad/Name", "\"Name\""),
        ("UPPER", "UPPER"),
        ("name:", "tag \"\""),
        ("name:-bad", "\"-bad\""),
        ("name:.bad", "\".bad\""),
        ("name:bad!", "\"bad!\""),
        ("name:" + String(repeating: "a", count: 129), "\"" + String(repeating: "a", count: 129) + "\""),
        ("name@sha256:abc", "sha256:abc"),
        ("name@sha256:" + emptySHA.uppercased(), emptySHA.uppercased()),
        ("name@md5:d41d8cd98f00b204e9800998ecf8427e", "md5:d41d8cd98f00b204e9800998ecf8427e"),
        ("a//b", "component \"\""),
        ("a__-b", "a__-b"),
        ("a___b", "a___b"),
        ("-a", "\"-a\""),
        ("a-", "\"a-\""),
        ("a..b", "a..b"),
        ("org/b_", "\"b_\""),
        ("org/", "component \"\""),
        ("bad_host:5000/app", "bad_host:5000"),
        ("host:abc/app", "host:abc"),
        ("-bad.example/app", "-bad.example"),
        (String(repeating: "a", count: 256), "255"),
    ]

    @Test("invalid references fail with InvalidImageName naming the offending part", arguments: invalid)
    func rejects(_ written: String, _ fragment: String) throws {
        let error = try #require(parseError(written), "\"\(written)\" was accepted")
        #expect(error.reason == .invalidImageName)
        #expect(error.message.contains(fragment), "message: \(error.message)")
        // Kubelet's wording: Failed to apply default image tag "<image>": ...
        #expect(error.message.hasPrefix("Failed to apply default image tag \"\(written)\""))
    }

    @Test("a 255-character name is within the limit")
    func longestName() throws {
        let name = "quay.io/" + String(repeating: "a", count: 247)  // already normalized: 255 in all
        let ref = try ImageReference(parsing: name)
        #expect(ref.repository == name)
        #expect(ref.tag == "latest")
    }

    // The three rules below are docker/distribution's ParseNormalizedNamed behaviour.

    @Test("the legacy domain index.docker.io normalizes to docker.io", arguments: [
        ("index.docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/myorg/app:v2", "docker.io/myorg/app:v2"),
    ])
    func legacyDomain(_ written: String, _ expected: String) throws {
        let ref = try ImageReference(parsing: written)
        #expect(ref.description == expected)
    }

    @Test("a bare 64-hex name is rejected (it would be mistaken for an image id)")
    func hexIdentifierName() throws {
        let error = try #require(parseError(emptySHA), "a 64-hex name was accepted")
        #expect(error.reason == .invalidImageName)
    }

    @Test("the 255-character limit applies to the normalized name (docker.io/library/ included)")
    func normalizedLengthLimit() throws {
        // 240 characters written; 258 once normalized to docker.io/library/<name>.
        let error = try #require(parseError(String(repeating: "a", count: 240)), "an over-long normalized name was accepted")
        #expect(error.reason == .invalidImageName)
    }

    private func parseError(_ text: String) -> ImageError? {
        do {
            _ = try ImageReference(parsing: text)
            return nil
        } catch {
            return error
        }
    }
}
