import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Pulls from registries through `husk-pull`, the helper next to this executable: the HTTP and
/// TLS stack (AsyncHTTPClient) lives only there, so supervisors, the CLI and husk-runc neither
/// link it nor carry its memory. Credentials go over its stdin, never its argv.
public enum RegistryHelper {
    /// `husk-pull` in the directory of the running executable.
    public static var path: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return dir + "/husk-pull"
    }

    /// The `RegistryPull` of `ImageStore.ensure` for these settings, or nil when registries
    /// are off. `credentials` (CRI AuthConfig, `husk pull --creds`) go before the auth file;
    /// so do `pullSecrets` (a pod's, as docker config documents), each tried in turn.
    public static func puller(_ settings: HuskSettings, store: ImageStore, credentials: JSONValue? = nil, pullSecrets: [JSONValue] = [],
                              platform: Platform = .host, progress: (@Sendable (PullEvent) -> Void)? = nil) -> RegistryPull? {
        guard settings.registries else { return nil }
        return { (ref, written) throws(ImageError) -> ImageRecord in
            try pull(ref, written: written, settings: settings, store: store, credentials: credentials, pullSecrets: pullSecrets,
                     platform: platform, progress: progress)
        }
    }

    public static func pull(
        _ ref: ImageReference, written: String, settings: HuskSettings, store: ImageStore, credentials: JSONValue?,
        pullSecrets: [JSONValue] = [], platform: Platform = .host, progress: (@Sendable (PullEvent) -> Void)?
    ) throws(ImageError) -> ImageRecord {
        var argv = [path, "--root", settings.root]
        if let dir = settings.registryConfigDir { argv += ["--registry-config", dir] }
        if let file = settings.authFile { argv += ["--auth-file", file] }
        if let m = settings.maxLayerSize { argv += ["--max-layer-size", "\(m)"] }
        if platform != .host { argv += ["--platform", platform.description] }
        argv.append(written)
        var env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        for key in ["HOME", "REGISTRY_AUTH_FILE", "SSL_CERT_FILE", "SSL_CERT_DIR", "HUSK_INFLATE", "HUSK_UNPACK_THREADS"] {
            if let v = getenv(key) { env.append(key + "=" + String(cString: v)) }
        }
        let spawned: SpawnedProcess
        let out: FD
        // Its stderr is kept (the last 4 KB): when it dies without saying why (a crash), that is
        // what the error shows.
        final class Tail: @unchecked Sendable {  // guarded by `monitor`
            let monitor = Monitor()
            var bytes: [UInt8] = []
            var done = false
        }
        let tail = Tail()
        do {
            let (ir, iw) = try makePipe()
            let (or, ow) = try makePipe()
            let (er, ew) = try makePipe()
            var plan = SpawnPlan.host(argv: argv, env: env)
            plan.stdio = [ir, ow, ew]
            spawned = try Spawner.spawn(plan)
            out = or
            Threads.spawn("pull-stderr") {
                var buf = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = buf.withUnsafeMutableBytes { read(er.raw, $0.baseAddress, $0.count) }
                    if n < 0 && currentErrno == .interrupted { continue }
                    if n <= 0 { break }
                    tail.monitor.locked {
                        tail.bytes += buf[0..<n]
                        if tail.bytes.count > 4096 { tail.bytes.removeFirst(tail.bytes.count - 4096) }
                    }
                }
                tail.monitor.locked { tail.done = true }
                tail.monitor.broadcast()
            }
            // stdin: the AuthConfig's fields, and the pod's pull secrets under "pullSecrets".
            var input: [String: JSONValue] = [:]
            if case .object(let o)? = credentials { input = o }
            if !pullSecrets.isEmpty { input["pullSecrets"] = .array(pullSecrets) }
            let secret = input.isEmpty ? [] : Array(JSONValue.object(input).serialized().utf8)
            Threads.spawn("pull-creds") { try? iw.writeAll(secret) }
        } catch {
            throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": cannot start \(path): \(error)")
        }
        // One JSON object a line: events for `progress`, then the outcome.
        var pending: [UInt8] = []
        var outcome: JSONValue? = nil
        var buf = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buf.withUnsafeMutableBytes { read(out.raw, $0.baseAddress, $0.count) }
            if n < 0 && currentErrno == .interrupted { continue }
            if n <= 0 { break }
            pending += buf[0..<n]
            while let nl = pending.firstIndex(of: 0x0a) {
                let line = Array(pending[..<nl])
                pending.removeFirst(nl + 1)
                guard let v = try? JSONParser.parse(line) else { continue }
                let r = JSONReader(v)
                if r.has("image") || r.has("error") {
                    outcome = v
                } else if let e = event(r) {
                    progress?(e)
                }
            }
        }
        let status = (try? spawned.pidfd.wait()) ?? .exited(255)
        if let outcome, let id = try? JSONReader(outcome).optString("image"), let digest = Digest(id), status.code == 0 {
            if let record = try store.images().first(where: { $0.id == digest }) { return record }
            throw ImageError(reason: .storeError, message: "Failed to pull image \"\(written)\": \(path) stored \(id), which the store does not list")
        }
        if let outcome, let e = JSONReader(outcome).child("error") {
            let reason = ((try? e.optString("reason")) ?? nil).flatMap { ImageError.Reason(rawValue: $0) } ?? .errImagePull
            throw ImageError(reason: reason, message: ((try? e.optString("message")) ?? nil) ?? "the registry pull failed")
        }
        _ = tail.monitor.wait(for: { tail.done }, until: Clock.monotonicSeconds() + 2)
        let said = tail.monitor.locked { String(decoding: tail.bytes, as: UTF8.self) }.split(separator: "\n").suffix(5).joined(separator: " | ")
        throw ImageError(reason: .errImagePull, message: "Failed to pull image \"\(written)\": \(path) ended (\(status)) without saying why"
                         + (said.isEmpty ? "" : "; its stderr: " + said))
    }

    static func event(_ r: JSONReader) -> PullEvent? {
        func s(_ k: String) -> String { ((try? r.optString(k)) ?? nil) ?? "" }
        func n(_ k: String) -> Double { ((try? r.optDouble(k)) ?? nil) ?? 0 }
        switch s("event") {
        case "resolved":
            guard let m = Digest(s("manifest")) else { return nil }
            return .resolved(reference: s("reference"), manifest: m, source: s("source"))
        case "copying":
            guard let b = Digest(s("blob")) else { return nil }
            return .copying(blob: b, done: Int64(n("done")), total: Int64(n("total")))
        case "unpacked":
            guard let l = Digest(s("layer")) else { return nil }
            return .unpacked(layer: l, bytes: UInt64(n("bytes")), seconds: n("seconds"), inflater: s("inflater"))
        default:
            return nil
        }
    }
}
