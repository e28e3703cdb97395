import HuskRuntime
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

// A foreground `run` forwards every signal it receives to the container. The signals are
// blocked here, before any thread exists, so that no thread takes one with its default action.
let arguments = Array(CommandLine.arguments.dropFirst())
let parsed: ParsedCommandLine
do {
    parsed = try RuncCLI.parse(arguments)
} catch {
    FileHandleOut.stderr("husk-runc: \(error)\n")
    exit(1)
}
if (parsed.command == "run" || parsed.command == "exec") && !parsed.flag("detach") {
    RuncSignals.forwarding = Container.prepareSignalForwarding()
}
exit(Runc.main(parsed))
