import HuskImage
import HuskJSON
import HuskRegistry
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

// husk-pull: the registry client of `husk pull`, pods and `husk serve`, in a process of its own
// so that the HTTP and TLS stack is linked into nothing else (not husk-runc, not the
// supervisors). Not meant to be run by hand:
//
//   husk-pull --root DIR [--registry-config DIR] [--auth-file FILE] [--max-layer-size N]
//             [--platform OS/ARCH[/VARIANT]] REFERENCE
//
// Credentials come on stdin as JSON (CRI AuthConfig fields, and a pod's pull secrets as docker
// config documents under "pullSecrets"; empty: none) so they never show in argv. stdout is one JSON object per line: progress events, then {"image": "<id>"} or
// {"error": {"reason": ..., "message": ...}}; the exit status is 0 or 1.

func emit(_ v: JSONValue) {
    _ = Output.writeAll(1, Array((v.serialized() + "\n").utf8))
}

func fail(_ reason: ImageError.Reason, _ message: String) -> Never {
    emit(.object(["error": .object(["reason": .string(reason.rawValue), "message": .string(message)])]))
    exit(1)
}

var args = Array(CommandLine.arguments.dropFirst())
var root: String? = nil, configDir: String? = nil, authFile: String? = nil, maxLayer: UInt64? = nil
var platform = Platform.host
var reference: String? = nil
while !args.isEmpty {
    let a = args.removeFirst()
    func value() -> String {
        guard !args.isEmpty else { fail(.errImagePull, "husk-pull: \(a) needs a value") }
        return args.removeFirst()
    }
    switch a {
    case "--root": root = value()
    case "--registry-config": configDir = value()
    case "--auth-file": authFile = value()
    case "--max-layer-size": maxLayer = UInt64(value())
    case "--platform":
        guard let p = Platform(parsing: value()) else { fail(.errImagePull, "husk-pull: --platform is OS/ARCH[/VARIANT]") }
        platform = p
    default:
        guard reference == nil, !a.hasPrefix("-") else { fail(.errImagePull, "husk-pull: unexpected argument \(a)") }
        reference = a
    }
}
guard let root, let written = reference else { fail(.errImagePull, "husk-pull: usage: husk-pull --root DIR REFERENCE") }

let ref: ImageReference
do {
    ref = try ImageReference(parsing: written)
} catch {
    fail(error.reason, error.message)
}

// Credentials: what the caller passed (CRI's AuthConfig, husk pull --creds); else, as kubelet's
// keyring, every match in the pod's pull secrets, then the auth file's, each tried in turn until
// one pull succeeds; none: anonymous.
var candidates: [Credentials?] = []
var given = false
let input = (try? FD(adopting: dup(0)).readAll()) ?? []
if !input.allSatisfy({ $0 == 0x20 || $0 == 0x0a }) {
    do {
        let r = JSONReader(try JSONParser.parse(input))
        let explicit = try Credentials(json: r)
        if !explicit.isEmpty {
            candidates.append(explicit)
            given = true
        } else {
            for (i, s) in (try r.optArray("pullSecrets") { $0 } ?? []).enumerated() {
                do {
                    if let c = try Credentials.lookup(registry: ref.domain, in: s, what: "pull secret \(i)") { candidates.append(c) }
                } catch {
                    fail(.errImagePull, "Failed to pull image \"\(written)\": \(error.message)")
                }
            }
        }
    } catch {
        fail(.errImagePull, "husk-pull: the credentials on stdin are not valid: \(error)")
    }
}
if !given {
    do {
        if let c = try Credentials.lookup(registry: ref.domain, authFile: authFile), !candidates.contains(c) { candidates.append(c) }
    } catch {
        fail(.errImagePull, "Failed to pull image \"\(written)\": \(error.message)")
    }
}
if candidates.isEmpty { candidates = [nil] }

var options = ImageStoreOptions()
if let maxLayer { options.maxLayerBytes = maxLayer }
let store: ImageStore
do {
    store = try ImageStore(root: root, options: options)
} catch {
    fail(error.reason, error.message)
}

let progress: @Sendable (PullEvent) -> Void = { e in
    switch e {
    case .resolved(let reference, let manifest, let source):
        emit(.object(["event": .string("resolved"), "reference": .string(reference), "manifest": .string(manifest.description), "source": .string(source)]))
    case .copying(let blob, let done, let total):
        emit(.object(["event": .string("copying"), "blob": .string(blob.description), "done": .number(Double(done)), "total": .number(Double(total))]))
    case .unpacked(let layer, let bytes, let seconds, let inflater):
        emit(.object(["event": .string("unpacked"), "layer": .string(layer.description), "bytes": .number(Double(bytes)), "seconds": .number(seconds), "inflater": .string(inflater)]))
    }
}
var last: ImageError? = nil
for credentials in candidates {
    var puller = RegistryPuller(store: store, configDirectory: configDir, credentials: credentials)
    puller.platform = platform
    do {
        let record = try await puller.pull(ref, written: written, progress: progress)
        emit(.object(["image": .string(record.id.description)]))
        exit(0)
    } catch {
        last = error  // kubelet tries the next matching credentials after any failure
    }
}
fail(last!.reason, last!.message)
