import Foundation
import HuskImage
import Testing

@Suite("Pull policy defaults and parsing")
struct PullPolicyTests {
    @Test("the default policy follows the tag, written or implied (pod-semantics §7, checklist 13)", arguments: [
        ("busybox", PullPolicy.always),
        ("busybox:latest", .always),
        ("x:latest", .always),
        ("x:latest@sha256:\(emptySHA)", .always),
        ("docker.io/library/busybox", .always),
        ("localhost:5000/app", .always),  // the port's ':' is not a tag
        ("localhost:5000/app:latest", .always),
        ("x:1.0", .ifNotPresent),
        ("busybox:1.36", .ifNotPresent),
        ("x:Latest", .ifNotPresent),
        ("x@sha256:\(emptySHA)", .ifNotPresent),
        ("localhost:5000/app@sha256:\(emptySHA)", .ifNotPresent),
        ("localhost:5000/app:2@sha256:\(emptySHA)", .ifNotPresent),
        // Unparseable: IfNotPresent, the failure comes later as InvalidImageName.
        ("Bad/Name", .ifNotPresent),
        ("", .ifNotPresent),
    ])
    func defaults(_ image: String, _ expected: PullPolicy) {
        #expect(PullPolicy.defaultFor(image) == expected)
    }

    @Test("the three policies parse as written in a manifest", arguments: [
        ("Always", PullPolicy.always), ("IfNotPresent", .ifNotPresent), ("Never", .never),
    ])
    func parses(_ text: String, _ expected: PullPolicy) throws {
        #expect(try PullPolicy(parsing: text) == expected)
    }

    @Test("anything else is rejected, naming what was written", arguments: [
        "always", "Sometimes", "", "NEVER", "IfNotPresent ", "ifnotpresent",
    ])
    func rejects(_ text: String) {
        do {
            let p = try PullPolicy(parsing: text)
            Issue.record("\"\(text)\" parsed as \(p)")
        } catch {
            #expect(error.reason == .invalidImageName)
            #expect(error.message.contains("\"\(text)\""), "message: \(error.message)")
        }
    }
}

@Suite("Digest")
struct DigestTests {
    @Test("a well-formed sha256 digest parses")
    func parsesValid() throws {
        let d = try #require(Digest("sha256:\(emptySHA)"))
        #expect(d.hex == emptySHA)
        #expect(d.algorithm == "sha256")
        #expect(d.description == "sha256:\(emptySHA)")
        #expect(d.short == "e3b0c44298fc")
    }

    @Test("malformed digests do not parse", arguments: [
        "sha256:" + emptySHA.uppercased(),  // uppercase hex
        "sha256:" + String(emptySHA.dropLast()),  // 63 digits
        "sha256:" + emptySHA + "0",  // 65 digits
        emptySHA,  // no algorithm prefix
        "SHA256:" + emptySHA,
        "sha512:" + emptySHA,
        "sha256:" + String(emptySHA.dropLast()) + "g",  // not hex
        "sha256:",
        "sha256:" + emptySHA + "\n",
        "",
    ])
    func rejectsInvalid(_ text: String) {
        #expect(Digest(text) == nil)
    }

    @Test("Digest.of matches known SHA-256 vectors", arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("The quick brown fox jumps over the lazy dog",
         "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"),
    ])
    func knownVectors(_ input: String, _ hex: String) {
        let d = Digest.of(Array(input.utf8))
        #expect(d.hex == hex)
        #expect(d.short == String(hex.prefix(12)))
    }

    @Test("Digest.of over a million 'a's (multi-block input)")
    func millionA() {
        let d = Digest.of([UInt8](repeating: 0x61, count: 1_000_000))
        #expect(d.hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("Digest(bytes:) renders lowercase hex in order")
    func fromBytes() {
        let d = Digest(bytes: (0..<32).map { UInt8($0 * 8) })
        #expect(d.hex == "0008101820283038404850586068707880889098a0a8b0b8c0c8d0d8e0e8f0f8")
        #expect(Digest(d.description) == d)
    }

    @Test("digests order by their hex")
    func ordering() throws {
        let a = try #require(Digest("sha256:" + String(repeating: "0", count: 64)))
        let b = try #require(Digest("sha256:" + String(repeating: "f", count: 64)))
        #expect(a < b)
        #expect(!(b < a))
        #expect([b, a].sorted() == [a, b])
    }

    @Test("JSON encodes a digest as its string and decodes it back")
    func codableRoundTrip() throws {
        let d = try #require(Digest("sha256:\(emptySHA)"))
        let data = try JSONEncoder().encode([d])
        #expect(String(decoding: data, as: UTF8.self) == "[\"sha256:\(emptySHA)\"]")
        #expect(try JSONDecoder().decode([Digest].self, from: data) == [d])
    }

    @Test("decoding a malformed digest string throws", arguments: [
        "[\"sha256:abc\"]", "[\"\(emptySHA)\"]", "[\"sha256:\(emptySHA.uppercased())\"]", "[42]",
    ])
    func decodingInvalidThrows(_ json: String) {
        #expect(throws: DecodingError.self) {
            _ = try JSONDecoder().decode([Digest].self, from: Data(json.utf8))
        }
    }
}
