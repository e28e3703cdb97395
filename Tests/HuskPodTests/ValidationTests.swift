import HuskImage
import HuskJSON
import HuskPod
import HuskSystem
import Testing

/// A manifest with exactly one problem, and where it is.
struct InvalidCase: Sendable, CustomTestStringConvertible {
    var name: String
    var yaml: String
    var path: String
    var line: Int
    /// A word the message must contain (case-insensitive), when it says what kind of problem it is.
    var mentions: String? = nil

    var testDescription: String { name }
}

/// A manifest Kubernetes accepts, with what must be true of the pod it becomes.
struct ValidCase: Sendable, CustomTestStringConvertible {
    var name: String
    var yaml: String
    var check: @Sendable (Pod) -> Bool

    var testDescription: String { name }
}

/// 254 characters of valid DNS labels joined by dots: too long only.
let tooLongPodName = Array(repeating: String(repeating: "a", count: 63), count: 3).joined(separator: ".") + "."
    + String(repeating: "b", count: 62)
/// 253 characters: the longest pod name.
let longestPodName = String(tooLongPodName.dropLast())

enum InvalidManifests {
    // Cases marked [stricter than Kubernetes] (relative mountPath, relative hostPath path, emptyDir
    // medium other than "" or Memory, httpGet port naming no port of the container): the API server
    // admits such a pod and it fails later (CreateContainerError, FailedMount, probe errors).
    // Refusing it up front is Husk's choice; these cases pin that choice.
    static let cases: [InvalidCase] = [
        // Issue 16 #8: Kubernetes' label, annotation and hostNetwork port rules.
        .init(name: "a label value with a space and '!'", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
              labels:
                app: "my app!"
            spec:
              containers:
              - name: app
                image: busybox
            """, path: "metadata.labels", line: 6, mentions: "valid label"),
        .init(name: "a label key that starts with '-'", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
              labels:
                -app: web
            spec:
              containers:
              - name: app
                image: busybox
            """, path: "metadata.labels", line: 6, mentions: "name part"),
        .init(name: "annotations over 256 KiB in all", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
              annotations:
                note: "\(String(repeating: "x", count: 256 * 1024))"
            spec:
              containers:
              - name: app
                image: busybox
            """, path: "metadata.annotations", line: 6, mentions: "too long"),
        .init(name: "hostNetwork with a hostPort other than its containerPort", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              hostNetwork: true
              containers:
              - name: app
                image: busybox
                ports:
                - containerPort: 80
                  hostPort: 8080
            """, path: "spec.containers[0].ports[0].hostPort", line: 12, mentions: "must match"),
        .init(name: "apiVersion is not v1", yaml: """
            apiVersion: apps/v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
            """, path: "apiVersion", line: 1),
        .init(name: "kind is not Pod", yaml: """
            apiVersion: v1
            kind: Deployment
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
            """, path: "kind", line: 2),
        .init(name: "metadata.name is missing", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              namespace: default
            spec:
              containers:
              - name: app
                image: busybox
            """, path: "metadata.name", line: 4, mentions: "required"),
        .init(name: "metadata.name has uppercase letters", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: MyPod
            spec:
              containers:
              - name: app
                image: busybox
            """, path: "metadata.name", line: 4, mentions: "invalid"),
        .init(name: "metadata.name is longer than 253 characters", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: \(tooLongPodName)
            spec:
              containers:
              - name: app
                image: busybox
            """, path: "metadata.name", line: 4, mentions: "invalid"),
        .init(name: "metadata.name has an empty label", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web..app
            spec:
              containers:
              - name: app
                image: busybox
            """, path: "metadata.name", line: 4),
        .init(name: "container name is not a DNS-1123 label", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: Web_1
                image: busybox
            """, path: "spec.containers[0].name", line: 7, mentions: "invalid"),
        .init(name: "container name is 64 characters", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
              - name: \(String(repeating: "c", count: 64))
                image: busybox
            """, path: "spec.containers[1].name", line: 9),
        .init(name: "init container name is not a DNS-1123 label", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              initContainers:
              - name: setup.sh
                image: busybox
              containers:
              - name: app
                image: busybox
            """, path: "spec.initContainers[0].name", line: 7),
        // Kubernetes (validateInitContainers) checks init container names against the app
        // containers' names, so the duplicate is reported on the init container.
        .init(name: "an init container and an app container share a name", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              initContainers:
              - name: app
                image: busybox
              containers:
              - name: app
                image: busybox
            """, path: "spec.initContainers[0].name", line: 7, mentions: "duplicate"),
        .init(name: "two app containers share a name", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
              - name: app
                image: busybox
            """, path: "spec.containers[1].name", line: 9, mentions: "duplicate"),
        .init(name: "image is missing", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                command: ["sleep", "1"]
            """, path: "spec.containers[0].image", line: 7, mentions: "required"),
        .init(name: "image is empty", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: ""
            """, path: "spec.containers[0].image", line: 8, mentions: "required"),
        .init(name: "no containers", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers: []
            """, path: "spec.containers", line: 6, mentions: "required"),
        .init(name: "imagePullPolicy is not Always, IfNotPresent or Never", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                imagePullPolicy: Sometimes
            """, path: "spec.containers[0].imagePullPolicy", line: 9, mentions: "unsupported"),
        .init(name: "restartPolicy is not Always, OnFailure or Never", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              restartPolicy: Sometimes
              containers:
              - name: app
                image: busybox
            """, path: "spec.restartPolicy", line: 6, mentions: "unsupported"),
        .init(name: "dnsPolicy is unknown", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              dnsPolicy: ClusterLast
              containers:
              - name: app
                image: busybox
            """, path: "spec.dnsPolicy", line: 6, mentions: "unsupported"),
        .init(name: "dnsPolicy None without dnsConfig", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              dnsPolicy: None
              containers:
              - name: app
                image: busybox
            """, path: "spec.dnsConfig", line: 6, mentions: "required"),
        .init(name: "lifecycle on a regular init container", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              initContainers:
              - name: setup
                image: busybox
                lifecycle:
                  postStart:
                    exec: {command: ["true"]}
              containers:
              - name: app
                image: busybox
            """, path: "spec.initContainers[0].lifecycle", line: 10, mentions: "forbidden"),
        .init(name: "livenessProbe on a regular init container", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              initContainers:
              - name: setup
                image: busybox
                livenessProbe: {exec: {command: ["true"]}}
              containers:
              - name: app
                image: busybox
            """, path: "spec.initContainers[0].livenessProbe", line: 9, mentions: "forbidden"),
        .init(name: "startupProbe on an init container with restartPolicy absent", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              initContainers:
              - name: setup
                image: busybox
                startupProbe: {tcpSocket: {port: 80}}
              containers:
              - name: app
                image: busybox
            """, path: "spec.initContainers[0].startupProbe", line: 9, mentions: "forbidden"),
        .init(name: "init container restartPolicy other than Always", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              initContainers:
              - name: setup
                image: busybox
                restartPolicy: OnFailure
              containers:
              - name: app
                image: busybox
            """, path: "spec.initContainers[0].restartPolicy", line: 9, mentions: "unsupported"),
        .init(name: "restartPolicy on an app container", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                restartPolicy: Always
            """, path: "spec.containers[0].restartPolicy", line: 9, mentions: "forbidden"),
        .init(name: "volumeMount names a volume the pod does not have", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                volumeMounts:
                - name: data
                  mountPath: /data
            """, path: "spec.containers[0].volumeMounts[0].name", line: 10, mentions: "not found"),
        // [stricter than Kubernetes]
        .init(name: "relative mountPath", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              volumes:
              - name: data
                emptyDir: {}
              containers:
              - name: app
                image: busybox
                volumeMounts:
                - name: data
                  mountPath: data
            """, path: "spec.containers[0].volumeMounts[0].mountPath", line: 14),
        .init(name: "two volumeMounts at the same mountPath", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              volumes:
              - name: a
                emptyDir: {}
              - name: b
                emptyDir: {}
              containers:
              - name: app
                image: busybox
                volumeMounts:
                - {name: a, mountPath: /data}
                - {name: b, mountPath: /data}
            """, path: "spec.containers[0].volumeMounts[1].mountPath", line: 16, mentions: "unique"),
        // (Kubernetes itself reports this at `...volumeMounts.subPath`, without the index: an
        // upstream quirk. The indexed path is the useful one.)
        .init(name: "subPath with ..", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              volumes:
              - name: data
                emptyDir: {}
              containers:
              - name: app
                image: busybox
                volumeMounts:
                - name: data
                  mountPath: /data
                  subPath: ../etc
            """, path: "spec.containers[0].volumeMounts[0].subPath", line: 15, mentions: ".."),
        // [stricter than Kubernetes]
        .init(name: "hostPath with a relative path", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              volumes:
              - name: logs
                hostPath:
                  path: var/log
              containers:
              - name: app
                image: busybox
            """, path: "spec.volumes[0].hostPath.path", line: 9),
        .init(name: "hostPath with an unknown type", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              volumes:
              - name: logs
                hostPath: {path: /var/log, type: Folder}
              containers:
              - name: app
                image: busybox
            """, path: "spec.volumes[0].hostPath.type", line: 8, mentions: "unsupported"),
        // [stricter than Kubernetes]
        .init(name: "emptyDir medium other than Memory", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              volumes:
              - name: scratch
                emptyDir: {medium: Disk}
              containers:
              - name: app
                image: busybox
            """, path: "spec.volumes[0].emptyDir.medium", line: 8),
        .init(name: "emptyDir sizeLimit is not a quantity", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              volumes:
              - name: scratch
                emptyDir:
                  sizeLimit: lots
              containers:
              - name: app
                image: busybox
            """, path: "spec.volumes[0].emptyDir.sizeLimit", line: 9),
        .init(name: "emptyDir sizeLimit is negative", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              volumes:
              - name: scratch
                emptyDir:
                  sizeLimit: -1Gi
              containers:
              - name: app
                image: busybox
            """, path: "spec.volumes[0].emptyDir.sizeLimit", line: 9),
        .init(name: "volume name is not a DNS-1123 label", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              volumes:
              - name: Scratch
                emptyDir: {}
              containers:
              - name: app
                image: busybox
            """, path: "spec.volumes[0].name", line: 7),
        // '=' is the one printable ASCII character an env var name may not hold, even under
        // Kubernetes' relaxed rule (RelaxedEnvironmentVariableValidation, GA in 1.34).
        .init(name: "env name contains =", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                env:
                - name: A=B
                  value: x
            """, path: "spec.containers[0].env[0].name", line: 10, mentions: "invalid"),
        .init(name: "env has both value and valueFrom", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                env:
                - name: POD
                  value: x
                  valueFrom: {fieldRef: {fieldPath: metadata.name}}
            """, path: "spec.containers[0].env[0].valueFrom", line: 12),
        .init(name: "env fieldRef to an unsupported field", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                env:
                - name: PHASE
                  valueFrom:
                    fieldRef:
                      fieldPath: status.phase
            """, path: "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", line: 13, mentions: "unsupported"),
        // Kubernetes' validateHandler reports the second action it finds (order exec, httpGet,
        // tcpSocket, grpc, sleep) as Forbidden at that action's path.
        .init(name: "lifecycle handler with two actions", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                lifecycle:
                  postStart:
                    exec: {command: ["true"]}
                    httpGet: {path: /, port: 80}
            """, path: "spec.containers[0].lifecycle.postStart.httpGet", line: 12),
        .init(name: "probe with two actions", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                readinessProbe:
                  tcpSocket: {port: 80}
                  exec: {command: ["true"]}
            """, path: "spec.containers[0].readinessProbe.tcpSocket", line: 10),
        // [stricter than Kubernetes]
        .init(name: "httpGet port names no port of the container", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                ports:
                - {name: http, containerPort: 8080}
                livenessProbe:
                  httpGet: {path: /healthz, port: metrics}
            """, path: "spec.containers[0].livenessProbe.httpGet.port", line: 12),
        .init(name: "shareProcessNamespace with hostPID", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              shareProcessNamespace: true
              hostPID: true
              containers:
              - name: app
                image: busybox
            """, path: "spec.shareProcessNamespace", line: 6),
        .init(name: "privileged with allowPrivilegeEscalation false", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                securityContext:
                  privileged: true
                  allowPrivilegeEscalation: false
            """, path: "spec.containers[0].securityContext", line: 10),
        .init(name: "container seccompProfile Localhost without localhostProfile", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                securityContext:
                  seccompProfile: {type: Localhost}
            """, path: "spec.containers[0].securityContext.seccompProfile.localhostProfile", line: 10, mentions: "required"),
        .init(name: "pod seccompProfile Localhost without localhostProfile", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              securityContext:
                seccompProfile:
                  type: Localhost
              containers:
              - name: app
                image: busybox
            """, path: "spec.securityContext.seccompProfile.localhostProfile", line: 8, mentions: "required"),
        .init(name: "a string where an integer is expected (pod)", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              terminationGracePeriodSeconds: "30"
              containers:
              - name: app
                image: busybox
            """, path: "spec.terminationGracePeriodSeconds", line: 6, mentions: "integer"),
        .init(name: "a string where an integer is expected (container port)", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                ports:
                - containerPort: http
            """, path: "spec.containers[0].ports[0].containerPort", line: 10, mentions: "integer"),
        .init(name: "a string where a list is expected", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                command: sleep 10
            """, path: "spec.containers[0].command", line: 9),
        .init(name: "YAML syntax error", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web: extra
            spec:
              containers:
              - name: app
                image: busybox
            """, path: "", line: 4, mentions: "yaml"),
    ]
}

enum KubernetesAccepts {
    static let cases: [ValidCase] = [
        .init(name: "labels with a prefix, '_' and '.', and an empty value; hostNetwork with hostPort = containerPort", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
              labels:
                app.kubernetes.io/name: Web_1.x
                empty: ""
              annotations:
                example.com/Note: "anything goes here: spaces, !, ü"
            spec:
              hostNetwork: true
              containers:
              - name: app
                image: busybox
                ports:
                - containerPort: 8080
                  hostPort: 8080
            """, check: { $0.metadata.labels["app.kubernetes.io/name"] == "Web_1.x" && $0.metadata.labels["empty"] == "" }),
        .init(name: "the longest pod name (253 characters)", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: \(longestPodName)
            spec:
              containers:
              - name: app
                image: busybox
            """, check: { $0.metadata.name == longestPodName }),
        .init(name: "a 63-character container name", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: \(String(repeating: "c", count: 63))
                image: busybox
            """, check: { $0.spec.containers[0].name.count == 63 }),
        .init(name: "a sidecar (init container with restartPolicy Always) may have lifecycle and probes", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              initContainers:
              - name: proxy
                image: busybox
                restartPolicy: Always
                lifecycle: {preStop: {exec: {command: ["true"]}}}
                livenessProbe: {exec: {command: ["true"]}}
                readinessProbe: {tcpSocket: {port: 80}}
                startupProbe: {exec: {command: ["true"]}}
              containers:
              - name: app
                image: busybox
            """, check: { $0.spec.initContainers[0].restartPolicy == "Always" && $0.spec.initContainers[0].readinessProbe != nil }),
        .init(name: "dnsPolicy None with a dnsConfig", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              dnsPolicy: None
              dnsConfig: {nameservers: [1.1.1.1]}
              containers:
              - name: app
                image: busybox
            """, check: { $0.spec.dnsPolicy == DNSPolicy.none && $0.spec.dnsConfig?.nameservers == ["1.1.1.1"] }),
        .init(name: "seccompProfile Localhost with localhostProfile", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                securityContext:
                  seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}
            """, check: { $0.spec.containers[0].securityContext?.seccompProfile?.localhostProfile == "profiles/audit.json" }),
        // Kubernetes does not validate the image reference at admission: an unparseable one is
        // accepted (imagePullPolicy defaults to IfNotPresent) and fails at run time with
        // InvalidImageName (pod-semantics §7 and checklist item 15: `Bad/Name` -> InvalidImageName).
        .init(name: "an invalid image reference is accepted (InvalidImageName comes at run time)", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: Bad/Name
            """, check: { $0.spec.containers[0].image == "Bad/Name" && $0.spec.containers[0].imagePullPolicy == .ifNotPresent }),
        // RelaxedEnvironmentVariableValidation (beta and on by default in 1.32, GA and locked on in
        // 1.34): any printable ASCII but '=' is a valid env var name, so a leading digit is fine.
        .init(name: "an env name starting with a digit (relaxed env var names)", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                env:
                - name: 1ST_VALUE
                  value: x
            """, check: { $0.spec.containers[0].env.first?.name == "1ST_VALUE" }),
        // validateEnvVarValueFrom only objects when `value` is not empty.
        .init(name: "an empty value next to valueFrom", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
                env:
                - name: POD
                  value: ""
                  valueFrom: {fieldRef: {fieldPath: metadata.name}}
            """, check: { $0.spec.containers[0].env.first?.fieldRef == "metadata.name" }),
        // Since Kubernetes 1.27 (kubernetes#115606) the API server turns a negative pod
        // terminationGracePeriodSeconds into 1 instead of refusing the pod.
        .init(name: "a negative terminationGracePeriodSeconds becomes 1", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              terminationGracePeriodSeconds: -5
              containers:
              - name: app
                image: busybox
            """, check: { $0.spec.terminationGracePeriodSeconds == 1 }),
        // Only a negative sizeLimit is forbidden (validateVolumeSource).
        .init(name: "emptyDir sizeLimit 0", yaml: """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              volumes:
              - name: scratch
                emptyDir: {sizeLimit: "0"}
              containers:
              - name: app
                image: busybox
            """, check: { $0.spec.volumes.first?.source == .emptyDir(medium: "", sizeLimit: 0) }),
    ]
}

@Suite("Pod manifest: validation")
struct ValidationTests {
    @Test("an invalid manifest is refused for exactly its one problem, at its path and line",
          arguments: InvalidManifests.cases)
    func refused(_ c: InvalidCase) {
        guard let found = problems(c.yaml) else {
            Issue.record("accepted; expected a problem at \(Spot(c.path, c.line))\n\(numbered(c.yaml))")
            return
        }
        #expect(found.map(Spot.init) == [Spot(c.path, c.line)],
                "problems: \(found.map(\.description))\n\(numbered(c.yaml))")
        for p in found {
            #expect(!p.message.isEmpty)
            if let word = c.mentions {
                #expect(p.message.lowercased().contains(word), "message \"\(p.message)\" should mention \(word)")
            }
        }
    }

    @Test("a manifest Kubernetes accepts is accepted", arguments: KubernetesAccepts.cases)
    func accepted(_ c: ValidCase) {
        switch outcome(c.yaml) {
        case .accepted(let pod, _):
            #expect(c.check(pod), "accepted, but the pod is not as expected:\n\(numbered(c.yaml))")
        case .refused(let list):
            Issue.record("refused: \(list.map(\.description))\n\(numbered(c.yaml))")
        case .failed(let e):
            Issue.record("unexpected error \(e)")
        }
    }

    @Test("the invalid cases are distinct manifests")
    func casesAreDistinct() {
        let texts = InvalidManifests.cases.map(\.yaml)
        #expect(Set(texts).count == texts.count)
        #expect(Set(InvalidManifests.cases.map(\.name)).count == texts.count)
        #expect(texts.count >= 20)
    }

    @Test("a YAML syntax error after the first document is still an error with a line")
    func syntaxErrorInSecondDocument() {
        let text = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
            ---
            a: [b, c
            """
        let found = problems(text)
        #expect(found?.count == 1, "\(String(describing: found?.map(\.description)))")
        #expect(found?.first?.path == "")
        #expect(found?.first?.line != nil)
    }

