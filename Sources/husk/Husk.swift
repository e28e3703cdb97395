import ArgumentParser
import FoundationEssentials
import HuskImage
import HuskJSON
import HuskPod
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// `husk`: run Kubernetes pods on this node; manage the images they use.
struct Husk: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "husk",
        abstract: "Run Kubernetes pods on this node the way kubelet + containerd + runc would.",
        version: "husk 0.1.0",
        subcommands: [
            Run.self, Pods.self, PS.self, Stats.self, Inspect.self, Events.self, Logs.self, Exec.self, Attach.self, Stop.self, Remove.self,
            Pull.self, Images.self, ImageCommand.self, Rmi.self, GC.self,
        ])

    // Also here so that global flags may come before the command (`husk --root R pull ...`).
    @OptionGroup var globals: GlobalOptions
}

/// Flags every command takes (DESIGN §4-§5).
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Husk's data directory (images, pods).")
    var root: String = "/var/lib/husk"

    @Option(name: .customLong("image-source"), help: "An OCI image layout (directory or .tar) to pull from, as [REPO=]PATH. Repeatable; searched in order, before the config file's.")
    var imageSources: [String] = []

    @Option(name: .long, help: "Runtime state: pod records, status, events, control sockets.")
    var state: String = "/run/husk"

    @Option(name: .customLong("log-dir"), help: "Container logs: <log-dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log.")
    var logDir: String = "/var/log/pods"

    @Option(name: .customLong("cni-conf-dir"), help: "CNI network configurations; none there: pods get loopback only.")
    var cniConfDir: String = "/etc/cni/net.d"

    @Option(name: .customLong("cni-bin-dir"), help: "Where CNI plugins are (repeatable).")
    var cniBinDirs: [String] = []

    @Option(name: .customLong("backoff-scale"), help: ArgumentHelp("Multiplies kubelet's back-off times (tests).", visibility: .hidden))
    var backoffScale: Double = 1

    @Option(name: .long, help: "Configuration file (JSON). Default: /etc/husk/config.json when it exists.")
    var config: String?

    @Option(name: .customLong("pod-pids-limit"), help: "pids.max of every pod's cgroup (kubelet's podPidsLimit); a pod's annotation husk.io/pod-pids-limit overrides it. Default: none.")
    var podPidsLimit: Int64?

    @Flag(name: .customLong("memory-qos"), help: "Set memory.high of containers with a memory limit above their request (kubelet's MemoryQoS: request + 0.9 × (limit - request)).")
    var memoryQoS = false

    @Flag(name: .customLong("ignore-missing-controllers"), help: "Run pods whose limits need a cgroup v2 controller this host lacks, with a warning per limit, instead of refusing them.")
    var ignoreMissingControllers = false

    @Option(name: .customLong("max-layer-size"), help: "Refuse a layer that unpacks to more bytes than this (decompression bombs). Default 64 GiB.")
    var maxLayerSize: UInt64?

    /// The config file: `imageSources` ([REPO=]PATH strings) and `maxLayerSize` (bytes).
    struct ConfigFile: Decodable {
        var imageSources: [String]?
        var maxLayerSize: UInt64?
    }

    func loadConfig() throws -> ConfigFile {
        let path = config ?? "/etc/husk/config.json"
        guard let bytes = try Files.read(path) else {
            if config != nil { throw HuskError(.notFound, "\(path): no such file") }
            return ConfigFile()
        }
        do {
            return try JSONDecoder().decode(ConfigFile.self, from: Data(bytes))
        } catch {
            throw HuskError(.invalidArgument, "\(path): \(JSONPath.describe(error))")
        }
    }

    func sources() throws -> [LayoutSource] {
        let specs = imageSources + (try loadConfig().imageSources ?? [])
        return try specs.map { try LayoutSource.parse($0) }
    }

    /// The settings a pod is run with (recorded with it).
    func settings() throws -> HuskSettings {
        var s = HuskSettings()
        s.root = Files.absolute(root)
        s.state = Files.absolute(state)
        s.logDir = Files.absolute(logDir)
        s.cniConfDir = Files.absolute(cniConfDir)
        if !cniBinDirs.isEmpty { s.cniBinDirs = cniBinDirs.map { Files.absolute($0) } }
        let config = try loadConfig()
        s.imageSources = (imageSources + (config.imageSources ?? [])).map { spec in
            // Sources as absolute paths: the supervisor runs from /.
            guard let eq = spec.firstIndex(of: "="), !spec.hasPrefix("/") || !spec[..<eq].contains("/") else { return Files.absolute(spec) }
            return String(spec[...eq]) + Files.absolute(String(spec[spec.index(after: eq)...]))
        }
        s.maxLayerSize = maxLayerSize ?? config.maxLayerSize
        guard backoffScale > 0, backoffScale <= 1 else {
            throw HuskError(.invalidArgument, "--backoff-scale must be greater than 0 and at most 1")
        }
        s.backoffScale = backoffScale
        if let p = podPidsLimit, p <= 0 { throw HuskError(.invalidArgument, "--pod-pids-limit must be a positive number") }
        s.podPidsLimit = podPidsLimit
        s.memoryQoS = memoryQoS
        s.ignoreMissingControllers = ignoreMissingControllers
        return s
    }

    func store() throws -> ImageStore {
        var options = ImageStoreOptions()
        if let cap = try maxLayerSize ?? loadConfig().maxLayerSize { options.maxLayerBytes = cap }
        return try ImageStore(root: root, options: options)
    }
}

