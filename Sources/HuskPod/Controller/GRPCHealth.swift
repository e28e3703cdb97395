import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// kubelet's grpc probe (pkg/probe/grpc): `grpc.health.v1.Health/Check` over plaintext HTTP/2
/// (h2c with prior knowledge, as grpc-go's insecure credentials), with kubelet's results and
/// texts:
///  - SERVING: success;
///  - another status: `service unhealthy (responded with "NOT_SERVING")`;
///  - an RPC error: `error: health rpc probe failed: rpc error: code = NotFound desc = ...`
///    (Unimplemented: `error: this server does not implement the grpc health protocol
///    (grpc.health.v1.Health): ...`; past the deadline: `timeout: health rpc did not complete
///    within 1s`);
///  - no connection before the timeout (grpc-go retries while it blocks on the dial):
///    `timeout: failed to connect service "10.0.0.5:9000" within 1s: context deadline exceeded`.
enum GRPCHealth {
    static func check(host: String, port: Int, service: String, timeout: Double, userAgent: String, netns: FD?) -> (Bool, String) {
        let deadline = Clock.monotonicSeconds() + timeout
        let within = goDuration(timeout)
        let addr = "\(host):\(port)"
        let r = PodNetwork.run(in: netns, deadline: deadline + 0.5) { () -> (Bool, String) in
            var fd: CInt = -1
            while fd < 0 {
                if case .success(let f) = PodNetwork.dial(host: host, port: port, deadline: deadline) { fd = f; break }
                if Clock.monotonicSeconds() + 0.1 >= deadline {
                    return (false, "timeout: failed to connect service \"\(addr)\" within \(within): context deadline exceeded")
                }
                usleep(100_000)
            }
            defer { close(fd) }
            return call(fd, authority: addr, service: service, userAgent: userAgent, deadline: deadline, within: within)
        }
        switch r {
        case .success(let result): return result
        case .failure: return (false, "timeout: health rpc did not complete within \(within)")
        }
    }

