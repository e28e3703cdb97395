import ArgumentParser
import HuskImage
import HuskOptions
import HuskPod
import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// The executable of this process.
func selfExecutable() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
}

/// How a pod's supervisor is started: `husk supervise STATE_DIR`.
func supervisorCommand() -> [String] {
    [selfExecutable(), "supervise"]
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a pod from a Kubernetes Pod manifest (YAML or JSON).",
        discussion: """
            In the foreground the containers' output is streamed and SIGINT/SIGTERM stop the pod \
            gracefully; the exit status is 0 when the pod Succeeded and 1 when it Failed. With -d \
            the pod's UID is printed and husk returns once every container has started (0), the \
            pod failed (1), or a container is stuck waiting on an error (2, the reason on stderr). \
            The pod's supervisor keeps running it either way.
            """)

    @OptionGroup var globals: GlobalOptions
    @Flag(name: .shortAndLong, help: "Detach: print the pod's UID and return once every container has started.")
    var detach = false
    @Argument(help: "The Pod manifest.")
    var manifest: String

    func run() throws {
        try runReporting {
            let (pod, warnings) = try PodManifest.load(manifest)
            for w in warnings { Out.err("Warning: \(w)\n") }
            let settings = try globals.settings()
            // Everything that can be checked is checked before anything is created.
            for s in settings.imageSources { _ = try LayoutSource.parse(s) }
            for w in try CgroupResources.check(pod, settings: settings) { Out.err("Warning: \(w)\n") }
            // Signals are read from a signalfd from before the supervisor exists.
            let sfd = detach ? nil : (try? SignalFD([SIGINT, SIGTERM]))
            let (view, supervisor) = try PodDirectory.launch(pod, settings: settings, supervisor: supervisorCommand())
            if detach {
                throw ExitCode(detached(view))
            } else {
                throw ExitCode(foreground(view, supervisor, sfd))
            }
        }
    }

    func detached(_ view: PodView) -> Int32 {
        Out.out(view.uid + "\n")
        switch PodDirectory.wait(view, until: \.isSettled).startOutcome {
        case .started:
            return 0
        case .failed(let why):
            Out.err("husk: \(why)\n")
            return 1
        case .waiting(let why):
            Out.err("husk: \(why)\n")
            return 2
        }
    }

    func foreground(_ view: PodView, _ supervisor: SpawnedProcess, _ sfd: SignalFD?) -> Int32 {
        let tail = LogFollower(prefix: view.pod.spec.initContainers.count + view.pod.spec.containers.count > 1)
        let v = PodDirectory.follow(view, supervisor: supervisor, signals: sfd) { tail.poll($0) }
        tail.poll(v)
        if !v.state.finished {
            Out.err("husk: the supervisor of pod \(v.qualifiedName) exited before the pod finished; see \(v.paths.supervisorLog)\n")
            return 1
        }
        return v.state.phase == .succeeded ? 0 : 1
    }
}

/// Follows the log files of a pod's container instances and copies new complete records to
/// stdout/stderr.
final class LogFollower {
    let prefix: Bool
    var offsets: [String: Int] = [:]

    init(prefix: Bool) { self.prefix = prefix }

    func poll(_ v: PodView) {
        for c in v.state.containers {
            for inst in c.instances {
                follow(inst.logPath, container: c.name)
            }
        }
    }

    func follow(_ path: String, container: String) {
        let offset = offsets[path] ?? 0
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        var at = off_t(offset)
        while true {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, at) }
            if n <= 0 { break }
            bytes += buf[0..<n]
            at += off_t(n)
        }
        guard !bytes.isEmpty else { return }
        let (lines, consumed) = CRILogReader.parse(bytes)
        offsets[path] = offset + consumed
        for l in lines {
            let text = (prefix ? Array("[\(container)] ".utf8) : []) + l.content
            let fd: Int32 = l.stream == "stderr" ? 2 : 1
            var done = 0
            while done < text.count {
                let n = text.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
                if n <= 0 { break }
                done += n
            }
        }
    }
}
