import HuskImage
import HuskJSON
import HuskPod
import HuskSystem
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Pod manifest: parsing, defaults, warnings")
struct ManifestTests {
    // MARK: - A full valid pod

    @Test("a full valid YAML pod parses into the model")
    func fullPodParses() throws {
        let (pod, warnings) = try accept(FullPod.yaml)
        #expect(warnings == FullPod.warnings, "only the probe, which Husk does not run yet, is warned about: \(warnings)")

        #expect(pod.metadata.name == "web")
        #expect(pod.metadata.labels == ["app": "web", "tier": "frontend"])
        #expect(pod.metadata.annotations == ["example.com/note": "full example"])

        let spec = pod.spec
        #expect(spec.initContainers.map(\.name) == ["setup", "proxy"])
        #expect(spec.containers.map(\.name) == ["app", "helper"])
        #expect(spec.allContainers.map { "\($0.field)[\($0.index)]" }
            == ["initContainers[0]", "initContainers[1]", "containers[0]", "containers[1]"])

        // Init containers: a regular one and a sidecar (restartPolicy Always).
        let setup = spec.initContainers[0]
        #expect(setup.image == "busybox:1.36")
        #expect(setup.command == ["sh", "-c", "echo ready > /work/ready"])
        #expect(setup.restartPolicy == nil)
        #expect(setup.volumeMounts.map(\.name) == ["work"])
        #expect(setup.volumeMounts.map(\.mountPath) == ["/work"])
        let proxy = spec.initContainers[1]
        #expect(proxy.restartPolicy == "Always")
        #expect(proxy.lifecycle?.preStop == .sleep(seconds: 2))
        #expect(proxy.lifecycle?.postStart == nil)

        // The first app container.
        let app = spec.containers[0]
        #expect(app.image == "busybox")
        #expect(app.command == ["sh", "-c", "sleep 3600"])
        #expect(app.args == nil)
        #expect(app.env.count == 2)
        #expect(app.env.first?.name == "GREETING")
        #expect(app.env.first?.value == "hello")
        #expect(app.env.first?.fieldRef == nil)
        #expect(app.env.last?.name == "POD_NAME")
        #expect(app.env.last?.value == nil)
        #expect(app.env.last?.fieldRef == "metadata.name")
        #expect(app.ports.count == 1)
        #expect(app.ports.first?.name == "http")
        #expect(app.ports.first?.containerPort == 8080)
        #expect(app.ports.first?.hostPort == nil)
        #expect(app.ports.first?.protocol == "TCP")
        #expect(app.volumeMounts.map(\.name) == ["work", "logs"])
        #expect(app.volumeMounts.map(\.mountPath) == ["/work", "/var/log/host"])
        #expect(app.volumeMounts.map(\.readOnly) == [false, true])
        #expect(app.lifecycle?.postStart == .exec(command: ["sh", "-c", "echo started"]))
        guard case .httpGet(let preStop)? = app.lifecycle?.preStop else {
            Issue.record("preStop is not httpGet: \(String(describing: app.lifecycle?.preStop))")
            return
        }
        #expect(preStop.path == "/shutdown")
        #expect(preStop.port == .name("http"))
        #expect(preStop.host == nil)
        #expect(preStop.scheme == "HTTP")
        #expect(preStop.headers.isEmpty)
        let probe = try #require(app.livenessProbe)
        guard case .httpGet(let get) = probe.handler else {
            Issue.record("livenessProbe is not httpGet: \(probe.handler)")
            return
        }
        #expect(get.path == "/healthz")
        #expect(get.port == .number(8080))
        #expect(probe.periodSeconds == 5)
        // Probe defaults (SetDefaults_Probe).
        #expect(probe.initialDelaySeconds == 0)
        #expect(probe.timeoutSeconds == 1)
        #expect(probe.successThreshold == 1)
        #expect(probe.failureThreshold == 3)
        #expect(app.readinessProbe == nil)
        #expect(app.startupProbe == nil)
        let sc = try #require(app.securityContext)
        #expect(sc.runAsUser == 1000)
        #expect(sc.runAsGroup == 1000)
        #expect(sc.runAsNonRoot == true)
        #expect(sc.allowPrivilegeEscalation == false)
        #expect(sc.readOnlyRootFilesystem)
        #expect(!sc.privileged)
        #expect(sc.capabilitiesDrop == ["ALL"])
        #expect(sc.capabilitiesAdd == ["NET_BIND_SERVICE"])
        #expect(sc.seccompProfile?.type == .runtimeDefault)
        #expect(sc.seccompProfile != nil && sc.seccompProfile?.localhostProfile == nil)

