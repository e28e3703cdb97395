import FoundationEssentials

/// Any JSON value. Used to keep the fields of a document that Husk does not model, so that
/// nothing is lost when it is written back, and to report where a document is wrong.
public enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let d):
            if d.rounded() == d, abs(d) < 1e18 { try c.encode(Int64(d)) } else { try c.encode(d) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// Deep merge: objects are merged key by key (`overlay` wins), arrays of equal length
    /// element by element, anything else is replaced by `overlay`.
    public func merging(_ overlay: JSONValue) -> JSONValue {
        switch (self, overlay) {
        case (.object(var base), .object(let top)):
            for (k, v) in top { base[k] = base[k].map { $0.merging(v) } ?? v }
            return .object(base)
        case (.array(let base), .array(let top)) where base.count == top.count:
            return .array(zip(base, top).map { $0.merging($1) })
        default:
            return overlay
        }
    }

    /// A short name of the type, for error messages.
    public var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

extension JSONValue {
    /// Encodes any Encodable value into a JSONValue tree.
    public static func from(_ value: some Encodable) throws -> JSONValue {
        let data = try JSONEncoder().encode(value)
        return try JSONDecoder().decode(JSONValue.self, from: data)
    }
}
