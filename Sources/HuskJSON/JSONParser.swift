/// A small JSON parser into `JSONValue`, without Codable: the per-pod supervisor stays small
/// (Codable's JSON machinery alone adds ~3.5 MB of resident pages to a process, measured), and
/// errors can name the line. Strict RFC 8259: no comments, no trailing commas.
public struct JSONParser {
    /// Where a parse failed.
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public var message: String
        public var line: Int
        public var column: Int
        public var description: String { "line \(line), column \(column): \(message)" }
    }

    private let bytes: [UInt8]
    private var i = 0
    private var depth = 0
    /// Line of each value, by JSON path (`spec.containers[1].image`), when asked for.
    private(set) var lines: [String: Int]? = nil

    private init(_ bytes: [UInt8], recordLines: Bool) {
        self.bytes = bytes
        if recordLines { lines = [:] }
    }

    /// Parses a whole document.
    public static func parse(_ bytes: some Collection<UInt8>) throws(Error) -> JSONValue {
        var p = JSONParser(Array(bytes), recordLines: false)
        return try p.document()
    }

    /// Parses a whole document and returns, with it, the line where each value starts.
    public static func parseWithLines(_ bytes: some Collection<UInt8>) throws(Error) -> (JSONValue, [String: Int]) {
        var p = JSONParser(Array(bytes), recordLines: true)
        let v = try p.document()
        return (v, p.lines ?? [:])
    }

    private mutating func document() throws(Error) -> JSONValue {
        skipSpace()
        let v = try value(path: "")
        skipSpace()
        if i != bytes.count { throw error("unexpected content after the document") }
        return v
    }

    private func position() -> (Int, Int) {
        var line = 1
        var col = 1
        var k = 0
        while k < i && k < bytes.count {
            if bytes[k] == 10 {
                line += 1
                col = 1
            } else {
                col += 1
            }
            k += 1
        }
        return (line, col)
    }

    private func error(_ message: String) -> Error {
        let (l, c) = position()
        return Error(message: message, line: l, column: c)
    }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 32 || bytes[i] == 9 || bytes[i] == 10 || bytes[i] == 13 { i += 1 }
    }

    private mutating func value(path: String) throws(Error) -> JSONValue {
        guard i < bytes.count else { throw error("unexpected end of the document") }
        if lines != nil { lines![path] = position().0 }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object(path: path)
        case UInt8(ascii: "["): return try array(path: path)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[i])))'")
        }
    }

    private mutating func literal(_ word: String, _ v: JSONValue) throws(Error) -> JSONValue {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else { throw error("invalid literal") }
        i += w.count
        return v
    }

    private mutating func enter() throws(Error) {
        depth += 1
        if depth > 512 { throw error("nesting deeper than 512 levels") }
    }

    private mutating func object(path: String) throws(Error) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        i += 1
        var o: [String: JSONValue] = [:]
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return .object(o)
        }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try string()
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':' after key \"\(key)\"") }
            i += 1
            skipSpace()
            if o[key] != nil { throw error("duplicate key \"\(key)\"") }
            o[key] = try value(path: lines == nil ? "" : (path.isEmpty ? key : path + "." + key))
            skipSpace()
            guard i < bytes.count else { throw error("unexpected end inside an object") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "}") {
                i += 1
                return .object(o)
            }
            throw error("expected ',' or '}' in an object")
        }
    }

    private mutating func array(path: String) throws(Error) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        i += 1
        var a: [JSONValue] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
            return .array(a)
        }
        while true {
            skipSpace()
            a.append(try value(path: lines == nil ? "" : path + "[\(a.count)]"))
            skipSpace()
            guard i < bytes.count else { throw error("unexpected end inside an array") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            if bytes[i] == UInt8(ascii: "]") {
                i += 1
                return .array(a)
            }
            throw error("expected ',' or ']' in an array")
        }
    }

    private mutating func number() throws(Error) -> JSONValue {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        func digits() -> Int {
            let s = i
            while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 { i += 1 }
            return i - s
        }
        let intDigits = digits()
        if intDigits == 0 { throw error("invalid number") }
        if intDigits > 1 && bytes[i - intDigits] == 48 { throw error("a number may not start with 0") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            if digits() == 0 { throw error("invalid number") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            if digits() == 0 { throw error("invalid number") }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        guard let d = Double(text) else { throw error("invalid number") }
        // 1e400 is a valid JSON number that no double holds: refused, not read as infinity
        // (which would be written back as "inf", not JSON; found by the json fuzz target).
        guard d.isFinite else { throw error("the number \(text.prefix(40)) is out of range") }
        return .number(d)
    }

    private mutating func hex4() throws(Error) -> UInt32 {
        guard i + 4 <= bytes.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 65...70: d = UInt32(c - 55)
            case 97...102: d = UInt32(c - 87)
            default: throw error("invalid \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }

    private mutating func string() throws(Error) -> String {
        i += 1
        let start = i
        // Fast path: no escapes.
        while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\"), bytes[i] >= 0x20 { i += 1 }
        if i < bytes.count, bytes[i] == UInt8(ascii: "\"") {
            let s = String(decoding: bytes[start..<i], as: UTF8.self)
            i += 1
            return s
        }
        var out = Array(bytes[start..<i])
        while true {
            guard i < bytes.count else { throw error("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return String(decoding: out, as: UTF8.self)
            }
            if c < 0x20 { throw error("a control character inside a string") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                i += 1
                continue
            }
            i += 1
            guard i < bytes.count else { throw error("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(34)
            case UInt8(ascii: "\\"): out.append(92)
            case UInt8(ascii: "/"): out.append(47)
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    // A surrogate pair.
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw error("a lone surrogate in a \\u escape")
                    }
                    i += 2
                    let low = try hex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw error("an invalid surrogate pair") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("an invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default:
                throw error("invalid escape \\\(Character(Unicode.Scalar(e)))")
            }
        }
    }
}