    static let maxMessage = 4 << 20
    static let statusNames = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]
    static let codeNames = [
        "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
        "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
        "Internal", "Unavailable", "DataLoss", "Unauthenticated",
    ]

    /// One unary call on a connected socket.
    static func call(_ fd: CInt, authority: String, service: String, userAgent: String, deadline: Double, within: String) -> (Bool, String) {
        // The request: preface, SETTINGS, HEADERS, DATA (a 5-byte gRPC prefix and the
        // HealthCheckRequest: field 1, the service name).
        var headers: [UInt8] = [0x83, 0x86]  // :method POST, :scheme http (static table)
        headers += HPACK.literal(index: 4, "/grpc.health.v1.Health/Check")
        headers += HPACK.literal(index: 1, authority)
        headers += HPACK.literal(index: 31, "application/grpc")
        headers += HPACK.literal(name: "te", "trailers")
        headers += HPACK.literal(index: 58, userAgent)
        let timeoutMs = max(1, Int((deadline - Clock.monotonicSeconds()) * 1000))
        headers += HPACK.literal(name: "grpc-timeout", "\(timeoutMs)m")
        var message: [UInt8] = []
        if !service.isEmpty {
            message = [0x0A] + varint(UInt64(service.utf8.count)) + Array(service.utf8)
        }
        let n = UInt32(message.count)
        let body: [UInt8] = [0, UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + message
        var out = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        out += frame(type: 4, flags: 0, stream: 0, [])
        out += frame(type: 1, flags: 0x4, stream: 1, headers)
        out += frame(type: 0, flags: 0x1, stream: 1, body)
        guard send(fd, out) else { return (false, "error: health rpc probe failed: connection error: \(currentErrno.text.lowercased())") }

        var data: [UInt8] = []
        var fields: [String: String] = [:]
        var decoder = HPACK.Decoder()
        var inbuf: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        var ended = false
        while !ended {
            while inbuf.count < 9 || inbuf.count < 9 + (Int(inbuf[0]) << 16 | Int(inbuf[1]) << 8 | Int(inbuf[2])) {
                if Clock.monotonicSeconds() >= deadline { return (false, "timeout: health rpc did not complete within \(within)") }
                let got = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    return (false, "timeout: health rpc did not complete within \(within)")
                }
                if got <= 0 {
                    return (false, "error: health rpc probe failed: rpc error: code = Unavailable desc = error reading from server: EOF")
                }
                inbuf += buf[0..<got]
            }
            let len = Int(inbuf[0]) << 16 | Int(inbuf[1]) << 8 | Int(inbuf[2])
            let type = inbuf[3], flags = inbuf[4]
            let stream = (UInt32(inbuf[5] & 0x7f) << 24) | UInt32(inbuf[6]) << 16 | UInt32(inbuf[7]) << 8 | UInt32(inbuf[8])
            var payload = Array(inbuf[9..<(9 + len)])
            inbuf.removeFirst(9 + len)
            switch type {
            case 4 where flags & 1 == 0:  // SETTINGS: acknowledged
                _ = send(fd, frame(type: 4, flags: 1, stream: 0, []))
            case 6 where flags & 1 == 0:  // PING
                _ = send(fd, frame(type: 6, flags: 1, stream: 0, payload))
            case 7:  // GOAWAY
                if stream == 0 && data.isEmpty && fields["grpc-status"] == nil {
                    return (false, "error: health rpc probe failed: rpc error: code = Unavailable desc = the connection is draining")
                }
            case 0 where stream == 1:  // DATA
                if flags & 0x8 != 0, let pad = payload.first { payload = Array(payload.dropFirst().dropLast(Int(pad))) }
                data += payload
                // grpc-go's default limit on a received message (4 MiB), so that a container
                // cannot make the supervisor hold more than that.
                if data.count > maxMessage + 5 {
                    return (false, "error: health rpc probe failed: rpc error: code = ResourceExhausted desc = grpc: received message larger than max (\(data.count - 5) vs. \(maxMessage))")
                }
                if flags & 1 != 0 { ended = true }
            case 1 where stream == 1:  // HEADERS (response headers or trailers)
                if flags & 0x8 != 0, let pad = payload.first { payload = Array(payload.dropFirst().dropLast(Int(pad))) }
                if flags & 0x20 != 0 { payload = Array(payload.dropFirst(5)) }  // priority
                guard let decoded = decoder.decode(payload) else {
                    return (false, "error: health rpc probe failed: connection error: COMPRESSION_ERROR")
                }
                for (k, v) in decoded { fields[k] = v }
                if flags & 1 != 0 { ended = true }
            case 3 where stream == 1:  // RST_STREAM
                return (false, "error: health rpc probe failed: rpc error: code = Internal desc = stream terminated by RST_STREAM")
            default:
                break
            }
        }
        // grpc-go parses grpc-status as an int32 and names it as a uint32 (`Code(4294967295)`
        // for -1); a value that is no int32 is its "malformed grpc-status" Internal error.
        let code: Int
        var desc = (fields["grpc-message"] ?? "").removingPercentEncoding()
        if let text = fields["grpc-status"] {
            if let v = Int32(text) {
                code = Int(UInt32(bitPattern: v))
            } else {
                code = 13
                desc = "transport: malformed grpc-status: \(text)"
            }
        } else {
            code = fields[":status"] == "200" ? 2 : 14
        }
        if code != 0 {
            let name = code < codeNames.count ? codeNames[code] : "Code(\(code))"
            switch code {
            case 12: return (false, "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): \(desc)")
            case 4: return (false, "timeout: health rpc did not complete within \(within)")
            default: return (false, "error: health rpc probe failed: rpc error: code = \(name) desc = \(desc)")
            }
        }
        // The response: a 5-byte prefix and HealthCheckResponse (field 1, the status enum).
        var status: UInt64 = 0
        if data.count >= 5 {
            var i = 5
            while i < data.count {
                let key = data[i]
                i += 1
                guard let (v, next) = readVarint(data, i) else { break }
                i = next
                if key == 0x08 { status = v }
                if key & 7 == 2 {
                    guard v <= UInt64(data.count - i) else { break }
                    i += Int(v)
                }
            }
        }
        if status == 1 { return (true, "") }
        let name = status < UInt64(statusNames.count) ? statusNames[Int(status)] : "\(status)"
        return (false, "service unhealthy (responded with \"\(name)\")")
    }

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff), type, flags,
                UInt8((stream >> 24) & 0x7f), UInt8((stream >> 16) & 0xff), UInt8((stream >> 8) & 0xff), UInt8(stream & 0xff)] + payload
    }

    static func send(_ fd: CInt, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    static func varint(_ v: UInt64) -> [UInt8] {
        var v = v
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }

    static func readVarint(_ b: [UInt8], _ start: Int) -> (UInt64, Int)? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        var i = start
        while i < b.count && shift < 64 {
            v |= UInt64(b[i] & 0x7f) << shift
            i += 1
            if b[i - 1] & 0x80 == 0 { return (v, i) }
            shift += 7
        }
        return nil
    }
}

