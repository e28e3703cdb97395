import CZlib

#if canImport(Glibc)
import Glibc
#endif

// SPDY/3.1 (cri-semantics.md §5; SPDY §2.2, §2.6): the framing kubelet's streaming protocols
// (remotecommand, port-forward) run on after the HTTP upgrade. No maintained Swift library
// speaks SPDY, so this is the one protocol layer written by hand (rule 7); zlib does the
// header compression.

/// One SPDY/3.1 frame. Header blocks are kept as decoded name/value lists; `SPDYCodec`
/// compresses and decompresses them, in order, with its connection's zlib streams.
public enum SPDYFrame: Equatable, Sendable {
    case data(stream: UInt32, fin: Bool, [UInt8])
    case synStream(stream: UInt32, associated: UInt32, flags: UInt8, headers: SPDYHeaders)
    case synReply(stream: UInt32, flags: UInt8, headers: SPDYHeaders)
    case rstStream(stream: UInt32, status: UInt32)
    case settings
    case ping(UInt32)
    case goAway(lastGood: UInt32, status: UInt32)
    case headers(stream: UInt32, flags: UInt8, headers: SPDYHeaders)
    case windowUpdate(stream: UInt32, delta: UInt32)
    /// A control frame of a type SPDY/3.1 does not define: ignored (SPDY §2.2.1).
    case unknown(type: UInt16)

    public static let flagFin: UInt8 = 0x01
    /// RST_STREAM and GOAWAY status codes used here.
    public static let protocolError: UInt32 = 1
    public static let refusedStream: UInt32 = 3
    public static let cancel: UInt32 = 5
}

/// A header block: lower-case names, each with its values (one value on the wire, NUL-joined).
public struct SPDYHeaders: Equatable, Sendable {
    public var pairs: [(String, [String])] = []

    public init(_ pairs: [(String, [String])] = []) { self.pairs = pairs }

    public subscript(name: String) -> String? {
        pairs.first { $0.0 == name }?.1.first
    }

    public static func == (a: SPDYHeaders, b: SPDYHeaders) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// The uncompressed block: a 32-bit count, then length-prefixed names and values.
    public var block: [UInt8] {
        var out: [UInt8] = []
        out.appendU32(UInt32(pairs.count))
        for (name, values) in pairs {
            let n = Array(name.lowercased().utf8)
            out.appendU32(UInt32(n.count))
            out += n
            let v = Array(values.joined(separator: "\0").utf8)
            out.appendU32(UInt32(v.count))
            out += v
        }
        return out
    }

    /// Parses an uncompressed block; it must be consumed exactly.
    public init(block b: [UInt8]) throws(SPDYError) {
        var at = 0
        func u32() throws(SPDYError) -> Int {
            guard b.count - at >= 4 else { throw SPDYError("a header block ends inside a length") }
            defer { at += 4 }
            return Int(b.u32(at))
        }
        func bytes(_ n: Int) throws(SPDYError) -> String {
            guard b.count - at >= n else { throw SPDYError("a header block ends inside a name or value") }
            defer { at += n }
            return String(decoding: b[at..<(at + n)], as: UTF8.self)
        }
        let count = try u32()
        guard count <= b.count / 8 else { throw SPDYError("a header block claims \(count) headers") }
        for _ in 0..<count {
            let name = try bytes(try u32())
            guard !name.isEmpty else { throw SPDYError("a header block has an empty name") }
            let value = try bytes(try u32())
            pairs.append((name.lowercased(), value.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)))
        }
        guard at == b.count else { throw SPDYError("a header block has \(b.count - at) bytes after its last header") }
    }
}

