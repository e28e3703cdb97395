import HuskSystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Container {
    /// Blocks the signals a foreground run forwards and returns the signalfd that receives
    /// them. Must run before the process starts any thread (first thing in `main`).
    public static func prepareSignalForwarding() -> SignalFD? {
        try? SignalFD.forwarded()
    }

    /// `run` in the foreground: create, start, forward every signal this process receives to
    /// the container process, wait for it, delete the container. Returns how it ended.
    /// The caller is the parent of the container process.
    public static func runForeground(
        id: String, bundle: String, root: RuntimeRoot, options: CreateOptions, signals: SignalFD?,
        keep: Bool = false, wait: ((SpawnedProcess) -> ExitStatus)? = nil
    ) throws(HuskError) -> ExitStatus {
        // As runc: orphans of a container without its own pid namespace are reparented to us,
        // and reaped when the container is deleted.
        try? Children.becomeSubreaper()
        let (container, process) = try create(id: id, bundle: bundle, root: root, options: options)
        do throws(HuskError) {
            try container.startReporting(process, warn: options.warn)
            do {
                try process.waitExec()
            } catch {
                throw HuskError(.invalidArgument, "cannot start container \(id): \(error)")
            }
        } catch {
            try? process.pidfd.signal(SIGKILL)
            _ = try? process.pidfd.wait()
            try? container.delete(force: true, warn: options.warn)
            throw error
        }
        let status = wait?(process) ?? waitForwarding(process.pidfd, signals: signals)
        if !keep { try container.delete(force: true, warn: options.warn) }
        return status
    }

    /// `start` by the process that created the container (and holds its report pipe): a
    /// failure comes with the child's own words (which hook, which exec error).
    public func startReporting(_ process: SpawnedProcess, warn: (String) -> Void) throws(HuskError) {
        do {
            try start(warn: warn)
        } catch let startError {
            do {
                try process.waitExec()
            } catch {
                throw HuskError(.invalidArgument, "cannot start container \(id): \(error)")
            }
            throw startError
        }
    }

    /// Waits for a child, passing on every signal that arrives on `signals` meanwhile.
    public static func waitForwarding(_ pidfd: PidFD, signals: SignalFD?) -> ExitStatus {
        while true {
            if let signals {
                let which = try? Poll.firstReadable([pidfd.fd.raw, signals.fd.raw])
                if which == 1 {
                    for sig in signals.drain() { try? pidfd.signal(sig) }
                    continue
                }
            }
            do {
                return try pidfd.wait()
            } catch {
                return .exited(255)
            }
        }
    }
}
