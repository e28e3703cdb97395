import HuskImage
import HuskJSON
import HuskSystem

/// A Pod as a JSON tree in Kubernetes' shape, with every default filled: what `husk inspect`
/// shows as `spec`, and what the supervisor reads back (`PodManifest.stored`).
extension Pod {
    public var json: JSONValue {
        var meta: [String: JSONValue] = [
            "name": .string(metadata.name), "namespace": .string(metadata.namespace), "uid": .string(metadata.uid),
        ]
        if !metadata.labels.isEmpty { meta["labels"] = .object(metadata.labels.mapValues { .string($0) }) }
        if !metadata.annotations.isEmpty { meta["annotations"] = .object(metadata.annotations.mapValues { .string($0) }) }
        if let t = metadata.creationTimestamp { meta["creationTimestamp"] = .string(t) }
        return .object(["apiVersion": .string("v1"), "kind": .string("Pod"), "metadata": .object(meta), "spec": spec.json])
    }
}

extension PodSpec {
    var json: JSONValue {
        var o: [String: JSONValue] = [
            "containers": .array(containers.map(\.json)),
            "restartPolicy": .string(restartPolicy.rawValue),
            "terminationGracePeriodSeconds": .number(Double(terminationGracePeriodSeconds)),
            "dnsPolicy": .string(dnsPolicy.rawValue),
            "securityContext": securityContext.json,
        ]
        if !initContainers.isEmpty { o["initContainers"] = .array(initContainers.map(\.json)) }
        if !volumes.isEmpty { o["volumes"] = .array(volumes.map(\.json)) }
        if let d = activeDeadlineSeconds { o["activeDeadlineSeconds"] = .number(Double(d)) }
        if let h = hostname { o["hostname"] = .string(h) }
        if let s = subdomain { o["subdomain"] = .string(s) }
        if setHostnameAsFQDN { o["setHostnameAsFQDN"] = .bool(true) }
        if hostNetwork { o["hostNetwork"] = .bool(true) }
        if hostPID { o["hostPID"] = .bool(true) }
        if hostIPC { o["hostIPC"] = .bool(true) }
        if !hostUsers { o["hostUsers"] = .bool(false) }
        if shareProcessNamespace { o["shareProcessNamespace"] = .bool(true) }
        if !imagePullSecrets.isEmpty { o["imagePullSecrets"] = .array(imagePullSecrets.map { .object(["name": .string($0)]) }) }
        if let c = dnsConfig {
            var d: [String: JSONValue] = [:]
            if !c.nameservers.isEmpty { d["nameservers"] = .array(c.nameservers.map { .string($0) }) }
            if !c.searches.isEmpty { d["searches"] = .array(c.searches.map { .string($0) }) }
            if !c.options.isEmpty {
                d["options"] = .array(c.options.map { opt in
                    var x: [String: JSONValue] = ["name": .string(opt.name)]
                    if let v = opt.value { x["value"] = .string(v) }
                    return .object(x)
                })
            }
            o["dnsConfig"] = .object(d)
        }
        if !hostAliases.isEmpty {
            o["hostAliases"] = .array(hostAliases.map {
                .object(["ip": .string($0.ip), "hostnames": .array($0.hostnames.map { .string($0) })])
            })
        }
        return .object(o)
    }
}

extension PodSecurityContext {
    var json: JSONValue {
        var o: [String: JSONValue] = [:]
        if let u = runAsUser { o["runAsUser"] = .number(Double(u)) }
        if let g = runAsGroup { o["runAsGroup"] = .number(Double(g)) }
        if let n = runAsNonRoot { o["runAsNonRoot"] = .bool(n) }
        if !supplementalGroups.isEmpty { o["supplementalGroups"] = .array(supplementalGroups.map { .number(Double($0)) }) }
        if !sysctls.isEmpty {
            o["sysctls"] = .array(sysctls.map { .object(["name": .string($0.name), "value": .string($0.value)]) })
        }
        if let s = seccompProfile { o["seccompProfile"] = s.json }
        if let s = appArmorProfile { o["appArmorProfile"] = s.json }
        return .object(o)
    }
}

extension SeccompProfileSpec {
    var json: JSONValue {
        var o: [String: JSONValue] = ["type": .string(type.rawValue)]
        if let p = localhostProfile { o["localhostProfile"] = .string(p) }
        return .object(o)
    }
}

