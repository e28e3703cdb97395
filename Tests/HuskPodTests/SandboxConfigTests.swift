@testable import HuskPod
import HuskJSON
import HuskRuntime
import HuskSystem
import Testing

/// kubelet's half of a sandbox (pod-semantics §10): the manifest pod turned into CRI's
/// `PodSandboxConfig`, and containerd's rendering of its DNS config (cri-semantics §2).
@Suite("Sandbox config: kubelet's half and containerd's resolv.conf")
struct SandboxConfigTests {
    func builder(_ yaml: String) throws -> SandboxConfigBuilder {
        let (pod, _) = try accept(yaml)
        var settings = HuskSettings()
        settings.logDir = "/logs"
        return SandboxConfigBuilder(pod: pod, paths: PodPaths(settings: settings, pod: pod))
    }

    func pod(_ spec: String, name: String = "web") -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: \(name), namespace: ns, labels: {app: web}, annotations: {a: b}}
        spec:
        \(spec)
        """
    }

    @Test("metadata, labels, annotations, log directory")
    func metadata() throws {
        let b = try builder(pod("  containers: [{name: c, image: busybox}]"))
        let c = b.config()
        let uid = b.pod.metadata.uid
        #expect(!uid.isEmpty)
        #expect(c.metadata == .init(name: "web", namespace: "ns", uid: uid, attempt: 0))
        #expect(c.labels == ["app": "web"] && c.annotations == ["a": "b"])
        #expect(c.logDirectory == "/logs/ns_web_\(uid)")
    }

    @Test("namespace modes: pod's own by default; host network, pid and IPC are the node's; shareProcessNamespace is the pod's",
          arguments: [
              ("", PodSandboxConfig.Namespaces(network: .pod, pid: .container, ipc: .pod)),
              ("  hostNetwork: true\n", .init(network: .node, pid: .container, ipc: .pod)),
              ("  hostPID: true\n  hostIPC: true\n", .init(network: .pod, pid: .node, ipc: .node)),
              ("  shareProcessNamespace: true\n", .init(network: .pod, pid: .pod, ipc: .pod)),
          ])
    func namespaces(_ spec: String, _ want: PodSandboxConfig.Namespaces) throws {
        let c = try builder(pod(spec + "  containers: [{name: c, image: busybox}]")).config()
        #expect(c.namespaces == want)
    }

    @Test("hostname: spec.hostname, else the name cut to 63 without trailing '-' or '.'; FQDN with setHostnameAsFQDN")
    func hostname() throws {
        let long = String(repeating: "a", count: 62) + ".b.c"
        #expect(try builder(pod("  containers: [{name: c, image: busybox}]", name: long)).config().hostname == String(repeating: "a", count: 62))
        #expect(try builder(pod("  hostname: h1\n  containers: [{name: c, image: busybox}]")).config().hostname == "h1")
        let fqdn = try builder(pod("  hostname: h1\n  subdomain: sub\n  setHostnameAsFQDN: true\n  containers: [{name: c, image: busybox}]"))
        #expect(fqdn.config().hostname == "h1.sub.ns.svc.cluster.local")
    }

    @Test("DNS: Default/ClusterFirst read the node's resolv.conf, dnsConfig merges in, None uses only dnsConfig")
    func dns() throws {
        let host = "# comment\nnameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch a.example b.example\noptions ndots:2 edns0\n"
        let d = try builder(pod("  dnsPolicy: Default\n  containers: [{name: c, image: busybox}]")).dns(hostResolvConf: host)
        #expect(d == .init(servers: ["1.1.1.1", "8.8.8.8"], searches: ["a.example", "b.example"], options: ["ndots:2", "edns0"]))
        let merged = try builder(pod("""
              dnsConfig:
                nameservers: [9.9.9.9, 1.1.1.1]
                searches: [c.example]
                options: [{name: ndots, value: "5"}, {name: rotate}]
              containers: [{name: c, image: busybox}]
            """)).dns(hostResolvConf: host)
        #expect(merged.servers == ["1.1.1.1", "8.8.8.8", "9.9.9.9"])
        #expect(merged.searches == ["a.example", "b.example", "c.example"])
        #expect(merged.options == ["edns0", "ndots:5", "rotate"])
        let none = try builder(pod("""
              dnsPolicy: None
              dnsConfig: {nameservers: [10.0.0.10, 10.0.0.11], searches: [s.example]}
              containers: [{name: c, image: busybox}]
            """)).dns(hostResolvConf: host)
        #expect(none == .init(servers: ["10.0.0.10", "10.0.0.11"], searches: ["s.example"], options: []))
        // Node and pod servers together: the first 3 (kubelet's limit).
        let many = try builder(pod("""
              dnsConfig: {nameservers: [9.9.9.9, 7.7.7.7]}
              containers: [{name: c, image: busybox}]
            """)).dns(hostResolvConf: host)
        #expect(many.servers == ["1.1.1.1", "8.8.8.8", "9.9.9.9"])
    }

    @Test("containerd's resolv.conf: search, nameserver lines, options; each only when given")
    func resolvConf() {
        #expect(Sandbox.resolvConf(.init(servers: ["1.1.1.1", "2.2.2.2"], searches: ["x", "y"], options: ["ndots:5"]))
                == "search x y\nnameserver 1.1.1.1\nnameserver 2.2.2.2\noptions ndots:5\n")
        #expect(Sandbox.resolvConf(.init(servers: ["1.1.1.1"])) == "nameserver 1.1.1.1\n")
        #expect(Sandbox.resolvConf(.init()) == "", "empty: the node's file is copied instead")
    }

    @Test("port mappings: only container ports with a host port (kubelet's makePortMappings)")
    func portMappings() throws {
        let c = try builder(pod("""
              containers:
              - name: c
                image: busybox
                ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 53, hostPort: 5353, protocol: UDP}, {containerPort: 9090}]
            """)).config()
        #expect(c.portMappings == [.init(proto: "TCP", containerPort: 80, hostPort: 8080), .init(proto: "UDP", containerPort: 53, hostPort: 5353)])
    }

    @Test("sysctls and the pod cgroup's limits")
    func sysctlsAndResources() throws {
        let c = try builder(pod("""
              securityContext: {sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "80"}]}
              containers:
              - {name: c, image: busybox, resources: {limits: {cpu: 500m, memory: 64Mi}}}
            """)).config()
        #expect(c.sysctls == ["net.ipv4.ip_unprivileged_port_start": "80"])
        #expect(c.resources?.unified?["memory.max"] == String(64 << 20))
        #expect(c.resources?.unified?["cpu.max"] == "50000 100000")
    }

    @Test("a sandbox config survives its JSON (sandbox.json, the control socket)")
    func json() throws {
        var c = try builder(pod("""
              hostNetwork: true
              dnsConfig: {nameservers: [9.9.9.9]}
              securityContext: {sysctls: [{name: net.ipv4.ping_group_range, value: "0 1"}]}
              containers:
              - {name: c, image: busybox, ports: [{containerPort: 8080, hostPort: 8080}], resources: {limits: {memory: 64Mi}}}
            """)).config()
        c.metadata.attempt = 3
        #expect(try PodSandboxConfig(json: JSONReader(c.json)) == c)
        #expect(try PodSandboxConfig(json: JSONReader(JSONParser.parse(Array(c.json.serialized().utf8)))) == c)
        let bare = PodSandboxConfig(metadata: .init(name: "a", namespace: "b", uid: "c"), hostname: "", logDirectory: "")
        #expect(try PodSandboxConfig(json: JSONReader(bare.json)) == bare)
        #expect(throws: FieldError.self) { try PodSandboxConfig(json: JSONReader(.object([:]))) }
        #expect(throws: FieldError.self) {
            try PodSandboxConfig(json: JSONReader(.object(["metadata": bare.json["metadata"]!, "namespaces": .object(["pid": .number(7)])])))
        }
    }

    @Test("kubelet's managed hosts file: localhost lines, the pod's address with its FQDN, host aliases")
    func hostsFile() throws {
        let b = try builder(pod("""
              hostname: h1
              subdomain: sub
              hostAliases: [{ip: 10.1.1.1, hostnames: [foo, bar]}]
              containers: [{name: c, image: busybox}]
            """))
        let text = b.hostsFile(podIP: "10.22.0.5")
        #expect(text.hasPrefix("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"))
        #expect(text.contains("10.22.0.5\th1.sub.ns.svc.cluster.local\th1\n"))
        #expect(text.hasSuffix("\n# Entries added by HostAliases.\n10.1.1.1\tfoo\tbar\n"))
        #expect(!b.hostsFile(podIP: nil).contains("h1"), "no address: no line for the pod")
    }
}
