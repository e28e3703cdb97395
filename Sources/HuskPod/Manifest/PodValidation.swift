import HuskImage
import HuskJSON
import HuskSystem

/// Kubernetes' validation of a Pod (apimachinery validation.go, core validateInitContainers,
/// pod-semantics §13) for the fields Husk honours. Every problem is reported with its field
/// path and line, all at once.
public enum PodValidation {
    static func validate(_ pod: Pod, reader: JSONReader) -> [FieldError] {
        var v = Validator(reader: reader)
        v.run(pod)
        return v.problems
    }

    /// DNS-1123 label: 1-63 lowercase alphanumerics and '-', starting and ending alphanumeric.
    public static func isDNSLabel(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 63 else { return false }
        func an(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        return an(u[0]) && an(u[u.count - 1]) && u.allSatisfy { an($0) || $0 == 45 }
    }

    /// DNS-1123 subdomain: up to 253 characters of labels joined by '.'.
    public static func isDNSSubdomain(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253 else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
    }

    /// An environment variable name under RelaxedEnvironmentVariableValidation (GA in
    /// Kubernetes 1.34, IsRelaxedEnvVarName): printable ASCII other than '='.
    static func isEnvVarName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { $0 >= 32 && $0 <= 126 && $0 != UInt8(ascii: "=") }
    }

