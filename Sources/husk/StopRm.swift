import ArgumentParser
import HuskOptions
import HuskPod
import HuskSystem

struct Stop: PodCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a pod gracefully: preStop hooks, the stop signal, SIGKILL after the grace period; then the sandbox.",
        discussion: "Returns when every container has terminated and the sandbox is gone.")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var target: PodArgument
    @Option(name: .long, help: "Grace period in seconds (default: the pod's terminationGracePeriodSeconds; at least 2 s).")
    var grace: Int64?

    func run(pod v: PodView) throws {
        if let g = grace, g < 0 { throw HuskError(.invalidArgument, "--grace must not be negative") }
        let done = try PodDirectory.stop(v, grace: grace)
        Out.out("\(done.qualifiedName) \(done.phase.rawValue)\n")
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove a stopped pod: its state, logs, emptyDirs and everything else of it.")

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var selector: PodSelector
    @Flag(name: .shortAndLong, help: "Stop a running pod first (grace 0: SIGKILL after the 2 s minimum).")
    var force = false
    @Argument(help: "The pods (names or UIDs).")
    var pods: [String]

    func run() throws {
        try runReporting {
            var failed = false
            for ref in pods {
                do {
                    var v = try globals.findPod(ref, selector)
                    if !v.isStopped {
                        guard force else {
                            throw HuskError(.invalidState, "pod \(v.qualifiedName) is running: stop it first (husk stop \(ref)), or use husk rm --force")
                        }
                        v = try PodDirectory.stop(v, grace: 0)
                    }
                    try PodDirectory.remove(v)
                    Out.out("\(v.uid)\n")
                } catch let e as HuskError {
                    Out.err("husk: \(e)\n")
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}
