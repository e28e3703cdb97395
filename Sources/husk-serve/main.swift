import Dispatch
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

// SIGTERM and SIGINT are read from a signalfd. They are blocked here, before any other thread
// exists (gRPC's event loops, Swift concurrency's pool), so that every thread inherits the
// mask and none of them is killed by one.
let stopSignals: SignalFD
do {
    stopSignals = try SignalFD([SIGTERM, SIGINT])
} catch {
    Output.write("husk serve: cannot block SIGTERM and SIGINT: \(error)\n", to: 2)
    exit(1)
}

// The main thread only waits. (Top-level `await` would hand it to the async main loop, which
// on Linux clears its signal mask: a SIGTERM would then kill the daemon instead of stopping it.)
let finished = DispatchSemaphore(value: 0)
Task.detached {
    await HuskServe.start()
    finished.signal()
}
finished.wait()
exit(0)