    /// An IANA service name (port names): up to 15 lowercase alphanumerics and '-', at least
    /// one letter, no leading, trailing or doubled '-'.
    static func isPortName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 15, u.first != 45, u.last != 45, !s.contains("--") else { return false }
        return u.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 } && u.contains { $0 >= 97 && $0 <= 122 }
    }

    /// apimachinery's TotalAnnotationSizeLimitB.
    public static let maxAnnotationBytes = 256 * 1024

    /// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
    static func isQualifiedNamePart(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 63 else { return false }
        func an(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 65 && b <= 90) || (b >= 48 && b <= 57) }
        return an(u[0]) && an(u[u.count - 1]) && u.allSatisfy { an($0) || $0 == 45 || $0 == 95 || $0 == 46 }
    }

    /// A label value: empty, or a qualified name part.
    public static func isLabelValue(_ s: String) -> Bool { s.isEmpty || isQualifiedNamePart(s) }

    /// What is wrong with a label or annotation key (IsQualifiedName: an optional DNS-1123
    /// subdomain prefix and '/', then a name part), or nil.
    static func qualifiedNameProblem(_ key: String) -> String? {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let name: String
        switch parts.count {
        case 1: name = parts[0]
        case 2:
            guard !parts[0].isEmpty else { return "prefix part must be non-empty" }
            guard isDNSSubdomain(parts[0]) else { return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character" }
            name = parts[1]
        default:
            return "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        }
        guard !name.isEmpty else { return "name part must be non-empty" }
        guard name.utf8.count <= 63 else { return "name part must be no more than 63 characters" }
        guard isQualifiedNamePart(name) else {
            return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        }
        return nil
    }

    static let fieldRefs: Set<String> = ["metadata.name", "metadata.namespace", "metadata.uid", "status.podIP", "status.podIPs",
                                         "status.hostIP", "status.hostIPs", "spec.nodeName"]
}

struct Validator {
    let reader: JSONReader
    var problems: [FieldError] = []

    mutating func fail(_ path: String, _ message: String) {
        problems.append(FieldError(path: path, message: message, line: reader.line(path)))
    }

    mutating func run(_ pod: Pod) {
        if reader.child("apiVersion")?.value.stringValue != "v1" {
            fail("apiVersion", "must be \"v1\" (found \(reader.child("apiVersion")?.value.text ?? "nothing"))")
        }
        if reader.child("kind")?.value.stringValue != "Pod" {
            fail("kind", "must be \"Pod\" (found \(reader.child("kind")?.value.text ?? "nothing"))")
        }
        let m = pod.metadata
        if m.name.isEmpty {
            fail("metadata.name", "Required value: name or generateName is required")
        } else if !PodValidation.isDNSSubdomain(m.name) {
            fail("metadata.name", "Invalid value \"\(m.name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
        }
        if !PodValidation.isDNSLabel(m.namespace) {
            fail("metadata.namespace", "Invalid value \"\(m.namespace)\": must be a DNS-1123 label")
        }
        // ValidateLabels and ValidateAnnotations (apimachinery).
        for (k, value) in m.labels.sorted(by: { $0.key < $1.key }) {
            if let why = PodValidation.qualifiedNameProblem(k) { fail("metadata.labels", "Invalid value: \"\(k)\": \(why)") }
            if !PodValidation.isLabelValue(value) {
                fail("metadata.labels", "Invalid value: \"\(value)\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, at most 63 (regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
            }
        }
        var annotationBytes = 0
        for (k, value) in m.annotations.sorted(by: { $0.key < $1.key }) {
            if let why = PodValidation.qualifiedNameProblem(k.lowercased()) { fail("metadata.annotations", "Invalid value: \"\(k)\": \(why)") }
            annotationBytes += k.utf8.count + value.utf8.count
        }
        if annotationBytes > PodValidation.maxAnnotationBytes {
            fail("metadata.annotations", "Too long: must have at most \(PodValidation.maxAnnotationBytes) bytes (they have \(annotationBytes))")
        }
        spec(pod.spec)
    }

    mutating func spec(_ s: PodSpec) {
        if s.containers.isEmpty { fail("spec.containers", "Required value: a pod needs at least one container") }
        var names: [String: String] = [:]
        var volumes: Set<String> = []
        for (i, vol) in s.volumes.enumerated() {
            let p = "spec.volumes[\(i)]"
            if !PodValidation.isDNSLabel(vol.name) {
                fail("\(p).name", vol.name.isEmpty ? "Required value" : "Invalid value \"\(vol.name)\": must be a DNS-1123 label")
            } else if !volumes.insert(vol.name).inserted {
                fail("\(p).name", "Duplicate value \"\(vol.name)\"")
            }
            switch vol.source {
            case .emptyDir(let medium, let limit):
                if medium != "" && medium != "Memory" {
                    fail("\(p).emptyDir.medium", "Unsupported value \"\(medium)\": \"\" or \"Memory\"")
                }
                if let limit, limit < 0 { fail("\(p).emptyDir.sizeLimit", "must be greater than or equal to 0") }
            case .hostPath(let path, let type):
                if !path.hasPrefix("/") { fail("\(p).hostPath.path", "Invalid value \"\(path)\": must be an absolute path") }
                let types: Set<String> = ["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"]
                if !types.contains(type) {
                    fail("\(p).hostPath.type", "Unsupported value \"\(type)\": \(types.sorted().filter { !$0.isEmpty }.joined(separator: ", "))")
                }
            }
        }
        let ordered = s.containers.enumerated().map { ("containers", $0.offset, $0.element) }
            + s.initContainers.enumerated().map { ("initContainers", $0.offset, $0.element) }
        for (field, i, c) in ordered {
            let p = "spec.\(field)[\(i)]"
            if c.name.isEmpty {
                fail("\(p).name", "Required value")
            } else if !PodValidation.isDNSLabel(c.name) {
                fail("\(p).name", "Invalid value \"\(c.name)\": must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)")
            } else if let first = names[c.name] {
                fail("\(p).name", "Duplicate value \"\(c.name)\": also the name of \(first)")
            } else {
                names[c.name] = p
            }
            container(c, path: p, isInit: field == "initContainers", volumes: volumes, pod: s)
        }
        if let d = s.activeDeadlineSeconds, d <= 0 { fail("spec.activeDeadlineSeconds", "must be greater than 0") }
        if let h = s.hostname, !PodValidation.isDNSLabel(h) { fail("spec.hostname", "Invalid value \"\(h)\": must be a DNS-1123 label") }
        if let d = s.subdomain, !PodValidation.isDNSLabel(d) { fail("spec.subdomain", "Invalid value \"\(d)\": must be a DNS-1123 label") }
        // The API server's validateHostUsers: a pod in a user namespace of its own cannot
        // use the node's network, pid or IPC namespace (its namespaces belong to its user namespace).
        if !s.hostUsers {
            for (field, on) in [("hostNetwork", s.hostNetwork), ("hostPID", s.hostPID), ("hostIPC", s.hostIPC)] where on {
                fail("spec.\(field)", "Forbidden: when `hostUsers` is false")
            }
        }
        if s.shareProcessNamespace && s.hostPID {
            fail("spec.shareProcessNamespace", "ShareProcessNamespace and HostPID cannot both be enabled")
        }
        if s.dnsPolicy == .none && s.dnsConfig == nil {
            fail("spec.dnsConfig", "Required value: must provide `dnsConfig` when `dnsPolicy` is None")
        }
        if let c = s.dnsConfig {
            if c.nameservers.count > 3 { fail("spec.dnsConfig.nameservers", "Too many: \(c.nameservers.count): must have at most 3 items") }
            if c.searches.count > 32 { fail("spec.dnsConfig.searches", "Too many: \(c.searches.count): must have at most 32 items") }
            if s.dnsPolicy == .none && c.nameservers.isEmpty {
                fail("spec.dnsConfig.nameservers", "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None")
            }
        }
        for (i, a) in s.hostAliases.enumerated() where !Validator.isIP(a.ip) {
            fail("spec.hostAliases[\(i)].ip", "Invalid value \"\(a.ip)\": must be a valid IP address")
        }
        security(user: s.securityContext.runAsUser, group: s.securityContext.runAsGroup, path: "spec.securityContext")
        if let sp = s.securityContext.seccompProfile { seccomp(sp, path: "spec.securityContext.seccompProfile") }
        if let ap = s.securityContext.appArmorProfile { appArmor(ap, path: "spec.securityContext.appArmorProfile") }
        for (i, g) in s.securityContext.supplementalGroups.enumerated() where g < 0 || g > Int64(UInt32.max) {
            fail("spec.securityContext.supplementalGroups[\(i)]", "must be between 0 and 4294967295")
        }
    }

    static func isIP(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4 { return parts.allSatisfy { UInt8($0) != nil && !$0.isEmpty } }
        return s.contains(":") && s.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }

    mutating func security(user: Int64?, group: Int64?, path: String) {
        if let u = user, u < 0 || u > Int64(UInt32.max) { fail("\(path).runAsUser", "must be between 0 and 4294967295") }
        if let g = group, g < 0 || g > Int64(UInt32.max) { fail("\(path).runAsGroup", "must be between 0 and 4294967295") }
    }

    /// Kubernetes' validateAppArmorProfileField: localhostProfile (a profile name) exactly
    /// with Localhost, not blank, at most 4095 bytes.
    mutating func appArmor(_ s: SeccompProfileSpec, path: String) {
        if s.type == .localhost {
            let p = s.localhostProfile ?? ""
            if p.isEmpty { fail("\(path).localhostProfile", "Required value: must be set when AppArmor type is Localhost") }
            else if p.trimmed() != p { fail("\(path).localhostProfile", "Invalid value: must not be padded with whitespace") }
            else if p.utf8.count > 4095 { fail("\(path).localhostProfile", "Too long: must have at most 4095 bytes") }
        } else if s.localhostProfile != nil {
            fail("\(path).localhostProfile", "Invalid value: can only be set when AppArmor type is Localhost")
        }
    }

    mutating func seccomp(_ s: SeccompProfileSpec, path: String) {
        if s.type == .localhost && (s.localhostProfile ?? "").isEmpty {
            fail("\(path).localhostProfile", "Required value: must be set when seccomp type is Localhost")
        }
        // validateLocalDescendingPath: a profile is a path below kubelet's seccomp root.
        if s.type == .localhost, let p = s.localhostProfile, !p.isEmpty {
            if p.hasPrefix("/") { fail("\(path).localhostProfile", "Invalid value \"\(p)\": must be a relative path") }
            if p.split(separator: "/").contains("..") { fail("\(path).localhostProfile", "Invalid value \"\(p)\": must not contain '..'") }
        }
        if s.type != .localhost && s.localhostProfile != nil {
            fail("\(path).localhostProfile", "Invalid value: can only be set when seccomp type is Localhost")
        }
    }

    mutating func container(_ c: ContainerSpec, path p: String, isInit: Bool, volumes: Set<String>, pod: PodSpec) {
        if c.image.trimmed().isEmpty {
            fail("\(p).image", "Required value")
        }  // A malformed reference is accepted here and fails at run time as InvalidImageName (pod-semantics §7).
        if let w = c.workingDir, !w.isEmpty, !w.hasPrefix("/") {
            fail("\(p).workingDir", "Invalid value \"\(w)\": must be an absolute path")
        }
        var envNames: Set<String> = []
        for (i, e) in c.env.enumerated() {
            let ep = "\(p).env[\(i)]"
            if e.name.isEmpty {
                fail("\(ep).name", "Required value")
            } else if !PodValidation.isEnvVarName(e.name) {
                fail("\(ep).name", "Invalid value \"\(e.name)\": a valid environment variable name must consist only of printable ASCII characters other than '='")
            }
            envNames.insert(e.name)
            if !(e.value ?? "").isEmpty && e.fieldRef != nil {
                fail("\(ep).valueFrom", "Invalid value: may not be specified when `value` is not empty")
            }
            if let f = e.fieldRef, !PodValidation.fieldRefs.contains(f) {
                fail("\(ep).valueFrom.fieldRef.fieldPath", "Unsupported value \"\(f)\": \(PodValidation.fieldRefs.sorted().joined(separator: ", "))")
            }
        }
        var portNames: Set<String> = []
        for (i, port) in c.ports.enumerated() {
            if port.containerPort < 1 || port.containerPort > 65535 {
                fail("\(p).ports[\(i)].containerPort", "Invalid value \(port.containerPort): must be between 1 and 65535")
            }
            if let n = port.name {
                if !PodValidation.isPortName(n) { fail("\(p).ports[\(i)].name", "Invalid value \"\(n)\": must be an IANA service name") }
                if !portNames.insert(n).inserted { fail("\(p).ports[\(i)].name", "Duplicate value \"\(n)\"") }
            }
            if !["TCP", "UDP", "SCTP"].contains(port.protocol) {
                fail("\(p).ports[\(i)].protocol", "Unsupported value \"\(port.protocol)\": TCP, UDP or SCTP")
            }
            // validateHostNetwork: with the node's network a port is the node's port.
            if pod.hostNetwork, let h = port.hostPort, h != 0, h != port.containerPort {
                fail("\(p).ports[\(i)].hostPort", "Invalid value: \(h): must match `containerPort` when `hostNetwork` is true")
            }
        }
        var mountPaths: Set<String> = []
        for (i, m) in c.volumeMounts.enumerated() {
            let mp = "\(p).volumeMounts[\(i)]"
            if m.name.isEmpty {
                fail("\(mp).name", "Required value")
            } else if !volumes.contains(m.name) {
                fail("\(mp).name", "Not found: \"\(m.name)\" is not a volume of the pod")
            }
            if m.mountPath.isEmpty {
                fail("\(mp).mountPath", "Required value")
            } else if !m.mountPath.hasPrefix("/") {
                fail("\(mp).mountPath", "Invalid value \"\(m.mountPath)\": must be an absolute path")
            } else if !mountPaths.insert(Files.clean(m.mountPath)).inserted {
                fail("\(mp).mountPath", "Invalid value \"\(m.mountPath)\": must be unique")
            }
            if let s = m.subPath, !s.isEmpty {
                if s.hasPrefix("/") { fail("\(mp).subPath", "Invalid value \"\(s)\": must be a relative path") }
                if s.split(separator: "/").contains("..") { fail("\(mp).subPath", "Invalid value \"\(s)\": must not contain '..'") }
            }
            if let prop = m.mountPropagation {
                if !["None", "HostToContainer", "Bidirectional"].contains(prop) {
                    fail("\(mp).mountPropagation", "Unsupported value \"\(prop)\": None, HostToContainer or Bidirectional")
                } else if prop == "Bidirectional" && c.securityContext?.privileged != true {
                    fail("\(mp).mountPropagation", "Forbidden: Bidirectional mount propagation is available only to privileged containers")
                }
            }
        }
        let sidecar = isInit && c.restartPolicy == "Always"
        if let rp = c.restartPolicy {
            if !isInit {
                fail("\(p).restartPolicy", "Forbidden: may not be set for non-init containers")
            } else if rp != "Always" {
                fail("\(p).restartPolicy", "Unsupported value \"\(rp)\": \"Always\"")
            }
        }
        if isInit && !sidecar {
            for (set, name) in [(c.lifecycle != nil, "lifecycle"), (c.livenessProbe != nil, "livenessProbe"),
                                (c.readinessProbe != nil, "readinessProbe"), (c.startupProbe != nil, "startupProbe")] where set {
                fail("\(p).\(name)", "Forbidden: may not be set for init containers without restartPolicy=Always")
            }
        }
        if isInit && sidecar && c.readinessProbe != nil {
            // Allowed for sidecars; nothing to check here.
        }
        if let l = c.lifecycle {
            if let h = l.postStart { handler(h, path: "\(p).lifecycle.postStart", container: c, pod: pod, probe: false) }
            if let h = l.preStop { handler(h, path: "\(p).lifecycle.preStop", container: c, pod: pod, probe: false) }
            if let s = l.stopSignal, Signals.parse(s) == nil || Int32(s) != nil {
                fail("\(p).lifecycle.stopSignal", "Unsupported value \"\(s)\": a signal name such as SIGTERM or SIGQUIT")
            }
        }
        for (probe, name) in [(c.livenessProbe, "livenessProbe"), (c.readinessProbe, "readinessProbe"), (c.startupProbe, "startupProbe")] {
            guard let pr = probe else { continue }
            let pp = "\(p).\(name)"
            handler(pr.handler, path: pp, container: c, pod: pod, probe: true)
            for (value, field, minimum) in [(pr.initialDelaySeconds, "initialDelaySeconds", Int64(0)), (pr.timeoutSeconds, "timeoutSeconds", 1),
                                            (pr.periodSeconds, "periodSeconds", 1), (pr.successThreshold, "successThreshold", 1),
                                            (pr.failureThreshold, "failureThreshold", 1)] where value < minimum {
                fail("\(pp).\(field)", "must be greater than or equal to \(minimum)")
            }
            if name != "readinessProbe" && pr.successThreshold != 1 {
                fail("\(pp).successThreshold", "must be 1")
            }
            if name == "readinessProbe" && pr.terminationGracePeriodSeconds != nil {
                fail("\(pp).terminationGracePeriodSeconds", "Invalid value: must not be set for readinessProbes")
            }
        }
        if !c.terminationMessagePath.isEmpty && !c.terminationMessagePath.hasPrefix("/") {
            fail("\(p).terminationMessagePath", "Invalid value \"\(c.terminationMessagePath)\": must be an absolute path")
        }
        if !["File", "FallbackToLogsOnError"].contains(c.terminationMessagePolicy) {
            fail("\(p).terminationMessagePolicy", "Unsupported value \"\(c.terminationMessagePolicy)\": File or FallbackToLogsOnError")
        }
        if let sc = c.securityContext {
            let sp = "\(p).securityContext"
            security(user: sc.runAsUser, group: sc.runAsGroup, path: sp)
            if sc.privileged && sc.allowPrivilegeEscalation == false {
                fail("\(sp)", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true")
            }
            if let s = sc.seccompProfile { seccomp(s, path: "\(sp).seccompProfile") }
            if let a = sc.appArmorProfile { appArmor(a, path: "\(sp).appArmorProfile") }
            if let pm = sc.procMount, !["Default", "Unmasked"].contains(pm) {
                fail("\(sp).procMount", "Unsupported value \"\(pm)\": Default or Unmasked")
            }
            for (i, cap) in (sc.capabilitiesAdd + sc.capabilitiesDrop).enumerated() where cap != "ALL" && Capabilities.number(cap) == nil {
                let which = i < sc.capabilitiesAdd.count ? "add[\(i)]" : "drop[\(i - sc.capabilitiesAdd.count)]"
                fail("\(sp).capabilities.\(which)", "Unsupported value \"\(cap)\": not a Linux capability")
            }
        }
    }

    mutating func handler(_ h: Handler, path: String, container c: ContainerSpec, pod: PodSpec, probe: Bool) {
        switch h {
        case .exec(let command):
            if command.isEmpty { fail("\(path).exec.command", "Required value") }
        case .httpGet(let g):
            port(g.port, path: "\(path).httpGet.port", container: c)
            if !["HTTP", "HTTPS"].contains(g.scheme) { fail("\(path).httpGet.scheme", "Unsupported value \"\(g.scheme)\": HTTP or HTTPS") }
        case .tcpSocket(_, let p):
            port(p, path: "\(path).tcpSocket.port", container: c)
        case .sleep(let seconds):
            if probe { fail("\(path).sleep", "Forbidden: sleep is a lifecycle hook action, not a probe") }
            if seconds < 0 || seconds > pod.terminationGracePeriodSeconds {
                fail("\(path).sleep.seconds", "Invalid value \(seconds): must be non-negative and less than terminationGracePeriodSeconds (\(pod.terminationGracePeriodSeconds))")
            }
        case .grpc(let p, _):
            if !probe { fail("\(path).grpc", "Forbidden: grpc is a probe action, not a lifecycle hook") }
            if p < 1 || p > 65535 { fail("\(path).grpc.port", "Invalid value \(p): must be between 1 and 65535") }
        }
    }

    mutating func port(_ p: PortRef, path: String, container c: ContainerSpec) {
        switch p {
        case .number(let n):
            if n < 1 || n > 65535 { fail(path, "Invalid value \(n): must be between 1 and 65535") }
        case .name(let n):
            if !c.ports.contains(where: { $0.name == n }) { fail(path, "Invalid value \"\(n)\": no container port has this name") }
        }
    }
}
