import CArchive
import HuskSystem
import SystemPackage

/// A content address: `sha256:<64 lowercase hex>`.
public struct Digest: Hashable, Codable, Sendable, CustomStringConvertible, Comparable {
    public let hex: String

    public var description: String { "sha256:" + hex }
    public var algorithm: String { "sha256" }
    /// The first 12 hex digits, as `crictl images` shows ids.
    public var short: String { String(hex.prefix(12)) }

    /// Parses `sha256:<hex>`; nil when it is not one.
    public init?(_ text: String) {
        guard text.hasPrefix("sha256:") else { return nil }
        let hex = text.dropFirst(7)
        guard hex.count == 64, hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            return nil
        }
        self.hex = String(hex)
    }

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32)
        var s = ""
        s.reserveCapacity(64)
        for b in bytes {
            let digits = Array("0123456789abcdef".utf8)
            s.unicodeScalars.append(Unicode.Scalar(digits[Int(b >> 4)]))
            s.unicodeScalars.append(Unicode.Scalar(digits[Int(b & 15)]))
        }
        hex = s
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let d = Digest(s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "\"\(s)\" is not a sha256 digest")
        }
        self = d
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public static func < (a: Digest, b: Digest) -> Bool { a.hex < b.hex }

    /// The SHA-256 of bytes in memory.
    public static func of(_ bytes: some Collection<UInt8>) -> Digest {
        let array = Array(bytes)
        let ctx = carchive_sha256_new()!
        array.withUnsafeBytes { if let p = $0.baseAddress { carchive_sha256_update(ctx, p, $0.count) } }
        var out = [UInt8](repeating: 0, count: 32)
        carchive_sha256_final(ctx, &out)
        return Digest(bytes: out)
    }

    /// The SHA-256 of a byte range of a file.
    public static func of(fd: FD, offset: UInt64 = 0, length: UInt64) throws(SystemCallError) -> Digest {
        var out = [UInt8](repeating: 0, count: 32)
        try syscall("read") { carchive_sha256_fd(fd.raw, offset, length, &out) }
        return Digest(bytes: out)
    }
}
