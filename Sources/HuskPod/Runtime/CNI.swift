import HuskJSON
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// Container networking through the standard CNI plugins (containernetworking-plugins:
/// bridge, host-local, loopback, portmap), as containerd does: the first network config of
/// `cniConfDir` (sorted by name) is run with ADD when the sandbox starts and DEL when it goes
/// (DESIGN §6). Husk does not reimplement the plugins.
public struct CNI: Sendable {
    public let config: JSONValue
    public let file: String
    public let binDirs: [String]

    /// The network to use, or nil when `confDir` has no network config.
    public static func load(settings: HuskSettings) throws(HuskError) -> CNI? {
        guard let names = Files.list(settings.cniConfDir) else { return nil }
        for name in names.sorted() where name.hasSuffix(".conflist") || name.hasSuffix(".conf") || name.hasSuffix(".json") {
            let path = settings.cniConfDir + "/" + name
            guard let bytes = try? Files.read(path) else { continue }
            let v: JSONValue
            do {
                v = try JSONParser.parse(bytes)
            } catch {
                throw HuskError(.invalidArgument, "CNI config \(path): \(error)")
            }
            // A single plugin config (.conf) becomes a list of one.
            let list: JSONValue
            if v["plugins"] != nil {
                list = v
            } else {
                var single = v
                if case .object(var o) = single {
                    o["cniVersion"] = nil
                    single = .object(o)
                }
                list = .object(["cniVersion": v["cniVersion"] ?? .string("0.4.0"), "name": v["name"] ?? .string("cni"), "plugins": .array([single])])
            }
            return CNI(config: list, file: path, binDirs: settings.cniBinDirs)
        }
        return nil
    }

    public var networkName: String { config["name"]?.stringValue ?? "cni" }

    /// ADD: returns the pod's IPv4 address (without the prefix length), if the result has one.
    public func add(containerID: String, netns: String, sandbox: PodSandboxConfig) throws(HuskError) -> String? {
        var prev: JSONValue? = nil
        for plugin in plugins {
            prev = try invoke(plugin, command: "ADD", containerID: containerID, netns: netns, sandbox: sandbox, prevResult: prev)
        }
        guard case .array(let ips)? = prev?["ips"] else { return nil }
        for ip in ips {
            guard let addr = ip["address"]?.stringValue else { continue }
            let bare = String(addr.split(separator: "/")[0])
            if bare.contains(".") { return bare }
        }
        return ips.first?["address"]?.stringValue.map { String($0.split(separator: "/")[0]) }
    }

