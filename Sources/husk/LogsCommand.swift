import ArgumentParser
import HuskJSON
import HuskOptions
import HuskPod

struct Logs: PodCommand {
    static let configuration = CommandConfiguration(abstract: "Print a container's output (decoded from its CRI log file).")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var target: PodArgument
    @Option(name: .shortAndLong, help: "The container (default: the only one, else the first app container).")
    var container: String?
    @Flag(name: .shortAndLong, help: "Keep printing output as it comes, until the container ends.")
    var follow = false
    @Flag(name: .shortAndLong, help: "The previous instance of the container (after a restart).")
    var previous = false

    func run() throws {
        try runReporting {
            switch try AnyPod.find(globals, target.pod, namespace: target.namespace) {
            case .husk(let v): try run(pod: v)
            case .cri(let p): try criLogs(p, container: container, follow: follow, previous: previous)
            }
        }
    }

    func run(pod v: PodView) throws {
        let name = try pickContainer(v, container)
        let instance = try v.logInstance(container: name, previous: previous)
        let follower = LogFollower(prefix: false)
        follower.follow(instance.logPath, container: name)
        // Output a full disk kept out of the log: say so (on stderr, not in the output).
        let fieldPaths = ["spec.containers{\(name)}", "spec.initContainers{\(name)}"]
        for e in PodDirectory.events(v) {
            guard case .string("OutputLost")? = e["reason"], case .string(let path)? = e["involvedObject"]?["fieldPath"],
                  fieldPaths.contains(path), case .string(let message)? = e["message"]
            else { continue }
            var when = ""
            if case .string(let t)? = e["lastTimestamp"] { when = t + ": " }
            Out.err("husk logs: \(when)\(message)\n")
        }
        guard follow && !previous else { return }
        // Until this instance has ended (or the pod is gone) and its log is read to the end.
        PodDirectory.watch(v) { fresh in
            let over = fresh.hasEnded(container: name, instance: instance.id)
            follower.follow(instance.logPath, container: name)
            return over
        }
    }
}