public struct SPDYError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Encodes and decodes the frames of one connection: the two zlib streams (one per direction,
/// SPDY §2.6.10.1) live as long as the connection, so one codec serves one connection and is
/// used in frame order.
public final class SPDYCodec {
    private let deflater: UnsafeMutableRawPointer
    private let inflater: UnsafeMutableRawPointer

    public init() {
        deflater = czlib_new(0, SPDYDictionary.bytes, SPDYDictionary.count)!
        inflater = czlib_new(1, SPDYDictionary.bytes, SPDYDictionary.count)!
    }

    deinit {
        czlib_free(deflater)
        czlib_free(inflater)
    }

    private static func run(_ z: UnsafeMutableRawPointer, _ input: [UInt8]) -> [UInt8]? {
        var out: UnsafeMutablePointer<UInt8>? = nil
        var n = 0
        let rc = input.withUnsafeBufferPointer { czlib_run(z, $0.baseAddress, $0.count, &out, &n) }
        guard rc == 0 else { return nil }
        defer { free(out) }
        return out.map { Array(UnsafeBufferPointer(start: $0, count: n)) } ?? []
    }

    public func compress(_ h: SPDYHeaders) -> [UInt8] { Self.run(deflater, h.block) ?? [] }

    public func decompress(_ bytes: [UInt8]) throws(SPDYError) -> SPDYHeaders {
        guard let plain = Self.run(inflater, bytes) else { throw SPDYError("a header block is not valid zlib with SPDY's dictionary") }
        return try SPDYHeaders(block: plain)
    }

    /// The frame on the wire.
    public func encode(_ f: SPDYFrame) -> [UInt8] {
        func control(_ type: UInt16, _ flags: UInt8, _ body: [UInt8]) -> [UInt8] {
            var out: [UInt8] = [0x80, 3, UInt8(type >> 8), UInt8(type & 0xff), flags]
            out.appendU24(UInt32(body.count))
            return out + body
        }
        var b: [UInt8] = []
        switch f {
        case .data(let id, let fin, let data):
            b.appendU32(id & 0x7fff_ffff)
            b.append(fin ? SPDYFrame.flagFin : 0)
            b.appendU24(UInt32(data.count))
            return b + data
        case .synStream(let id, let assoc, let flags, let h):
            b.appendU32(id & 0x7fff_ffff)
            b.appendU32(assoc & 0x7fff_ffff)
            b += [0, 0]
            return control(1, flags, b + compress(h))
        case .synReply(let id, let flags, let h):
            b.appendU32(id & 0x7fff_ffff)
            return control(2, flags, b + compress(h))
        case .rstStream(let id, let status):
            b.appendU32(id & 0x7fff_ffff)
            b.appendU32(status)
            return control(3, 0, b)
        case .settings:
            b.appendU32(0)
            return control(4, 0, b)
        case .ping(let id):
            b.appendU32(id)
            return control(6, 0, b)
        case .goAway(let last, let status):
            b.appendU32(last & 0x7fff_ffff)
            b.appendU32(status)
            return control(7, 0, b)
        case .headers(let id, let flags, let h):
            b.appendU32(id & 0x7fff_ffff)
            return control(8, flags, b + compress(h))
        case .windowUpdate(let id, let delta):
            b.appendU32(id & 0x7fff_ffff)
            b.appendU32(delta & 0x7fff_ffff)
            return control(9, 0, b)
        case .unknown(let type):
            return control(type, 0, [])
        }
    }

    /// The first complete frame in `buf` from `at` (which moves past it), or nil when the frame
    /// is not all there yet.
    public func decode(_ buf: [UInt8], at: inout Int) throws(SPDYError) -> SPDYFrame? {
        guard buf.count - at >= 8 else { return nil }
        let flags = buf[at + 4]
        let length = Int(buf[at + 5]) << 16 | Int(buf[at + 6]) << 8 | Int(buf[at + 7])
        guard buf.count - at - 8 >= length else { return nil }
        let body = Array(buf[(at + 8)..<(at + 8 + length)])
        let first = buf.u32(at)
        at += 8 + length
        if first & 0x8000_0000 == 0 {
            return .data(stream: first, fin: flags & SPDYFrame.flagFin != 0, body)
        }
        let version = (first >> 16) & 0x7fff
        guard version == 3 else { throw SPDYError("SPDY version \(version), not 3") }
        let type = UInt16(first & 0xffff)
        func need(_ n: Int) throws(SPDYError) {
            guard body.count >= n else { throw SPDYError("a control frame of type \(type) is \(body.count) bytes, too short") }
        }
        switch type {
        case 1:
            try need(10)
            return .synStream(stream: body.u32(0) & 0x7fff_ffff, associated: body.u32(4) & 0x7fff_ffff, flags: flags,
                              headers: try decompress(Array(body[10...])))
        case 2:
            try need(4)
            return .synReply(stream: body.u32(0) & 0x7fff_ffff, flags: flags, headers: try decompress(Array(body[4...])))
        case 3:
            try need(8)
            return .rstStream(stream: body.u32(0) & 0x7fff_ffff, status: body.u32(4))
        case 4:
            return .settings
        case 6:
            try need(4)
            return .ping(body.u32(0))
        case 7:
            try need(4)
            return .goAway(lastGood: body.u32(0) & 0x7fff_ffff, status: body.count >= 8 ? body.u32(4) : 0)
        case 8:
            try need(4)
            return .headers(stream: body.u32(0) & 0x7fff_ffff, flags: flags, headers: try decompress(Array(body[4...])))
        case 9:
            try need(8)
            return .windowUpdate(stream: body.u32(0) & 0x7fff_ffff, delta: body.u32(4) & 0x7fff_ffff)
        default:
            return .unknown(type: type)
        }
    }
}

extension [UInt8] {
    mutating func appendU32(_ v: UInt32) {
        append(contentsOf: [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)])
    }

    mutating func appendU24(_ v: UInt32) {
        append(contentsOf: [UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)])
    }

    func u32(_ at: Int) -> UInt32 {
        UInt32(self[at]) << 24 | UInt32(self[at + 1]) << 16 | UInt32(self[at + 2]) << 8 | UInt32(self[at + 3])
    }
}

/// SPDY/3's header compression dictionary (SPDY §2.6.10.1): 65 length-prefixed header words,
/// then a run of status codes, reason phrases, dates and media types; 1423 bytes in all.
enum SPDYDictionary {
    static let words = [
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
        "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
        "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
        "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
        "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
        "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
        "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
        "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
        "keep-alive", "origin",
    ]
    static let tail =
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        + "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
        + "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
        + "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
        + "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        + "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."

    /// The dictionary's bytes, allocated once and never freed: zlib reads them for as long as
    /// a stream lives.
    nonisolated(unsafe) static let bytes: UnsafeMutablePointer<UInt8> = {
        var all: [UInt8] = []
        for w in words {
            all.appendU32(UInt32(w.utf8.count))
            all += Array(w.utf8)
        }
        all += Array(tail.utf8)
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: all.count)
        p.initialize(from: all, count: all.count)
        return p
    }()

    static let count = words.reduce(0) { $0 + 4 + $1.utf8.count } + tail.utf8.count
}