/// Which pod a command is about: a name in a namespace, or a UID.
struct PodSelector: ParsableArguments {
    @Option(name: .shortAndLong, help: "The pod's namespace.")
    var namespace: String = "default"
}

extension GlobalOptions {
    func findPod(_ ref: String, _ selector: PodSelector) throws -> PodView {
        try PodDirectory.find(try settings(), ref, namespace: selector.namespace)
    }

    /// The pod `ref` names, or every pod.
    func pods(_ ref: String?, _ selector: PodSelector) throws -> [PodView] {
        let settings = try settings()
        return try ref.map { [try PodDirectory.find(settings, $0, namespace: selector.namespace)] } ?? PodDirectory.all(settings)
    }
}

/// The one pod a command is about. (Flat: an option group nested in another makes the
/// argument parser much slower to start, 10 ms and more a level.)
struct PodArgument: ParsableArguments {
    @Option(name: .shortAndLong, help: "The pod's namespace.")
    var namespace: String = "default"
    @Argument(help: "The pod (name or UID).")
    var pod: String

    func find(_ globals: GlobalOptions) throws -> PodView { try PodDirectory.find(try globals.settings(), pod, namespace: namespace) }
}

/// A command about one pod: the pod is found before `run(pod:)`, and an error is one line
/// on stderr and exit status 1 (`runReporting`).
protocol PodCommand: ParsableCommand {
    var globals: GlobalOptions { get }
    var target: PodArgument { get }
    func run(pod: PodView) throws
}

extension PodCommand {
    func run() throws {
        try runReporting { try run(pod: try target.find(globals)) }
    }
}

/// A container of a running pod (exec, attach).
struct RunningContainer: ParsableArguments {
    @Option(name: .shortAndLong, help: "The pod's namespace.")
    var namespace: String = "default"
    @Argument(help: "The pod (name or UID).")
    var pod: String
    @Option(name: .shortAndLong, help: "The container (default: the first app container).")
    var container: String?

    /// The pod, which must be running, and the container's name.
    func find(_ globals: GlobalOptions) throws -> (PodView, String) {
        let v = try PodDirectory.find(try globals.settings(), pod, namespace: namespace)
        let name = try pickContainer(v, container)
        try v.requireRunning()
        return (v, name)
    }
}

/// `requested`, or the default container, saying so (as kubectl) when there was a choice.
func pickContainer(_ v: PodView, _ requested: String?) throws -> String {
    let (name, note) = try v.pickContainer(requested)
    if let note { Out.err(note + "\n") }
    return name
}

/// Output of read commands.
enum OutputFormat: String, ExpressibleByArgument {
    case table, json, yaml
}

/// Runs a command body: an error becomes one line on stderr and exit status 1.
func runReporting(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch let e as ImageError {
        Out.err("husk: \(e.reason.rawValue): \(e.message)\n")
        throw ExitCode(1)
    } catch {
        Out.err("husk: \(error)\n")
        throw ExitCode(1)
    }
}

enum Out {
    static func out(_ s: String) { Output.write(s, to: 1) }
    static func err(_ s: String) { Output.write(s, to: 2) }

    static var stdoutIsTerminal: Bool { isatty(1) == 1 }
    static var stderrIsTerminal: Bool { isatty(2) == 1 }

    static func json(_ value: some Encodable) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(value), as: UTF8.self) + "\n"
    }

    /// A document as YAML for `.yaml`, else as indented JSON.
    static func document(_ doc: JSONValue, as format: OutputFormat) {
        out(format == .yaml ? YAMLText.render(doc) : doc.serialized(indent: 2) + "\n")
    }

    /// A table with columns padded to their widest cell, as crictl prints them.
    static func table(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        var widths = [Int](repeating: 0, count: first.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            r.enumerated().map { i, c in i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count + 3) }
                .joined()
        }.joined(separator: "\n") + "\n"
    }

    /// 1.2MB, 345kB: the decimal units crictl and docker use.
    static func size(_ bytes: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var v = Double(bytes)
        var i = 0
        while v >= 1000 && i < units.count - 1 {
            v /= 1000
            i += 1
        }
        if i == 0 { return "\(bytes)B" }
        let rounded = (v * 10).rounded() / 10
        return (rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)) + units[i]
    }
}
