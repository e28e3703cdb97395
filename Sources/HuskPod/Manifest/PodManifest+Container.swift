import HuskImage
import HuskJSON
import HuskSystem

/// Decoding a pod's containers (resources, ports, handlers) and volumes.
extension PodManifest {
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
                               "allowPrivilegeEscalation", "seccompProfile", "appArmorProfile", "procMount"],
                    ignored: ["seLinuxOptions", "windowsOptions"])
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
            x.appArmorProfile = try s.optObject("appArmorProfile") { (p) throws(FieldError) in try decodeSeccomp(p) }
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
        case .number(let d) where d.rounded() == d && abs(d) <= 2_147_483_647: return .number(Int64(d))
        case .number(let d): throw r.error(key, "Invalid value: \(d): must be between 1 and 65535, inclusive")
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
                case .number(let d): text = d.rounded() == d && abs(d) < 9.2e18 ? String(Int64(d)) : String(d)
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
}
