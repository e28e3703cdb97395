import FoundationEssentials
import HuskImage
import HuskJSON
import HuskSystem
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
    /// Reads and validates a manifest file. Warnings name fields Husk does not implement.
    public static func load(_ path: String) throws -> (Pod, warnings: [String]) {
        guard let bytes = try Files.read(path) else {
            throw HuskError(.notFound, "\(path): no such file")
        }
        return try parse(bytes, file: path)
    }

    public static func parse(_ bytes: [UInt8], file: String = "pod.yaml") throws -> (Pod, warnings: [String]) {
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
        let value = try convert(docs[0], path: "", lines: &lines, file: file)
        return (value, lines)
    }

    static func yamlMessage(_ e: YamlError) -> String {
        let s = "\(e)"
        return s.split(separator: "\n").first.map(String.init) ?? s
    }

    static func yamlLine(_ e: YamlError) -> Int? {
        switch e {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    static func convert(_ node: Node, path: String, lines: inout [String: Int], file: String) throws -> JSONValue {
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
                o[key] = try convert(v, path: path.isEmpty ? key : path + "." + key, lines: &lines, file: file)
            }
            return .object(o)
        case .sequence(let seq):
            var a: [JSONValue] = []
            for (i, v) in seq.enumerated() { a.append(try convert(v, path: path + "[\(i)]", lines: &lines, file: file)) }
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
            "activeDeadlineSeconds", "hostname", "subdomain", "setHostnameAsFQDN", "hostNetwork", "hostPID", "hostIPC",
            "shareProcessNamespace", "dnsPolicy", "dnsConfig", "hostAliases", "securityContext",
        ], ignored: [
            "nodeName", "nodeSelector", "affinity", "tolerations", "serviceAccountName", "serviceAccount",
            "automountServiceAccountToken", "priorityClassName", "priority", "schedulerName", "imagePullSecrets",
            "enableServiceLinks", "preemptionPolicy", "overhead", "topologySpreadConstraints", "runtimeClassName",
            "readinessGates", "ephemeralContainers", "os", "hostUsers", "resourceClaims", "resources", "schedulingGates",
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
        spec.shareProcessNamespace = try s.optBool("shareProcessNamespace") ?? false
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
            w.check(c, known: ["runAsUser", "runAsGroup", "runAsNonRoot", "supplementalGroups", "sysctls", "seccompProfile"],
                    ignored: ["fsGroup", "fsGroupChangePolicy", "seLinuxOptions", "appArmorProfile", "windowsOptions",
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

    /// `resources` (apis/core/validation ValidateResourceRequirements, the parts Husk uses):
    /// quantities that parse, requests not above limits, requests defaulted to limits.
    /// Resources Husk does not enforce (extended resources, ephemeral-storage) are warned.
    static func decodeResources(_ r: JSONReader, _ w: inout Warnings) throws(FieldError) -> ResourceRequirements {
        try r.requireObject()
        w.check(r, known: ["limits", "requests"], ignored: ["claims"])
        var out = ResourceRequirements()
        func quantities(_ key: String) throws(FieldError) -> [String: String] {
            guard let m = r.child(key) else { return [:] }
            try m.requireObject()
            var q: [String: String] = [:]
            for name in m.keys.sorted() {
                guard let v = m.child(name) else { continue }
                let text: String
                switch v.value {
                case .string(let s): text = s
                case .number(let n): text = n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)
                default: throw m.error(name, "Invalid value: quantities must be strings or numbers")
                }
                guard (name == "cpu" ? Quantity.milli(text) : Quantity.bytes(text)) != nil else {
                    throw m.error(name, "Invalid value: \"\(text)\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
                }
                if name != "cpu" && name != "memory" && !name.hasPrefix("hugepages-") {
                    w.add(m.sub(name), "is not enforced by Husk and is ignored")
                }
                q[name] = text
            }
            return q
        }
        out.limits = try quantities("limits")
        out.requests = try quantities("requests")
        for (name, limit) in out.limits where out.requests[name] == nil { out.requests[name] = limit }
        for (name, request) in out.requests {
            guard let limit = out.limits[name] else { continue }
            let (a, b) = name == "cpu" ? (Quantity.milli(request) ?? 0, Quantity.milli(limit) ?? 0) : (Quantity.bytes(request) ?? 0, Quantity.bytes(limit) ?? 0)
            if a > b {
                throw r.error("requests", "Invalid value: \"\(request)\": must be less than or equal to \(name) limit of \(limit)")
            }
        }
        return out
    }

    static func decodeContainer(_ c: JSONReader, _ w: inout Warnings) throws(FieldError) -> ContainerSpec {
        try c.requireObject()
        w.check(c, known: [
            "name", "image", "imagePullPolicy", "command", "args", "workingDir", "env", "ports", "volumeMounts",
            "lifecycle", "livenessProbe", "readinessProbe", "startupProbe", "terminationMessagePath",
            "terminationMessagePolicy", "securityContext", "restartPolicy", "stdin", "stdinOnce", "tty", "resources",
        ], ignored: ["envFrom", "volumeDevices", "resizePolicy", "restartPolicyRules"])
        let image = try c.optString("image") ?? ""
        var policy = PullPolicy.defaultFor(image)
        if let p = try c.optString("imagePullPolicy") {
            if let pp = PullPolicy(rawValue: p) {
                policy = pp
            } else {
                w.problem(c, "imagePullPolicy", "Unsupported value \"\(p)\": supported values: \"Always\", \"IfNotPresent\", \"Never\"")
            }
        }
        var spec = ContainerSpec(name: try c.optString("name") ?? "", image: image, imagePullPolicy: policy)
        spec.command = try c.optStringArray("command")
        spec.args = try c.optStringArray("args")
        spec.workingDir = try c.optString("workingDir")
        spec.env = try c.optArray("env") { (e) throws(FieldError) -> EnvVarSpec in
            w.check(e, known: ["name", "value", "valueFrom"])
            var v = EnvVarSpec(name: try e.optString("name") ?? "", value: try e.optString("value"), fieldRef: nil)
            if let from = e.child("valueFrom") {
                try from.requireObject()
                if let f = try from.optObject("fieldRef", { (f) throws(FieldError) in try f.string("fieldPath") }) {
                    v.fieldRef = f
                } else {
                    let kind = from.keys.first ?? "valueFrom"
                    throw from.error(kind, "is not supported by Husk (no ConfigMaps, Secrets or resource fields): use value or fieldRef")
                }
            }
            return v
        } ?? []
        spec.ports = try c.optArray("ports") { (p) throws(FieldError) -> ContainerPort in
            w.check(p, known: ["name", "containerPort", "hostPort", "protocol", "hostIP"])
            return ContainerPort(
                name: try p.optString("name"), containerPort: try p.int("containerPort"), hostPort: try p.optInt("hostPort"),
                protocol: try p.optString("protocol") ?? "TCP")
        } ?? []
        spec.volumeMounts = try c.optArray("volumeMounts") { (m) throws(FieldError) -> VolumeMount in
            w.check(m, known: ["name", "mountPath", "readOnly", "subPath", "mountPropagation"], ignored: ["subPathExpr", "recursiveReadOnly"])
            var vm = VolumeMount(name: try m.optString("name") ?? "", mountPath: try m.optString("mountPath") ?? "")
            vm.readOnly = try m.optBool("readOnly") ?? false
            vm.subPath = try m.optString("subPath")
            vm.mountPropagation = try m.optString("mountPropagation")
            return vm
        } ?? []
        spec.lifecycle = try c.optObject("lifecycle") { (l) throws(FieldError) -> Lifecycle in
            w.check(l, known: ["postStart", "preStop", "stopSignal"])
            return Lifecycle(
                postStart: try l.optObject("postStart") { (h) throws(FieldError) in try decodeHandler(h, probe: false) },
                preStop: try l.optObject("preStop") { (h) throws(FieldError) in try decodeHandler(h, probe: false) },
                stopSignal: try l.optString("stopSignal"))
        }
        for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
            let probe = try c.optObject(kind) { (p) throws(FieldError) -> Probe in
                w.check(p, known: ["exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "timeoutSeconds", "periodSeconds",
                                   "successThreshold", "failureThreshold", "terminationGracePeriodSeconds"])
                var pr = Probe(handler: try decodeHandler(p, probe: true))
                pr.initialDelaySeconds = try p.optInt("initialDelaySeconds") ?? 0
                pr.timeoutSeconds = try p.optInt("timeoutSeconds") ?? 1
                pr.periodSeconds = try p.optInt("periodSeconds") ?? 10
                pr.successThreshold = try p.optInt("successThreshold") ?? 1
                pr.failureThreshold = try p.optInt("failureThreshold") ?? 3
                pr.terminationGracePeriodSeconds = try p.optInt("terminationGracePeriodSeconds")
                return pr
            }
            switch kind {
            case "livenessProbe": spec.livenessProbe = probe
            case "readinessProbe": spec.readinessProbe = probe
            default: spec.startupProbe = probe
            }
        }
        // SetDefaults_Container: an empty path or policy is defaulted like a missing one.
        let messagePath = try c.optString("terminationMessagePath") ?? ""
        spec.terminationMessagePath = messagePath.isEmpty ? "/dev/termination-log" : messagePath
        let messagePolicy = try c.optString("terminationMessagePolicy") ?? ""
        spec.terminationMessagePolicy = messagePolicy.isEmpty ? "File" : messagePolicy
        spec.securityContext = try c.optObject("securityContext") { (s) throws(FieldError) -> ContainerSecurityContext in
            w.check(s, known: ["runAsUser", "runAsGroup", "runAsNonRoot", "privileged", "capabilities", "readOnlyRootFilesystem",
                               "allowPrivilegeEscalation", "seccompProfile", "procMount"],
                    ignored: ["seLinuxOptions", "appArmorProfile", "windowsOptions"])
            var x = ContainerSecurityContext()
            x.runAsUser = try s.optInt("runAsUser")
            x.runAsGroup = try s.optInt("runAsGroup")
            x.runAsNonRoot = try s.optBool("runAsNonRoot")
            x.privileged = try s.optBool("privileged") ?? false
            if let caps = s.child("capabilities") {
                w.check(caps, known: ["add", "drop"])
                x.capabilitiesAdd = try caps.optStringArray("add") ?? []
                x.capabilitiesDrop = try caps.optStringArray("drop") ?? []
            }
            x.readOnlyRootFilesystem = try s.optBool("readOnlyRootFilesystem") ?? false
            x.allowPrivilegeEscalation = try s.optBool("allowPrivilegeEscalation")
            x.seccompProfile = try s.optObject("seccompProfile") { (p) throws(FieldError) in try decodeSeccomp(p) }
            x.procMount = try s.optString("procMount")
            return x
        }
        spec.restartPolicy = try c.optString("restartPolicy")
        if let r = c.child("resources") { spec.resources = try decodeResources(r, &w) }
        spec.stdin = try c.optBool("stdin") ?? false
        spec.stdinOnce = try c.optBool("stdinOnce") ?? false
        spec.tty = try c.optBool("tty") ?? false
        return spec
    }

    static func decodePort(_ r: JSONReader, _ key: String) throws(FieldError) -> PortRef {
        guard let c = r.child(key) else { throw r.error(key, "required field is missing") }
        switch c.value {
        case .number(let d) where d.rounded() == d: return .number(Int64(d))
        case .string(let s): return Int64(s).map { .number($0) } ?? .name(s)
        default: throw r.error(key, "expected a port number or name, found \(c.value.kind)")
        }
    }

    static func decodeHandler(_ h: JSONReader, probe: Bool) throws(FieldError) -> Handler {
        // Kubernetes' order; a second action is reported at its own path.
        let kinds = ["exec", "httpGet", "tcpSocket", "grpc", "sleep"].filter { h.has($0) }
        guard kinds.count == 1 else {
            if kinds.isEmpty {
                throw h.error(nil, "Required value: must specify a handler type (exec, httpGet\(probe ? ", tcpSocket or grpc" : " or sleep"))")
            }
            throw h.error(kinds[1], "Forbidden: may not specify more than 1 handler type (found \(kinds.joined(separator: ", ")))")
        }
        switch kinds[0] {
        case "exec":
            guard let e = h.child("exec") else { throw h.error("exec", "required") }
            return .exec(command: try e.optStringArray("command") ?? [])
        case "httpGet":
            guard let g = h.child("httpGet") else { throw h.error("httpGet", "required") }
            let headers = try g.optArray("httpHeaders") { (x) throws(FieldError) -> (name: String, value: String) in
                (try x.string("name"), try x.optString("value") ?? "")
            } ?? []
            return .httpGet(HTTPGet(
                path: try g.optString("path") ?? "/", port: try decodePort(g, "port"), host: try g.optString("host"),
                scheme: try g.optString("scheme") ?? "HTTP", headers: headers))
        case "tcpSocket":
            guard let t = h.child("tcpSocket") else { throw h.error("tcpSocket", "required") }
            return .tcpSocket(host: try t.optString("host"), port: try decodePort(t, "port"))
        case "sleep":
            guard let s = h.child("sleep") else { throw h.error("sleep", "required") }
            return .sleep(seconds: try s.int("seconds"))
        default:
            guard let g = h.child("grpc") else { throw h.error("grpc", "required") }
            return .grpc(port: try g.int("port"), service: try g.optString("service"))
        }
    }

    static func decodeVolume(_ v: JSONReader, _ w: inout Warnings) throws(FieldError) -> Volume {
        try v.requireObject()
        let name = try v.optString("name") ?? ""
        let sources = v.keys.filter { $0 != "name" }
        if sources.isEmpty { return Volume(name: name, source: .emptyDir(medium: "", sizeLimit: nil)) }  // defaults to emptyDir
        guard sources.count == 1 else {
            throw v.error(nil, "may not specify more than one volume source (found \(sources.joined(separator: ", ")))")
        }
        switch sources[0] {
        case "emptyDir":
            guard let e = v.child("emptyDir") else { return Volume(name: name, source: .emptyDir(medium: "", sizeLimit: nil)) }
            w.check(e, known: ["medium", "sizeLimit"])
            let medium = try e.optString("medium") ?? ""
            var limit: Int64? = nil
            if let q = e.child("sizeLimit") {
                let text: String
                switch q.value {
                case .string(let s): text = s
                case .number(let d): text = String(Int64(d))
                default: throw e.error("sizeLimit", "expected a quantity such as 64Mi, found \(q.value.kind)")
                }
                guard let bytes = Quantity.bytes(text) else {
                    throw e.error("sizeLimit", "\"\(text)\" is not a quantity (e.g. 64Mi, 1Gi, 500M)")
                }
                limit = bytes
            }
            return Volume(name: name, source: .emptyDir(medium: medium, sizeLimit: limit))
        case "hostPath":
            guard let h = v.child("hostPath") else { throw v.error("hostPath", "required") }
            w.check(h, known: ["path", "type"])
            return Volume(name: name, source: .hostPath(path: try h.string("path"), type: try h.optString("type") ?? ""))
        case let other:
            throw v.error(other, "volume source \(other) is not supported by Husk (emptyDir and hostPath are)")
        }
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
    public static func milli(_ text: String) -> Int64? {
        let t = text.trimmed()
        if t.hasSuffix("m") {
            guard let v = Double(t.dropLast()), v >= 0 else { return nil }
            return Int64(v.rounded(.up))
        }
        if let v = Double(t), v >= 0 { return Int64((v * 1000).rounded(.up)) }
        guard let b = bytes(t) else { return nil }  // k, M, Ki, ...: whole cores
        return b * 1000
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
        } else if suffix.hasPrefix("e") || suffix.hasPrefix("E"), let e = Int(suffix.dropFirst()) {
            m = 1
            for _ in 0..<abs(e) { m = e > 0 ? m * 10 : m / 10 }
        } else {
            return nil
        }
        let v = (number * m).rounded(.up)
        guard v < 9.2e18 else { return nil }
        return Int64(v)
    }
}
