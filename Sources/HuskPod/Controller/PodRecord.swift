import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif


/// What `husk run` hands the supervisor (`pod.json`): the pod with its uid, and the settings.
public struct PodRecord: Sendable {
    public var pod: Pod
    public var settings: HuskSettings

    public init(pod: Pod, settings: HuskSettings) {
        self.pod = pod
        self.settings = settings
    }

    public var json: JSONValue { .object(["pod": pod.json, "settings": settings.json]) }

    public static func read(_ path: String) throws(HuskError) -> PodRecord {
        let doc = try readJSON(path)
        do {
            guard let p = doc["pod"], let s = doc["settings"] else { throw FieldError(path: "", message: "pod or settings missing") }
            return PodRecord(pod: try PodManifest.stored(p), settings: try HuskSettings(json: JSONReader(s)))
        } catch let e as FieldError {
            throw HuskError(.invalidArgument, "\(path): \(e)")
        } catch {
            throw HuskError(.invalidArgument, "\(path): \(error)")
        }
    }
}