    @Test("more than one YAML document is refused")
    func multipleDocuments() {
        let pod = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web
            spec:
              containers:
              - name: app
                image: busybox
            """
        let second = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: web2
            spec:
              containers:
              - name: app
                image: busybox
            """
        let found = problems(pod + "\n---\n" + second)
        #expect(found?.count == 1, "\(String(describing: found?.map(\.description)))")
        #expect(found?.first?.path == "")
        #expect(found?.first?.message.contains("2") == true, "\(String(describing: found?.first?.message))")
        // One document with a leading '---' is fine.
        #expect(problems("---\n" + pod) == nil)
    }

    @Test("every validation problem of a manifest is reported, not only the first")
    func severalProblems() {
        let text = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: Web
            spec:
              shareProcessNamespace: true
              hostPID: true
              initContainers:
              - name: setup
                image: busybox
                livenessProbe: {exec: {command: ["true"]}}
              containers:
              - name: app
              - name: app
                image: busybox
                volumeMounts:
                - {name: missing, mountPath: /data}
            """
        guard let found = problems(text) else {
            Issue.record("accepted")
            return
        }
        let expected: [Spot] = [
            Spot("metadata.name", 4),
            Spot("spec.shareProcessNamespace", 6),
            Spot("spec.initContainers[0].livenessProbe", 11),
            Spot("spec.containers[0].image", 13),
            Spot("spec.containers[1].name", 14),
            Spot("spec.containers[1].volumeMounts[0].name", 17),
        ]
        #expect(found.map(Spot.init).sorted() == expected.sorted(), "\(found.map(\.description))\n\(numbered(text))")
    }

    // In Kubernetes an unsupported enum value (restartPolicy, dnsPolicy, imagePullPolicy) is a
    // validation error like any other, reported together with the rest.
    @Test("unsupported enum values are reported together with the other problems")
    func severalProblemsWithEnums() {
        let text = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: Web
            spec:
              restartPolicy: Sometimes
              dnsPolicy: Google
              containers:
              - name: app
                image: busybox
                imagePullPolicy: Sometimes
              - name: Helper
                image: busybox
            """
        guard let found = problems(text) else {
            Issue.record("accepted")
            return
        }
        let expected: [Spot] = [
            Spot("metadata.name", 4),
            Spot("spec.restartPolicy", 6),
            Spot("spec.dnsPolicy", 7),
            Spot("spec.containers[0].imagePullPolicy", 11),
            Spot("spec.containers[1].name", 12),
        ]
        #expect(found.map(Spot.init).sorted() == expected.sorted(), "\(found.map(\.description))\n\(numbered(text))")
    }

