import ArgumentParser
import HuskCRI
import HuskOptions
import HuskPod
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// `husk-serve` (also run as `husk serve`): the CRI v1 gRPC daemon for kubelet and crictl.
struct HuskServe: AsyncParsableCommand {
    /// The entry point (main.swift): ArgumentParser's async `main()`, by another name. Called
    /// from top-level code, `main()` and `run()` resolve to ParsableCommand's synchronous ones.
    static func start() async {
        do {
            var command = try await asyncParseAsRoot()
            if let serve = command as? HuskServe {
                try await serve.run()
            } else {
                try command.run()  // --help, --version
            }
        } catch {
            exit(withError: error)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "husk-serve",
        abstract: "Serve CRI v1 (RuntimeService, ImageService) over gRPC on a unix socket.",
        discussion: """
            Also answers as runtime.v1alpha2. SIGTERM or SIGINT: stop accepting, finish the RPCs under way, \
            remove the socket, exit 0; a second signal exits at once. Pods are not stopped by either.
            """,
        version: "husk-serve \(HuskVersion.current)")

    @OptionGroup var globals: GlobalOptions

    @Option(name: .long, help: "The unix socket to serve on (mode 0660; its directory is created if missing).")
    var listen: String = CRIConfiguration.defaultSocketPath

    @Option(name: .long, help: "Where the streaming server for exec, attach and port-forward listens (host:port; port 0 picks a free one).")
    var streamAddress: String = CRIConfiguration.defaultStreamAddress

    @Option(name: .long, help: "Close a streaming connection after this many seconds without data either way (containerd's default: 4 h).")
    var streamIdleTimeout: Double = 4 * 3600

    @Option(name: .customLong("allow-cgroup-parent"), help: ArgumentHelp(
        "A cgroup (v2 path) under which a sandbox's cgroup_parent may be, besides /husk. Repeatable; default: /kubepods (kubelet's cgroupfs root).",
        valueName: "path"))
    var cgroupParentRoots: [String] = []

    func run() async throws {
        let server: CRIServer
        do {
            var config = CRIConfiguration(settings: try globals.settings(), socketPath: Files.absolute(listen), runtimeVersion: HuskVersion.current)
            config.streamAddress = streamAddress
            guard streamIdleTimeout > 0 else { throw HuskError(.invalidArgument, "--stream-idle-timeout must be more than 0 seconds") }
            config.streamIdleTimeout = streamIdleTimeout
            if !cgroupParentRoots.isEmpty {
                for root in cgroupParentRoots where CgroupParent.problem(root) != nil {
                    throw HuskError(.invalidArgument, "--allow-cgroup-parent \(root): \(CgroupParent.problem(root)!)")
                }
                config.cgroupParentRoots = cgroupParentRoots.map { $0.count > 1 && $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
            }
            server = try CRIServer(config: config)
        } catch {
            Output.write("husk serve: \(error)\n", to: 2)
            throw ExitCode(1)
        }
        Threads.spawn("husk-serve-signals") { waitForSignals(server) }
        do {
            try await server.run {
                CRILog.info("husk serve \(HuskVersion.current): serving CRI v1 and v1alpha2 on \(server.config.socketPath); streaming on \(server.streamURL)")
            }
        } catch {
            Output.write("husk serve: \(error)\n", to: 2)
            throw ExitCode(1)
        }
        CRILog.info("husk serve: stopped")
    }
}

/// The first SIGTERM/SIGINT begins a graceful shutdown; a second one ends the daemon at once.
private func waitForSignals(_ server: CRIServer) {
    var received = 0
    while true {
        var p = pollfd(fd: stopSignals.fd.raw, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, -1) < 0 && errno != EINTR { return }
        for sig in stopSignals.drain() {
            received += 1
            if received == 1 {
                CRILog.info("husk serve: \(Signals.name(sig)): no new RPCs; stopping once those under way are done")
                server.shutdown()
            } else {
                CRILog.info("husk serve: \(Signals.name(sig)) again: exiting now")
                server.removeSocket()
                _exit(1)
            }
        }
    }
}
