/// A problem with one field of a document: its path, what is wrong, and its line when known.
public struct FieldError: Error, CustomStringConvertible, Sendable, Equatable {
    public var path: String
    public var message: String
    public var line: Int?

    public init(path: String, message: String, line: Int? = nil) {
        self.path = path
        self.message = message
        self.line = line
    }

    /// `spec.containers[1].image: must not be empty (line 12)`
    public var description: String {
        let where_ = path.isEmpty ? "" : path + ": "
        return where_ + message + (line.map { " (line \($0))" } ?? "")
    }
}

/// Reads typed fields out of a `JSONValue`, keeping the path so that every error names the
/// field (and the line, when the parser recorded lines). The alternative to Codable where
/// messages or memory matter.
public struct JSONReader: Sendable {
    public let value: JSONValue
    public let path: String
    public let lines: [String: Int]?

    public init(_ value: JSONValue, path: String = "", lines: [String: Int]? = nil) {
        self.value = value
        self.path = path
        self.lines = lines
    }

    public func sub(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    public func line(_ p: String) -> Int? {
        guard let lines else { return nil }
        // The value's own line, else its closest recorded parent's.
        var q = p
        while true {
            if let l = lines[q] { return l }
            guard let cut = q.lastIndex(where: { $0 == "." || $0 == "[" }) else { return lines[""] }
            q = String(q[..<cut])
        }
    }

    /// An error at `key` (nil: this value itself).
    public func error(_ key: String?, _ message: String) -> FieldError {
        let p = key.map { sub($0) } ?? path
        return FieldError(path: p, message: message, line: line(p))
    }

    public var object: [String: JSONValue]? {
        if case .object(let o) = value { return o }
        return nil
    }

    /// The keys of this object, sorted (empty for anything else).
    public var keys: [String] { object.map { Array($0.keys).sorted() } ?? [] }

    /// The field, or nil when it is absent or null.
    public func child(_ key: String) -> JSONReader? {
        guard let v = object?[key], v != .null else { return nil }
        return JSONReader(v, path: sub(key), lines: lines)
    }

    public func has(_ key: String) -> Bool { child(key) != nil }

    func mismatch(_ r: JSONReader, _ expected: String) -> FieldError {
        FieldError(path: r.path, message: "expected \(expected), found \(r.value.kind)", line: line(r.path))
    }

    public func requireObject() throws(FieldError) {
        guard case .object = value else { throw mismatch(self, "an object") }
    }

    public func string(_ key: String) throws(FieldError) -> String {
        guard let s = try optString(key) else { throw error(key, "required field is missing") }
        return s
    }

    public func optString(_ key: String) throws(FieldError) -> String? {
        guard let c = child(key) else { return nil }
        guard case .string(let s) = c.value else { throw mismatch(c, "a string") }
        return s
    }

    public func optBool(_ key: String) throws(FieldError) -> Bool? {
        guard let c = child(key) else { return nil }
        guard case .bool(let b) = c.value else { throw mismatch(c, "a boolean") }
        return b
    }

    public func optInt(_ key: String) throws(FieldError) -> Int64? {
        guard let c = child(key) else { return nil }
        guard case .number(let d) = c.value, d.rounded() == d, abs(d) < 9.2e18 else { throw mismatch(c, "an integer") }
        return Int64(d)
    }

    public func int(_ key: String) throws(FieldError) -> Int64 {
        guard let v = try optInt(key) else { throw error(key, "required field is missing") }
        return v
    }

    public func optDouble(_ key: String) throws(FieldError) -> Double? {
        guard let c = child(key) else { return nil }
        guard case .number(let d) = c.value else { throw mismatch(c, "a number") }
        return d
    }

    public func optStringArray(_ key: String) throws(FieldError) -> [String]? {
        guard let c = child(key) else { return nil }
        guard case .array(let a) = c.value else { throw mismatch(c, "an array of strings") }
        var out: [String] = []
        for (i, v) in a.enumerated() {
            guard case .string(let s) = v else {
                throw mismatch(JSONReader(v, path: c.path + "[\(i)]", lines: lines), "a string")
            }
            out.append(s)
        }
        return out
    }

    public func optStringMap(_ key: String) throws(FieldError) -> [String: String]? {
        guard let c = child(key) else { return nil }
        guard case .object(let o) = c.value else { throw mismatch(c, "an object of strings") }
        var out: [String: String] = [:]
        for (k, v) in o {
            guard case .string(let s) = v else {
                throw mismatch(JSONReader(v, path: c.path + "." + k, lines: lines), "a string")
            }
            out[k] = s
        }
        return out
    }

    /// Each element of an array field, read by `body`.
    public func optArray<T>(_ key: String, _ body: (JSONReader) throws(FieldError) -> T) throws(FieldError) -> [T]? {
        guard let c = child(key) else { return nil }
        guard case .array(let a) = c.value else { throw mismatch(c, "an array") }
        var out: [T] = []
        out.reserveCapacity(a.count)
        for (i, v) in a.enumerated() {
            out.append(try body(JSONReader(v, path: c.path + "[\(i)]", lines: lines)))
        }
        return out
    }

    /// An object field, read by `body`.
    public func optObject<T>(_ key: String, _ body: (JSONReader) throws(FieldError) -> T) throws(FieldError) -> T? {
        guard let c = child(key) else { return nil }
        try c.requireObject()
        return try body(c)
    }
}

extension JSONValue {
    /// Compact JSON text (keys sorted, so the output is stable).
    public var text: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let d):
            if d.rounded() == d, abs(d) < 1e15 { return String(Int64(d)) }
            return "\(d)"
        case .string(let s): return JSONText.string(s)
        case .array(let a): return "[" + a.map(\.text).joined(separator: ",") + "]"
        case .object(let o):
            return "{" + o.keys.sorted().map { JSONText.string($0) + ":" + o[$0]!.text }.joined(separator: ",") + "}"
        }
    }

    /// A string value, or nil.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// A boolean value, or nil.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
}