extension String {
    /// grpc-message is percent-encoded (gRPC over HTTP/2 spec).
    func removingPercentEncoding() -> String {
        var out: [UInt8] = []
        let b = Array(utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%"), i + 2 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 3
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// HPACK (RFC 7541): what a gRPC client needs. Requests use literals without indexing and no
/// Huffman; responses are decoded whole (static and dynamic table, Huffman strings).
enum HPACK {
    static func integer(_ v: Int, prefix: Int, first: UInt8) -> [UInt8] {
        let max = (1 << prefix) - 1
        if v < max { return [first | UInt8(v)] }
        var out: [UInt8] = [first | UInt8(max)]
        var rest = v - max
        while rest >= 128 {
            out.append(UInt8(rest & 0x7f) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
        return out
    }

    static func string(_ s: String) -> [UInt8] {
        integer(s.utf8.count, prefix: 7, first: 0) + Array(s.utf8)
    }

    /// A literal header field without indexing, its name from the static table.
    static func literal(index: Int, _ value: String) -> [UInt8] {
        integer(index, prefix: 4, first: 0) + string(value)
    }

    /// A literal header field without indexing, with a new name.
    static func literal(name: String, _ value: String) -> [UInt8] {
        [0] + string(name) + string(value)
    }

    static let staticTable: [(String, String)] = [
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
        (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
        (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
        ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
        ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
        ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""), ("date", ""),
        ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""), ("if-match", ""),
        ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""),
        ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""),
        ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""),
        ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
        ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
    ]

    /// Code lengths of RFC 7541 Appendix B, symbols 0-255 (EOS is 30 bits); the code is
    /// canonical, so the codes follow from the lengths.
    static let codeLengths: [UInt8] = [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    ]

    /// (code, length) → symbol, built once from the canonical code.
    static let decodeTable: [UInt64: UInt8] = {
        var order = (0..<256).map { (len: Int(codeLengths[$0]), sym: $0) }
        order.sort { $0.len != $1.len ? $0.len < $1.len : $0.sym < $1.sym }
        var table: [UInt64: UInt8] = [:]
        var code: UInt64 = 0
        var prevLen = order[0].len
        for (i, e) in order.enumerated() {
            if i > 0 {
                code += 1
                code <<= UInt64(e.len - prevLen)
            }
            prevLen = e.len
            table[UInt64(e.len) << 32 | code] = UInt8(e.sym)
        }
        return table
    }()

    static func huffmanDecode(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var code: UInt64 = 0
        var len = 0
        for byte in bytes {
            for bit in (0..<8).reversed() {
                code = code << 1 | UInt64((byte >> UInt8(bit)) & 1)
                len += 1
                if len >= 5, let sym = decodeTable[UInt64(len) << 32 | code] {
                    out.append(sym)
                    code = 0
                    len = 0
                }
                if len > 30 { return nil }
            }
        }
        // What is left must be padding: fewer than 8 bits, all ones.
        if len >= 8 || code != (1 << UInt64(len)) - 1 { return nil }
        return out
    }

    struct Decoder {
        var dynamic: [(String, String)] = []
        var size = 0
        var maxSize = 4096

        mutating func evict() {
            while size > maxSize, let last = dynamic.popLast() { size -= last.0.utf8.count + last.1.utf8.count + 32 }
        }

        func entry(_ index: Int) -> (String, String)? {
            if index >= 1 && index <= staticTable.count { return staticTable[index - 1] }
            let d = index - staticTable.count - 1
            return d >= 0 && d < dynamic.count ? dynamic[d] : nil
        }

        static func integer(_ b: [UInt8], _ i: inout Int, prefix: Int) -> Int? {
            guard i < b.count else { return nil }
            let max = (1 << prefix) - 1
            var v = Int(b[i]) & max
            i += 1
            if v < max { return v }
            var shift = 0
            while i < b.count {
                let byte = b[i]
                i += 1
                v += Int(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return v }
                shift += 7
                if shift > 28 { return nil }
            }
            return nil
        }

        static func string(_ b: [UInt8], _ i: inout Int) -> String? {
            guard i < b.count else { return nil }
            let huffman = b[i] & 0x80 != 0
            guard let n = integer(b, &i, prefix: 7), i + n <= b.count else { return nil }
            let raw = b[i..<(i + n)]
            i += n
            if huffman {
                guard let d = HPACK.huffmanDecode(raw) else { return nil }
                return String(decoding: d, as: UTF8.self)
            }
            return String(decoding: raw, as: UTF8.self)
        }

        mutating func decode(_ b: [UInt8]) -> [(String, String)]? {
            var out: [(String, String)] = []
            var i = 0
            while i < b.count {
                let first = b[i]
                if first & 0x80 != 0 {  // indexed
                    guard let idx = Self.integer(b, &i, prefix: 7), let e = entry(idx) else { return nil }
                    out.append(e)
                } else if first & 0xE0 == 0x20 {  // dynamic table size update
                    // Above SETTINGS_HEADER_TABLE_SIZE (the default, 4096, as we send no
                    // other) it is a decoding error (RFC 7541 §6.3).
                    guard let newMax = Self.integer(b, &i, prefix: 5), newMax <= 4096 else { return nil }
                    maxSize = newMax
                    evict()
                } else {
                    let incremental = first & 0xC0 == 0x40
                    let prefix = incremental ? 6 : 4
                    guard let idx = Self.integer(b, &i, prefix: prefix) else { return nil }
                    let name: String
                    if idx == 0 {
                        guard let n = Self.string(b, &i) else { return nil }
                        name = n
                    } else {
                        guard let e = entry(idx) else { return nil }
                        name = e.0
                    }
                    guard let value = Self.string(b, &i) else { return nil }
                    out.append((name, value))
                    if incremental {
                        dynamic.insert((name, value), at: 0)
                        size += name.utf8.count + value.utf8.count + 32
                        evict()
                    }
                }
            }
            return out
        }
    }
}