        // The second app container.
        let helper = spec.containers[1]
        #expect(helper.image == "registry.example.com/tools/helper:2.0")
        #expect(helper.command == nil)
        #expect(helper.args == ["--verbose"])
        #expect(helper.workingDir == "/tmp")
        #expect(helper.lifecycle?.preStop == .sleep(seconds: 5))
        #expect(helper.securityContext == nil)

        // Volumes.
        #expect(spec.volumes.map(\.name) == ["work", "logs"])
        #expect(spec.volumes.first?.source == .emptyDir(medium: "Memory", sizeLimit: 64 * 1024 * 1024))
        #expect(spec.volumes.last?.source == .hostPath(path: "/var/log", type: "Directory"))

        // Pod securityContext.
        let psc = spec.securityContext
        #expect(psc.runAsUser == 1000)
        #expect(psc.runAsGroup == 3000)
        #expect(psc.runAsNonRoot == nil)
        #expect(psc.supplementalGroups == [2000, 3000])
        #expect(psc.sysctls.map { "\($0.name)=\($0.value)" } == ["net.ipv4.ip_unprivileged_port_start=0"])
        #expect(psc.seccompProfile?.type == .runtimeDefault)

        // DNS and host aliases.
        let dns = try #require(spec.dnsConfig)
        #expect(dns.nameservers == ["10.0.0.10"])
        #expect(dns.searches == ["example.com"])
        #expect(dns.options.map { "\($0.name)=\($0.value ?? "<nil>")" } == ["ndots=2", "edns0=<nil>"])
        #expect(spec.hostAliases.map(\.ip) == ["10.1.2.3"])
        #expect(spec.hostAliases.map(\.hostnames) == [["foo.local", "bar.local"]])

