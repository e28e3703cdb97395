/// A pod that uses everything the manifest tests care about: init containers (one regular, one
/// sidecar), two app containers, emptyDir and hostPath volumes, env by value and by fieldRef,
/// lifecycle hooks (exec, httpGet, sleep), a probe, container and pod securityContext, dnsConfig and
/// hostAliases. It omits namespace, restartPolicy, terminationGracePeriodSeconds, dnsPolicy,
/// imagePullPolicy and the termination message fields, so that their defaults show.
enum FullPod {
    /// The full pod uses nothing Husk leaves out: no warning.
    static let warnings: [String] = []

    static let yaml = """
    apiVersion: v1
    kind: Pod
    metadata:
      name: web
      labels:
        app: web
        tier: frontend
      annotations:
        example.com/note: full example
    spec:
      initContainers:
      - name: setup
        image: busybox:1.36
        command: ["sh", "-c", "echo ready > /work/ready"]
        volumeMounts:
        - name: work
          mountPath: /work
      - name: proxy
        image: busybox
        restartPolicy: Always
        command: ["sh", "-c", "sleep 3600"]
        lifecycle:
          preStop:
            sleep:
              seconds: 2
      containers:
      - name: app
        image: busybox
        command: ["sh", "-c", "sleep 3600"]
        env:
        - name: GREETING
          value: hello
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        ports:
        - name: http
          containerPort: 8080
        volumeMounts:
        - name: work
          mountPath: /work
        - name: logs
          mountPath: /var/log/host
          readOnly: true
        lifecycle:
          postStart:
            exec:
              command: ["sh", "-c", "echo started"]
          preStop:
            httpGet:
              path: /shutdown
              port: http
        livenessProbe:
          httpGet:
            path: /healthz
            port: 8080
          periodSeconds: 5
        securityContext:
          runAsUser: 1000
          runAsGroup: 1000
          runAsNonRoot: true
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop: ["ALL"]
            add: ["NET_BIND_SERVICE"]
          seccompProfile:
            type: RuntimeDefault
      - name: helper
        image: registry.example.com/tools/helper:2.0
        args: ["--verbose"]
        workingDir: /tmp
        lifecycle:
          preStop:
            sleep:
              seconds: 5
      volumes:
      - name: work
        emptyDir:
          medium: Memory
          sizeLimit: 64Mi
      - name: logs
        hostPath:
          path: /var/log
          type: Directory
      securityContext:
        runAsUser: 1000
        runAsGroup: 3000
        supplementalGroups: [2000, 3000]
        sysctls:
        - name: net.ipv4.ip_unprivileged_port_start
          value: "0"
        seccompProfile:
          type: RuntimeDefault
      dnsConfig:
        nameservers: ["10.0.0.10"]
        searches: ["example.com"]
        options:
        - name: ndots
          value: "2"
        - name: edns0
      hostAliases:
      - ip: 10.1.2.3
        hostnames: ["foo.local", "bar.local"]
    """

    /// The same pod written as JSON (same content, different syntax).
    static let json = """
    {
      "apiVersion": "v1",
      "kind": "Pod",
      "metadata": {
        "name": "web",
        "labels": {
          "app": "web",
          "tier": "frontend"
        },
        "annotations": {
          "example.com/note": "full example"
        }
      },
      "spec": {
        "initContainers": [
          {
            "name": "setup",
            "image": "busybox:1.36",
            "command": [
              "sh",
              "-c",
              "echo ready > /work/ready"
            ],
            "volumeMounts": [
              {
                "name": "work",
                "mountPath": "/work"
              }
            ]
          },
          {
            "name": "proxy",
            "image": "busybox",
            "restartPolicy": "Always",
            "command": [
              "sh",
              "-c",
              "sleep 3600"
            ],
            "lifecycle": {
              "preStop": {
                "sleep": {
                  "seconds": 2
                }
              }
            }
          }
        ],
        "containers": [
          {
            "name": "app",
            "image": "busybox",
            "command": [
              "sh",
              "-c",
              "sleep 3600"
            ],
            "env": [
              {
                "name": "GREETING",
                "value": "hello"
              },
              {
                "name": "POD_NAME",
                "valueFrom": {
                  "fieldRef": {
                    "fieldPath": "metadata.name"
                  }
                }
              }
            ],
            "ports": [
              {
                "name": "http",
                "containerPort": 8080
              }
            ],
            "volumeMounts": [
              {
                "name": "work",
                "mountPath": "/work"
              },
              {
                "name": "logs",
                "mountPath": "/var/log/host",
                "readOnly": true
              }
            ],
            "lifecycle": {
              "postStart": {
                "exec": {
                  "command": [
                    "sh",
                    "-c",
                    "echo started"
                  ]
                }
              },
              "preStop": {
                "httpGet": {
                  "path": "/shutdown",
                  "port": "http"
                }
              }
            },
            "livenessProbe": {
              "httpGet": {
                "path": "/healthz",
                "port": 8080
              },
              "periodSeconds": 5
            },
            "securityContext": {
              "runAsUser": 1000,
              "runAsGroup": 1000,
              "runAsNonRoot": true,
              "allowPrivilegeEscalation": false,
              "readOnlyRootFilesystem": true,
              "capabilities": {
                "drop": [
                  "ALL"
                ],
                "add": [
                  "NET_BIND_SERVICE"
                ]
              },
              "seccompProfile": {
                "type": "RuntimeDefault"
              }
            }
          },
          {
            "name": "helper",
            "image": "registry.example.com/tools/helper:2.0",
            "args": [
              "--verbose"
            ],
            "workingDir": "/tmp",
            "lifecycle": {
              "preStop": {
                "sleep": {
                  "seconds": 5
                }
              }
            }
          }
        ],
        "volumes": [
          {
            "name": "work",
            "emptyDir": {
              "medium": "Memory",
              "sizeLimit": "64Mi"
            }
          },
          {
            "name": "logs",
            "hostPath": {
              "path": "/var/log",
              "type": "Directory"
            }
          }
        ],
        "securityContext": {
          "runAsUser": 1000,
          "runAsGroup": 3000,
          "supplementalGroups": [
            2000,
            3000
          ],
          "sysctls": [
            {
              "name": "net.ipv4.ip_unprivileged_port_start",
              "value": "0"
            }
          ],
          "seccompProfile": {
            "type": "RuntimeDefault"
          }
        },
        "dnsConfig": {
          "nameservers": [
            "10.0.0.10"
          ],
          "searches": [
            "example.com"
          ],
          "options": [
            {
              "name": "ndots",
              "value": "2"
            },
            {
              "name": "edns0"
            }
          ]
        },
        "hostAliases": [
          {
            "ip": "10.1.2.3",
            "hostnames": [
              "foo.local",
              "bar.local"
            ]
          }
        ]
      }
    }
    """
}
