import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// grpc probes (pod-semantics §9, kubelet's pkg/probe/grpc) against a real gRPC health server:
/// containerd's own `grpc.health.v1.Health` (Debian's containerd, started here on a socket of
/// our own), reached over TCP through a small relay in this test (containerd serves health
/// on its unix socket only).
extension Host {
    static let containerd: String? = ["/usr/bin/containerd", "/usr/local/bin/containerd"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var canRunGRPCProbes: Bool { canRunPods && containerd != nil }
}

@Suite("Pods: grpc probes", .enabled(if: Host.canRunGRPCProbes, "needs umoci and containerd (Scripts/install-deps.sh installs them)"))
struct PodGRPCProbeTests {
    /// Accepts TCP connections on `port` (all addresses) and relays each to the unix socket.
    final class Relay: @unchecked Sendable {
        let listener: Int32
        let port: Int
        init(to socketPath: String) throws {
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.listener = listener
            var one: Int32 = 1
            setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = 0
            addr.sin_addr.s_addr = 0
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            listen(listener, 16)
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
            port = Int(UInt16(bigEndian: addr.sin_port))
            Thread.detachNewThread {
                while true {
                    let c = accept(listener, nil, nil)
                    if c < 0 { return }
                    let u = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                    var ua = sockaddr_un()
                    ua.sun_family = sa_family_t(AF_UNIX)
                    withUnsafeMutableBytes(of: &ua.sun_path) { raw in
                        for (i, b) in socketPath.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
                    }
                    let ok = withUnsafePointer(to: &ua) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(u, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
                    if ok != 0 {
                        close(c)
                        close(u)
                        continue
                    }
                    for (from, to) in [(c, u), (u, c)] {
                        Thread.detachNewThread {
                            var buf = [UInt8](repeating: 0, count: 16384)
                            while true {
                                let n = buf.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                                if n <= 0 { break }
                                if buf.withUnsafeBytes({ write(to, $0.baseAddress, n) }) != n { break }
                            }
                            shutdown(to, Int32(SHUT_WR))
                        }
                    }
                }
            }
        }
        func stop() { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }
    }

    @Test("§9 grpc readiness: SERVING makes the container ready; an unknown service and a closed port fail with kubelet's texts")
    func grpcReadiness() throws {
        let scratch = Scratch("grpcProbe")
        let husk = PodHusk(scratch)
        defer { husk.cleanup() }
        // containerd with a root, state and socket of its own; no CRI.
        let dir = scratch.path + "/ctd"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try """
            version = 2
            root = "\(dir)/root"
            state = "\(dir)/state"
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            [grpc]
              address = "\(dir)/c.sock"
            """.write(toFile: dir + "/config.toml", atomically: true, encoding: .utf8)
        let ctd = Process()
        ctd.executableURL = URL(fileURLWithPath: Host.containerd!)
        ctd.arguments = ["--config", dir + "/config.toml"]
        ctd.standardOutput = FileHandle.nullDevice
        ctd.standardError = FileHandle.nullDevice
        try ctd.run()
        defer {
            ctd.terminate()
            ctd.waitUntilExit()
            _ = run(["/bin/sh", "-c", "umount -R \(dir)/state 2>/dev/null; umount -R \(dir)/root 2>/dev/null; true"])
        }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: dir + "/c.sock") { usleep(50_000) }
        let relay = try Relay(to: dir + "/c.sock")
        defer { relay.stop() }
        let closed = relay.port == 65535 ? 65534 : relay.port + 1
        #expect(husk.start("""
            apiVersion: v1
            kind: Pod
            metadata: {name: grpc}
            spec:
              hostNetwork: true
              containers:
              - name: serving
                image: "busybox:1.36"
                command: [sleep, "1000"]
                readinessProbe:
                  grpc: {port: \(relay.port)}
                  periodSeconds: 1
              - name: unknown
                image: "busybox:1.36"
                command: [sleep, "1000"]
                readinessProbe:
                  grpc: {port: \(relay.port), service: nope}
                  periodSeconds: 1
              - name: closed
                image: "busybox:1.36"
                command: [sleep, "1000"]
                readinessProbe:
                  grpc: {port: \(closed)}
                  periodSeconds: 1
            """).status == 0)
        let pod = husk.wait("grpc", timeout: 20) {
            ($0.container("serving")?["ready"] as? Bool ?? false)
                && events(husk.events("grpc"), "Unhealthy", "unknown").count >= 1 && events(husk.events("grpc"), "Unhealthy", "closed").count >= 1
        }
        #expect(pod?.container("serving")?["ready"] as? Bool == true, "SERVING: ready")
        #expect(pod?.container("unknown")?["ready"] as? Bool == false)
        #expect(pod?.container("closed")?["ready"] as? Bool == false)
        let all = husk.events("grpc")
        #expect(events(all, "Unhealthy", "serving").isEmpty)
        let unknown = events(all, "Unhealthy", "unknown").first?["message"] as? String ?? ""
        #expect(unknown == "Readiness probe failed: error: health rpc probe failed: rpc error: code = NotFound desc = unknown service", "\(unknown)")
        let refused = events(all, "Unhealthy", "closed").first?["message"] as? String ?? ""
        #expect(refused.hasPrefix("Readiness probe failed: timeout: failed to connect service \""), "\(refused)")
        #expect(refused.hasSuffix(":\(closed)\" within 1s: context deadline exceeded"), "\(refused)")
        #expect(pod?.container("unknown")?["restartCount"] as? Int == 0, "readiness never restarts")
    }
}
