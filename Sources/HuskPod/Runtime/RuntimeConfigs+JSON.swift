import HuskImage
import HuskJSON
import HuskRuntime
import HuskSystem

/// The typed configs on disk and on the control socket (`husk serve` hands them to a
/// sandbox's supervisor): HuskJSON both ways, no Codable in the supervisor. The image of a
/// container travels by id and is looked up in the store by the side that reads it.

extension Spec.IDMapping {
    /// `[containerID, hostID, size]`.
    static func json(_ maps: [Spec.IDMapping]) -> JSONValue {
        .array(maps.map { .array([.number(Double($0.containerID)), .number(Double($0.hostID)), .number(Double($0.size))]) })
    }

    static func read(_ r: JSONReader, _ key: String) throws(FieldError) -> [Spec.IDMapping] {
        try r.optArray(key) { (m) throws(FieldError) -> Spec.IDMapping in
            guard case .array(let v) = m.value, v.count == 3, case .number(let c) = v[0], case .number(let h) = v[1], case .number(let n) = v[2],
                  let c32 = UInt32(exactly: c), let h32 = UInt32(exactly: h), let n32 = UInt32(exactly: n)
            else { throw m.error(nil, "an id mapping is [containerID, hostID, size]") }
            return Spec.IDMapping(containerID: c32, hostID: h32, size: n32)
        } ?? []
    }
}

extension PodSandboxConfig {
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "metadata": .object([
                "name": .string(metadata.name), "namespace": .string(metadata.namespace), "uid": .string(metadata.uid),
                "attempt": .number(Double(metadata.attempt)),
            ]),
            "hostname": .string(hostname),
            "logDirectory": .string(logDirectory),
            "namespaces": .object([
                "network": .number(Double(namespaces.network.rawValue)), "pid": .number(Double(namespaces.pid.rawValue)),
                "ipc": .number(Double(namespaces.ipc.rawValue)),
            ]),
        ]
        if let dns {
            o["dns"] = .object(["servers": .strings(dns.servers), "searches": .strings(dns.searches), "options": .strings(dns.options)])
        }
        if !portMappings.isEmpty {
            o["portMappings"] = .array(portMappings.map {
                .object(["protocol": .string($0.proto), "containerPort": .number(Double($0.containerPort)),
                         "hostPort": .number(Double($0.hostPort)), "hostIP": .string($0.hostIP)])
            })
        }
        if !labels.isEmpty { o["labels"] = .strings(labels) }
        if !annotations.isEmpty { o["annotations"] = .strings(annotations) }
        if !sysctls.isEmpty { o["sysctls"] = .strings(sysctls) }
        if let unified = resources?.unified, !unified.isEmpty { o["resources"] = .object(["unified": .strings(unified)]) }
        if let u = userNamespace { o["userNamespace"] = .object(["uids": Spec.IDMapping.json(u.uids), "gids": Spec.IDMapping.json(u.gids)]) }
        if let cgroupParent { o["cgroupParent"] = .string(cgroupParent) }
        return .object(o)
    }

    public init(json r: JSONReader) throws(FieldError) {
        guard let m = r.child("metadata") else { throw r.error("metadata", "is required") }
        self.init(
            metadata: .init(name: try m.string("name"), namespace: try m.string("namespace"), uid: try m.string("uid"),
                            attempt: Int(try m.optInt("attempt") ?? 0)),
            hostname: try r.optString("hostname") ?? "", logDirectory: try r.optString("logDirectory") ?? "")
        dns = try r.optObject("dns") { (d) throws(FieldError) in
            DNS(servers: try d.optStringArray("servers") ?? [], searches: try d.optStringArray("searches") ?? [],
                options: try d.optStringArray("options") ?? [])
        }
        portMappings = try r.optArray("portMappings") { (p) throws(FieldError) in
            PortMapping(proto: try p.optString("protocol") ?? "TCP", containerPort: try p.int32("containerPort"),
                        hostPort: try p.int32("hostPort", default: 0), hostIP: try p.optString("hostIP") ?? "")
        } ?? []
        labels = try r.optStringMap("labels") ?? [:]
        annotations = try r.optStringMap("annotations") ?? [:]
        sysctls = try r.optStringMap("sysctls") ?? [:]
        if let n = r.child("namespaces") {
            func mode(_ key: String, _ fallback: NamespaceMode) throws(FieldError) -> NamespaceMode {
                guard let v = try n.optInt(key) else { return fallback }
                guard let m = NamespaceMode(rawValue: Int(v)) else { throw n.error(key, "is not a namespace mode (0 pod, 1 container, 2 node)") }
                return m
            }
            namespaces = Namespaces(network: try mode("network", .pod), pid: try mode("pid", .container), ipc: try mode("ipc", .pod))
        }
        resources = try Spec.Resources.unified(r)
        if let u = r.child("userNamespace") {
            userNamespace = UserNamespace(uids: try Spec.IDMapping.read(u, "uids"), gids: try Spec.IDMapping.read(u, "gids"))
        }
        cgroupParent = try r.optString("cgroupParent")
    }
}