extension ContainerSpec {
    var json: JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(name), "image": .string(image), "imagePullPolicy": .string(imagePullPolicy.rawValue),
            "terminationMessagePath": .string(terminationMessagePath),
            "terminationMessagePolicy": .string(terminationMessagePolicy),
        ]
        func strings(_ a: [String]) -> JSONValue { .array(a.map { .string($0) }) }
        if let c = command { o["command"] = strings(c) }
        if let a = args { o["args"] = strings(a) }
        if let w = workingDir { o["workingDir"] = .string(w) }
        if !env.isEmpty {
            o["env"] = .array(env.map { e in
                var x: [String: JSONValue] = ["name": .string(e.name)]
                if let v = e.value { x["value"] = .string(v) }
                if let f = e.fieldRef {
                    x["valueFrom"] = .object(["fieldRef": .object(["apiVersion": .string("v1"), "fieldPath": .string(f)])])
                }
                return .object(x)
            })
        }
        if !ports.isEmpty {
            o["ports"] = .array(ports.map { p in
                var x: [String: JSONValue] = ["containerPort": .number(Double(p.containerPort)), "protocol": .string(p.protocol)]
                if let n = p.name { x["name"] = .string(n) }
                if let h = p.hostPort { x["hostPort"] = .number(Double(h)) }
                return .object(x)
            })
        }
        if !volumeMounts.isEmpty {
            o["volumeMounts"] = .array(volumeMounts.map { m in
                var x: [String: JSONValue] = ["name": .string(m.name), "mountPath": .string(m.mountPath)]
                if m.readOnly { x["readOnly"] = .bool(true) }
                if let s = m.subPath { x["subPath"] = .string(s) }
                if let p = m.mountPropagation { x["mountPropagation"] = .string(p) }
                return .object(x)
            })
        }
        if let l = lifecycle {
            var x: [String: JSONValue] = [:]
            if let h = l.postStart { x["postStart"] = h.json }
            if let h = l.preStop { x["preStop"] = h.json }
            if let s = l.stopSignal { x["stopSignal"] = .string(s) }
            o["lifecycle"] = .object(x)
        }
        for (probe, key) in [(livenessProbe, "livenessProbe"), (readinessProbe, "readinessProbe"), (startupProbe, "startupProbe")] {
            guard let p = probe, case .object(var x) = p.handler.json else { continue }
            x["initialDelaySeconds"] = .number(Double(p.initialDelaySeconds))
            x["timeoutSeconds"] = .number(Double(p.timeoutSeconds))
            x["periodSeconds"] = .number(Double(p.periodSeconds))
            x["successThreshold"] = .number(Double(p.successThreshold))
            x["failureThreshold"] = .number(Double(p.failureThreshold))
            if let t = p.terminationGracePeriodSeconds { x["terminationGracePeriodSeconds"] = .number(Double(t)) }
            o[key] = .object(x)
        }
        if let s = securityContext {
            var x: [String: JSONValue] = [:]
            if let u = s.runAsUser { x["runAsUser"] = .number(Double(u)) }
            if let g = s.runAsGroup { x["runAsGroup"] = .number(Double(g)) }
            if let n = s.runAsNonRoot { x["runAsNonRoot"] = .bool(n) }
            if s.privileged { x["privileged"] = .bool(true) }
            if !s.capabilitiesAdd.isEmpty || !s.capabilitiesDrop.isEmpty {
                var c: [String: JSONValue] = [:]
                if !s.capabilitiesAdd.isEmpty { c["add"] = strings(s.capabilitiesAdd) }
                if !s.capabilitiesDrop.isEmpty { c["drop"] = strings(s.capabilitiesDrop) }
                x["capabilities"] = .object(c)
            }
            if s.readOnlyRootFilesystem { x["readOnlyRootFilesystem"] = .bool(true) }
            if let a = s.allowPrivilegeEscalation { x["allowPrivilegeEscalation"] = .bool(a) }
            if let p = s.seccompProfile { x["seccompProfile"] = p.json }
            if let p = s.appArmorProfile { x["appArmorProfile"] = p.json }
            if let p = s.procMount { x["procMount"] = .string(p) }
            o["securityContext"] = .object(x)
        }
        if let r = restartPolicy { o["restartPolicy"] = .string(r) }
        if !resources.isEmpty {
            var r: [String: JSONValue] = [:]
            if !resources.limits.isEmpty { r["limits"] = .object(resources.limits.mapValues { .string($0) }) }
            if !resources.requests.isEmpty { r["requests"] = .object(resources.requests.mapValues { .string($0) }) }
            o["resources"] = .object(r)
        }
        if stdin { o["stdin"] = .bool(true) }
        if stdinOnce { o["stdinOnce"] = .bool(true) }
        if tty { o["tty"] = .bool(true) }
        return .object(o)
    }
}

