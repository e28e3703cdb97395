import Foundation
import HuskImage
import HuskSystem
import Testing

extension Host {
    static var canRunRegistry: Bool {
        canRunPods && FileManager.default.isExecutableFile(atPath: "/usr/bin/docker-registry")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/htpasswd") && FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")
    }
    static var registrySkipReason: Comment {
        "needs docker-registry, htpasswd (apache2-utils) and openssl (Scripts/install-deps.sh installs them)"
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, closed: a race only with other programs).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: a.sin_port))
}

/// Whether something accepts connections on 127.0.0.1:`port` within `timeout`.
func waitForPort(_ port: Int, timeout: TimeInterval = 10) -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = UInt16(port).bigEndian
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        close(fd)
        if ok { return true }
        usleep(20_000)
    }
    return false
}

/// Debian's docker-registry (the distribution registry) on 127.0.0.1 with its storage in the
/// test's scratch dir; optionally htpasswd Basic auth and TLS. Stopped (SIGKILL) by `stop()`.
final class TestRegistry: @unchecked Sendable {
    let port: Int
    let dir: String
    let process = Process()
    let tls: Bool

    init(_ scratch: Scratch, name: String = "registry", user: (String, String)? = nil, tls: (cert: String, key: String)? = nil,
         clientCA: String? = nil) throws {
        dir = scratch.path + "/" + name
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        port = freePort()
        self.tls = tls != nil
        var config = """
            version: 0.1
            log:
              level: error
            storage:
              filesystem:
                rootdirectory: \(dir)/data
            http:
              addr: 127.0.0.1:\(port)

            """
        if let tls { config += "  tls:\n    certificate: \(tls.cert)\n    key: \(tls.key)\n" }
        if let clientCA { config += "    clientcas:\n      - \(clientCA)\n" }
        if let (u, p) = user {
            let h = run(["/usr/bin/htpasswd", "-Bbn", u, p])
            try h.stdout.write(toFile: dir + "/htpasswd", atomically: true, encoding: .utf8)
            config += "auth:\n  htpasswd:\n    realm: husk-test\n    path: \(dir)/htpasswd\n"
        }
        try config.write(toFile: dir + "/config.yml", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
        process.arguments = ["serve", dir + "/config.yml"]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        guard waitForPort(port) else {
            stop()
            throw HuskError(.system, "docker-registry did not listen on \(port)")
        }
    }

    var host: String { "127.0.0.1:\(port)" }

    /// The busybox test image pushed as `library/busybox:TAG` (skopeo from the layout).
    func push(tag: String = "1.36", source: String = "1.36", creds: (String, String)? = nil, certDir: String? = nil,
              layout: String = BusyboxLayout.path, name: String = "library/busybox", all: Bool = false) {
        var args = ["/usr/bin/skopeo", "copy", "--dest-tls-verify=false"]
        if let (u, p) = creds { args += ["--dest-creds", "\(u):\(p)"] }
        if let certDir { args += ["--dest-cert-dir", certDir] }
        if all { args.append("--all") }
        args += ["oci:\(layout):\(source)", "docker://\(host)/\(name):\(tag)"]
        let r = run(args, timeout: 120)
        #expect(r.status == 0, "skopeo copy: \(r.stderr)")
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Tests/registry/proxy.py in front of a registry: Bearer auth, injected failures, corrupted
/// and cut blobs, and a log of what it forwarded.
final class TestProxy: @unchecked Sendable {
    let process = Process()
    let port: Int
    let log: String

    init(_ scratch: Scratch, upstream: String, options: String = "{}") throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path + "/registry/proxy.py"
        let portFile = scratch.path + "/proxy-\(UUID().uuidString.prefix(6)).port"
        log = portFile + ".log"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script, portFile, upstream, log, options]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let end = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: portFile) && Date() < end { usleep(20_000) }
        port = Int(readText(portFile)) ?? 0
        guard port > 0 else {
            stop()
            throw HuskError(.system, "the proxy did not start")
        }
    }