    @Test("problems in a JSON manifest carry JSON line numbers")
    func jsonLines() {
        let text = """
            {
              "apiVersion": "v1",
              "kind": "Pod",
              "metadata": {"name": "web"},
              "spec": {
                "containers": [
                  {"name": "app", "image": "busybox"},
                  {"name": "app", "image": "busybox"}
                ]
              }
            }
            """
        let found = problems(text)
        #expect(found?.map(Spot.init) == [Spot("spec.containers[1].name", 8)], "\(String(describing: found?.map(\.description)))")
    }

    static let dnsNameCases: [(String, Bool, Bool)] = [
        ("web", true, true), ("a", true, true), ("web-1", true, true), ("1web", true, true),
        ("web.app", false, true), ("-web", false, false), ("web-", false, false), ("Web", false, false),
        ("web_app", false, false), ("", false, false), ("web..app", false, false), (".web", false, false),
        (String(repeating: "a", count: 63), true, true), (String(repeating: "a", count: 64), false, false),
    ]

    @Test("DNS-1123 label and subdomain checks", arguments: dnsNameCases)
    func dnsNames(_ name: String, _ label: Bool, _ subdomain: Bool) {
        #expect(PodValidation.isDNSLabel(name) == label, "label \"\(name)\"")
        #expect(PodValidation.isDNSSubdomain(name) == subdomain, "subdomain \"\(name)\"")
    }
}