extension Handler {
    var json: JSONValue {
        func port(_ p: PortRef) -> JSONValue {
            switch p {
            case .number(let n): return .number(Double(n))
            case .name(let s): return .string(s)
            }
        }
        switch self {
        case .exec(let c): return .object(["exec": .object(["command": .array(c.map { .string($0) })])])
        case .httpGet(let g):
            var x: [String: JSONValue] = ["path": .string(g.path), "port": port(g.port), "scheme": .string(g.scheme)]
            if let h = g.host { x["host"] = .string(h) }
            if !g.headers.isEmpty {
                x["httpHeaders"] = .array(g.headers.map { .object(["name": .string($0.name), "value": .string($0.value)]) })
            }
            return .object(["httpGet": .object(x)])
        case .tcpSocket(let host, let p):
            var x: [String: JSONValue] = ["port": port(p)]
            if let host { x["host"] = .string(host) }
            return .object(["tcpSocket": .object(x)])
        case .sleep(let s): return .object(["sleep": .object(["seconds": .number(Double(s))])])
        case .grpc(let p, let service):
            var x: [String: JSONValue] = ["port": .number(Double(p))]
            if let service { x["service"] = .string(service) }
            return .object(["grpc": .object(x)])
        }
    }
}

extension Volume {
    var json: JSONValue {
        switch source {
        case .emptyDir(let medium, let limit):
            var x: [String: JSONValue] = [:]
            if !medium.isEmpty { x["medium"] = .string(medium) }
            if let limit { x["sizeLimit"] = .string(String(limit)) }
            return .object(["name": .string(name), "emptyDir": .object(x)])
        case .hostPath(let path, let type):
            return .object(["name": .string(name), "hostPath": .object(["path": .string(path), "type": .string(type)])])
        }
    }
}

extension PodManifest {
    /// A pod as Husk stored it (`Pod.json`): decoded without YAML and without assigning a new
    /// uid.
    public static func stored(_ json: JSONValue) throws(FieldError) -> Pod {
        var w = Warnings(list: [])
        var pod = try decode(JSONReader(json), &w)
        if let p = w.problems.first { throw p }
        if let uid = json["metadata"]?["uid"]?.stringValue { pod.metadata.uid = uid }
        if let t = json["metadata"]?["creationTimestamp"]?.stringValue { pod.metadata.creationTimestamp = t }
        return pod
    }
}

/// YAML output (`husk inspect -o yaml`): block style, strings quoted when YAML would read them
/// as something else.
public enum YAMLText {
    public static func render(_ v: JSONValue) -> String {
        var out = ""
        emit(v, indent: 0, into: &out, inSequence: false)
        return out
    }

    static func scalar(_ v: JSONValue) -> String? {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number: return v.text
        case .string(let s): return quote(s)
        case .array(let a) where a.isEmpty: return "[]"
        case .object(let o) where o.isEmpty: return "{}"
        default: return nil
        }
    }

    static func quote(_ s: String) -> String {
        let plainSafe = !s.isEmpty && s.first.map({ $0.isLetter || $0 == "/" || $0 == "_" }) == true
            && s.allSatisfy { $0.isLetter || $0.isNumber || "/._-+=@".contains($0) }
            && !["true", "false", "yes", "no", "on", "off", "null", "y", "n"].contains(s.lowercased())
        return plainSafe ? s : JSONText.string(s)
    }

    static func emit(_ v: JSONValue, indent: Int, into out: inout String, inSequence: Bool) {
        let pad = String(repeating: "  ", count: indent)
        switch v {
        case .object(let o) where !o.isEmpty:
            var first = true
            for k in o.keys.sorted() {
                let prefix = (inSequence && first) ? "" : pad
                first = false
                let value = o[k]!
                if let s = scalar(value) {
                    out += "\(prefix)\(quote(k)): \(s)\n"
                } else {
                    out += "\(prefix)\(quote(k)):\n"
                    emit(value, indent: indent + 1, into: &out, inSequence: false)
                }
            }
        case .array(let a) where !a.isEmpty:
            for item in a {
                if let s = scalar(item) {
                    out += "\(pad)- \(s)\n"
                } else {
                    out += "\(pad)- "
                    emit(item, indent: indent + 1, into: &out, inSequence: true)
                }
            }
        default:
            out += pad + (scalar(v) ?? "") + "\n"
        }
    }
}
