import FoundationEssentials

/// Turns decoding errors into messages that name the JSON path of the bad field
/// (`process.args[1]: expected a string, found a number`).
public enum JSONPath {
    /// `a.b[2].c` for a coding path.
    public static func render(_ path: [any CodingKey]) -> String {
        var out = ""
        for key in path {
            if let i = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == "\(i)" {
                out += "[\(i)]"
            } else {
                if !out.isEmpty { out += "." }
                out += key.stringValue
            }
        }
        return out.isEmpty ? "(top level)" : out
    }

    /// A one-line explanation of a DecodingError, or the error's description.
    public static func describe(_ error: any Error, in document: JSONValue? = nil) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        switch e {
        case .typeMismatch(let type, let ctx):
            let found = document.flatMap { value(at: ctx.codingPath, in: $0) }?.kind
            return "\(render(ctx.codingPath)): expected \(typeName(type))\(found.map { ", found \($0)" } ?? "")"
        case .valueNotFound(let type, let ctx):
            return "\(render(ctx.codingPath)): expected \(typeName(type)), found null"
        case .keyNotFound(let key, let ctx):
            return "\(render(ctx.codingPath + [key])): required field is missing"
        case .dataCorrupted(let ctx):
            let under = (ctx.underlyingError.map { "\($0)" }) ?? ctx.debugDescription
            if ctx.codingPath.isEmpty { return "not valid JSON: \(under)" }
            return "\(render(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default:
            return "\(e)"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        let n = String(describing: type)
        switch n {
        case "String": return "a string"
        case "Bool": return "a boolean"
        case "Int", "Int32", "Int64", "UInt32", "UInt64", "UInt", "Double", "UInt16", "Int16":
            return "a number (\(n))"
        default:
            if n.hasPrefix("Array") || n.hasPrefix("[") { return "an array" }
            if n.hasPrefix("Dictionary") { return "an object" }
            return "an object (\(n))"
        }
    }

    static func value(at path: [any CodingKey], in doc: JSONValue) -> JSONValue? {
        var cur: JSONValue? = doc
        for key in path {
            switch cur {
            case .object(let o): cur = o[key.stringValue]
            case .array(let a):
                guard let i = key.intValue, i < a.count else { return nil }
                cur = a[i]
            default: return nil
            }
        }
        return cur
    }
}