extension ContainerConfig {
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(name), "attempt": .number(Double(attempt)), "image": .string(image.id.description),
            "logPath": .string(logPath),
        ]
        if let command { o["command"] = .strings(command) }
        if let args { o["args"] = .strings(args) }
        if let workingDir { o["workingDir"] = .string(workingDir) }
        if !envs.isEmpty { o["envs"] = .array(envs.map { .array([.string($0.name), .string($0.value)]) }) }
        if !mounts.isEmpty {
            o["mounts"] = .array(mounts.map { m in
                var x: [String: JSONValue] = ["containerPath": .string(m.containerPath), "hostPath": .string(m.hostPath)]
                if m.readonly { x["readonly"] = .bool(true) }
                switch m.propagation {
                case .private: break
                case .hostToContainer: x["propagation"] = .string("hostToContainer")
                case .bidirectional: x["propagation"] = .string("bidirectional")
                }
                if m.createIfMissing { x["createIfMissing"] = .bool(true) }
                if !m.uidMappings.isEmpty { x["uidMappings"] = Spec.IDMapping.json(m.uidMappings) }
                if !m.gidMappings.isEmpty { x["gidMappings"] = Spec.IDMapping.json(m.gidMappings) }
                return .object(x)
            })
        }
        for (key, on) in [("stdin", stdin), ("stdinOnce", stdinOnce), ("tty", tty)] where on { o[key] = .bool(true) }
        if !devices.isEmpty {
            o["devices"] = .array(devices.map {
                .object(["containerPath": .string($0.containerPath), "hostPath": .string($0.hostPath), "permissions": .string($0.permissions)])
            })
        }
        if let stopSignal { o["stopSignal"] = .number(Double(stopSignal)) }
        if let unified = resources?.unified, !unified.isEmpty { o["resources"] = .object(["unified": .strings(unified)]) }
        let s = security
        var sec: [String: JSONValue] = [
            "maskedPaths": .strings(s.maskedPaths), "readonlyPaths": .strings(s.readonlyPaths),
            "ownPIDNamespace": .bool(s.ownPIDNamespace),
        ]
        for (key, on) in [("privileged", s.privileged), ("readonlyRootfs", s.readonlyRootfs), ("noNewPrivileges", s.noNewPrivileges)] where on {
            sec[key] = .bool(true)
        }
        if !s.capabilitiesAdd.isEmpty { sec["capabilitiesAdd"] = .strings(s.capabilitiesAdd) }
        if !s.capabilitiesDrop.isEmpty { sec["capabilitiesDrop"] = .strings(s.capabilitiesDrop) }
        if let u = s.runAsUser { sec["runAsUser"] = .number(Double(u)) }
        if let n = s.runAsUsername { sec["runAsUsername"] = .string(n) }
        if let t = s.pidTarget { sec["pidTarget"] = .string(t) }
        if let g = s.runAsGroup { sec["runAsGroup"] = .number(Double(g)) }
        if !s.supplementalGroups.isEmpty { sec["supplementalGroups"] = .array(s.supplementalGroups.map { .number(Double($0)) }) }
        switch s.seccomp {
        case .unconfined: sec["seccomp"] = .string("unconfined")
        case .runtimeDefault: sec["seccomp"] = .string("runtimeDefault")
        case .localhost(let path): sec["seccomp"] = .string("localhost/" + path)
        }
        switch s.apparmor {
        case .unset: break
        case .runtimeDefault: sec["apparmor"] = .string("runtime/default")
        case .unconfined: sec["apparmor"] = .string("unconfined")
        case .localhost(let name): sec["apparmor"] = .string("localhost/" + name)
        }
        o["security"] = .object(sec)
        if let terminationLog { o["terminationLog"] = .string(terminationLog) }
        if !labels.isEmpty { o["labels"] = .strings(labels) }
        if !annotations.isEmpty { o["annotations"] = .strings(annotations) }
        return .object(o)
    }

    /// Reads a config; `image` finds the image record and its snapshot directories by id.
    public init(json r: JSONReader, image: (String) throws(HuskError) -> (ImageRecord, [String])) throws(HuskError) {
        do {
            let (record, layers) = try image(try r.string("image"))
            self.init(name: try r.string("name"), attempt: Int(try r.optInt("attempt") ?? 0), image: record, layers: layers,
                      logPath: try r.string("logPath"))
            command = try r.optStringArray("command")
            args = try r.optStringArray("args")
            workingDir = try r.optString("workingDir")
            envs = try r.optArray("envs") { (e) throws(FieldError) -> EnvVar in
                guard case .array(let kv) = e.value, kv.count == 2, case .string(let k) = kv[0], case .string(let v) = kv[1] else {
                    throw e.error(nil, "an env entry is [name, value]")
                }
                return EnvVar(k, v)
            } ?? []
            mounts = try r.optArray("mounts") { (m) throws(FieldError) -> Mount in
                var x = Mount(containerPath: try m.string("containerPath"), hostPath: try m.string("hostPath"),
                              readonly: try m.optBool("readonly") ?? false)
                switch try m.optString("propagation") {
                case nil, "private"?: break
                case "hostToContainer"?: x.propagation = .hostToContainer
                case "bidirectional"?: x.propagation = .bidirectional
                case let p?: throw m.error("propagation", "unknown propagation \"\(p)\"")
                }
                x.createIfMissing = try m.optBool("createIfMissing") ?? false
                x.uidMappings = try Spec.IDMapping.read(m, "uidMappings")
                x.gidMappings = try Spec.IDMapping.read(m, "gidMappings")
                return x
            } ?? []
            devices = try r.optArray("devices") { (d) throws(FieldError) -> Device in
                Device(containerPath: try d.string("containerPath"), hostPath: try d.string("hostPath"),
                       permissions: try d.optString("permissions") ?? "rwm")
            } ?? []
            stdin = try r.optBool("stdin") ?? false
            stdinOnce = try r.optBool("stdinOnce") ?? false
            tty = try r.optBool("tty") ?? false
            stopSignal = try r.optInt("stopSignal").map { Int32(clamping: $0) }
            resources = try Spec.Resources.unified(r)
            if let s = r.child("security") {
                var sec = Security()
                sec.privileged = try s.optBool("privileged") ?? false
                sec.capabilitiesAdd = try s.optStringArray("capabilitiesAdd") ?? []
                sec.capabilitiesDrop = try s.optStringArray("capabilitiesDrop") ?? []
                sec.runAsUser = try s.optInt("runAsUser")
                sec.runAsUsername = try s.optString("runAsUsername")
                sec.runAsGroup = try s.optInt("runAsGroup")
                sec.supplementalGroups = try s.optArray("supplementalGroups") { (g) throws(FieldError) -> Int64 in
                    guard case .number(let n) = g.value, let v = Int64(exactly: n) else { throw g.error(nil, "a group id is a whole number") }
                    return v
                } ?? []
                sec.readonlyRootfs = try s.optBool("readonlyRootfs") ?? false
                sec.noNewPrivileges = try s.optBool("noNewPrivileges") ?? false
                sec.maskedPaths = try s.optStringArray("maskedPaths") ?? []
                sec.readonlyPaths = try s.optStringArray("readonlyPaths") ?? []
                sec.ownPIDNamespace = try s.optBool("ownPIDNamespace") ?? true
                sec.pidTarget = try s.optString("pidTarget")
                switch try s.optString("seccomp") {
                case nil, "unconfined"?: sec.seccomp = .unconfined
                case "runtimeDefault"?: sec.seccomp = .runtimeDefault
                case let p? where p.hasPrefix("localhost/"): sec.seccomp = .localhost(path: String(p.dropFirst("localhost/".count)))
                case let p?: throw s.error("seccomp", "unknown profile \"\(p)\"")
                }
                switch try s.optString("apparmor") {
                case nil: sec.apparmor = .unset
                case "runtime/default"?: sec.apparmor = .runtimeDefault
                case "unconfined"?: sec.apparmor = .unconfined
                case let p? where p.hasPrefix("localhost/"): sec.apparmor = .localhost(name: String(p.dropFirst("localhost/".count)))
                case let p?: throw s.error("apparmor", "unknown profile \"\(p)\"")
                }
                security = sec
            }
            terminationLog = try r.optString("terminationLog")
            labels = try r.optStringMap("labels") ?? [:]
            annotations = try r.optStringMap("annotations") ?? [:]
        } catch let e as FieldError {
            throw HuskError(.invalidArgument, "container config: \(e)")
        } catch let e as HuskError {
            throw e
        } catch {
            throw HuskError(.invalidArgument, "container config: \(error)")
        }
    }
}

extension Spec.Resources {
    /// `resources.unified` of a config: the cgroup v2 files the caller worked out.
    static func unified(_ r: JSONReader) throws(FieldError) -> Spec.Resources? {
        guard let res = r.child("resources"), let unified = try res.optStringMap("unified"), !unified.isEmpty else { return nil }
        var out = Spec.Resources()
        out.unified = unified
        return out
    }
}

extension JSONValue {
    static func strings(_ a: [String]) -> JSONValue { .array(a.map { .string($0) }) }
    static func strings(_ m: [String: String]) -> JSONValue { .object(m.mapValues { .string($0) }) }
}

extension JSONReader {
    func int32(_ key: String, default fallback: Int32? = nil) throws(FieldError) -> Int32 {
        guard let v = try optInt(key) else {
            if let fallback { return fallback }
            throw error(key, "is required")
        }
        guard let i = Int32(exactly: v) else { throw error(key, "is out of range") }
        return i
    }
}