    /// DEL, in reverse order; `netns` may be gone already (plugins must cope).
    public func del(containerID: String, netns: String, sandbox: PodSandboxConfig) throws(HuskError) {
        var firstError: HuskError? = nil
        for plugin in plugins.reversed() {
            do {
                _ = try invoke(plugin, command: "DEL", containerID: containerID, netns: netns, sandbox: sandbox, prevResult: nil)
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
    }

    var plugins: [JSONValue] {
        if case .array(let a)? = config["plugins"] { return a }
        return []
    }

    func invoke(
        _ plugin: JSONValue, command: String, containerID: String, netns: String, sandbox: PodSandboxConfig, prevResult: JSONValue?
    ) throws(HuskError) -> JSONValue? {
        guard let type = plugin["type"]?.stringValue, !type.contains("/") else {
            throw HuskError(.invalidArgument, "CNI config \(file): a plugin without a valid type")
        }
        guard let binary = binDirs.map({ $0 + "/" + type }).first(where: { Files.exists($0) }) else {
            throw HuskError(.notFound, "CNI plugin \(type) not found in \(binDirs.joined(separator: ":")) (Debian: containernetworking-plugins)")
        }
        guard case .object(var conf) = plugin else { return nil }
        conf["cniVersion"] = config["cniVersion"] ?? .string("0.4.0")
        conf["name"] = config["name"] ?? .string("cni")
        if let prevResult { conf["prevResult"] = prevResult }
        // Capabilities the plugin declares get their runtime config (containerd's
        // WithCapabilityPortMap: only mappings with a host port, the protocol lower-case).
        let mappings = sandbox.portMappings.filter { $0.hostPort > 0 }
        if plugin["capabilities"]?["portMappings"] == .bool(true), !mappings.isEmpty {
            var rc: [String: JSONValue] = [:]
            if case .object(let o)? = conf["runtimeConfig"] { rc = o }
            rc["portMappings"] = .array(mappings.map {
                .object(["hostPort": .number(Double($0.hostPort)), "containerPort": .number(Double($0.containerPort)),
                         "protocol": .string($0.proto.lowercased()), "hostIP": .string($0.hostIP)])
            })
            conf["runtimeConfig"] = .object(rc)
        }
        let m = sandbox.metadata
        let env = [
            "CNI_COMMAND=\(command)", "CNI_CONTAINERID=\(containerID)", "CNI_NETNS=\(netns)", "CNI_IFNAME=eth0",
            "CNI_PATH=\(binDirs.joined(separator: ":"))",
            "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=\(m.namespace);K8S_POD_NAME=\(m.name);K8S_POD_INFRA_CONTAINER_ID=\(containerID);K8S_POD_UID=\(m.uid)",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        ]
        let r = HostCommand.run([binary], env: env, stdin: Array(JSONValue.object(conf).text.utf8))
        if r.status != 0 {
            let msg = (try? JSONParser.parse(r.stdout))?["msg"]?.stringValue ?? String(decoding: r.stdout + r.stderr, as: UTF8.self)
            throw HuskError(.system, "CNI \(type) \(command) for pod \(m.namespace)/\(m.name): \(msg.trimmed())")
        }
        if command == "DEL" || r.stdout.isEmpty { return nil }
        do {
            return try JSONParser.parse(r.stdout)
        } catch {
            throw HuskError(.system, "CNI \(type) \(command): its result is not JSON: \(error)")
        }
    }
}

/// Runs a host program (CNI plugins) with a clean environment and captures its output. Uses
/// the spawn executor with nothing to set up: a plain fork/exec without Swift in the child.
public enum HostCommand {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: [UInt8]
        public var stderr: [UInt8]
    }

    public static func run(_ argv: [String], env: [String], stdin: [UInt8] = [], timeout: Double = 120) -> Result {
        do {
            let p: SpawnedProcess
            let outR, errR: FD
            do {
                // The child's ends live only in this scope: once it spawned they close here, so
                // the readers see EOF when the child is done. The write end of stdin belongs to
                // its feeding thread alone, which closes it when done: the child (a CNI plugin
                // reads its whole stdin first) sees EOF then, not when `run` returns.
                let (ir, iw) = try makePipe()
                let (or, ow) = try makePipe()
                let (er, ew) = try makePipe()
                var plan = SpawnPlan.host(argv: argv, env: env)
                plan.stdio = [ir, ow, ew]
                p = try Spawner.spawn(plan)
                (outR, errR) = (or, er)
                Threads.spawn("cmd-stdin") { try? iw.writeAll(stdin) }
            }
            // Read both outputs on two threads, then reap.
            let out = Captured()
            let err = Captured()
            let done = Monitor()
            for (fd, box) in [(outR, out), (errR, err)] {
                Threads.spawn("cmd-out") {
                    let bytes = (try? fd.readAll()) ?? []
                    done.locked {
                        box.bytes = bytes
                        box.done = true
                        done.broadcast()
                    }
                }
            }
            if !done.wait(for: { out.done && err.done }, until: Clock.monotonicSeconds() + timeout) {
                // A plugin that hangs (libcni has no limit either, but kubelet's context does):
                // kill it, so the sandbox attempt fails with a reason instead of hanging.
                try? p.pidfd.signal(SIGKILL)
                let status = (try? p.pidfd.wait()) ?? .exited(255)
                return Result(status: status.code, stdout: out.bytes,
                              stderr: Array("\(argv[0]) did not finish within \(Int(timeout)) s and was killed".utf8))
            }
            let status = (try? p.pidfd.wait()) ?? .exited(255)
            return Result(status: status.code, stdout: out.bytes, stderr: err.bytes)
        } catch {
            return Result(status: 255, stdout: [], stderr: Array("\(error)".utf8))
        }
    }

    final class Captured: @unchecked Sendable {  // guarded by the monitor of `run`
        var bytes: [UInt8] = []
        var done = false
    }
}