    var host: String { "127.0.0.1:\(port)" }
    var lines: [String] { readText(log).split(separator: "\n").map(String.init) }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Issue 14: pulls from registries (OCI distribution API) by `husk pull` and by pods, with
/// containerd's resolver behaviour, authentication, hosts.toml and verified, resumable blobs.
@Suite("Registry pulls", .serialized, .enabled(if: Host.canRunRegistry, Host.registrySkipReason))
struct RegistryPullTests {
    func husk(_ scratch: Scratch, _ extra: [String] = []) -> HuskCLI {
        var h = HuskCLI(scratch)
        h.registries = extra
        return h
    }

    /// Blob files in a store.
    func blobs(_ root: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root + "/images/blobs/sha256")) ?? []).sorted()
    }

    @Test("anonymous pull over plain HTTP (localhost is HTTP without configuration, as containerd): the image, its repo digest and source; a pod runs it with kubelet's Pulling/Pulled events; a tag that is not there is ErrImagePull ... not found")
    func anonymous() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let registry = try TestRegistry(scratch)
        defer { registry.stop() }
        registry.push()
        let h = husk(scratch)
        let ref = "\(registry.host)/library/busybox:1.36"
        let r = h("pull", ref)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("Pulled \(ref) (image sha256:"), "\(r.stdout)")
        let img = try #require(try h.store.image(matching: ref))
        #expect(img.repoDigests.first?.hasPrefix("\(registry.host)/library/busybox@sha256:") == true, "\(img.repoDigests)")
        #expect(img.source == "http://\(registry.host)/library/busybox", "\(img.source)")
        let again = h("pull", ref)
        #expect(again.stdout.hasPrefix("Image is up to date for \(ref)"), "\(again.stdout)")
        let listed = h("images", "--digests").stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        let hex = String(img.repoDigests[0].split(separator: ":").last!.prefix(13))
        #expect(listed.first == ["IMAGE", "TAG", "DIGEST", "IMAGE", "ID", "SIZE"] && listed.dropFirst().first?.prefix(3) == ["\(registry.host)/library/busybox", "1.36", hex][...],
                "\(listed)")

        let missing = h("pull", "\(registry.host)/library/busybox:9.9")
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("husk: ErrImagePull: Failed to pull image \"\(registry.host)/library/busybox:9.9\": failed to pull and unpack image")
                && missing.stderr.contains(": not found"), "\(missing.stderr)")

        // A pod: kubelet's events, the container runs the registry's image.
        var pods = PodHusk(scratch)
        pods.registries = true
        defer { pods.cleanup() }
        let started = pods.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: reg}
            spec:
              containers:
              - name: c
                image: \(registry.host)/library/busybox:1.36
                imagePullPolicy: Always
                command: ["sh", "-c", "echo from-registry; sleep 60"]
            """)
        #expect(started.status == 0, "\(started.stderr)")
        let pod = pods.wait("reg", timeout: 30) { $0.stateKind("c") == "running" }
        #expect(pod?.stateKind("c") == "running", "\(String(describing: pod?.status))")
        let pulled = events(pods.events("reg"), "Pulled", "c").compactMap { $0["message"] as? String }
        let pattern = #/^Successfully pulled image "127\.0\.0\.1:[0-9]+/library/busybox:1\.36" in ([0-9]+ms|[0-9]+(\.[0-9]{1,3})?s) \(([0-9]+ms|[0-9]+(\.[0-9]{1,3})?s) including waiting\)\. Image size: [0-9]+ bytes\.$/#
        #expect(pulled.count == 1 && (try? pattern.wholeMatch(in: pulled[0])) != nil, "\(pulled)")
    }

    @Test("htpasswd Basic auth: no credentials, wrong ones and the right ones (--creds, and docker's config.json with a base64 auth); the password is never printed")
    func basicAuth() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let registry = try TestRegistry(scratch, user: ("alice", "s3cret-pw"))
        defer { registry.stop() }
        registry.push(creds: ("alice", "s3cret-pw"))
        let ref = "\(registry.host)/library/busybox:1.36"
        let none = husk(scratch)("pull", ref)
        #expect(none.status != 0 && none.stderr.contains("pull access denied, repository does not exist or may require authorization: no basic auth credentials"), "\(none.stderr)")
        let wrong = husk(scratch)("pull", "--creds", "alice:wrong-pw", ref)
        #expect(wrong.status != 0 && wrong.stderr.contains("pull access denied") && wrong.stderr.contains("authorization failed"), "\(wrong.stderr)")
        #expect(!wrong.stderr.contains("wrong-pw"))
        let right = husk(scratch)("pull", "--creds", "alice:s3cret-pw", ref)
        #expect(right.status == 0, "\(right.stderr)")
        // docker's config.json, another store.
        let auth = Data("alice:s3cret-pw".utf8).base64EncodedString()
        try #"{"auths": {"\#(registry.host)": {"auth": "\#(auth)"}}}"#.write(toFile: scratch.path + "/config.json", atomically: true, encoding: .utf8)
        var other = HuskCLI(scratch)
        other.registries = ["--auth-file", scratch.path + "/config.json"]
        let viaFile = IntegrationTests.run([huskPath, "--root", scratch.path + "/root2"] + other.registries + ["pull", ref])
        #expect(viaFile.status == 0, "\(viaFile.stderr)")
        #expect(!viaFile.stdout.contains("s3cret") && !viaFile.stderr.contains("s3cret"))
    }

    @Test("imagePullSecrets from Secret files in --secrets-dir (dockerconfigjson in data or stringData, legacy dockercfg): each matching credential is tried in the pod's order, a missing one is kubelet's FailedToRetrieveImagePullSecret, the password appears nowhere")
    func pullSecrets() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let registry = try TestRegistry(scratch, user: ("alice", "s3cret-pw"))
        defer { registry.stop() }
        registry.push(creds: ("alice", "s3cret-pw"))
        let dir = scratch.path + "/secrets"
        try FileManager.default.createDirectory(atPath: dir + "/default", withIntermediateDirectories: true)
        func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }
        // What `kubectl create secret docker-registry NAME ... --dry-run=client -o yaml` prints.
        try """
            apiVersion: v1
            data:
              .dockerconfigjson: \(b64(#"{"auths":{"\#(registry.host)":{"username":"alice","password":"nope","auth":"\#(b64("alice:nope"))"}}}"#))
            kind: Secret
            metadata:
              creationTimestamp: null
              name: wrong
            type: kubernetes.io/dockerconfigjson
            """.write(toFile: dir + "/wrong.yaml", atomically: true, encoding: .utf8)
        try """
            apiVersion: v1
            kind: Secret
            metadata: {name: right, namespace: default}
            type: kubernetes.io/dockerconfigjson
            stringData:
              .dockerconfigjson: '{"auths": {"http://\(registry.host)/v2/": {"auth": "\(b64("alice:s3cret-pw"))"}}}'
            """.write(toFile: dir + "/default/right.yaml", atomically: true, encoding: .utf8)
        try #"{"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "legacy"}, "type": "kubernetes.io/dockercfg", "data": {".dockercfg": "\#(b64(#"{"\#(registry.host)": {"auth": "\#(b64("alice:s3cret-pw"))"}}"#))"}}"#
            .write(toFile: dir + "/legacy.json", atomically: true, encoding: .utf8)
        try "kind: Secret\nmetadata: {name: opaque}\ntype: Opaque\ndata: {password: eA==}\n".write(toFile: dir + "/opaque.yaml", atomically: true, encoding: .utf8)

        var pods = PodHusk(scratch, extra: ["--secrets-dir", dir])
        pods.registries = true
        defer { pods.cleanup() }
        func pod(_ name: String, _ secrets: [String]) -> String {
            """
            apiVersion: v1
            kind: Pod
            metadata: {name: \(name)}
            spec:
              imagePullSecrets: [\(secrets.map { "{name: \($0)}" }.joined(separator: ", "))]
              containers:
              - name: c
                image: \(registry.host)/library/busybox:1.36
                imagePullPolicy: Always
                command: ["sleep", "60"]
            """
        }
        // The wrong credentials first, then the right ones: the pull succeeds.
        #expect(pods.start(pod("both", ["missing", "opaque", "wrong", "right"]), name: "both.yaml").status == 0)
        let both = pods.wait("both", timeout: 30) { $0.stateKind("c") == "running" }
        #expect(both?.stateKind("c") == "running", "\(String(describing: both?.status))")
        let failed = events(pods.events("both"), "FailedToRetrieveImagePullSecret").compactMap { $0["message"] as? String }
        #expect(failed.first?.hasPrefix("Unable to retrieve some image pull secrets (missing, opaque: ") == true
                && failed.first?.hasSuffix("type Opaque is not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg); attempting to pull the image may not succeed.") == true,
                "\(failed)")
        #expect(pods.start(pod("legacy", ["legacy"]), name: "legacy.yaml").status == 0)
        let legacy = pods.wait("legacy", timeout: 30) { $0.stateKind("c") == "running" }
        #expect(legacy?.stateKind("c") == "running", "\(String(describing: legacy?.status))")
        // Only wrong credentials: the registry's refusal, as kubelet reports it.
        // (`husk run -d` says the pod is waiting with the pull's error: status 2; the pod goes on.)
        let started = pods.start(pod("wrong", ["wrong"]), name: "wrong.yaml")
        #expect(started.status == 2 && started.stderr.contains("authorization failed"), "\(started.stderr)")
        let wrong = pods.wait("wrong", timeout: 30) { ["ErrImagePull", "ImagePullBackOff"].contains($0.waitingReason("c") ?? "") }
        #expect(wrong.map { waitingMessage($0, "c") ?? "" }?.contains("authorization failed") == true, "\(String(describing: wrong?.status))")
        for p in ["both", "legacy", "wrong"] {
            let all = pods("inspect", p).stdout + pods("events", p).stdout
            #expect(!all.contains("s3cret") && !all.contains("nope"), "\(p): a password is shown")
        }
    }

    @Test("a registry that dies halfway through a layer: the pod is ErrImagePull then ImagePullBackOff; once it is back, the next attempt resumes the blob with Range and the pod starts")
    func registryDiesMidBlob() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let registry = try TestRegistry(scratch)
        defer { registry.stop() }
        registry.push()
        let first = try TestProxy(scratch, upstream: registry.host, options: #"{"die": true, "cut_min": 100000}"#)
        defer { first.stop() }
        var pods = PodHusk(scratch, extra: ["--backoff-scale", "0.1"])
        pods.registries = true
        defer { pods.cleanup() }
        let started = pods.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: dies}
            spec:
              containers:
              - name: c
                image: \(first.host)/library/busybox:1.36
                command: ["sleep", "60"]
            """)
        #expect(started.status == 2 && started.stderr.contains("ErrImagePull"), "\(started.stderr)")
        let backoff = pods.wait("dies", timeout: 60) { $0.waitingReason("c") == "ImagePullBackOff" }
        #expect(backoff?.waitingReason("c") == "ImagePullBackOff", "\(String(describing: backoff?.status))")
        #expect(first.lines.contains { $0.hasPrefix("DIE after ") }, "\(first.lines)")
        let partials = ((try? FileManager.default.contentsOfDirectory(atPath: pods.root + "/images/ingest")) ?? []).filter { $0.hasSuffix(".partial") }
        #expect(partials.count == 1, "\(partials)")
        #expect(!events(pods.events("dies"), "Failed", "c").isEmpty)
        // The registry is back on the same address.
        let second = try TestProxy(scratch, upstream: registry.host, options: #"{"port": \#(first.port)}"#)
        defer { second.stop() }
        let running = pods.wait("dies", timeout: 60) { $0.stateKind("c") == "running" }
        #expect(running?.stateKind("c") == "running", "\(String(describing: running?.status))")
        #expect(second.lines.contains { $0.contains("/blobs/sha256:") && $0.contains("range=bytes=") && !$0.contains("range=bytes=0-") }, "\(second.lines)")
    }

    @Test("Bearer tokens: the challenge's realm asked for a token for repository:library/busybox:pull (anonymously, then with Basic credentials when the token server wants them), which every request then carries")
    func bearer() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let registry = try TestRegistry(scratch)
        defer { registry.stop() }
        registry.push()
        let anon = try TestProxy(scratch, upstream: registry.host, options: #"{"token": true}"#)
        defer { anon.stop() }
        let r = husk(scratch)("pull", "\(anon.host)/library/busybox:1.36")
        #expect(r.status == 0, "\(r.stderr)")
        let log = anon.lines
        #expect(log.contains { $0.hasPrefix("TOKEN scope=repository:library/busybox:pull service=husk-test basic=no") }, "\(log)")
        #expect(log.filter { $0.hasPrefix("GET /v2/library/busybox/blobs/") }.allSatisfy { $0.hasSuffix("auth=Bearer") }, "\(log)")

        let withUser = try TestProxy(scratch, upstream: registry.host, options: #"{"token": true, "user": "bob", "password": "pw-bob"}"#)
        defer { withUser.stop() }
        let ref = "\(withUser.host)/library/busybox:1.36"
        let denied = IntegrationTests.run([huskPath, "--root", scratch.path + "/r2", "pull", ref])
        #expect(denied.status != 0 && denied.stderr.contains("pull access denied") && denied.stderr.contains("failed to fetch anonymous token"), "\(denied.stderr)")
        let ok = IntegrationTests.run([huskPath, "--root", scratch.path + "/r3", "pull", "--creds", "bob:pw-bob", ref])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(withUser.lines.contains { $0.hasSuffix("basic=yes") }, "\(withUser.lines)")
    }

    @Test("a blob corrupted on the way is refused by its digest and nothing of it is stored; a blob cut halfway is resumed with Range and the pull succeeds")
    func corruptAndResume() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let registry = try TestRegistry(scratch)
        defer { registry.stop() }
        registry.push()
        let bad = try TestProxy(scratch, upstream: registry.host, options: #"{"corrupt": true}"#)
        defer { bad.stop() }
        let root = scratch.path + "/bad-root"
        let r = IntegrationTests.run([huskPath, "--root", root, "pull", "\(bad.host)/library/busybox:1.36"])
        #expect(r.status != 0 && r.stderr.contains("it was corrupted on the way; nothing was kept"), "\(r.stderr)")
        #expect(blobs(root).isEmpty, "stored: \(blobs(root))")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: root + "/images/ingest")) ?? []).filter { $0.hasSuffix(".partial") }.isEmpty)

        let cut = try TestProxy(scratch, upstream: registry.host, options: #"{"cut": 1, "cut_min": 10000}"#)
        defer { cut.stop() }
        let root2 = scratch.path + "/cut-root"
        let ok = IntegrationTests.run([huskPath, "--root", root2, "pull", "\(cut.host)/library/busybox:1.36"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(cut.lines.contains { $0.contains("/blobs/") && $0.contains("range=bytes=") }, "no ranged request: \(cut.lines)")
    }

    @Test("429 with Retry-After and 500 are retried; 403 is refused with the registry's words; a 404 repository is not found")
    func statuses() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let registry = try TestRegistry(scratch)
        defer { registry.stop() }
        registry.push()
        for (status, extra) in [(429, #", "retry_after": 1"#), (500, "")] {
            let p = try TestProxy(scratch, upstream: registry.host, options: #"{"fail": {"status": \#(status), "count": 2, "path": "/v2/library/busybox/manifests/"}\#(extra)}"#)
            defer { p.stop() }
            let r = IntegrationTests.run([huskPath, "--root", scratch.path + "/root-\(status)", "pull", "\(p.host)/library/busybox:1.36"])
            #expect(r.status == 0, "\(status): \(r.stderr)")
            #expect(p.lines.filter { $0.contains("/manifests/1.36") }.count >= 3, "\(p.lines)")
        }
        let forbidden = try TestProxy(scratch, upstream: registry.host, options: #"{"fail": {"status": 403, "path": "/v2/"}}"#)
        defer { forbidden.stop() }
        let r = IntegrationTests.run([huskPath, "--root", scratch.path + "/root-403", "pull", "\(forbidden.host)/library/busybox:1.36"])
        #expect(r.status != 0 && r.stderr.contains("403 Forbidden") && r.stderr.contains("testfail: injected 403"), "\(r.stderr)")
        let none = IntegrationTests.run([huskPath, "--root", scratch.path + "/root-404", "pull", "\(registry.host)/library/nothing:1.0"])
        #expect(none.status != 0 && none.stderr.contains("not found"), "\(none.stderr)")
    }

    @Test("hosts.toml: a mirror that is down is passed over for the next; TLS with the CA hosts.toml names is trusted, without it the certificate is refused")
    func hostsToml() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // A CA and a certificate for 127.0.0.1, made here.
        let d = scratch.path + "/tls"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        let script = """
            set -e
            cd \(d)
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=husk-test-ca 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\n' > ext
            openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null
            """
        let made = run(["/bin/sh", "-c", script])
        try #require(made.status == 0, "openssl: \(made.stderr)")
        let registry = try TestRegistry(scratch, tls: (d + "/srv.pem", d + "/srv.key"))
        defer { registry.stop() }
        registry.push()
        let config = scratch.path + "/certs.d"
        let hostDir = config + "/" + registry.host
        try FileManager.default.createDirectory(atPath: hostDir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: d + "/ca.pem", toPath: hostDir + "/ca.pem")
        let dead = freePort()
        try """
            server = "https://\(registry.host)"
            ca = "ca.pem"

            [host."http://127.0.0.1:\(dead)"]
              capabilities = ["pull", "resolve"]
            """.write(toFile: hostDir + "/hosts.toml", atomically: true, encoding: .utf8)
        let ref = "\(registry.host)/library/busybox:1.36"
        let ok = IntegrationTests.run([huskPath, "--root", scratch.path + "/r1", "--registry-config", config, "pull", ref])
        #expect(ok.status == 0, "\(ok.stderr)")
        let img = try ImageStore(root: scratch.path + "/r1").image(matching: ref)
        #expect(img?.source == "https://\(registry.host)/library/busybox", "\(String(describing: img?.source))")
        // The same without the CA: refused.
        try "server = \"https://\(registry.host)\"\n".write(toFile: hostDir + "/hosts.toml", atomically: true, encoding: .utf8)
        let refused = IntegrationTests.run([huskPath, "--root", scratch.path + "/r2", "--registry-config", config, "pull", ref])
        #expect(refused.status != 0 && refused.stderr.lowercased().contains("certificate"), "\(refused.stderr)")
    }

    @Test("TLS client certificates from hosts.toml's client (without one the registry refuses the handshake); skip_verify trusts a certificate no CA vouches for")
    func clientCertificates() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let d = scratch.path + "/tls"
        try FileManager.default.createDirectory(atPath: d + "/skopeo", withIntermediateDirectories: true)
        let script = """
            set -e
            cd \(d)
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=husk-test-ca 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\n' > ext
            openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=husk-test-client 2>/dev/null
            printf 'extendedKeyUsage=clientAuth\\n' > cext
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 -extfile cext 2>/dev/null
            cp client.pem skopeo/client.cert && cp client.key skopeo/client.key && cp ca.pem skopeo/ca.crt
            """
        let made = run(["/bin/sh", "-c", script])
        try #require(made.status == 0, "openssl: \(made.stderr)")
        let registry = try TestRegistry(scratch, tls: (d + "/srv.pem", d + "/srv.key"), clientCA: d + "/ca.pem")
        defer { registry.stop() }
        registry.push(certDir: d + "/skopeo")
        let config = scratch.path + "/certs.d"
        let hostDir = config + "/" + registry.host
        try FileManager.default.createDirectory(atPath: hostDir, withIntermediateDirectories: true)
        for f in ["ca.pem", "client.pem", "client.key"] { try FileManager.default.copyItem(atPath: d + "/" + f, toPath: hostDir + "/" + f) }
        let ref = "\(registry.host)/library/busybox:1.36"
        func pull(_ toml: String, _ root: String) -> RunResult {
            try? toml.write(toFile: hostDir + "/hosts.toml", atomically: true, encoding: .utf8)
            return IntegrationTests.run([huskPath, "--root", scratch.path + "/" + root, "--registry-config", config, "pull", ref])
        }
        let noClient = pull("server = \"https://\(registry.host)\"\nca = \"ca.pem\"\n", "r1")
        #expect(noClient.status != 0 && noClient.stderr.contains("Failed to pull image \"\(ref)\""), "\(noClient.stderr)")
        let withClient = pull("server = \"https://\(registry.host)\"\nca = \"ca.pem\"\nclient = [[\"client.pem\", \"client.key\"]]\n", "r2")
        #expect(withClient.status == 0, "\(withClient.stderr)")
        let skip = pull("server = \"https://\(registry.host)\"\nskip_verify = true\nclient = [[\"client.pem\", \"client.key\"]]\n", "r3")
        #expect(skip.status == 0, "\(skip.stderr)")
        let noCA = pull("server = \"https://\(registry.host)\"\nclient = [[\"client.pem\", \"client.key\"]]\n", "r4")
        #expect(noCA.status != 0 && noCA.stderr.lowercased().contains("certificate"), "\(noCA.stderr)")
    }

    @Test("a multi-platform index pushed with skopeo --all: this node's platform by default, --platform picks another (from a registry and from a layout), one the index lacks is refused with what it has")
    func platforms() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        var w = try LayoutWriter(scratch.path + "/layout")
        var entries: [[String: Any]] = []
        for arch in ["amd64", "arm64"] {
            var t = TarWriter()
            t.addFile("arch", arch)
            entries.append(try w.addImage(tag: nil, layers: [.init(tar: t.finish())], platform: ("linux", arch), toIndex: false))
        }
        try w.addIndex(tag: "multi", entries: entries)
        let registry = try TestRegistry(scratch)
        defer { registry.stop() }
        registry.push(tag: "1", source: "multi", layout: w.path, name: "test/multi", all: true)
        let ref = "\(registry.host)/test/multi:1"
        func arch(_ root: String, _ r: String = "") throws -> String {
            let store = try ImageStore(root: scratch.path + "/" + root)
            let img = try #require(try store.image(matching: r.isEmpty ? ref : r))
            return readText(store.snapshotPath(img.diffIDs[0]) + "/arch") + "/" + (img.config.architecture ?? "")
        }
        let host = IntegrationTests.run([huskPath, "--root", scratch.path + "/r1", "pull", ref])
        #expect(host.status == 0, "\(host.stderr)")
        #expect(try arch("r1") == "amd64/amd64")
        let arm = IntegrationTests.run([huskPath, "--root", scratch.path + "/r1", "pull", "--platform", "linux/arm64", ref])
        #expect(arm.status == 0 && arm.stdout.hasPrefix("Pulled "), "\(arm.stdout) \(arm.stderr)")
        #expect(try arch("r1") == "arm64/arm64")
        let none = IntegrationTests.run([huskPath, "--root", scratch.path + "/r2", "pull", "--platform", "linux/s390x", ref])
        #expect(none.status != 0 && none.stderr.contains("no manifest for linux/s390x in its index (has: linux/amd64, linux/arm64)"), "\(none.stderr)")
        let bad = IntegrationTests.run([huskPath, "--root", scratch.path + "/r2", "pull", "--platform", "arm64", ref])
        #expect(bad.status != 0 && bad.stderr.contains("--platform arm64: expected OS/ARCH[/VARIANT]"), "\(bad.stderr)")
        let layout = IntegrationTests.run([huskPath, "--root", scratch.path + "/r3", "--no-registries", "--image-source", w.path, "pull", "--platform", "linux/arm64", "test/multi:multi"])
        #expect(layout.status == 0, "\(layout.stderr)")
        #expect(try arch("r3", "test/multi:multi") == "arm64/arm64")
    }

    @Test("the hostile layers of the layout tests, pushed to a registry and pulled from it, are refused the same way; nothing is kept and the sentinel is untouched")
    func hostileLayers() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let sentinel = try Sentinel(in: scratch)
        let before = sentinel.fingerprint
        let registry = try TestRegistry(scratch)
        defer { registry.stop() }
        var w = try LayoutWriter(scratch.path + "/layout")
        let cases = HostileLayerTests.cases.filter { $0.error != nil }
        for (i, c) in cases.enumerated() { try w.addImage(tag: "c\(i)", layers: [.init(tar: c.build(sentinel.path))]) }
        for i in cases.indices { registry.push(tag: "\(i)", source: "c\(i)", layout: w.path, name: "test/evil") }
        let h = husk(scratch)
        for (i, c) in cases.enumerated() {
            let r = h("pull", "\(registry.host)/test/evil:\(i)")
            #expect(r.status == 1, "\(c.name): accepted")
            #expect(r.stderr.contains("ErrImagePull") && r.stderr.contains(c.error!), "\(c.name): \(r.stderr)")
            expectNothingKept(h.store)
        }
        #expect(sentinel.fingerprint == before, "the sentinel changed")
    }

    @Test("a husk-pull that dies without an answer: the pull's error says how it ended and the last lines of its stderr")
    func helperDies() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        // husk next to a husk-pull that fails the way a crash does.
        let bin = scratch.path + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: huskPath, toPath: bin + "/husk")
        try "#!/bin/sh\necho 'Fatal error: something broke' >&2\nkill -SEGV $$\n".write(toFile: bin + "/husk-pull", atomically: true, encoding: .utf8)
        chmod(bin + "/husk-pull", 0o755)
        let r = IntegrationTests.run([bin + "/husk", "--root", scratch.path + "/root", "pull", "127.0.0.1:1/library/busybox:1.36"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("husk-pull ended (") && r.stderr.contains("without saying why; its stderr: Fatal error: something broke"), "\(r.stderr)")
    }

    @Test("two pulls of one image at once download each blob once; Always pulls again but downloads nothing that did not change")
    func concurrentAndAlways() throws {
        let scratch = Scratch()
        defer { scratch.cleanup() }
        let registry = try TestRegistry(scratch)
        defer { registry.stop() }
        registry.push()
        let p = try TestProxy(scratch, upstream: registry.host)
        defer { p.stop() }
        let ref = "\(p.host)/library/busybox:1.36"
        let root = scratch.path + "/shared-root"
        let group = DispatchGroup()
        let results = ResultsBox()
        for _ in 0..<2 {
            group.enter()
            DispatchQueue.global().async {
                results.append(IntegrationTests.run([huskPath, "--root", root, "pull", ref]))
                group.leave()
            }
        }
        group.wait()
        #expect(results.all.allSatisfy { $0.status == 0 }, "\(results.all.map(\.stderr))")
        let img = try #require(try ImageStore(root: root).image(matching: ref))
        let layer = "GET /v2/library/busybox/blobs/\(img.layers[0].digest)"
        #expect(p.lines.filter { $0.hasPrefix(layer + " ") }.count == 1, "the layer was downloaded more than once: \(p.lines)")
        let before = p.lines.count
        let always = IntegrationTests.run([huskPath, "--root", root, "pull", "--policy", "Always", ref])
        #expect(always.status == 0 && always.stdout.hasPrefix("Pulled"), "\(always)")
        let after = Array(p.lines.dropFirst(before))
        // containerd's resolution: HEAD of the tag; its digest is in the store, so no GET at all.
        #expect(after == ["HEAD /v2/library/busybox/manifests/1.36 range= auth="], "Always asks the registry, and only that: \(after)")
        // The tag moved: the new manifest and what changed are downloaded.
        registry.push(tag: "1.36", source: "quit")
        let moved = p.lines.count
        let again = IntegrationTests.run([huskPath, "--root", root, "pull", "--policy", "Always", ref])
        #expect(again.status == 0, "\(again.stderr)")
        let fetched = Array(p.lines.dropFirst(moved))
        #expect(fetched.contains { $0.hasPrefix("GET /v2/library/busybox/manifests/1.36") } && fetched.contains { $0.contains("/blobs/") }
                && !fetched.contains { $0.hasPrefix(layer + " ") }, "the new config only (the layer is the same): \(fetched)")
        let newer = try #require(try ImageStore(root: root).image(matching: ref))
        #expect(newer.id != img.id && newer.layers == img.layers)
    }
}
