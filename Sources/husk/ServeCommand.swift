import ArgumentParser
import HuskOptions
import HuskSystem

#if canImport(Glibc)
import Glibc
#endif

/// `husk serve`: the CRI v1 gRPC daemon. It is a program of its own, `husk-serve`, installed
/// next to `husk`: the gRPC stack stays out of `husk` (and so out of every pod's supervisor,
/// which is `husk supervise`), whose start time and memory are benchmark figures. This command
/// only execs it with the same arguments, global flags included.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the CRI v1 gRPC API (kubelet, crictl) on a unix socket: runs husk-serve.",
        discussion: "Every argument goes to husk-serve (found next to husk); `husk serve --help` shows its flags.")

    @Argument(parsing: .captureForPassthrough, help: "husk-serve's flags (--listen PATH and the global flags).")
    var arguments: [String] = []

    func run() throws {
        let argv = CommandLine.arguments
        // Global flags written before `serve` go too: they are what precedes the captured tail.
        let serveIndex = argv.count - arguments.count - 1
        guard serveIndex >= 1, argv[serveIndex] == "serve" else {
            Out.err("husk: serve: cannot tell husk-serve's arguments apart; run husk-serve directly\n")
            throw ExitCode(1)
        }
        let forwarded = Array(argv[1..<serveIndex]) + arguments
        let program = try Serve.daemonPath()
        let args = [program] + forwarded
        // execv returns only on failure; its strings live until then.
        var cArgs = args.map { strdup($0) } + [nil]
        execv(program, &cArgs)
        let e = currentErrno
        for p in cArgs { free(p) }
        Out.err("husk: serve: cannot run \(program): \(e.text)\n")
        throw ExitCode(1)
    }

    /// `husk-serve` in the directory of the running `husk` (/proc/self/exe, symlinks resolved).
    static func daemonPath() throws -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else {
            Out.err("husk: serve: cannot find the husk executable (/proc/self/exe): \(currentErrno.text)\n")
            throw ExitCode(1)
        }
        let me = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let dir = me.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let path = (dir.isEmpty ? "" : dir) + "/husk-serve"
        guard access(path, X_OK) == 0 else {
            Out.err("husk: serve: \(path): \(currentErrno.text): husk-serve, the CRI daemon, is installed next to husk (build it with `swift build --product husk-serve`)\n")
            throw ExitCode(1)
        }
        return path
    }
}
