/// Writing JSON text by hand where the order of keys matters (runc's `state` and `list`
/// outputs) or where JSONEncoder's cost shows (every `husk-runc state`).
public enum JSONText {
    /// A JSON string literal.
    public static func string(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// An object whose members are already JSON text, in the given order. `indent` pretty
    /// prints with that many spaces per level (Go's MarshalIndent style: `"key": value`).
    public static func object(_ members: [(String, String)], indent: Int? = nil, level: Int = 0) -> String {
        guard let indent else {
            return "{" + members.map { string($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
        }
        if members.isEmpty { return "{}" }
        let pad = String(repeating: " ", count: indent * (level + 1))
        let end = String(repeating: " ", count: indent * level)
        return "{\n" + members.map { pad + string($0.0) + ": " + $0.1 }.joined(separator: ",\n") + "\n" + end + "}"
    }

    /// An array of JSON texts.
    public static func array(_ items: [String]) -> String {
        "[" + items.joined(separator: ",") + "]"
    }

    /// A map of strings with sorted keys.
    public static func stringMap(_ map: [String: String], indent: Int? = nil, level: Int = 0) -> String {
        object(map.sorted { $0.key < $1.key }.map { ($0.key, string($0.value)) }, indent: indent, level: level)
    }
}

extension JSONValue {
    /// JSON text without Codable (a supervisor stays small): keys sorted, integral numbers
    /// without a fraction; `indent` pretty prints with that many spaces per level.
    public func serialized(indent: Int? = nil) -> String {
        var out = ""
        write(into: &out, indent: indent, level: 0)
        return out
    }

    private func write(into out: inout String, indent: Int?, level: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d):
            if d.rounded() == d, abs(d) < 1e18 { out += String(Int64(d)) } else { out += "\(d)" }
        case .string(let s): out += JSONText.string(s)
        case .array(let a):
            if a.isEmpty {
                out += "[]"
                return
            }
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                if let indent { out += "\n" + String(repeating: " ", count: indent * (level + 1)) }
                v.write(into: &out, indent: indent, level: level + 1)
            }
            if let indent { out += "\n" + String(repeating: " ", count: indent * level) }
            out += "]"
        case .object(let o):
            if o.isEmpty {
                out += "{}"
                return
            }
            out += "{"
            for (i, k) in o.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                if let indent { out += "\n" + String(repeating: " ", count: indent * (level + 1)) }
                out += JSONText.string(k)
                out += indent == nil ? ":" : ": "
                o[k]!.write(into: &out, indent: indent, level: level + 1)
            }
            if let indent { out += "\n" + String(repeating: " ", count: indent * level) }
            out += "}"
        }
    }
}