        // Not set in the manifest.
        #expect(spec.activeDeadlineSeconds == nil)
        #expect(spec.hostname == nil)
        #expect(spec.subdomain == nil)
        #expect(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC && !spec.shareProcessNamespace)
    }

    @Test("Kubernetes' defaults are filled in for fields the manifest leaves out")
    func defaultsAreFilled() throws {
        let (pod, _) = try accept(FullPod.yaml)
        #expect(pod.metadata.namespace == "default")
        #expect(pod.spec.restartPolicy == .always)
        #expect(pod.spec.terminationGracePeriodSeconds == 30)
        #expect(pod.spec.dnsPolicy == .clusterFirst)
        // imagePullPolicy: `busybox` (implied :latest) -> Always, a tag other than latest -> IfNotPresent.
        #expect(pod.spec.initContainers.map(\.imagePullPolicy) == [.ifNotPresent, .always])  // busybox:1.36, busybox
        #expect(pod.spec.containers.map(\.imagePullPolicy) == [.always, .ifNotPresent])  // busybox, helper:2.0
        for (field, i, c) in pod.spec.allContainers {
            #expect(c.terminationMessagePath == "/dev/termination-log", "\(field)[\(i)]")
            #expect(c.terminationMessagePolicy == "File", "\(field)[\(i)]")
            #expect(!c.stdin && !c.tty, "\(field)[\(i)]")
        }
    }

    static let pullDefaults: [(String, PullPolicy)] = [
        ("busybox", .always),
        ("busybox:latest", .always),
        ("busybox:1.36", .ifNotPresent),
        ("docker.io/library/busybox:1.36", .ifNotPresent),
        ("localhost:5000/app", .always),
        ("busybox@sha256:" + String(repeating: "ab", count: 32), .ifNotPresent),
        ("busybox:latest@sha256:" + String(repeating: "ab", count: 32), .always),
    ]

    @Test("imagePullPolicy defaults by image reference, and an explicit policy is kept", arguments: pullDefaults)
    func pullPolicyDefault(_ image: String, _ expected: PullPolicy) throws {
        let text = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: "\(image)"
              - name: pinned
                image: "\(image)"
                imagePullPolicy: Never
            """
        let (pod, _) = try accept(text)
        #expect(pod.spec.containers.map(\.imagePullPolicy) == [expected, .never])
    }

    @Test("an explicit namespace, restartPolicy, grace period, dnsPolicy and termination message are kept")
    func explicitValuesKept() throws {
        let (pod, _) = try accept("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
              namespace: team-a
            spec:
              restartPolicy: OnFailure
              terminationGracePeriodSeconds: 0
              activeDeadlineSeconds: 60
              dnsPolicy: Default
              containers:
              - name: app
                image: busybox
                terminationMessagePath: /tmp/msg
                terminationMessagePolicy: FallbackToLogsOnError
            """)
        #expect(pod.metadata.namespace == "team-a")
        #expect(pod.spec.restartPolicy == .onFailure)
        #expect(pod.spec.terminationGracePeriodSeconds == 0)
        #expect(pod.spec.activeDeadlineSeconds == 60)
        #expect(pod.spec.dnsPolicy == .defaultPolicy)
        #expect(pod.spec.containers[0].terminationMessagePath == "/tmp/msg")
        #expect(pod.spec.containers[0].terminationMessagePolicy == "FallbackToLogsOnError")
    }

    @Test("the same pod written as JSON parses to the same Pod (uid aside)")
    func jsonEqualsYAML() throws {
        var (fromYAML, yamlWarnings) = try accept(FullPod.yaml)
        var (fromJSON, jsonWarnings) = try accept(FullPod.json)
        #expect(yamlWarnings == FullPod.warnings && jsonWarnings == FullPod.warnings)
        #expect(isUUIDv4(fromJSON.metadata.uid))
        fromYAML.metadata.uid = ""
        fromJSON.metadata.uid = ""
        #expect(fromJSON == fromYAML)
        // The comparison is not vacuous: a one-field change is seen.
        var changed = fromJSON
        changed.spec.containers[1].args = ["--quiet"]
        #expect(changed != fromYAML)
    }

    // MARK: - uid and generateName

    @Test("every parse assigns a fresh uid of RFC 4122 version 4 form")
    func uidIsUUIDv4() throws {
        let (a, _) = try accept(FullPod.yaml)
        let (b, _) = try accept(FullPod.yaml)
        #expect(isUUIDv4(a.metadata.uid), "\(a.metadata.uid)")
        #expect(isUUIDv4(b.metadata.uid), "\(b.metadata.uid)")
        #expect(a.metadata.uid != b.metadata.uid)
        var seen: Set<String> = []
        for _ in 0..<200 {
            let u = PodManifest.newUID()
            #expect(isUUIDv4(u), "\(u)")
            seen.insert(u)
        }
        #expect(seen.count == 200)
        // The checker itself rejects near misses.
        #expect(!isUUIDv4("0123abcd-0123-3123-8123-0123456789ab"))  // version 3
        #expect(!isUUIDv4("0123abcd-0123-4123-c123-0123456789ab"))  // variant 110x
        #expect(!isUUIDv4("0123ABCD-0123-4123-8123-0123456789ab"))  // uppercase
    }

    @Test("generateName gives name = prefix + 5 random characters from Kubernetes' alphabet")
    func generateName() throws {
        let text = """
            apiVersion: v1
            kind: Pod
            metadata:
              generateName: web-
            spec:
              containers:
              - name: app
                image: busybox
            """
        var names: Set<String> = []
        for _ in 0..<20 {
            let (pod, _) = try accept(text)
            let name = pod.metadata.name
            #expect(name.hasPrefix("web-"), "\(name)")
            #expect(name.count == "web-".count + 5, "\(name)")
            #expect(name.dropFirst(4).allSatisfy { generateNameAlphabet.contains($0) }, "\(name)")
            #expect(PodValidation.isDNSSubdomain(name), "\(name)")
            names.insert(name)
        }
        #expect(names.count > 1, "the suffix is random")
    }

    @Test("name wins over generateName when both are given")
    func nameWinsOverGenerateName() throws {
        let (pod, _) = try accept("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: fixed
              generateName: web-
            spec:
              containers:
              - name: app
                image: busybox
            """)
        #expect(pod.metadata.name == "fixed")
    }

    // Kubernetes (apiserver storage/names SimpleNameGenerator) cuts the prefix to 58 characters
    // (maxNameLength 63 - randomLength 5), so a generated name is never longer than 63.
    @Test("a generateName prefix longer than 58 characters is cut so that the name has 63")
    func longGenerateNameIsCut() throws {
        let prefix = String(repeating: "a", count: 70)
        let (pod, _) = try accept("""
            apiVersion: v1
            kind: Pod
            metadata:
              generateName: \(prefix)
            spec:
              containers:
              - name: app
                image: busybox
            """)
        let name = pod.metadata.name
        #expect(name.count == 63, "\(name) (\(name.count) characters)")
        #expect(name.hasPrefix(String(repeating: "a", count: 58)))
        #expect(name.dropFirst(58).allSatisfy { generateNameAlphabet.contains($0) }, "\(name)")
    }

    // MARK: - load

    @Test("load reads a manifest file; a missing file is an error")
    func loadFromFile() throws {
        let path = "/tmp/husk-pod-tests.\(getpid()).\(UInt64.random(in: 0...UInt64.max)).yaml"
        try Files.writeAtomically(path, Array(FullPod.yaml.utf8))
        defer { unlink(path) }
        let (pod, warnings) = try PodManifest.load(path)
        #expect(pod.metadata.name == "web")
        #expect(warnings == FullPod.warnings)
        #expect(throws: (any Error).self) { try PodManifest.load(path + ".missing") }
    }

    // MARK: - Warnings

    @Test("unknown and unimplemented fields give exactly one warning each, naming the path")
    func warningsForIgnoredFields() throws {
        let (pod, warnings) = try accept("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
              colour: blue
            spec:
              nodeSelector:
                disktype: ssd
                zone: a
              tolerations:
              - key: dedicated
                operator: Exists
              - key: other
                operator: Exists
              priorityClassName: high
              containers:
              - name: app
                image: busybox
                resources:
                  limits: {memory: 64Mi, cpu: 500m}
                  requests: {memory: 32Mi}
                flavour: vanilla
              - name: second
                image: busybox
            """)
        #expect(pod.spec.containers.count == 2)
        let expected = [
            "metadata.colour",  // unknown
            "spec.nodeSelector",  // not implemented
            "spec.tolerations",  // not implemented
            "spec.priorityClassName",  // not implemented
            "spec.containers[0].flavour",  // unknown
        ]
        for path in expected {
            let hits = warnings.filter { $0.hasPrefix(path + ":") }
            #expect(hits.count == 1, "warnings for \(path): \(hits)\nall: \(warnings)")
        }
        #expect(warnings.count == expected.count, "one warning per field and no more: \(warnings)")
    }

    @Test("probes of every handler (grpc, tcpSocket, exec) are run: no warnings")
    func probesDoNotWarn() throws {
        let (_, w) = try accept("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                ports: [{name: http, containerPort: 8080}]
                livenessProbe:
                  grpc: {port: 9090}
                readinessProbe:
                  tcpSocket: {port: http}
                startupProbe:
                  exec: {command: ["true"]}
            """)
        #expect(w.isEmpty, "\(w)")
    }

    @Test("a clean manifest gives no warnings")
    func noWarningsWhenClean() throws {
        let (_, minimal) = try accept("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
            """)
        #expect(minimal.isEmpty, "\(minimal)")
        let (_, full) = try accept(FullPod.yaml)
        #expect(full == FullPod.warnings, "\(full)")
    }

    // MARK: - Quantities

    static let quantities: [(String, Int64)] = [
        ("64Mi", 64 * 1024 * 1024),
        ("1Gi", 1024 * 1024 * 1024),
        ("500M", 500_000_000),
        ("1.5Gi", 1536 * 1024 * 1024),
        ("1e3", 1000),
        ("100", 100),
        ("1Ki", 1024),
        ("2k", 2000),
        ("0", 0),
    ]

    @Test("Quantity.bytes reads Kubernetes quantities", arguments: quantities)
    func quantityBytes(_ text: String, _ bytes: Int64) {
        #expect(Quantity.bytes(text) == bytes)
    }

    @Test("Quantity.bytes rejects what is not a quantity", arguments: ["abc", "-1Gi", "1Xi", "", "Gi", "1 Gi x"])
    func quantityRejects(_ text: String) {
        #expect(Quantity.bytes(text) == nil, "\"\(text)\" -> \(String(describing: Quantity.bytes(text)))")
    }

    @Test("quantities too large for an int64, infinite or not numbers are invalid, never a crash (found by fuzzing)",
          arguments: ["5Ei", "9E", "inf", "nan", "1e400", "1e30m", "99999999999999999999"])
    func quantityOverflow(_ text: String) {
        #expect(Quantity.milli(text) == nil, "\"\(text)\" -> \(String(describing: Quantity.milli(text)))")
        #expect(Quantity.bytes(text + "Ei") == nil)
        #expect(Quantity.bytes("1e-9223372036854775808") == nil && Quantity.bytes("1e401") == nil)
    }
}

