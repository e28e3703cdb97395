import ArgumentParser
import HuskPod

// `husk supervise STATE_DIR` is the supervisor of one pod, started by `husk run`: it goes
// straight to its loop without the argument parser (it is kept small, DESIGN §3).
let arguments = CommandLine.arguments
if arguments.count == 3 && arguments[1] == "supervise" {
    SupervisorMain.run(stateDirectory: arguments[2])
}
Husk.main()
