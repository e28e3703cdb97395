import ArgumentParser
import HuskPod

#if canImport(Glibc)
import Glibc
#endif

// `husk supervise STATE_DIR` is the supervisor of one pod, started by `husk run`: it goes
// straight to its loop without the argument parser (it is kept small, DESIGN §3).
let arguments = CommandLine.arguments
if arguments.count == 3 && arguments[1] == "supervise" {
    SupervisorMain.run(stateDirectory: arguments[2])
}
// `husk [global flags] serve ...` becomes husk-serve, the CRI daemon (ServeCommand.swift).
if arguments.contains("serve"), let i = Serve.index(in: arguments) {
    exit(Serve.exec(arguments, at: i))
}
Husk.main()
