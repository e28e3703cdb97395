import ArgumentParser
import FoundationEssentials
import HuskImage
import HuskJSON
import HuskOptions
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
        version: "husk \(HuskVersion.current)",
        subcommands: [
            Run.self, Pods.self, PS.self, Stats.self, Inspect.self, Events.self, Logs.self, Exec.self, Attach.self, Stop.self, Remove.self,
            Pull.self, Images.self, ImageCommand.self, Rmi.self, GC.self, Serve.self,
        ])

    // Also here so that global flags may come before the command (`husk --root R pull ...`).
    @OptionGroup var globals: GlobalOptions
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

    /// The pod's supervisor and the container as it knows it: the name in a husk run pod
    /// (which must be running), the CRI container id in a husk serve pod (the container must
    /// be running).
    func find(_ globals: GlobalOptions) throws -> (PodClient, String) {
        switch try AnyPod.find(globals, pod, namespace: namespace) {
        case .husk(let v):
            let name = try pickContainer(v, container)
            try v.requireRunning()
            return (PodClient(v), name)
        case .cri(let p):
            let c = try p.container(container)
            guard c.state == .running else {
                throw HuskError(.invalidState, "container \(c.name) of pod \(p.view.record.config.metadata.name) is not running (\(SandboxContainer.name(c.state)))")
            }
            return (PodClient(socket: p.client.socket), c.id)
        }
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