/// Issue 16 #2: a manifest cannot exhaust the node's memory.
@Suite("Pod manifest: size and expansion limits")
struct ManifestLimitTests {
    @Test("a YAML alias bomb (10 nested anchors of 10 aliases) is refused, not expanded to 10^10 values")
    func aliasBomb() throws {
        var text = "apiVersion: v1\nkind: Pod\nmetadata: {name: bomb}\nx0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for i in 1..<10 {
            text += "x\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ",") + "]\n"
        }
        text += "spec:\n  containers: [{name: c, image: busybox, args: *a9}]\n"
        #expect(text.utf8.count < 1000)
        let p = try #require(problems(text))
        #expect(p.contains { $0.message.contains("expands to more than") }, "\(p)")
    }

    @Test("YAML nested over 1000 levels: the error says so and where (issue 16 #11)")
    func tooDeep() throws {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: deep}\nspec:\n  containers: " + String(repeating: "[", count: 2000) + String(repeating: "]", count: 2000) + "\n"
        let p = try #require(problems(text))
        let message = p.first?.message ?? ""
        #expect(message.contains("nested deeper than 1000 levels") && message.contains("line 5, column"), "\(p)")
        #expect(p.first?.line == 5)
        // Another libyaml error keeps libyaml's own words.
        let bad = try #require(problems("apiVersion: v1\nkind: Pod\nmetadata: {name: x\nspec: {}\n"))
        #expect(bad.first?.message.contains("did not find expected") == true, "\(bad)")
    }

    @Test("over 3 MiB is refused (Kubernetes' request limit)")
    func tooBig() throws {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n  annotations: {a: \"" + String(repeating: "x", count: PodManifest.maxBytes) + "\"}\n"
        let p = try #require(problems(text))
        #expect(p.first?.message.contains("at most \(PodManifest.maxBytes)") == true, "\(p)")
    }

    @Test("a device, a FIFO or a directory is refused before anything is read")
    func notARegularFile() throws {
        let fifo = "/tmp/husk-test-manifest-fifo-\(getpid())"
        mkfifo(fifo, 0o600)
        defer { unlink(fifo) }
        for (path, kind) in [("/dev/zero", "character device"), (fifo, "FIFO"), ("/tmp", "directory")] {
            do {
                _ = try PodManifest.load(path)
                Issue.record("\(path) was accepted")
            } catch let e as ManifestError {
                #expect(e.problems.first?.message.contains(kind) == true, "\(path): \(e)")
            }
        }
    }
}
