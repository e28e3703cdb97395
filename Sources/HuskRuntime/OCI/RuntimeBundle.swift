import FoundationEssentials
import HuskJSON
import HuskSystem

/// An OCI runtime bundle: a directory with `config.json` and (usually) the root filesystem.
public struct RuntimeBundle: Sendable {
    /// Absolute path of the bundle directory.
    public let path: String
    /// The model of the fields Husk honours.
    public var spec: Spec
    /// The document as read: unknown fields are kept (see `raw`).
    public let document: Data

    /// The whole document as a tree (decoded on demand: only errors and re-encoding need it).
    public var raw: JSONValue {
        (try? JSONDecoder().decode(JSONValue.self, from: document)) ?? .object([:])
    }

    public var configPath: String { path + "/config.json" }

    /// The root filesystem, absolute (root.path is relative to the bundle when not absolute).
    public var rootfs: String? {
        guard let p = spec.root?.path else { return nil }
        return Files.absolute(p, relativeTo: path)
    }

    /// Reads and decodes `<bundle>/config.json`. Errors name the file and the JSON path of the
    /// bad field.
    public static func load(_ bundlePath: String) throws(HuskError) -> RuntimeBundle {
        let dir = Files.absolute(bundlePath)
        let file = dir + "/config.json"
        let bytes: [UInt8]?
        do {
            bytes = try Files.read(file)
        } catch {
            throw HuskError(.invalidArgument, "cannot read \(file)", cause: error)
        }
        guard let bytes else {
            throw HuskError(.notFound, "\(file): no such file: the bundle needs a config.json (husk-runc spec writes one)")
        }
        return try decode(Data(bytes), bundle: dir, file: file)
    }

    /// Decodes a config.json document.
    public static func decode(_ data: Data, bundle: String, file: String = "config.json") throws(HuskError)
        -> RuntimeBundle
    {
        do {
            let spec = try JSONDecoder().decode(Spec.self, from: data)
            return RuntimeBundle(path: bundle, spec: spec, document: data)
        } catch {
            // Only now look at the document as a tree, to say where it is wrong.
            let raw: JSONValue
            do {
                raw = try JSONDecoder().decode(JSONValue.self, from: data)
            } catch {
                throw HuskError(.invalidArgument, "\(file): \(JSONPath.describe(error))")
            }
            guard case .object = raw else {
                throw HuskError(.invalidArgument, "\(file): the document must be a JSON object, found \(raw.kind)")
            }
            throw HuskError(.invalidArgument, "\(file): \(JSONPath.describe(error, in: raw))")
        }
    }

    public init(path: String, spec: Spec, document: Data? = nil) {
        self.path = path
        self.spec = spec
        self.document = document ?? ((try? JSONEncoder().encode(spec)) ?? Data("{}".utf8))
    }

    /// The document with the modelled fields re-encoded over the original, unknown fields kept.
    public func encoded() throws -> JSONValue {
        raw.merging(try JSONValue.from(spec))
    }
}
