import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// Lifecycle hook actions (pod-semantics §5; kubelet's lifecycle/handlers.go).
enum Hooks {
    /// Runs a hook; returns nil on success, or what went wrong. `deadline` (monotonic) bounds a
    /// preStop; postStart has none.
    static func run(
        _ handler: Handler, in h: ContainerHandle, runtime: PodRuntimeService, container: ContainerSpec,
        deadline: Double?, cancelled: @escaping () -> Bool
    ) -> String? {
        switch handler {
        case .exec(let command):
            // CRI ExecSync inside the container; success iff exit 0. A hook past the grace
            // period is abandoned (it dies with the container).
            let r: ExecSyncResult
            do {
                r = try runtime.execSync(h, argv: command, timeout: deadline.map { max(0, $0 - Clock.monotonicSeconds()) })
            } catch {
                return error.message
            }
            guard let code = r.exitCode else { return "command \(command) did not finish within the grace period" }
            return code == 0 ? nil : "command '\(command.joined(separator: " "))' exited with \(code)"
        case .httpGet(let g):
            let port: Int
            switch g.port {
            case .number(let n): port = Int(n)
            case .name(let name):
                guard let p = container.ports.first(where: { $0.name == name }) else { return "no container port named \(name)" }
                port = Int(p.containerPort)
            }
            // From the node to the pod's address; a pod without one (no CNI) is reached from
            // inside its network namespace, on 127.0.0.1.
            let host = g.host ?? runtime.sandbox.podIP
            let netns = host == nil ? runtime.sandbox.pause?.fd : nil
            let r = HTTPClient.get(
                host: host ?? "127.0.0.1", port: port, path: g.path, scheme: g.scheme.lowercased(), headers: g.headers,
                userAgent: "kube-lifecycle/1.34", deadline: deadline, netns: netns)
            switch r {
            case .success: return nil  // any HTTP response is a success (kubernetes#56963)
            case .failure(let e): return e.message
            }
        case .sleep(let seconds):
            let end = Clock.monotonicSeconds() + Double(seconds)
            while Clock.monotonicSeconds() < end {
                if cancelled() { return "sleep was interrupted" }
                if let d = deadline, Clock.monotonicSeconds() >= d { return nil }
                usleep(20_000)
            }
            return nil
        case .tcpSocket:
            // Deprecated and never implemented for hooks: kubelet fails it at run time.
            return "tcpSocket is not a valid lifecycle handler"
        case .grpc:
            return "grpc is not a valid lifecycle handler"
        }
    }
}

/// A minimal HTTP/1.1 GET over TCP (IPv4), for httpGet hooks and probes.
public enum HTTPClient {
    public struct Failure: Error, Sendable {
        public var message: String
    }

    /// GETs `path`; returns the status code. With `netns`, the connection is made from inside
    /// that network namespace.
    public static func get(
        host: String, port: Int, path: String, scheme: String = "http", headers: [(name: String, value: String)] = [],
        userAgent: String, deadline: Double?, netns: FD?
    ) -> Result<Int, Failure> {
        let r = PodNetwork.run(in: netns, deadline: deadline) {
            request(host: host, port: port, path: path, scheme: scheme, headers: headers, userAgent: userAgent, deadline: deadline)
        }
        switch r {
        case .success(let result): return result
        case .failure(let e): return .failure(Failure(message: e.message))
        }
    }

    static func request(
        host: String, port: Int, path: String, scheme: String, headers: [(name: String, value: String)], userAgent: String,
        deadline: Double?
    ) -> Result<Int, Failure> {
        let fd: CInt
        switch PodNetwork.dial(host: host, port: port, deadline: deadline) {
        case .success(let f): fd = f
        case .failure(let e): return .failure(Failure(message: "Get \"\(scheme)://\(host):\(port)\(path)\": \(e)"))
        }
        defer { close(fd) }
        var req = "GET \(path.isEmpty ? "/" : path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: \(userAgent)\r\nAccept: */*\r\nConnection: close\r\n"
        for h in headers { req += "\(h.name): \(h.value)\r\n" }
        req += "\r\n"
        let bytes = Array(req.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return .failure(Failure(message: "send: \(currentErrno.text)")) }
            sent += n
        }
        var resp: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while !resp.contains(10) && resp.count < 8192 {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            resp += buf[0..<n]
        }
        let line = String(decoding: resp.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else {
            return .failure(Failure(message: "no HTTP response from \(host):\(port)"))
        }
        return .success(code)
    }
}

/// Reaching a pod from the node: a thread that enters the pod's network namespace, and TCP
/// connections with a deadline (httpGet hooks and probes, tcpSocket probes).
enum PodNetwork {
    /// Runs `body` on a new thread, inside `netns` when given (the thread enters it and exits
    /// with it). Fails with a message when the namespace cannot be entered or `deadline`
    /// (monotonic) passes first.
    static func run<T: Sendable>(in netns: FD?, deadline: Double?, _ body: @escaping @Sendable () -> T) -> Result<T, PodNetworkError> {
        let box = ResultBox<T>()
        let m = Monitor()
        Threads.spawn("pod-net") {
            let r: Result<T, PodNetworkError>
            do throws(SystemCallError) {
                if let netns { try Namespaces.join(.network, via: netns) }
                r = .success(body())
            } catch {
                r = .failure(PodNetworkError("cannot enter the pod's network namespace: \(error.errno.text)"))
            }
            m.locked {
                box.result = r
                m.broadcast()
            }
        }
        guard m.wait(for: { box.result != nil }, until: deadline) else { return .failure(PodNetworkError("timed out")) }
        return m.locked { box.result! }
    }

    /// A connected TCP socket to host:port (IPv4), with the time left before `deadline` as its
    /// send and receive timeouts; or Go's dial error text ("dial tcp 127.0.0.1:80: connect:
    /// connection refused"), as kubelet reports it.
    static func dial(host: String, port: Int, deadline: Double?) -> Result<CInt, PodNetworkError> {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { return .failure(PodNetworkError("\(host) is not an IPv4 address")) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(PodNetworkError("socket: \(currentErrno.text)")) }
        let ms: Int32 = deadline.map { Int32(max(1, min(60_000, ($0 - Clock.monotonicSeconds()) * 1000))) } ?? 30_000
        var tv = timeval(tv_sec: Int(ms / 1000), tv_usec: Int((ms % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let e = currentErrno
            close(fd)
            return .failure(PodNetworkError("dial tcp \(host):\(port): connect: \(e.text.lowercased())"))
        }
        return .success(fd)
    }
}

private final class ResultBox<T: Sendable>: @unchecked Sendable {  // guarded by the caller's monitor
    var result: Result<T, PodNetworkError>? = nil
}

struct PodNetworkError: Error, Sendable, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
