import FoundationEssentials
import HuskImage
import HuskJSON
import HuskSystem
import SystemPackage
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// Why a manifest was refused: every problem, each with its field path and line.
public struct ManifestError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var problems: [FieldError]

    public var description: String {
        let list = problems.map { "  \($0)" }.joined(separator: "\n")
        return "\(file): the pod manifest is invalid (\(problems.count) problem\(problems.count == 1 ? "" : "s")):\n\(list)"
    }
}

/// Reading a Pod manifest (YAML or JSON, `apiVersion: v1`, `kind: Pod`): parse, map onto the
/// model, fill Kubernetes' defaults, validate. Nothing is started by any of it.
public enum PodManifest {
    /// The largest manifest read: Kubernetes' API server refuses requests over 3 MiB.
    public static let maxBytes = 3 << 20
    /// The most values one manifest may expand to, aliases counted each time they are used:
    /// a legitimate 3 MiB manifest has far fewer; ten nested anchors of ten aliases each would
    /// otherwise expand 635 bytes to 10^10 values (a YAML "billion laughs").
    public static let maxNodes = 1_000_000

    /// Reads and validates a manifest file (a regular file of at most `maxBytes`). Warnings
    /// name fields Husk does not implement.
    public static func load(_ path: String) throws -> (Pod, warnings: [String]) {
        func refuse(_ message: String) -> ManifestError {
            ManifestError(file: path, problems: [FieldError(path: "", message: message)])
        }
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            if currentErrno == .noSuchFileOrDirectory { throw HuskError(.notFound, "\(path): no such file") }
            throw HuskError(.invalidArgument, "cannot open \(path): \(currentErrno.text)")
        }
        let file = FD(adopting: fd)
        var st = stat()
        guard fstat(file.raw, &st) == 0 else { throw HuskError(.system, "cannot stat \(path): \(currentErrno.text)") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            let kind: String
            switch st.st_mode & S_IFMT {
            case S_IFDIR: kind = "a directory"
            case S_IFCHR: kind = "a character device"
            case S_IFBLK: kind = "a block device"
            case S_IFIFO: kind = "a FIFO"
            case S_IFSOCK: kind = "a socket"
            default: kind = "not a file"
            }
            throw refuse("\(kind), not a regular file: a manifest is a YAML or JSON file")
        }
        guard Int(st.st_size) <= maxBytes else {
            throw refuse("\(st.st_size) bytes: a manifest may have at most \(maxBytes) (3 MiB, Kubernetes' request limit)")
        }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= maxBytes {
            let n = buf.withUnsafeMutableBytes { read(file.raw, $0.baseAddress, $0.count) }
            if n < 0 && currentErrno == .interrupted { continue }
            guard n >= 0 else { throw HuskError(.system, "cannot read \(path): \(currentErrno.text)") }
            if n == 0 { break }
            bytes += buf[0..<n]
        }
        return try parse(bytes, file: path)
    }

    public static func parse(_ bytes: [UInt8], file: String = "pod.yaml") throws -> (Pod, warnings: [String]) {
        guard bytes.count <= maxBytes else {
            throw ManifestError(file: file, problems: [FieldError(
                path: "", message: "\(bytes.count) bytes or more: a manifest may have at most \(maxBytes) (3 MiB, Kubernetes' request limit)")])
        }
        let (doc, lines) = try document(bytes, file: file)
        var w = Warnings(list: [])
        let reader = JSONReader(doc, lines: lines)
        var pod: Pod
        do {
            pod = try decode(reader, &w)
        } catch {
            throw ManifestError(file: file, problems: [error])
        }
        // Unsupported enum values are ordinary validation problems, reported with the rest.
        let problems = (w.problems + PodValidation.validate(pod, reader: reader)).sorted { ($0.line ?? 0) < ($1.line ?? 0) }
        if !problems.isEmpty { throw ManifestError(file: file, problems: problems) }
        return (pod, w.list)
    }

    /// The document as a JSON tree with the line of every value: JSON through JSONParser,
    /// anything else through Yams (YAML 1.1, as Kubernetes' sigs.k8s.io/yaml reads it).
    static func document(_ bytes: [UInt8], file: String) throws -> (JSONValue, [String: Int]) {
        let first = bytes.first { $0 != 32 && $0 != 9 && $0 != 10 && $0 != 13 }
        if first == UInt8(ascii: "{") {
            do {
                return try JSONParser.parseWithLines(bytes)
            } catch {
                throw ManifestError(file: file, problems: [FieldError(path: "", message: "not valid JSON: \(error.message)", line: error.line)])
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ManifestError(file: file, problems: [FieldError(path: "", message: "the file is not UTF-8 text")])
        }
        var docs: [Node] = []
        do {
            // Parser directly: compose_all's sequence swallows a syntax error in a later document.
            let parser = try Parser(yaml: text)
            while let node = try parser.nextRoot() { docs.append(node) }
        } catch let e as YamlError {
            throw ManifestError(file: file, problems: [FieldError(path: "", message: "not valid YAML: \(yamlMessage(e))", line: yamlLine(e))])
        } catch {
            throw ManifestError(file: file, problems: [FieldError(path: "", message: "not valid YAML: \(error)")])
        }
        guard docs.count == 1 else {
            throw ManifestError(file: file, problems: [FieldError(path: "", message: "expected one YAML document with a Pod, found \(docs.count)")])
        }
        var lines: [String: Int] = [:]
        var budget = maxNodes
        let value = try convert(docs[0], path: "", lines: &lines, file: file, budget: &budget)
        return (value, lines)
    }

    /// What libyaml found wrong, where, and in what (its own text, which the first line of
    /// Yams' description leaves out).
    static func yamlMessage(_ e: YamlError) -> String {
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            var what = problem
            if problem.hasPrefix("Maximum nesting level reached") {
                what = "nested deeper than 1000 levels (no pod needs that): refused"
            }
            if let context { what += " (\(context.text) from line \(context.mark.line), column \(context.mark.column))" }
            return "line \(mark.line), column \(mark.column): \(what)"
        default:
            let s = "\(e)"
            return s.split(separator: "\n").first.map(String.init) ?? s
        }
    }

    static func yamlLine(_ e: YamlError) -> Int? {
        switch e {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    static func convert(_ node: Node, path: String, lines: inout [String: Int], file: String, budget: inout Int) throws -> JSONValue {
        budget -= 1
        guard budget >= 0 else {
            throw ManifestError(file: file, problems: [FieldError(
                path: path, message: "the document expands to more than \(maxNodes) values (aliases of aliases?): refused", line: node.mark?.line)])
        }
        if let m = node.mark { lines[path] = m.line }
        switch node {
        case .scalar(let s):
            if s.style == .singleQuoted || s.style == .doubleQuoted || s.style == .literal || s.style == .folded {
                return .string(s.string)
            }
            if node.null != nil { return .null }
            if let b = node.bool { return .bool(b) }
            if let i = node.int { return .number(Double(i)) }
            if let f = node.float, f.isFinite { return .number(f) }
            return .string(s.string)
        case .mapping(let m):
            var o: [String: JSONValue] = [:]
            for (k, v) in m {
                guard case .scalar(let ks) = k else {
                    throw ManifestError(file: file, problems: [FieldError(path: path, message: "a mapping key must be a string", line: k.mark?.line)])
                }
                let key = ks.string
                if o[key] != nil {
                    throw ManifestError(file: file, problems: [FieldError(path: path.isEmpty ? key : path + "." + key, message: "duplicate key", line: k.mark?.line)])
                }
                o[key] = try convert(v, path: path.isEmpty ? key : path + "." + key, lines: &lines, file: file, budget: &budget)
            }
            return .object(o)
        case .sequence(let seq):
            var a: [JSONValue] = []
            for (i, v) in seq.enumerated() { a.append(try convert(v, path: path + "[\(i)]", lines: &lines, file: file, budget: &budget)) }
            return .array(a)
        case .alias:
            throw ManifestError(file: file, problems: [FieldError(path: path, message: "YAML aliases are not supported", line: node.mark?.line)])
        }
    }

    // MARK: - Mapping onto the model

    static func decode(_ r: JSONReader, _ w: inout Warnings) throws(FieldError) -> Pod {
        try r.requireObject()
        w.check(r, known: ["apiVersion", "kind", "metadata", "spec", "status"])
        let meta = try r.optObject("metadata") { (m) throws(FieldError) -> ObjectMeta in
            w.check(m, known: ["name", "generateName", "namespace", "uid", "labels", "annotations", "creationTimestamp"],
                    ignored: ["ownerReferences", "finalizers", "resourceVersion", "generation", "managedFields", "selfLink",
                              "deletionTimestamp", "deletionGracePeriodSeconds"])
            var name = try m.optString("name") ?? ""
            if name.isEmpty, let g = try m.optString("generateName"), !g.isEmpty {
                // Kubernetes' SimpleNameGenerator: the prefix is cut to 58 so the name fits 63.
                name = String(g.prefix(58)) + randomSuffix()
            }
            var meta = ObjectMeta(name: name)
            meta.namespace = try m.optString("namespace") ?? "default"
            if m.has("uid") { w.add(m.sub("uid"), "is assigned by Husk; the given value is ignored") }
            meta.labels = try m.optStringMap("labels") ?? [:]
            meta.annotations = try m.optStringMap("annotations") ?? [:]
            return meta
        } ?? ObjectMeta(name: "")
        guard let spec = try r.optObject("spec", { (s) throws(FieldError) in try decodeSpec(s, &w) }) else {
            throw r.error("spec", "required field is missing")
        }
        var pod = Pod(metadata: meta, spec: spec)
        pod.metadata.uid = newUID()
        return pod
    }

    static func decodeSpec(_ s: JSONReader, _ w: inout Warnings) throws(FieldError) -> PodSpec {
        w.check(s, known: [
            "initContainers", "containers", "volumes", "restartPolicy", "terminationGracePeriodSeconds",
            "activeDeadlineSeconds", "hostname", "subdomain", "setHostnameAsFQDN", "hostNetwork", "hostPID", "hostIPC", "hostUsers",
            "shareProcessNamespace", "dnsPolicy", "dnsConfig", "hostAliases", "securityContext", "imagePullSecrets",
        ], ignored: [
            "nodeName", "nodeSelector", "affinity", "tolerations", "serviceAccountName", "serviceAccount",
            "automountServiceAccountToken", "priorityClassName", "priority", "schedulerName",
            "enableServiceLinks", "preemptionPolicy", "overhead", "topologySpreadConstraints", "runtimeClassName",
            "readinessGates", "ephemeralContainers", "os", "resourceClaims", "resources", "schedulingGates",
        ])
        var spec = PodSpec()
        spec.initContainers = try s.optArray("initContainers") { (c) throws(FieldError) in try decodeContainer(c, &w) } ?? []
        spec.containers = try s.optArray("containers") { (c) throws(FieldError) in try decodeContainer(c, &w) } ?? []
        spec.volumes = try s.optArray("volumes") { (v) throws(FieldError) in try decodeVolume(v, &w) } ?? []
        if let p = try s.optString("restartPolicy") {
            if let rp = RestartPolicy(rawValue: p) {
                spec.restartPolicy = rp
            } else {
                w.problem(s, "restartPolicy", "Unsupported value \"\(p)\": supported values: \"Always\", \"OnFailure\", \"Never\"")
            }
        }
        // A negative grace period is stored as 1, as the API server does (kubernetes#115606).
        let grace = try s.optInt("terminationGracePeriodSeconds") ?? 30
        spec.terminationGracePeriodSeconds = grace < 0 ? 1 : grace
        spec.activeDeadlineSeconds = try s.optInt("activeDeadlineSeconds")
        spec.hostname = try s.optString("hostname")
        spec.subdomain = try s.optString("subdomain")
        spec.setHostnameAsFQDN = try s.optBool("setHostnameAsFQDN") ?? false
        spec.hostNetwork = try s.optBool("hostNetwork") ?? false
        spec.hostPID = try s.optBool("hostPID") ?? false
        spec.hostIPC = try s.optBool("hostIPC") ?? false
        spec.hostUsers = try s.optBool("hostUsers") ?? true
        spec.shareProcessNamespace = try s.optBool("shareProcessNamespace") ?? false
        spec.imagePullSecrets = try s.optArray("imagePullSecrets") { (r) throws(FieldError) -> String in
            w.check(r, known: ["name"])
            let name = try r.optString("name") ?? ""
            // The API server's check (a DNS subdomain); an empty name is dropped as kubelet drops it.
            if !name.isEmpty && !PodValidation.isDNSSubdomain(name) {
                w.problem(r, "name", "Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
            }
            return name
        }?.filter { !$0.isEmpty } ?? []
        if let d = try s.optString("dnsPolicy") {
            if let dp = DNSPolicy(rawValue: d) {
                spec.dnsPolicy = dp
            } else {
                w.problem(s, "dnsPolicy", "Unsupported value \"\(d)\": supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"")
            }
        }
        spec.dnsConfig = try s.optObject("dnsConfig") { (d) throws(FieldError) -> DNSConfig in
            w.check(d, known: ["nameservers", "searches", "options"])
            var c = DNSConfig()
            c.nameservers = try d.optStringArray("nameservers") ?? []
            c.searches = try d.optStringArray("searches") ?? []
            c.options = try d.optArray("options") { (o) throws(FieldError) -> (name: String, value: String?) in
                (try o.string("name"), try o.optString("value"))
            } ?? []
            return c
        }
        spec.hostAliases = try s.optArray("hostAliases") { (a) throws(FieldError) -> HostAlias in
            HostAlias(ip: try a.string("ip"), hostnames: try a.optStringArray("hostnames") ?? [])
        } ?? []
        spec.securityContext = try s.optObject("securityContext") { (c) throws(FieldError) -> PodSecurityContext in
            w.check(c, known: ["runAsUser", "runAsGroup", "runAsNonRoot", "supplementalGroups", "sysctls", "seccompProfile", "appArmorProfile"],
                    ignored: ["fsGroup", "fsGroupChangePolicy", "seLinuxOptions", "windowsOptions",
                              "supplementalGroupsPolicy", "seLinuxChangePolicy"])
            var x = PodSecurityContext()
            x.runAsUser = try c.optInt("runAsUser")
            x.runAsGroup = try c.optInt("runAsGroup")
            x.runAsNonRoot = try c.optBool("runAsNonRoot")
            x.supplementalGroups = try c.optArray("supplementalGroups") { (g) throws(FieldError) -> Int64 in
                guard case .number(let d) = g.value, d.rounded() == d else {
                    throw FieldError(path: g.path, message: "expected an integer, found \(g.value.kind)", line: g.line(g.path))
                }
                return Int64(d)
            } ?? []
            x.sysctls = try c.optArray("sysctls") { (y) throws(FieldError) -> (name: String, value: String) in
                (try y.string("name"), try y.string("value"))
            } ?? []
            x.seccompProfile = try c.optObject("seccompProfile") { (p) throws(FieldError) in try decodeSeccomp(p) }
            x.appArmorProfile = try c.optObject("appArmorProfile") { (p) throws(FieldError) in try decodeSeccomp(p) }
            return x
        } ?? PodSecurityContext()
        return spec
    }

    static func decodeSeccomp(_ p: JSONReader) throws(FieldError) -> SeccompProfileSpec {
        let t = try p.string("type")
        guard let kind = SeccompProfileSpec.Kind(rawValue: t) else {
            throw p.error("type", "unsupported value \"\(t)\": RuntimeDefault, Unconfined or Localhost")
        }
        return SeccompProfileSpec(type: kind, localhostProfile: try p.optString("localhostProfile"))
    }

    /// A random RFC 4122 version 4 UUID, as Kubernetes assigns pod UIDs.
    public static func newUID() -> String {
        var b = (0..<16).map { _ in UInt8.random(in: 0...255) }
        b[6] = (b[6] & 0x0f) | 0x40
        b[8] = (b[8] & 0x3f) | 0x80
        let hex = b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let h = Array(hex)
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-" + String(h[20..<32])
    }

    /// generateName's suffix: 5 characters from Kubernetes' alphabet (no vowels, no 0/1/3).
    static func randomSuffix() -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String((0..<5).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
    }
}

/// Warnings about fields Husk ignores: one per field.
struct Warnings {
    var list: [String]
    /// Problems found while decoding that do not stop it (unsupported enum values).
    var problems: [FieldError] = []

    mutating func problem(_ r: JSONReader, _ key: String, _ message: String) {
        problems.append(r.error(key, message))
    }

    mutating func add(_ path: String, _ message: String) {
        let w = "\(path): \(message)"
        if !list.contains(w) { list.append(w) }
    }

    /// Warns once for each key that is unknown, or known to Kubernetes but not implemented.
    mutating func check(_ r: JSONReader, known: Set<String>, ignored: Set<String> = []) {
        for k in r.keys where !known.contains(k) {
            let line = r.line(r.sub(k)).map { " (line \($0))" } ?? ""
            if ignored.contains(k) {
                add(r.sub(k), "is not implemented by Husk and is ignored\(line)")
            } else {
                add(r.sub(k), "is not a field Husk knows; it is ignored\(line)")
            }
        }
    }
}

/// Kubernetes resource quantities (64Mi, 1Gi, 500M, 1.5Gi, 1e3) as bytes.
public enum Quantity {
    /// A cpu quantity ("500m", "1", "0.25") in millicores, rounded up as the API does.
    /// Too large for an int64, "inf", "nan": nil, an invalid quantity (these once crashed
    /// `husk run`: found by the quantity fuzz target).
    public static func milli(_ text: String) -> Int64? {
        let t = text.trimmed()
        if t.hasSuffix("m") {
            guard let v = Double(t.dropLast()) else { return nil }
            return exact(v.rounded(.up))
        }
        if let v = Double(t) { return exact((v * 1000).rounded(.up)) }
        guard let b = bytes(t) else { return nil }  // k, M, Ki, ...: whole cores
        let (milli, overflow) = b.multipliedReportingOverflow(by: 1000)
        return overflow ? nil : milli
    }

    /// `v` as an int64 when it is a finite, non-negative value that fits.
    static func exact(_ v: Double) -> Int64? {
        guard v.isFinite, v >= 0, v < 9.2e18 else { return nil }
        return Int64(v)
    }

    public static func bytes(_ text: String) -> Int64? {
        let t = text.trimmed()
        var numberEnd = t.startIndex
        while numberEnd < t.endIndex, t[numberEnd].isNumber || t[numberEnd] == "." || t[numberEnd] == "+" || (t[numberEnd] == "-" && numberEnd == t.startIndex) {
            numberEnd = t.index(after: numberEnd)
        }
        guard let number = Double(t[..<numberEnd]), number >= 0 else { return nil }
        let suffix = String(t[numberEnd...])
        let multipliers: [String: Double] = [
            "": 1, "Ki": 1024, "Mi": 1_048_576, "Gi": 1_073_741_824, "Ti": 1_099_511_627_776,
            "Pi": 1_125_899_906_842_624, "Ei": 1_152_921_504_606_846_976,
            "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3,
        ]
        var m: Double
        if let x = multipliers[suffix] {
            m = x
        } else if suffix.hasPrefix("e") || suffix.hasPrefix("E"), let e = Int(suffix.dropFirst()), (-400...400).contains(e) {
            m = 1
            for _ in 0..<abs(e) { m = e > 0 ? m * 10 : m / 10 }
        } else {
            return nil
        }
        return exact((number * m).rounded(.up))
    }
}
